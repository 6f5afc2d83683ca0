//! The server: a ROUTER socket, one task per channel.
//!
//! Requests are decoded and routed on the reader task of the connection
//! they arrive on (per-connection dispatch, `receive::Dispatch`). Every
//! request opens a channel served by a small hand-written future (polled
//! first right there under load, else on a task of its own), which drives
//! the sans-IO [`Channel`] (heartbeats, credit, loss), runs the handler,
//! and sends `OK` / `ERR` / `STREAM`... `STREAM_DONE`. A handler that
//! panics produces an `ERR` for its call only. When a client goes silent
//! for two heartbeat intervals, or its connection drops, its handlers are
//! dropped (cancelled).
//!
//! Modules: `options` (settings), `receive` (a request's way from its
//! connection to its channel), `call` (the future serving one channel),
//! `observe` (what is told of a call to the recorder, the metrics and the
//! error hook), `dispatch` (starting a handler).

mod call;
mod dispatch;
mod observe;
mod options;
mod receive;

pub use options::ServerOptions;

use call::*;
use dispatch::*;
use observe::*;
use receive::*;

use foldhash::HashMap;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use rmpv::Value;
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use zmtp::{Endpoint, Message, PeerSender, RouterSocket, SocketEvent, SocketOptions, TrySendError};

use crate::auth::Authorization;
use crate::channel::{Channel, ChannelConfig, ChannelError, Driver, Outlet, Timers};
use crate::error::CallError;
use crate::error::Error;
use crate::event::{DecodeLimits, Event, EventKind, MessageId};
use crate::introspection;
use crate::mailbox::{mailbox, MailError, MailReceiver, MailSender};
use crate::observe::{CallStart, CallWatch, Ended, Observers};
use crate::record::{Outcome, Peer, Recorder, Side};
use crate::report::OnError;
use crate::service::{CallContext, HandlerFuture, IntoService, Response, Service};
use crate::trace::{TraceContext, TraceParent};

type ChannelKey = (Bytes, MessageId);

/// The open calls, by client and channel. A client's routing id is kept
/// once, not in every call's key: an entry is the channel's id and its
/// mailbox's sender (48 bytes, where a key with the routing id made it
/// 80), and a client that leaves takes its own calls out without the
/// others' being looked at. A client's table stays while it is connected
/// (a sequential caller would otherwise make and free one per call).
#[derive(Default)]
struct Table {
    clients: HashMap<Bytes, HashMap<MessageId, MailSender<Inbound>>>,
    /// Calls in all the clients' tables.
    open: usize,
}

impl Table {
    fn get(&self, client: &Bytes, channel: &MessageId) -> Option<&MailSender<Inbound>> {
        self.clients.get(client)?.get(channel)
    }

    fn contains(&self, key: &ChannelKey) -> bool {
        self.get(&key.0, &key.1).is_some()
    }

    /// Calls open from `client`.
    fn open_from(&self, client: &Bytes) -> usize {
        self.clients.get(client).map_or(0, HashMap::len)
    }

    fn insert(&mut self, key: ChannelKey, tx: MailSender<Inbound>) {
        let calls = self.clients.entry(key.0).or_default();
        if calls.insert(key.1, tx).is_none() {
            self.open += 1;
        }
    }

    /// Removes a call's channel; returns its mailbox's sender, for the
    /// caller to drop after the table's lock.
    fn remove(&mut self, client: &Bytes, channel: &MessageId) -> Option<MailSender<Inbound>> {
        let calls = self.clients.get_mut(client)?;
        let tx = calls.remove(channel)?;
        self.open -= 1;
        // (a burst's room given back once the client is down to a few)
        if calls.capacity() > 64 && calls.len() < calls.capacity() / 8 {
            calls.shrink_to_fit();
        }
        Some(tx)
    }

    /// Removes a client that left, with its calls.
    fn remove_client(&mut self, client: &Bytes) {
        if let Some(calls) = self.clients.remove(client) {
            self.open -= calls.len();
        }
    }

    /// Every call's mailbox sender.
    fn senders(&self) -> impl Iterator<Item = &MailSender<Inbound>> {
        self.clients.values().flat_map(HashMap::values)
    }

    /// Every call's mailbox sender, the table left empty.
    fn take_all(&mut self) -> impl Iterator<Item = MailSender<Inbound>> {
        self.open = 0;
        std::mem::take(&mut self.clients)
            .into_values()
            .flat_map(HashMap::into_values)
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
    /// The router's connection events from the server's making until
    /// `run` takes them: a client that connects before `run` starts is
    /// still counted, and its channels still cancelled when it leaves.
    events: Mutex<Option<broadcast::Receiver<SocketEvent>>>,
    opts: ServerOptions,
    /// What watches its calls (none: nothing does).
    observers: Option<Arc<Observers>>,
    /// The labels of watched calls.
    method_names: observe::MethodNames,
    channels: Mutex<Table>,
    /// The open calls' deadlines, kept by `run` (which also routes their
    /// events: a call is served only while it runs).
    timers: Timers,
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

    /// Stops `run` and ends every call: silently, or (during a
    /// graceful shutdown) with `ERR ServerShutdown`.
    fn stop(&self) {
        self.cancel.cancel();
        let draining = self.draining.load(Ordering::SeqCst);
        // Under the table lock, after the cancel: a call a connection
        // registers concurrently is either drained here or refused there.
        for tx in self.channels().take_all() {
            if draining {
                // A full mailbox: that call ends silently instead.
                let _ = tx.try_send(Inbound::Shutdown, 0);
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
        let router = RouterSocket::with_options(SocketOptions {
            idle_timeout: opts.idle_timeout.or(opts.socket.idle_timeout),
            ..opts.socket.clone()
        });
        let observers = Observers::new(
            Side::Server,
            opts.recorder.clone(),
            false,
            opts.metrics,
            opts.on_error.clone(),
        );
        let method_names = observe::MethodNames::new(service.as_ref(), observers.is_some());
        let inner = Arc::new(Inner {
            service_name: Arc::from(service.name()),
            service,
            events: Mutex::new(Some(router.monitor())),
            router,
            limiter: opts
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n.max(1)))),
            observers,
            method_names,
            opts,
            channels: Mutex::new(Table::default()),
            timers: Timers::default(),
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

    /// Clients connected now (their handshake done).
    pub fn connections(&self) -> usize {
        self.inner.router.peer_count()
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
    /// Requests are served on the task of the connection that brings them
    /// (see `receive::Dispatch`) while this runs; this task watches the
    /// connections come and go, and keeps the open calls' timers.
    pub async fn run(&self) -> Result<(), Error> {
        let inner = &self.inner;
        // (a second `run` sees only what happens from now on)
        let taken = inner
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let mut events = taken.unwrap_or_else(|| inner.router.monitor());
        let _delivery = inner
            .router
            .deliver_to(Arc::new(Dispatch(Arc::downgrade(inner))));
        loop {
            tokio::select! {
                _ = inner.cancel.cancelled() => return Ok(()),
                // What arrived before this run started (or while the
                // server was being dropped).
                m = inner.router.recv() => {
                    if let Some(call) = handle_message(inner, m?) {
                        tokio::spawn(call);
                    }
                }
                // The open calls' heartbeats, loss and deadlines.
                () = inner.timers.due() => {
                    let woken = inner.timers.fire(inner.channels().senders());
                    woken.into_iter().for_each(std::task::Waker::wake);
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

    /// Stops serving at once, as [`Server::shutdown`] does, and returns
    /// once the endpoints the server bound are released: a new server (a
    /// restart in the same process) can bind them then.
    pub async fn close(&self) {
        self.shutdown();
        self.inner.router.close().await;
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
