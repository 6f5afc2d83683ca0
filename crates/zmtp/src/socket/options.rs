//! A socket's public vocabulary: its options, its peers' ids, and the
//! events its monitor reports.

use std::time::Duration;

use bytes::Bytes;

use crate::codec::Limits;
use crate::endpoint::Endpoint;
use crate::handshake::HandshakeFailure;
use crate::mechanism::Security;
use crate::socket_type::SocketType;

/// Socket configuration. The defaults follow libzmq where it has one.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Messages queued per peer for sending before `send` waits (or, for
    /// PUB, drops). libzmq's `ZMQ_SNDHWM`.
    pub send_hwm: usize,
    /// Bytes queued per peer for sending before `send` waits (or, for PUB,
    /// drops); a message always enters an empty queue, whatever its size.
    /// Default 16 MiB: enough to keep a fast link busy, small enough that
    /// a peer that never reads pins little.
    pub send_hwm_bytes: usize,
    /// Bytes queued for sending across all of the socket's peers. Once
    /// they hold this much, a peer whose queue is not empty waits (peers
    /// that read, and so have empty queues, are still served). Default
    /// 256 MiB.
    pub send_budget_bytes: usize,
    /// Messages queued on receive before connections stop reading (TCP
    /// backpressure). libzmq's `ZMQ_RCVHWM`.
    pub recv_hwm: usize,
    /// Bytes queued on receive before connections stop reading (a message
    /// always enters an empty queue). Default 64 MiB, one maximal message.
    pub recv_hwm_bytes: usize,
    /// Closes an accepted connection that has sent nothing for this long
    /// (ZeroMQ peers reconnect by themselves when they have something to
    /// say), so idle peers cannot hold file descriptors forever. `None`:
    /// never. Connections we make are never closed for idling.
    pub idle_timeout: Option<Duration>,
    /// Incoming size limits; a peer exceeding them is disconnected.
    pub limits: Limits,
    /// Identity announced in READY (DEALER/ROUTER).
    pub identity: Option<Bytes>,
    /// First reconnect delay.
    pub reconnect_interval: Duration,
    /// Reconnect delay cap (the delay doubles after each failure).
    pub reconnect_interval_max: Duration,
    /// Time allowed for greeting and security handshake.
    pub handshake_timeout: Duration,
    /// Security mechanism.
    pub security: Security,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            send_hwm: 1000,
            send_hwm_bytes: 16 * 1024 * 1024,
            send_budget_bytes: 256 * 1024 * 1024,
            recv_hwm: 1000,
            recv_hwm_bytes: 64 * 1024 * 1024,
            idle_timeout: None,
            limits: Limits::default(),
            identity: None,
            reconnect_interval: Duration::from_millis(100),
            reconnect_interval_max: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(30),
            security: Security::Null,
        }
    }
}

/// Identifies one connection of a socket, unique for the socket's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// Something that happened to a socket's connections.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SocketEvent {
    /// A `bind` is accepting connections.
    Listening {
        /// The bound endpoint (with the real port).
        endpoint: Endpoint,
    },
    /// A connection completed its handshake and is usable.
    Connected {
        /// The connection.
        peer: PeerId,
        /// Remote address.
        remote: String,
        /// The ROUTER routing id (given by the peer or generated).
        routing_id: Option<Bytes>,
        /// The peer's socket type.
        socket_type: SocketType,
        /// Who the security mechanism says the peer is (CURVE: the user
        /// id the server's authenticator gave).
        user_id: Option<Bytes>,
    },
    /// A connection went away.
    Disconnected {
        /// The connection.
        peer: PeerId,
        /// Remote address.
        remote: String,
        /// The ROUTER routing id it had.
        routing_id: Option<Bytes>,
        /// Why.
        reason: String,
    },
    /// A connection failed before its handshake completed.
    HandshakeFailed {
        /// Remote address.
        remote: String,
        /// Why (the peer's ERROR reason, when it sent one).
        reason: String,
        /// What it means for trying again: a refusal by security
        /// ([`HandshakeFailure::Authentication`]: the peer refused our
        /// key, we could not open its boxes, the mechanisms differ) or a
        /// peer of the wrong socket type will fail the same way again.
        /// A connecting socket reports a peer that closes in the middle
        /// of its CURVE handshake twice in a row (libzmq's answer to the
        /// wrong server key) as `Authentication`, the first time as
        /// `Other`.
        kind: HandshakeFailure,
    },
    /// A `connect` attempt failed; it will be retried.
    ConnectFailed {
        /// The endpoint.
        endpoint: Endpoint,
        /// Why.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
}
