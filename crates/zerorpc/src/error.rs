//! The errors of the RPC layer.

use std::time::Duration;

use rmpv::Value;

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

/// A remote error, the one type for both sides of a call: what a handler
/// returns (sent as `ERR [name, message, traceback]`), what a caller gets
/// back in [`Error::Remote`], what an [`crate::ErrorReport`] and the
/// gateway's HTTP errors carry. Name, message and traceback are kept as
/// the peer sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// Error type name, as Python would print it (`ValueError`, `DemoError`).
    pub name: String,
    /// Human-readable message.
    pub message: String,
    /// Traceback text (may be empty: then the `ERR` carries a nil
    /// traceback). Python clients show only the traceback when there is
    /// one, so end it with `Name: message` as Python's own do.
    pub traceback: String,
}

impl CallError {
    /// An error with a name and message.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        CallError {
            name: name.into(),
            message: message.into(),
            traceback: String::new(),
        }
    }

    /// Adds a traceback (Python clients show it in place of the message:
    /// end it with `Name: message`, as Python tracebacks do).
    pub fn with_traceback(mut self, traceback: impl Into<String>) -> Self {
        self.traceback = traceback.into();
        self
    }

    /// The arguments of its `ERR` event: `[name, message, traceback]`.
    /// A blank traceback goes out as nil, never as an empty string:
    /// zerorpc-python shows a remote error as its traceback whenever that is
    /// not nil (so an empty string shows the user an empty error), and as
    /// `Name: message` when it is nil.
    pub fn to_args(&self) -> Value {
        let traceback = if self.traceback.trim().is_empty() {
            Value::Nil
        } else {
            Value::from(self.traceback.as_str())
        };
        Value::Array(vec![
            Value::from(self.name.as_str()),
            Value::from(self.message.as_str()),
            traceback,
        ])
    }

    /// A wrong argument (count or type), named like Python's `TypeError`.
    pub fn bad_args(message: impl Into<String>) -> Self {
        CallError::new("TypeError", message)
    }

    /// Wraps any error: the name is the error type's last path segment.
    pub fn from_error<E: std::error::Error + ?Sized>(e: &E) -> Self {
        let full = std::any::type_name::<E>();
        let short = full.rsplit("::").next().unwrap_or(full);
        CallError::new(short, e.to_string())
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

/// A call made inside a handler failed (so `?` works on it): a remote
/// error passes on as it was (name, message, traceback), a passed deadline
/// as `DeadlineExceeded`; any other failure (lost remote, timeout...)
/// becomes `UpstreamError` with it as message.
impl From<crate::Error> for CallError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Remote(r) => r,
            // (the handler's own deadline passed: say so upstream)
            e @ crate::Error::DeadlineExceeded(_) => {
                CallError::new(crate::deadline::ERROR_NAME, e.to_string())
            }
            other => CallError::new("UpstreamError", other.to_string()),
        }
    }
}

/// Everything that can go wrong with a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The remote method raised an error.
    #[error("remote error {0}")]
    Remote(CallError),
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
