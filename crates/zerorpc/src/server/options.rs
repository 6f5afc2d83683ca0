//! [`ServerOptions`]: the server's settings.

use super::*;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Heartbeat interval and credit window (the first-reply timeout is a
    /// client setting and is ignored here).
    pub channel: ChannelConfig,
    /// Most handlers running at once; further calls wait (still
    /// heart-beating). `None`: unlimited.
    pub max_concurrency: Option<usize>,
    /// Transport settings.
    pub socket: SocketOptions,
    /// Limits on incoming events.
    pub decode_limits: DecodeLimits,
    /// Control events (heartbeats, credit) queued per channel before
    /// further ones are dropped.
    pub channel_queue: usize,
    /// Bytes of events queued per channel before further ones are
    /// dropped (an event always enters an empty queue). A client sends a
    /// call's channel only small control events (about 100 bytes each);
    /// this bounds what one that sends large ones faster than its call
    /// takes them can pin. Default 256 KiB.
    pub channel_queue_bytes: usize,
    /// Records every call (server side), and traces calls that arrive
    /// without a trace context in a new trace. Without it, a call that
    /// carries a context is still traced (its handler's calls are its
    /// children), unrecorded.
    pub recorder: Option<Recorder>,
    /// Emits call metrics through the `metrics` facade (see
    /// [`crate::metrics`]).
    pub metrics: bool,
    /// Most calls open at once from one client connection (running,
    /// streaming or waiting); further requests from it get
    /// `ERR ServerOverloaded` at once. Default 10,000 (an idle call costs
    /// a few KB: this bounds one client to tens of MB).
    pub max_calls_per_client: usize,
    /// Most calls open at once in all (from every client). Default 50,000.
    pub max_calls: usize,
    /// Most calls waiting to start (for a `max_concurrency` slot, or for
    /// their client to read the replies already sent it); further
    /// requests get `ERR ServerOverloaded`. Default 10,000.
    pub max_queued_calls: usize,
    /// Closes a client connection that has sent nothing for this long (no
    /// calls, no heartbeats), so idle clients cannot hold file descriptors
    /// forever; ZeroMQ clients reconnect by themselves when they next
    /// call. Default 5 minutes. `None`: never (also the default of
    /// [`SocketOptions::idle_timeout`], which this overrides when set).
    pub idle_timeout: Option<std::time::Duration>,
    /// Polls a new small call (8 KiB at most) once on its connection's
    /// reader task before giving it a task of its own, so a handler that
    /// answers at once is served without a task hand-off (the default;
    /// worth about 1.8× calls/s with 256 in flight, and 5% of a sequential
    /// call's instructions). A handler that blocks its first poll then
    /// delays the other requests of its connection: such handlers should
    /// use `tokio::task::spawn_blocking`, or turn this off.
    pub inline_first_poll: bool,
    /// Hears of every error a handler returns or panics with (its name,
    /// message, traceback and the call's trace id), to pass on to an
    /// error tracker. See [`ErrorHook`](crate::ErrorHook).
    pub on_error: Option<OnError>,
    /// Which users may call which methods (see [`crate::auth`]); a denied
    /// call gets `ERR PermissionDenied`. `None`: every caller may call
    /// everything.
    pub authorize: Option<Arc<Authorization>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            channel: ChannelConfig {
                first_reply_timeout: None,
                ..ChannelConfig::default()
            },
            max_concurrency: None,
            socket: SocketOptions::default(),
            decode_limits: DecodeLimits::default(),
            channel_queue: 64,
            channel_queue_bytes: 256 * 1024,
            inline_first_poll: true,
            recorder: None,
            on_error: None,
            authorize: None,
            metrics: false,
            max_calls_per_client: 10_000,
            max_calls: 50_000,
            max_queued_calls: 10_000,
            idle_timeout: Some(std::time::Duration::from_secs(300)),
        }
    }
}
