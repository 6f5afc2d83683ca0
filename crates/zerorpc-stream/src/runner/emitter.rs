//! One task's outgoing side: routing at emit (so task ids are known at
//! once), Storm's edge ids and ack values, per-destination batches, the
//! acker updates, and for spouts the trees in flight.
//!
//! Nothing here awaits except [`Emitter::flush`]: emits and acks only
//! append to buffers; `flush` sends the acker's updates first (so a tree's
//! `init` is queued before any of its tuples can be acked), then one batch
//! per destination task, waiting for room (back-pressure).

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use smallvec::SmallVec;
use tokio::sync::mpsc;

use super::logs::ComponentLog;
use super::metrics::TaskCounters;
use crate::acker::{AckerOp, IdMap, TreeEnd};
use crate::component::{BoltSink, SpoutSink};
use crate::error::Error;
use crate::router::Subscription;
use crate::tuple::{Anchor, MsgId, TaskId, Tuple, Value};

/// A batch of tuples for one task.
pub(crate) type Batch = Vec<Tuple>;

/// A destination task of this emitter.
pub(crate) struct Dest {
    pub(crate) tx: mpsc::Sender<Batch>,
    pub(crate) counters: Arc<TaskCounters>,
}

/// One declared output stream with its subscriptions (whose task positions
/// are slots into [`Emitter::dests`]).
pub(crate) struct StreamOut {
    pub(crate) name: Arc<str>,
    pub(crate) fields: Arc<[String]>,
    pub(crate) direct: bool,
    pub(crate) subs: Vec<Subscription>,
}

/// splitmix64: edge ids and roots need speed and spread, not secrecy.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) | 1
    }
}

enum Anchoring<'a, 'b> {
    None,
    Spout { root: u64, xor: &'a mut u64 },
    Bolt(&'a [&'b Tuple]),
}

/// Flush a bolt's output early once this many tuples wait (bounds a batch).
pub(crate) const FLUSH_AT: usize = 1024;

pub(crate) struct Emitter {
    pub(crate) component: Arc<str>,
    pub(crate) task: TaskId,
    streams: Vec<StreamOut>,
    dests: Vec<Dest>,
    out: Vec<Batch>,
    dirty: Vec<usize>,
    pub(crate) buffered: usize,
    acker: Option<mpsc::Sender<Vec<AckerOp>>>,
    acker_ops: Vec<AckerOp>,
    rng: Rng,
    targets: Vec<TaskId>,
    chosen: Vec<usize>,
    positions: Vec<usize>,
    pub(crate) counters: Arc<TaskCounters>,
    pub(crate) log: ComponentLog,
    /// Spouts: this task's index among the acker's spout tasks.
    spout_index: usize,
    /// Spouts: trees in flight, by root.
    pub(crate) trees: IdMap<(MsgId, Instant)>,
    /// Spouts without an acker: trees complete at emit.
    pub(crate) immediate: VecDeque<(u64, TreeEnd)>,
}

impl Emitter {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        component: Arc<str>,
        task: TaskId,
        streams: Vec<StreamOut>,
        dests: Vec<Dest>,
        acker: Option<mpsc::Sender<Vec<AckerOp>>>,
        spout_index: usize,
        counters: Arc<TaskCounters>,
        log: ComponentLog,
    ) -> Emitter {
        let out = dests.iter().map(|_| Vec::new()).collect();
        Emitter {
            component,
            task,
            streams,
            dests,
            out,
            dirty: Vec::new(),
            buffered: 0,
            acker,
            acker_ops: Vec::new(),
            rng: Rng(rand::random()),
            targets: Vec::new(),
            chosen: Vec::new(),
            positions: Vec::new(),
            counters,
            log,
            spout_index,
            trees: IdMap::default(),
            immediate: VecDeque::new(),
        }
    }

    fn emit_error(&self, message: String) -> Error {
        Error::Emit {
            component: self.component.to_string(),
            message,
        }
    }

    /// Routes one emit: validates it, picks destination tasks, builds one
    /// tuple per destination with its edge ids, and buffers them.
    fn route(
        &mut self,
        stream: &str,
        mut values: Vec<Value>,
        direct: Option<TaskId>,
        mut anchoring: Anchoring<'_, '_>,
    ) -> Result<(), Error> {
        let Some(si) = self.streams.iter().position(|s| &*s.name == stream) else {
            let declared: Vec<&str> = self.streams.iter().map(|s| &*s.name).collect();
            return Err(self.emit_error(format!(
                "emit on undeclared stream {stream:?} (declared: {declared:?})"
            )));
        };
        let out = &mut self.streams[si];
        if values.len() != out.fields.len() {
            let (n, fields) = (values.len(), out.fields.clone());
            return Err(self.emit_error(format!(
                "stream {stream:?} declares fields {fields:?}; the tuple has {n} values"
            )));
        }
        self.targets.clear();
        self.chosen.clear();
        match (direct, out.direct) {
            (Some(task), true) => {
                for sub in &out.subs {
                    if matches!(sub.choice, crate::router::Choice::Direct) {
                        if let Some(pos) = sub.task_ids.iter().position(|t| *t == task) {
                            self.chosen.push(sub.tasks[pos]);
                            self.targets.push(task);
                        }
                    }
                }
                if self.chosen.is_empty() {
                    return Err(self.emit_error(format!(
                        "direct emit on {stream:?} to task {task}, which does not subscribe to it with a DIRECT grouping"
                    )));
                }
            }
            (None, false) => {
                for sub in out.subs.iter_mut() {
                    self.positions.clear();
                    sub.choose(&values, &mut self.positions);
                    for &p in &self.positions {
                        self.chosen.push(sub.tasks[p]);
                        self.targets.push(sub.task_ids[p]);
                    }
                }
            }
            (Some(_), false) => {
                return Err(
                    self.emit_error(format!("direct emit on {stream:?}, which is not direct"))
                )
            }
            (None, true) => {
                return Err(self.emit_error(format!(
                    "{stream:?} is a direct stream: emit to a task with emit_direct"
                )))
            }
        }
        let name = out.name.clone();
        let fields = out.fields.clone();
        let n = self.chosen.len();
        for i in 0..n {
            let slot = self.chosen[i];
            let v = if i + 1 == n {
                std::mem::take(&mut values)
            } else {
                values.clone()
            };
            let mut anchors: SmallVec<[Anchor; 1]> = SmallVec::new();
            match &mut anchoring {
                Anchoring::None => {}
                Anchoring::Spout { root, xor } => {
                    let e = self.rng.next();
                    **xor ^= e;
                    anchors.push((*root, e));
                }
                Anchoring::Bolt(inputs) => {
                    let e = self.rng.next();
                    for a in inputs.iter() {
                        if a.anchors.is_empty() {
                            continue;
                        }
                        a.ack_val.set(a.ack_val.get() ^ e);
                        for &(root, _) in &a.anchors {
                            match anchors.iter_mut().find(|(r, _)| *r == root) {
                                Some(x) => x.1 ^= e,
                                None => anchors.push((root, e)),
                            }
                        }
                    }
                }
            }
            let t = Tuple {
                ack_val: Default::default(),
                done: Default::default(),
                ml_id: None,
                anchors,
                component: self.component.clone(),
                stream: name.clone(),
                task: self.task,
                fields: fields.clone(),
                values: v,
            };
            let buf = &mut self.out[slot];
            if buf.is_empty() {
                self.dirty.push(slot);
            }
            buf.push(t);
        }
        self.buffered += n;
        self.counters.emitted.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Sends the acker's updates, then each destination's batch.
    pub(crate) async fn flush(&mut self) {
        if !self.acker_ops.is_empty() {
            let ops = std::mem::take(&mut self.acker_ops);
            if let Some(acker) = &self.acker {
                // Fails only once the run is halting.
                let _ = acker.send(ops).await;
            }
        }
        for slot in std::mem::take(&mut self.dirty) {
            let batch = std::mem::take(&mut self.out[slot]);
            let dest = &self.dests[slot];
            dest.counters.pending.fetch_add(batch.len() as i64, Relaxed);
            if dest.tx.send(batch).await.is_err() {
                // The task is gone (the run halts): its tuples time out.
                tracing::debug!(
                    component = &*self.component,
                    "a destination task has stopped"
                );
            }
        }
        self.buffered = 0;
    }

    /// Records that a spout task's tree ended (its count and latency).
    pub(crate) fn tree_ended(&mut self, root: u64, end: TreeEnd) -> Option<MsgId> {
        let (msg_id, started) = self.trees.remove(&root)?;
        self.counters
            .pending
            .store(self.trees.len() as i64, Relaxed);
        match end {
            TreeEnd::Acked => {
                self.counters.acked.fetch_add(1, Relaxed);
                self.counters.latency.record(started.elapsed());
            }
            TreeEnd::Failed | TreeEnd::TimedOut => {
                self.counters.failed.fetch_add(1, Relaxed);
            }
        }
        Some(msg_id)
    }
}

impl BoltSink for Emitter {
    fn emit(
        &mut self,
        stream: &str,
        anchors: &[&Tuple],
        values: Vec<Value>,
        direct: Option<TaskId>,
    ) -> Result<&[TaskId], Error> {
        let anchoring = if anchors.is_empty() || self.acker.is_none() {
            Anchoring::None
        } else {
            Anchoring::Bolt(anchors)
        };
        self.route(stream, values, direct, anchoring)?;
        Ok(&self.targets)
    }

    fn ack(&mut self, tuple: &Tuple) {
        if tuple.done.replace(true) {
            BoltSink::report_error(
                self,
                "a tuple was acked or failed twice; the second time is ignored",
            );
            return;
        }
        self.counters.acked.fetch_add(1, Relaxed);
        if self.acker.is_some() {
            let val = tuple.ack_val.get();
            for &(root, edge) in &tuple.anchors {
                self.acker_ops.push(AckerOp::Ack {
                    root,
                    xor: edge ^ val,
                });
            }
        }
    }

    fn fail(&mut self, tuple: &Tuple) {
        if tuple.done.replace(true) {
            BoltSink::report_error(
                self,
                "a tuple was acked or failed twice; the second time is ignored",
            );
            return;
        }
        self.counters.failed.fetch_add(1, Relaxed);
        if self.acker.is_some() {
            for &(root, _) in &tuple.anchors {
                self.acker_ops.push(AckerOp::Fail { root });
            }
        }
    }

    fn report_error(&mut self, message: &str) {
        self.counters.errors.fetch_add(1, Relaxed);
        self.log.log(self.task, 4, message);
    }

    fn log(&mut self, level: u8, message: &str) {
        self.log.log(self.task, level, message);
    }
}

impl SpoutSink for Emitter {
    fn emit(
        &mut self,
        stream: &str,
        values: Vec<Value>,
        msg_id: Option<MsgId>,
        direct: Option<TaskId>,
    ) -> Result<&[TaskId], Error> {
        let Some(msg_id) = msg_id else {
            self.route(stream, values, direct, Anchoring::None)?;
            return Ok(&self.targets);
        };
        let root = self.rng.next();
        let mut xor = 0;
        let anchoring = if self.acker.is_some() {
            Anchoring::Spout {
                root,
                xor: &mut xor,
            }
        } else {
            Anchoring::None
        };
        self.route(stream, values, direct, anchoring)?;
        self.trees.insert(root, (msg_id, Instant::now()));
        self.counters
            .pending
            .store(self.trees.len() as i64, Relaxed);
        if self.acker.is_some() {
            self.acker_ops.push(AckerOp::Init {
                root,
                xor,
                spout: self.spout_index,
            });
        } else {
            self.immediate.push_back((root, TreeEnd::Acked));
        }
        Ok(&self.targets)
    }

    fn report_error(&mut self, message: &str) {
        BoltSink::report_error(self, message)
    }

    fn log(&mut self, level: u8, message: &str) {
        BoltSink::log(self, level, message)
    }
}
