//! # zmtp — the ZeroMQ wire protocol (ZMTP 3.0/3.1) in pure Rust
//!
//! This crate owns the transport layer of zerorpc-rs:
//!
//! * a **sans-IO core** — [`GreetingDecoder`], [`FrameDecoder`],
//!   [`Handshake`] (greeting + pluggable security [`Mechanism`] + socket-type
//!   check) and the session [`Encoder`]/[`Decoder`] (multipart messages,
//!   PING/PONG, SUBSCRIBE/CANCEL, ERROR, size limits). These are plain state
//!   machines over byte buffers, tested without sockets;
//! * **tokio sockets** (the default feature `tokio`; without it the crate
//!   is the sans-IO core alone) built on it — [`DealerSocket`], [`RouterSocket`],
//!   [`PushSocket`], [`PullSocket`], [`PubSocket`], [`SubSocket`] — binding
//!   and connecting over `tcp://` and `ipc://`, reconnecting with backoff,
//!   with bounded queues (high-water marks) and [`SocketEvent`]s that tell the
//!   layer above when peers come and go.
//!
//! It interoperates with libzmq (4.x): the conformance tests run libzmq
//! itself as the oracle.
//!
//! ```no_run
//! # async fn demo() -> Result<(), zmtp::ZmtpError> {
//! use zmtp::{DealerSocket, Message, RouterSocket};
//! let router = RouterSocket::new();
//! let ep = router.bind("tcp://127.0.0.1:0").await?;
//! let dealer = DealerSocket::new();
//! dealer.connect(&ep.to_string()).await?;
//! dealer.send(Message::from_iter([&b""[..], b"hello"])).await?;
//! let msg = router.recv().await?; // [identity, "", "hello"]
//! router.send(msg).await?;        // echo it back, routed by identity
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
// The one exception, SIMD in `curve::salsa`, says why it is sound.
#![deny(unsafe_code)]

pub mod codec;
pub mod command;
pub mod curve;
mod endpoint;
mod error;
pub mod frame;
pub mod greeting;
pub mod handshake;
mod log;
pub mod mechanism;
mod message;
#[cfg(feature = "tokio")]
mod socket;
mod socket_type;
#[cfg(feature = "tokio")]
mod transport;

pub use codec::{Decoder, Encoder, Incoming, Limits, WriteBuffer};
pub use command::{Command, Metadata, RawCommand};
pub use curve::{AllowAny, AllowList, CurveAuthenticator, CurveKeyPair};
pub use endpoint::Endpoint;
pub use error::{Result, ZmtpError};
pub use frame::{Frame, FrameDecoder};
pub use greeting::{Greeting, GreetingDecoder};
pub use handshake::{Handshake, HandshakeFailure, PeerInfo, Session};
pub use log::RateLimitedLog;
pub use mechanism::{Mechanism, MechanismStatus, NullMechanism, Security};
pub use message::Message;
#[cfg(feature = "tokio")]
pub use socket::{
    DealerSocket, Deliver, Delivery, PeerId, PeerSender, PubSocket, PullSocket, PushSocket,
    RoundRobin, RouterSocket, SocketEvent, SocketOptions, SubSocket, TrySendError,
};
pub use socket_type::SocketType;
