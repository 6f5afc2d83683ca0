//! What the client tells the observers about a call: its span, its
//! stream's progress, its outcome.

use super::*;

/// A client span: recorded when the call ends, or as cancelled if the
/// call is dropped first.
pub(super) struct SpanGuard {
    pub(super) recorder: Recorder,
    pub(super) span: Option<Span>,
}

impl SpanGuard {
    pub(super) fn new(recorder: Recorder, span: Span) -> Self {
        SpanGuard {
            recorder,
            span: Some(span),
        }
    }

    pub(super) fn set_payload(&mut self, payload: Option<Box<crate::record::Payload>>) {
        if let Some(s) = &mut self.span {
            s.set_payload(payload);
        }
    }

    pub(super) fn set_traceback(&mut self, tb: &str) {
        if let Some(s) = &mut self.span {
            s.set_traceback(tb);
        }
    }

    pub(super) fn finish(mut self, outcome: Outcome) {
        if let Some(s) = self.span.take() {
            s.finish(&self.recorder, outcome);
        }
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if let Some(s) = self.span.take() {
            s.finish(&self.recorder, Outcome::Cancelled);
        }
    }
}

/// What is watched of a streamed call (traced, measured, or with an error
/// hook): its span, items, and how it ended.
pub(super) struct StreamWatch {
    pub(super) span: Option<SpanGuard>,
    pub(super) ids: Option<(String, String)>,
    pub(super) client: Client,
    pub(super) endpoint: Arc<str>,
    pub(super) method: String,
    pub(super) started: std::time::Instant,
    pub(super) items: u64,
    /// The arguments and the items so far, when payloads are recorded.
    pub(super) payload: Option<StreamPayload>,
}

/// A streamed call's payload being gathered (dropped once it grows past
/// [`crate::record::Payload::MAX_BYTES`]).
pub(super) struct StreamPayload {
    pub(super) args: Vec<Value>,
    pub(super) items: Option<Vec<Value>>,
    pub(super) bytes: usize,
}

impl StreamWatch {
    /// A stream item arrived.
    pub(super) fn item(&mut self, v: &Value) {
        self.items += 1;
        // (once past the cap, nothing more is measured or kept)
        if let Some(p) = self.payload.as_mut().filter(|p| p.items.is_some()) {
            p.bytes += crate::record::Payload::size_of(v);
            match &mut p.items {
                Some(items) if p.bytes <= crate::record::Payload::MAX_BYTES => {
                    items.push(v.clone())
                }
                _ => p.items = None,
            }
        }
    }

    /// The stream ended: normally (`None`), with a last value, or an error.
    pub(super) fn end(mut self: Box<Self>, last: Option<Result<&Value, &Error>>) {
        if let (Some(p), Some(span)) = (self.payload.take(), self.span.as_mut()) {
            let result = match last {
                None => p.items.map(Value::Array),
                Some(Ok(v)) => Some(v.clone()),
                Some(Err(_)) => None,
            };
            // (a stream too big to keep is recorded without its payload)
            if result.is_some() || matches!(last, Some(Err(_))) {
                span.set_payload(crate::record::Payload::capped(p.args, result));
            }
        }
        if let (Some(Err(Error::Remote(e))), Some(span)) = (last, self.span.as_mut()) {
            span.set_traceback(&e.traceback);
        }
        let r = match last {
            None => Ok((Value::Nil, Some(self.items))),
            Some(Ok(_)) => Ok((Value::Nil, None)),
            Some(Err(e)) => Err(e),
        };
        if let Err(Error::Remote(e)) = r {
            let ids = self.ids.take();
            self.client.report(&self.endpoint, &self.method, e, ids);
        }
        let outcome = match r {
            Ok(ok) => client_outcome(&Ok(ok)),
            Err(e) => error_outcome(e),
        };
        if self.client.inner.opts.metrics {
            crate::metrics::client_call(&self.method, &outcome, self.started.elapsed());
        }
        if let Some(s) = self.span.take() {
            s.finish(outcome);
        }
    }
}

/// How a call ended, for its record.
pub(super) fn client_outcome(r: &Result<(Value, Option<u64>), Error>) -> Outcome {
    match r {
        Ok((_, None)) => Outcome::Ok,
        Ok((_, Some(items))) => Outcome::Stream { items: *items },
        Err(e) => error_outcome(e),
    }
}

/// How a failed call ended, for its record.
pub(super) fn error_outcome(e: &Error) -> Outcome {
    match e {
        Error::Remote(e) => Outcome::Err {
            name: e.name.clone(),
            message: e.message.clone(),
        },
        Error::Timeout(_) => Outcome::Timeout,
        Error::LostRemote(_) | Error::Disconnected => Outcome::Lost,
        other => Outcome::Err {
            name: "ClientError".into(),
            message: other.to_string(),
        },
    }
}

/// Unregisters a call's channel when the call ends or is dropped.
pub(super) struct CallGuard {
    pub(super) conn: Arc<Conn>,
    pub(super) id: MessageId,
    /// The connection's drop count when the channel opened.
    pub(super) drops_at_open: u64,
}

impl CallGuard {
    /// Moves the channel to another connection (its request had not left).
    pub(super) fn move_to(&mut self, to: &Arc<Conn>) {
        if let Some(tx) = self.conn.channels().remove(&self.id) {
            to.channels().insert(self.id.clone(), tx);
        }
        self.conn = to.clone();
        self.drops_at_open = to.drops.load(Ordering::SeqCst);
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.conn.channels().remove(&self.id);
    }
}
