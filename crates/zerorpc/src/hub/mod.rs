//! A channel-aware load-balancing hub (dotCloud's unpublished `zerohub`,
//! `type: queue`, done better).
//!
//! Clients connect their DEALER to the hub's `in` side (a ROUTER) as if it
//! were a server. Workers are ordinary servers that *connect* their ROUTER
//! to the hub's `out` side (also a ROUTER, so the hub can address one
//! worker). Unlike a plain ZeroMQ queue device, which round-robins each
//! message, the hub keeps every event of a channel (heartbeats, credit,
//! stream items) on one worker, and:
//!
//! * sends a new channel to the live worker with the fewest calls in
//!   flight, within what that worker's send queue takes: a call its queue
//!   refuses goes back to the waiting line (it is not in flight), and the
//!   worker gets more once its queue has room again;
//! * holds new calls while no worker can take them (heart-beating to their
//!   clients so they wait, up to their own timeout), and hands them out as
//!   workers join or make room; a waiting call whose caller stops
//!   heart-beating for three intervals expires like any channel, and no
//!   more than `max_pending` wait (the excess is answered `ERR
//!   HubOverloaded`);
//! * pings idle workers (`_zerorpc_ping`), declares a worker silent for two
//!   heartbeat intervals lost, and answers the callers of its in-flight
//!   calls with `ERR LostRemote` at once (as it does when its connection
//!   drops);
//! * answers `_zerorpc_hub_stats` itself (workers, in-flight, calls/s).
//!
//! The routing logic is sans-IO ([`HubCore`], driven by an explicit `now`);
//! [`Hub`] is the thin tokio driver.

mod driver;
mod routing;
#[cfg(test)]
mod tests;

pub use driver::Hub;
pub use routing::HubCore;

use foldhash::HashMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rmpv::Value;
use tokio_util::sync::CancellationToken;
use zmtp::{Endpoint, Message, RouterSocket, SocketEvent, SocketOptions, TrySendError};

use crate::error::CallError;
use crate::error::Error;
use crate::event::{DecodeLimits, Event, EventKind, MessageId};
use crate::hex::hex;

/// The method a hub answers itself with its statistics.
pub const HUB_STATS: &str = "_zerorpc_hub_stats";

/// Hub settings.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Heartbeat interval of the clients and workers (ZeroRPC's default is
    /// 5 s): the hub pings a worker it has not heard from for this long,
    /// and drops it after two.
    pub heartbeat: Duration,
    /// New calls held while no worker is available (or every worker's send
    /// queue is full); beyond this they are refused with `ERR
    /// HubOverloaded`, counted in [`HubStats::overloaded`]. Calls a full
    /// worker's queue handed back rejoin the head of the line even when it
    /// is at this limit (they were admitted already).
    pub max_pending: usize,
    /// Transport settings of both sides. The default queues up to 100,000
    /// messages per peer (libzmq's 1,000 would refuse a round of
    /// heartbeats to one client with thousands of calls waiting), still
    /// bounded by 16 MiB per peer ([`SocketOptions::send_hwm_bytes`]).
    pub socket: SocketOptions,
    /// Limits on incoming events.
    pub decode_limits: DecodeLimits,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            heartbeat: Duration::from_secs(5),
            max_pending: 10_000,
            socket: SocketOptions {
                send_hwm: 100_000,
                ..SocketOptions::default()
            },
            decode_limits: DecodeLimits::default(),
        }
    }
}

/// What the hub core asks its driver to send.
#[derive(Debug, Clone, PartialEq)]
pub enum HubOutput {
    /// To the `in` side: `[client routing id, ..., payload]`.
    ToClient(Message),
    /// To the `out` side: `[worker routing id, ..., payload]`.
    ToWorker(Message),
}

/// Statistics of a hub.
#[derive(Debug, Clone, PartialEq)]
pub struct HubStats {
    /// Per worker (routing id, hex): calls in flight, calls served, alive.
    pub workers: Vec<(String, usize, u64, bool)>,
    /// Calls in flight over all workers.
    pub in_flight: usize,
    /// Calls waiting for a worker.
    pub pending: usize,
    /// Calls completed since the start.
    pub completed: u64,
    /// Calls a worker loss or overload failed.
    pub failed: u64,
    /// Calls refused with `HubOverloaded` (the waiting line was full);
    /// also counted in `failed`.
    pub overloaded: u64,
    /// Waiting calls dropped because their caller stopped heart-beating.
    pub expired: u64,
    /// Events dropped because a peer's queue was full.
    pub dropped: u64,
    /// Completed calls per second over the last few seconds.
    pub calls_per_sec: f64,
}

impl HubStats {
    /// As a msgpack map (the `_zerorpc_hub_stats` reply).
    pub fn to_value(&self) -> Value {
        let workers = self
            .workers
            .iter()
            .map(|(id, in_flight, served, alive)| {
                Value::Map(vec![
                    ("id".into(), id.as_str().into()),
                    ("in_flight".into(), (*in_flight as u64).into()),
                    ("served".into(), (*served).into()),
                    ("alive".into(), (*alive).into()),
                ])
            })
            .collect();
        Value::Map(vec![
            ("workers".into(), Value::Array(workers)),
            ("in_flight".into(), (self.in_flight as u64).into()),
            ("pending".into(), (self.pending as u64).into()),
            ("completed".into(), self.completed.into()),
            ("failed".into(), self.failed.into()),
            ("overloaded".into(), self.overloaded.into()),
            ("expired".into(), self.expired.into()),
            ("dropped".into(), self.dropped.into()),
            ("calls_per_sec".into(), self.calls_per_sec.into()),
        ])
    }
}
