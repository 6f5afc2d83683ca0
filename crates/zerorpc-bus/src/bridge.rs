//! Bridges: every message of one bus onto another, at least once, and
//! never round in a loop.
//!
//! A bridge reads its source with manual acknowledgements (a broker's
//! shared queue or durable consumer, so a restarted bridge loses nothing)
//! and acknowledges a message only once the target has confirmed it; a
//! failed forward is handed back to the source broker (requeued) or, from
//! the daemon, tried again. The `msg_id` is kept on every bus.
//!
//! Loops are prevented twice over:
//! * a message carries the buses it has been on (`via`, in AMQP and NATS
//!   headers): a bridge never sends a message to a bus it has been on;
//! * a two-way bridge ([`run_both`]) remembers the `msg_id`s it forwarded
//!   and drops their echo from the other side: what covers ZeroMQ, whose
//!   fedmsg envelope has no room for headers.
//!
//! (Two separate one-way bridges between the daemon and a broker therefore
//! echo a message once onto the broker; run one two-way bridge instead.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;

use crate::publisher::Publisher;
use crate::subscriber::{Delivery, Event, Seen, Subscription};
use crate::transport::Settlement;
use crate::Error;

/// Counters of a bridge (one direction).
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Messages the target confirmed.
    pub forwarded: AtomicU64,
    /// Messages not forwarded because they had been on the target already.
    pub looped: AtomicU64,
    /// Quarantined messages (not forwarded).
    pub quarantined: AtomicU64,
    /// Forwards that failed (and were handed back or tried again).
    pub failed: AtomicU64,
}

/// One side of a bridge: a subscription and the bus's name (`zmq`, `amqp`,
/// `nats`, or any name the two sides agree on).
pub struct Side {
    /// The bus's name, as carried in `via`.
    pub name: String,
    /// Reading from it (with manual acknowledgements, for brokers).
    pub subscription: Subscription,
    /// Publishing to it.
    pub publisher: Publisher,
}

/// The `msg_id`s a bridge forwarded (shared by both directions).
#[derive(Default)]
pub struct Memory(Mutex<Seen>);

impl Memory {
    fn with<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut seen)
    }
}

/// Forwards, with at most `window` messages on their way, every message of
/// `from` to `to` until `from` ends.
pub async fn run(
    from: Subscription,
    from_name: &str,
    to: &Publisher,
    to_name: &str,
    memory: &Memory,
    stats: &BridgeStats,
    window: usize,
) -> Result<(), Error> {
    let mut from = from;
    let mut in_flight = FuturesUnordered::new();
    let window = window.max(1);
    loop {
        tokio::select! {
            event = from.recv(), if in_flight.len() < window => {
                let Some(event) = event else { break };
                let d = match event {
                    Event::Message(d) => d,
                    Event::Quarantined { reason, .. } => {
                        stats.quarantined.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(from = from_name, "bridge: not forwarding a quarantined message: {reason}");
                        continue;
                    }
                };
                let echo = d.via.iter().any(|v| v == to_name)
                    || !memory.with(|m| m.insert(&d.message.msg_id));
                if echo {
                    stats.looped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(msg_id = %d.message.msg_id, from = from_name, to = to_name, "bridge: been there already");
                    settle(&d, Settlement::Ack).await;
                    continue;
                }
                in_flight.push(forward(d, from_name, to, memory, stats));
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
        }
    }
    while in_flight.next().await.is_some() {}
    Ok(())
}

/// A two-way bridge: `a` → `b` and `b` → `a` at once, sharing the memory
/// of what was forwarded (see the module docs). Ends when either side's
/// subscription ends.
pub async fn run_both(
    a: Side,
    b: Side,
    window: usize,
) -> Result<(Arc<BridgeStats>, Arc<BridgeStats>), Error> {
    let memory = Memory::default();
    let (ab, ba) = (
        Arc::new(BridgeStats::default()),
        Arc::new(BridgeStats::default()),
    );
    tokio::select! {
        r = run(a.subscription, &a.name, &b.publisher, &b.name, &memory, &ab, window) => r?,
        r = run(b.subscription, &b.name, &a.publisher, &a.name, &memory, &ba, window) => r?,
    }
    Ok((ab, ba))
}

/// Sends `d` on; acknowledges it at the source once confirmed.
async fn forward(
    d: Delivery,
    from_name: &str,
    to: &Publisher,
    memory: &Memory,
    stats: &BridgeStats,
) {
    let mut via = d.via.clone();
    via.push(from_name.to_owned());
    let mut backoff = Duration::from_millis(100);
    loop {
        match to.send_via(&d.message, via.clone()).await {
            Ok(_) => {
                stats.forwarded.fetch_add(1, Ordering::Relaxed);
                settle(&d, Settlement::Ack).await;
                return;
            }
            Err(e) if permanent(&e) => {
                // Sending it again would fail again: say so and go on (a
                // broker source dead-letters it where its queue says).
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(msg_id = %d.message.msg_id, "bridge: the target refuses the message: {e}");
                settle(&d, Settlement::Reject).await;
                return;
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(msg_id = %d.message.msg_id, "bridge: forwarding failed: {e}");
                if d.ack.is_some() {
                    // The source broker hands it over again later.
                    memory.with(|m| m.forget(&d.message.msg_id));
                    settle(&d, Settlement::Requeue(backoff)).await;
                    return;
                }
                // From the daemon: nothing to hand it back to; try again.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// An error that sending the same message again would meet again.
fn permanent(e: &Error) -> bool {
    matches!(
        e,
        Error::Rejected { .. } | Error::Unroutable { .. } | Error::Schema(_) | Error::Message(_)
    )
}

async fn settle(d: &Delivery, how: Settlement) {
    if let Some(ack) = &d.ack {
        if let Err(e) = ack.settle(how).await {
            tracing::warn!(msg_id = %d.message.msg_id, "bridge: settling at the source: {e}");
        }
    }
}
