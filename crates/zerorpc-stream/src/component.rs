//! The component model: spouts, bolts, their collectors and their declared
//! outputs.
//!
//! A component never sees how its emits travel: a [`BoltCollector`] or
//! [`SpoutCollector`] forwards every call to a sink, which is the local
//! runner (routing in process, XOR acking) or a multi-lang connection to
//! Storm ([`crate::multilang::run`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{BoxError, Error};
use crate::tuple::{MsgId, TaskId, Tuple, Value, DEFAULT_STREAM};

/// One declared output stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDecl {
    /// Field names, in the order of a tuple's values.
    pub fields: Vec<String>,
    /// A direct stream: every emit names its target task.
    pub direct: bool,
}

/// A component's declared output streams (Storm's `declareOutputFields`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    pub(crate) streams: BTreeMap<String, StreamDecl>,
}

impl Outputs {
    /// No output (a sink bolt).
    pub fn none() -> Outputs {
        Outputs::default()
    }

    /// The default stream with these fields.
    pub fn fields<S: Into<String>>(fields: impl IntoIterator<Item = S>) -> Outputs {
        Outputs::none().stream(DEFAULT_STREAM, fields)
    }

    /// Adds a stream.
    pub fn stream<S: Into<String>>(
        mut self,
        name: &str,
        fields: impl IntoIterator<Item = S>,
    ) -> Outputs {
        self.streams.insert(
            name.to_string(),
            StreamDecl {
                fields: fields.into_iter().map(Into::into).collect(),
                direct: false,
            },
        );
        self
    }

    /// Adds a direct stream.
    pub fn direct_stream<S: Into<String>>(
        mut self,
        name: &str,
        fields: impl IntoIterator<Item = S>,
    ) -> Outputs {
        self.streams.insert(
            name.to_string(),
            StreamDecl {
                fields: fields.into_iter().map(Into::into).collect(),
                direct: true,
            },
        );
        self
    }

    /// The declared streams.
    pub fn streams(&self) -> impl Iterator<Item = (&str, &StreamDecl)> {
        self.streams.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// One stream's declaration.
    pub fn get(&self, stream: &str) -> Option<&StreamDecl> {
        self.streams.get(stream)
    }
}

/// What a component instance knows about where it runs.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The topology's name.
    pub topology: String,
    /// This component's id in the topology.
    pub component: String,
    /// This instance's task id.
    pub task: TaskId,
    /// The task ids of every instance of this component, in order.
    pub component_tasks: Vec<TaskId>,
    /// The topology's configuration (Flux `config`, Storm keys such as
    /// `topology.message.timeout.secs`).
    pub config: Arc<serde_json::Map<String, Value>>,
}

impl TaskContext {
    /// This instance's index among its component's tasks (0-based).
    pub fn index(&self) -> usize {
        self.component_tasks
            .iter()
            .position(|t| *t == self.task)
            .unwrap_or(0)
    }
}

/// Where a bolt's emits, acks and fails go (the runner, or multi-lang).
/// Implemented by this crate; components use [`BoltCollector`].
pub trait BoltSink {
    /// Emits `values` on `stream`, anchored to `anchors`, to `direct` (a
    /// direct stream) or to the grouping's choice; returns the receiving
    /// task ids when they are known (always in the local runner; over
    /// multi-lang only when the peer answers them).
    fn emit(
        &mut self,
        stream: &str,
        anchors: &[&Tuple],
        values: Vec<Value>,
        direct: Option<TaskId>,
    ) -> Result<&[TaskId], Error>;
    /// Acks an input tuple.
    fn ack(&mut self, tuple: &Tuple);
    /// Fails an input tuple (its trees are replayed by their spouts).
    fn fail(&mut self, tuple: &Tuple);
    /// Reports an error to the topology's logs and statistics.
    fn report_error(&mut self, message: &str);
    /// A component log line at a multi-lang level (0 trace .. 4 error).
    fn log(&mut self, level: u8, message: &str);
}

/// A bolt's handle to emit, ack and fail.
pub struct BoltCollector<'a> {
    sink: &'a mut dyn BoltSink,
}

impl<'a> BoltCollector<'a> {
    /// Wraps a sink (the runner and multi-lang make these).
    pub fn new(sink: &'a mut dyn BoltSink) -> BoltCollector<'a> {
        BoltCollector { sink }
    }

    /// Emits on the default stream, anchored to `anchors` (pass `&[]` for
    /// an unanchored tuple, whose loss no spout hears of).
    pub fn emit(&mut self, anchors: &[&Tuple], values: Vec<Value>) -> Result<&[TaskId], Error> {
        self.sink.emit(DEFAULT_STREAM, anchors, values, None)
    }

    /// Emits on a named stream.
    pub fn emit_to(
        &mut self,
        stream: &str,
        anchors: &[&Tuple],
        values: Vec<Value>,
    ) -> Result<&[TaskId], Error> {
        self.sink.emit(stream, anchors, values, None)
    }

    /// Emits on a direct stream to one task.
    pub fn emit_direct(
        &mut self,
        task: TaskId,
        stream: &str,
        anchors: &[&Tuple],
        values: Vec<Value>,
    ) -> Result<&[TaskId], Error> {
        self.sink.emit(stream, anchors, values, Some(task))
    }

    /// Acks an input tuple (bolts whose `auto_ack` is false).
    pub fn ack(&mut self, tuple: &Tuple) {
        self.sink.ack(tuple)
    }

    /// Fails an input tuple.
    pub fn fail(&mut self, tuple: &Tuple) {
        self.sink.fail(tuple)
    }

    /// Reports an error (counted in the component's statistics and logged).
    pub fn report_error(&mut self, message: &str) {
        self.sink.report_error(message)
    }

    /// Logs a line as the component (`tracing` works too; this also reaches
    /// Storm's logs over multi-lang).
    pub fn log(&mut self, level: u8, message: &str) {
        self.sink.log(level, message)
    }
}

/// Where a spout's emits go.
pub trait SpoutSink {
    /// Emits `values` on `stream`; with a `msg_id` the tuple's tree is
    /// tracked and the spout hears `ack` or `fail` for it.
    fn emit(
        &mut self,
        stream: &str,
        values: Vec<Value>,
        msg_id: Option<MsgId>,
        direct: Option<TaskId>,
    ) -> Result<&[TaskId], Error>;
    /// Reports an error.
    fn report_error(&mut self, message: &str);
    /// A component log line (0 trace .. 4 error).
    fn log(&mut self, level: u8, message: &str);
}

/// A spout's handle to emit.
pub struct SpoutCollector<'a> {
    sink: &'a mut dyn SpoutSink,
}

impl<'a> SpoutCollector<'a> {
    /// Wraps a sink.
    pub fn new(sink: &'a mut dyn SpoutSink) -> SpoutCollector<'a> {
        SpoutCollector { sink }
    }

    /// Emits a tracked tuple on the default stream.
    pub fn emit(&mut self, values: Vec<Value>, msg_id: MsgId) -> Result<&[TaskId], Error> {
        self.sink.emit(DEFAULT_STREAM, values, Some(msg_id), None)
    }

    /// Emits an untracked tuple (fire and forget) on the default stream.
    pub fn emit_untracked(&mut self, values: Vec<Value>) -> Result<&[TaskId], Error> {
        self.sink.emit(DEFAULT_STREAM, values, None, None)
    }

    /// Emits on a named stream, tracked when `msg_id` is given.
    pub fn emit_to(
        &mut self,
        stream: &str,
        values: Vec<Value>,
        msg_id: Option<MsgId>,
    ) -> Result<&[TaskId], Error> {
        self.sink.emit(stream, values, msg_id, None)
    }

    /// Emits on a direct stream to one task.
    pub fn emit_direct(
        &mut self,
        task: TaskId,
        stream: &str,
        values: Vec<Value>,
        msg_id: Option<MsgId>,
    ) -> Result<&[TaskId], Error> {
        self.sink.emit(stream, values, msg_id, Some(task))
    }

    /// Reports an error.
    pub fn report_error(&mut self, message: &str) {
        self.sink.report_error(message)
    }

    /// Logs a line as the component.
    pub fn log(&mut self, level: u8, message: &str) {
        self.sink.log(level, message)
    }
}

/// Wakes a spout's task when the spout has something to emit (a spout fed
/// by a background task calls it; the runner otherwise polls `next_tuple`
/// with a short back-off while it emits nothing).
#[derive(Clone, Default)]
pub struct SpoutWaker {
    pub(crate) notify: Option<Arc<tokio::sync::Notify>>,
}

impl SpoutWaker {
    /// Asks the runner to call `next_tuple` soon.
    pub fn wake(&self) {
        if let Some(n) = &self.notify {
            n.notify_one();
        }
    }
}

/// A source of tuples.
pub trait Spout: Send + 'static {
    /// What it emits.
    fn outputs(&self) -> Outputs;
    /// Called once before the first `next_tuple`.
    fn open(&mut self, _ctx: &TaskContext, _waker: SpoutWaker) -> Result<(), BoxError> {
        Ok(())
    }
    /// Emits zero or more tuples. Must not block: return having emitted
    /// nothing when there is nothing (the runner backs off, or waits for the
    /// waker).
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError>;
    /// The tree of the tuple emitted with `msg_id` was fully processed.
    fn ack(&mut self, _msg_id: MsgId, _out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        Ok(())
    }
    /// The tree failed or timed out: emit it again to replay it.
    fn fail(&mut self, _msg_id: MsgId, _out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        Ok(())
    }
    /// The topology was activated (after open) or reactivated.
    fn activate(&mut self) {}
    /// The topology was deactivated: `next_tuple` is not called until
    /// `activate`.
    fn deactivate(&mut self) {}
    /// The topology stops.
    fn close(&mut self) {}
}

/// A processing step.
pub trait Bolt: Send + 'static {
    /// What it emits.
    fn outputs(&self) -> Outputs;
    /// Called once before the first tuple.
    fn prepare(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Processes one tuple. With [`Bolt::auto_ack`] (the default), `Ok`
    /// acks it and `Err` fails it (and reports the error).
    fn process(&mut self, tuple: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError>;
    /// A tick tuple arrived (`topology.tick.tuple.freq.secs`).
    fn tick(&mut self, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        Ok(())
    }
    /// How often this bolt gets tick tuples, in seconds (Storm's
    /// component-level `topology.tick.tuple.freq.secs`); `None` leaves it to
    /// the topology's configuration.
    fn tick_secs(&self) -> Option<f64> {
        None
    }
    /// Whether the runner acks (or fails) each tuple after `process`.
    /// When false the bolt acks with [`BoltCollector::ack`], possibly later
    /// from a clone of the tuple.
    fn auto_ack(&self) -> bool {
        true
    }
    /// The topology stops.
    fn cleanup(&mut self) {}
}

/// A boxed spout is a spout (to serve a registered one, e.g. with
/// [`crate::multilang::run_spout`]).
impl Spout for Box<dyn Spout> {
    fn outputs(&self) -> Outputs {
        (**self).outputs()
    }
    fn open(&mut self, ctx: &TaskContext, waker: SpoutWaker) -> Result<(), BoxError> {
        (**self).open(ctx, waker)
    }
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        (**self).next_tuple(out)
    }
    fn ack(&mut self, msg_id: MsgId, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        (**self).ack(msg_id, out)
    }
    fn fail(&mut self, msg_id: MsgId, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        (**self).fail(msg_id, out)
    }
    fn activate(&mut self) {
        (**self).activate()
    }
    fn deactivate(&mut self) {
        (**self).deactivate()
    }
    fn close(&mut self) {
        (**self).close()
    }
}

/// A boxed bolt is a bolt (to serve a registered one, e.g. with
/// [`crate::multilang::run_bolt`]).
impl Bolt for Box<dyn Bolt> {
    fn outputs(&self) -> Outputs {
        (**self).outputs()
    }
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        (**self).prepare(ctx)
    }
    fn process(&mut self, tuple: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        (**self).process(tuple, out)
    }
    fn tick(&mut self, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        (**self).tick(out)
    }
    fn tick_secs(&self) -> Option<f64> {
        (**self).tick_secs()
    }
    fn auto_ack(&self) -> bool {
        (**self).auto_ack()
    }
    fn cleanup(&mut self) {
        (**self).cleanup()
    }
}

/// A bolt that processes tuples in groups (streamparse's `BatchingBolt`):
/// tuples are grouped by [`BatchingBolt::group_key`] and handed over every
/// [`BatchingBolt::batch_secs`]; a batch's tuples are all acked when
/// `process_batch` returns `Ok`, all failed on `Err`.
pub trait BatchingBolt: Send + 'static {
    /// What it emits.
    fn outputs(&self) -> Outputs;
    /// Called once before the first tuple.
    fn prepare(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// The group a tuple belongs to (one batch per key).
    fn group_key(&self, _tuple: &Tuple) -> Value {
        Value::Null
    }
    /// Seconds between batches.
    fn batch_secs(&self) -> f64 {
        2.0
    }
    /// Processes one group's tuples (emits anchored to them as it wishes).
    fn process_batch(
        &mut self,
        key: &Value,
        tuples: &[Tuple],
        out: &mut BoltCollector<'_>,
    ) -> Result<(), BoxError>;
}

/// A [`BatchingBolt`] as a [`Bolt`]: holds tuples by group key and hands
/// each group over on ticks every `batch_secs`.
pub struct Batched<B> {
    pub(crate) inner: B,
    /// Held tuples by the hash of their group key (then by key).
    pub(crate) batches: std::collections::HashMap<u64, Vec<(Value, Vec<Tuple>)>>,
}

impl<B: BatchingBolt> Batched<B> {
    /// Wraps a batching bolt.
    pub fn new(inner: B) -> Batched<B> {
        Batched {
            inner,
            batches: Default::default(),
        }
    }
}

impl<B: BatchingBolt> Bolt for Batched<B> {
    fn outputs(&self) -> Outputs {
        self.inner.outputs()
    }
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.inner.prepare(ctx)
    }
    fn process(&mut self, tuple: &Tuple, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        use std::hash::Hasher;
        let key = self.inner.group_key(tuple);
        let mut h = crate::router::FnvHasher::default();
        crate::router::hash_value(&key, &mut h);
        let groups = self.batches.entry(h.finish()).or_default();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, batch)) => batch.push(tuple.clone()),
            None => groups.push((key, vec![tuple.clone()])),
        }
        Ok(())
    }
    fn tick(&mut self, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let groups = std::mem::take(&mut self.batches);
        for (key, tuples) in groups.into_values().flatten() {
            match self.inner.process_batch(&key, &tuples, out) {
                Ok(()) => tuples.iter().for_each(|t| out.ack(t)),
                Err(e) => {
                    out.report_error(&format!("batch {key}: {e}"));
                    tuples.iter().for_each(|t| out.fail(t));
                }
            }
        }
        Ok(())
    }
    fn tick_secs(&self) -> Option<f64> {
        Some(self.inner.batch_secs())
    }
    fn auto_ack(&self) -> bool {
        false
    }
}
