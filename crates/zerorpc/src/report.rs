//! Error reports (documented on [`ErrorHook`]).

use std::sync::Arc;

use crate::record::Side;

/// One remote error, and where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    /// Server: a handler failed; client: a call received an error.
    pub side: Side,
    /// The service (client side: the endpoint called).
    pub service: String,
    /// The method called.
    pub method: String,
    /// The error: name (`ValueError`, ...), message, traceback (may be
    /// empty).
    pub error: crate::CallError,
    /// The call's trace id (32 hex digits), when the call was traced.
    pub trace_id: Option<String>,
    /// The call's span id (16 hex digits), when the call was traced.
    pub span_id: Option<String>,
}

/// Receives error reports. Any `Fn(&ErrorReport) + Send + Sync` is one.
///
/// Error reporting: a hook that sees every remote error (with its
/// traceback and the call's trace id), to send on to an error tracker.
///
/// Set [`ServerOptions::on_error`](crate::ServerOptions) to hear of every
/// error a handler returns (or panics with), and
/// [`ClientOptions::on_error`](crate::ClientOptions) to hear of every
/// remote error a call receives. The hook runs on the call's path: it
/// should hand the report off (a channel, a tracker's own queue) rather
/// than do I/O. The `zerorpc-sentry` crate provides a hook for Sentry.
pub trait ErrorHook: Send + Sync + 'static {
    /// Called once per remote error, on the call's path: keep it quick.
    fn report(&self, report: &ErrorReport);
}

impl<F: Fn(&ErrorReport) + Send + Sync + 'static> ErrorHook for F {
    fn report(&self, report: &ErrorReport) {
        self(report)
    }
}

/// A hook as the options hold it: shared, cheap to clone.
#[derive(Clone)]
pub struct OnError(Arc<dyn ErrorHook>);

impl OnError {
    /// Wraps a hook.
    pub fn new(hook: impl ErrorHook) -> Self {
        OnError(Arc::new(hook))
    }

    /// Passes a report to the hook.
    pub fn report(&self, report: &ErrorReport) {
        self.0.report(report)
    }
}

impl std::fmt::Debug for OnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnError(..)")
    }
}
