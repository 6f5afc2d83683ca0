//! One call's channel: the sans-IO state machine (documented on
//! [`Channel`]), its settings in `config` ([`ChannelConfig`]), and in
//! `driver` the runtime side every call's driver shares (its deadline,
//! timeouts and flushing; client calls, client streams and server calls
//! alike), with in `timers` the one timer a connection's (or a server's)
//! channels share.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rmpv::Value;

use crate::event::{Event, EventKind, Head, MessageId, Received, SharedEntries, PROTOCOL_VERSION};
use crate::trace::{TraceContext, TraceParent};

mod config;
mod driver;
mod timers;
pub use config::ChannelConfig;
pub(crate) use driver::{Driver, Outlet};
pub(crate) use timers::{Timers, NO_DEADLINE};

/// The most stream credit a channel keeps, whatever the remote grants
/// (`_zpc_more [2**63]` is clamped to this).
pub const MAX_SEND_CREDIT: u64 = 1 << 16;

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
/// A sender that holds items back rather than dropping them says so on its
/// first `STREAM` event ([`Channel::announce_window`]), and a receiver
/// then grants up to [`ChannelConfig::announced_window`].
///
/// Its deadlines are kept as nanoseconds since it opened (8 bytes each, not
/// an `Instant`'s 16: every open call holds one channel per side), and its
/// [`ChannelConfig`] likewise; a time given before it opened (a deadline
/// that had already passed) counts as its opening. When the remote was
/// last heard is an `Instant`, as given: it is set by every event.
#[derive(Debug)]
pub struct Channel {
    id: MessageId,
    mode: CreditMode,
    /// Its [`ChannelConfig`] (see [`Channel::config`]), in nanoseconds.
    heartbeat: Nanos,
    first_reply_timeout: Nanos,
    lost_after: u32,
    window: u32,
    announced_window: u32,
    /// When it opened: the times below count from it.
    opened: Instant,
    /// When the remote was last heard; `None` until it is heard or our
    /// first heartbeat is due, whichever comes first.
    last_heard: Option<Instant>,
    next_heartbeat: Nanos,
    first_reply_deadline: Nanos,
    /// The call's deadline, until the first reply (received by a client,
    /// sent by a server).
    deadline: Nanos,
    /// The budget the deadline was set from, kept after the first reply
    /// (what a client reports when the server says the deadline passed).
    deadline_budget: Nanos,
    /// STREAM events we may still send (at most [`MAX_SEND_CREDIT`]).
    send_credit: u32,
    /// STREAM events the remote may still send us (granted, not received;
    /// at most the window).
    remote_credit: u32,
    /// STREAM events received and not yet consumed by the application.
    buffered: u32,
    /// Whether a STREAM has started (we grant credit only for streams).
    streaming: bool,
    out: VecDeque<Outgoing>,
    /// `out` holds a heartbeat and nothing else (see `poll_transmit`).
    lone_heartbeat: bool,
    /// The trace context every event sent carries, when traced (its
    /// `traceparent` in place; a `tracestate` is among `headers`).
    traceparent: Option<TraceParent>,
    /// Extra header entries of every event sent.
    headers: SharedEntries,
    /// The first `STREAM` event sent says how much credit this side honours
    /// (see [`Channel::announce_window`]).
    announce: bool,
}

/// A time, as nanoseconds since its channel opened, or a duration in
/// nanoseconds; [`NONE`] for none (a time or duration past 584 years is
/// 584 years).
type Nanos = u64;

/// No time (or duration) at all.
const NONE: Nanos = u64::MAX;

/// `d` in nanoseconds (at most `NONE - 1`).
fn nanos(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).map_or(NONE - 1, |n| n.min(NONE - 1))
}

/// `None` for [`NONE`].
fn some(n: Nanos) -> Option<Nanos> {
    (n != NONE).then_some(n)
}

/// An event this channel queued: its parts, made an [`Event`] by
/// [`Channel::poll_transmit`], or written straight into a message by our
/// drivers ([`Channel::transmit_into`]).
#[derive(Debug)]
struct Outgoing {
    kind: EventKind,
    args: Value,
    /// The first `STREAM` event of a sender that announces its window.
    announce: bool,
}

/// The header key of a sender's window announcement (see
/// [`Channel::announce_window`]); peers that do not know it ignore it.
pub const WINDOW_MAX_KEY: &str = "window_max";

impl Channel {
    fn new(id: MessageId, cfg: ChannelConfig, now: Instant) -> Self {
        Channel {
            mode: CreditMode::for_channel(&id),
            id,
            heartbeat: nanos(cfg.heartbeat),
            first_reply_timeout: cfg.first_reply_timeout.map_or(NONE, nanos),
            lost_after: cfg.lost_after,
            window: cfg.window,
            announced_window: cfg.announced_window,
            opened: now,
            last_heard: None,
            next_heartbeat: nanos(cfg.heartbeat),
            first_reply_deadline: NONE,
            deadline: NONE,
            deadline_budget: NONE,
            send_credit: 1,
            remote_credit: 1,
            buffered: 0,
            streaming: false,
            out: VecDeque::new(),
            lone_heartbeat: false,
            traceparent: None,
            headers: SharedEntries::default(),
            announce: false,
        }
    }

    /// The client side of a call whose request (with id `id`) was just sent.
    pub fn client(id: MessageId, cfg: ChannelConfig, now: Instant) -> Self {
        let mut c = Channel::new(id, cfg, now);
        c.first_reply_deadline = c.first_reply_timeout;
        c
    }

    /// The server side of a call opened by `request`.
    pub fn server(request: &Event, cfg: ChannelConfig, now: Instant) -> Self {
        Channel::new(request.header.message_id.clone(), cfg, now)
    }

    /// This side holds stream items back when its connection has no room
    /// (it never drops one): its first `STREAM` event says so, with the
    /// most credit it honours ([`MAX_SEND_CREDIT`]) under the header key
    /// [`WINDOW_MAX_KEY`], and a receiver of ours then grants up to its
    /// [`ChannelConfig::announced_window`]. A sender behind a queue that
    /// drops (a libzmq ROUTER) must not announce.
    pub fn announce_window(&mut self) {
        self.announce = true;
    }

    /// The request has not left yet (no room, or no server): no heartbeat
    /// until [`Channel::request_sent`], while the first-reply timeout and
    /// the deadline count from the start of the call as ever.
    pub fn request_waits(&mut self) {
        self.next_heartbeat = NONE;
    }

    /// The request has actually left (it may wait for a server to
    /// connect): heartbeats start from now, and the remote's silence is
    /// counted from our first one (until it is heard). The first-reply
    /// deadline still counts from the start of the call.
    pub fn request_sent(&mut self, now: Instant) {
        self.last_heard = None;
        self.next_heartbeat = self.since(now).saturating_add(self.heartbeat);
    }

    /// `t` in nanoseconds since the channel opened (0 if before).
    fn since(&self, t: Instant) -> Nanos {
        nanos(t.saturating_duration_since(self.opened))
    }

    /// The time `n` nanoseconds after the channel opened.
    fn at(&self, n: Nanos) -> Instant {
        self.opened + Duration::from_nanos(n)
    }

    /// Sets the call's deadline (`budget` is what it was computed from, for
    /// the error): [`Channel::handle_timeout`] fails with
    /// [`ChannelError::DeadlineExceeded`] once it passes without a first
    /// reply.
    pub fn set_deadline(&mut self, at: Instant, budget: Duration) {
        self.deadline = self.since(at);
        self.deadline_budget = nanos(budget);
    }

    /// Drops the deadline (its budget is still reported).
    pub fn clear_deadline(&mut self) {
        self.deadline = NONE;
    }

    /// The budget of the deadline set on this channel, if any (kept after
    /// the first reply).
    pub fn deadline_budget(&self) -> Option<Duration> {
        some(self.deadline_budget).map(Duration::from_nanos)
    }

    /// The error for an `ERR` reply: a server's `DeadlineExceeded` for a
    /// budget this channel set is that budget running out, reported as the
    /// caller's own local expiry would be (an inherited deadline's
    /// [`ChannelError::DeadlineExceeded`], or the call timeout's
    /// [`ChannelError::Timeout`]), whichever side noticed first.
    pub fn expiry_of(&self, error_name: &str) -> Option<ChannelError> {
        expiry(
            error_name,
            self.deadline_budget(),
            self.config().first_reply_timeout,
        )
    }

    /// The call's deadline, while it applies.
    pub fn deadline(&self) -> Option<Instant> {
        some(self.deadline).map(|n| self.at(n))
    }

    /// The trace context every event sent carries, when traced (see
    /// [`Channel::set_trace`]).
    pub fn trace_parent(&self) -> Option<&TraceParent> {
        self.traceparent.as_ref()
    }

    /// The channel id (the request's message id).
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    /// The channel's configuration.
    pub fn config(&self) -> ChannelConfig {
        ChannelConfig {
            heartbeat: Duration::from_nanos(self.heartbeat),
            lost_after: self.lost_after,
            first_reply_timeout: some(self.first_reply_timeout).map(Duration::from_nanos),
            window: self.window,
            announced_window: self.announced_window,
        }
    }

    /// The credit interpretation in use.
    pub fn credit_mode(&self) -> CreditMode {
        self.mode
    }

    /// Handles an event received on this channel. Control events are
    /// consumed; anything else is returned for the application.
    pub fn on_event(&mut self, ev: Event, now: Instant) -> Result<Option<Event>, ChannelError> {
        let announced = || announced_window(&ev.header.extra);
        Ok(self
            .received(ev.kind(), &ev.args, announced, now)?
            .then_some(ev))
    }

    /// [`Channel::on_event`] for a reply our client decoded as such
    /// ([`Event::decode_reply`]).
    pub(crate) fn on_received(
        &mut self,
        r: Received,
        now: Instant,
    ) -> Result<Option<Received>, ChannelError> {
        Ok(self
            .received(r.kind, &r.args, || r.window_max, now)?
            .then_some(r))
    }

    /// An event of `kind` received: whether it is the application's.
    /// `announced` is the window it announces (asked of a stream's first
    /// item only).
    fn received(
        &mut self,
        kind: Option<EventKind>,
        args: &Value,
        announced: impl FnOnce() -> Option<u64>,
        now: Instant,
    ) -> Result<bool, ChannelError> {
        self.last_heard = Some(now);
        match kind {
            Some(EventKind::Heartbeat) => Ok(false),
            Some(EventKind::More) => {
                let n = credit_arg(args).ok_or(ChannelError::BadCredit)?;
                let credit = match self.mode {
                    CreditMode::Additive => u64::from(self.send_credit).saturating_add(n),
                    CreditMode::Absolute => n,
                };
                // Whatever the remote grants, no more than a sane window
                // (items also wait for room in the connection's queue, so
                // credit is not what bounds memory; this keeps the count
                // meaningful).
                self.send_credit = credit.min(MAX_SEND_CREDIT) as u32;
                Ok(false)
            }
            kind => {
                self.first_reply_deadline = NONE;
                self.deadline = NONE;
                if kind == Some(EventKind::Stream) {
                    if !self.streaming {
                        self.adopt_window(announced());
                    }
                    self.streaming = true;
                    self.remote_credit = self.remote_credit.saturating_sub(1);
                    self.buffered = self.buffered.saturating_add(1);
                    self.maybe_grant();
                }
                Ok(true)
            }
        }
    }

    /// When [`Channel::handle_timeout`] must next be called: our next
    /// heartbeat (where loss is checked) or the first-reply deadline.
    pub fn poll_timeout(&self) -> Instant {
        // (`NONE` is later than any time)
        self.at(self.next_timeout())
    }

    /// When [`Channel::handle_timeout`] should next be called, if ever.
    pub(crate) fn timeout(&self) -> Option<Instant> {
        some(self.next_timeout()).map(|n| self.at(n))
    }

    fn next_timeout(&self) -> Nanos {
        self.next_heartbeat
            .min(self.first_reply_deadline)
            .min(self.deadline)
    }

    /// Advances time: detects the first-reply timeout, and at each due
    /// heartbeat detects loss or queues the heartbeat.
    ///
    /// Loss follows zerorpc-python's rule (`HeartBeatOnChannel`): at each
    /// of our heartbeats, the remote is lost if it has been silent for
    /// more than `lost_after` intervals; a remote not heard yet counts as
    /// heard at our first heartbeat.
    pub fn handle_timeout(&mut self, time: Instant) -> Result<(), ChannelError> {
        let now = self.since(time);
        if let (Some(at), Some(budget)) = (some(self.deadline), self.deadline_budget()) {
            if now >= at {
                return Err(ChannelError::DeadlineExceeded(budget));
            }
        }
        if now >= self.first_reply_deadline {
            return Err(ChannelError::Timeout(Duration::from_nanos(
                self.first_reply_timeout,
            )));
        }
        if now < self.next_heartbeat {
            return Ok(());
        }
        let heard = *self.last_heard.get_or_insert(time);
        let silence = time.saturating_duration_since(heard);
        if nanos(silence) > self.heartbeat.saturating_mul(self.lost_after.into()) {
            return Err(ChannelError::LostRemote(silence));
        }
        self.emit(EventKind::Heartbeat, Value::Array(vec![Value::from(0)]));
        self.next_heartbeat = now.saturating_add(self.heartbeat);
        Ok(())
    }

    /// The next event to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Event> {
        let o = self.pop()?;
        let mut ev = Event::on_channel(&self.id, o.kind, o.args);
        ev.header.traceparent = self.traceparent;
        ev.header.shared = self.headers.clone();
        if o.announce {
            ev.header.extra.push(window_entry());
        }
        Some(ev)
    }

    /// Appends the next event to send to `m`, as [`Channel::poll_transmit`]
    /// would make it and `Event::append_to` write it, but straight from
    /// its parts (no `Event` made); its kind, or `None` if there was none.
    pub(crate) fn transmit_into(&mut self, m: &mut zmtp::Message) -> Option<EventKind> {
        let o = self.pop()?;
        let announced = o.announce.then(window_entry);
        let id = MessageId::random();
        let head = Head {
            message_id: &id,
            version: Some(PROTOCOL_VERSION),
            response_to: Some(&self.id),
            deadline_ms: None,
            traceparent: self.traceparent.as_ref(),
            extra: announced.as_slice(),
            shared: &self.headers,
            name: o.kind.name(),
        };
        head.append(o.args, m);
        Some(o.kind)
    }

    fn pop(&mut self) -> Option<Outgoing> {
        let o = self.out.pop_front()?;
        // A heartbeat alone in the queue has gone: the channel is likely
        // idle, and an idle channel should not keep the queue's buffer
        // (room for a few events). A busy stream pays one allocation per
        // heartbeat interval for this.
        if self.lone_heartbeat && self.out.is_empty() {
            self.out = VecDeque::new();
            self.lone_heartbeat = false;
        }
        Some(o)
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
        u64::from(self.send_credit)
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
        self.deadline = NONE;
        self.emit(kind, args);
        if kind == EventKind::Stream && std::mem::take(&mut self.announce) {
            if let Some(o) = self.out.back_mut() {
                o.announce = true;
            }
        }
        true
    }

    /// The application consumed `n` received stream items: grant more
    /// credit if the window has room.
    pub fn consumed(&mut self, n: u64) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.buffered = self.buffered.saturating_sub(n);
        self.maybe_grant();
    }

    /// Widens the window when the stream's first event announces one (see
    /// [`Channel::announce_window`]).
    fn adopt_window(&mut self, announced: Option<u64>) {
        if let Some(max) = announced {
            let max = u32::try_from(max).unwrap_or(u32::MAX);
            self.window = self.window.max(self.announced_window.min(max));
        }
    }

    fn maybe_grant(&mut self) {
        if !self.streaming {
            return;
        }
        let window = self.window.max(1);
        let free = window.saturating_sub(self.buffered.saturating_add(self.remote_credit));
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

    /// Queues an event of this channel (its header, with the channel's
    /// trace context and extra entries, is made when it is sent).
    fn emit(&mut self, kind: EventKind, args: Value) {
        self.lone_heartbeat = kind == EventKind::Heartbeat && self.out.is_empty();
        self.out.push_back(Outgoing {
            kind,
            args,
            announce: false,
        });
    }

    /// Header entries added to every event this channel sends.
    pub fn set_headers(&mut self, entries: SharedEntries) {
        self.headers = entries;
    }

    /// The trace context every event this channel sends carries (see
    /// [`TraceContext::stamp`]; kept without an allocation unless it has a
    /// `tracestate`).
    pub fn set_trace(&mut self, ctx: &TraceContext) {
        self.traceparent = Some(ctx.trace_parent());
        self.headers = ctx.tracestate_entries();
    }
}

/// The window a header's `extra` entries announce (see
/// [`Channel::announce_window`]).
pub(crate) fn announced_window(extra: &[(Value, Value)]) -> Option<u64> {
    extra.iter().find_map(|(k, v)| {
        (k.as_str() == Some(WINDOW_MAX_KEY))
            .then(|| v.as_u64())
            .flatten()
    })
}

/// A sender's window announcement (see [`Channel::announce_window`]).
fn window_entry() -> (Value, Value) {
    (Value::from(WINDOW_MAX_KEY), Value::from(MAX_SEND_CREDIT))
}

fn credit_arg(args: &Value) -> Option<u64> {
    match args {
        Value::Array(a) => a.first().and_then(Value::as_u64),
        v => v.as_u64(),
    }
}

#[cfg(test)]
mod tests;
