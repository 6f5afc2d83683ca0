//! The streams messages are stored in: one per topic prefix, created on
//! first use (with the options' `duplicate_window` and `max_age`) and
//! remembered; a stream that exists is used as it is, also one of another
//! name that already takes the prefix's subjects.

use std::collections::HashMap;

use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::{self, stream};
use tokio::sync::Mutex;

use super::subject::{stream_name, stream_subjects};
use super::NatsOptions;

/// Why a stream could not be found or made.
#[derive(Debug, Clone)]
pub(crate) enum StreamError {
    /// Worth trying again (no answer, connection away).
    Transient(String),
    /// The server refused (bad name, a conflicting stream).
    Refused(String),
}

impl StreamError {
    pub(crate) fn detail(&self) -> &str {
        match self {
            StreamError::Transient(s) | StreamError::Refused(s) => s,
        }
    }
}

/// The streams known to exist, by prefix.
pub(crate) struct Streams {
    js: jetstream::Context,
    max_age: std::time::Duration,
    duplicate_window: std::time::Duration,
    known: Mutex<HashMap<String, String>>,
}

impl Streams {
    pub(crate) fn new(js: jetstream::Context, opts: &NatsOptions) -> Streams {
        Streams {
            js,
            max_age: opts.max_age.unwrap_or_default(),
            duplicate_window: opts.duplicate_window,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The name of the stream for `prefix`, made when missing.
    pub(crate) async fn ensure(&self, prefix: &str) -> Result<String, StreamError> {
        // One creation at a time: a batch's messages all wait for the
        // first one's answer rather than each asking.
        let mut known = self.known.lock().await;
        if let Some(name) = known.get(prefix) {
            return Ok(name.clone());
        }
        let name = self.find_or_create(prefix).await?;
        known.insert(prefix.to_owned(), name.clone());
        Ok(name)
    }

    /// Forgets `prefix`'s stream (it was deleted, or does not take a
    /// subject after all): the next [`Streams::ensure`] asks again.
    pub(crate) async fn forget(&self, prefix: &str) {
        self.known.lock().await.remove(prefix);
    }

    async fn find_or_create(&self, prefix: &str) -> Result<String, StreamError> {
        let name = stream_name(prefix);
        let subjects = stream_subjects(prefix);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![subjects.clone()],
            duplicate_window: self.duplicate_window,
            max_age: self.max_age,
            ..Default::default()
        };
        match self.js.get_or_create_stream(config).await {
            Ok(_) => Ok(name),
            Err(e) => match e.kind() {
                CreateStreamErrorKind::JetStream(js_err) => {
                    // Another stream may hold these subjects already
                    // (created by an operator under another name).
                    match self.js.stream_by_subject(subjects.clone()).await {
                        Ok(other) => {
                            tracing::info!("nats: using stream {other} for {subjects} ({js_err})");
                            Ok(other)
                        }
                        Err(_) => Err(StreamError::Refused(format!(
                            "cannot create stream {name} on {subjects}: {js_err}"
                        ))),
                    }
                }
                CreateStreamErrorKind::EmptyStreamName
                | CreateStreamErrorKind::InvalidStreamName
                | CreateStreamErrorKind::DomainAndExternalSet => Err(StreamError::Refused(
                    format!("cannot create stream {name:?} on {subjects}: {e}"),
                )),
                CreateStreamErrorKind::JetStreamUnavailable => Err(StreamError::Transient(
                    format!("JetStream is not available on the server (stream {name}): {e}"),
                )),
                _ => Err(StreamError::Transient(format!(
                    "no answer about stream {name} ({e})"
                ))),
            },
        }
    }
}
