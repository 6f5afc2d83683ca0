//! [`HubCore`]: the hub's routing, sans-IO (workers, channels, the
//! waiting line, liveness), driven by an explicit `now`.

use super::*;
use crate::channel::WINDOW_MAX_KEY;

mod backpressure;

#[derive(Debug)]
pub(super) struct Worker {
    pub(super) in_flight: usize,
    pub(super) served: u64,
    pub(super) last_heard: Instant,
    pub(super) ping_sent: bool,
    pub(super) alive: bool,
    /// Its send queue refused a message: no new call goes to it until the
    /// driver reports room ([`HubCore::worker_ready`]).
    pub(super) full: bool,
}

#[derive(Debug)]
pub(super) struct Chan {
    pub(super) worker: Bytes,
    /// The client's envelope: routing id, and the delimiter if it sent one.
    pub(super) envelope: Vec<Bytes>,
    pub(super) last_activity: Instant,
}

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) envelope: Vec<Bytes>,
    pub(super) payload: Bytes,
    pub(super) next_heartbeat: Instant,
    /// When the caller last spoke on this channel (the request, or a
    /// heartbeat since).
    pub(super) last_heard: Instant,
}

pub(super) type ChanKey = (Bytes, MessageId);

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
    pub(super) dropped: u64,
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
            workers: HashMap::default(),
            order: Vec::new(),
            rotate: 0,
            channels: HashMap::default(),
            waiting: HashMap::default(),
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
        let head = match Event::route_head(payload, self.limits, None) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(client = %hex(client), error = %e, "dropping undecodable event from a client");
                return;
            }
        };
        if let Some(ch) = head.response_to {
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
        let key = (client.clone(), head.message_id);
        if head.name == HUB_STATS {
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
        // (whether the worker announces its window: see
        // `Channel::announce_window`)
        let head = match Event::route_head(payload, self.limits, Some(WINDOW_MAX_KEY)) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(worker = %hex(worker), error = %e, "dropping undecodable event from a worker");
                return;
            }
        };
        let (announces, name) = (head.has_key, head.name);
        let Some(ch) = head.response_to else {
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
        let m: Message = if announces {
            // The hub drops a client's events when its queue is full: a
            // worker's promise to hold items back does not hold through it.
            let mut ev = match Event::decode(payload, self.limits) {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(worker = %hex(worker), error = %e, "dropping undecodable event from a worker");
                    return;
                }
            };
            ev.header
                .extra
                .retain(|(k, _)| k.as_str() != Some(WINDOW_MAX_KEY));
            let mut m: Message = frames[1..frames.len() - 1].iter().cloned().collect();
            m.push_back(ev.encode());
            m
        } else {
            frames[1..].iter().cloned().collect()
        };
        self.out.push_back(HubOutput::ToClient(m));
        if EventKind::of(name).is_some_and(EventKind::is_final) {
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
            // (summed as integers: a float sum of nothing is -0.0)
            calls_per_sec: self.rate.iter().map(|(_, n)| *n).sum::<u64>() as f64 / span,
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

pub(super) fn err_args(name: &str, message: &str) -> Value {
    CallError::new(name, message).to_args()
}
