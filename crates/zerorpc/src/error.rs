//! The errors of the RPC layer.

use std::time::Duration;

/// Why an event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not valid msgpack.
    #[error("invalid msgpack: {0}")]
    Msgpack(String),
    /// Valid msgpack, but not a ZeroRPC event.
    #[error("malformed event: {0}")]
    Malformed(&'static str),
    /// More values than allowed.
    #[error("event has more than {max_nodes} msgpack values")]
    TooComplex {
        /// The limit.
        max_nodes: usize,
    },
}

/// An error raised by the remote side: its type name, message and
/// traceback, as the peer sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// The error's type name (`NameError`, `DemoError`...).
    pub name: String,
    /// Its message.
    pub message: String,
    /// The remote traceback, possibly empty.
    pub traceback: String,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for RemoteError {}

/// Everything that can go wrong with a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The remote method raised an error.
    #[error("remote error {0}")]
    Remote(RemoteError),
    /// No reply arrived within the call timeout.
    #[error("timed out after {0:?} waiting for a reply")]
    Timeout(Duration),
    /// The deadline the call ran under (inherited from the handler making
    /// it, or set with [`crate::deadline::scope`]; a retried call's
    /// timeout) passed before its reply; the budget it had is given. A
    /// call's own timeout passing is [`Error::Timeout`].
    #[error("deadline exceeded: no reply within the {0:?} left")]
    DeadlineExceeded(Duration),
    /// The remote stopped heart-beating.
    #[error("lost remote after {0:?} without a heartbeat")]
    LostRemote(Duration),
    /// The connection carrying the call dropped before its reply (the
    /// server crashed or restarted): the call is lost.
    #[error("the connection to the server dropped during the call")]
    Disconnected,
    /// The server refused our connection's security handshake, or we
    /// refused the server: CURVE with a client key the server does not
    /// allow, the wrong server key, or CURVE on one side only (a missing
    /// key). Trying again with the same keys fails the same way, so a call
    /// whose connections all failed so fails at once instead of waiting
    /// for its timeout.
    #[error("authentication failed: {reason}")]
    Authentication {
        /// Why, as the server said it (its ERROR reason) or as we found it.
        reason: String,
    },
    /// The endpoint is not a ZeroRPC server: its socket cannot talk to a
    /// client's (for example a collector's records port, a PULL socket).
    /// Like [`Error::Authentication`], it fails a call at once.
    #[error("not a zerorpc server: {reason}")]
    IncompatibleSocketType {
        /// What the handshake found.
        reason: String,
    },
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A message could not be decoded.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Arguments or results did not (de)serialize.
    #[error("serialization error: {0}")]
    Serialization(String),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] zmtp::ZmtpError),
    /// The client or server was closed.
    #[error("closed")]
    Closed,
    /// A `zerorpc://` name could not be resolved (see [`crate::naming`]).
    #[error("naming: {0}")]
    Naming(String),
    /// Named arguments could not be placed (an unknown name, a gap
    /// without a default, or a service whose introspection does not tell
    /// argument names); no call was made.
    #[error("named arguments: {0}")]
    NamedArguments(String),
    /// A configuration or usage mistake, found before anything went on
    /// the wire: no endpoint given, a component started twice, an exporter
    /// that cannot be installed.
    #[error("configuration error: {0}")]
    Config(String),
    /// An external store (Redis) failed.
    #[error("store error: {0}")]
    Store(String),
}

impl Error {
    /// Whether the call was lost on its way (no heartbeat, dropped
    /// connection, or a hub reporting its worker lost): the server may or
    /// may not have run it. These are what an idempotent call is retried
    /// on; a remote error, which is the server's answer, never is.
    pub fn is_lost(&self) -> bool {
        match self {
            Error::LostRemote(_) | Error::Disconnected | Error::Timeout(_) => true,
            Error::Remote(r) => r.name == "LostRemote",
            Error::Transport(e) => !matches!(e, zmtp::ZmtpError::InvalidEndpoint { .. }),
            _ => false,
        }
    }
}
