//! The client: DEALER sockets, one channel per call.
//!
//! A client may be given several endpoints: it keeps one DEALER per
//! endpoint and pins every channel to one of them (a single DEALER would
//! round-robin the heartbeats and credit of one call across servers). The
//! call future (or stream) drives its [`Channel`]; dropping it stops the
//! heartbeats, which is how ZeroRPC cancels.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use rmpv::Value;
use tokio::sync::{mpsc, Notify};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use zmtp::{DealerSocket, Message, SocketOptions, TrySendError};

use crate::channel::{Channel, ChannelConfig, ChannelError};
use crate::error::{CallError, Error};
use crate::event::{DecodeLimits, Event, EventKind, MessageId};
use crate::mailbox::{mailbox, MailError, MailReceiver, MailSender};
use crate::record::{Outcome, Peer, Recorder, Side, Span};
use crate::report::{ErrorReport, OnError};
use crate::trace::{HexId, TraceContext};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Heartbeat, first-reply timeout (default 30 s) and stream window.
    pub channel: ChannelConfig,
    /// Transport settings.
    pub socket: SocketOptions,
    /// Limits on incoming events.
    pub decode_limits: DecodeLimits,
    /// Retries of lost calls to the methods it names (none by default).
    pub retry: Option<RetryPolicy>,
    /// Records every call (client side; the new traces of root calls are
    /// sampled). Without it, calls still carry trace contexts, unrecorded.
    pub recorder: Option<Recorder>,
    /// A root call (one made outside any traced context) starts a new
    /// trace: a fresh W3C context, unsampled unless `recorder` is set, so
    /// that the servers, logs and error reports it reaches share one trace
    /// id (as dotCloud's tracing gave every call one). On by default; off,
    /// a root call carries no context unless this client records. Calls
    /// made inside a traced handler carry its trace on either way.
    pub trace_roots: bool,
    /// With a `recorder`, records each call's arguments and result too
    /// (up to [`Payload::MAX_BYTES`](crate::record::Payload::MAX_BYTES)
    /// each; a stream's items collected, while they fit), for `zerorpc
    /// contract record`. Off by
    /// default: payloads may hold what a trace store should not keep.
    pub record_payloads: bool,
    /// Emits call metrics through the `metrics` facade (see
    /// [`crate::metrics`]).
    pub metrics: bool,
    /// Hears of every remote error a call receives (name, message,
    /// traceback, trace id), to pass on to an error tracker. See
    /// [`crate::report`].
    pub on_error: Option<OnError>,
    /// Resolves `zerorpc://SERVICE` addresses (see [`crate::naming`]).
    /// `None`: [`crate::naming::Resolver::from_env`], when the
    /// environment describes one.
    pub resolver: Option<Arc<crate::naming::Resolver>>,
    /// A client of a `zerorpc://` name resolves it again this often (and
    /// at once when none of its connections is healthy, at most once a
    /// second): it connects to new endpoints and drops those no longer
    /// listed. `None`: every 5 s.
    pub re_resolve: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            channel: ChannelConfig::default(),
            socket: SocketOptions::default(),
            decode_limits: DecodeLimits::default(),
            retry: None,
            recorder: None,
            trace_roots: true,
            record_payloads: false,
            metrics: false,
            on_error: None,
            resolver: None,
            re_resolve: None,
        }
    }
}

/// The context a call made now carries: a child of the current span, else
/// a new root (sampled when the client records; none when neither records
/// nor `trace_roots`).
fn call_context(opts: &ClientOptions) -> Option<TraceContext> {
    TraceContext::current().map(|c| c.child()).or_else(|| {
        if opts.recorder.is_some() {
            Some(TraceContext::new_root())
        } else if opts.trace_roots {
            let mut root = TraceContext::new_root();
            root.sampled = false;
            Some(root)
        } else {
            None
        }
    })
}

/// Which calls are retried, and how: only methods the user declares
/// idempotent, only when the call was lost ([`Error::is_lost`]: no
/// heartbeat, a dropped connection, a timeout, a hub's `LostRemote`),
/// never after the server answered with an error. Each retry picks a
/// connection afresh, so with several endpoints it goes to a healthy one.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    methods: Vec<String>,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First backoff delay (doubling, with jitter, up to `max_delay`).
    pub min_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Retries calls to `methods` (their names as called): 3 retries,
    /// backoff from 50 ms to 2 s.
    pub fn idempotent<S: Into<String>>(methods: impl IntoIterator<Item = S>) -> Self {
        RetryPolicy {
            methods: methods.into_iter().map(Into::into).collect(),
            max_retries: 3,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }

    /// Whether calls to `method` may be retried.
    pub fn covers(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }
}

impl ClientOptions {
    /// Sets the call timeout: how long a call waits for its reply (a
    /// stream: for its first item), like zerorpc-python's
    /// `Client(timeout=...)`. Default 30 s. Past it the call fails with
    /// [`Error::Timeout`] and is cancelled. Once a stream has started,
    /// heartbeats keep it alive however long it runs. One handle's calls
    /// can differ: [`Client::with_timeout`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), zerorpc::Error> {
    /// use std::time::Duration;
    /// use zerorpc::{Client, ClientOptions};
    /// let opts = ClientOptions::default().timeout(Duration::from_secs(5));
    /// let client = Client::connect_with(&["tcp://127.0.0.1:4242"], opts).await?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn timeout(mut self, t: Duration) -> Self {
        self.channel.first_reply_timeout = Some(t);
        self
    }

    /// Sets the heartbeat interval.
    pub fn heartbeat(mut self, t: Duration) -> Self {
        self.channel.heartbeat = t;
        self
    }
}

type Channels = Mutex<HashMap<MessageId, MailSender<Event>>>;

struct Conn {
    dealer: DealerSocket,
    /// The endpoint it connects to.
    endpoint: Arc<str>,
    channels: Channels,
    /// Connections that dropped so far (a channel opened before a drop is
    /// lost with it).
    drops: AtomicU64,
    /// Until when (ms after `epoch`) new calls should avoid this
    /// connection: a call on it was lost. 0: healthy.
    suspect_until: AtomicU64,
    epoch: std::time::Instant,
    /// Ends its receive loop (the client's end, or its endpoint dropped).
    stop: CancellationToken,
    /// Why its last handshake failed for good (security refused it, or
    /// the peer is not a server), until a handshake succeeds.
    refused: Mutex<Option<Refusal>>,
    /// Told whenever one of the client's connections is refused.
    refusals: Arc<Notify>,
}

/// A handshake failure that trying again will not cure.
#[derive(Debug, Clone)]
struct Refusal {
    kind: zmtp::HandshakeFailure,
    reason: String,
}

impl Refusal {
    fn error(&self) -> Error {
        match self.kind {
            zmtp::HandshakeFailure::IncompatibleSocketType => Error::IncompatibleSocketType {
                reason: self.reason.clone(),
            },
            _ => Error::Authentication {
                reason: self.reason.clone(),
            },
        }
    }
}

impl Conn {
    fn new(
        dealer: DealerSocket,
        endpoint: Arc<str>,
        stop: CancellationToken,
        refusals: Arc<Notify>,
    ) -> Self {
        Conn {
            stop,
            dealer,
            endpoint,
            channels: Mutex::new(HashMap::new()),
            drops: AtomicU64::new(0),
            suspect_until: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            refused: Mutex::new(None),
            refusals,
        }
    }

    /// Why this connection is refused, if it is.
    fn refusal(&self) -> Option<Refusal> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_refusal(&self, r: Option<Refusal>) {
        let refused = r.is_some();
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = r;
        if refused {
            self.refusals.notify_waiters();
        }
    }

    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Connected and not suspect.
    fn healthy(&self) -> bool {
        self.dealer.peer_count() > 0 && {
            let until = self.suspect_until.load(Ordering::Relaxed);
            until == 0 || self.millis() >= until
        }
    }

    /// Notes how a call on this connection ended: a lost one makes new
    /// calls avoid it for a while; an answered one clears that.
    fn note(&self, lost: bool, cfg: &ChannelConfig) {
        if lost {
            // Four times the loss limit (40 s with the default heartbeat);
            // then one call probes it again.
            let pause = (cfg.heartbeat * cfg.lost_after * 4).as_millis() as u64;
            self.suspect_until
                .store(self.millis() + pause.max(1), Ordering::Relaxed);
        } else if self.suspect_until.load(Ordering::Relaxed) != 0 {
            self.suspect_until.store(0, Ordering::Relaxed);
        }
    }

    /// Why a channel's mailbox closed: the connection dropped since the
    /// channel opened, or the server overflowed the window.
    fn closed_error(&self, drops_at_open: u64) -> Error {
        if self.drops.load(Ordering::SeqCst) != drops_at_open {
            Error::Disconnected
        } else {
            Error::Protocol("the server sent more events than the channel allows".into())
        }
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, MailSender<Event>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    /// Replaced as a naming client re-resolves.
    conns: std::sync::RwLock<Arc<Vec<Arc<Conn>>>>,
    next: AtomicUsize,
    opts: ClientOptions,
    /// For a `zerorpc://` client: wakes its re-resolver.
    naming: Option<Arc<Notify>>,
    /// Told whenever one of its connections is refused (see [`Conn`]).
    refusals: Arc<Notify>,
    /// The service's introspection, once asked (named arguments).
    described: std::sync::Mutex<Option<Arc<crate::describe::ServiceInfo>>>,
}

impl Inner {
    fn conns(&self) -> Arc<Vec<Arc<Conn>>> {
        self.conns.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Resolves once `conn` is refused (security, or not a server).
    async fn refused(&self, conn: &Conn) -> Refusal {
        loop {
            let notified = self.refusals.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = conn.refusal() {
                return r;
            }
            notified.await;
        }
    }

    /// A connection that is not refused, for a request whose connection
    /// was: a connected one first.
    fn unrefused(&self) -> Option<Arc<Conn>> {
        let conns = self.conns();
        let ok = || conns.iter().filter(|c| c.refusal().is_none());
        ok().find(|c| c.dealer.peer_count() > 0)
            .or_else(|| ok().next())
            .cloned()
    }
}

/// Connects a DEALER to `ep` and starts its receive loop (ended by `stop`).
async fn open_conn(
    ep: &str,
    opts: &ClientOptions,
    stop: CancellationToken,
    refusals: Arc<Notify>,
) -> Result<Arc<Conn>, Error> {
    let dealer = DealerSocket::with_options(opts.socket.clone());
    // (watched from before the first attempt: its failure is not missed)
    let events = dealer.monitor();
    dealer.connect(ep).await?;
    let conn = Arc::new(Conn::new(dealer, Arc::from(ep), stop.clone(), refusals));
    tokio::spawn(receive_loop(conn.clone(), opts.decode_limits, events, stop));
    Ok(conn)
}

/// Re-resolves a `zerorpc://` client's service: every `every`, or when
/// woken (no healthy connection), at most once a second. New endpoints
/// are connected; endpoints no longer listed are closed (calls still on
/// them are lost). A failed resolution keeps the current endpoints.
async fn re_resolve(
    inner: std::sync::Weak<Inner>,
    resolver: Arc<crate::naming::Resolver>,
    service: String,
    wake: Arc<Notify>,
    every: Duration,
    stop: CancellationToken,
) {
    let min_gap = Duration::from_secs(1).min(every);
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(last + every) => {}
            _ = wake.notified() => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(last + min_gap) => {}
                }
            }
        }
        last = Instant::now();
        let resolved = match resolver.resolve(&service).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%service, error = %e, "re-resolving failed; keeping the current endpoints");
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        let current = inner.conns();
        let mut next: Vec<Arc<Conn>> = Vec::new();
        for ep in &resolved.endpoints {
            if let Some(c) = current.iter().find(|c| &*c.endpoint == ep.as_str()) {
                next.push(c.clone());
                continue;
            }
            match open_conn(ep, &inner.opts, stop.child_token(), inner.refusals.clone()).await {
                Ok(c) => {
                    tracing::info!(%service, endpoint = %ep, "connected to a new endpoint");
                    next.push(c);
                }
                Err(e) => tracing::warn!(%service, endpoint = %ep, error = %e, "cannot connect"),
            }
        }
        if next.is_empty() {
            continue;
        }
        for c in current.iter() {
            if !next.iter().any(|n| Arc::ptr_eq(n, c)) {
                tracing::info!(%service, endpoint = %c.endpoint, "endpoint no longer listed, closing");
                c.stop.cancel();
                // its calls fail now (Disconnected: lost, so retried when
                // idempotent) rather than after two silent heartbeats
                c.drops.fetch_add(1, Ordering::SeqCst);
                c.channels().clear();
            }
        }
        *inner.conns.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }
}

/// How a call answered, as [`Client::call_reply`] tells it.
pub enum Reply<S> {
    /// A single value (an `OK` reply).
    Value(Value),
    /// A stream of items (`STREAM`... `STREAM_DONE`), read as it arrives.
    Stream(S),
}

impl<S> std::fmt::Debug for Reply<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Value(v) => f.debug_tuple("Value").field(v).finish(),
            Reply::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// A ZeroRPC client. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// This handle's call timeout, when [`Client::with_timeout`] set one
    /// (`Some(None)`: none); else the options'.
    timeout: Option<Option<Duration>>,
    /// Cancelled when the last clone (and call) is gone.
    stop: CancellationToken,
    _stop: Arc<tokio_util::sync::DropGuard>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connections", &self.inner.conns().len())
            .finish()
    }
}

impl Client {
    /// Connects to one endpoint with default options.
    pub async fn connect(endpoint: &str) -> Result<Client, Error> {
        Client::connect_with(&[endpoint], ClientOptions::default()).await
    }

    /// Connects to several endpoints (each call uses one of them).
    ///
    /// A single `zerorpc://SERVICE` address is resolved through
    /// [`ClientOptions::resolver`] (see [`crate::naming`]); the client
    /// then follows the service as it moves (see
    /// [`ClientOptions::re_resolve`]).
    pub async fn connect_with(endpoints: &[&str], opts: ClientOptions) -> Result<Client, Error> {
        if endpoints.is_empty() {
            return Err(Error::Config("no endpoint given".into()));
        }
        let named: Vec<&str> = endpoints
            .iter()
            .filter_map(|e| crate::naming::service_name(e))
            .collect();
        let mut naming = None;
        let resolved: Vec<String>;
        let endpoints: Vec<&str> = match named.as_slice() {
            [] => endpoints.to_vec(),
            [service] if endpoints.len() == 1 => {
                let resolver = match &opts.resolver {
                    Some(r) => r.clone(),
                    None => match crate::naming::Resolver::from_env()? {
                        Some(r) => Arc::new(r),
                        None => {
                            return Err(Error::Naming(format!(
                                "cannot resolve zerorpc://{service}: no resolver (set ClientOptions::resolver, or ZERORPC_DIRECTORY / ZERORPC_REGISTRY / ZERORPC_DNS_DOMAIN)"
                            )))
                        }
                    },
                };
                resolved = resolver.resolve(service).await?.endpoints;
                naming = Some((resolver, service.to_string()));
                resolved.iter().map(String::as_str).collect()
            }
            _ => {
                return Err(Error::Naming(
                    "a zerorpc:// address must be the only endpoint given".into(),
                ))
            }
        };
        let every = opts.re_resolve.unwrap_or(Duration::from_secs(5));
        let named = naming.is_some();
        let client = Client::connect_resolved(&endpoints, opts, named).await?;
        if let (Some((resolver, service)), Some(wake)) = (naming, client.inner.naming.clone()) {
            tokio::spawn(re_resolve(
                Arc::downgrade(&client.inner),
                resolver,
                service,
                wake,
                every.max(Duration::from_millis(10)),
                client.stop.clone(),
            ));
        }
        Ok(client)
    }

    /// Connects to plain endpoints (no naming): what the naming module's
    /// own clients use.
    pub(crate) async fn connect_plain(
        endpoints: &[&str],
        opts: ClientOptions,
    ) -> Result<Client, Error> {
        if let Some(e) = endpoints
            .iter()
            .find(|e| crate::naming::service_name(e).is_some())
        {
            return Err(Error::Naming(format!(
                "{e}: a plain endpoint is needed here"
            )));
        }
        Client::connect_resolved(endpoints, opts, false).await
    }

    async fn connect_resolved(
        endpoints: &[&str],
        opts: ClientOptions,
        named: bool,
    ) -> Result<Client, Error> {
        if endpoints.is_empty() {
            return Err(Error::Config("no endpoint given".into()));
        }
        let stop = CancellationToken::new();
        let refusals = Arc::new(Notify::new());
        let mut conns = Vec::new();
        for ep in endpoints {
            match open_conn(ep, &opts, stop.child_token(), refusals.clone()).await {
                Ok(c) => conns.push(c),
                // (a name may list an endpoint we cannot use: skip it)
                Err(e) if named => {
                    tracing::warn!(endpoint = %ep, error = %e, "skipping a resolved endpoint")
                }
                Err(e) => return Err(e),
            }
        }
        if conns.is_empty() {
            return Err(Error::Naming(format!(
                "none of the resolved endpoints is usable: {}",
                endpoints.join(", ")
            )));
        }
        let wake = named.then(|| Arc::new(Notify::new()));
        let inner = Arc::new(Inner {
            conns: std::sync::RwLock::new(Arc::new(conns)),
            next: AtomicUsize::new(0),
            opts,
            naming: wake.clone(),
            refusals,
            described: std::sync::Mutex::new(None),
        });
        Ok(Client {
            inner,
            timeout: None,
            stop: stop.clone(),
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    /// The cached introspection (see [`Client::describe`]).
    pub(crate) fn described(&self) -> Option<Arc<crate::describe::ServiceInfo>> {
        let d = self.inner.described.lock();
        d.unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_described(&self, info: Arc<crate::describe::ServiceInfo>) {
        let mut d = self
            .inner
            .described
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *d = Some(info);
    }

    /// A handle on the same connections whose calls wait at most `timeout`
    /// for their reply (`None`: no limit), like the per-call `timeout=`
    /// of zerorpc-python; this client keeps its own
    /// ([`ClientOptions::timeout`], 30 s by default). Cheap: it shares
    /// everything but the setting. Wrap it in a typed client
    /// (`CalcClient::new(client.with_timeout(t))`) to give its methods the
    /// timeout.
    ///
    /// ```no_run
    /// # async fn f(client: zerorpc::Client) -> Result<(), zerorpc::Error> {
    /// use std::time::Duration;
    /// let quick = client.with_timeout(Duration::from_millis(500));
    /// let pong = quick.call("ping", vec![]).await?;
    /// # let _ = pong; Ok(()) }
    /// ```
    pub fn with_timeout(&self, timeout: impl Into<Option<Duration>>) -> Client {
        Client {
            timeout: Some(timeout.into()),
            ..self.clone()
        }
    }

    /// The endpoints it is connected to now (they change as a
    /// `zerorpc://` client re-resolves its service).
    pub fn endpoints(&self) -> Vec<String> {
        self.inner
            .conns()
            .iter()
            .map(|c| c.endpoint.to_string())
            .collect()
    }

    /// Calls `method` and waits for its result. A streamed result is
    /// collected into an array.
    ///
    /// A call to a method the [`RetryPolicy`] names is retried, with
    /// backoff, when it is lost.
    pub async fn call(&self, method: &str, args: Vec<Value>) -> Result<Value, Error> {
        match self.inner.opts.retry.as_ref() {
            Some(policy) if policy.covers(method) => {
                // (boxed: the retry state would otherwise sit in every call)
                Box::pin(self.call_with_retries(policy, method, args)).await
            }
            _ => self.call_once(method, args).await,
        }
    }

    async fn call_with_retries(
        &self,
        policy: &RetryPolicy,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Value, Error> {
        use backon::Retryable;
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_retries)
            .with_jitter();
        // One deadline for every attempt: the timeout (or the deadline in
        // force, if sooner), so retries never outlive it.
        let timeout = self
            .timeout
            .unwrap_or(self.inner.opts.channel.first_reply_timeout);
        let at = timeout.map(|t| std::time::Instant::now() + t);
        (|| async {
            match at {
                Some(at) => crate::deadline::scope(at, self.call_once(method, args.clone())).await,
                None => self.call_once(method, args.clone()).await,
            }
        })
        .retry(backoff)
            .when(Error::is_lost)
            .notify(|e, after| {
                tracing::info!(method, error = %e, ?after, "call lost, retrying (idempotent)")
            })
            .await
    }

    async fn call_once(&self, method: &str, args: Vec<Value>) -> Result<Value, Error> {
        // Traced inside a traced handler (a child span), else a new trace
        // unless `trace_roots` is off and the client does not record.
        let trace = call_context(&self.inner.opts);
        // (matched by value: an untraced, unobserved call takes the plain
        // path; traced calls, the default, are observed)
        match trace {
            None if !self.inner.opts.metrics && self.inner.opts.on_error.is_none() => {
                let (call, unsent) = InlineCall::new(self.open_channel(method, args, None));
                Self::drive_inline(&self.inner, call, unsent)
                    .await
                    .map(|(v, _)| v)
            }
            trace => self.call_observed(method, args, trace).await,
        }
    }

    /// A call that is traced, or measured, or both.
    async fn call_observed(
        &self,
        method: &str,
        args: Vec<Value>,
        trace: Option<TraceContext>,
    ) -> Result<Value, Error> {
        let recorder = self.inner.opts.recorder.as_ref();
        // (a recorded span starts before the request leaves)
        let t0 = (std::time::SystemTime::now(), std::time::Instant::now());
        let captured = (self.inner.opts.record_payloads && recorder.is_some() && trace.is_some())
            .then(|| args.clone());
        let opened = self.open_channel(method, args, trace.as_ref());
        let opened_endpoint = opened.0.endpoint.clone();
        let ids = match (&self.inner.opts.on_error, &trace) {
            (Some(_), Some(ctx)) => Some((ctx.trace_id_hex(), ctx.span_id_hex())),
            _ => None,
        };
        // A `tracing` span too, so subscribers see the call with its ids.
        // (made only when a subscriber wants it: a trace context is on
        // every call, a subscriber seldom)
        let tracing_span = match &trace {
            Some(ctx) if tracing::span_enabled!(tracing::Level::INFO) => tracing::info_span!(
                "zerorpc.client",
                rpc.system = "zerorpc",
                rpc.method = %method,
                server.address = %opened.0.endpoint,
                trace_id = %HexId(&ctx.trace_id),
                span_id = %HexId(&ctx.span_id),
            ),
            _ => tracing::Span::none(),
        };
        let mut span = match (recorder, trace) {
            (Some(rec), Some(ctx)) => Some(SpanGuard::new(
                rec.clone(),
                Span::started(
                    ctx,
                    Side::Client,
                    opened.0.endpoint.clone(),
                    method.to_owned(),
                    Peer::Endpoint(opened.0.endpoint.clone()),
                    t0,
                ),
            )),
            _ => None,
        };
        let (call, unsent) = InlineCall::new(opened);
        let r = tracing::Instrument::instrument(
            Self::drive_inline(&self.inner, call, unsent),
            tracing_span,
        )
        .await;
        let outcome = client_outcome(&r);
        if self.inner.opts.metrics {
            crate::metrics::client_call(method, &outcome, t0.1.elapsed());
        }
        if let Err(Error::Remote(e)) = &r {
            self.report(&opened_endpoint, method, e, ids);
        }
        if let Some(mut s) = span.take() {
            if let Err(Error::Remote(e)) = &r {
                s.set_traceback(&e.traceback);
            }
            if let Some(args) = captured {
                let result = r.as_ref().ok().map(|(v, _)| v.clone());
                s.set_payload(crate::record::Payload::capped(args, result));
            }
            s.finish(outcome);
        }
        r.map(|(v, _)| v)
    }

    /// Tells the error hook (if any) of a remote error.
    fn report(&self, endpoint: &str, method: &str, e: &CallError, ids: Option<(String, String)>) {
        if let Some(hook) = &self.inner.opts.on_error {
            let (trace_id, span_id) = ids.unzip();
            hook.report(&ErrorReport {
                side: Side::Client,
                service: endpoint.to_owned(),
                method: method.to_owned(),
                error: e.clone(),
                trace_id,
                span_id,
            });
        }
    }

    /// Sends the request (waiting for room if it found none) and drives
    /// the channel until the reply; a stream is collected (with its item
    /// count).
    ///
    /// The caller polls this future until the call ends, so it can drive
    /// the channel itself (heartbeats included): no extra task hop. (It
    /// takes the call already built: an async fn keeps its arguments for
    /// its whole life, so they should be what it works on.)
    async fn drive_inline(
        inner: &Inner,
        mut call: InlineCall,
        unsent: Option<Box<Message>>,
    ) -> Result<(Value, Option<u64>), Error> {
        if let Some(msg) = unsent {
            // (boxed: the waiting state would otherwise sit in every call)
            Box::pin(wait_send(
                inner,
                &mut call.conn,
                &mut call._guard,
                *msg,
                call.ch.config().first_reply_timeout,
            ))
            .await?;
            call.ch.request_sent(Instant::now().into_std());
        }
        // A streamed result is collected; one event is held at a time.
        let mut items: Option<Vec<Value>> = None;
        loop {
            let ev = call.next_event().await?;
            match ev.kind() {
                Some(EventKind::Ok) if items.is_none() => return Ok((first_arg(ev.args), None)),
                Some(EventKind::Stream) => items.get_or_insert_with(Vec::new).push(ev.args),
                // (Python answers an empty stream with STREAM_DONE alone)
                Some(EventKind::StreamDone) => {
                    let items = items.unwrap_or_default();
                    let n = items.len() as u64;
                    return Ok((Value::Array(items), Some(n)));
                }
                Some(EventKind::Err) => return Err(reply_error(&call.ch, ev.args)),
                _ => return Err(unexpected(&ev.name)),
            }
        }
    }

    /// Calls a streaming method: items arrive as the stream is polled, and
    /// credit is granted as they are consumed. Dropping the stream cancels
    /// the call. A method that returns a single value yields it once.
    pub async fn call_stream(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<impl Stream<Item = Result<Value, Error>> + Send + Unpin + 'static, Error> {
        use futures::StreamExt;
        Ok(self
            .call_items(method, args)
            .await?
            .map(|r| r.map(|(_, v)| v)))
    }

    /// Calls `method` and waits for its first reply, which tells how it
    /// answers: [`Reply::Value`] for a single value (`OK`), or
    /// [`Reply::Stream`] for a stream (`STREAM`... `STREAM_DONE`, possibly
    /// empty), whose items arrive as it is polled, with credit granted as
    /// they are consumed (dropping it cancels the call). An error reply
    /// (or none within the timeout) is the `Err`.
    ///
    /// For callers that do not know whether a method streams (a gateway,
    /// a generic tool) and must not collect an unbounded stream.
    pub async fn call_reply(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Reply<impl Stream<Item = Result<Value, Error>> + Send + Unpin + 'static>, Error>
    {
        use futures::StreamExt;
        // (fused: after an empty stream's end it is polled again)
        let mut items = self.call_items(method, args).await?.fuse();
        let first = match items.next().await {
            Some(Ok((false, v))) => return Ok(Reply::Value(v)),
            Some(Err(e)) => return Err(e),
            Some(Ok((true, v))) => Some(Ok(v)),
            // (an empty stream: STREAM_DONE first)
            None => None,
        };
        Ok(Reply::Stream(
            futures::stream::iter(first).chain(items.map(|r| r.map(|(_, v)| v))),
        ))
    }

    /// The replies of a call as they come, each tagged with whether it is
    /// a stream item (`true`) or the single value of an `OK` (`false`).
    async fn call_items(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<impl Stream<Item = Result<(bool, Value), Error>> + Send + Unpin + 'static, Error>
    {
        let opts = &self.inner.opts;
        let recorder = opts.recorder.as_ref();
        let trace = call_context(opts);
        let t0 = (std::time::SystemTime::now(), std::time::Instant::now());
        let captured =
            (opts.record_payloads && recorder.is_some() && trace.is_some()).then(|| args.clone());
        let (call, endpoint) = self.open(method, args, trace.as_ref()).await?;
        let watch = (trace.is_some() || opts.metrics || opts.on_error.is_some()).then(|| {
            Box::new(StreamWatch {
                ids: match (&opts.on_error, &trace) {
                    (Some(_), Some(ctx)) => Some((ctx.trace_id_hex(), ctx.span_id_hex())),
                    _ => None,
                },
                span: match (recorder, trace) {
                    (Some(rec), Some(ctx)) => Some(SpanGuard::new(
                        rec.clone(),
                        Span::started(
                            ctx,
                            Side::Client,
                            endpoint.clone(),
                            method.to_owned(),
                            Peer::Endpoint(endpoint.clone()),
                            t0,
                        ),
                    )),
                    _ => None,
                },
                client: self.clone(),
                endpoint,
                method: method.to_owned(),
                started: t0.1,
                items: 0,
                payload: captured.map(|args| StreamPayload {
                    args,
                    items: Some(Vec::new()),
                    bytes: 0,
                }),
            })
        });
        // (boxed: an `Unpin` stream is simpler to use)
        Ok(Box::pin(futures::stream::unfold(
            Some((call, watch)),
            |state| async move {
                let (mut call, mut watch) = state?;
                let r = match call.next_event().await {
                    Ok(ev) => match ev.kind() {
                        Some(EventKind::Stream) => {
                            if let Some(w) = &mut watch {
                                w.item(&ev.args);
                            }
                            return Some((Ok((true, ev.args)), Some((call, watch))));
                        }
                        Some(EventKind::StreamDone) => None,
                        Some(EventKind::Ok) => Some(Ok((false, first_arg(ev.args)))),
                        Some(EventKind::Err) => {
                            let e = remote_error(ev.args);
                            let (budget, timeout) = call.expiry;
                            Some(Err(
                                match crate::channel::expiry(&e.name, budget, timeout) {
                                    Some(x) => channel_error(x),
                                    None => Error::Remote(e),
                                },
                            ))
                        }
                        _ => Some(Err(unexpected(&ev.name))),
                    },
                    Err(e) => Some(Err(e)),
                };
                if let Some(w) = watch {
                    w.end(r.as_ref().map(|r| r.as_ref().map(|(_, v)| v)));
                }
                r.map(|r| (r, None))
            },
        )))
    }

    async fn open(
        &self,
        method: &str,
        args: Vec<Value>,
        trace: Option<&TraceContext>,
    ) -> Result<(CallHandle, Arc<str>), Error> {
        let (mut conn, mut ch, net_rx, mut guard, unsent) = self.open_channel(method, args, trace);
        if let Some(msg) = unsent {
            wait_send(
                &self.inner,
                &mut conn,
                &mut guard,
                msg,
                ch.config().first_reply_timeout,
            )
            .await?;
            ch.request_sent(Instant::now().into_std());
        }
        let endpoint = conn.endpoint.clone();
        let (app_tx, app_rx) = mpsc::channel(ch.config().window as usize + 8);
        let took = Arc::new(Notify::new());
        let expiry = (ch.deadline_budget(), ch.config().first_reply_timeout);
        tokio::spawn(drive_call(conn, ch, net_rx, app_tx, took.clone(), guard));
        Ok((
            CallHandle {
                app_rx,
                took,
                expiry,
                _alive: self._stop.clone(),
            },
            endpoint,
        ))
    }

    /// A connection for a new channel: round robin over the healthy ones
    /// Registers a channel and sends its request if there is room now;
    /// otherwise returns the request, to be sent with [`wait_send`] (with no
    /// server connected yet it waits for one: no slow-joiner loss).
    fn open_channel(&self, method: &str, args: Vec<Value>, trace: Option<&TraceContext>) -> Opened {
        let conn = self.pick();
        let mut request = Event::new(method, Value::Array(args));
        let trace_headers = trace.map(TraceContext::shared_entries);
        if let Some(h) = &trace_headers {
            request.header.shared = h.clone();
        }
        let id = request.header.message_id.clone();
        let mut cfg = self.inner.opts.channel;
        if let Some(t) = self.timeout {
            cfg.first_reply_timeout = t;
        }
        // The request carries the smaller of the call's timeout and what
        // is left of the deadline it runs under; the deadline, when it is
        // the smaller, is the channel's too.
        let now = std::time::Instant::now();
        let inherited = crate::deadline::current()
            .map(|at| (at, at.saturating_duration_since(now)))
            .filter(|(_, left)| cfg.first_reply_timeout.is_none_or(|t| *left < t));
        request.header.deadline_ms = inherited
            .map(|(_, left)| left)
            .or(cfg.first_reply_timeout)
            .map(crate::deadline::millis_of);
        // Room for a full window of stream items plus control events.
        let (net_tx, net_rx) = mailbox(cfg.window as usize + 16);
        conn.channels().insert(id.clone(), net_tx);
        let guard = CallGuard {
            conn: conn.clone(),
            id: id.clone(),
            drops_at_open: conn.drops.load(Ordering::SeqCst),
        };
        let msg = Message::from_iter([Bytes::new(), request.encode()]);
        let mut ch = Channel::client(id, cfg, now);
        if let Some((at, left)) = inherited {
            ch.set_deadline(at, left);
        }
        if let Some(h) = trace_headers {
            // every event of a traced channel carries its context
            ch.set_headers(h);
        }
        let unsent = match conn.dealer.try_send_or_return(msg) {
            Err(TrySendError::Full(msg)) => Some(msg),
            // (round-robin sockets only report Full)
            _ => None,
        };
        (conn, ch, net_rx, guard, unsent)
    }

    /// Sends the request and starts the task that drives its channel (for
    /// streams, whose consumer may be slow).
    /// (connected, no recent lost call), else over the connected ones,
    /// else any (the request then waits for its server to appear).
    fn pick(&self) -> Arc<Conn> {
        let conns = self.inner.conns();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let in_turn = || (0..conns.len()).map(|i| &conns[(start + i) % conns.len()]);
        if let Some(c) = in_turn().find(|c| c.healthy()) {
            return c.clone();
        }
        if let Some(wake) = &self.inner.naming {
            // none healthy: the service may have moved
            wake.notify_one();
        }
        in_turn()
            .find(|c| c.dealer.peer_count() > 0)
            // (a refused connection only where all are)
            .or_else(|| in_turn().find(|c| c.refusal().is_none()))
            .unwrap_or(&conns[start % conns.len()])
            .clone()
    }
}

/// What [`Client::open_channel`] returns: the connection, the channel,
/// its mailbox, its registration, and the request if it still has to be
/// sent.
type Opened = (
    Arc<Conn>,
    Channel,
    MailReceiver<Event>,
    CallGuard,
    Option<Message>,
);

/// A client span: recorded when the call ends, or as cancelled if the
/// call is dropped first.
struct SpanGuard {
    recorder: Recorder,
    span: Option<Span>,
}

impl SpanGuard {
    fn new(recorder: Recorder, span: Span) -> Self {
        SpanGuard {
            recorder,
            span: Some(span),
        }
    }

    fn set_payload(&mut self, payload: Option<Box<crate::record::Payload>>) {
        if let Some(s) = &mut self.span {
            s.set_payload(payload);
        }
    }

    fn set_traceback(&mut self, tb: &str) {
        if let Some(s) = &mut self.span {
            s.set_traceback(tb);
        }
    }

    fn finish(mut self, outcome: Outcome) {
        if let Some(s) = self.span.take() {
            s.finish(&self.recorder, outcome);
        }
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if let Some(s) = self.span.take() {
            s.finish(&self.recorder, Outcome::Cancelled);
        }
    }
}

/// What is watched of a streamed call (traced, measured, or with an error
/// hook): its span, items, and how it ended.
struct StreamWatch {
    span: Option<SpanGuard>,
    ids: Option<(String, String)>,
    client: Client,
    endpoint: Arc<str>,
    method: String,
    started: std::time::Instant,
    items: u64,
    /// The arguments and the items so far, when payloads are recorded.
    payload: Option<StreamPayload>,
}

/// A streamed call's payload being gathered (dropped once it grows past
/// [`crate::record::Payload::MAX_BYTES`]).
struct StreamPayload {
    args: Vec<Value>,
    items: Option<Vec<Value>>,
    bytes: usize,
}

impl StreamWatch {
    /// A stream item arrived.
    fn item(&mut self, v: &Value) {
        self.items += 1;
        // (once past the cap, nothing more is measured or kept)
        if let Some(p) = self.payload.as_mut().filter(|p| p.items.is_some()) {
            p.bytes += crate::record::Payload::size_of(v);
            match &mut p.items {
                Some(items) if p.bytes <= crate::record::Payload::MAX_BYTES => {
                    items.push(v.clone())
                }
                _ => p.items = None,
            }
        }
    }

    /// The stream ended: normally (`None`), with a last value, or an error.
    fn end(mut self: Box<Self>, last: Option<Result<&Value, &Error>>) {
        if let (Some(p), Some(span)) = (self.payload.take(), self.span.as_mut()) {
            let result = match last {
                None => p.items.map(Value::Array),
                Some(Ok(v)) => Some(v.clone()),
                Some(Err(_)) => None,
            };
            // (a stream too big to keep is recorded without its payload)
            if result.is_some() || matches!(last, Some(Err(_))) {
                span.set_payload(crate::record::Payload::capped(p.args, result));
            }
        }
        if let (Some(Err(Error::Remote(e))), Some(span)) = (last, self.span.as_mut()) {
            span.set_traceback(&e.traceback);
        }
        let r = match last {
            None => Ok((Value::Nil, Some(self.items))),
            Some(Ok(_)) => Ok((Value::Nil, None)),
            Some(Err(e)) => Err(e),
        };
        if let Err(Error::Remote(e)) = r {
            let ids = self.ids.take();
            self.client.report(&self.endpoint, &self.method, e, ids);
        }
        let outcome = match r {
            Ok(ok) => client_outcome(&Ok(ok)),
            Err(e) => error_outcome(e),
        };
        if self.client.inner.opts.metrics {
            crate::metrics::client_call(&self.method, &outcome, self.started.elapsed());
        }
        if let Some(s) = self.span.take() {
            s.finish(outcome);
        }
    }
}

/// How a call ended, for its record.
fn client_outcome(r: &Result<(Value, Option<u64>), Error>) -> Outcome {
    match r {
        Ok((_, None)) => Outcome::Ok,
        Ok((_, Some(items))) => Outcome::Stream { items: *items },
        Err(e) => error_outcome(e),
    }
}

/// How a failed call ended, for its record.
fn error_outcome(e: &Error) -> Outcome {
    match e {
        Error::Remote(e) => Outcome::Err {
            name: e.name.clone(),
            message: e.message.clone(),
        },
        Error::Timeout(_) => Outcome::Timeout,
        Error::LostRemote(_) | Error::Disconnected => Outcome::Lost,
        other => Outcome::Err {
            name: "ClientError".into(),
            message: other.to_string(),
        },
    }
}

/// Unregisters a call's channel when the call ends or is dropped.
struct CallGuard {
    conn: Arc<Conn>,
    id: MessageId,
    /// The connection's drop count when the channel opened.
    drops_at_open: u64,
}

impl CallGuard {
    /// Moves the channel to another connection (its request had not left).
    fn move_to(&mut self, to: &Arc<Conn>) {
        if let Some(tx) = self.conn.channels().remove(&self.id) {
            to.channels().insert(self.id.clone(), tx);
        }
        self.conn = to.clone();
        self.drops_at_open = to.drops.load(Ordering::SeqCst);
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.conn.channels().remove(&self.id);
    }
}

/// A call driven by its caller (see [`Client::call`]).
struct InlineCall {
    conn: Arc<Conn>,
    ch: Channel,
    net_rx: MailReceiver<Event>,
    /// One timer for the call's life, moved as its deadline moves.
    timer: Pin<Box<Sleep>>,
    /// A control event waiting for room (see [`poll_flush`]).
    sending: Option<BoxedSend>,
    _guard: CallGuard,
}

impl InlineCall {
    /// The call, and its request if it still has to be sent (boxed: rare).
    fn new(opened: Opened) -> (Self, Option<Box<Message>>) {
        let (conn, ch, net_rx, guard, unsent) = opened;
        let timer = Box::pin(tokio::time::sleep_until(Instant::from_std(
            ch.poll_timeout(),
        )));
        let call = InlineCall {
            conn,
            ch,
            net_rx,
            timer,
            sending: None,
            _guard: guard,
        };
        (call, unsent.map(Box::new))
    }

    /// Drives the channel until the next reply or stream item. Items are
    /// consumed as soon as they are returned, so credit follows at once.
    async fn next_event(&mut self) -> Result<Event, Error> {
        let r = std::future::poll_fn(|cx| self.poll_event(cx)).await;
        note_outcome(&self.conn, &r, self.ch.config());
        r
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        loop {
            // A send waiting for room (`Pending`) does not stop the reading.
            if let Poll::Ready(Err(e)) = poll_flush(&self.conn, &mut self.ch, &mut self.sending, cx)
            {
                return Poll::Ready(Err(e));
            }
            match self.net_rx.poll_recv(cx) {
                Poll::Ready(Some(ev)) => {
                    if let Some(app) = self
                        .ch
                        .on_event(ev, Instant::now().into_std())
                        .map_err(channel_error)?
                    {
                        if app.kind() == Some(EventKind::Stream) {
                            self.ch.consumed(1);
                        }
                        return Poll::Ready(Ok(app));
                    }
                    continue;
                }
                Poll::Ready(None) => {
                    return Poll::Ready(Err(self.conn.closed_error(self._guard.drops_at_open)))
                }
                Poll::Pending => {}
            }
            let deadline = Instant::from_std(self.ch.poll_timeout());
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => self
                    .ch
                    .handle_timeout(Instant::now().into_std())
                    .map_err(channel_error)?,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The caller's end of a call: replies and stream items in order.
struct CallHandle {
    app_rx: mpsc::Receiver<Box<Result<Event, Error>>>,
    took: Arc<Notify>,
    /// The call's deadline budget and timeout: what a server's
    /// `DeadlineExceeded` means for it (see [`Channel::expiry_of`]).
    expiry: (Option<Duration>, Option<Duration>),
    /// Keeps the receive loops running while this call lives, even if every
    /// `Client` clone is dropped first.
    _alive: Arc<tokio_util::sync::DropGuard>,
}

impl CallHandle {
    /// The next reply or stream item (or the call's failure).
    async fn next_event(&mut self) -> Result<Event, Error> {
        let r = self.app_rx.recv().await.map_or(Err(Error::Closed), |b| *b);
        // Room freed in the window: let the driver grant credit once it is
        // worth a grant (it grants when half the window is free).
        if self.app_rx.len() <= self.app_rx.max_capacity() / 2 {
            self.took.notify_one();
        }
        r
    }
}

/// Tells the connection how a call's event turned out (see [`Conn::note`]).
fn note_outcome(conn: &Conn, r: &Result<Event, Error>, cfg: &ChannelConfig) {
    match r {
        Err(e) => conn.note(e.is_lost(), cfg),
        Ok(ev) if ev.is_final() => conn.note(false, cfg),
        Ok(_) => {}
    }
}

/// Drives one call's channel in the background, so heartbeats flow however
/// slowly the caller consumes: routes the server's events through the
/// state machine, hands replies to the caller, grants credit as the caller
/// drains them, and stops (ending the heartbeats, which cancels the call
/// on the server) when the caller drops its handle.
async fn drive_call(
    conn: Arc<Conn>,
    mut ch: Channel,
    mut net_rx: MailReceiver<Event>,
    app_tx: mpsc::Sender<Box<Result<Event, Error>>>,
    took: Arc<Notify>,
    _guard: CallGuard,
) {
    let cap = app_tx.max_capacity() as u64;
    let mut forwarded = 0u64;
    let mut consumed = 0u64;
    // One timer for the call's life, moved as its deadline moves.
    let timer = tokio::time::sleep_until(Instant::from_std(ch.poll_timeout()));
    tokio::pin!(timer);
    let mut sending = None;
    loop {
        let queued = cap - app_tx.capacity() as u64;
        let now_consumed = forwarded - queued.min(forwarded);
        if now_consumed > consumed {
            ch.consumed(now_consumed - consumed);
            consumed = now_consumed;
        }
        let flushed = std::future::poll_fn(|cx| poll_flush(&conn, &mut ch, &mut sending, cx)).await;
        if let Err(e) = flushed {
            let _ = app_tx.try_send(Box::new(Err(e)));
            return;
        }
        let deadline = Instant::from_std(ch.poll_timeout());
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        tokio::select! {
            _ = app_tx.closed() => return,
            _ = took.notified() => {}
            ev = net_rx.recv() => {
                let Some(ev) = ev else {
                    let e = conn.closed_error(_guard.drops_at_open);
                    conn.note(e.is_lost(), ch.config());
                    let _ = app_tx.try_send(Box::new(Err(e)));
                    return;
                };
                match ch.on_event(ev, Instant::now().into_std()) {
                    Ok(Some(app)) => {
                        let last = app.is_final();
                        if last {
                            conn.note(false, ch.config());
                        }
                        if app.kind() == Some(EventKind::Stream) {
                            forwarded += 1;
                        }
                        // The window bounds what the server may send, and
                        // the queue holds a window plus the final reply.
                        if app_tx.try_send(Box::new(Ok(app))).is_err() {
                            if !app_tx.is_closed() {
                                tracing::warn!(channel = %ch.id(), "server exceeded the stream window");
                                let _ = app_tx.try_send(Box::new(Err(Error::Protocol("server exceeded the stream window".into()))));
                            }
                            return;
                        }
                        if last {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = app_tx.try_send(Box::new(Err(channel_error(e))));
                        return;
                    }
                }
            }
            _ = &mut timer => {
                if let Err(e) = ch.handle_timeout(Instant::now().into_std()) {
                    let e = channel_error(e);
                    conn.note(e.is_lost(), ch.config());
                    let _ = app_tx.try_send(Box::new(Err(e)));
                    return;
                }
            }
        }
    }
}

type BoxedSend = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// Sends what the channel queued, in order; `Pending` while a send waits
/// for room. Heartbeats are best effort (with the server gone there is no
/// peer to send to, and loss detection decides); credit must arrive or the
/// stream stalls. Neither waits longer than the remote may stay silent.
fn poll_flush(
    conn: &Arc<Conn>,
    ch: &mut Channel,
    sending: &mut Option<BoxedSend>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    loop {
        if let Some(f) = sending {
            match f.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    *sending = None;
                    r?;
                }
            }
        }
        let Some(ev) = ch.poll_transmit() else {
            return Poll::Ready(Ok(()));
        };
        let msg = Message::from_iter([Bytes::new(), ev.encode()]);
        let Err(TrySendError::Full(msg)) = conn.dealer.try_send_or_return(msg) else {
            continue;
        };
        let cfg = *ch.config();
        let conn = conn.clone();
        *sending = Some(if ev.kind() == Some(EventKind::More) {
            let patience = cfg.heartbeat * cfg.lost_after;
            Box::pin(async move {
                tokio::time::timeout(patience, conn.dealer.send(msg))
                    .await
                    .map_err(|_| Error::LostRemote(patience))?
                    .map_err(Error::from)
            })
        } else {
            Box::pin(async move {
                if tokio::time::timeout(cfg.heartbeat, conn.dealer.send(msg))
                    .await
                    .is_err()
                {
                    tracing::debug!("heartbeat not sent: no room or no server");
                }
                Ok(())
            })
        });
    }
}

/// Sends a request that found no room (or no server yet): waits for one,
/// but never past the call timeout. When its connection is refused (the
/// wrong keys, or not a server: no server will appear there) the request
/// moves to another connection, and fails at once when all are refused.
async fn wait_send(
    inner: &Inner,
    conn: &mut Arc<Conn>,
    guard: &mut CallGuard,
    msg: Message,
    timeout: Option<Duration>,
) -> Result<(), Error> {
    let send = async {
        loop {
            // (a send that loses the race has not queued its copy)
            let refused = tokio::select! {
                r = conn.dealer.send(msg.clone()) => return r.map_err(Error::from),
                r = inner.refused(conn) => r,
            };
            match inner.unrefused() {
                Some(other) => {
                    tracing::debug!(from = %conn.endpoint, to = %other.endpoint, reason = %refused.reason, "request moves off a refused connection");
                    guard.move_to(&other);
                    *conn = other;
                }
                None => return Err(refused.error()),
            }
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, send)
            .await
            .map_err(|_| Error::Timeout(t))?,
        None => send.await,
    }
}

/// The error an `ERR` reply means (see [`Channel::expiry_of`]).
fn reply_error(ch: &Channel, args: Value) -> Error {
    let e = remote_error(args);
    match ch.expiry_of(&e.name) {
        Some(x) => channel_error(x),
        None => Error::Remote(e),
    }
}

fn channel_error(e: ChannelError) -> Error {
    match e {
        ChannelError::Timeout(t) => Error::Timeout(t),
        ChannelError::LostRemote(t) => Error::LostRemote(t),
        ChannelError::BadCredit => Error::Protocol("malformed _zpc_more".into()),
        ChannelError::DeadlineExceeded(t) => Error::DeadlineExceeded(t),
    }
}

fn unexpected(name: &str) -> Error {
    Error::Protocol(format!("unexpected {name} event"))
}

fn first_arg(args: Value) -> Value {
    match args {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        Value::Array(_) => Value::Nil,
        other => other,
    }
}

/// Reads `ERR [name, message, traceback]` (or a version 1 one-item array).
pub(crate) fn remote_error(args: Value) -> CallError {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.as_str().unwrap_or_default().to_owned(),
        Some(Value::Binary(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::Nil) | None => String::new(),
        Some(other) => other.to_string(),
    };
    match &args {
        Value::Array(a) if a.len() == 1 => CallError {
            name: "RemoteError".into(),
            message: text(a.first()),
            traceback: String::new(),
        },
        Value::Array(a) => CallError {
            name: text(a.first()),
            message: text(a.get(1)),
            traceback: text(a.get(2)),
        },
        other => CallError {
            name: "RemoteError".into(),
            message: text(Some(other)),
            traceback: String::new(),
        },
    }
}

async fn receive_loop(
    conn: Arc<Conn>,
    limits: DecodeLimits,
    mut events: tokio::sync::broadcast::Receiver<zmtp::SocketEvent>,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            ev = events.recv() => {
                match ev {
                    Ok(zmtp::SocketEvent::Disconnected { .. }) => {
                        // The calls it carried are lost: fail them now
                        // rather than after two silent heartbeat intervals.
                        conn.drops.fetch_add(1, Ordering::SeqCst);
                        conn.channels().clear();
                    }
                    Ok(zmtp::SocketEvent::HandshakeFailed { reason, kind, .. }) => match kind {
                        zmtp::HandshakeFailure::Other => {}
                        // Security refused us, or the endpoint is no
                        // server: waiting calls fail now (see wait_send).
                        kind => conn.set_refusal(Some(Refusal { kind, reason })),
                    },
                    Ok(zmtp::SocketEvent::Connected { .. }) => conn.set_refusal(None),
                    _ => {}
                }
                continue;
            }
            m = conn.dealer.recv() => match m {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        let Some(payload) = msg.last() else { continue };
        let ev = match Event::decode(payload, limits) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "dropping undecodable event from server");
                continue;
            }
        };
        let Some(channel) = ev.header.response_to.clone() else {
            tracing::debug!(name = %ev.name, "event without response_to, dropped");
            continue;
        };
        let mut chans = conn.channels();
        if let Some(tx) = chans.get(&channel) {
            if let Err(MailError::Full) = tx.try_send(ev) {
                // The server ignored our credit: fail that call only.
                tracing::warn!(%channel, "server overflowed the channel window; failing the call");
                chans.remove(&channel);
            }
        }
    }
}

/// A client for programs without an async runtime: runs its own.
pub struct BlockingClient {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl std::fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient").finish()
    }
}

impl BlockingClient {
    /// Connects to `endpoint`.
    pub fn connect(endpoint: &str) -> Result<Self, Error> {
        BlockingClient::connect_with(&[endpoint], ClientOptions::default())
    }

    /// Connects with options.
    pub fn connect_with(endpoints: &[&str], opts: ClientOptions) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::Transport(zmtp::ZmtpError::Io(e)))?;
        let client = rt.block_on(Client::connect_with(endpoints, opts))?;
        Ok(BlockingClient { rt, client })
    }

    /// Calls a method and waits for the result.
    pub fn call(&self, method: &str, args: Vec<Value>) -> Result<Value, Error> {
        self.rt.block_on(self.client.call(method, args))
    }

    /// Calls a streaming method; the iterator yields items as they arrive.
    pub fn call_stream(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<impl Iterator<Item = Result<Value, Error>> + '_, Error> {
        let stream = self.rt.block_on(self.client.call_stream(method, args))?;
        let mut stream = Box::pin(stream);
        Ok(std::iter::from_fn(move || {
            self.rt.block_on(futures::StreamExt::next(&mut stream))
        }))
    }
}
