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
    at: std::time::Instant,
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
    let watch = observers.start(CallStart {
        ctx: ctx.as_ref(),
        service: &inner.service_name,
        method: inner
            .method_names
            .label(inner.service.as_ref(), &event.name),
        peer: Peer::RoutingId(identity.clone()),
        args: None,
        at,
    });
    (ctx, Some(watch))
}

/// The names a watched server labels its calls with, made once: a call's
/// label is then shared, not copied.
///
/// Metrics labels and store keys name only methods this server has: any
/// other name (a client's typo, or a hostile client's endless random
/// names) is one label, [`crate::record::UNKNOWN_METHOD`]; its NameError
/// outcome keeps the name.
pub(super) struct MethodNames {
    /// The service's methods when the server was made, and the
    /// introspection methods every server answers.
    known: std::collections::HashSet<Arc<str>, foldhash::fast::RandomState>,
    unknown: Arc<str>,
}

impl MethodNames {
    /// The labels of `service`'s calls (none are made for a server that
    /// watches nothing).
    pub(super) fn new(service: &dyn Service, watched: bool) -> Self {
        let mut known = std::collections::HashSet::default();
        if watched {
            let methods = service.methods().into_iter().map(|m| m.name);
            let introspection = introspection::METHODS.iter().map(|m| m.to_string());
            known = methods.chain(introspection).map(Arc::from).collect();
        }
        MethodNames {
            known,
            unknown: crate::record::UNKNOWN_METHOD.into(),
        }
    }

    /// The label of a call of `method`.
    fn label(&self, service: &dyn Service, method: &str) -> Arc<str> {
        match self.known.get(method) {
            Some(name) => name.clone(),
            // (a method the service gained since the server was made)
            None if service.has_method(method) => method.into(),
            None => self.unknown.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service whose method `later` is not among its methods when the
    /// server is made (one that gains methods at run time).
    struct Growing;

    impl Service for Growing {
        fn name(&self) -> &str {
            "growing"
        }
        fn methods(&self) -> Vec<crate::service::MethodInfo> {
            vec![crate::service::MethodInfo::new("echo", "", &["x"])]
        }
        fn call(&self, _: &str, _: Vec<Value>, _: CallContext) -> Option<HandlerFuture> {
            None
        }
        fn has_method(&self, method: &str) -> bool {
            method == "echo" || method == "later"
        }
    }

    #[test]
    fn calls_are_labelled_with_shared_names_their_own_or_unknown() {
        let names = MethodNames::new(&Growing, true);
        let label = |m: &str| names.label(&Growing, m);
        // known methods and introspection: one shared name each
        for m in ["echo", "_zerorpc_ping", "_zerorpc_inspect"] {
            assert_eq!(&*label(m), m);
            assert!(Arc::ptr_eq(&label(m), &label(m)), "{m} is shared");
        }
        // a method gained since, by its name; any other, one label
        assert_eq!(&*label("later"), "later");
        assert_eq!(&*label("no_such"), crate::record::UNKNOWN_METHOD);
        assert!(Arc::ptr_eq(&label("x"), &label("y")));
        // a server that watches nothing keeps no names
        assert!(MethodNames::new(&Growing, false).known.is_empty());
    }
}
