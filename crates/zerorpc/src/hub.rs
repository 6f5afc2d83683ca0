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

use std::collections::{HashMap, VecDeque};
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
use crate::trace::hex;

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

#[derive(Debug)]
struct Worker {
    in_flight: usize,
    served: u64,
    last_heard: Instant,
    ping_sent: bool,
    alive: bool,
    /// Its send queue refused a message: no new call goes to it until the
    /// driver reports room ([`HubCore::worker_ready`]).
    full: bool,
}

#[derive(Debug)]
struct Chan {
    worker: Bytes,
    /// The client's envelope: routing id, and the delimiter if it sent one.
    envelope: Vec<Bytes>,
    last_activity: Instant,
}

#[derive(Debug)]
struct Pending {
    envelope: Vec<Bytes>,
    payload: Bytes,
    next_heartbeat: Instant,
    /// When the caller last spoke on this channel (the request, or a
    /// heartbeat since).
    last_heard: Instant,
}

type ChanKey = (Bytes, MessageId);

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

/// The hub's routing state machine (sans-IO): feed it what the sockets
/// received and the time; take [`HubOutput`]s to send.
#[derive(Debug)]
pub struct HubCore {
    opts_heartbeat: Duration,
    max_pending: usize,
    limits: DecodeLimits,
    workers: HashMap<Bytes, Worker>,
    /// Worker ids in joining order (ties go to the earliest, rotating).
    order: Vec<Bytes>,
    rotate: usize,
    channels: HashMap<ChanKey, Chan>,
    /// Calls waiting for a worker, by channel.
    waiting: HashMap<ChanKey, Pending>,
    /// Their order (first come, first served). Keys no longer in `waiting`
    /// (expired, caller gone) are skipped when met, and swept out when
    /// they outnumber the live ones.
    line: VecDeque<ChanKey>,
    out: VecDeque<HubOutput>,
    completed: u64,
    failed: u64,
    overloaded: u64,
    expired: u64,
    dropped: u64,
    /// Completions per rate window, for calls/s.
    rate: VecDeque<(Instant, u64)>,
}

impl HubCore {
    /// A hub core with these settings.
    pub fn new(opts: &HubOptions) -> Self {
        HubCore {
            opts_heartbeat: opts.heartbeat,
            max_pending: opts.max_pending,
            limits: opts.decode_limits,
            workers: HashMap::new(),
            order: Vec::new(),
            rotate: 0,
            channels: HashMap::new(),
            waiting: HashMap::new(),
            line: VecDeque::new(),
            out: VecDeque::new(),
            completed: 0,
            failed: 0,
            overloaded: 0,
            expired: 0,
            dropped: 0,
            rate: VecDeque::new(),
        }
    }

    /// The next message to send.
    pub fn poll_output(&mut self) -> Option<HubOutput> {
        self.out.pop_front()
    }

    /// A worker connected to the `out` side.
    pub fn worker_joined(&mut self, id: Bytes, now: Instant) {
        tracing::info!(worker = %hex(&id), "worker joined");
        self.workers.insert(
            id.clone(),
            Worker {
                in_flight: 0,
                served: 0,
                last_heard: now,
                ping_sent: false,
                alive: true,
                full: false,
            },
        );
        if !self.order.contains(&id) {
            self.order.push(id);
        }
        self.dispatch_pending(now);
    }

    /// A worker's connection dropped: its calls fail at once.
    pub fn worker_left(&mut self, id: &Bytes) {
        tracing::info!(worker = %hex(id), "worker left");
        self.workers.remove(id);
        self.order.retain(|w| w != id);
        self.fail_calls_of(id, "the worker serving this call disconnected");
    }

    /// A client's connection dropped: forget its calls (their workers
    /// notice the silence and cancel them).
    pub fn client_left(&mut self, id: &Bytes) {
        let gone: Vec<ChanKey> = self
            .channels
            .keys()
            .filter(|(c, _)| c == id)
            .cloned()
            .collect();
        for key in gone {
            self.end_channel(&key, false);
        }
        self.waiting.retain(|(c, _), _| c != id);
        self.sweep_line();
    }

    /// A message from a client: `[routing id, (delimiter), payload]`.
    pub fn on_client(&mut self, msg: Message, now: Instant) {
        let frames = msg.frames();
        let (Some(client), Some(payload)) = (frames.first(), frames.last()) else {
            return;
        };
        if frames.len() < 2 {
            return;
        }
        let (header, name) = match Event::decode_head(payload, self.limits) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(client = %hex(client), error = %e, "dropping undecodable event from a client");
                return;
            }
        };
        if let Some(ch) = header.response_to {
            let key = (client.clone(), ch);
            if let Some(chan) = self.channels.get_mut(&key) {
                chan.last_activity = now;
                let mut m: Message = std::iter::once(chan.worker.clone()).collect();
                for f in frames {
                    m.push_back(f.clone());
                }
                self.out.push_back(HubOutput::ToWorker(m));
            } else if let Some(p) = self.waiting.get_mut(&key) {
                // The caller of a waiting call is alive (its heartbeat).
                p.last_heard = now;
            }
            // (other events of a call still waiting for a worker, or of
            // one that ended, are dropped)
            return;
        }
        let envelope: Vec<Bytes> = frames[..frames.len() - 1].to_vec();
        let key = (client.clone(), header.message_id);
        if name == HUB_STATS {
            let stats = self.stats(now).to_value();
            self.reply(&envelope, &key.1, EventKind::Ok, Value::Array(vec![stats]));
            return;
        }
        if self.channels.contains_key(&key) || self.waiting.contains_key(&key) {
            tracing::warn!(client = %hex(client), "duplicate request id, ignored");
            return;
        }
        let pending = Pending {
            envelope,
            payload: payload.clone(),
            next_heartbeat: now + self.opts_heartbeat,
            last_heard: now,
        };
        self.assign(key, pending, now);
    }

    /// A message from a worker: `[worker id, client envelope..., payload]`.
    pub fn on_worker(&mut self, msg: Message, now: Instant) {
        let frames = msg.frames();
        let (Some(worker), Some(payload)) = (frames.first(), frames.last()) else {
            return;
        };
        if let Some(w) = self.workers.get_mut(worker) {
            w.last_heard = now;
            w.ping_sent = false;
            if !w.alive {
                tracing::info!(worker = %hex(worker), "worker is back");
                w.alive = true;
            }
        }
        if frames.len() < 3 || frames[1].is_empty() {
            // Our own ping's answer (sent with an empty envelope).
            return;
        }
        let (header, name) = match Event::decode_head(payload, self.limits) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(worker = %hex(worker), error = %e, "dropping undecodable event from a worker");
                return;
            }
        };
        let Some(ch) = header.response_to else {
            return;
        };
        let key = (frames[1].clone(), ch);
        let Some(chan) = self.channels.get_mut(&key) else {
            tracing::debug!(%name, "event for an unknown channel from a worker, dropped");
            return;
        };
        if chan.worker != worker {
            return;
        }
        chan.last_activity = now;
        let m: Message = frames[1..].iter().cloned().collect();
        self.out.push_back(HubOutput::ToClient(m));
        if EventKind::of(&name).is_some_and(EventKind::is_final) {
            self.end_channel(&key, true);
            self.completed += 1;
            match self.rate.back_mut() {
                Some((t, n)) if now.saturating_duration_since(*t) < Duration::from_secs(1) => {
                    *n += 1
                }
                _ => self.rate.push_back((now, 1)),
            }
            while self.rate.len() > 5 {
                self.rate.pop_front();
            }
        }
    }

    /// When [`HubCore::handle_timeout`] should next run.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        now + self.opts_heartbeat / 4
    }

    /// Heartbeats for waiting calls, expiry of those whose caller went
    /// silent, pings for quiet workers, loss of silent workers, and cleanup
    /// of channels both sides abandoned.
    pub fn handle_timeout(&mut self, now: Instant) {
        let hb = self.opts_heartbeat;
        // A waiting call whose caller stopped heart-beating for three
        // intervals (as for a channel in flight, below) is abandoned: it
        // must not reach a worker later.
        let before = self.waiting.len();
        self.waiting
            .retain(|_, p| now.saturating_duration_since(p.last_heard) < hb * 3);
        let expired = before - self.waiting.len();
        if expired > 0 {
            self.expired += expired as u64;
            tracing::debug!(expired, "waiting calls expired: their callers went silent");
            self.sweep_line();
        }
        let mut beats = Vec::new();
        for (key, p) in self.waiting.iter_mut() {
            if p.next_heartbeat <= now {
                p.next_heartbeat = now + hb;
                beats.push((p.envelope.clone(), key.1.clone()));
            }
        }
        for (env, id) in beats {
            self.reply(
                &env,
                &id,
                EventKind::Heartbeat,
                Value::Array(vec![0.into()]),
            );
        }
        let mut lost = Vec::new();
        for (id, w) in self.workers.iter_mut() {
            let silent = now.saturating_duration_since(w.last_heard);
            if w.alive && silent >= hb * 2 {
                w.alive = false;
                lost.push(id.clone());
            } else if silent >= hb && !w.ping_sent {
                w.ping_sent = true;
                let ping = Event::new("_zerorpc_ping", Value::Array(vec![])).encode();
                self.out.push_back(HubOutput::ToWorker(Message::from_iter([
                    id.clone(),
                    Bytes::new(),
                    ping,
                ])));
            }
        }
        for id in lost {
            tracing::warn!(worker = %hex(&id), "worker silent for two heartbeats: lost");
            self.fail_calls_of(&id, "the worker serving this call stopped responding");
        }
        // Neither side spoke for three intervals: both gave up on it.
        let stale: Vec<ChanKey> = self
            .channels
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_activity) >= hb * 3)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.end_channel(&key, false);
        }
        self.dispatch_pending(now);
    }

    /// Current statistics.
    pub fn stats(&self, now: Instant) -> HubStats {
        let workers = self
            .order
            .iter()
            .filter_map(|id| {
                self.workers
                    .get(id)
                    .map(|w| (hex(id), w.in_flight, w.served, w.alive))
            })
            .collect();
        let span = self
            .rate
            .front()
            .map(|(t, _)| now.saturating_duration_since(*t).as_secs_f64())
            .unwrap_or(0.0)
            .max(1.0);
        HubStats {
            workers,
            in_flight: self.channels.len(),
            pending: self.waiting.len(),
            completed: self.completed,
            failed: self.failed,
            overloaded: self.overloaded,
            expired: self.expired,
            dropped: self.dropped,
            calls_per_sec: self.rate.iter().map(|(_, n)| *n as f64).sum::<f64>() / span,
        }
    }

    /// The live worker with the fewest calls in flight (ties rotate).
    fn pick(&mut self) -> Option<Bytes> {
        let n = self.order.len();
        let mut best: Option<(usize, &Bytes)> = None;
        for i in 0..n {
            let id = &self.order[(self.rotate + i) % n];
            if let Some(w) = self.workers.get(id).filter(|w| w.alive && !w.full) {
                if best.is_none_or(|(f, _)| w.in_flight < f) {
                    best = Some((w.in_flight, id));
                }
            }
        }
        let id = best.map(|(_, id)| id.clone());
        self.rotate = self.rotate.wrapping_add(1);
        id
    }

    /// Sends a new call to the best worker, or queues it while there is
    /// none (refusing it when the queue is full).
    fn assign(&mut self, key: ChanKey, p: Pending, now: Instant) {
        match self.pick() {
            Some(worker) => self.send_to(worker, key, p, now),
            None if self.waiting.len() >= self.max_pending => {
                self.failed += 1;
                self.overloaded += 1;
                tracing::debug!(waiting = self.waiting.len(), "call refused: HubOverloaded");
                let err = err_args(
                    "HubOverloaded",
                    "no worker available and too many calls waiting",
                );
                self.reply(&p.envelope, &key.1, EventKind::Err, err);
            }
            None => {
                // Tell the caller at once that its call is alive, and then
                // every interval while it waits.
                self.reply(
                    &p.envelope,
                    &key.1,
                    EventKind::Heartbeat,
                    Value::Array(vec![0.into()]),
                );
                self.line.push_back(key.clone());
                self.waiting.insert(key, p);
            }
        }
    }

    /// Messages the driver could not hand to a peer because its send queue
    /// was full, in the order they were produced.
    ///
    /// * A new call a worker's queue refused was never sent: it leaves the
    ///   worker's calls in flight and goes back to the head of the waiting
    ///   line, and the worker takes no new call until
    ///   [`HubCore::worker_ready`]. Any other event for that worker is lost
    ///   (counted in [`HubStats::dropped`]), and the worker is also marked
    ///   full.
    /// * A heartbeat to the caller of a waiting call is tried again at the
    ///   next [`HubCore::handle_timeout`] instead of an interval later, so
    ///   a burst of waiting calls does not make their callers give up.
    ///   Other events for a client are lost (counted).
    ///
    /// Returns the workers newly marked full: the driver reports each back
    /// with [`HubCore::worker_ready`] once its queue has room.
    pub fn refused(&mut self, outputs: Vec<HubOutput>, now: Instant) -> Vec<Bytes> {
        let mut newly_full = Vec::new();
        for out in outputs.into_iter().rev() {
            match out {
                HubOutput::ToWorker(m) => {
                    let Some(worker) = m.frames().first().cloned() else {
                        continue;
                    };
                    if let Some(w) = self.workers.get_mut(&worker) {
                        if !w.full {
                            w.full = true;
                            newly_full.push(worker.clone());
                        }
                    }
                    if !self.take_back(&worker, &m, now) {
                        self.dropped += 1;
                    }
                }
                HubOutput::ToClient(m) => {
                    if !self.retry_heartbeat(&m, now) {
                        self.dropped += 1;
                    }
                }
            }
        }
        if !newly_full.is_empty() {
            tracing::debug!(
                workers = newly_full.len(),
                waiting = self.waiting.len(),
                "worker send queue full: calls wait in the hub"
            );
        }
        self.dispatch_pending(now);
        newly_full
    }

    /// A worker's send queue has room again: it takes calls again.
    pub fn worker_ready(&mut self, id: &Bytes, now: Instant) {
        if let Some(w) = self.workers.get_mut(id) {
            w.full = false;
        }
        self.dispatch_pending(now);
    }

    /// If `m` (to `worker`) is a new call the hub dispatched, undo the
    /// dispatch and put the call back at the head of the line.
    fn take_back(&mut self, worker: &Bytes, m: &Message, now: Instant) -> bool {
        let frames = m.frames();
        let (Some(client), Some(payload)) = (frames.get(1), frames.last()) else {
            return false;
        };
        if frames.len() < 3 || client.is_empty() {
            return false;
        }
        let Ok((header, _)) = Event::decode_head(payload, self.limits) else {
            return false;
        };
        if header.response_to.is_some() {
            return false;
        }
        let key = (client.clone(), header.message_id);
        if self.channels.get(&key).is_none_or(|c| c.worker != worker) {
            return false;
        }
        let Some(chan) = self.channels.remove(&key) else {
            return false;
        };
        if let Some(w) = self.workers.get_mut(worker) {
            w.in_flight = w.in_flight.saturating_sub(1);
        }
        self.line.push_front(key.clone());
        self.waiting.insert(
            key,
            Pending {
                envelope: chan.envelope,
                payload: payload.clone(),
                next_heartbeat: now + self.opts_heartbeat,
                last_heard: chan.last_activity,
            },
        );
        true
    }

    /// If `m` is a heartbeat to the caller of a waiting call, have it sent
    /// again at the next timeout.
    fn retry_heartbeat(&mut self, m: &Message, now: Instant) -> bool {
        let frames = m.frames();
        let (Some(client), Some(payload)) = (frames.first(), frames.last()) else {
            return false;
        };
        let Ok((header, name)) = Event::decode_head(payload, self.limits) else {
            return false;
        };
        if EventKind::of(&name) != Some(EventKind::Heartbeat) {
            return false;
        }
        let Some(ch) = header.response_to else {
            return false;
        };
        match self.waiting.get_mut(&(client.clone(), ch)) {
            Some(p) => {
                p.next_heartbeat = now;
                true
            }
            None => false,
        }
    }

    /// Drops keys of calls no longer waiting from the line once they
    /// outnumber the waiting calls (keeps the line bounded).
    fn sweep_line(&mut self) {
        if self.line.len() > 2 * self.waiting.len() + 64 {
            let waiting = &self.waiting;
            self.line.retain(|k| waiting.contains_key(k));
        }
    }

    fn send_to(&mut self, worker: Bytes, key: ChanKey, p: Pending, now: Instant) {
        if let Some(w) = self.workers.get_mut(&worker) {
            w.in_flight += 1;
        }
        let mut m: Message = std::iter::once(worker.clone()).collect();
        for f in &p.envelope {
            m.push_back(f.clone());
        }
        m.push_back(p.payload);
        self.out.push_back(HubOutput::ToWorker(m));
        self.channels.insert(
            key,
            Chan {
                worker,
                envelope: p.envelope,
                last_activity: now,
            },
        );
    }

    fn dispatch_pending(&mut self, now: Instant) {
        while !self.waiting.is_empty() {
            let Some(worker) = self.pick() else { break };
            // The next key still waiting (skipping expired ones).
            let next = loop {
                match self.line.pop_front() {
                    Some(key) => {
                        if let Some(p) = self.waiting.remove(&key) {
                            break Some((key, p));
                        }
                    }
                    None => break None,
                }
            };
            let Some((key, p)) = next else {
                // (every waiting call has its key in the line; should that
                // ever not hold, rebuild the line rather than lose calls)
                self.line = self.waiting.keys().cloned().collect();
                continue;
            };
            self.send_to(worker, key, p, now);
        }
    }

    fn end_channel(&mut self, key: &ChanKey, served: bool) {
        if let Some(chan) = self.channels.remove(key) {
            if let Some(w) = self.workers.get_mut(&chan.worker) {
                w.in_flight = w.in_flight.saturating_sub(1);
                if served {
                    w.served += 1;
                }
            }
        }
    }

    fn fail_calls_of(&mut self, worker: &Bytes, why: &str) {
        let keys: Vec<ChanKey> = self
            .channels
            .iter()
            .filter(|(_, c)| c.worker == worker)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(chan) = self.channels.remove(&key) {
                self.failed += 1;
                self.reply(
                    &chan.envelope,
                    &key.1,
                    EventKind::Err,
                    err_args("LostRemote", why),
                );
            }
        }
        if let Some(w) = self.workers.get_mut(worker) {
            w.in_flight = 0;
        }
    }

    /// An event from the hub itself to a client, on channel `channel`.
    fn reply(&mut self, envelope: &[Bytes], channel: &MessageId, kind: EventKind, args: Value) {
        let mut m: Message = envelope.iter().cloned().collect();
        m.push_back(Event::on_channel(channel, kind, args).encode());
        self.out.push_back(HubOutput::ToClient(m));
    }
}

fn err_args(name: &str, message: &str) -> Value {
    CallError::new(name, message).to_args()
}

/// The hub: a `HubCore` between two ROUTER sockets.
pub struct Hub {
    input: RouterSocket,
    output: RouterSocket,
    core: Arc<Mutex<HubCore>>,
    opts: HubOptions,
    cancel: CancellationToken,
    monitors: Mutex<
        Option<(
            tokio::sync::broadcast::Receiver<SocketEvent>,
            tokio::sync::broadcast::Receiver<SocketEvent>,
        )>,
    >,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish()
    }
}

impl Hub {
    /// A hub; bind its sides with [`Hub::bind_in`] and [`Hub::bind_out`],
    /// then [`Hub::run`].
    pub fn new(opts: HubOptions) -> Self {
        let input = RouterSocket::with_options(opts.socket.clone());
        let output = RouterSocket::with_options(opts.socket.clone());
        // Watch connections from the start, so no worker is missed.
        let monitors = Some((input.monitor(), output.monitor()));
        Hub {
            core: Arc::new(Mutex::new(HubCore::new(&opts))),
            input,
            output,
            opts,
            cancel: CancellationToken::new(),
            monitors: Mutex::new(monitors),
        }
    }

    /// Binds the clients' side.
    pub async fn bind_in(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.input.bind(endpoint).await?)
    }

    /// Binds the workers' side.
    pub async fn bind_out(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.output.bind(endpoint).await?)
    }

    /// Current statistics.
    pub fn stats(&self) -> HubStats {
        self.core().stats(Instant::now())
    }

    /// Stops the hub.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    fn core(&self) -> std::sync::MutexGuard<'_, HubCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Routes until [`Hub::shutdown`] or drop. Call once.
    pub async fn run(&self) -> Result<(), Error> {
        let Some((mut in_events, mut out_events)) = self
            .monitors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return Err(Error::Config("Hub::run called twice".into()));
        };
        let mut tick = tokio::time::interval(self.opts.heartbeat / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Per worker whose send queue is full: a ping that waits for room in
        // that queue; when it goes out the worker takes calls again.
        let mut room: FuturesUnordered<BoxFuture<'_, Bytes>> = FuturesUnordered::new();
        loop {
            for id in self.flush() {
                room.push(Box::pin(async move {
                    let ping = Event::new("_zerorpc_ping", Value::Array(vec![])).encode();
                    let m = Message::from_iter([id.clone(), Bytes::new(), ping]);
                    if let Err(e) = self.output.send(m).await {
                        // (gone: its disconnection reaches the core)
                        tracing::debug!(error = %e, "hub could not wait for a worker's queue");
                    }
                    id
                }));
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Ok(()),
                m = self.input.recv() => {
                    let now = Instant::now();
                    with_waiting(&self.input, m?, |m| self.core().on_client(m, now))?;
                }
                m = self.output.recv() => {
                    let now = Instant::now();
                    with_waiting(&self.output, m?, |m| self.core().on_worker(m, now))?;
                }
                Some(id) = room.next(), if !room.is_empty() => {
                    self.core().worker_ready(&id, Instant::now());
                }
                ev = out_events.recv() => {
                    match ev {
                        Ok(SocketEvent::Connected { routing_id: Some(id), .. }) => {
                            self.core().worker_joined(id, Instant::now());
                        }
                        Ok(SocketEvent::Disconnected { routing_id: Some(id), .. }) => {
                            self.core().worker_left(&id);
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::error!(missed = n, "hub missed worker connection events");
                        }
                        _ => {}
                    }
                }
                ev = in_events.recv() => {
                    if let Ok(SocketEvent::Disconnected { routing_id: Some(id), .. }) = ev {
                        self.core().client_left(&id);
                    }
                }
                _ = tick.tick() => {
                    self.core().handle_timeout(Instant::now());
                }
            }
        }
    }

    /// Sends what the core produced, without waiting, rather than stall
    /// everyone for one peer: what a full queue refuses goes back to the
    /// core ([`HubCore::refused`]: a new call waits in the hub again, other
    /// events are counted in [`HubStats::dropped`]); a peer that vanished
    /// is skipped (its disconnection reaches the core). Returns the workers
    /// whose queue just filled up.
    fn flush(&self) -> Vec<Bytes> {
        let mut core = self.core();
        let mut full = Vec::new();
        loop {
            let mut refused = Vec::new();
            while let Some(out) = core.poll_output() {
                let (socket, m, to_worker) = match out {
                    HubOutput::ToClient(m) => (&self.input, m, false),
                    HubOutput::ToWorker(m) => (&self.output, m, true),
                };
                match socket.try_send_or_return(m) {
                    Ok(()) => {}
                    Err(TrySendError::Full(m)) => refused.push(if to_worker {
                        HubOutput::ToWorker(m)
                    } else {
                        HubOutput::ToClient(m)
                    }),
                    Err(TrySendError::Failed(e)) => {
                        tracing::debug!(error = %e, "hub could not forward an event");
                    }
                }
            }
            if refused.is_empty() {
                return full;
            }
            let dropped = core.dropped;
            full.extend(core.refused(refused, Instant::now()));
            if core.dropped > dropped {
                tracing::debug!(
                    dropped = core.dropped - dropped,
                    "hub dropped events: the peer's queue is full"
                );
            }
        }
    }
}

/// Hands `first`, then the messages already waiting behind it (up to 64),
/// to `f`: one wake-up serves a batch.
fn with_waiting(
    socket: &RouterSocket,
    first: Message,
    mut f: impl FnMut(Message),
) -> Result<(), Error> {
    let mut next = Some(first);
    let mut taken = 0;
    while let Some(m) = next.take() {
        f(m);
        taken += 1;
        if taken < 64 {
            next = socket.try_recv()?;
        }
    }
    Ok(())
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core() -> HubCore {
        HubCore::new(&HubOptions {
            heartbeat: Duration::from_secs(1),
            max_pending: 2,
            ..HubOptions::default()
        })
    }

    fn from_client(client: &'static [u8], ev: &Event) -> Message {
        Message::from_iter([Bytes::from_static(client), Bytes::new(), ev.encode()])
    }

    fn from_worker(worker: &'static [u8], client: &'static [u8], ev: &Event) -> Message {
        Message::from_iter([
            Bytes::from_static(worker),
            Bytes::from_static(client),
            Bytes::new(),
            ev.encode(),
        ])
    }

    fn drain(h: &mut HubCore) -> Vec<HubOutput> {
        std::iter::from_fn(|| h.poll_output()).collect()
    }

    /// (destination id, event name) of each output.
    fn summary(out: &[HubOutput]) -> Vec<(String, String)> {
        out.iter()
            .map(|o| {
                let (HubOutput::ToClient(m) | HubOutput::ToWorker(m)) = o;
                let ev = Event::decode(m.last().unwrap(), DecodeLimits::default()).unwrap();
                let to = String::from_utf8_lossy(&m.frames()[0]).into_owned();
                (to, ev.name)
            })
            .collect()
    }

    #[test]
    fn channels_stick_to_their_worker_and_new_ones_go_to_the_least_busy() {
        let t0 = Instant::now();
        let mut h = core();
        h.worker_joined(Bytes::from_static(b"wA"), t0);
        h.worker_joined(Bytes::from_static(b"wB"), t0);
        let a = Event::new("slow", Value::Array(vec![]));
        let b = Event::new("slow", Value::Array(vec![]));
        h.on_client(from_client(b"c1", &a), t0);
        h.on_client(from_client(b"c1", &b), t0);
        let first = summary(&drain(&mut h));
        assert_ne!(first[0].0, first[1].0, "one call on each worker: {first:?}");
        let a_worker = first[0].0.clone();
        // Heartbeats and credit of channel a follow it.
        for _ in 0..3 {
            let hb = Event::on_channel(&a.header.message_id, "_zpc_hb", Value::Nil);
            h.on_client(from_client(b"c1", &hb), t0);
            assert_eq!(
                summary(&drain(&mut h)),
                vec![(a_worker.clone(), "_zpc_hb".into())]
            );
        }
        // a ends: its worker is the least busy again and gets the next call.
        let wa: &'static [u8] = if a_worker == "wA" { b"wA" } else { b"wB" };
        let ok = Event::on_channel(&a.header.message_id, "OK", Value::Array(vec![1.into()]));
        h.on_worker(from_worker(wa, b"c1", &ok), t0);
        assert_eq!(summary(&drain(&mut h)), vec![("c1".into(), "OK".into())]);
        h.on_client(from_client(b"c2", &Event::new("echo", Value::Nil)), t0);
        assert_eq!(summary(&drain(&mut h))[0].0, a_worker);
        let st = h.stats(t0);
        assert_eq!((st.in_flight, st.completed), (2, 1));
    }

    #[test]
    fn waiting_calls_are_kept_alive_then_dispatched_or_refused_when_full() {
        let t0 = Instant::now();
        let mut h = core();
        for _ in 0..3 {
            h.on_client(from_client(b"c1", &Event::new("echo", Value::Nil)), t0);
        }
        // Two wait (each told at once it is alive); the third is refused.
        let out = summary(&drain(&mut h));
        assert_eq!(
            out.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
            vec!["_zpc_hb", "_zpc_hb", "ERR"]
        );
        let st = h.stats(t0);
        assert_eq!((st.pending, st.overloaded, st.failed), (2, 1, 1));
        h.handle_timeout(t0 + Duration::from_millis(1100));
        let out = summary(&drain(&mut h));
        assert_eq!(out, vec![("c1".into(), "_zpc_hb".into()); 2]);
        h.worker_joined(Bytes::from_static(b"wA"), t0 + Duration::from_secs(2));
        let out = summary(&drain(&mut h));
        assert_eq!(out, vec![("wA".into(), "echo".into()); 2]);
    }

    #[test]
    fn a_silent_worker_is_pinged_then_lost_and_its_callers_told() {
        let t0 = Instant::now();
        let mut h = core();
        h.worker_joined(Bytes::from_static(b"wA"), t0);
        let call = Event::new("slow", Value::Nil);
        h.on_client(from_client(b"c1", &call), t0);
        drain(&mut h);
        h.handle_timeout(t0 + Duration::from_millis(1100));
        assert_eq!(
            summary(&drain(&mut h)),
            vec![("wA".into(), "_zerorpc_ping".into())]
        );
        h.handle_timeout(t0 + Duration::from_millis(2100));
        let out = drain(&mut h);
        assert_eq!(summary(&out), vec![("c1".into(), "ERR".into())]);
        let HubOutput::ToClient(m) = &out[0] else {
            unreachable!()
        };
        let ev = Event::decode(m.last().unwrap(), DecodeLimits::default()).unwrap();
        assert_eq!(
            ev.header.response_to.as_ref(),
            Some(&call.header.message_id)
        );
        assert!(ev.args.to_string().contains("LostRemote"));
        // No live worker: the next call waits rather than going to wA.
        h.on_client(
            from_client(b"c1", &Event::new("echo", Value::Nil)),
            t0 + Duration::from_secs(3),
        );
        assert_eq!(
            summary(&drain(&mut h)),
            vec![("c1".into(), "_zpc_hb".into())]
        );
        // wA speaks again (its ping answer): it is back and gets the call.
        let pong = Event::new("OK", Value::Nil);
        h.on_worker(
            Message::from_iter([Bytes::from_static(b"wA"), Bytes::new(), pong.encode()]),
            t0 + Duration::from_secs(3),
        );
        h.handle_timeout(t0 + Duration::from_secs(3));
        assert_eq!(summary(&drain(&mut h)), vec![("wA".into(), "echo".into())]);
    }

    #[test]
    fn a_waiting_call_whose_caller_went_silent_expires_and_is_never_dispatched() {
        let t0 = Instant::now();
        let mut h = core();
        let silent = Event::new("echo", Value::Nil);
        let alive = Event::new("add", Value::Nil);
        h.on_client(from_client(b"c1", &silent), t0);
        h.on_client(from_client(b"c2", &alive), t0);
        drain(&mut h);
        // c2 keeps heart-beating its waiting call; c1 says nothing more.
        for s in 1..=3 {
            let at = t0 + Duration::from_millis(1000 * s - 100);
            let hb = Event::on_channel(&alive.header.message_id, "_zpc_hb", Value::Nil);
            h.on_client(from_client(b"c2", &hb), at);
            h.handle_timeout(at);
        }
        assert_eq!(h.stats(t0).pending, 2, "not yet: under three intervals");
        h.handle_timeout(t0 + Duration::from_millis(3100));
        let st = h.stats(t0 + Duration::from_millis(3100));
        assert_eq!((st.pending, st.expired), (1, 1));
        drain(&mut h);
        h.worker_joined(Bytes::from_static(b"wA"), t0 + Duration::from_secs(4));
        assert_eq!(summary(&drain(&mut h)), vec![("wA".into(), "add".into())]);
        let st = h.stats(t0 + Duration::from_secs(4));
        assert_eq!((st.pending, st.in_flight), (0, 1));
    }

    #[test]
    fn calls_a_full_worker_refuses_wait_again_and_are_not_in_flight() {
        let t0 = Instant::now();
        let mut h = HubCore::new(&HubOptions {
            heartbeat: Duration::from_secs(1),
            max_pending: 100,
            ..HubOptions::default()
        });
        let w = Bytes::from_static(b"wA");
        h.worker_joined(w.clone(), t0);
        let calls: Vec<Event> = (0..4)
            .map(|i| Event::new(format!("m{i}"), Value::Nil))
            .collect();
        for c in &calls {
            h.on_client(from_client(b"c1", c), t0);
        }
        let out = drain(&mut h);
        assert_eq!(out.len(), 4);
        // The worker's queue took the first call only.
        let newly_full = h.refused(out[1..].to_vec(), t0);
        assert_eq!(newly_full, vec![w.clone()]);
        assert!(drain(&mut h).is_empty(), "nothing goes to a full worker");
        let st = h.stats(t0);
        assert_eq!((st.in_flight, st.pending, st.dropped), (1, 3, 0));
        assert_eq!(st.workers[0].1, 1);
        // New calls wait behind them.
        h.on_client(from_client(b"c1", &Event::new("m4", Value::Nil)), t0);
        assert_eq!(
            summary(&drain(&mut h)),
            vec![("c1".into(), "_zpc_hb".into())]
        );
        // Room again: the waiting calls go out in their order.
        h.worker_ready(&w, t0);
        let names: Vec<String> = summary(&drain(&mut h))
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(names, vec!["m1", "m2", "m3", "m4"]);
        let st = h.stats(t0);
        assert_eq!((st.in_flight, st.pending), (5, 0));
    }

    #[test]
    fn a_refused_heartbeat_to_a_waiting_caller_is_retried_at_the_next_tick() {
        let t0 = Instant::now();
        let mut h = core();
        h.on_client(from_client(b"c1", &Event::new("echo", Value::Nil)), t0);
        let out = drain(&mut h);
        assert_eq!(summary(&out), vec![("c1".into(), "_zpc_hb".into())]);
        assert!(h.refused(out, t0).is_empty());
        assert_eq!(h.stats(t0).dropped, 0);
        h.handle_timeout(t0 + Duration::from_millis(250));
        assert_eq!(
            summary(&drain(&mut h)),
            vec![("c1".into(), "_zpc_hb".into())]
        );
    }

    #[test]
    fn garbage_and_strangers_are_dropped() {
        let t0 = Instant::now();
        let mut h = core();
        h.worker_joined(Bytes::from_static(b"wA"), t0);
        h.on_client(
            Message::from_iter([Bytes::from_static(b"c1"), Bytes::from_static(b"\xc1")]),
            t0,
        );
        h.on_client(Message::from_iter([Bytes::from_static(b"c1")]), t0);
        let stray = Event::on_channel(&MessageId::random(), "OK", Value::Nil);
        h.on_worker(from_worker(b"wA", b"c1", &stray), t0);
        h.on_client(
            from_client(
                b"c1",
                &Event::on_channel(&MessageId::random(), "_zpc_hb", Value::Nil),
            ),
            t0,
        );
        assert!(drain(&mut h).is_empty());
    }
}
