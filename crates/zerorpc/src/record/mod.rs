//! Call records: one per call side (client and server), with the trace
//! and span ids that link them into a tree, sent in batches to a sink
//! without ever blocking a call.
//!
//! A [`Recorder`] holds a bounded queue: `record` never waits, and a full
//! queue (or a failing sink) drops records and counts them
//! ([`Recorder::dropped`]). A background task takes batches and hands
//! them to a [`TraceSink`]. [`EmbeddedStore`] is the sink that needs
//! nothing else: per-trace lists that expire after a TTL, per-method
//! counters and latency samples, kept in memory.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::hex::hex;
use crate::trace::TraceContext;

/// Which end of the call a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// The caller.
    Client,
    /// The callee.
    Server,
}

/// How a call ended, seen from one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A reply.
    Ok,
    /// A remote error (or an error raised by the handler).
    Err {
        /// Error name (`ValueError`, ...).
        name: String,
        /// Its message.
        message: String,
    },
    /// A stream that ended normally after `items` items.
    Stream {
        /// Items sent or received.
        items: u64,
    },
    /// The other side went silent, or its connection dropped.
    Lost,
    /// No reply within the timeout.
    Timeout,
    /// Abandoned (the caller dropped the call, the server stopped).
    Cancelled,
}

impl Outcome {
    /// The outcome of a call that failed with `e`.
    pub(crate) fn failed(e: &crate::CallError) -> Outcome {
        Outcome::Err {
            name: e.name.clone(),
            message: e.message.clone(),
        }
    }

    /// A short label for counters: `OK`, `ERR`, `STREAM`, `LOST`,
    /// `TIMEOUT`, `CANCELLED`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "OK",
            Outcome::Err { .. } => "ERR",
            Outcome::Stream { .. } => "STREAM",
            Outcome::Lost => "LOST",
            Outcome::Timeout => "TIMEOUT",
            Outcome::Cancelled => "CANCELLED",
        }
    }
}

impl std::fmt::Display for Outcome {
    /// `OK`, `ERR name: message`, `STREAM n items`, `LOST`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Err { name, message } => write!(f, "ERR {name}: {message}"),
            Outcome::Stream { items } => write!(f, "STREAM {items} items"),
            other => f.write_str(other.label()),
        }
    }
}

/// One side of one call. (The names a process repeats in every record
/// are shared `Arc<str>`s: a record is built without copying them.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The span this one was started from (for a server side: the
    /// client's span; for a call made inside a handler: that handler's).
    pub parent_id: Option<String>,
    /// Client or server.
    pub side: Side,
    /// The service (server side: its name; client side: the endpoint).
    pub service: Arc<str>,
    /// The method called.
    pub method: String,
    /// The other end (client side: the endpoint; server side: the
    /// caller's routing id).
    pub peer: Arc<str>,
    /// This process (`name[pid]`).
    pub process: Arc<str>,
    /// This host.
    pub host: Arc<str>,
    /// Start, microseconds since the Unix epoch.
    pub start_us: u64,
    /// Duration in microseconds.
    pub duration_us: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Server side: the caller's authenticated user id (CURVE), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Client side, when the client records payloads
    /// ([`crate::ClientOptions::record_payloads`]): the call's arguments
    /// and result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<Payload>>,
    /// A failed call's remote traceback (either side), when there was one
    /// (at most [`MAX_TRACEBACK`] bytes, the end kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// The longest traceback a record keeps (its last lines: where it failed).
pub const MAX_TRACEBACK: usize = 8 * 1024;

/// A call's arguments and result (`None` for a call that failed), as a
/// client that records payloads saw them: what `zerorpc contract record`
/// turns into a contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The arguments, by position.
    pub args: Vec<rmpv::Value>,
    /// The result (a stream's items collected), if the call succeeded.
    pub result: Option<rmpv::Value>,
}

impl Payload {
    /// Most encoded bytes the arguments, and the result, may each have to
    /// be recorded (a bigger call is recorded without its payload).
    pub const MAX_BYTES: usize = 64 * 1024;

    /// The bytes `v` takes encoded.
    pub fn size_of(v: &rmpv::Value) -> usize {
        let mut n = Counter(0);
        let _ = rmpv::encode::write_value(&mut n, v);
        n.0
    }

    /// The payload, unless its arguments or result are too big to keep.
    pub fn capped(args: Vec<rmpv::Value>, result: Option<rmpv::Value>) -> Option<Box<Payload>> {
        let size = Payload::size_of;
        let args_size: usize = args.iter().map(size).sum();
        if args_size > Self::MAX_BYTES || result.as_ref().map_or(0, size) > Self::MAX_BYTES {
            return None;
        }
        Some(Box::new(Payload { args, result }))
    }
}

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The other end of a span, as cheap to keep as possible (turned into
/// text off the call path).
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    /// A client's endpoint (shared by its calls).
    Endpoint(Arc<str>),
    /// A server's caller: its routing id.
    RoutingId(bytes::Bytes),
}

/// A span being timed; becomes a [`Record`] when it ends. Holds no text
/// it does not need: ids stay binary and names shared until the
/// recorder's task builds the record. Boxed from its start: when it ends,
/// its box is what the recorder's queue takes, so its ~270 bytes are not
/// copied on their way (into the queue, out of it, into the store).
#[derive(Debug)]
pub(crate) struct Span(Box<Finished>);

/// A span's fields: its duration and outcome are set when it ends, and
/// it goes to the recorder's task as it is.
#[derive(Debug)]
struct Finished {
    ctx: TraceContext,
    side: Side,
    service: Arc<str>,
    /// (shared: a server's are its methods' names, made once)
    method: Arc<str>,
    peer: Peer,
    /// (its wall-clock time is worked out when the record is built, from
    /// the clocks read then: one clock read less per call)
    start: Instant,
    user: Option<Arc<str>>,
    payload: Option<Box<Payload>>,
    traceback: Option<String>,
    duration: Duration,
    outcome: Outcome,
}

impl Span {
    /// A span that started at `at`.
    pub fn started(
        ctx: TraceContext,
        side: Side,
        service: Arc<str>,
        method: Arc<str>,
        peer: Peer,
        at: Instant,
    ) -> Self {
        Span(Box::new(Finished {
            ctx,
            side,
            service,
            method,
            peer,
            start: at,
            user: None,
            payload: None,
            traceback: None,
            duration: Duration::ZERO,
            outcome: Outcome::Cancelled,
        }))
    }

    /// The method called.
    pub fn method(&self) -> &str {
        &self.0.method
    }

    /// A failed call's traceback (an empty one is none; a long one keeps
    /// its end).
    pub fn set_traceback(&mut self, tb: &str) {
        if tb.trim().is_empty() {
            return;
        }
        let mut start = tb.len().saturating_sub(MAX_TRACEBACK);
        while !tb.is_char_boundary(start) {
            start += 1;
        }
        self.0.traceback = Some(tb[start..].to_owned());
    }

    /// The call's arguments and result (client side, when recorded).
    pub fn set_payload(&mut self, payload: Option<Box<Payload>>) {
        self.0.payload = payload;
    }

    /// The caller's authenticated user (server side).
    pub fn set_user(&mut self, user: Option<Arc<str>>) {
        self.0.user = user;
    }

    /// The span, ended after `duration` with `outcome`.
    fn ended(self, outcome: Outcome, duration: Duration) -> Box<Finished> {
        let mut f = self.0;
        f.duration = duration;
        f.outcome = outcome;
        f
    }

    /// Finishes a span that ended at `ended` (recorded later).
    pub fn finish_at(self, recorder: &Recorder, outcome: Outcome, ended: Instant) {
        let duration = ended.saturating_duration_since(self.0.start);
        recorder.push(self.ended(outcome, duration));
    }
}

impl Peer {
    /// As a record shows it: the endpoint, or the routing id in hex.
    fn into_text(self) -> Arc<str> {
        match self {
            Peer::Endpoint(e) => e,
            Peer::RoutingId(id) => hex(&id).into(),
        }
    }
}

/// The two clocks, read at one moment: a batch of spans' starts are put
/// in wall-clock time from them (the wall clock's reading made µs once).
#[derive(Clone, Copy, Debug)]
struct Clocks {
    mono: Instant,
    /// µs since the Unix epoch (0 for a clock set before it).
    wall_us: u64,
}

impl Clocks {
    fn at(wall: SystemTime, mono: Instant) -> Clocks {
        let wall_us = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Clocks { mono, wall_us }
    }

    fn now() -> Clocks {
        Clocks::at(SystemTime::now(), Instant::now())
    }
}

impl Finished {
    /// When it started, in µs since the Unix epoch, from `clocks`.
    fn start_us(&self, clocks: Clocks) -> u64 {
        let start = self.start;
        match clocks.mono.checked_duration_since(start) {
            Some(ago) => clocks.wall_us.saturating_sub(ago.as_micros() as u64),
            None => clocks
                .wall_us
                .saturating_add(start.duration_since(clocks.mono).as_micros() as u64),
        }
    }

    /// The record, with its start in wall-clock time from `clocks`.
    fn into_record(self: Box<Self>, process: &Arc<str>, host: &Arc<str>, clocks: Clocks) -> Record {
        let start_us = self.start_us(clocks);
        // (the fields move out of the box one by one: no copy of it all)
        let s = self;
        Record {
            trace_id: s.ctx.trace_id_hex(),
            span_id: s.ctx.span_id_hex(),
            parent_id: s.ctx.parent_id.map(|p| hex(&p)),
            side: s.side,
            service: s.service,
            method: s.method.to_string(),
            peer: s.peer.into_text(),
            process: process.clone(),
            host: host.clone(),
            start_us,
            duration_us: s.duration.as_micros() as u64,
            outcome: s.outcome,
            user: s.user.map(|u| u.to_string()),
            payload: s.payload,
            traceback: s.traceback,
        }
    }
}

mod arena;
mod kept;
mod recorder;
mod render;
mod stats;
mod store;

pub use recorder::{Recorder, TraceSink};
pub use render::{render_line, render_top, render_tree};
pub use stats::{
    rows, side_label, slot_of, Histogram, KeyLimits, MethodKeys, MethodRow, MethodStats, OTHER,
    SLOTS_KEPT, SLOT_SECS, UNKNOWN_METHOD,
};
pub use store::{EmbeddedStore, TraceStore};

#[cfg(test)]
mod tests;
