//! The server: a ROUTER socket, one task per channel.
//!
//! Every request opens a channel served by its own task (a small
//! hand-written future), which drives the sans-IO [`Channel`] (heartbeats,
//! credit, loss), runs the handler, and sends `OK` / `ERR` / `STREAM`...
//! `STREAM_DONE`. A handler that panics
//! produces an `ERR` for its call only. When a client goes silent for two
//! heartbeat intervals, or its connection drops, its handlers are dropped
//! (cancelled).

use std::collections::HashMap;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use rmpv::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use zmtp::{Endpoint, Message, PeerSender, RouterSocket, SocketEvent, SocketOptions, TrySendError};

use crate::auth::Authorization;
use crate::channel::{Channel, ChannelConfig, ChannelError};
use crate::error::CallError;
use crate::error::Error;
use crate::event::{DecodeLimits, Event, EventKind, MessageId};
use crate::introspection;
use crate::mailbox::{mailbox, MailError, MailReceiver, MailSender};
use crate::record::{Outcome, Peer, Recorder, Side, Span};
use crate::report::{ErrorReport, OnError};
use crate::service::{CallContext, HandlerFuture, IntoService, Response, Service};
use crate::trace::TraceContext;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Heartbeat interval and credit window (the first-reply timeout is a
    /// client setting and is ignored here).
    pub channel: ChannelConfig,
    /// Most handlers running at once; further calls wait (still
    /// heart-beating). `None`: unlimited.
    pub max_concurrency: Option<usize>,
    /// Transport settings.
    pub socket: SocketOptions,
    /// Limits on incoming events.
    pub decode_limits: DecodeLimits,
    /// Control events (heartbeats, credit) queued per channel before
    /// further ones are dropped.
    pub channel_queue: usize,
    /// Records every call (server side), and traces calls that arrive
    /// without a trace context in a new trace. Without it, a call that
    /// carries a context is still traced (its handler's calls are its
    /// children), unrecorded.
    pub recorder: Option<Recorder>,
    /// Emits call metrics through the `metrics` facade (see
    /// [`crate::metrics`]).
    pub metrics: bool,
    /// Most calls open at once from one client connection (running,
    /// streaming or waiting); further requests from it get
    /// `ERR ServerOverloaded` at once. Default 10,000 (an idle call costs
    /// a few KB: this bounds one client to tens of MB).
    pub max_calls_per_client: usize,
    /// Most calls open at once in all (from every client). Default 50,000.
    pub max_calls: usize,
    /// Most calls waiting to start (for a `max_concurrency` slot, or for
    /// their client to read the replies already sent it); further
    /// requests get `ERR ServerOverloaded`. Default 10,000.
    pub max_queued_calls: usize,
    /// Closes a client connection that has sent nothing for this long (no
    /// calls, no heartbeats), so idle clients cannot hold file descriptors
    /// forever; ZeroMQ clients reconnect by themselves when they next
    /// call. Default 5 minutes. `None`: never (also the default of
    /// [`SocketOptions::idle_timeout`], which this overrides when set).
    pub idle_timeout: Option<std::time::Duration>,
    /// Under load (further requests already received), polls a new small
    /// call once on the receive loop before giving it a task of its own,
    /// so a handler that answers at once is served without a task
    /// hand-off (the default; worth about 1.8× calls/s with 256 in
    /// flight). A handler that blocks its first poll then delays other
    /// requests: such handlers should use `tokio::task::spawn_blocking`,
    /// or turn this off.
    pub inline_first_poll: bool,
    /// Hears of every error a handler returns or panics with (its name,
    /// message, traceback and the call's trace id), to pass on to an
    /// error tracker. See [`crate::report`].
    pub on_error: Option<OnError>,
    /// Which users may call which methods (see [`crate::auth`]); a denied
    /// call gets `ERR PermissionDenied`. `None`: every caller may call
    /// everything.
    pub authorize: Option<Arc<Authorization>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            channel: ChannelConfig {
                first_reply_timeout: None,
                ..ChannelConfig::default()
            },
            max_concurrency: None,
            socket: SocketOptions::default(),
            decode_limits: DecodeLimits::default(),
            channel_queue: 64,
            inline_first_poll: true,
            recorder: None,
            on_error: None,
            authorize: None,
            metrics: false,
            max_calls_per_client: 10_000,
            max_calls: 50_000,
            max_queued_calls: 10_000,
            idle_timeout: Some(std::time::Duration::from_secs(300)),
        }
    }
}

type ChannelKey = (Bytes, MessageId);

/// The open calls, by channel, and how many each client has.
#[derive(Default)]
struct Table {
    chans: HashMap<ChannelKey, MailSender<Inbound>>,
    per_client: HashMap<Bytes, usize>,
}

impl Table {
    fn insert(&mut self, key: ChannelKey, tx: MailSender<Inbound>) {
        *self.per_client.entry(key.0.clone()).or_default() += 1;
        self.chans.insert(key, tx);
    }

    fn remove(&mut self, key: &ChannelKey) {
        if self.chans.remove(key).is_some() {
            if let Some(n) = self.per_client.get_mut(&key.0) {
                *n -= 1;
                if *n == 0 {
                    self.per_client.remove(&key.0);
                }
            }
        }
    }

    fn remove_client(&mut self, peer: &Bytes) {
        self.chans.retain(|(p, _), _| p != peer);
        self.per_client.remove(peer);
    }
}

/// Warnings a client can trigger at will: rate-limited.
static CALL_LOG: zmtp::RateLimitedLog =
    zmtp::RateLimitedLog::new(std::time::Duration::from_secs(10));

struct Inner {
    service: Arc<dyn Service>,
    /// Its name, shared by trace records.
    service_name: Arc<str>,
    router: RouterSocket,
    opts: ServerOptions,
    channels: Mutex<Table>,
    limiter: Option<Arc<Semaphore>>,
    cancel: CancellationToken,
    /// Set by a graceful shutdown: new calls are refused.
    draining: AtomicBool,
    /// Calls whose driver is alive (still in the table or finishing).
    live: AtomicUsize,
    /// Calls waiting to start.
    queued: AtomicUsize,
    /// Requests refused with `ServerOverloaded`.
    overloaded: AtomicU64,
}

impl Inner {
    /// The authenticated user of the connection with this routing id
    /// (none without a security mechanism that names users).
    fn user_of(&self, routing_id: &Bytes) -> Option<Arc<str>> {
        if matches!(self.opts.socket.security, zmtp::Security::Null) {
            return None;
        }
        let id = self.router.user_id(routing_id)?;
        Some(Arc::from(String::from_utf8_lossy(&id).as_ref()))
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, Table> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the receive loop and ends every call: silently, or (during a
    /// graceful shutdown) with `ERR ServerShutdown`.
    fn stop(&self) {
        self.cancel.cancel();
        let draining = self.draining.load(Ordering::SeqCst);
        // Under the table lock, after the cancel: a call the receive loop
        // registers concurrently is either drained here or refused there.
        for (_, tx) in std::mem::take(&mut *self.channels()).chans {
            if draining {
                // A full mailbox: that call ends silently instead.
                let _ = tx.try_send(Inbound::Shutdown);
            }
        }
    }
}

/// A ZeroRPC server for one service. Dropping it stops it (like
/// [`Server::shutdown`]).
pub struct Server {
    inner: Arc<Inner>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.inner.stop();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("service", &self.inner.service.name())
            .finish()
    }
}

impl Server {
    /// A server for `service` with default options.
    pub fn new(service: impl IntoService) -> Self {
        Server::with_options(service, ServerOptions::default())
    }

    /// A server with options.
    pub fn with_options(service: impl IntoService, opts: ServerOptions) -> Self {
        let service: Arc<dyn Service> = Arc::new(service.into_service());
        let inner = Arc::new(Inner {
            service_name: Arc::from(service.name()),
            service,
            router: RouterSocket::with_options(SocketOptions {
                idle_timeout: opts.idle_timeout.or(opts.socket.idle_timeout),
                ..opts.socket.clone()
            }),
            limiter: opts
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n.max(1)))),
            opts,
            channels: Mutex::new(Table::default()),
            cancel: CancellationToken::new(),
            draining: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            overloaded: AtomicU64::new(0),
        });
        Server { inner }
    }

    /// Listens on an endpoint; returns it with the real port.
    pub async fn bind(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.inner.router.bind(endpoint).await?)
    }

    /// Connects to an endpoint (for example a hub's worker side).
    pub async fn connect(&self, endpoint: &str) -> Result<(), Error> {
        Ok(self.inner.router.connect(endpoint).await?)
    }

    /// Connections refused or failed during their handshake (with CURVE:
    /// keys the authenticator refused, clients with the wrong server key).
    pub fn refused_connections(&self) -> u64 {
        self.inner.router.handshake_failures()
    }

    /// Number of calls in progress.
    pub fn active_calls(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Calls waiting to start (for a concurrency slot, or for their client
    /// to read the replies already sent it).
    pub fn queued_calls(&self) -> usize {
        self.inner.queued.load(Ordering::SeqCst)
    }

    /// Requests refused with `ERR ServerOverloaded` (over
    /// `max_calls_per_client`, `max_calls` or `max_queued_calls`).
    pub fn overloaded_calls(&self) -> u64 {
        self.inner.overloaded.load(Ordering::Relaxed)
    }

    /// Bytes of replies queued for clients that have not taken them yet.
    pub fn queued_reply_bytes(&self) -> usize {
        self.inner.router.queued_outbound_bytes()
    }

    /// Serves until the server is dropped (or [`Server::shutdown`]).
    pub async fn run(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let mut events = inner.router.monitor();
        loop {
            tokio::select! {
                _ = inner.cancel.cancelled() => return Ok(()),
                m = inner.router.recv() => {
                    // Take what has arrived, up to a batch, before looking
                    // at the other branches again.
                    let mut next = Some(m?);
                    let mut taken = 0;
                    while let Some(m) = next.take() {
                        taken += 1;
                        if taken < 64 {
                            next = inner.router.try_recv()?;
                        }
                        // Under load (more requests already waiting) a
                        // small request is served here, without a task
                        // hand-off; otherwise (idle, or a big payload to
                        // work on) it goes to another worker at once.
                        let inline = inner.opts.inline_first_poll
                            && next.is_some()
                            && m.byte_len() <= INLINE_MAX_BYTES;
                        if let Some(call) = handle_message(inner, m) {
                            start(call, inline).await;
                        }
                    }
                }
                ev = events.recv() => match ev {
                    Ok(SocketEvent::Disconnected { routing_id: Some(id), .. }) => {
                        // Its channels can no longer be answered: cancel them.
                        inner.channels().remove_client(&id);
                        if inner.opts.metrics {
                            crate::metrics::connections("server", -1.0);
                        }
                    }
                    Ok(SocketEvent::Connected { .. }) if inner.opts.metrics => {
                        crate::metrics::connections("server", 1.0);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Stops serving at once: running calls are cancelled without a reply
    /// (their clients detect the loss, as after a crash). See
    /// [`Server::shutdown_gracefully`] for the polite way.
    pub fn shutdown(&self) {
        self.inner.stop();
    }

    /// Stops taking new calls (they get `ERR ServerShutdown`), waits up to
    /// `grace` for running calls to finish, then cancels the rest, each with
    /// an `ERR ServerShutdown` to its client.
    pub async fn shutdown_gracefully(&self, grace: std::time::Duration) {
        self.inner.draining.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        while self.active_calls() > 0 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.shutdown();
        // Give cancelled calls a moment to tell their clients, and the
        // connections a moment to write it.
        let deadline = Instant::now() + std::time::Duration::from_millis(500);
        while (self.active_calls() > 0 || self.inner.router.queued_outbound() > 0)
            && Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // (what a writer already took is on its way to the socket)
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Requests larger than this always get a task of their own (their
/// decoding and encoding is worth spreading over the workers).
const INLINE_MAX_BYTES: usize = 8 * 1024;

/// Polls a new call once on the receive loop's task: a handler that
/// answers at once (most do) costs no task and no hand-off; any other is
/// spawned, and re-registers its wake-ups with its own task on its next
/// poll.
async fn start(mut call: ServerCall, inline: bool) {
    if inline {
        let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut call).poll(cx))).await;
        if first.is_ready() {
            return;
        }
    }
    tokio::spawn(call);
}

/// Routes one message: to its channel's mailbox, or (a request) to a new
/// call, returned to be started.
fn handle_message(inner: &Arc<Inner>, msg: Message) -> Option<ServerCall> {
    let frames = msg.frames();
    let (Some(identity), Some(payload)) = (frames.first(), frames.last()) else {
        return None;
    };
    if frames.len() < 2 {
        return None;
    }
    let event = match Event::decode(payload, inner.opts.decode_limits) {
        Ok(e) => e,
        Err(e) => {
            if let Some(suppressed) = CALL_LOG.admit("undecodable event") {
                tracing::warn!(peer = ?identity, error = %e, suppressed, "dropping undecodable event");
            }
            return None;
        }
    };
    match event.header.response_to.clone() {
        Some(channel) => {
            let chans = inner.channels();
            match chans.chans.get(&(identity.clone(), channel)) {
                Some(tx) => match tx.try_send(Inbound::Event(event)) {
                    Ok(()) => {}
                    Err(MailError::Full) => {
                        if let Some(suppressed) = CALL_LOG.admit("channel queue full") {
                            tracing::warn!(peer = ?identity, suppressed, "channel event queue full, dropping event")
                        }
                    }
                    Err(MailError::Closed) => {}
                },
                None => {
                    tracing::debug!(peer = ?identity, name = %event.name, "event for unknown channel")
                }
            }
            None
        }
        None => {
            let key = (identity.clone(), event.header.message_id.clone());
            let envelope = frames[1..frames.len() - 1].to_vec();
            let Some(peer) = inner.router.peer_sender(identity) else {
                // Gone already: nobody to answer.
                return None;
            };
            let (tx, rx) = mailbox(inner.opts.channel_queue);
            {
                let mut chans = inner.channels();
                if inner.cancel.is_cancelled() {
                    return None;
                }
                if chans.chans.contains_key(&key) {
                    if let Some(suppressed) = CALL_LOG.admit("duplicate request id") {
                        tracing::warn!(peer = ?identity, id = %key.1, suppressed, "duplicate request id, ignored");
                    }
                    return None;
                }
                let opts = &inner.opts;
                let refusal = if chans.per_client.get(identity).copied().unwrap_or(0)
                    >= opts.max_calls_per_client
                {
                    Some(("calls open from this client", opts.max_calls_per_client))
                } else if chans.chans.len() >= opts.max_calls {
                    Some(("calls open", opts.max_calls))
                } else if inner.queued.load(Ordering::SeqCst) >= opts.max_queued_calls {
                    Some(("calls waiting to start", opts.max_queued_calls))
                } else {
                    None
                };
                if let Some((what, limit)) = refusal {
                    drop(chans);
                    refuse_overloaded(inner, &peer, envelope, &event, what, limit);
                    return None;
                }
                chans.insert(key.clone(), tx);
            }
            inner.live.fetch_add(1, Ordering::SeqCst);
            inner.queued.fetch_add(1, Ordering::SeqCst);
            let now = Instant::now();
            let mut ch = Channel::server(&event, inner.opts.channel, now.into_std());
            if let Some(ms) = event.header.deadline_ms {
                let budget = crate::deadline::budget_of(ms);
                // (a budget too large to add up is no deadline)
                if let Some(at) = now.into_std().checked_add(budget) {
                    ch.set_deadline(at, budget);
                }
            }
            let trace = server_trace(inner, &event, identity);
            if let Some(ctx) = trace.as_ref().and_then(|t| t.ctx.as_ref()) {
                // every event of a traced channel carries its context
                ch.set_headers(ctx.shared_entries());
            }
            let timer = Box::pin(tokio::time::sleep_until(Instant::from_std(
                ch.poll_timeout(),
            )));
            Some(ServerCall {
                inner: inner.clone(),
                key,
                envelope,
                peer,
                ch,
                request: Some(Box::new(event)),
                phase: Phase::Queued,
                permit: None,
                acquiring: None,
                timer,
                rx,
                sending: None,
                trace,
            })
        }
    }
}

/// Answers a request over a limit with `ERR ServerOverloaded`, without
/// opening a channel (best effort: a client whose queue is full misses it
/// and times out), and counts it.
fn refuse_overloaded(
    inner: &Inner,
    peer: &PeerSender,
    envelope: Vec<Bytes>,
    request: &Event,
    what: &str,
    limit: usize,
) {
    inner.overloaded.fetch_add(1, Ordering::Relaxed);
    if inner.opts.metrics {
        crate::metrics::overloaded(&inner.service_name);
    }
    if let Some(suppressed) = CALL_LOG.admit("overloaded") {
        tracing::warn!(method = %request.name, limit, suppressed, "refusing a call: too many {what}");
    }
    let msg = format!("too many {what} (limit {limit}); try again later");
    let e = CallError::new("ServerOverloaded", msg.clone())
        .with_traceback(format!("ServerOverloaded: {msg}\n"));
    let reply = Event::on_channel(&request.header.message_id, EventKind::Err, e.to_args());
    let mut m: Message = envelope.into_iter().collect();
    m.push_back(reply.encode());
    let _ = peer.try_send(m);
}

/// What the receive loop hands a channel's driver. (Events are not
/// boxed: that would cost an allocation per event for a variant, the
/// shutdown, that is sent once.)
#[allow(clippy::large_enum_variant)]
enum Inbound {
    /// An event the client sent on this channel.
    Event(Event),
    /// A graceful shutdown: answer `ERR ServerShutdown` and stop.
    Shutdown,
}

enum Phase {
    Queued,
    Running(HandlerFuture),
    Streaming(futures::stream::BoxStream<'static, Result<Value, CallError>>),
    Done,
}

type BoxedAcquire = Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

/// Drives one call: the sans-IO [`Channel`] (heartbeats, credit, loss),
/// the handler, and the replies. A hand-written future rather than an
/// `async fn`, so an idle call costs only these fields (the waiting states
/// of a blocked send or a queued call are boxed, and rare).
struct ServerCall {
    inner: Arc<Inner>,
    key: ChannelKey,
    /// The frames between the routing id and the event (a delimiter, if
    /// the client sent one).
    envelope: Vec<Bytes>,
    /// The client's connection: replies are queued there, and the call
    /// waits for room before starting or producing more.
    peer: PeerSender,
    ch: Channel,
    /// The request, until its handler starts.
    request: Option<Box<Event>>,
    phase: Phase,
    /// Held while the handler runs (with `max_concurrency`).
    permit: Option<OwnedSemaphorePermit>,
    acquiring: Option<BoxedAcquire>,
    /// One timer for the channel's life, moved as its deadline moves.
    timer: Pin<Box<Sleep>>,
    rx: MailReceiver<Inbound>,
    /// A reply waiting for room in the client's queue.
    sending: Option<Message>,
    /// The call's span, when traced (boxed: untraced calls stay small).
    trace: Option<Box<ServerTrace>>,
}

/// What is watched of an observed call (traced, or with metrics on): its
/// span and what is known of its outcome so far.
struct ServerTrace {
    /// The call's trace context, when traced.
    ctx: Option<TraceContext>,
    /// Recorded at the end (with a recorder).
    span: Option<Span>,
    /// The method called.
    method: String,
    /// With metrics on: when the call started.
    metrics: Option<Instant>,
    outcome: Outcome,
    /// When the outcome was decided (the reply queued, the loss seen);
    /// the span ends there, not when the call's task is torn down.
    ended: Option<std::time::Instant>,
    items: u64,
}

/// The server span of a new call: a child of the caller's span when the
/// request carries one (or of a legacy trace id), a new trace when this
/// server records; else none.
fn server_trace(inner: &Inner, event: &Event, identity: &Bytes) -> Option<Box<ServerTrace>> {
    let ctx = TraceContext::from_header(&event.header)
        .map(|remote| remote.child())
        .or_else(|| {
            inner
                .opts
                .recorder
                .as_ref()
                .map(|_| TraceContext::new_root())
        });
    if ctx.is_none() && !inner.opts.metrics && inner.opts.on_error.is_none() {
        return None;
    }
    // Metrics labels and store keys name only methods this server has: any
    // other name (a client's typo, or a hostile client's endless random
    // names) is one label; its NameError outcome keeps the name.
    let method = if inner.service.has_method(&event.name)
        || introspection::METHODS.contains(&event.name.as_str())
    {
        event.name.clone()
    } else {
        crate::record::UNKNOWN_METHOD.to_owned()
    };
    let span = match (&ctx, &inner.opts.recorder) {
        (Some(ctx), Some(_)) => Some(Span::start(
            ctx.clone(),
            Side::Server,
            inner.service_name.clone(),
            method.clone(),
            Peer::RoutingId(identity.clone()),
        )),
        _ => None,
    };
    let metrics = inner.opts.metrics.then(|| {
        crate::metrics::in_flight(&inner.service_name, 1.0);
        Instant::now()
    });
    Some(Box::new(ServerTrace {
        ctx,
        span,
        method,
        metrics,
        outcome: Outcome::Cancelled,
        ended: None,
        items: 0,
    }))
}

impl Drop for ServerCall {
    fn drop(&mut self) {
        if let Some(t) = self.trace.take() {
            let ended = t.ended.unwrap_or_else(std::time::Instant::now);
            if let Some(start) = &t.metrics {
                let (name, method) = (&self.inner.service_name, &t.method);
                let took = ended.saturating_duration_since(start.into_std());
                crate::metrics::server_call(name, method, &t.outcome, took);
                crate::metrics::in_flight(name, -1.0);
                if t.items > 0 {
                    crate::metrics::server_stream_items(method, t.items);
                }
            }
            if let (Some(span), Some(rec)) = (t.span, &self.inner.opts.recorder) {
                span.finish_at(rec, t.outcome, ended);
            }
        }
        self.inner.channels().remove(&self.key);
        self.inner.live.fetch_sub(1, Ordering::SeqCst);
        if matches!(self.phase, Phase::Queued) {
            self.inner.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Stream items a call sends per poll before letting other tasks run.
const ITEMS_PER_POLL: usize = 256;

/// Sends what the channel queued, in order, into the client's queue; a
/// message that finds it full waits in `sending` (so at most one message
/// per call waits outside the queue). `Err`: the client has gone.
fn flush(
    ch: &mut Channel,
    peer: &PeerSender,
    envelope: &[Bytes],
    sending: &mut Option<Message>,
    cx: &mut Context<'_>,
) -> Result<(), zmtp::ZmtpError> {
    loop {
        if sending.is_some() {
            match peer.poll_send(cx, sending) {
                Poll::Pending => return Ok(()),
                Poll::Ready(r) => r?,
            }
        }
        let Some(ev) = ch.poll_transmit() else {
            return Ok(());
        };
        let mut m: Message = envelope.iter().cloned().collect();
        m.push_back(ev.encode());
        match peer.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Full(m)) => *sending = Some(m),
            Err(TrySendError::Failed(e)) => return Err(e),
        }
    }
}

impl Future for ServerCall {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Stream items this poll may still send (then it yields).
        let mut budget = ITEMS_PER_POLL;
        loop {
            let mut progressed = false;
            // Events the client sent on this channel.
            loop {
                match this.rx.poll_recv(cx) {
                    Poll::Ready(Some(Inbound::Event(ev))) => {
                        if let Err(e) = this.ch.on_event(ev, Instant::now().into_std()) {
                            if let Some(suppressed) = CALL_LOG.admit("bad control event") {
                                tracing::warn!(channel = %this.key.1, error = ?e, suppressed, "bad control event, abandoning call");
                            }
                            return Poll::Ready(());
                        }
                    }
                    Poll::Ready(Some(Inbound::Shutdown)) => {
                        let e = CallError::new("ServerShutdown", "the server is shutting down");
                        this.note_err(&e);
                        this.ch.send(EventKind::Err, e.to_args());
                        this.set_phase(Phase::Done);
                        break;
                    }
                    // Removed from the table: the client disconnected, or
                    // the server stopped.
                    Poll::Ready(None) => {
                        tracing::debug!(channel = %this.key.1, "call cancelled");
                        return Poll::Ready(());
                    }
                    Poll::Pending => break,
                }
            }
            // Heartbeats and loss.
            let deadline = Instant::from_std(this.ch.poll_timeout());
            if this.timer.deadline() != deadline {
                this.timer.as_mut().reset(deadline);
            }
            let mut expired = None;
            if this.timer.as_mut().poll(cx).is_ready() {
                match this.ch.handle_timeout(Instant::now().into_std()) {
                    Ok(()) => {}
                    Err(ChannelError::DeadlineExceeded(budget)) => expired = Some(budget),
                    Err(e) => {
                        this.note(Outcome::Lost);
                        tracing::info!(channel = %this.key.1, error = ?e, "client lost, cancelling call");
                        return Poll::Ready(());
                    }
                }
                progressed = true;
            }
            // Start the handler once the client keeps up with what it was
            // sent, and a concurrency slot is ours.
            if matches!(this.phase, Phase::Queued) {
                match this.peer.poll_room(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(channel = %this.key.1, error = %e, "client gone before its call started");
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(())) => {
                        if this.poll_slot(cx) {
                            if let Some(req) = this.request.take() {
                                let ctx = this.trace.as_ref().and_then(|t| t.ctx.clone());
                                let user = this.inner.user_of(&this.key.0);
                                if let Some(span) =
                                    this.trace.as_mut().and_then(|t| t.span.as_mut())
                                {
                                    span.set_user(user.clone());
                                }
                                let deadline = this.ch.deadline();
                                let fut = dispatch(&this.inner, *req, ctx, user, deadline);
                                this.set_phase(Phase::Running(fut));
                            }
                        }
                    }
                }
            }
            match this.poll_work(cx, &mut budget) {
                Ok(p) => progressed |= p,
                Err(e) => {
                    tracing::debug!(channel = %this.key.1, error = %e, "client unreachable, abandoning call");
                    return Poll::Ready(());
                }
            }
            // The deadline passed and the handler, polled once more, has
            // not answered: cancel it.
            if let Some(budget) = expired {
                this.cancel_for_deadline(budget);
            }
            // Send what the channel queued (replies, heartbeats, credit).
            if let Err(e) = flush(
                &mut this.ch,
                &this.peer,
                &this.envelope,
                &mut this.sending,
                cx,
            ) {
                tracing::debug!(channel = %this.key.1, error = %e, "client unreachable, abandoning call");
                return Poll::Ready(());
            }
            if matches!(this.phase, Phase::Done) && this.sending.is_none() && !this.ch.has_output()
            {
                return Poll::Ready(());
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

impl ServerCall {
    /// Cancels a call whose deadline passed before its first reply (a
    /// waiting or running handler is dropped) and answers
    /// `ERR DeadlineExceeded`.
    fn cancel_for_deadline(&mut self, budget: std::time::Duration) {
        // (a stream that has sent nothing yet is cancelled too: the
        // deadline bounds the first reply)
        if !matches!(
            self.phase,
            Phase::Queued | Phase::Running(_) | Phase::Streaming(_)
        ) {
            // (nothing left to cancel: the deadline must not fire again)
            self.ch.clear_deadline();
            return;
        }
        tracing::debug!(channel = %self.key.1, ?budget, "deadline passed, cancelling call");
        let e = CallError::new(
            crate::deadline::ERROR_NAME,
            format!("the caller's deadline passed ({budget:?} budget); the call was cancelled"),
        );
        self.note_err(&e);
        self.set_phase(Phase::Done);
        self.ch.send(EventKind::Err, e.to_args());
    }

    /// Moves to `phase`, leaving the count of waiting calls if it was one.
    fn set_phase(&mut self, phase: Phase) {
        if matches!(self.phase, Phase::Queued) {
            self.inner.queued.fetch_sub(1, Ordering::SeqCst);
        }
        self.phase = phase;
    }

    /// Notes a failed call, for its record: the error and its traceback.
    fn note_err(&mut self, e: &CallError) {
        self.set_traceback(e);
        self.note(err_outcome(e));
    }

    fn set_traceback(&mut self, e: &CallError) {
        if let Some(span) = self.trace.as_mut().and_then(|t| t.span.as_mut()) {
            span.set_traceback(&e.traceback);
        }
    }

    /// Notes how the call ended, for its record (a stream's item count is
    /// filled in).
    fn note(&mut self, outcome: Outcome) {
        if let Some(t) = &mut self.trace {
            t.outcome = match outcome {
                Outcome::Stream { .. } => Outcome::Stream { items: t.items },
                o => o,
            };
            t.ended = Some(std::time::Instant::now());
        }
    }

    /// Whether the handler may start: a concurrency slot is ours (or there
    /// is no limit). Waits in line otherwise, still heart-beating.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(sem) = &self.inner.limiter else {
            return true;
        };
        if self.acquiring.is_none() {
            match sem.clone().try_acquire_owned() {
                Ok(p) => {
                    self.permit = Some(p);
                    return true;
                }
                Err(_) => {
                    let sem = sem.clone();
                    self.acquiring = Some(Box::pin(async move { sem.acquire_owned().await.ok() }));
                }
            }
        }
        match self.acquiring.as_mut().map(|f| f.as_mut().poll(cx)) {
            Some(Poll::Ready(p)) => {
                self.acquiring = None;
                self.permit = p;
                true
            }
            _ => false,
        }
    }

    /// Polls the handler, or its stream while the client grants credit and
    /// its connection takes what was sent (items never pile up here: each
    /// goes to the client's queue before the next is asked for); queues
    /// what it produced. A panic becomes an error. Returns whether
    /// anything happened; `Err` when the client has gone.
    fn poll_work(
        &mut self,
        cx: &mut Context<'_>,
        budget: &mut usize,
    ) -> Result<bool, zmtp::ZmtpError> {
        match &mut self.phase {
            Phase::Running(fut) => {
                let polled = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
                let result = match polled {
                    Ok(Poll::Pending) => return Ok(false),
                    Ok(Poll::Ready(r)) => r,
                    Err(p) => Err(panic_error(p)),
                };
                match result {
                    Ok(Response::Value(v)) => {
                        self.ch.send(EventKind::Ok, Value::Array(vec![v]));
                        self.phase = Phase::Done;
                        self.note(Outcome::Ok);
                    }
                    Ok(Response::Stream(st)) => self.phase = Phase::Streaming(st),
                    Err(e) => {
                        self.ch.send(EventKind::Err, e.to_args());
                        self.phase = Phase::Done;
                        self.note_err(&e);
                        report_error(&self.inner, self.trace.as_deref(), &e);
                    }
                }
                Ok(true)
            }
            Phase::Streaming(st) => {
                let mut sent = 0;
                let mut end = None;
                // Items that are ready now, have credit, and find room.
                while self.ch.can_send_item() && self.sending.is_none() && !self.ch.has_output() {
                    if *budget == 0 {
                        // A long ready stream shares the worker: poll
                        // again later (reported as no progress, so this
                        // poll ends).
                        cx.waker().wake_by_ref();
                        return Ok(false);
                    }
                    *budget -= 1;
                    let item = match catch_unwind(AssertUnwindSafe(|| st.poll_next_unpin(cx))) {
                        Ok(Poll::Pending) => break,
                        Ok(Poll::Ready(item)) => item,
                        Err(p) => Some(Err(panic_error(p))),
                    };
                    sent += 1;
                    let outcome = match &item {
                        Some(Ok(_)) => None,
                        Some(Err(e)) => {
                            report_error(&self.inner, self.trace.as_deref(), e);
                            // (the field, not `set_traceback`: the stream
                            // is borrowed from `self.phase`)
                            if let Some(span) = self.trace.as_mut().and_then(|t| t.span.as_mut()) {
                                span.set_traceback(&e.traceback);
                            }
                            Some(err_outcome(e))
                        }
                        None => Some(Outcome::Stream { items: 0 }),
                    };
                    if send_item(&mut self.ch, item) {
                        end = Some(outcome);
                        break;
                    }
                    if let Some(t) = &mut self.trace {
                        t.items += 1;
                    }
                    flush(
                        &mut self.ch,
                        &self.peer,
                        &self.envelope,
                        &mut self.sending,
                        cx,
                    )?;
                }
                if let Some(outcome) = end {
                    self.phase = Phase::Done;
                    if let Some(o) = outcome {
                        self.note(o);
                    }
                }
                Ok(sent > 0)
            }
            Phase::Queued | Phase::Done => Ok(false),
        }
    }
}

/// Sends one stream outcome (`STREAM`, `ERR`, or `STREAM_DONE` at the end);
/// returns whether the stream is over.
fn send_item(ch: &mut Channel, item: Option<Result<Value, CallError>>) -> bool {
    match item {
        Some(Ok(v)) => {
            ch.send(EventKind::Stream, v);
            false
        }
        Some(Err(e)) => {
            ch.send(EventKind::Err, e.to_args());
            true
        }
        None => {
            ch.send(EventKind::StreamDone, Value::Nil);
            true
        }
    }
}

fn panic_error(panic: Box<dyn std::any::Any + Send>) -> CallError {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".into());
    tracing::error!(panic = %msg, "handler panicked");
    CallError::new("Panic", msg)
}

/// Tells the error hook (if any) of a handler's error.
fn report_error(inner: &Inner, trace: Option<&ServerTrace>, e: &CallError) {
    let (Some(hook), Some(t)) = (&inner.opts.on_error, trace) else {
        return;
    };
    hook.report(&ErrorReport {
        side: Side::Server,
        service: inner.service_name.to_string(),
        method: t.method.clone(),
        error: e.clone(),
        trace_id: t.ctx.as_ref().map(TraceContext::trace_id_hex),
        span_id: t.ctx.as_ref().map(TraceContext::span_id_hex),
    });
}

fn err_outcome(e: &CallError) -> Outcome {
    Outcome::Err {
        name: e.name.clone(),
        message: e.message.clone(),
    }
}

/// Starts the handler; a traced call's handler runs with its span as the
/// current trace context, so the calls it makes are its children, and a
/// call with a deadline's under it, so they inherit what is left.
fn dispatch(
    inner: &Arc<Inner>,
    req: Event,
    trace: Option<TraceContext>,
    user: Option<Arc<str>>,
    deadline: Option<std::time::Instant>,
) -> HandlerFuture {
    let handler = match trace {
        // A `tracing` span too, so subscribers see the call with its ids
        // (made only when one wants it).
        Some(ctx) if tracing::span_enabled!(tracing::Level::INFO) => {
            let span = tracing::info_span!(
                "zerorpc.server",
                rpc.system = "zerorpc",
                rpc.service = %inner.service_name,
                rpc.method = %req.name,
                trace_id = %crate::trace::HexId(&ctx.trace_id),
                span_id = %crate::trace::HexId(&ctx.span_id),
            );
            let fut = start_handler(inner, req, user);
            Box::pin(tracing::Instrument::instrument(ctx.scope(fut), span)) as HandlerFuture
        }
        Some(ctx) => Box::pin(ctx.scope(start_handler(inner, req, user))),
        None => start_handler(inner, req, user),
    };
    match deadline {
        Some(at) => Box::pin(crate::deadline::scope(at, handler)),
        None => handler,
    }
}

fn start_handler(inner: &Arc<Inner>, req: Event, user: Option<Arc<str>>) -> HandlerFuture {
    tracing::debug!(method = %req.name, id = %req.header.message_id, "call");
    if inner.draining.load(Ordering::SeqCst) {
        return async {
            Err(CallError::new(
                "ServerShutdown",
                "the server is shutting down",
            ))
        }
        .boxed();
    }
    let args = match req.args {
        Value::Array(a) => a,
        Value::Nil => Vec::new(),
        other => {
            let kind = crate::service::type_name_of(&other);
            return async move {
                Err(CallError::bad_args(format!(
                    "arguments must be a list, got {kind}"
                )))
            }
            .boxed();
        }
    };
    if let Some(rules) = &inner.opts.authorize {
        if !rules.allows(user.as_deref(), &req.name) {
            let who = user.as_deref().unwrap_or(crate::auth::ANONYMOUS).to_owned();
            tracing::info!(user = %who, method = %req.name, "call denied");
            let msg = format!("{who} may not call {}", req.name);
            return async move { Err(CallError::new("PermissionDenied", msg)) }.boxed();
        }
    }
    if let Some(r) = introspection::answer(inner.service.as_ref(), &req.name, &args) {
        return async move { r.map(Response::Value) }.boxed();
    }
    let ctx = CallContext {
        header: req.header,
        user_id: user.clone(),
    };
    match inner.service.call(&req.name, args, ctx) {
        // (the handler runs as its user: `auth::current_user()`)
        Some(fut) => match user {
            Some(u) => Box::pin(crate::auth::as_user(u, fut)),
            None => fut,
        },
        None => {
            // Like Python: NameError whose message is the method name.
            let name = req.name;
            async move {
                Err(CallError::new("NameError", name.clone())
                    .with_traceback(format!("NameError: {name}\n")))
            }
            .boxed()
        }
    }
}
