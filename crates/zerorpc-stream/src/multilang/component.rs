//! A Rust spout or bolt as a multi-lang program (what Storm's ShellSpout or
//! ShellBolt runs): handshake, pid file, the command loop on stdin/stdout.
//!
//! - The serializer is taken from the first byte the worker sends: `{` (or
//!   white space) is JSON, a msgpack map marker is msgpack.
//! - Emits ask for the receiving task ids (`need_task_ids`, Storm's
//!   default) unless the environment variable
//!   `ZERORPC_STREAM_NEED_TASK_IDS` is `0`, `false` or `no`; asking costs a
//!   round trip per emit, so turn it off when the ids are not used.
//! - Heartbeat tuples are answered with `sync`; tick tuples go to
//!   [`Bolt::tick`]; the fields of input tuples come from the context's
//!   `source->stream->fields` when the worker sends it.
//! - Output is flushed whenever the program would wait for input, so a
//!   burst of tuples is answered in one write.
//! - Stdout carries only the protocol: logs go through `log` messages, and
//!   `run` moves the protocol to a descriptor of its own and points
//!   descriptor 1 at stderr, so a stray `println!` cannot corrupt it.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::Arc;

use super::codec::{Decoded, Decoder, Serializer};
use super::id::TupleId;
use super::protocol::{Emit, FromComponent, Handshake, InputTuple, ToComponent, WorkerWire};
use crate::component::{
    Bolt, BoltCollector, BoltSink, Spout, SpoutCollector, SpoutSink, SpoutWaker, TaskContext,
};
use crate::error::Error;
use crate::tuple::{MsgId, TaskId, Tuple, Value};

/// Why a multi-lang program stopped.
pub type RunError = Error;

/// Serves a bolt on stdin/stdout until the worker closes stdin.
pub fn run_bolt<B: Bolt>(bolt: B) -> Result<(), RunError> {
    serve_bolt(bolt, std::io::stdin().lock(), protocol_stdout()?)
}

/// Serves a spout on stdin/stdout until the worker closes stdin.
pub fn run_spout<S: Spout>(spout: S) -> Result<(), RunError> {
    serve_spout(spout, std::io::stdin().lock(), protocol_stdout()?)
}

/// The protocol's output: the process's stdout, moved to a descriptor of
/// its own; descriptor 1 then points at stderr, so a `println!` in a
/// component (or a library it calls) lands in the worker's logs instead
/// of corrupting the protocol (the pain streamparse's users report).
#[cfg(unix)]
fn protocol_stdout() -> Result<std::fs::File, Error> {
    use std::os::fd::FromRawFd;
    std::io::stdout()
        .flush()
        .map_err(|e| Error::io("flushing stdout", e))?;
    // SAFETY: dup and dup2 on the process's own standard descriptors; the
    // new descriptor is owned by the File from here on.
    unsafe {
        let fd = libc::dup(1);
        if fd < 0 {
            return Err(Error::io("dup(stdout)", std::io::Error::last_os_error()));
        }
        if libc::dup2(2, 1) < 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(Error::io("dup2(stderr, stdout)", e));
        }
        Ok(std::fs::File::from_raw_fd(fd))
    }
}

#[cfg(not(unix))]
fn protocol_stdout() -> Result<std::io::Stdout, Error> {
    Ok(std::io::stdout())
}

/// Serves a bolt (the common case): `zerorpc_stream::multilang::run(MyBolt)`.
pub fn run<B: Bolt>(bolt: B) -> Result<(), RunError> {
    run_bolt(bolt)
}

fn need_task_ids_from_env() -> bool {
    !matches!(
        std::env::var("ZERORPC_STREAM_NEED_TASK_IDS")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str(),
        "0" | "false" | "no"
    )
}

/// The worker connection: framing, a queue of messages read while waiting
/// for task ids, buffered output.
struct Conn<R, W: Write> {
    input: R,
    output: std::io::BufWriter<W>,
    decoder: Option<Decoder>,
    buf: Box<[u8]>,
    queued: VecDeque<ToComponent>,
    bytes: Vec<u8>,
    need_task_ids: bool,
    targets: Vec<TaskId>,
}

impl<R: Read, W: Write> Conn<R, W> {
    fn new(input: R, output: W) -> Conn<R, W> {
        Conn {
            input,
            output: std::io::BufWriter::with_capacity(64 * 1024, output),
            decoder: None,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            queued: VecDeque::new(),
            bytes: Vec::new(),
            need_task_ids: need_task_ids_from_env(),
            targets: Vec::new(),
        }
    }

    fn serializer(&self) -> Serializer {
        self.decoder
            .as_ref()
            .map(|d| d.serializer)
            .unwrap_or_default()
    }

    fn send(&mut self, msg: &FromComponent) -> Result<(), Error> {
        self.bytes.clear();
        msg.encode(self.serializer(), &mut self.bytes);
        self.output
            .write_all(&self.bytes)
            .map_err(|e| Error::io("writing to stdout", e))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.output
            .flush()
            .map_err(|e| Error::io("writing to stdout", e))
    }

    /// A message already decoded, without reading.
    fn ready(&mut self) -> Result<Option<ToComponent>, Error> {
        let Some(d) = self.decoder.as_mut() else {
            return Ok(None);
        };
        match d.next_decoded::<WorkerWire>()? {
            Some(Decoded::Message(w)) => Ok(Some(ToComponent::from_wire(w)?)),
            Some(Decoded::Stray(line)) => Err(Error::Protocol(format!(
                "the worker sent a line that is not protocol: {line:?}"
            ))),
            None => Ok(None),
        }
    }

    /// The next message from the worker; `None` when stdin closes. Flushes
    /// before it blocks.
    fn next(&mut self) -> Result<Option<ToComponent>, Error> {
        if let Some(m) = self.queued.pop_front() {
            return Ok(Some(m));
        }
        self.read_next()
    }

    fn read_next(&mut self) -> Result<Option<ToComponent>, Error> {
        loop {
            if let Some(m) = self.ready()? {
                return Ok(Some(m));
            }
            self.flush()?;
            let n = match self.input.read(&mut self.buf) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading stdin", e)),
            };
            let chunk = &self.buf[..n];
            let decoder = self.decoder.get_or_insert_with(|| {
                let first = chunk.iter().find(|b| !b.is_ascii_whitespace());
                let serializer = match first {
                    Some(0x80..=0x8f) | Some(0xde) | Some(0xdf) => Serializer::Msgpack,
                    _ => Serializer::Json,
                };
                Decoder::new(serializer)
            });
            decoder.feed(chunk);
        }
    }

    /// Waits for the task ids answering an emit, keeping other messages.
    fn task_ids(&mut self) -> Result<(), Error> {
        loop {
            match self.read_next()? {
                Some(ToComponent::TaskIds(ids)) => {
                    self.targets = ids;
                    return Ok(());
                }
                Some(other) => self.queued.push_back(other),
                None => {
                    return Err(Error::Protocol(
                        "stdin closed while waiting for task ids".into(),
                    ))
                }
            }
        }
    }

    /// Sends an emit; Storm answers task ids only for an emit that is not
    /// direct (a direct one went to its task).
    fn emit(&mut self, emit: Emit) -> Result<&[TaskId], Error> {
        let (need, direct) = (emit.need_task_ids, emit.task);
        self.send(&FromComponent::Emit(emit))?;
        match direct {
            Some(task) => {
                self.targets.clear();
                self.targets.push(task);
            }
            None if need => self.task_ids()?,
            None => self.targets.clear(),
        }
        Ok(&self.targets)
    }

    /// Reads the handshake, writes the pid file, answers the pid.
    fn handshake(&mut self) -> Result<(TaskContext, Handshake), Error> {
        let h = match self.next()? {
            Some(ToComponent::Handshake(h)) => h,
            Some(other) => {
                return Err(Error::Protocol(format!(
                    "expected the handshake, got {other:?}"
                )))
            }
            None => return Err(Error::Protocol("stdin closed before the handshake".into())),
        };
        let pid = std::process::id();
        let path = std::path::Path::new(&h.pid_dir).join(pid.to_string());
        std::fs::File::create(&path)
            .map_err(|e| Error::io(format!("pid file {}", path.display()), e))?;
        self.send(&FromComponent::Pid(pid))?;
        self.flush()?;
        Ok((context_of(&h), h))
    }

    fn log(&mut self, level: u8, msg: &str) -> Result<(), Error> {
        self.send(&FromComponent::Log {
            msg: msg.to_string(),
            level,
        })
    }
}

fn context_of(h: &Handshake) -> TaskContext {
    let task = h
        .context
        .get("taskid")
        .and_then(Value::as_i64)
        .and_then(|t| TaskId::try_from(t).ok())
        .unwrap_or(0);
    let component = h
        .context
        .get("componentid")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            h.context
                .get("task->component")
                .and_then(|m| m.get(task.to_string()))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    let mut component_tasks: Vec<TaskId> = h
        .context
        .get("task->component")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, c)| c.as_str() == Some(component.as_str()))
                .filter_map(|(t, _)| t.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if component_tasks.is_empty() {
        component_tasks.push(task);
    }
    component_tasks.sort_unstable();
    let topology = h
        .conf
        .get("topology.name")
        .and_then(Value::as_str)
        .or_else(|| h.context.get("stormid").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    TaskContext {
        topology,
        component,
        task,
        component_tasks,
        config: Arc::new(h.conf.clone()),
    }
}

/// A bolt's sink over the worker connection.
struct BoltConn<'a, R, W: Write> {
    conn: &'a mut Conn<R, W>,
    failed: Option<Error>,
}

impl<R: Read, W: Write> BoltConn<'_, R, W> {
    fn keep(&mut self, r: Result<(), Error>) {
        if let Err(e) = r {
            self.failed.get_or_insert(e);
        }
    }
}

fn anchor_ids(anchors: &[&Tuple]) -> Vec<TupleId> {
    anchors.iter().filter_map(|t| t.ml_id.clone()).collect()
}

impl<R: Read, W: Write> BoltSink for BoltConn<'_, R, W> {
    fn emit(
        &mut self,
        stream: &str,
        anchors: &[&Tuple],
        values: Vec<Value>,
        direct: Option<TaskId>,
    ) -> Result<&[TaskId], Error> {
        let emit = Emit {
            stream: (stream != crate::tuple::DEFAULT_STREAM).then(|| stream.to_string()),
            tuple: values,
            anchors: anchor_ids(anchors),
            id: None,
            task: direct,
            need_task_ids: self.conn.need_task_ids,
        };
        self.conn.emit(emit)
    }
    fn ack(&mut self, tuple: &Tuple) {
        if let Some(id) = &tuple.ml_id {
            let r = self.conn.send(&FromComponent::Ack(id.clone()));
            self.keep(r);
        }
    }
    fn fail(&mut self, tuple: &Tuple) {
        if let Some(id) = &tuple.ml_id {
            let r = self.conn.send(&FromComponent::Fail(id.clone()));
            self.keep(r);
        }
    }
    fn report_error(&mut self, message: &str) {
        let r = self.conn.send(&FromComponent::Error(message.to_string()));
        self.keep(r);
    }
    fn log(&mut self, level: u8, message: &str) {
        let r = self.conn.log(level, message);
        self.keep(r);
    }
}

/// A source stream's names, shared by its tuples.
struct Source {
    component: Arc<str>,
    stream: Arc<str>,
    fields: Arc<[String]>,
}

/// Input fields per (source component, stream), from the context.
fn fields_of(ctx: &Handshake, comp: &str, stream: &str) -> Option<Vec<String>> {
    let f = ctx
        .context
        .get("source->stream->fields")?
        .get(comp)?
        .get(stream)?;
    f.as_array().map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

/// Serves a bolt over any reader and writer (what [`run_bolt`] does on
/// stdin/stdout).
pub fn serve_bolt<B: Bolt>(mut bolt: B, input: impl Read, output: impl Write) -> Result<(), Error> {
    let mut conn = Conn::new(input, output);
    let (ctx, handshake) = conn.handshake()?;
    bolt.prepare(&ctx).map_err(|source| Error::Component {
        component: ctx.component.clone(),
        source,
    })?;
    let auto_ack = bolt.auto_ack();
    // Per (source, stream): the shared names a tuple carries.
    let mut streams: Vec<Source> = Vec::new();
    while let Some(msg) = conn.next()? {
        let t: InputTuple = match msg {
            ToComponent::Tuple(t) => t,
            ToComponent::TaskIds(_) => continue,
            other => {
                return Err(Error::Protocol(format!(
                    "a bolt got {other:?}, which is for spouts"
                )))
            }
        };
        if t.task == -1 && t.stream == "__heartbeat" {
            conn.send(&FromComponent::Sync)?;
            continue;
        }
        let i = match streams
            .iter()
            .position(|s| *s.component == t.comp && *s.stream == t.stream)
        {
            Some(i) => i,
            None => {
                streams.push(Source {
                    fields: fields_of(&handshake, &t.comp, &t.stream)
                        .unwrap_or_default()
                        .into(),
                    component: t.comp.as_str().into(),
                    stream: t.stream.as_str().into(),
                });
                streams.len() - 1
            }
        };
        let source = &streams[i];
        let tuple = Tuple {
            ack_val: Default::default(),
            done: Default::default(),
            ml_id: Some(t.id),
            anchors: Default::default(),
            component: source.component.clone(),
            stream: source.stream.clone(),
            task: t.task,
            fields: source.fields.clone(),
            values: t.tuple,
        };
        let mut sink = BoltConn {
            conn: &mut conn,
            failed: None,
        };
        let tick = tuple.is_tick();
        let result = {
            let mut out = BoltCollector::new(&mut sink);
            if tick {
                bolt.tick(&mut out)
            } else {
                bolt.process(&tuple, &mut out)
            }
        };
        match result {
            Ok(()) if auto_ack && !tick => sink.ack(&tuple),
            Ok(()) => {}
            Err(e) => {
                sink.report_error(&e.to_string());
                if auto_ack && !tick {
                    sink.fail(&tuple);
                }
            }
        }
        if let Some(e) = sink.failed {
            return Err(e);
        }
    }
    conn.flush()?;
    bolt.cleanup();
    Ok(())
}

/// A spout's sink over the worker connection.
struct SpoutConn<'a, R, W: Write> {
    conn: &'a mut Conn<R, W>,
    failed: Option<Error>,
}

impl<R: Read, W: Write> SpoutSink for SpoutConn<'_, R, W> {
    fn emit(
        &mut self,
        stream: &str,
        values: Vec<Value>,
        msg_id: Option<MsgId>,
        direct: Option<TaskId>,
    ) -> Result<&[TaskId], Error> {
        let emit = Emit {
            stream: (stream != crate::tuple::DEFAULT_STREAM).then(|| stream.to_string()),
            tuple: values,
            anchors: Vec::new(),
            id: msg_id,
            task: direct,
            need_task_ids: self.conn.need_task_ids,
        };
        self.conn.emit(emit)
    }
    fn report_error(&mut self, message: &str) {
        if let Err(e) = self.conn.send(&FromComponent::Error(message.to_string())) {
            self.failed.get_or_insert(e);
        }
    }
    fn log(&mut self, level: u8, message: &str) {
        if let Err(e) = self.conn.log(level, message) {
            self.failed.get_or_insert(e);
        }
    }
}

/// Serves a spout over any reader and writer (what [`run_spout`] does on
/// stdin/stdout).
pub fn serve_spout<S: Spout>(
    mut spout: S,
    input: impl Read,
    output: impl Write,
) -> Result<(), Error> {
    let mut conn = Conn::new(input, output);
    let (ctx, _) = conn.handshake()?;
    spout
        .open(&ctx, SpoutWaker::default())
        .map_err(|source| Error::Component {
            component: ctx.component.clone(),
            source,
        })?;
    while let Some(msg) = conn.next()? {
        let mut sink = SpoutConn {
            conn: &mut conn,
            failed: None,
        };
        let result = {
            let mut out = SpoutCollector::new(&mut sink);
            match msg {
                ToComponent::Next => spout.next_tuple(&mut out),
                ToComponent::Ack(id) => spout.ack(id, &mut out),
                ToComponent::Fail(id) => spout.fail(id, &mut out),
                ToComponent::Activate => {
                    spout.activate();
                    Ok(())
                }
                ToComponent::Deactivate => {
                    spout.deactivate();
                    Ok(())
                }
                ToComponent::TaskIds(_) => continue,
                other => {
                    return Err(Error::Protocol(format!(
                        "a spout got {other:?}, which is for bolts"
                    )))
                }
            }
        };
        if let Err(e) = result {
            sink.report_error(&e.to_string());
        }
        if let Some(e) = sink.failed {
            return Err(e);
        }
        conn.send(&FromComponent::Sync)?;
    }
    conn.flush()?;
    spout.close();
    Ok(())
}
