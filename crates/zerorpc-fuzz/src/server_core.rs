//! The `server_recv` target's server: what `zerorpc::Server` does with each
//! message its ROUTER receives, over the crate's public sans-IO pieces.
//!
//! The server's routing (`handle_message`, its channel table, the per-call
//! mailboxes and the `ServerCall` future) is private and needs a live
//! `RouterSocket`; it is written out here step for step, so that what it
//! drives is the library's own code: `Event::decode` with the server's
//! limits, `Channel::server` from whatever request arrives,
//! `Channel::set_deadline` from its `deadline_ms`, the trace context
//! (`TraceContext::from_header`, `child`, `Channel::set_trace`), `Channel::on_event` with whatever events
//! arrive, `handle_timeout` with an explicit clock, `send`, credit and
//! `poll_transmit`, the replies' encoding, and the demo service's
//! dispatch (introspection, argument decoding, handlers) as
//! `start_handler` does it. Every reply is checked.

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmpv::Value;
use zerorpc::futures::stream::BoxStream;
use zerorpc::futures::StreamExt;
use zerorpc::{
    CallContext, CallError, Channel, ChannelConfig, ChannelError, DecodeLimits, Event, EventKind,
    HandlerFuture, MessageId, Response, Service, TraceContext,
};

/// Calls one client may have open (the server's default is 10,000: small
/// here so refusals are reached).
pub const PER_CLIENT: usize = 3;
/// Calls open in all (default 50,000).
pub const MAX_CALLS: usize = 6;
/// Calls waiting to start (default 10,000).
pub const MAX_QUEUED: usize = 4;
/// Stream items a call sends per poll (the server's is 256; fewer keeps
/// an execution short).
const ITEMS_PER_POLL: usize = 16;

enum Phase {
    /// Waiting to start (for room in its client's queue, or a slot).
    Queued(Box<Event>),
    Running(HandlerFuture),
    Streaming(BoxStream<'static, Result<Value, CallError>>),
    Done,
}

struct Call {
    identity: Bytes,
    id: MessageId,
    envelope: Vec<Bytes>,
    ch: Channel,
    phase: Phase,
    /// The trace id every reply must carry, when the request had one.
    trace: Option<[u8; 16]>,
}

pub struct ServerCore {
    service: zerorpc::DynamicService,
    cfg: ChannelConfig,
    limits: DecodeLimits,
    calls: Vec<Call>,
    /// Messages sent, as the ROUTER would get them.
    pub sent: usize,
}

impl ServerCore {
    pub fn new() -> Self {
        let opts = zerorpc::ServerOptions::default();
        ServerCore {
            service: zerorpc::demo::demo_service(),
            cfg: opts.channel,
            limits: opts.decode_limits,
            calls: Vec::new(),
            sent: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// The id of an open call (for the input to address it).
    pub fn call_id(&self, i: usize) -> Option<(Bytes, MessageId)> {
        let c = self.calls.get(i % self.calls.len().max(1))?;
        Some((c.identity.clone(), c.id.clone()))
    }

    fn find(&self, identity: &Bytes, id: &MessageId) -> Option<usize> {
        self.calls
            .iter()
            .position(|c| c.identity == identity && c.id == *id)
    }

    /// One message from the ROUTER: `[identity, envelope..., event]`
    /// (`handle_message`).
    pub fn on_message(&mut self, frames: Vec<Bytes>, now: Instant) {
        let (Some(identity), Some(payload)) = (frames.first(), frames.last()) else {
            return;
        };
        if frames.len() < 2 {
            return;
        }
        let Ok(event) = Event::decode(payload, self.limits) else {
            return;
        };
        match event.header.response_to.clone() {
            Some(channel) => {
                if let Some(i) = self.find(identity, &channel) {
                    // The call's task takes it from its mailbox.
                    if self.calls[i].ch.on_event(event, now).is_err() {
                        // (a bad control event: the call is abandoned)
                        self.calls.remove(i);
                        return;
                    }
                    self.poll(i, now, false);
                }
            }
            None => {
                let id = event.header.message_id.clone();
                let envelope = frames[1..frames.len() - 1].to_vec();
                if self.find(identity, &id).is_some() {
                    return; // a duplicate request id: ignored
                }
                let of_client = self.calls.iter().filter(|c| c.identity == identity).count();
                let queued = self
                    .calls
                    .iter()
                    .filter(|c| matches!(c.phase, Phase::Queued(_)))
                    .count();
                if of_client >= PER_CLIENT || self.calls.len() >= MAX_CALLS || queued >= MAX_QUEUED
                {
                    let e = CallError::new("ServerOverloaded", "too many calls; try again later");
                    let reply = Event::on_channel(&id, EventKind::Err, e.to_args());
                    let msg = reply_message(identity, &envelope, reply.encode());
                    check_reply(&id, None, &msg);
                    self.sent += 1;
                    return;
                }
                let mut ch = Channel::server(&event, self.cfg, now);
                if let Some(ms) = event.header.deadline_ms {
                    let budget = Duration::from_millis(ms);
                    if let Some(at) = now.checked_add(budget) {
                        ch.set_deadline(at, budget);
                    }
                }
                let ctx = TraceContext::from_header(&event.header).map(|remote| remote.child());
                if let Some(ctx) = &ctx {
                    ch.set_trace(ctx);
                }
                assert!(
                    ch.poll_timeout() >= now,
                    "a new call's timer is in the past"
                );
                self.calls.push(Call {
                    identity: identity.clone(),
                    id,
                    envelope,
                    ch,
                    phase: Phase::Queued(Box::new(event)),
                    trace: ctx.map(|c| c.trace_id),
                });
                let i = self.calls.len() - 1;
                self.poll(i, now, false);
            }
        }
    }

    /// The client's connection dropped: its calls are cancelled.
    pub fn disconnect(&mut self, identity: &Bytes) {
        self.calls.retain(|c| c.identity != identity);
    }

    /// Polls every call (their timers may have fired).
    pub fn poll_all(&mut self, now: Instant, start: bool) {
        let mut i = 0;
        while i < self.calls.len() {
            if self.poll(i, now, start) {
                i += 1;
            }
        }
    }

    /// What `ServerCall::poll` does once woken; `start` when its client has
    /// room and a slot is free. Returns whether the call is still open.
    pub fn poll(&mut self, i: usize, now: Instant, start: bool) -> bool {
        let mut call = self.calls.remove(i);
        let open = self.poll_call(&mut call, now, start);
        if open {
            self.calls.insert(i, call);
        }
        open
    }

    fn poll_call(&mut self, call: &mut Call, now: Instant, start: bool) -> bool {
        let Call {
            identity,
            id,
            envelope,
            ch,
            phase,
            trace,
        } = call;
        let route = Route {
            identity,
            envelope,
            id,
            trace: *trace,
        };
        let (service, sent) = (&self.service, &mut self.sent);
        let mut expired = None;
        if now >= ch.poll_timeout() {
            match ch.handle_timeout(now) {
                Ok(()) => {}
                Err(ChannelError::DeadlineExceeded(budget)) => expired = Some(budget),
                Err(_) => return false, // the client is lost: cancelled
            }
        }
        if start {
            if let Phase::Queued(_) = *phase {
                let Phase::Queued(req) = std::mem::replace(phase, Phase::Done) else {
                    unreachable!()
                };
                *phase = Phase::Running(dispatch(service, *req));
            }
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match phase {
            Phase::Running(fut) => match fut.as_mut().poll(&mut cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(Response::Value(v))) => {
                    ch.send(EventKind::Ok, Value::Array(vec![v]));
                    *phase = Phase::Done;
                }
                Poll::Ready(Ok(Response::Stream(st))) => *phase = Phase::Streaming(st),
                Poll::Ready(Err(e)) => {
                    ch.send(EventKind::Err, e.to_args());
                    *phase = Phase::Done;
                }
            },
            Phase::Streaming(_) => {}
            Phase::Queued(_) | Phase::Done => {}
        }
        if let Phase::Streaming(st) = phase {
            let mut budget = ITEMS_PER_POLL;
            let mut end = false;
            while ch.can_send_item() && !ch.has_output() && budget > 0 {
                budget -= 1;
                match st.poll_next_unpin(&mut cx) {
                    Poll::Pending => break,
                    Poll::Ready(Some(Ok(v))) => {
                        assert!(ch.send(EventKind::Stream, v), "sent without credit");
                    }
                    Poll::Ready(Some(Err(e))) => {
                        ch.send(EventKind::Err, e.to_args());
                        end = true;
                    }
                    Poll::Ready(None) => {
                        ch.send(EventKind::StreamDone, Value::Nil);
                        end = true;
                    }
                }
                flush(ch, &route, sent);
                if end {
                    break;
                }
            }
            if end {
                *phase = Phase::Done;
            }
        }
        if let Some(budget) = expired {
            // `cancel_for_deadline`
            if matches!(*phase, Phase::Done) {
                ch.clear_deadline();
            } else {
                let e = CallError::new(
                    zerorpc::deadline::ERROR_NAME,
                    format!("the caller's deadline passed ({budget:?} budget)"),
                );
                *phase = Phase::Done;
                ch.send(EventKind::Err, e.to_args());
            }
        }
        flush(ch, &route, sent);
        // (done once its last reply is out)
        !matches!(*phase, Phase::Done) || ch.has_output()
    }
}

/// `start_handler` for the demo service. `slow` (a tokio timer) and
/// `bytes` (up to 32 MiB a call) are handlers that never answer here.
fn dispatch(service: &zerorpc::DynamicService, req: Event) -> HandlerFuture {
    use zerorpc::futures::FutureExt;
    let args = match req.args {
        Value::Array(a) => a,
        Value::Nil => Vec::new(),
        _ => {
            let e = CallError::bad_args("arguments must be a list");
            return async move { Err(e) }.boxed();
        }
    };
    if let Some(r) = zerorpc::introspection::answer(service, &req.name, &args) {
        return async move { r.map(Response::Value) }.boxed();
    }
    if req.name == "slow" || req.name == "bytes" {
        return zerorpc::futures::future::pending().boxed();
    }
    let ctx = CallContext {
        header: req.header,
        user_id: None,
    };
    match service.call(&req.name, args, ctx) {
        Some(fut) => fut,
        None => {
            let e = CallError::new("NameError", req.name);
            async move { Err(e) }.boxed()
        }
    }
}

/// `[identity, envelope..., payload]`: the ROUTER sends it to the
/// identity's connection, whose DEALER drops the envelope.
fn reply_message(identity: &Bytes, envelope: &[Bytes], payload: Bytes) -> Vec<Bytes> {
    let mut msg = Vec::with_capacity(envelope.len() + 2);
    msg.push(identity.clone());
    msg.extend(envelope.iter().cloned());
    msg.push(payload);
    msg
}

/// The parts of a call its replies are made of.
struct Route<'a> {
    identity: &'a Bytes,
    envelope: &'a [Bytes],
    id: &'a MessageId,
    trace: Option<[u8; 16]>,
}

/// `flush`: every event the channel queued goes to the client, checked.
fn flush(ch: &mut Channel, route: &Route, sent: &mut usize) {
    while let Some(ev) = ch.poll_transmit() {
        let msg = reply_message(route.identity, route.envelope, ev.encode());
        check_reply(route.id, route.trace, &msg);
        *sent += 1;
    }
}

/// A reply as the client reads it: on its channel, a protocol event, with
/// the call's trace.
fn check_reply(id: &MessageId, trace: Option<[u8; 16]>, msg: &[Bytes]) {
    let payload = msg.last().expect("a reply has its event");
    let ev = Event::decode(payload, DecodeLimits::default()).expect("a reply decodes");
    assert_eq!(
        ev.header.response_to.as_ref(),
        Some(id),
        "a reply off its channel"
    );
    assert!(
        ev.kind().is_some(),
        "a reply that is not a protocol event: {}",
        ev.name
    );
    if let Some(tid) = trace {
        let got = TraceContext::from_header(&ev.header).map(|c| c.trace_id);
        assert_eq!(got, Some(tid), "a reply lost its call's trace");
    }
}
