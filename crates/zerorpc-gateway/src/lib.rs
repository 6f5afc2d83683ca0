//! # zerorpc-gateway — HTTP/JSON in front of one ZeroRPC service
//!
//! This crate owns the HTTP face of a ZeroRPC service: an [`axum::Router`]
//! that turns `POST /METHOD` with a JSON body into a zerorpc call made with
//! a [`zerorpc::Client`], and the reply into JSON. It owns:
//!
//! * **arguments**: a JSON array is the positional arguments, an object the
//!   named ones (placed by the argument names `_zerorpc_inspect` gives,
//!   fetched at startup, cached, and fetched again once when a name or a
//!   method is not found), an empty body or `null` no arguments;
//! * **values**: JSON ↔ msgpack by the table in [`json`] (bytes that are
//!   not UTF-8 are `{"$base64": "..."}` both ways);
//! * **results and streams**: a value is the `200` body. A streamed result
//!   is, by the request's `Accept`, a JSON array (collected, at most
//!   [`GatewayOptions::max_body`] bytes), NDJSON (`application/x-ndjson`:
//!   one item per line, sent as it arrives; a failure mid-stream is a last
//!   line `{"error": {...}}`), or server-sent events (`text/event-stream`:
//!   `data: ITEM` per item, then `event: end` with `{"items": N}`, or
//!   `event: error` with `{"name", "message", "traceback"}`). Items are
//!   read from the service only as the HTTP body is sent, so zerorpc's
//!   stream credit holds a slow HTTP client's stream back. A method that
//!   does not stream, asked for NDJSON or SSE, gives one item. (Neither
//!   peer's introspection says which methods stream: the first reply does.)
//! * **errors**: `{"error": {"name", "message", "traceback"}}` with a
//!   status by the error's name (see [`default_status`]; extend it with
//!   [`GatewayOptions::map_error`]): `NameError` 404, `TypeError` 400,
//!   `PermissionDenied` 403, any other remote error 500; no reply within
//!   the timeout 504 (`TimeoutExpired`); the service lost or the
//!   connection dropped 502 (`LostRemote`, `Disconnected`). The gateway's
//!   own: malformed JSON 400 (`BadRequest`), body too large 413
//!   (`PayloadTooLarge`), body not sent in time 408 (`RequestTimeout`),
//!   too many bodies at once 503 (`Overloaded`), wrong HTTP method 405, no
//!   such route 404, missing or wrong token 401 with `WWW-Authenticate:
//!   Bearer`;
//! * **limits**: a body is read straight into msgpack values, and refused
//!   as soon as it holds more values than the service's
//!   [`zerorpc::DecodeLimits`] let it decode (413) or nests deeper than
//!   [`GatewayOptions::max_depth`] (400): what the service would drop
//!   unanswered is answered at once, and reading a body costs about its
//!   size. [`Gateway::serve`] closes connections that send a request head
//!   too slowly, stay idle too long between requests or stop reading
//!   their response, caps open connections, and bounds the bodies read
//!   at once (see [`GatewayOptions`]);
//! * **trace context**: a request's W3C `traceparent` (and `tracestate`)
//!   makes the call part of that trace: the gateway's span is a child of
//!   the caller's, the zerorpc call a child of the gateway's, and the
//!   response's `traceparent` names the gateway's span;
//! * **description**: `GET /openapi.json` (OpenAPI 3.0, one path per
//!   method, generated from introspection) and `GET /` (a JSON index);
//! * **access**: an optional bearer token on every route (compared in
//!   constant time).
//!
//! What it does not own: the zerorpc client (heartbeats, timeouts to the
//! service, endpoints; configure it with [`zerorpc::ClientOptions`]), TLS
//! (put it behind a proxy), or HTTP/2.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use zerorpc_gateway::{Gateway, GatewayOptions};
//!
//! let client = zerorpc::Client::connect("tcp://127.0.0.1:4242").await?;
//! let opts = GatewayOptions::default()
//!     .token("s3cret")
//!     .timeout(Duration::from_secs(10));
//! let gateway = Gateway::new(client, opts).await?;
//! // Serve it...
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! # let _ = gateway.router();
//! gateway.serve(listener).await?;
//! // ...or mount its router in an application of your own:
//! // let app = axum::Router::new().nest("/rpc", gateway.router());
//! # Ok(()) }
//! ```
//!
//! Then `curl -H 'Authorization: Bearer s3cret' -d '[2, 40]'
//! http://127.0.0.1:8080/add` answers `42`, and `-d '{"a": 2, "b": 40}'`
//! too.

#![warn(missing_docs)]

pub mod json;
mod openapi;
mod serve;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::{
    ACCEPT, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::stream::{BoxStream, StreamExt};
use zerorpc::{Client, DecodeLimits, Reply, TraceContext, Value};

use zerorpc::describe;
pub use zerorpc::describe::{ArgSpec, MethodSpec, ServiceInfo};

/// Default largest request body, and largest collected stream: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// Default deepest nesting of arrays and objects in a request body: 127
/// levels (the body's own array being one), as deep as serde_json reads
/// (it refuses more in any case); a zerorpc server (rmpv's decoder: 1024
/// frames, two a level) reads about 500.
pub const DEFAULT_MAX_DEPTH: usize = 127;

/// Values of an event that are not arguments (the event, its header's
/// entries, its name, the arguments' array), kept out of the arguments'
/// share of [`DecodeLimits::max_nodes`]: a header has a few entries
/// (`message_id`, `v`, `traceparent`, `tracestate`...), so 64 is plenty.
pub const EVENT_ENVELOPE_VALUES: usize = 64;

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
    fn body_limits(&self) -> json::Limits {
        json::Limits {
            max_values: self
                .decode_limits
                .max_nodes
                .saturating_sub(EVENT_ENVELOPE_VALUES),
            max_depth: self.max_depth,
        }
    }

    fn status_for(&self, name: &str) -> StatusCode {
        self.error_status
            .get(name)
            .copied()
            .unwrap_or_else(|| default_status(name))
    }
}

/// The default status of a remote error, by its name:
///
/// | name | status |
/// |---|---|
/// | `NameError` (no such method) | 404 |
/// | `TypeError` (wrong arguments) | 400 |
/// | `PermissionDenied` | 403 |
/// | `LostRemote`, `Disconnected` (as a hub reports them) | 502 |
/// | `TimeoutExpired` | 504 |
/// | anything else | 500 |
pub fn default_status(name: &str) -> StatusCode {
    match name {
        "NameError" => StatusCode::NOT_FOUND,
        "TypeError" => StatusCode::BAD_REQUEST,
        "PermissionDenied" => StatusCode::FORBIDDEN,
        "LostRemote" | "Disconnected" => StatusCode::BAD_GATEWAY,
        "TimeoutExpired" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What can stop a gateway from starting or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The service did not answer introspection (unreachable, timed out).
    #[error("cannot describe the service: {0}")]
    Describe(#[source] zerorpc::Error),
    /// Serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An error answered over HTTP: a status and `{"error": {"name",
/// "message", "traceback"}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {error}")]
pub struct HttpError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error: the remote one as the service sent it, or the
    /// gateway's own (empty traceback).
    pub error: zerorpc::CallError,
}

impl HttpError {
    /// An error of the gateway's own.
    pub fn new(status: StatusCode, name: &str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            error: zerorpc::CallError::new(name, message),
        }
    }

    /// The error object (`{"name", "message", "traceback"}`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.error.name,
            "message": self.error.message,
            "traceback": self.error.traceback,
        })
    }

    /// The status for a failed call.
    fn from_call(opts: &GatewayOptions, e: zerorpc::Error) -> Self {
        use zerorpc::Error as E;
        match e {
            E::Remote(r) => HttpError {
                status: opts.status_for(&r.name),
                error: r,
            },
            E::Timeout(_) => {
                HttpError::new(StatusCode::GATEWAY_TIMEOUT, "TimeoutExpired", e.to_string())
            }
            E::LostRemote(_) => {
                HttpError::new(StatusCode::BAD_GATEWAY, "LostRemote", e.to_string())
            }
            E::Disconnected => {
                HttpError::new(StatusCode::BAD_GATEWAY, "Disconnected", e.to_string())
            }
            other => HttpError::new(StatusCode::BAD_GATEWAY, "BadGateway", other.to_string()),
        }
    }

    fn timeout(t: Duration) -> Self {
        HttpError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "TimeoutExpired",
            format!("no reply from the service within {t:?}"),
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_json() });
        json_response(self.status, body.to_string().into_bytes())
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

struct Shared {
    client: Client,
    opts: GatewayOptions,
    info: RwLock<Arc<ServiceInfo>>,
    /// When introspection was last fetched (held while fetching).
    last_refresh: tokio::sync::Mutex<Instant>,
    /// KiB of request bodies being read and converted (see
    /// [`GatewayOptions::max_body_memory`]).
    body_memory: Arc<tokio::sync::Semaphore>,
}

/// The gateway: a zerorpc client, what introspection said of its service,
/// and the options. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("service", &self.shared.info().name)
            .finish()
    }
}

impl Gateway {
    /// A gateway to the service `client` calls: describes the service
    /// (introspection), so fails if the service does not answer within the
    /// timeout. A service whose introspection fails is still served
    /// (positional arguments only).
    pub async fn new(client: Client, opts: GatewayOptions) -> Result<Gateway, GatewayError> {
        let info = describe::describe(&client, opts.timeout)
            .await
            .map_err(GatewayError::Describe)?;
        tracing::info!(
            service = %info.name,
            methods = info.methods.len(),
            "zerorpc gateway ready"
        );
        Ok(Gateway {
            shared: Arc::new(Shared {
                client,
                info: RwLock::new(Arc::new(info)),
                last_refresh: tokio::sync::Mutex::new(Instant::now()),
                body_memory: Arc::new(tokio::sync::Semaphore::new(
                    body_kib(opts.max_body_memory).min(tokio::sync::Semaphore::MAX_PERMITS),
                )),
                opts,
            }),
        })
    }

    /// What introspection said of the service, last time.
    pub fn service(&self) -> Arc<ServiceInfo> {
        self.shared.info()
    }

    /// Fetches introspection again.
    pub async fn refresh(&self) -> Result<(), GatewayError> {
        let mut last = self.shared.last_refresh.lock().await;
        let info = describe::describe(&self.shared.client, self.shared.opts.timeout)
            .await
            .map_err(GatewayError::Describe)?;
        self.shared.set_info(info);
        *last = Instant::now();
        Ok(())
    }

    /// The OpenAPI document (what `GET /openapi.json` answers).
    pub fn openapi(&self) -> serde_json::Value {
        openapi::document(&self.shared.info(), self.shared.opts.token.is_some())
    }

    /// The routes: `POST /{method}`, `GET /openapi.json`, `GET /`. Bodies
    /// are bounded here (size, values, depth, `body_timeout`,
    /// `max_body_memory`); the connection limits (head, idle and write
    /// timeouts, `max_connections`) are [`Gateway::serve`]'s, so an
    /// application that mounts the router sets its own.
    pub fn router(&self) -> Router {
        let s = self.shared.clone();
        let routes = Router::new()
            .route("/", get(index).fallback(get_only))
            .route("/openapi.json", get(openapi_doc).fallback(get_only))
            .route("/{method}", post(call).fallback(post_only))
            .fallback(not_found);
        // (outermost: a request without the token is refused before its
        // body is read)
        let routes = if s.opts.token.is_some() {
            routes.layer(axum::middleware::from_fn_with_state(s.clone(), auth))
        } else {
            routes
        };
        routes.with_state(s)
    }

    /// Serves the routes on `listener` (HTTP/1.1, keep-alive, TCP_NODELAY),
    /// with the options' connection limits and timeouts, until an I/O
    /// error.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> Result<(), GatewayError> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves until `signal` completes, then lets open requests finish.
    pub async fn serve_with_shutdown<F>(
        self,
        listener: tokio::net::TcpListener,
        signal: F,
    ) -> Result<(), GatewayError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let o = &self.shared.opts;
        let limits = serve::ConnLimits {
            header_timeout: o.header_timeout,
            idle_timeout: o.idle_timeout,
            write_timeout: o.write_timeout,
            max_connections: o.max_connections,
        };
        serve::serve(self.router(), listener, limits, signal).await?;
        Ok(())
    }
}

impl From<Gateway> for Router {
    fn from(g: Gateway) -> Router {
        g.router()
    }
}

impl Shared {
    fn info(&self) -> Arc<ServiceInfo> {
        self.info
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_info(&self, info: ServiceInfo) {
        *self.info.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(info);
    }

    /// Fetches introspection again unless it was fetched less than the
    /// refresh interval ago (concurrent requests share one fetch).
    async fn refresh_if_due(&self) {
        let mut last = self.last_refresh.lock().await;
        if last.elapsed() < self.opts.refresh_interval {
            return;
        }
        match describe::describe(&self.client, self.opts.timeout).await {
            Ok(info) => {
                tracing::info!(service = %info.name, methods = info.methods.len(), "introspection refreshed");
                self.set_info(info);
            }
            Err(e) => tracing::warn!("cannot refresh introspection: {e}"),
        }
        *last = Instant::now();
    }

    /// Named arguments in their positions, by introspection (refreshed
    /// once if it does not know the method or a name).
    async fn place(
        &self,
        method: &str,
        named: std::collections::BTreeMap<String, Value>,
    ) -> Result<Vec<Value>, HttpError> {
        let mut refreshed = false;
        loop {
            let info = self.info();
            let r = describe::place(&info, method, &named).map_err(|e| {
                let status = match e {
                    describe::PlaceError::NoSuchMethod => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_REQUEST,
                };
                let name = match e {
                    describe::PlaceError::NoSuchMethod => "NameError",
                    _ => "TypeError",
                };
                let mut msg = e.message(method);
                if matches!(
                    e,
                    describe::PlaceError::Unlisted | describe::PlaceError::NoArgumentNames
                ) {
                    msg.push_str(" (here: a JSON array body)");
                }
                HttpError::new(status, name, msg)
            });
            match r {
                Err(_) if !refreshed => {
                    self.refresh_if_due().await;
                    refreshed = true;
                }
                r => return r,
            }
        }
    }

    /// The whole result as JSON text; a stream collected into an array of
    /// at most `max_body` bytes.
    async fn collect(&self, method: &str, args: Vec<Value>) -> Result<Vec<u8>, HttpError> {
        let reply = self
            .client
            .call_reply(method, args)
            .await
            .map_err(|e| HttpError::from_call(&self.opts, e))?;
        match reply {
            Reply::Value(v) => Ok(json::to_json_bytes(&v)),
            Reply::Stream(mut items) => {
                let mut out = vec![b'['];
                while let Some(item) = items.next().await {
                    let v = item.map_err(|e| HttpError::from_call(&self.opts, e))?;
                    if out.len() > 1 {
                        out.push(b',');
                    }
                    json::write_json(&mut out, &v);
                    if out.len() >= self.opts.max_body {
                        // (dropping the stream cancels the call)
                        return Err(HttpError::new(
                            StatusCode::BAD_GATEWAY,
                            "ResponseTooLarge",
                            format!(
                                "the streamed result of `{method}` exceeds {} bytes as a JSON array: ask for it with Accept: application/x-ndjson or text/event-stream",
                                self.opts.max_body
                            ),
                        ));
                    }
                }
                out.push(b']');
                Ok(out)
            }
        }
    }
}

async fn in_span<F: Future>(span: Option<TraceContext>, f: F) -> F::Output {
    match span {
        Some(s) => s.scope(f).await,
        None => f.await,
    }
}

/// The format the request asks for, else the default.
fn negotiate(headers: &HeaderMap, default: StreamFormat) -> StreamFormat {
    for range in headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let media = range.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/event-stream") {
            return StreamFormat::Sse;
        }
        if media.eq_ignore_ascii_case("application/x-ndjson")
            || media.eq_ignore_ascii_case("application/ndjson")
        {
            return StreamFormat::Ndjson;
        }
        if media.eq_ignore_ascii_case("application/json") {
            return StreamFormat::Json;
        }
    }
    default
}

/// The request body as arguments, refused with the right status if the
/// service would refuse it.
fn parse_body(body: &[u8], limits: json::Limits) -> Result<json::BodyArgs, HttpError> {
    json::args_from_slice(body, limits).map_err(|e| match e {
        json::BodyError::Malformed(m) => HttpError::new(StatusCode::BAD_REQUEST, "BadRequest", m),
        json::BodyError::TooManyValues(n) => HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the arguments hold more than {n} values, more than the service accepts in one call"),
        ),
        json::BodyError::TooDeep(n) => HttpError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("the body nests arrays and objects deeper than {n} levels"),
        ),
    })
}

/// Reads the request body: at most `max_body` bytes, within
/// `body_timeout`. Refusals close the connection (the rest of the body is
/// not read).
async fn read_body(
    opts: &GatewayOptions,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Response> {
    let too_large = || {
        closing(HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the request body exceeds {} bytes", opts.max_body),
        ))
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > opts.max_body as u64) {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + opts.body_timeout;
    let cap = declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(cap.min(opts.max_body));
    let mut chunks = body.into_data_stream();
    loop {
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Err(_) => {
                return Err(closing(HttpError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "RequestTimeout",
                    format!(
                        "the request body did not arrive within {:?}",
                        opts.body_timeout
                    ),
                )))
            }
            Ok(None) => return Ok(Bytes::from(out)),
            Ok(Some(Err(e))) => {
                return Err(closing(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("cannot read the request body: {e}"),
                )))
            }
            Ok(Some(Ok(chunk))) => {
                if out.len() + chunk.len() > opts.max_body {
                    return Err(too_large());
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

/// Bytes as KiB, rounded up.
fn body_kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// Reserves room for the request's body in
/// [`GatewayOptions::max_body_memory`], waiting at most `body_timeout`.
async fn reserve_body(
    g: &Shared,
    headers: &HeaderMap,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, Response> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > g.opts.max_body) {
        // (refused at once by `read_body`)
        return Ok(None);
    }
    let need = body_kib(declared.unwrap_or(g.opts.max_body))
        .min(body_kib(g.opts.max_body_memory))
        .min(tokio::sync::Semaphore::MAX_PERMITS);
    let Ok(need) = u32::try_from(need) else {
        return Ok(None);
    };
    if need == 0 {
        return Ok(None);
    }
    let room = g.body_memory.clone().acquire_many_owned(need);
    match tokio::time::timeout(g.opts.body_timeout, room).await {
        Ok(Ok(p)) => Ok(Some(p)),
        // (never closed)
        Ok(Err(_)) => Ok(None),
        Err(_) => {
            let mut r = closing(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Overloaded",
                "too many request bodies are being read at once: retry later",
            ));
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
            Err(r)
        }
    }
}

/// An error response that closes the connection.
fn closing(e: HttpError) -> Response {
    let mut r = e.into_response();
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The caller's trace context, made the parent of the gateway's span.
fn gateway_span(headers: &HeaderMap, start_traces: bool) -> Option<TraceContext> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("traceparent")
        .and_then(|tp| TraceContext::parse(tp, header("tracestate")))
        .map(|remote| remote.child())
        .or_else(|| start_traces.then(TraceContext::new_root))
}

async fn call(
    State(g): State<Arc<Shared>>,
    method: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let method = match method {
        Ok(Path(m)) => m,
        Err(e) => {
            return HttpError::new(StatusCode::BAD_REQUEST, "BadRequest", e.body_text())
                .into_response()
        }
    };
    let room = match reserve_body(&g, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let body = match read_body(&g.opts, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let span = gateway_span(&headers, g.opts.start_traces);
    let mut response = match handle(&g, &method, &headers, body, room, span.clone()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, status = %e.status, name = %e.error.name, "call failed");
            e.into_response()
        }
    };
    if let Some(span) = span {
        if let Ok(v) = HeaderValue::from_str(&span.traceparent()) {
            response.headers_mut().insert("traceparent", v);
        }
        if let Some(Ok(v)) = span.tracestate.as_deref().map(HeaderValue::from_str) {
            response.headers_mut().insert("tracestate", v);
        }
    }
    response
}

async fn handle(
    g: &Arc<Shared>,
    method: &str,
    headers: &HeaderMap,
    body: Bytes,
    room: Option<tokio::sync::OwnedSemaphorePermit>,
    span: Option<TraceContext>,
) -> Result<Response, HttpError> {
    let args = match parse_body(&body, g.opts.body_limits())? {
        json::BodyArgs::Positional(a) => a,
        json::BodyArgs::Named(named) => g.place(method, named).await?,
    };
    // (the body's text is no longer needed while the call runs, and its
    // arguments are built)
    drop(body);
    drop(room);
    let timeout = g.opts.timeout;
    let format = negotiate(headers, g.opts.stream_format);
    if format == StreamFormat::Json {
        let work = tokio::time::timeout(timeout, g.collect(method, args));
        let body = in_span(span, work)
            .await
            .map_err(|_| HttpError::timeout(timeout))??;
        return Ok(json_response(StatusCode::OK, body));
    }
    let reply = in_span(
        span,
        tokio::time::timeout(timeout, g.client.call_reply(method, args)),
    )
    .await
    .map_err(|_| HttpError::timeout(timeout))?
    .map_err(|e| HttpError::from_call(&g.opts, e))?;
    let items: BoxStream<'static, Result<Value, zerorpc::Error>> = match reply {
        Reply::Value(v) => futures::stream::once(async move { Ok(v) }).boxed(),
        Reply::Stream(s) => s.boxed(),
    };
    Ok(stream_response(g.clone(), format, items))
}

/// One item as a frame of `format`.
fn item_frame(format: StreamFormat, v: &Value) -> Bytes {
    let mut out = Vec::with_capacity(64);
    if format == StreamFormat::Sse {
        out.extend_from_slice(b"data: ");
        json::write_json(&mut out, v);
        out.extend_from_slice(b"\n\n");
    } else {
        json::write_json(&mut out, v);
        out.push(b'\n');
    }
    Bytes::from(out)
}

fn error_frame(format: StreamFormat, e: &HttpError) -> Bytes {
    Bytes::from(if format == StreamFormat::Sse {
        format!("event: error\ndata: {}\n\n", e.to_json())
    } else {
        format!("{}\n", serde_json::json!({ "error": e.to_json() }))
    })
}

/// A streamed response: items are read from the service only as the body
/// is polled, that is as hyper can send them.
fn stream_response(
    g: Arc<Shared>,
    format: StreamFormat,
    items: BoxStream<'static, Result<Value, zerorpc::Error>>,
) -> Response {
    let frames = futures::stream::unfold(Some((items, 0u64)), move |state| {
        let g = g.clone();
        async move {
            let (mut items, n) = state?;
            let frame = match items.next().await {
                Some(Ok(v)) => return Some((item_frame(format, &v), Some((items, n + 1)))),
                Some(Err(e)) => {
                    let e = HttpError::from_call(&g.opts, e);
                    tracing::debug!(name = %e.error.name, "stream failed after {n} items");
                    error_frame(format, &e)
                }
                None if format == StreamFormat::Sse => {
                    Bytes::from(format!("event: end\ndata: {{\"items\":{n}}}\n\n"))
                }
                None => return None,
            };
            Some((frame, None))
        }
    })
    .map(Ok::<_, Infallible>);
    let mut r = Response::new(Body::from_stream(frames));
    let headers = r.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if format == StreamFormat::Sse {
            "text/event-stream"
        } else {
            "application/x-ndjson"
        }),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // (proxies such as nginx would otherwise hold the items back)
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

async fn index(State(g): State<Arc<Shared>>) -> Response {
    let info = g.info();
    let methods: Vec<serde_json::Value> = info
        .methods
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.name,
                "args": m.args.as_ref().map(|a| a.iter().map(|a| a.name.as_str()).collect::<Vec<_>>()),
                "doc": m.doc,
            })
        })
        .collect();
    let body = serde_json::json!({"service": info.name, "methods": methods});
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

async fn openapi_doc(State(g): State<Arc<Shared>>) -> Response {
    let doc = openapi::document(&g.info(), g.opts.token.is_some());
    json_response(StatusCode::OK, doc.to_string().into_bytes())
}

fn not_allowed(allow: &'static str) -> Response {
    let mut r = HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("use {allow}"),
    )
    .into_response();
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

async fn post_only() -> Response {
    not_allowed("POST")
}

async fn get_only() -> Response {
    not_allowed("GET")
}

async fn not_found() -> Response {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such route: POST /METHOD calls a method, GET / lists them, GET /openapi.json describes them",
    )
    .into_response()
}

/// Equal, in a time that depends only on the expected token's length.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ e;
    }
    std::hint::black_box(diff) == 0
}

async fn auth(State(g): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Some(token) = &g.opts.token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, t) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| t.trim())
        });
    match given {
        Some(t) if same_token(t.as_bytes(), token.as_bytes()) => next.run(req).await,
        given => {
            let (message, challenge) = match given {
                None => ("a bearer token is required", "Bearer"),
                Some(_) => ("wrong bearer token", "Bearer error=\"invalid_token\""),
            };
            let mut r =
                HttpError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message).into_response();
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"s3cret", b"s3cret"));
        for bad in [&b""[..], b"s3cre", b"s3cret!", b"S3cret", b"s3cres"] {
            assert!(!same_token(bad, b"s3cret"), "{bad:?}");
        }
    }

    #[test]
    fn accept_chooses_the_format() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(ACCEPT, HeaderValue::from_str(v).unwrap());
            m
        };
        let d = StreamFormat::Json;
        assert_eq!(negotiate(&HeaderMap::new(), d), d);
        assert_eq!(negotiate(&h("*/*"), StreamFormat::Sse), StreamFormat::Sse);
        assert_eq!(negotiate(&h("text/event-stream"), d), StreamFormat::Sse);
        assert_eq!(
            negotiate(&h("application/x-ndjson; q=1, text/event-stream"), d),
            StreamFormat::Ndjson
        );
        assert_eq!(
            negotiate(&h("application/json"), StreamFormat::Ndjson),
            StreamFormat::Json
        );
    }

    /// Values in `v`, as the server's decoder counts them.
    fn nodes(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(nodes).sum(),
            Value::Map(m) => m.iter().map(|(k, v)| nodes(k) + nodes(v)).sum(),
            _ => 0,
        }
    }

    /// The event the gateway's client sends for `args`, with a trace
    /// context in its header, decoded as a server decodes it.
    fn server_decodes(args: Vec<Value>) -> Result<(), zerorpc::EventError> {
        let mut ev = zerorpc::Event::new("method", Value::Array(args));
        let tc = TraceContext::new_root();
        ev.header.set("traceparent", Value::from(tc.traceparent()));
        ev.header.set("tracestate", Value::from("vendor=value"));
        zerorpc::Event::decode(&ev.encode(), DecodeLimits::default()).map(|_| ())
    }

    #[test]
    fn bodies_are_counted_as_the_server_counts() {
        for body in [
            &br#"[1, "x", null, [true, 2.5], {"a": [1, {"b": 2}], "c": null}]"#[..],
            br#"[{"$base64": "AP8="}, {"$base64": "!"}, {"$base64": "AP8=", "x": 1}]"#,
            br#"[{"x": 1, "$base64": "AP8="}, {"$base64": 3}, [[[]]], {}]"#,
            br#"{"a": [1, 2, 3], "b": {"$base64": "AP8="}}"#,
        ] {
            let at = |max_values| {
                json::args_from_slice(
                    body,
                    json::Limits {
                        max_values,
                        max_depth: 10,
                    },
                )
            };
            let Ok(args) = at(1000) else { panic!() };
            let vals: Vec<Value> = match args {
                json::BodyArgs::Positional(a) => a,
                json::BodyArgs::Named(m) => m.into_values().collect(),
            };
            let n: usize = vals.iter().map(nodes).sum();
            assert!(at(n).is_ok(), "{}", String::from_utf8_lossy(body));
            assert_eq!(
                at(n - 1),
                Err(json::BodyError::TooManyValues(n - 1)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_gateway_sends_only_what_the_server_decodes() {
        let lim = GatewayOptions::default().body_limits();
        // As many values as a body may hold...
        let zeros = vec!["0"; lim.max_values - 1].join(",");
        let most = format!("[[{zeros}]]");
        let Ok(json::BodyArgs::Positional(args)) = json::args_from_slice(most.as_bytes(), lim)
        else {
            panic!("refused")
        };
        server_decodes(args).expect("the server refuses the most values the gateway sends");
        let over = format!("[[{zeros},0]]");
        assert_eq!(
            parse_body(over.as_bytes(), lim).err().map(|e| e.status),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        // ...and as deep.
        let deep = |d: usize| format!("{}\"x\"{}", "[".repeat(d), "]".repeat(d));
        let Ok(json::BodyArgs::Positional(args)) =
            json::args_from_slice(deep(lim.max_depth).as_bytes(), lim)
        else {
            panic!("refused")
        };
        server_decodes(args).expect("the server refuses the deepest body the gateway sends");
        for d in [lim.max_depth + 1, 10_000] {
            let e = parse_body(deep(d).as_bytes(), lim).expect_err("too deep");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(
                e.error.message.contains("deeper than"),
                "{}",
                e.error.message
            );
        }
    }

    #[test]
    fn bodies_parse_or_say_why() {
        use json::BodyArgs::{Named, Positional};
        let lim = GatewayOptions::default().body_limits();
        let parse = |b: &[u8]| parse_body(b, lim);
        assert!(matches!(parse(b""), Ok(Positional(a)) if a.is_empty()));
        assert!(matches!(parse(b" null "), Ok(Positional(a)) if a.is_empty()));
        assert!(matches!(parse(b"[1]"), Ok(Positional(a)) if a == [Value::from(1)]));
        assert!(matches!(parse(b"{\"a\": 1}"), Ok(Named(_))));
        for bad in [&b"[1,"[..], b"42", b"\"x\"", b"{]", b"[1] 2"] {
            let e = parse(bad).err().unwrap();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }
}
