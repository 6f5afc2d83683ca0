//! The crate's one public error: each layer has its own typed sub-error
//! (rustls-style), wrapped here.

/// Anything the bus can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A message or query that is not the JSON it should be.
    #[error(transparent)]
    Message(#[from] crate::message::MessageError),
    /// Signing or validation.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// The durable log.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A fedmsg replay query.
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
    /// A message that its topic's schema rejects, or a schema that does not load.
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    /// The configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The daemon rejected a message (nothing was stored): why.
    #[error("the bus rejected message {msg_id}: {reason}")]
    Rejected { msg_id: String, reason: String },
    /// No confirmation came for a message within the confirm timeout: it
    /// may or may not be stored (publishing it again is safe: the daemon
    /// drops a second copy of a `msg_id`).
    #[error("message {msg_id} was not confirmed: {reason}")]
    Unconfirmed { msg_id: String, reason: String },
    /// A broker would route the message to no queue (AMQP `mandatory`
    /// returned it) and no alternate exchange took it: nothing has it.
    #[error("message {msg_id} is routed to no queue on {transport} ({route})")]
    Unroutable {
        msg_id: String,
        transport: String,
        route: String,
    },
    /// A broker (AMQP, NATS) failed or refused an operation.
    #[error("{transport}: {detail}")]
    Broker { transport: String, detail: String },
    /// Talking to the daemon.
    #[error(transparent)]
    Rpc(#[from] zerorpc::Error),
    /// A socket could not be bound or connected, or a task could not run.
    #[error("{0}")]
    Transport(String),
    /// The publisher or subscription was closed.
    #[error("closed")]
    Closed,
    /// A recording's content, or a message that cannot be recorded.
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    /// Reading or writing a file (recordings).
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
