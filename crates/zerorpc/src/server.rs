//! The server: a ROUTER socket, one task per channel.
//!
//! Every request opens a channel served by its own task, which drives the
//! sans-IO [`Channel`] (heartbeats, credit, loss), runs the handler, and
//! sends `OK` / `ERR` / `STREAM`... `STREAM_DONE`. A handler that panics
//! produces an `ERR` for its call only. When a client goes silent for two
//! heartbeat intervals, or its connection drops, its handlers are dropped
//! (cancelled).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use rmpv::Value;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use zmtp::{Endpoint, Message, RouterSocket, SocketEvent, SocketOptions};

use crate::channel::{Channel, ChannelConfig};
use crate::error::Error;
use crate::event::{DecodeLimits, Event, MessageId};
use crate::introspection;
use crate::service::{CallContext, CallError, HandlerFuture, IntoService, Response, Service};

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
        }
    }
}

type ChannelKey = (Bytes, MessageId);

struct Inner {
    service: Arc<dyn Service>,
    router: RouterSocket,
    opts: ServerOptions,
    channels: Mutex<HashMap<ChannelKey, mpsc::Sender<Box<Event>>>>,
    limiter: Option<Arc<Semaphore>>,
    cancel: CancellationToken,
    /// Set by a graceful shutdown: new calls are refused.
    draining: std::sync::atomic::AtomicBool,
}

impl Inner {
    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelKey, mpsc::Sender<Box<Event>>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A ZeroRPC server for one service.
pub struct Server {
    inner: Arc<Inner>,
    _guard: tokio_util::sync::DropGuard,
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
        let cancel = CancellationToken::new();
        let inner = Arc::new(Inner {
            service: Arc::new(service.into_service()),
            router: RouterSocket::with_options(opts.socket.clone()),
            limiter: opts
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n.max(1)))),
            opts,
            channels: Mutex::new(HashMap::new()),
            cancel: cancel.clone(),
            draining: std::sync::atomic::AtomicBool::new(false),
        });
        Server {
            inner,
            _guard: cancel.drop_guard(),
        }
    }

    /// Listens on an endpoint; returns it with the real port.
    pub async fn bind(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.inner.router.bind(endpoint).await?)
    }

    /// Connects to an endpoint (for example a hub's worker side).
    pub async fn connect(&self, endpoint: &str) -> Result<(), Error> {
        Ok(self.inner.router.connect(endpoint).await?)
    }

    /// Number of calls in progress.
    pub fn active_calls(&self) -> usize {
        self.inner.channels().len()
    }

    /// Serves until the server is dropped (or [`Server::shutdown`]).
    pub async fn run(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let mut events = inner.router.monitor();
        loop {
            tokio::select! {
                _ = inner.cancel.cancelled() => return Ok(()),
                m = inner.router.recv() => handle_message(inner, m?),
                ev = events.recv() => {
                    if let Ok(SocketEvent::Disconnected { routing_id: Some(id), .. }) = ev {
                        // Its channels can no longer be answered: cancel them.
                        inner.channels().retain(|(peer, _), _| *peer != id);
                    }
                }
            }
        }
    }

    /// Stops serving at once: running calls are cancelled without a reply
    /// (their clients detect the loss, as after a crash). See
    /// [`Server::shutdown_gracefully`] for the polite way.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }

    /// Stops taking new calls (they get `ERR ServerShutdown`), waits up to
    /// `grace` for running calls to finish, then cancels the rest, each with
    /// an `ERR ServerShutdown` to its client.
    pub async fn shutdown_gracefully(&self, grace: std::time::Duration) {
        self.inner
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
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

fn handle_message(inner: &Arc<Inner>, msg: Message) {
    let frames = msg.frames();
    let (Some(identity), Some(payload)) = (frames.first(), frames.last()) else {
        return;
    };
    if frames.len() < 2 {
        return;
    }
    let event = match Event::decode(payload, inner.opts.decode_limits) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(peer = ?identity, error = %e, "dropping undecodable event");
            return;
        }
    };
    match event.header.response_to.clone() {
        Some(channel) => {
            let tx = inner.channels().get(&(identity.clone(), channel)).cloned();
            match tx {
                Some(tx) => {
                    if tx.try_send(Box::new(event)).is_err() {
                        tracing::warn!(peer = ?identity, "channel event queue full, dropping event");
                    }
                }
                None => {
                    tracing::debug!(peer = ?identity, name = %event.name, "event for unknown channel")
                }
            }
        }
        None => {
            let key = (identity.clone(), event.header.message_id.clone());
            let (tx, rx) = mpsc::channel(inner.opts.channel_queue.max(1));
            {
                let mut chans = inner.channels();
                if chans.contains_key(&key) {
                    tracing::warn!(peer = ?identity, id = %key.1, "duplicate request id, ignored");
                    return;
                }
                chans.insert(key.clone(), tx);
            }
            let envelope: Vec<Bytes> = frames[..frames.len() - 1].to_vec();
            tokio::spawn(serve_channel(inner.clone(), key, envelope, event, rx));
        }
    }
}

/// Removes the channel from the table however its task ends.
struct ChannelGuard {
    inner: Arc<Inner>,
    key: ChannelKey,
}

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        self.inner.channels().remove(&self.key);
    }
}

enum Phase {
    Queued,
    Running(HandlerFuture),
    Streaming(futures::stream::BoxStream<'static, Result<Value, CallError>>),
    Done,
}

async fn serve_channel(
    inner: Arc<Inner>,
    key: ChannelKey,
    envelope: Vec<Bytes>,
    request: Event,
    mut rx: mpsc::Receiver<Box<Event>>,
) {
    let _guard = ChannelGuard {
        inner: inner.clone(),
        key: key.clone(),
    };
    let method = request.name.clone();
    let mut ch = Channel::server(&request, inner.opts.channel, Instant::now().into_std());
    let mut request = Some(request);
    let mut phase = Phase::Queued;
    // Held while the handler runs.
    let mut permit: Option<tokio::sync::OwnedSemaphorePermit> = None;
    // One timer for the channel's life, moved as its deadline moves.
    let timer = tokio::time::sleep_until(Instant::from_std(ch.poll_timeout()));
    tokio::pin!(timer);
    loop {
        // Start the handler once a concurrency slot is ours.
        if matches!(phase, Phase::Queued) {
            let slot = match &inner.limiter {
                None => true,
                Some(sem) => match sem.clone().try_acquire_owned() {
                    Ok(p) => {
                        permit = Some(p);
                        true
                    }
                    Err(_) => false,
                },
            };
            if slot {
                if let Some(req) = request.take() {
                    phase = Phase::Running(dispatch(&inner, req));
                }
            }
        }
        // Send whatever the channel has queued.
        while let Some(ev) = ch.poll_transmit() {
            let mut m: Message = envelope.iter().cloned().collect();
            m.push_back(ev.encode());
            if let Err(e) = inner.router.send(m).await {
                tracing::debug!(method = %method, error = %e, "client unreachable, abandoning call");
                return;
            }
        }
        if matches!(phase, Phase::Done) {
            drop(permit);
            return;
        }
        let deadline = Instant::from_std(ch.poll_timeout());
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        let can_send = ch.can_send_item();
        let limiter = inner.limiter.clone();
        tokio::select! {
            _ = inner.cancel.cancelled() => {
                if !inner.draining.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                // A graceful shutdown: tell the client rather than go silent.
                let ev = Event::on_channel(
                    ch.id(),
                    "ERR",
                    err_args(&CallError::new("ServerShutdown", "the server is shutting down")),
                );
                let mut m: Message = envelope.iter().cloned().collect();
                m.push_back(ev.encode());
                let _ = tokio::time::timeout(std::time::Duration::from_millis(200), inner.router.send(m)).await;
                return;
            }
            ev = rx.recv() => match ev {
                Some(ev) => {
                    if let Err(e) = ch.on_event(*ev, Instant::now().into_std()) {
                        tracing::warn!(method = %method, error = ?e, "bad control event, abandoning call");
                        return;
                    }
                }
                // Removed from the table: the client disconnected.
                None => {
                    tracing::debug!(method = %method, "client disconnected, cancelling call");
                    return;
                }
            },
            _ = &mut timer => {
                if let Err(e) = ch.handle_timeout(Instant::now().into_std()) {
                    tracing::info!(method = %method, error = ?e, "client lost, cancelling call");
                    return;
                }
            }
            // Wait in line for a slot (still heart-beating meanwhile).
            p = wait_slot(limiter), if matches!(phase, Phase::Queued) => {
                permit = p;
                if let Some(req) = request.take() {
                    phase = Phase::Running(dispatch(&inner, req));
                }
            }
            w = work(&mut phase, can_send) => match w {
                Work::Finished(Ok(Response::Value(v))) => {
                    ch.send("OK", Value::Array(vec![v]));
                    phase = Phase::Done;
                }
                Work::Finished(Ok(Response::Stream(st))) => phase = Phase::Streaming(st),
                Work::Finished(Err(e)) => {
                    ch.send("ERR", err_args(&e));
                    phase = Phase::Done;
                }
                Work::Item(item) => {
                    let mut done = send_item(&mut ch, item);
                    // Take every item that is ready now and has credit, so
                    // a fast stream costs one pass of this loop per batch.
                    if let Phase::Streaming(st) = &mut phase {
                        while !done && ch.can_send_item() {
                            match AssertUnwindSafe(st.next()).catch_unwind().now_or_never() {
                                Some(r) => done = send_item(&mut ch, caught(r)),
                                None => break,
                            }
                        }
                    }
                    if done {
                        phase = Phase::Done;
                    }
                }
            },
        }
    }
}

async fn wait_slot(limiter: Option<Arc<Semaphore>>) -> Option<tokio::sync::OwnedSemaphorePermit> {
    match limiter {
        Some(sem) => sem.acquire_owned().await.ok(),
        None => std::future::pending().await,
    }
}

enum Work {
    Finished(Result<Response, CallError>),
    Item(Option<Result<Value, CallError>>),
}

/// Progress of the handler: its result, or the next stream item when the
/// client has granted credit. A panic becomes an error.
async fn work(phase: &mut Phase, can_send: bool) -> Work {
    match phase {
        Phase::Running(fut) => Work::Finished(
            AssertUnwindSafe(fut)
                .catch_unwind()
                .await
                .unwrap_or_else(|p| Err(panic_error(p))),
        ),
        Phase::Streaming(st) if can_send => {
            Work::Item(caught(AssertUnwindSafe(st.next()).catch_unwind().await))
        }
        _ => std::future::pending().await,
    }
}

/// A stream's next item, with a panic turned into an error item.
fn caught(
    r: Result<Option<Result<Value, CallError>>, Box<dyn std::any::Any + Send>>,
) -> Option<Result<Value, CallError>> {
    r.unwrap_or_else(|p| Some(Err(panic_error(p))))
}

/// Sends one stream outcome (`STREAM`, `ERR`, or `STREAM_DONE` at the end);
/// returns whether the stream is over.
fn send_item(ch: &mut Channel, item: Option<Result<Value, CallError>>) -> bool {
    match item {
        Some(Ok(v)) => {
            ch.send("STREAM", v);
            false
        }
        Some(Err(e)) => {
            ch.send("ERR", err_args(&e));
            true
        }
        None => {
            ch.send("STREAM_DONE", Value::Nil);
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

fn err_args(e: &CallError) -> Value {
    Value::Array(vec![
        Value::from(e.name.as_str()),
        Value::from(e.message.as_str()),
        Value::from(e.traceback.as_str()),
    ])
}

fn dispatch(inner: &Arc<Inner>, req: Event) -> HandlerFuture {
    tracing::debug!(method = %req.name, id = %req.header.message_id, "call");
    if inner.draining.load(std::sync::atomic::Ordering::SeqCst) {
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
    if let Some(r) = introspection::answer(inner.service.as_ref(), &req.name, &args) {
        return async move { r.map(Response::Value) }.boxed();
    }
    let ctx = CallContext { header: req.header };
    match inner.service.call(&req.name, args, ctx) {
        Some(fut) => fut,
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
