//! The client: DEALER sockets, one channel per call.
//!
//! A client may be given several endpoints: it keeps one DEALER per
//! endpoint and pins every channel to one of them (a single DEALER would
//! round-robin the heartbeats and credit of one call across servers). The
//! call future (or stream) drives its [`Channel`]; dropping it stops the
//! heartbeats, which is how ZeroRPC cancels.
//!
//! Modules: `options` (settings), `conn` (connections, their receive
//! loops, opening channels on them), `drive` (a call's channel, inline
//! or in a task), `observe` (how a watched call ended), `blocking`
//! ([`BlockingClient`]).

mod blocking;
mod conn;
mod drive;
mod observe;
mod options;

pub use blocking::BlockingClient;
pub use options::{ClientOptions, RetryPolicy};

use conn::*;
use drive::*;
use observe::*;
use options::*;

use foldhash::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::Stream;
use rmpv::Value;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use zmtp::{DealerSocket, Message, SocketOptions, TrySendError};

use crate::channel::{Channel, ChannelConfig, ChannelError, Driver, Outlet, Timers, NO_DEADLINE};
use crate::error::{CallError, Error};
use crate::event::{DecodeLimits, Event, EventKind, MessageId, Received};
use crate::hex::HexId;
use crate::mailbox::{mailbox, MailError, MailReceiver, MailSender};
use crate::observe::{CallStart, CallWatch, Ended, Observers};
use crate::record::{Outcome, Peer, Recorder, Side};
use crate::report::OnError;
use crate::trace::TraceContext;
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
    ///
    /// Like an `async fn`, nothing happens until the future is polled.
    /// (It is a hand-written future: an open call costs its caller little
    /// more than its channel.)
    pub fn call<'a>(
        &'a self,
        method: &'a str,
        args: Vec<Value>,
    ) -> impl Future<Output = Result<Value, Error>> + Send + 'a {
        CallFuture::Start {
            client: self,
            method,
            args,
        }
    }

    /// The first step of a call: a call that is retried or observed is a
    /// boxed future of its own (their state would otherwise sit in every
    /// call); a plain one is its channel, opened now.
    fn start_call<'a>(&'a self, method: &'a str, args: Vec<Value>, retry: bool) -> CallFuture<'a> {
        if retry {
            if let Some(policy) = self.inner.opts.retry.as_ref() {
                if policy.covers(method) {
                    return CallFuture::Boxed(Box::pin(
                        self.call_with_retries(policy, method, args),
                    ));
                }
            }
        }
        // Traced inside a traced handler (a child span), else a new trace
        // unless `trace_roots` is off and the client does not record.
        let trace = call_context(&self.inner.opts);
        // A call a `tracing` subscriber sees runs in its span, in a box.
        if trace.is_some() && tracing::span_enabled!(tracing::Level::INFO) {
            return CallFuture::Boxed(Box::pin(self.call_observed(method, args, trace)));
        }
        // A call nobody watches (no recorder, metrics or error hook: the
        // default) carries its trace context and nothing more.
        if self.inner.observers.is_none() {
            let opened = self.open_channel(method, args, trace.as_ref(), std::time::Instant::now());
            return CallFuture::Plain(Collect::new(&self.inner, opened));
        }
        match self.open_watched(method, args, trace.as_ref()) {
            (opened, Some(w)) => CallFuture::Watched(Collect::new(&self.inner, opened), w),
            (opened, None) => CallFuture::Plain(Collect::new(&self.inner, opened)),
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

    /// One attempt of a call (retries are not this attempt's business).
    async fn call_once(&self, method: &str, args: Vec<Value>) -> Result<Value, Error> {
        self.start_call(method, args, false).await
    }

    /// A call seen by a `tracing` subscriber (and its watch, when the
    /// client has observers).
    async fn call_observed(
        &self,
        method: &str,
        args: Vec<Value>,
        trace: Option<TraceContext>,
    ) -> Result<Value, Error> {
        let (opened, watch) = self.open_watched(method, args, trace.as_ref());
        let endpoint = &opened.0.out.conn.endpoint;
        // A `tracing` span too, so subscribers see the call with its ids.
        // (made only when a subscriber wants it: a trace context is on
        // every call, a subscriber seldom)
        let tracing_span = match &trace {
            Some(ctx) if tracing::span_enabled!(tracing::Level::INFO) => tracing::info_span!(
                "zerorpc.client",
                rpc.system = "zerorpc",
                rpc.method = %method,
                server.address = %endpoint,
                trace_id = %HexId(&ctx.trace_id),
                span_id = %HexId(&ctx.span_id),
            ),
            _ => tracing::Span::none(),
        };
        let r =
            tracing::Instrument::instrument(Collect::new(&self.inner, opened), tracing_span).await;
        if let Some(mut w) = watch {
            w.end(ended_call(&r));
        }
        r.map(|(v, _)| v)
    }

    /// Opens a call's channel, and starts watching it when the client has
    /// observers (its span starts before the request leaves).
    fn open_watched(
        &self,
        method: &str,
        args: Vec<Value>,
        trace: Option<&TraceContext>,
    ) -> (Opened, Option<Box<CallWatch>>) {
        let t0 = std::time::Instant::now();
        let captured = self.captured(&args, trace);
        let opened = self.open_channel(method, args, trace, t0);
        let endpoint = opened.0.out.conn.endpoint.clone();
        let watch = self.watch(trace, endpoint, method, captured, t0);
        (opened, watch)
    }

    /// A copy of a call's arguments, when its payload is recorded.
    fn captured(&self, args: &[Value], trace: Option<&TraceContext>) -> Option<Vec<Value>> {
        let obs = self.inner.observers.as_ref()?;
        obs.keeps_payloads(trace).then(|| args.to_vec())
    }

    /// Starts watching a call (when the client has observers).
    fn watch(
        &self,
        trace: Option<&TraceContext>,
        endpoint: Arc<str>,
        method: &str,
        args: Option<Vec<Value>>,
        at: std::time::Instant,
    ) -> Option<Box<CallWatch>> {
        let obs = self.inner.observers.as_ref()?;
        Some(obs.start(CallStart {
            ctx: trace,
            service: &endpoint,
            method: method.into(),
            peer: Peer::Endpoint(endpoint.clone()),
            args,
            at,
        }))
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
        // Driven here until its first reply, as `call` is: a call answered
        // with one value (most are) needs no task of its own, and no
        // hand-over from one; a stream's driver task starts at its first
        // item (it keeps the heartbeats and credit going while the caller
        // takes its time).
        let (mut call, mut watch) = self.open_watched_inline(method, args).await?;
        let r = std::future::poll_fn(|cx| call.poll_event(cx)).await;
        call.note_outcome(&r);
        let (first, rest) = match reply_of(r, call.expiry()) {
            Some(Ok((true, first))) => {
                // (handed to the caller: consumed, which grants credit)
                call.driver.ch.consumed(1);
                if let Some(w) = &mut watch {
                    w.item(&first);
                }
                (
                    Some(Ok(first)),
                    watched_items(Some((self.drive(call), watch))),
                )
            }
            other => {
                if let Some(mut w) = watch {
                    w.end(ended_by(&other));
                }
                match other {
                    Some(Ok((_, v))) => return Ok(Reply::Value(v)),
                    Some(Err(e)) => return Err(e),
                    // (an empty stream: STREAM_DONE first)
                    None => (None, watched_items(None)),
                }
            }
        };
        // (fused: it may be polled again after its end)
        Ok(Reply::Stream(
            futures::stream::iter(first)
                .chain(rest.map(|r| r.map(|(_, v)| v)))
                .fuse(),
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
        let (call, watch) = self.open_watched_inline(method, args).await?;
        Ok(watched_items(Some((self.drive(call), watch))))
    }

    /// [`Client::open_watched`] for a call driven by its caller until its
    /// first reply ([`Client::call_reply`], [`Client::call_stream`]): its
    /// trace context made here, its request queued once its connection
    /// has room.
    async fn open_watched_inline(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<(InlineCall, Option<Box<CallWatch>>), Error> {
        let trace = call_context(&self.inner.opts);
        let t0 = std::time::Instant::now();
        let captured = self.captured(&args, trace.as_ref());
        let call = self.open_inline(method, args, trace.as_ref(), t0).await?;
        let endpoint = call.out.conn.endpoint.clone();
        let watch = self.watch(trace.as_ref(), endpoint, method, captured, t0);
        Ok((call, watch))
    }
}

/// What an event of a call is to its caller: a stream item (`true`), the
/// single value of an `OK` (`false`), the stream's end (`None`), or the
/// call's failure (`expiry`: see [`InlineCall::expiry`]).
fn reply_of(
    r: Result<Received, Error>,
    (budget, timeout): (Option<Duration>, Option<Duration>),
) -> Option<Result<(bool, Value), Error>> {
    let ev = match r {
        Ok(ev) => ev,
        Err(e) => return Some(Err(e)),
    };
    match ev.kind {
        Some(EventKind::Stream) => Some(Ok((true, ev.args))),
        Some(EventKind::StreamDone) => None,
        Some(EventKind::Ok) => Some(Ok((false, first_arg(ev.args)))),
        Some(EventKind::Err) => {
            let e = remote_error(ev.args);
            Some(Err(
                match crate::channel::expiry(&e.name, budget, timeout) {
                    Some(x) => channel_error(x),
                    None => Error::Remote(e),
                },
            ))
        }
        _ => Some(Err(unexpected(ev.name()))),
    }
}

/// How a call whose last reply was `r` (see [`reply_of`]) ended.
fn ended_by(r: &Option<Result<(bool, Value), Error>>) -> Ended<'_> {
    match r {
        None => Ended::StreamDone,
        Some(Ok((_, v))) => Ended::Value(v),
        Some(Err(e)) => failed(e),
    }
}

/// A call's replies from its driver task (see [`reply_of`]), its watch
/// told of each item and of the end; nothing if `state` is `None`.
fn watched_items(
    state: Option<(CallHandle, Option<Box<CallWatch>>)>,
) -> impl Stream<Item = Result<(bool, Value), Error>> + Send + Unpin + 'static {
    // (boxed: an `Unpin` stream is simpler to use)
    Box::pin(futures::stream::unfold(state, |state| async move {
        let (mut call, mut watch) = state?;
        let r = reply_of(call.next_event().await, call.expiry);
        if let Some(Ok((true, v))) = &r {
            if let Some(w) = &mut watch {
                w.item(v);
            }
        } else if let Some(mut w) = watch.take() {
            w.end(ended_by(&r));
        }
        let more = matches!(r, Some(Ok((true, _))));
        r.map(|r| (r, more.then_some((call, watch))))
    }))
}
