//! # zerorpc — ZeroRPC for Rust
//!
//! Wire-compatible with zerorpc-python 0.6.3 and zerorpc-node 0.9.8, on the
//! [`zmtp`] transport. This crate owns the RPC layers:
//!
//! * [`event`]: the msgpack `[header, name, args]` envelope, message ids,
//!   `response_to`, preserved header keys;
//! * channels (heartbeats, credit, timeouts) as sans-IO state machines;
//! * the client, the server and the service trait.

#![warn(missing_docs)]

// Lets the generated code's `::zerorpc::` paths work inside this crate too.
extern crate self as zerorpc;

pub mod channel;
mod client;
pub mod demo;
mod error;
pub mod event;
pub mod introspection;
mod server;
pub mod service;

pub use channel::{Channel, ChannelConfig, ChannelError, CreditMode};
pub use client::{BlockingClient, Client, ClientOptions};
pub use error::{Error, EventError, RemoteError};
pub use event::{DecodeLimits, Event, Header, MessageId};
pub use futures;
pub use rmpv::Value;
pub use server::{Server, ServerOptions};
pub use service::{
    ArgInfo, CallContext, CallError, DynamicService, HandlerFuture, IntoCallError, IntoService,
    MethodInfo, Response, Service,
};
pub use zerorpc_macros::service;
