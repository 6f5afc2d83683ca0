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
