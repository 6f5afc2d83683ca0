//! The one error type of this crate.

use bytes::Bytes;

/// Everything that can go wrong in the ZMTP layer.
///
/// Errors that concern a single connection (bad greeting, oversized frame,
/// incompatible peer...) close that connection only; they reach the user
/// through [`SocketEvent`](crate::SocketEvent)s and `tracing` logs. Errors
/// returned from socket methods concern the call itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZmtpError {
    /// The underlying transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// The peer's greeting is not a ZMTP 3.x greeting.
    #[error("invalid greeting: {0}")]
    InvalidGreeting(&'static str),

    /// The peer speaks a ZMTP version older than 3.0.
    #[error("unsupported ZMTP version {major}.{minor} (need 3.x)")]
    UnsupportedVersion {
        /// Major version the peer announced.
        major: u8,
        /// Minor version the peer announced.
        minor: u8,
    },

    /// The two sides asked for different security mechanisms.
    #[error("security mechanism mismatch: we use {ours}, the peer uses {theirs}")]
    MechanismMismatch {
        /// Our mechanism name.
        ours: String,
        /// The peer's mechanism name.
        theirs: String,
    },

    /// The peer broke the protocol (malformed command, command in the wrong
    /// state, bad metadata...).
    #[error("protocol violation: {0}")]
    Protocol(String),

    /// A frame or message was larger than the configured maximum.
    #[error("message of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// Announced or accumulated size.
        size: u64,
        /// The configured limit.
        max: u64,
    },

    /// A message had more frames than the configured maximum.
    #[error("message has more than {max} frames")]
    TooManyFrames {
        /// The configured limit.
        max: usize,
    },

    /// The peer's socket type cannot talk to ours (for example PUSH to PUB).
    #[error("socket type {peer} cannot talk to {ours}")]
    IncompatibleSocketType {
        /// Our socket type.
        ours: String,
        /// What the peer announced.
        peer: String,
    },

    /// The peer sent an ERROR command.
    #[error("peer reported an error: {0}")]
    PeerError(String),

    /// The peer closed the connection in the middle of the security
    /// handshake, before accepting or refusing us. A libzmq CURVE server
    /// does this when it cannot open the client's HELLO: the client has
    /// the wrong server key.
    #[error("the peer closed the connection during the {mechanism} handshake")]
    ClosedDuringSecurityHandshake {
        /// The mechanism's name.
        mechanism: &'static str,
    },

    /// The security handshake did not complete in time.
    #[error("handshake timed out")]
    HandshakeTimeout,

    /// The peer closed the connection.
    #[error("connection closed by peer")]
    ConnectionClosed,

    /// An accepted connection sent nothing for the socket's idle timeout.
    #[error("nothing received for {0:?}: idle connection closed")]
    IdleTimeout(std::time::Duration),

    /// An endpoint string could not be understood.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it is invalid.
        reason: &'static str,
    },

    /// A ROUTER was asked to send to an identity that has no connection.
    #[error("no connected peer has identity {0:?}")]
    HostUnreachable(Bytes),

    /// A message with no frames, or a ROUTER message without an identity frame.
    #[error("message has no frames")]
    EmptyMessage,

    /// A non-blocking send found every eligible peer queue full (or no peer).
    #[error("send would block: the peer queue is full or there is no peer")]
    WouldBlock,

    /// The socket was closed.
    #[error("socket closed")]
    Closed,

    /// A CURVE box did not open: the wrong key, or the traffic was altered.
    #[error("CURVE: {0}")]
    Crypto(&'static str),

    /// The server refused the client's key (CURVE authentication).
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),

    /// A CURVE key or certificate could not be read.
    #[error("invalid key: {0}")]
    InvalidKey(String),

    /// Another connection already uses this identity on our ROUTER.
    #[error("identity {0:?} is already connected")]
    DuplicateIdentity(Bytes),
}

impl ZmtpError {
    pub(crate) fn protocol(msg: impl Into<String>) -> Self {
        ZmtpError::Protocol(msg.into())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ZmtpError> = std::result::Result<T, E>;
