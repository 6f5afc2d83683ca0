//! What is watched of a server call (traced, recorded, measured, or with
//! an error hook): its span and what is known of its outcome, told to the
//! recorder, the metrics and the error hook from here.

use super::*;

/// What is watched of an observed call (recorded, measured, or with an
/// error hook): its span and what is known of its outcome so far.
pub(super) struct ServerTrace {
    /// Recorded at the end (with a recorder).
    pub(super) span: Option<Span>,
    /// The method called (empty when the span holds it: see
    /// [`ServerTrace::method`]).
    method: String,
    /// With metrics on: when the call started.
    pub(super) metrics: Option<Instant>,
    pub(super) outcome: Outcome,
    /// When the outcome was decided (the reply queued, the loss seen);
    /// the span ends there, not when the call's task is torn down.
    pub(super) ended: Option<std::time::Instant>,
    pub(super) items: u64,
}

/// The trace context of a new call: a child of the caller's span when
/// the request carries one (or of a legacy trace id), a new trace when this
/// server records; else none. With it, what is watched of the call, when
/// anything is (a recorder, metrics or an error hook): an unwatched call,
/// the default, carries its context to its handler and its replies and
/// costs nothing more.
pub(super) fn server_trace(
    inner: &Inner,
    event: &Event,
    identity: &Bytes,
) -> (Option<TraceContext>, Option<Box<ServerTrace>>) {
    let ctx = TraceContext::from_header(&event.header)
        .map(|remote| remote.child())
        .or_else(|| {
            inner
                .opts
                .recorder
                .as_ref()
                .map(|_| TraceContext::new_root())
        });
    if inner.opts.recorder.is_none() && !inner.opts.metrics && inner.opts.on_error.is_none() {
        return (ctx, None);
    }
    // Metrics labels and store keys name only methods this server has: any
    // other name (a client's typo, or a hostile client's endless random
    // names) is one label; its NameError outcome keeps the name.
    let method = if inner.service.has_method(&event.name)
        || introspection::METHODS.contains(&event.name.as_str())
    {
        event.name.clone()
    } else {
        crate::record::UNKNOWN_METHOD.to_owned()
    };
    // (a recorded call's method is kept once, by its span)
    let (span, method) = match (&ctx, &inner.opts.recorder) {
        (Some(ctx), Some(_)) => (
            Some(Span::start(
                ctx.clone(),
                Side::Server,
                inner.service_name.clone(),
                method,
                Peer::RoutingId(identity.clone()),
            )),
            String::new(),
        ),
        _ => (None, method),
    };
    let metrics = inner.opts.metrics.then(|| {
        crate::metrics::in_flight(&inner.service_name, 1.0);
        Instant::now()
    });
    let watched = Box::new(ServerTrace {
        span,
        method,
        metrics,
        outcome: Outcome::Cancelled,
        ended: None,
        items: 0,
    });
    (ctx, Some(watched))
}

impl ServerTrace {
    /// The method called (as recorded: see [`server_trace`]).
    pub(super) fn method(&self) -> &str {
        self.span.as_ref().map_or(&self.method, Span::method)
    }

    /// The call is over (its task ends): its metrics and its span.
    pub(super) fn end(self: Box<Self>, inner: &Inner) {
        let ended = self.ended.unwrap_or_else(std::time::Instant::now);
        if let Some(start) = &self.metrics {
            let (name, method) = (&inner.service_name, self.method());
            let took = ended.saturating_duration_since(start.into_std());
            crate::metrics::server_call(name, method, &self.outcome, took);
            crate::metrics::in_flight(name, -1.0);
            if self.items > 0 {
                crate::metrics::server_stream_items(method, self.items);
            }
        }
        let t = *self;
        if let (Some(span), Some(rec)) = (t.span, &inner.opts.recorder) {
            span.finish_at(rec, t.outcome, ended);
        }
    }
}

/// Tells the error hook (if any) of a handler's error.
pub(super) fn report_error(
    inner: &Inner,
    trace: Option<&ServerTrace>,
    ctx: Option<&TraceContext>,
    e: &CallError,
) {
    let (Some(hook), Some(t)) = (&inner.opts.on_error, trace) else {
        return;
    };
    hook.report(&ErrorReport {
        side: Side::Server,
        service: inner.service_name.to_string(),
        method: t.method().to_owned(),
        error: e.clone(),
        trace_id: ctx.map(TraceContext::trace_id_hex),
        span_id: ctx.map(TraceContext::span_id_hex),
    });
}

pub(super) fn err_outcome(e: &CallError) -> Outcome {
    Outcome::Err {
        name: e.name.clone(),
        message: e.message.clone(),
    }
}
