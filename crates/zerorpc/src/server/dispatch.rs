//! Starting a call's handler: authorization, introspection, the trace
//! context and deadline it runs under.

use super::*;

/// Starts the handler; a traced call's handler runs with its span as the
/// current trace context, so the calls it makes are its children, and a
/// call with a deadline's under it, so they inherit what is left.
pub(super) fn dispatch(
    inner: &Arc<Inner>,
    req: Event,
    trace: Option<TraceContext>,
    user: Option<Arc<str>>,
    deadline: Option<std::time::Instant>,
) -> HandlerFuture {
    if let Some(ctx) = trace
        .as_ref()
        .filter(|_| tracing::span_enabled!(tracing::Level::INFO))
    {
        // A `tracing` span too, so subscribers see the call with its ids
        // (made only when one wants it).
        let span = tracing::info_span!(
            "zerorpc.server",
            rpc.system = "zerorpc",
            rpc.service = %inner.service_name,
            rpc.method = %req.name,
            trace_id = %crate::trace::HexId(&ctx.trace_id),
            span_id = %crate::trace::HexId(&ctx.span_id),
        );
        let fut = tracing::Instrument::instrument(start_handler(inner, req, user), span);
        return scoped(trace, deadline, Box::pin(fut));
    }
    scoped(trace, deadline, start_handler(inner, req, user))
}

/// `handler` under its trace context and deadline, in one allocation.
fn scoped(
    trace: Option<TraceContext>,
    deadline: Option<std::time::Instant>,
    handler: HandlerFuture,
) -> HandlerFuture {
    use crate::deadline::scoped as under;
    match (trace, deadline) {
        (None, None) => handler,
        (Some(ctx), None) => Box::pin(ctx.scoped(handler)),
        (None, Some(at)) => Box::pin(under(at, handler)),
        (Some(ctx), Some(at)) => Box::pin(under(at, ctx.scoped(handler))),
    }
}

pub(super) fn start_handler(
    inner: &Arc<Inner>,
    req: Event,
    user: Option<Arc<str>>,
) -> HandlerFuture {
    tracing::debug!(method = %req.name, id = %req.header.message_id, "call");
    if inner.draining.load(Ordering::SeqCst) {
        return async {
            Err(CallError::new(
                "ServerShutdown",
                "the server is shutting down",
            ))
        }
        .boxed();
    }
    let args = match req.args {
        Value::Array(a) => a,
        Value::Nil => Vec::new(),
        other => {
            let kind = crate::service::type_name_of(&other);
            return async move {
                Err(CallError::bad_args(format!(
                    "arguments must be a list, got {kind}"
                )))
            }
            .boxed();
        }
    };
    if let Some(rules) = &inner.opts.authorize {
        if !rules.allows(user.as_deref(), &req.name) {
            let who = user.as_deref().unwrap_or(crate::auth::ANONYMOUS).to_owned();
            tracing::info!(user = %who, method = %req.name, "call denied");
            let msg = format!("{who} may not call {}", req.name);
            return async move { Err(CallError::new("PermissionDenied", msg)) }.boxed();
        }
    }
    if let Some(r) = introspection::answer(inner.service.as_ref(), &req.name, &args) {
        return async move { r.map(Response::Value) }.boxed();
    }
    let ctx = CallContext {
        header: req.header,
        user_id: user.clone(),
    };
    match inner.service.call(&req.name, args, ctx) {
        // (the handler runs as its user: `auth::current_user()`)
        Some(fut) => match user {
            Some(u) => Box::pin(crate::auth::as_user(u, fut)),
            None => fut,
        },
        None => {
            // Like Python: NameError whose message is the method name.
            let name = req.name;
            async move {
                Err(CallError::new("NameError", name.clone())
                    .with_traceback(format!("NameError: {name}\n")))
            }
            .boxed()
        }
    }
}
