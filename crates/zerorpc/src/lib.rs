//! # zerorpc — ZeroRPC for Rust
//!
//! Wire-compatible with zerorpc-python 0.6.3 and zerorpc-node 0.9.8, on the
//! [`zmtp`] transport. This crate owns the RPC layers:
//!
//! * [`Event`]: the msgpack `[header, name, args]` envelope; message ids keep
//!   their msgpack type, unknown header keys are preserved (sans-IO);
//! * [`Channel`]: one call's state machine (heartbeats, lost remote,
//!   first-reply timeout, stream credit), driven by an explicit `now`
//!   (sans-IO);
//! * [`Server`] (ROUTER, requests dispatched per connection) and [`Client`] /
//!   [`BlockingClient`] (DEALER, a call driven by the future its caller
//!   awaits and a stream by a task of its own, channels pinned to one
//!   endpoint); a client connection's channels, and a server's, share one
//!   timer for their heartbeats and deadlines;
//! * [`Service`], [`DynamicService`] and the `#[zerorpc::service]` macro
//!   (re-exported from `zerorpc-macros`), which also generates a typed
//!   client;
//! * [`introspection`]: the six `_zerorpc_*` methods;
//! * [`demo`]: the built-in demo service;
//! * [`naming`]: `zerorpc://SERVICE` addresses (a YAML directory, a
//!   registry, DNS SRV with the `dns` feature);
//! * tracing and call records ([`TraceContext`], [`record`], [`collector`]) and
//!   the [`metrics`] facade; the hub (`hub`, with the `hub` feature);
//! * observation: a client's and a server's recorder, metrics and error
//!   hook watch a call through one private interface (`observe`), asked
//!   once per call side and told each item and the end; a call nothing
//!   watches pays nothing for it.
//!
//! One path per item: the RPC core's items are at the crate root (their
//! modules are private); the areas around it (`auth`, `naming`, `record`,
//! `collector`, `metrics`, `hub`, `deadline`, `introspection`, `describe`,
//! `demo`) are reached through their modules only. What the generated
//! code needs is in the hidden `macro_support`.
//!
//! ## Cargo features
//!
//! The core needs none. Opt-in, for what brings in a heavy dependency or is
//! a service of its own: `dns` (hickory-resolver: [`naming`] by DNS
//! SRV/TXT), `redis` (`collector::RedisStore`), `prometheus`
//! (`metrics::install_prometheus`), `hub` (`hub::Hub`, the load-balancing
//! broker); `full` turns on all four. Without them the dependency tree is
//! 78 packages instead of 160.
//!
//! ```no_run
//! # async fn run() -> Result<(), zerorpc::Error> {
//! use zerorpc::{demo::Demo, Client, Server, Value};
//! let server = Server::new(Demo);
//! let ep = server.bind("tcp://127.0.0.1:0").await?;
//! tokio::spawn(async move { server.run().await });
//! let client = Client::connect(&ep.to_string()).await?;
//! assert_eq!(client.call("add", vec![1.into(), 2.into()]).await?, Value::from(3));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

// Lets the generated code's `::zerorpc::` paths work inside this crate too.
extern crate self as zerorpc;

pub mod auth;
mod channel;
mod client;
pub mod collector;
pub mod deadline;
pub mod demo;
pub mod describe;
mod error;
mod event;
mod hex;
#[cfg(feature = "hub")]
pub mod hub;
pub mod introspection;
#[doc(hidden)]
pub mod macro_support;
mod mailbox;
pub mod metrics;
pub mod naming;
mod observe;
mod oneway;
pub mod record;
mod report;
mod server;
mod service;
mod trace;
mod valueser;

pub use channel::{
    Channel, ChannelConfig, ChannelError, CreditMode, MAX_SEND_CREDIT, WINDOW_MAX_KEY,
};
pub use client::{BlockingClient, Client, ClientOptions, Reply, RetryPolicy};
pub use error::{CallError, Error, EventError};
pub use event::{
    DecodeLimits, Event, EventKind, Header, MessageId, SharedEntries, PIECE_MIN, PROTOCOL_VERSION,
};
pub use futures;
pub use oneway::{OneWay, OneWayOptions, Publisher, Puller, Pusher, Subscriber};
pub use report::{ErrorHook, ErrorReport, OnError};
pub use rmpv::Value;
pub use server::{Server, ServerOptions};
pub use service::{
    arg, from_value, parse_args, to_value, ArgInfo, CallContext, DynamicService, HandlerFuture,
    IntoCallError, IntoService, MethodInfo, Response, Service,
};
pub use trace::{TraceContext, TraceParent};
pub use zerorpc_macros::service;
/// The transport crate (socket options, endpoints, raw sockets).
pub use zmtp;

/// The README's Rust blocks (the programs in `examples/`), run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
