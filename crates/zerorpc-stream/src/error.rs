//! The crate's one public error type.

use std::path::PathBuf;

/// An error a component's code returns: any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong building, reading or running a topology.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A topology file (Flux YAML) cannot be read or is not valid Flux.
    #[error("topology {path}: {message}")]
    Flux { path: PathBuf, message: String },
    /// The topology is inconsistent: an unknown component or stream, a
    /// fields grouping on a field the stream does not declare, a cycle of
    /// nothing, a parallelism of 0.
    #[error("topology: {0}")]
    Topology(String),
    /// A component names a class the registry does not know.
    #[error(
        "component {component}: no Rust component is registered as {class:?} (registered: {known})"
    )]
    UnknownClass {
        component: String,
        class: String,
        known: String,
    },
    /// A component emitted on a stream it did not declare, or a tuple whose
    /// arity does not match the stream's fields.
    #[error("component {component}: {message}")]
    Emit { component: String, message: String },
    /// A multi-lang peer broke the protocol (malformed frame, unknown
    /// command, unknown tuple id, wrong type).
    #[error("multi-lang: {0}")]
    Protocol(String),
    /// A shell component's subprocess cannot be started, died, or was killed
    /// because it stopped making progress.
    #[error("component {component} (task {task}): {message}")]
    Subprocess {
        component: String,
        task: i32,
        message: String,
    },
    /// A component's own code failed (prepare/open, or a fatal error).
    #[error("component {component}: {source}")]
    Component {
        component: String,
        #[source]
        source: BoxError,
    },
    /// An I/O error outside a component (stats file, pid dir, stdin/stdout
    /// of a multi-lang program).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
