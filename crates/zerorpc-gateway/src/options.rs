//! [`GatewayOptions`] and [`StreamFormat`]: the gateway's settings.

use crate::*;

/// How a streamed result is sent when the request's `Accept` does not
/// choose (`application/json`, `application/x-ndjson`,
/// `text/event-stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamFormat {
    /// Collected into one JSON array (bounded by
    /// [`GatewayOptions::max_body`]).
    #[default]
    Json,
    /// Newline-delimited JSON, one item per line.
    Ndjson,
    /// Server-sent events.
    Sse,
}

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// A bearer token every request must carry (`Authorization: Bearer
    /// TOKEN`); none by default.
    pub token: Option<String>,
    /// How long a request waits for the service: for a JSON response, for
    /// the whole result (a collected stream included); for NDJSON and SSE,
    /// for the first reply (the stream then runs as long as the service
    /// keeps the channel alive). Also bounds each introspection call.
    /// Default 30 s.
    pub timeout: Duration,
    /// Largest request body, and largest stream collected into a JSON
    /// array (over it: 502 `ResponseTooLarge`; ask for NDJSON or SSE).
    /// Default [`DEFAULT_MAX_BODY`]. (A body's msgpack is about its size
    /// or less, plus at most 8 bytes a value: keep this well under the
    /// service's largest message, 64 MiB by default, which it drops.)
    pub max_body: usize,
    /// How a streamed result is sent when `Accept` does not say.
    pub stream_format: StreamFormat,
    /// HTTP statuses for remote error names, over [`default_status`].
    pub error_status: HashMap<String, StatusCode>,
    /// Start a new trace for requests that carry no `traceparent` (the
    /// response then names it). Off by default: such calls are untraced.
    pub start_traces: bool,
    /// Least time between two introspection refreshes triggered by
    /// requests (an unknown method or argument name). Default 1 s.
    pub refresh_interval: Duration,
    /// The limits the service applies to the events it receives (what it
    /// would drop unanswered); the gateway refuses a body whose arguments
    /// exceed them (`413 PayloadTooLarge`) before converting it. Default
    /// [`DecodeLimits::default`], what our server uses unless told
    /// otherwise: 1,000,000 values an event, of which the arguments may
    /// hold all but [`EVENT_ENVELOPE_VALUES`].
    pub decode_limits: DecodeLimits,
    /// Deepest nesting of arrays and objects in a body (over it: `400
    /// BadRequest`). Default [`DEFAULT_MAX_DEPTH`].
    pub max_depth: usize,
    /// How long a client may take to send a request's head (line and
    /// headers): from the accept on a new connection, from its first byte
    /// on a kept-alive one. Over it the connection is closed. Default
    /// 10 s: real clients send a head in one packet; this bounds what a
    /// slow sender (slowloris) holds.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's whole body, once
    /// its head is in. Over it: `408 RequestTimeout`, and the connection
    /// is closed. Default 60 s (a maximal 16 MiB body then needs about
    /// 2.3 Mbit/s).
    pub body_timeout: Duration,
    /// How long a kept-alive connection may sit between requests before it
    /// is closed. Default 60 s: under the 90 s that HTTP client pools
    /// (reqwest's, for one) keep idle connections, whose next request on a
    /// connection closed under it is retried on a new one.
    pub idle_timeout: Duration,
    /// How long a response may wait for the client to read any of it (a
    /// stream to a client that stopped reading, say) before the connection
    /// is closed (and the call with it). Default 60 s.
    pub write_timeout: Duration,
    /// Most connections open at once; the next ones wait in the listen
    /// backlog until one closes. Default 512, under the common soft limit
    /// of 1024 file descriptors a process, leaving room for the rest.
    pub max_connections: usize,
    /// Most bytes of request bodies read and converted at once, over all
    /// connections: a request reserves its `Content-Length` (or
    /// `max_body`, when chunked) before reading, and waits for room (then
    /// `503 Overloaded` if none comes within `body_timeout`). Converting a
    /// body costs up to a few times its size, so this bounds what
    /// concurrent large bodies cost together. Default 128 MiB (8 maximal
    /// bodies).
    pub max_body_memory: usize,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            token: None,
            timeout: Duration::from_secs(30),
            max_body: DEFAULT_MAX_BODY,
            stream_format: StreamFormat::Json,
            error_status: HashMap::new(),
            start_traces: false,
            refresh_interval: Duration::from_secs(1),
            decode_limits: DecodeLimits::default(),
            max_depth: DEFAULT_MAX_DEPTH,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_body_memory: 8 * DEFAULT_MAX_BODY,
        }
    }
}

impl GatewayOptions {
    /// Requires this bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Sets the largest body.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Sets the default stream format.
    pub fn stream_format(mut self, f: StreamFormat) -> Self {
        self.stream_format = f;
        self
    }

    /// Answers remote errors called `name` with `status`.
    pub fn map_error(mut self, name: impl Into<String>, status: StatusCode) -> Self {
        self.error_status.insert(name.into(), status);
        self
    }

    /// Starts traces for untraced requests.
    pub fn start_traces(mut self, on: bool) -> Self {
        self.start_traces = on;
        self
    }

    /// Sets the limits of the service's decoder.
    pub fn decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = limits;
        self
    }

    /// Sets the deepest nesting of a body.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Sets the time a request head may take.
    pub fn header_timeout(mut self, t: Duration) -> Self {
        self.header_timeout = t;
        self
    }

    /// Sets the time a request body may take.
    pub fn body_timeout(mut self, t: Duration) -> Self {
        self.body_timeout = t;
        self
    }

    /// Sets the time a kept-alive connection may stay idle.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = t;
        self
    }

    /// Sets the time a response may wait for the client to read.
    pub fn write_timeout(mut self, t: Duration) -> Self {
        self.write_timeout = t;
        self
    }

    /// Sets the most connections open at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets the most bytes of bodies read at once.
    pub fn max_body_memory(mut self, bytes: usize) -> Self {
        self.max_body_memory = bytes;
        self
    }

    /// What a body's arguments may hold.
    pub(crate) fn body_limits(&self) -> json::Limits {
        json::Limits {
            max_values: self
                .decode_limits
                .max_nodes
                .saturating_sub(EVENT_ENVELOPE_VALUES),
            max_depth: self.max_depth,
        }
    }

    pub(crate) fn status_for(&self, name: &str) -> StatusCode {
        self.error_status
            .get(name)
            .copied()
            .unwrap_or_else(|| default_status(name))
    }
}
