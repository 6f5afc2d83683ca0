//! Client settings: [`ClientOptions`], [`RetryPolicy`], and the trace
//! context a root call carries.

use super::*;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Heartbeat, first-reply timeout (default 30 s) and stream window.
    pub channel: ChannelConfig,
    /// Transport settings.
    pub socket: SocketOptions,
    /// Limits on incoming events.
    pub decode_limits: DecodeLimits,
    /// Retries of lost calls to the methods it names (none by default).
    pub retry: Option<RetryPolicy>,
    /// Records every call (client side; the new traces of root calls are
    /// sampled). Without it, calls still carry trace contexts, unrecorded.
    pub recorder: Option<Recorder>,
    /// A root call (one made outside any traced context) starts a new
    /// trace: a fresh W3C context, unsampled unless `recorder` is set, so
    /// that the servers, logs and error reports it reaches share one trace
    /// id (as dotCloud's tracing gave every call one). On by default; off,
    /// a root call carries no context unless this client records. Calls
    /// made inside a traced handler carry its trace on either way.
    pub trace_roots: bool,
    /// With a `recorder`, records each call's arguments and result too
    /// (up to [`Payload::MAX_BYTES`](crate::record::Payload::MAX_BYTES)
    /// each; a stream's items collected, while they fit), for `zerorpc
    /// contract record`. Off by
    /// default: payloads may hold what a trace store should not keep.
    pub record_payloads: bool,
    /// Emits call metrics through the `metrics` facade (see
    /// [`crate::metrics`]).
    pub metrics: bool,
    /// Hears of every remote error a call receives (name, message,
    /// traceback, trace id), to pass on to an error tracker. See
    /// [`ErrorHook`](crate::ErrorHook).
    pub on_error: Option<OnError>,
    /// Resolves `zerorpc://SERVICE` addresses (see [`crate::naming`]).
    /// `None`: [`crate::naming::Resolver::from_env`], when the
    /// environment describes one.
    pub resolver: Option<Arc<crate::naming::Resolver>>,
    /// A client of a `zerorpc://` name resolves it again this often (and
    /// at once when none of its connections is healthy, at most once a
    /// second): it connects to new endpoints and drops those no longer
    /// listed. `None`: every 5 s.
    pub re_resolve: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            channel: ChannelConfig::default(),
            socket: SocketOptions::default(),
            decode_limits: DecodeLimits::default(),
            retry: None,
            recorder: None,
            trace_roots: true,
            record_payloads: false,
            metrics: false,
            on_error: None,
            resolver: None,
            re_resolve: None,
        }
    }
}

/// The context a call made now carries: a child of the current span, else
/// a new root (sampled when the client records; none when neither records
/// nor `trace_roots`).
pub(super) fn call_context(opts: &ClientOptions) -> Option<TraceContext> {
    TraceContext::current().map(|c| c.child()).or_else(|| {
        if opts.recorder.is_some() {
            Some(TraceContext::new_root())
        } else if opts.trace_roots {
            let mut root = TraceContext::new_root();
            root.sampled = false;
            Some(root)
        } else {
            None
        }
    })
}

/// Which calls are retried, and how: only methods the user declares
/// idempotent, only when the call was lost ([`Error::is_lost`]: no
/// heartbeat, a dropped connection, a timeout, a hub's `LostRemote`),
/// never after the server answered with an error. Each retry picks a
/// connection afresh, so with several endpoints it goes to a healthy one.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    methods: Vec<String>,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First backoff delay (doubling, with jitter, up to `max_delay`).
    pub min_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Retries calls to `methods` (their names as called): 3 retries,
    /// backoff from 50 ms to 2 s.
    pub fn idempotent<S: Into<String>>(methods: impl IntoIterator<Item = S>) -> Self {
        RetryPolicy {
            methods: methods.into_iter().map(Into::into).collect(),
            max_retries: 3,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }

    /// Whether calls to `method` may be retried.
    pub fn covers(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }
}

impl ClientOptions {
    /// Sets the call timeout: how long a call waits for its reply (a
    /// stream: for its first item), like zerorpc-python's
    /// `Client(timeout=...)`. Default 30 s. Past it the call fails with
    /// [`Error::Timeout`] and is cancelled. Once a stream has started,
    /// heartbeats keep it alive however long it runs. One handle's calls
    /// can differ: [`Client::with_timeout`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), zerorpc::Error> {
    /// use std::time::Duration;
    /// use zerorpc::{Client, ClientOptions};
    /// let opts = ClientOptions::default().timeout(Duration::from_secs(5));
    /// let client = Client::connect_with(&["tcp://127.0.0.1:4242"], opts).await?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn timeout(mut self, t: Duration) -> Self {
        self.channel.first_reply_timeout = Some(t);
        self
    }

    /// Sets the heartbeat interval.
    pub fn heartbeat(mut self, t: Duration) -> Self {
        self.channel.heartbeat = t;
        self
    }
}
