//! Starting a call's handler: authorization, introspection, its
//! `tracing` span. (The trace context and deadline it runs under are set
//! by its call at every poll: `call::under`.)

use super::*;

/// Starts the handler, in a `tracing` span when a subscriber wants one.
pub(super) fn dispatch(
    inner: &Arc<Inner>,
    req: Event,
    trace: Option<&TraceParent>,
    user: Option<Arc<str>>,
) -> HandlerFuture {
    if let Some(ctx) = trace.filter(|_| tracing::span_enabled!(tracing::Level::INFO)) {
        // A `tracing` span too, so subscribers see the call with its ids
        // (made only when one wants it).
        let span = tracing::info_span!(
            "zerorpc.server",
            rpc.system = "zerorpc",
            rpc.service = %inner.service_name,
            rpc.method = %req.name,
            trace_id = %crate::hex::HexId(&ctx.trace_id),
            span_id = %crate::hex::HexId(&ctx.span_id),
        );
        return Box::pin(tracing::Instrument::instrument(
            start_handler(inner, req, user),
            span,
        ));
    }
    start_handler(inner, req, user)
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
