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

/// What is watched of a call that is recorded, measured or reported to
/// an error hook: its span, its stream's items, and how it ended. Every
/// call (collected or streamed) tells it the same things: each item as it
/// arrives (a streamed call), then the end, once; a call dropped first is
/// recorded as cancelled (by its span).
pub(super) struct Watch {
    span: Option<SpanGuard>,
    /// Trace and span ids, for the error hook.
    ids: Option<(String, String)>,
    inner: Arc<Inner>,
    endpoint: Arc<str>,
    /// The method called (empty when the span holds it: see
    /// [`Watch::method`]).
    method: String,
    started: std::time::Instant,
    items: u64,
    /// The arguments and the items so far, when payloads are recorded.
    payload: Option<StreamPayload>,
}

/// A call's payload being gathered (the items are dropped once they grow
/// past [`crate::record::Payload::MAX_BYTES`]).
struct StreamPayload {
    args: Vec<Value>,
    items: Option<Vec<Value>>,
    bytes: usize,
}

/// When a call started: the wall clock for its record, the monotonic one
/// for its duration.
pub(super) type Started = (std::time::SystemTime, std::time::Instant);

impl Watch {
    /// The watch of a call to `method` on `endpoint` that started at `t0`
    /// (before its request left) with this trace context; `args` when its
    /// payload is recorded.
    pub(super) fn new(
        inner: &Arc<Inner>,
        trace: Option<TraceContext>,
        endpoint: Arc<str>,
        method: &str,
        args: Option<Vec<Value>>,
        t0: Started,
    ) -> Box<Self> {
        let opts = &inner.opts;
        let ids = match (&opts.on_error, &trace) {
            (Some(_), Some(ctx)) => Some((ctx.trace_id_hex(), ctx.span_id_hex())),
            _ => None,
        };
        let span = match (&opts.recorder, trace) {
            (Some(rec), Some(ctx)) => Some(SpanGuard::new(
                rec.clone(),
                Span::started(
                    ctx,
                    Side::Client,
                    endpoint.clone(),
                    method.to_owned(),
                    Peer::Endpoint(endpoint.clone()),
                    t0,
                ),
            )),
            _ => None,
        };
        Box::new(Watch {
            // (a recorded call's method is kept once, by its span)
            method: match span {
                Some(_) => String::new(),
                None => method.to_owned(),
            },
            span,
            ids,
            inner: inner.clone(),
            endpoint,
            started: t0.1,
            items: 0,
            payload: args.map(|args| StreamPayload {
                args,
                items: Some(Vec::new()),
                bytes: 0,
            }),
        })
    }

    /// The method called.
    fn method(&self) -> &str {
        match self.span.as_ref().and_then(|g| g.span.as_ref()) {
            Some(span) => span.method(),
            None => &self.method,
        }
    }

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

    /// The call ended (see [`Ended`]).
    pub(super) fn end(mut self: Box<Self>, ended: Ended<'_>) {
        if let (Some(p), Some(span)) = (self.payload.take(), self.span.as_mut()) {
            let result = match ended {
                Ended::Value(v) | Ended::Collected(v, _) => Some(v.clone()),
                Ended::StreamDone => p.items.map(Value::Array),
                Ended::Failed(_) => None,
            };
            // (a stream too big to keep is recorded without its payload)
            if result.is_some() || matches!(ended, Ended::Failed(_)) {
                span.set_payload(crate::record::Payload::capped(p.args, result));
            }
        }
        let outcome = match ended {
            Ended::Value(_) => Outcome::Ok,
            Ended::Collected(_, items) => Outcome::Stream { items },
            Ended::StreamDone => Outcome::Stream { items: self.items },
            Ended::Failed(e) => error_outcome(e),
        };
        if let Ended::Failed(Error::Remote(e)) = ended {
            if let Some(span) = self.span.as_mut() {
                span.set_traceback(&e.traceback);
            }
            let ids = self.ids.take();
            report(&self.inner, &self.endpoint, self.method(), e, ids);
        }
        if self.inner.opts.metrics {
            crate::metrics::client_call(self.method(), &outcome, self.started.elapsed());
        }
        if let Some(s) = self.span.take() {
            s.finish(outcome);
        }
    }
}

/// How a watched call ended.
#[derive(Clone, Copy)]
pub(super) enum Ended<'a> {
    /// With a single value (`OK`).
    Value(&'a Value),
    /// With a stream collected into these items (so many).
    Collected(&'a Value, u64),
    /// At the end of a stream whose items the watch was shown.
    StreamDone,
    /// With an error.
    Failed(&'a Error),
}

impl<'a> Ended<'a> {
    /// How a collected call ended.
    pub(super) fn of_call(r: &'a Result<(Value, Option<u64>), Error>) -> Self {
        match r {
            Ok((v, None)) => Ended::Value(v),
            Ok((v, Some(items))) => Ended::Collected(v, *items),
            Err(e) => Ended::Failed(e),
        }
    }
}

/// Tells the error hook (if any) of a remote error.
fn report(
    inner: &Inner,
    endpoint: &str,
    method: &str,
    e: &CallError,
    ids: Option<(String, String)>,
) {
    if let Some(hook) = &inner.opts.on_error {
        let (trace_id, span_id) = ids.unzip();
        hook.report(&ErrorReport {
            side: Side::Client,
            service: endpoint.to_owned(),
            method: method.to_owned(),
            error: e.clone(),
            trace_id,
            span_id,
        });
    }
}

/// How a failed call ended, for its record.
fn error_outcome(e: &Error) -> Outcome {
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
