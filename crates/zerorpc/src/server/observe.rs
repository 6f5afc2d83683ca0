//! A new call's trace context, and what is watched of it (see
//! [`crate::observe`]) when the server has observers.

use super::*;

/// The trace context of a new call: a child of the caller's span when
/// the request carries one (or of a legacy trace id), a new trace when this
/// server records; else none. With it, the call's watch, when the server
/// has observers (a recorder, metrics or an error hook): an unwatched call,
/// the default, carries its context to its handler and its replies and
/// costs nothing more.
pub(super) fn observe(
    inner: &Inner,
    event: &Event,
    identity: &Bytes,
) -> (Option<TraceContext>, Option<Box<CallWatch>>) {
    let ctx = TraceContext::from_header(&event.header)
        .map(|remote| remote.child())
        .or_else(|| {
            inner
                .opts
                .recorder
                .as_ref()
                .map(|_| TraceContext::new_root())
        });
    let Some(observers) = &inner.observers else {
        return (ctx, None);
    };
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
    let watch = observers.start(CallStart {
        ctx: ctx.as_ref(),
        service: &inner.service_name,
        method,
        peer: Peer::RoutingId(identity.clone()),
        args: None,
        at: std::time::Instant::now(),
    });
    (ctx, Some(watch))
}
