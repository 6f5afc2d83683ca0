//! A task's I/O, shared by Rust executors and shell (multi-lang) tasks:
//! [`BoltIo`] and [`SpoutIo`] (see the runner's module doc).

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};

use super::emitter::{Batch, Emitter, FLUSH_AT};
use crate::acker::TreeEnd;
use crate::component::{BoltSink, SpoutSink};
use crate::tuple::{MsgId, Tuple, Value};

/// Where a run is: spouts emit while `Running`; `Draining` stops new
/// trees and lets pending ones finish; `Halt` stops every task now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    Draining,
    Halt,
}

/// A bolt task's I/O.
pub(crate) struct BoltIo {
    rx: mpsc::Receiver<Batch>,
    batch: std::vec::IntoIter<Tuple>,
    emitter: Emitter,
    tick: Option<tokio::time::Interval>,
    phase: watch::Receiver<Phase>,
}

impl BoltIo {
    pub(crate) fn new(
        rx: mpsc::Receiver<Batch>,
        emitter: Emitter,
        tick_secs: Option<f64>,
        phase: watch::Receiver<Phase>,
    ) -> BoltIo {
        let tick = tick_secs.filter(|s| *s > 0.0).map(|s| {
            let period = Duration::from_secs_f64(s);
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        BoltIo {
            rx,
            batch: Vec::new().into_iter(),
            emitter,
            tick,
            phase,
        }
    }

    /// The component's log.
    pub(crate) fn component_log(&self) -> super::logs::ComponentLog {
        self.emitter.log.clone()
    }

    /// The next input tuple (tick tuples included); `None` when the
    /// topology stops. Flushes what the task produced before it waits.
    pub(crate) async fn recv(&mut self) -> Option<Tuple> {
        loop {
            if let Some(t) = self.batch.next() {
                if self.emitter.buffered >= FLUSH_AT {
                    self.emitter.flush().await;
                }
                return Some(t);
            }
            self.emitter.flush().await;
            if *self.phase.borrow() == Phase::Halt {
                return None;
            }
            let BoltIo {
                rx,
                tick,
                phase,
                emitter,
                batch,
            } = self;
            let tick = async {
                match tick {
                    Some(i) => i.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                b = rx.recv() => match b {
                    Some(b) => {
                        emitter.counters.pending.fetch_sub(b.len() as i64, Relaxed);
                        *batch = b.into_iter();
                    }
                    None => return None,
                },
                _ = tick => return Some(Tuple::new("__system", "__tick", -1, &["tick"], vec![Value::from(0)])),
                _ = phase.wait_for(|p| *p == Phase::Halt) => return None,
            }
        }
    }

    /// A tuple of the batch at hand, without waiting (no ticks).
    pub(crate) fn try_recv(&mut self) -> Option<Tuple> {
        self.batch.next()
    }

    /// Where emits, acks and fails go.
    pub(crate) fn sink(&mut self) -> &mut dyn BoltSink {
        &mut self.emitter
    }

    /// Pushes produced tuples and acker updates downstream.
    pub(crate) async fn flush(&mut self) {
        self.emitter.flush().await
    }

    /// Records that a tuple was processed in `latency` (statistics).
    pub(crate) fn executed(&mut self, latency: Option<Duration>) {
        let c = &self.emitter.counters;
        c.executed.fetch_add(1, Relaxed);
        if let Some(l) = latency {
            c.latency.record(l);
        }
    }

    /// Counts a restart of the component (statistics).
    pub(crate) fn restarted(&mut self) {
        self.emitter.counters.restarts.fetch_add(1, Relaxed);
    }
}

/// What a spout task hears back about its trees.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SpoutControl {
    Ack(MsgId),
    Fail(MsgId),
}

/// A spout task's I/O.
pub(crate) struct SpoutIo {
    emitter: Emitter,
    control: Option<mpsc::UnboundedReceiver<Vec<(u64, TreeEnd)>>>,
    queued: VecDeque<(u64, TreeEnd)>,
    max_pending: Option<usize>,
    phase: watch::Receiver<Phase>,
    pub(crate) waker: Arc<Notify>,
}

impl SpoutIo {
    pub(crate) fn new(
        emitter: Emitter,
        control: Option<mpsc::UnboundedReceiver<Vec<(u64, TreeEnd)>>>,
        max_pending: Option<usize>,
        phase: watch::Receiver<Phase>,
    ) -> SpoutIo {
        SpoutIo {
            emitter,
            control,
            queued: VecDeque::new(),
            max_pending,
            phase,
            waker: Arc::new(Notify::new()),
        }
    }

    /// The component's log.
    pub(crate) fn component_log(&self) -> super::logs::ComponentLog {
        self.emitter.log.clone()
    }

    /// Whether a `next_tuple` may be called now (running, under
    /// `max.spout.pending`).
    pub(crate) fn may_emit(&self) -> bool {
        *self.phase.borrow() == Phase::Running
            && self
                .max_pending
                .is_none_or(|m| self.emitter.trees.len() < m)
    }

    /// Tuples emitted so far (to tell whether `next_tuple` emitted).
    pub(crate) fn emitted(&self) -> u64 {
        self.emitter.counters.emitted.load(Relaxed)
    }

    /// An ack or fail that is already here, without waiting.
    pub(crate) fn try_control(&mut self) -> Option<SpoutControl> {
        loop {
            let (root, end) = match self.emitter.immediate.pop_front() {
                Some(x) => x,
                None => match self.queued.pop_front() {
                    Some(x) => x,
                    None => {
                        let batch = self.control.as_mut()?.try_recv().ok()?;
                        self.queued.extend(batch);
                        continue;
                    }
                },
            };
            if let Some(msg_id) = self.emitter.tree_ended(root, end) {
                return Some(match end {
                    TreeEnd::Acked => SpoutControl::Ack(msg_id),
                    TreeEnd::Failed | TreeEnd::TimedOut => SpoutControl::Fail(msg_id),
                });
            }
        }
    }

    /// The next ack/fail, waiting until `deadline` (or a wake-up of the
    /// spout's waker): `Ok(None)` then. `Err(())` when the spout must stop:
    /// the run halts, or it drains and this spout has no tree in flight.
    pub(crate) async fn recv_control(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<SpoutControl>, ()> {
        loop {
            if let Some(c) = self.try_control() {
                return Ok(Some(c));
            }
            let phase = *self.phase.borrow();
            if phase == Phase::Halt || (phase == Phase::Draining && self.emitter.trees.is_empty()) {
                return Err(());
            }
            let SpoutIo {
                control,
                queued,
                phase,
                waker,
                ..
            } = self;
            let control = async {
                match control {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                b = control => match b {
                    Some(b) => queued.extend(b),
                    // The acker is gone: only a halting run does that.
                    None => return Err(()),
                },
                r = phase.changed() => if r.is_err() { return Err(()) },
                _ = waker.notified() => return Ok(None),
                _ = tokio::time::sleep_until(deadline.into()) => return Ok(None),
            }
        }
    }

    /// Where emits go.
    pub(crate) fn sink(&mut self) -> &mut dyn SpoutSink {
        &mut self.emitter
    }

    /// Pushes produced tuples and acker updates downstream.
    pub(crate) async fn flush(&mut self) {
        self.emitter.flush().await
    }

    /// Counts a restart of the component (statistics).
    pub(crate) fn restarted(&mut self) {
        self.emitter.counters.restarts.fetch_add(1, Relaxed);
    }

    /// Logs a line as the component.
    pub(crate) fn log(&mut self, level: u8, message: &str) {
        SpoutSink::log(&mut self.emitter, level, message)
    }
}
