//! The local runner: runs a [`Topology`] in this process, no JVM.
//!
//! Every Rust component instance is a tokio task and every shell component
//! instance a subprocess driven by a task; bounded queues between tasks
//! give back-pressure; the XOR acker tracks every spout tree with
//! `topology.message.timeout.secs` and `topology.max.spout.pending`, and
//! failed or timed-out trees go back to their spout's `fail`.
//!
//! Task I/O contract (what `shell.rs` and the Rust executors share): a bolt
//! task reads tuples from [`BoltIo::recv`], hands emits/acks/fails to its
//! [`BoltIo::sink`] (a [`crate::BoltSink`]: routing happens at emit, so task
//! ids are known at once) and calls [`BoltIo::flush`] after each input or
//! batch to push what it produced downstream (waiting for queue room: this
//! is the back-pressure). A spout task asks [`SpoutIo::may_emit`] whether
//! `max.spout.pending` and activation allow a `next_tuple`, gets acks and
//! fails of its trees from [`SpoutIo::recv_control`], emits through
//! [`SpoutIo::sink`] and flushes the same way.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::component::{BoltSink, SpoutSink};
use crate::error::Error;
use crate::stats::RunStats;
use crate::topology::{Registry, Topology};
use crate::tuple::{MsgId, Tuple};

mod shell;

/// How a run is bounded and reported.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop once no tuple has moved and no tree has been pending for this
    /// long.
    pub stop_when_idle: Option<Duration>,
    /// Write the statistics as JSON here every `stats_every` and at the end.
    pub stats_json: Option<PathBuf>,
    /// How often statistics are refreshed (terminal and file).
    pub stats_every: Duration,
    /// Print a statistics table to stderr every `stats_every`.
    pub terminal: bool,
    /// Where component logs go, one file per component
    /// (`<dir>/<component>.log`, what `zerorpc stream tail` reads); logs
    /// also go to `tracing`.
    pub log_dir: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            duration: None,
            stop_when_idle: None,
            stats_json: None,
            stats_every: Duration::from_secs(2),
            terminal: false,
            log_dir: None,
        }
    }
}

/// Runs a topology until `options` say stop (or it is stopped), and
/// returns its final statistics.
pub async fn run(
    _topology: Topology,
    _registry: &Registry,
    _options: RunOptions,
) -> Result<RunStats, Error> {
    todo!("runner helper")
}

/// A bolt task's I/O (see the module doc).
pub(crate) struct BoltIo {}

impl BoltIo {
    /// The next input tuple; `None` when the topology stops.
    pub(crate) async fn recv(&mut self) -> Option<Tuple> {
        todo!()
    }
    /// Where emits, acks and fails go.
    pub(crate) fn sink(&mut self) -> &mut dyn BoltSink {
        todo!()
    }
    /// Pushes produced tuples and acker updates downstream.
    pub(crate) async fn flush(&mut self) {
        todo!()
    }
    /// Records that a tuple was processed in `latency` (statistics).
    pub(crate) fn executed(&mut self, _latency: Duration) {
        todo!()
    }
}

/// What a spout task hears back about its trees.
#[derive(Debug)]
pub(crate) enum SpoutControl {
    Ack(MsgId),
    Fail(MsgId),
}

/// A spout task's I/O (see the module doc).
pub(crate) struct SpoutIo {}

impl SpoutIo {
    /// Whether a `next_tuple` may be called now (active, under
    /// `max.spout.pending`).
    pub(crate) fn may_emit(&self) -> bool {
        todo!()
    }
    /// The next ack/fail, waiting until `deadline`; `Err(())` when the
    /// topology stops.
    pub(crate) async fn recv_control(
        &mut self,
        _deadline: Instant,
    ) -> Result<Option<SpoutControl>, ()> {
        todo!()
    }
    /// Where emits go.
    pub(crate) fn sink(&mut self) -> &mut dyn SpoutSink {
        todo!()
    }
    /// Pushes produced tuples and acker updates downstream.
    pub(crate) async fn flush(&mut self) {
        todo!()
    }
}
