//! One-way patterns, wire-compatible with zerorpc-python's `Pusher` /
//! `Puller` and `Publisher` / `Subscriber`.
//!
//! A one-way event is a bare ZeroRPC event (`[header, method, args]`) in a
//! one-frame message: no channel, no reply, no heartbeat. A [`Puller`] or
//! [`Subscriber`] serves a service definition like a [`Server`](crate::Server)
//! does (the same `#[zerorpc::service]` types) and drops the results;
//! handler errors, unknown methods and undecodable events are logged and
//! dropped. A [`Pusher`] (each event to one puller, round robin, waiting for
//! one) or a [`Publisher`] (each event to every subscriber, dropped for
//! those that are slow or absent, as PUB does) sends them; the service
//! macro generates a typed `…OneWay` sender over either.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use rmpv::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use zmtp::{Endpoint, Message, PubSocket, PullSocket, PushSocket, SocketOptions, SubSocket};

use crate::error::Error;
use crate::event::{DecodeLimits, Event};
use crate::service::{CallContext, IntoService, Service};

/// Something that sends one-way events: a [`Pusher`] or a [`Publisher`].
pub trait OneWay: Send + Sync {
    /// Sends `method(args)` without waiting for (or getting) a result.
    fn send_event(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl<T: OneWay> OneWay for Arc<T> {
    fn send_event(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        (**self).send_event(method, args)
    }
}

fn encode(method: &str, args: Vec<Value>) -> Message {
    let mut m = Message::new();
    Event::new(method, Value::Array(args)).append_to(&mut m);
    m
}

/// Sends one-way events over PUSH: each to one connected puller, round
/// robin; waits while no puller is connected or all are full (so nothing
/// is lost to a slow joiner).
#[derive(Debug, Default)]
pub struct Pusher {
    socket: PushSocket,
}

impl Pusher {
    /// A pusher with default socket options.
    pub fn new() -> Self {
        Pusher::default()
    }

    /// A pusher with socket options.
    pub fn with_options(socket: SocketOptions) -> Self {
        Pusher {
            socket: PushSocket::with_options(socket),
        }
    }

    /// Listens on an endpoint; returns it with the real port.
    pub async fn bind(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.socket.bind(endpoint).await?)
    }

    /// Connects to an endpoint (in the background, reconnecting).
    pub async fn connect(&self, endpoint: &str) -> Result<(), Error> {
        Ok(self.socket.connect(endpoint).await?)
    }

    /// Sends `method(args)` to one puller.
    pub async fn push(&self, method: &str, args: Vec<Value>) -> Result<(), Error> {
        Ok(self.socket.send(encode(method, args)).await?)
    }

    /// Connected pullers.
    pub fn peers(&self) -> usize {
        self.socket.peer_count()
    }

    /// Events queued for pullers and not yet written (for example to wait
    /// for them before exiting).
    pub fn queued(&self) -> usize {
        self.socket.queued_outbound()
    }
}

impl OneWay for Pusher {
    fn send_event(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.push(method, args)
    }
}

/// Sends one-way events over PUB: each to every subscriber. Never waits:
/// a subscriber whose queue is full, or that has not connected yet, misses
/// the event (counted in [`Publisher::dropped`]).
#[derive(Debug, Default)]
pub struct Publisher {
    socket: PubSocket,
}

impl Publisher {
    /// A publisher with default socket options.
    pub fn new() -> Self {
        Publisher::default()
    }

    /// A publisher with socket options.
    pub fn with_options(socket: SocketOptions) -> Self {
        Publisher {
            socket: PubSocket::with_options(socket),
        }
    }

    /// Listens on an endpoint; returns it with the real port.
    pub async fn bind(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.socket.bind(endpoint).await?)
    }

    /// Connects to an endpoint (in the background, reconnecting).
    pub async fn connect(&self, endpoint: &str) -> Result<(), Error> {
        Ok(self.socket.connect(endpoint).await?)
    }

    /// Sends `method(args)` to every subscriber with room.
    pub fn publish(&self, method: &str, args: Vec<Value>) -> Result<(), Error> {
        Ok(self.socket.send(encode(method, args))?)
    }

    /// Connected subscribers.
    pub fn subscribers(&self) -> usize {
        self.socket.peer_count()
    }

    /// Events subscribers missed because their queue was full.
    pub fn dropped(&self) -> u64 {
        self.socket.dropped()
    }
}

impl OneWay for Publisher {
    fn send_event(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(self.publish(method, args))
    }
}

/// Settings of a [`Puller`] or [`Subscriber`].
#[derive(Debug, Clone)]
pub struct OneWayOptions {
    /// Handlers running at once. 1 (the default) runs events one after
    /// the other, in arrival order, like zerorpc-python.
    pub concurrency: usize,
    /// Transport settings.
    pub socket: SocketOptions,
    /// Limits on incoming events.
    pub decode_limits: DecodeLimits,
}

impl Default for OneWayOptions {
    fn default() -> Self {
        OneWayOptions {
            concurrency: 1,
            socket: SocketOptions::default(),
            decode_limits: DecodeLimits::default(),
        }
    }
}

enum Inbox {
    Pull(PullSocket),
    Sub(SubSocket),
}

impl Inbox {
    async fn recv(&self) -> zmtp::Result<Message> {
        match self {
            Inbox::Pull(s) => s.recv().await,
            Inbox::Sub(s) => s.recv().await,
        }
    }

    async fn bind(&self, endpoint: &str) -> zmtp::Result<Endpoint> {
        match self {
            Inbox::Pull(s) => s.bind(endpoint).await,
            Inbox::Sub(s) => s.bind(endpoint).await,
        }
    }

    async fn connect(&self, endpoint: &str) -> zmtp::Result<()> {
        match self {
            Inbox::Pull(s) => s.connect(endpoint).await,
            Inbox::Sub(s) => s.connect(endpoint).await,
        }
    }
}

/// What a puller and a subscriber share: a receiving socket and the
/// service it feeds.
struct Receiver {
    inbox: Inbox,
    service: Arc<dyn Service>,
    opts: OneWayOptions,
    cancel: CancellationToken,
}

impl Receiver {
    async fn run(&self) -> Result<(), Error> {
        if let Inbox::Sub(s) = &self.inbox {
            // Everything, like Python's subscriber (the PUB side filters).
            s.subscribe(Bytes::new()).await?;
        }
        let limiter = Arc::new(Semaphore::new(self.opts.concurrency.max(1)));
        loop {
            let msg = tokio::select! {
                _ = self.cancel.cancelled() => return Ok(()),
                m = self.inbox.recv() => m?,
            };
            let Some(call) = self.start(&msg) else {
                continue;
            };
            let permit = tokio::select! {
                _ = self.cancel.cancelled() => return Ok(()),
                p = limiter.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return Ok(()),
                },
            };
            if self.opts.concurrency <= 1 {
                // In order: the next event waits for this one.
                tokio::select! {
                    _ = self.cancel.cancelled() => return Ok(()),
                    _ = call => {}
                }
                drop(permit);
            } else {
                let cancel = self.cancel.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = call => {}
                    }
                    drop(permit);
                });
            }
        }
    }

    /// Decodes one message and starts its handler; `None` (logged) for
    /// what cannot be served.
    fn start(&self, msg: &Message) -> Option<impl Future<Output = ()> + Send + 'static> {
        // One frame normally; a ROUTER-ish envelope is tolerated (payload last).
        let payload: &Bytes = msg.last()?;
        let event = match Event::decode(payload, self.opts.decode_limits) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "dropping undecodable one-way event");
                return None;
            }
        };
        let args = match event.args {
            Value::Array(a) => a,
            Value::Nil => Vec::new(),
            other => {
                tracing::warn!(method = %event.name, args = %other, "dropping one-way event: arguments are not a list");
                return None;
            }
        };
        let name = event.name;
        let ctx = CallContext {
            user_id: None,
            header: event.header,
        };
        let Some(fut) = self.service.call(&name, args, ctx) else {
            tracing::warn!(method = %name, "dropping one-way event: no such method (NameError)");
            return None;
        };
        Some(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(Ok(_)) => tracing::trace!(method = %name, "one-way event served"),
                Ok(Err(e)) => {
                    tracing::warn!(method = %name, error = %e.name, message = %e.message, "one-way handler failed")
                }
                Err(_) => tracing::error!(method = %name, "one-way handler panicked"),
            }
        })
    }
}

macro_rules! receiver_type {
    ($(#[$doc:meta])* $name:ident, $make:expr) => {
        $(#[$doc])*
        pub struct $name {
            inner: Receiver,
        }

        impl $name {
            /// Serves `service` with default options.
            pub fn new(service: impl IntoService) -> Self {
                Self::with_options(service, OneWayOptions::default())
            }

            /// Serves `service` with options.
            pub fn with_options(service: impl IntoService, opts: OneWayOptions) -> Self {
                #[allow(clippy::redundant_closure_call)]
                let inbox = ($make)(opts.socket.clone());
                $name {
                    inner: Receiver {
                        inbox,
                        service: Arc::new(service.into_service()),
                        opts,
                        cancel: CancellationToken::new(),
                    },
                }
            }

            /// Listens on an endpoint; returns it with the real port.
            pub async fn bind(&self, endpoint: &str) -> Result<Endpoint, Error> {
                Ok(self.inner.inbox.bind(endpoint).await?)
            }

            /// Connects to an endpoint (in the background, reconnecting).
            pub async fn connect(&self, endpoint: &str) -> Result<(), Error> {
                Ok(self.inner.inbox.connect(endpoint).await?)
            }

            /// Serves events until [`Self::shutdown`] or drop.
            pub async fn run(&self) -> Result<(), Error> {
                self.inner.run().await
            }

            /// Stops serving; running handlers are cancelled.
            pub fn shutdown(&self) {
                self.inner.cancel.cancel();
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.inner.cancel.cancel();
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("service", &self.inner.service.name())
                    .finish()
            }
        }
    };
}

receiver_type!(
    /// Serves one-way events from PUSH peers (a `Pusher`, Python's
    /// `zerorpc.Pusher`): each event calls a method of the service, whose
    /// result is dropped.
    Puller,
    |o| Inbox::Pull(PullSocket::with_options(o))
);

receiver_type!(
    /// Serves one-way events from PUB peers (a `Publisher`, Python's
    /// `zerorpc.Publisher`); `run` subscribes to everything, like Python.
    Subscriber,
    |o| Inbox::Sub(SubSocket::with_options(o))
);
