//! One call's channel state machine (documented on [`Channel`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rmpv::Value;

use crate::event::{Event, EventKind, MessageId, SharedEntries};

/// The most stream credit a channel keeps, whatever the remote grants
/// (`_zpc_more [2**63]` is clamped to this).
pub const MAX_SEND_CREDIT: u64 = 1 << 16;

/// Channel timing and window.
#[derive(Debug, Clone, Copy)]
pub struct ChannelConfig {
    /// Heartbeat interval (ZeroRPC's default is 5 s).
    pub heartbeat: Duration,
    /// Silent intervals after which the remote is lost. Checked, like
    /// zerorpc-python does, at each of our heartbeats: the remote is lost
    /// at the first one that finds it silent for more than `lost_after`
    /// intervals (so after 2 to 3 intervals with the default 2), its
    /// silence counted from our first heartbeat until it is first heard.
    /// That first grace is what a passive-heartbeat Python client needs: it
    /// sends its first heartbeat an interval after hearing ours.
    pub lost_after: u32,
    /// Bound on the wait for the first reply (client side; default 30 s).
    pub first_reply_timeout: Option<Duration>,
    /// Stream items we are willing to hold (receiver side): the credit
    /// window, so a stream buffers at most `window` items of whatever size
    /// they are. Default 100, like Python. A bigger window streams small
    /// items faster (1000: about 1.8× between our own peers), but only
    /// raise it toward our own servers: zerorpc-python and zerorpc-node
    /// servers send through a libzmq ROUTER, which silently drops messages
    /// beyond its 1000-message queue, so a window near that loses items
    /// when the client falls behind.
    pub window: u32,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            heartbeat: Duration::from_secs(5),
            lost_after: 2,
            first_reply_timeout: Some(Duration::from_secs(30)),
            window: 100,
        }
    }
}

/// How the remote interprets `_zpc_more`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditMode {
    /// `n` more items (Python).
    Additive,
    /// Room for `n` items in all (Node).
    Absolute,
}

impl CreditMode {
    /// Node's ids are strings, Python's bytes.
    pub fn for_channel(id: &MessageId) -> Self {
        if id.is_str() {
            CreditMode::Absolute
        } else {
            CreditMode::Additive
        }
    }
}

/// Why a channel failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// No reply within the first-reply timeout.
    Timeout(Duration),
    /// The remote went silent for `lost_after` heartbeat intervals.
    LostRemote(Duration),
    /// The remote sent a `_zpc_more` we cannot read.
    BadCredit,
    /// The call's deadline (its budget given) passed before the first
    /// reply (see [`crate::deadline`]).
    DeadlineExceeded(Duration),
}

/// What a server's error named `error_name` means for a call with this
/// deadline budget and call timeout (see [`Channel::expiry_of`]).
pub(crate) fn expiry(
    error_name: &str,
    budget: Option<Duration>,
    timeout: Option<Duration>,
) -> Option<ChannelError> {
    if error_name != crate::deadline::ERROR_NAME {
        return None;
    }
    match (budget, timeout) {
        (Some(b), _) => Some(ChannelError::DeadlineExceeded(b)),
        (None, Some(t)) => Some(ChannelError::Timeout(t)),
        (None, None) => None,
    }
}

/// One call = one channel: a sans-IO state machine for heartbeats,
/// lost-remote detection, the first-reply timeout and stream credit.
///
/// Like quinn-proto it never reads a clock or a socket: the owner feeds it
/// events and the current time, asks when to call back
/// ([`Channel::poll_timeout`]) and takes the events to send
/// ([`Channel::poll_transmit`]).
///
/// Flow control: a stream sender may send as many `STREAM` events as the
/// receiver granted with `_zpc_more [n]`; every channel starts with one.
/// Python grants additively; Node sends its absolute free capacity. Node
/// peers are recognised by their string message ids ([`CreditMode`]).
#[derive(Debug)]
pub struct Channel {
    id: MessageId,
    cfg: ChannelConfig,
    mode: CreditMode,
    /// When the remote was last heard; `None` until it is heard or our
    /// first heartbeat is due, whichever comes first.
    last_heard: Option<Instant>,
    next_heartbeat: Instant,
    first_reply_deadline: Option<Instant>,
    /// The call's deadline and the budget it was set from, until the first
    /// reply (received by a client, sent by a server).
    deadline: Option<(Instant, Duration)>,
    /// The budget of the deadline set, kept after the first reply (what a
    /// client reports when the server says the deadline passed).
    deadline_budget: Option<Duration>,
    /// STREAM events we may still send.
    send_credit: u64,
    /// STREAM events the remote may still send us (granted, not received).
    remote_credit: u64,
    /// STREAM events received and not yet consumed by the application.
    buffered: u64,
    /// Whether a STREAM has started (we grant credit only for streams).
    streaming: bool,
    out: VecDeque<Event>,
    /// `out` holds a heartbeat and nothing else (see `poll_transmit`).
    lone_heartbeat: bool,
    /// Extra header entries of every event sent.
    headers: SharedEntries,
}

impl Channel {
    fn new(id: MessageId, cfg: ChannelConfig, now: Instant) -> Self {
        Channel {
            mode: CreditMode::for_channel(&id),
            id,
            cfg,
            last_heard: None,
            next_heartbeat: now + cfg.heartbeat,
            first_reply_deadline: None,
            deadline: None,
            deadline_budget: None,
            send_credit: 1,
            remote_credit: 1,
            buffered: 0,
            streaming: false,
            out: VecDeque::new(),
            lone_heartbeat: false,
            headers: SharedEntries::default(),
        }
    }

    /// The client side of a call whose request (with id `id`) was just sent.
    pub fn client(id: MessageId, cfg: ChannelConfig, now: Instant) -> Self {
        let mut c = Channel::new(id, cfg, now);
        c.first_reply_deadline = cfg.first_reply_timeout.map(|t| now + t);
        c
    }

    /// The server side of a call opened by `request`.
    pub fn server(request: &Event, cfg: ChannelConfig, now: Instant) -> Self {
        Channel::new(request.header.message_id.clone(), cfg, now)
    }

    /// The request has actually left (it may wait for a server to
    /// connect): heartbeats start from now, and the remote's silence is
    /// counted from our first one (until it is heard). The first-reply
    /// deadline still counts from the start of the call.
    pub fn request_sent(&mut self, now: Instant) {
        self.last_heard = None;
        self.next_heartbeat = now + self.cfg.heartbeat;
    }

    /// Sets the call's deadline (`budget` is what it was computed from, for
    /// the error): [`Channel::handle_timeout`] fails with
    /// [`ChannelError::DeadlineExceeded`] once it passes without a first
    /// reply.
    pub fn set_deadline(&mut self, at: Instant, budget: Duration) {
        self.deadline = Some((at, budget));
        self.deadline_budget = Some(budget);
    }

    /// Drops the deadline (its budget is still reported).
    pub fn clear_deadline(&mut self) {
        self.deadline = None;
    }

    /// The budget of the deadline set on this channel, if any (kept after
    /// the first reply).
    pub fn deadline_budget(&self) -> Option<Duration> {
        self.deadline_budget
    }

    /// The error for an `ERR` reply: a server's `DeadlineExceeded` for a
    /// budget this channel set is that budget running out, reported as the
    /// caller's own local expiry would be (an inherited deadline's
    /// [`ChannelError::DeadlineExceeded`], or the call timeout's
    /// [`ChannelError::Timeout`]), whichever side noticed first.
    pub fn expiry_of(&self, error_name: &str) -> Option<ChannelError> {
        expiry(
            error_name,
            self.deadline_budget,
            self.cfg.first_reply_timeout,
        )
    }

    /// The call's deadline, while it applies.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.map(|(at, _)| at)
    }

    /// The channel id (the request's message id).
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    /// The channel's configuration.
    pub fn config(&self) -> &ChannelConfig {
        &self.cfg
    }

    /// The credit interpretation in use.
    pub fn credit_mode(&self) -> CreditMode {
        self.mode
    }

    /// Handles an event received on this channel. Control events are
    /// consumed; anything else is returned for the application.
    pub fn on_event(&mut self, ev: Event, now: Instant) -> Result<Option<Event>, ChannelError> {
        self.last_heard = Some(now);
        match ev.kind() {
            Some(EventKind::Heartbeat) => Ok(None),
            Some(EventKind::More) => {
                let n = credit_arg(&ev.args).ok_or(ChannelError::BadCredit)?;
                match self.mode {
                    CreditMode::Additive => self.send_credit = self.send_credit.saturating_add(n),
                    CreditMode::Absolute => self.send_credit = n,
                }
                // Whatever the remote grants, no more than a sane window
                // (items also wait for room in the connection's queue, so
                // credit is not what bounds memory; this keeps the count
                // meaningful).
                self.send_credit = self.send_credit.min(MAX_SEND_CREDIT);
                Ok(None)
            }
            kind => {
                self.first_reply_deadline = None;
                self.deadline = None;
                if kind == Some(EventKind::Stream) {
                    self.streaming = true;
                    self.remote_credit = self.remote_credit.saturating_sub(1);
                    self.buffered += 1;
                    self.maybe_grant();
                }
                Ok(Some(ev))
            }
        }
    }

    /// When [`Channel::handle_timeout`] must next be called: our next
    /// heartbeat (where loss is checked) or the first-reply deadline.
    pub fn poll_timeout(&self) -> Instant {
        [self.first_reply_deadline, self.deadline()]
            .into_iter()
            .flatten()
            .fold(self.next_heartbeat, Instant::min)
    }

    /// Advances time: detects the first-reply timeout, and at each due
    /// heartbeat detects loss or queues the heartbeat.
    ///
    /// Loss follows zerorpc-python's rule (`HeartBeatOnChannel`): at each
    /// of our heartbeats, the remote is lost if it has been silent for
    /// more than `lost_after` intervals; a remote not heard yet counts as
    /// heard at our first heartbeat.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ChannelError> {
        if let Some((at, budget)) = self.deadline {
            if now >= at {
                return Err(ChannelError::DeadlineExceeded(budget));
            }
        }
        if let Some(d) = self.first_reply_deadline {
            if now >= d {
                return Err(ChannelError::Timeout(
                    self.cfg.first_reply_timeout.unwrap_or_default(),
                ));
            }
        }
        if now < self.next_heartbeat {
            return Ok(());
        }
        let heard = *self.last_heard.get_or_insert(now);
        let silence = now.saturating_duration_since(heard);
        if silence > self.cfg.heartbeat * self.cfg.lost_after {
            return Err(ChannelError::LostRemote(silence));
        }
        self.emit(EventKind::Heartbeat, Value::Array(vec![Value::from(0)]));
        self.next_heartbeat = now + self.cfg.heartbeat;
        Ok(())
    }

    /// The next event to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Event> {
        let ev = self.out.pop_front()?;
        // A heartbeat alone in the queue has gone: the channel is likely
        // idle, and an idle channel should not keep the queue's buffer
        // (room for a few events, a kilobyte). A busy stream pays one
        // allocation per heartbeat interval for this.
        if self.lone_heartbeat && self.out.is_empty() {
            self.out = VecDeque::new();
            self.lone_heartbeat = false;
        }
        Some(ev)
    }

    /// Whether events are waiting for [`Channel::poll_transmit`].
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether a `STREAM` item may be sent now.
    pub fn can_send_item(&self) -> bool {
        self.send_credit > 0
    }

    /// STREAM items that may be sent now.
    pub fn send_credit(&self) -> u64 {
        self.send_credit
    }

    /// Queues a reply or stream event on this channel. `STREAM` uses one
    /// credit: check [`Channel::can_send_item`] first (sending without
    /// credit is a bug of the caller and is refused).
    pub fn send(&mut self, kind: EventKind, args: Value) -> bool {
        if kind == EventKind::Stream {
            if self.send_credit == 0 {
                return false;
            }
            self.send_credit -= 1;
        }
        self.deadline = None;
        self.emit(kind, args);
        true
    }

    /// The application consumed `n` received stream items: grant more
    /// credit if the window has room.
    pub fn consumed(&mut self, n: u64) {
        self.buffered = self.buffered.saturating_sub(n);
        self.maybe_grant();
    }

    fn maybe_grant(&mut self) {
        if !self.streaming {
            return;
        }
        let window = u64::from(self.cfg.window.max(1));
        let free = window.saturating_sub(self.buffered + self.remote_credit);
        // Grant when half the window is free (or the remote has nothing
        // left), so a fast stream is not stalled by round trips.
        if free == 0 || (free < window / 2 && self.remote_credit > 0) {
            return;
        }
        let n = match self.mode {
            CreditMode::Additive => {
                self.remote_credit += free;
                free
            }
            CreditMode::Absolute => {
                self.remote_credit = window - self.buffered;
                self.remote_credit
            }
        };
        self.emit(EventKind::More, Value::Array(vec![Value::from(n)]));
    }

    /// Queues an event of this channel, with the channel's extra header
    /// entries (trace context).
    fn emit(&mut self, kind: EventKind, args: Value) {
        let mut ev = Event::on_channel(&self.id, kind, args);
        ev.header.shared = self.headers.clone();
        self.lone_heartbeat = kind == EventKind::Heartbeat && self.out.is_empty();
        self.out.push_back(ev);
    }

    /// Header entries added to every event this channel sends (for
    /// example a trace context).
    pub fn set_headers(&mut self, entries: SharedEntries) {
        self.headers = entries;
    }
}

fn credit_arg(args: &Value) -> Option<u64> {
    match args {
        Value::Array(a) => a.first().and_then(Value::as_u64),
        v => v.as_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ChannelConfig {
        ChannelConfig {
            heartbeat: Duration::from_secs(5),
            lost_after: 2,
            first_reply_timeout: Some(Duration::from_secs(30)),
            window: 100,
        }
    }

    fn drain(c: &mut Channel) -> Vec<Event> {
        std::iter::from_fn(|| c.poll_transmit()).collect()
    }

    fn secs(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    #[test]
    fn an_idle_channel_keeps_no_output_buffer_after_its_heartbeat() {
        let t0 = Instant::now();
        let mut c = Channel::client(MessageId::random(), cfg(), t0);
        c.handle_timeout(secs(t0, 5.0)).unwrap();
        assert!(c.out.capacity() > 0);
        assert_eq!(drain(&mut c).len(), 1);
        assert_eq!(c.out.capacity(), 0, "the heartbeat's buffer is freed");
        // replies and items keep it (a stream reuses it)
        c.send(EventKind::Ok, Value::Nil);
        assert_eq!(drain(&mut c).len(), 1);
        assert!(c.out.capacity() > 0);
    }

    #[test]
    fn heartbeats_every_interval_and_lost_at_the_first_heartbeat_past_two_silent_intervals() {
        let t0 = Instant::now();
        let id = MessageId::random();
        let mut c = Channel::client(id.clone(), cfg(), t0);
        assert_eq!(c.poll_timeout(), secs(t0, 5.0));
        c.handle_timeout(secs(t0, 5.0)).unwrap();
        let hb = drain(&mut c);
        assert_eq!(hb.len(), 1);
        assert_eq!(hb[0].name, EventKind::Heartbeat);
        assert_eq!(hb[0].header.response_to.as_ref(), Some(&id));
        assert_eq!(hb[0].args, Value::Array(vec![Value::from(0)]));
        // the remote heart-beats back at 6 s
        let remote_hb = Event::on_channel(&id, EventKind::Heartbeat, Value::Array(vec![0.into()]));
        assert_eq!(c.on_event(remote_hb, secs(t0, 6.0)).unwrap(), None);
        c.handle_timeout(secs(t0, 10.0)).unwrap();
        assert_eq!(drain(&mut c).len(), 1);
        // 9 s of silence at our heartbeat of 15 s: still alive
        c.handle_timeout(secs(t0, 15.0)).unwrap();
        assert_eq!(drain(&mut c).len(), 1);
        // between heartbeats nothing is checked or sent
        assert_eq!(c.poll_timeout(), secs(t0, 20.0));
        c.handle_timeout(secs(t0, 16.5)).unwrap();
        assert!(drain(&mut c).is_empty());
        // 14 s > 2 intervals at our heartbeat of 20 s: lost
        assert_eq!(
            c.handle_timeout(secs(t0, 20.0)),
            Err(ChannelError::LostRemote(Duration::from_secs(14)))
        );
        // exactly two intervals of silence is not yet "more than two"
        let mut c = Channel::client(id.clone(), cfg(), t0);
        c.handle_timeout(secs(t0, 5.0)).unwrap();
        let any = Event::on_channel(&id, EventKind::Stream, Value::from(1));
        c.on_event(any, secs(t0, 10.0)).unwrap();
        c.handle_timeout(secs(t0, 10.0)).unwrap();
        c.handle_timeout(secs(t0, 15.0)).unwrap();
        c.handle_timeout(secs(t0, 20.0)).unwrap();
        assert!(c.handle_timeout(secs(t0, 25.0)).is_err());
    }

    #[test]
    fn a_passive_heartbeat_client_is_not_lost_before_its_first_heartbeat() {
        // zerorpc-python's `passive_heartbeat=True` client (the Python CLI)
        // sends its first heartbeat one interval after hearing ours: about
        // 2 intervals after its request, later when it is busy.
        let t0 = Instant::now();
        let req = Event::new("slow", Value::Array(vec![12.into()]));
        let id = req.header.message_id.clone();
        let mut s = Channel::server(&req, cfg(), t0);
        // our heartbeat at 5 s; nothing heard since the request
        alive_tick(&mut s, secs(t0, 5.0));
        // our heartbeat at 10 s still finds the client not lost (the old
        // rule, silence since the request >= 2 intervals, lost it here)
        alive_tick(&mut s, secs(t0, 10.0));
        // its first heartbeat comes late, at 14.9 s; then every interval
        for at in [14.9, 19.9, 24.9] {
            let hb = Event::on_channel(&id, EventKind::Heartbeat, Value::Array(vec![0.into()]));
            s.on_event(hb, secs(t0, at)).unwrap();
            alive_tick(&mut s, secs(t0, at + 0.1));
        }
        // a client that never heart-beats is still lost: silence counts
        // from our first heartbeat
        let mut s = Channel::server(&req, cfg(), t0);
        for at in [5.0, 10.0, 15.0] {
            alive_tick(&mut s, secs(t0, at));
        }
        assert_eq!(
            s.handle_timeout(secs(t0, 20.0)),
            Err(ChannelError::LostRemote(Duration::from_secs(15)))
        );
    }

    /// A due heartbeat that must not find the remote lost.
    fn alive_tick(c: &mut Channel, now: Instant) {
        c.handle_timeout(now).unwrap();
        let out = drain(c);
        assert!(
            out.iter().all(|e| e.name == EventKind::Heartbeat),
            "{out:?}"
        );
    }

    #[test]
    fn a_servers_deadline_error_is_the_callers_own_expiry() {
        let (s, ms) = (Duration::from_secs(1), Duration::from_millis(300));
        assert_eq!(
            expiry("DeadlineExceeded", None, Some(s)),
            Some(ChannelError::Timeout(s))
        );
        assert_eq!(
            expiry("DeadlineExceeded", Some(ms), Some(s)),
            Some(ChannelError::DeadlineExceeded(ms))
        );
        assert_eq!(expiry("DeadlineExceeded", None, None), None);
        assert_eq!(expiry("ValueError", Some(ms), Some(s)), None);
        let mut c = Channel::client(MessageId::random(), cfg(), Instant::now());
        assert_eq!(
            c.expiry_of("DeadlineExceeded"),
            Some(ChannelError::Timeout(Duration::from_secs(30)))
        );
        c.set_deadline(Instant::now(), ms);
        assert_eq!(c.deadline_budget(), Some(ms));
    }

    #[test]
    fn a_deadline_bounds_the_first_reply_on_both_sides() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Client: the deadline comes before its own timeout and wins.
        let id = MessageId::random();
        let mut c = Channel::client(id.clone(), cfg(), t0);
        c.set_deadline(t0 + ms(800), ms(800));
        assert_eq!(c.poll_timeout(), t0 + ms(800));
        c.handle_timeout(t0 + ms(799)).unwrap();
        assert_eq!(
            c.handle_timeout(t0 + ms(800)),
            Err(ChannelError::DeadlineExceeded(ms(800)))
        );
        // ...unless the first reply came in time; heartbeats do not count.
        let mut c = Channel::client(id.clone(), cfg(), t0);
        c.set_deadline(t0 + ms(800), ms(800));
        let hb = Event::on_channel(&id, EventKind::Heartbeat, Value::Array(vec![0.into()]));
        c.on_event(hb, t0 + ms(100)).unwrap();
        assert_eq!(c.deadline(), Some(t0 + ms(800)));
        let item = Event::on_channel(&id, EventKind::Stream, Value::from(1));
        c.on_event(item, t0 + ms(500)).unwrap();
        assert_eq!(c.deadline(), None);
        c.handle_timeout(t0 + ms(900)).unwrap();
        // Server: the same until it sends its first reply.
        let req = Event::new("slow", Value::Array(vec![]));
        let mut s = Channel::server(&req, cfg(), t0);
        s.set_deadline(t0 + ms(300), ms(300));
        assert_eq!(s.poll_timeout(), t0 + ms(300));
        assert_eq!(
            s.handle_timeout(t0 + ms(300)),
            Err(ChannelError::DeadlineExceeded(ms(300)))
        );
        let mut s = Channel::server(&req, cfg(), t0);
        s.set_deadline(t0 + ms(300), ms(300));
        assert!(s.send(EventKind::Stream, 1.into()));
        assert_eq!(s.poll_timeout(), t0 + cfg().heartbeat);
        s.handle_timeout(t0 + ms(400)).unwrap();
    }

    #[test]
    fn first_reply_timeout_only_bounds_the_first_reply() {
        let t0 = Instant::now();
        let id = MessageId::random();
        let mut c = Channel::client(
            id.clone(),
            ChannelConfig {
                heartbeat: Duration::from_secs(100),
                first_reply_timeout: Some(Duration::from_secs(3)),
                ..cfg()
            },
            t0,
        );
        assert_eq!(c.poll_timeout(), t0 + Duration::from_secs(3));
        assert!(matches!(
            c.handle_timeout(t0 + Duration::from_secs(3)),
            Err(ChannelError::Timeout(_))
        ));
        let mut c = Channel::client(
            id.clone(),
            ChannelConfig {
                first_reply_timeout: Some(Duration::from_secs(3)),
                ..cfg()
            },
            t0,
        );
        let item = Event::on_channel(&id, EventKind::Stream, Value::from(1));
        assert!(c
            .on_event(item, t0 + Duration::from_secs(1))
            .unwrap()
            .is_some());
        // heartbeats keep it going long after the timeout
        for s in (4..100).step_by(4) {
            let hb = Event::on_channel(&id, EventKind::Heartbeat, Value::Array(vec![0.into()]));
            c.on_event(hb, t0 + Duration::from_secs(s)).unwrap();
            c.handle_timeout(t0 + Duration::from_secs(s)).unwrap();
        }
        // heartbeats alone do not count as the first reply
        let mut c = Channel::client(
            id.clone(),
            ChannelConfig {
                heartbeat: Duration::from_secs(1),
                first_reply_timeout: Some(Duration::from_secs(3)),
                ..cfg()
            },
            t0,
        );
        for ms in (500..3000).step_by(500) {
            let hb = Event::on_channel(&id, EventKind::Heartbeat, Value::Array(vec![0.into()]));
            c.on_event(hb, t0 + Duration::from_millis(ms)).unwrap();
            c.handle_timeout(t0 + Duration::from_millis(ms)).unwrap();
        }
        assert!(c.handle_timeout(t0 + Duration::from_secs(3)).is_err());
    }

    #[test]
    fn sender_respects_additive_credit() {
        let t0 = Instant::now();
        let req = Event::new("range", Value::Array(vec![1000.into()]));
        let mut s = Channel::server(&req, cfg(), t0);
        assert_eq!(s.credit_mode(), CreditMode::Additive);
        assert!(s.send(EventKind::Stream, 0.into()));
        assert!(!s.can_send_item());
        assert!(!s.send(EventKind::Stream, 1.into()), "no credit, refused");
        let more = Event::on_channel(
            &req.header.message_id,
            EventKind::More,
            Value::Array(vec![3.into()]),
        );
        s.on_event(more, t0).unwrap();
        let more = Event::on_channel(
            &req.header.message_id,
            EventKind::More,
            Value::Array(vec![2.into()]),
        );
        s.on_event(more, t0).unwrap();
        assert_eq!(s.send_credit(), 5);
        let bad = Event::on_channel(&req.header.message_id, EventKind::More, Value::from("x"));
        assert_eq!(s.on_event(bad, t0), Err(ChannelError::BadCredit));
    }

    #[test]
    fn credit_is_clamped_to_a_sane_window() {
        let req = Event::new("count", Value::Array(vec![]));
        let t0 = Instant::now();
        let mut s = Channel::server(&req, cfg(), t0);
        let huge = Value::from(1u64 << 63);
        for _ in 0..3 {
            let more = Event::on_channel(
                &req.header.message_id,
                EventKind::More,
                Value::Array(vec![huge.clone()]),
            );
            s.on_event(more, t0).unwrap();
        }
        assert_eq!(s.send_credit(), MAX_SEND_CREDIT);
    }

    #[test]
    fn node_peers_get_absolute_credit() {
        let t0 = Instant::now();
        let mut req = Event::new("range", Value::Array(vec![]));
        req.header.message_id = MessageId::from_str_id("6ba7b810-9dad-11d1-80b4-00c04fd430c8");
        let mut s = Channel::server(&req, cfg(), t0);
        assert_eq!(s.credit_mode(), CreditMode::Absolute);
        for n in [10u64, 4] {
            let more = Event::on_channel(
                &req.header.message_id,
                EventKind::More,
                Value::Array(vec![n.into()]),
            );
            s.on_event(more, t0).unwrap();
            assert_eq!(s.send_credit(), n, "absolute, not added");
        }
    }

    #[test]
    fn receiver_window_never_overflows_and_keeps_stream_moving() {
        // Simulate a sender and a receiver: the receiver consumes slowly;
        // the sender must never have more items in flight than the window.
        let t0 = Instant::now();
        let req = Event::new("range", Value::Array(vec![]));
        let id = req.header.message_id.clone();
        let mut client = Channel::client(id.clone(), cfg(), t0);
        let mut server = Channel::server(&req, cfg(), t0);
        let mut queued: u64 = 0; // items at the client not yet consumed
        let mut in_flight = VecDeque::new();
        let mut sent = 0u64;
        let mut received = 0u64;
        for step in 0..20_000u64 {
            while server.can_send_item() && sent < 10_000 {
                assert!(server.send(EventKind::Stream, sent.into()));
                sent += 1;
            }
            in_flight.extend(drain(&mut server));
            // deliver everything in flight
            while let Some(ev) = in_flight.pop_front() {
                if client.on_event(ev, t0).unwrap().is_some() {
                    queued += 1;
                    received += 1;
                }
            }
            assert!(queued <= 100, "receiver holds at most its window: {queued}");
            // consume a few
            if step % 3 == 0 && queued > 0 {
                let k = queued.min(7);
                queued -= k;
                client.consumed(k);
            }
            for ev in drain(&mut client) {
                server.on_event(ev, t0).unwrap();
            }
            if received == 10_000 {
                break;
            }
        }
        assert_eq!(received, 10_000, "the stream completes");
    }
}
