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
//!   (`PayloadTooLarge`), wrong HTTP method 405, no such route 404,
//!   missing or wrong token 401 with `WWW-Authenticate: Bearer`;
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

mod describe;
pub mod json;
mod openapi;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::header::{
    ACCEPT, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::stream::{BoxStream, StreamExt};
use zerorpc::{Client, Reply, TraceContext, Value};

pub use describe::{ArgSpec, MethodSpec, ServiceInfo};

/// Default largest request body, and largest collected stream: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

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
    /// Default [`DEFAULT_MAX_BODY`].
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
#[error("{status} {name}: {message}")]
pub struct HttpError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error's name (the remote error's, or the gateway's own).
    pub name: String,
    /// Its message.
    pub message: String,
    /// The remote traceback, possibly empty.
    pub traceback: String,
}

impl HttpError {
    /// An error of the gateway's own.
    pub fn new(status: StatusCode, name: &str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            name: name.to_owned(),
            message: message.into(),
            traceback: String::new(),
        }
    }

    /// The error object (`{"name", "message", "traceback"}`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "message": self.message,
            "traceback": self.traceback,
        })
    }

    /// The status for a failed call.
    fn from_call(opts: &GatewayOptions, e: zerorpc::Error) -> Self {
        use zerorpc::Error as E;
        match e {
            E::Remote(r) => HttpError {
                status: opts.status_for(&r.name),
                name: r.name,
                message: r.message,
                traceback: r.traceback,
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
                opts,
                info: RwLock::new(Arc::new(info)),
                last_refresh: tokio::sync::Mutex::new(Instant::now()),
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

    /// The routes: `POST /{method}`, `GET /openapi.json`, `GET /`.
    pub fn router(&self) -> Router {
        let s = self.shared.clone();
        let routes = Router::new()
            .route("/", get(index).fallback(get_only))
            .route("/openapi.json", get(openapi_doc).fallback(get_only))
            .route("/{method}", post(call).fallback(post_only))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(s.opts.max_body));
        // (outermost: a request without the token is refused before its
        // body is read)
        let routes = if s.opts.token.is_some() {
            routes.layer(axum::middleware::from_fn_with_state(s.clone(), auth))
        } else {
            routes
        };
        routes.with_state(s)
    }

    /// Serves the routes on `listener` (HTTP/1.1, keep-alive, TCP_NODELAY)
    /// until an I/O error.
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
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
        });
        axum::serve(listener, self.router())
            .with_graceful_shutdown(signal)
            .await?;
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
        named: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<Value>, HttpError> {
        let mut refreshed = false;
        loop {
            let info = self.info();
            let r = match info.method(method) {
                None if info.methods.is_empty() => Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "TypeError",
                    format!("the service does not list its methods, so `{method}` cannot take named arguments: pass them as a JSON array"),
                )),
                None => Err(HttpError::new(
                    StatusCode::NOT_FOUND,
                    "NameError",
                    format!("the service has no method `{method}`"),
                )),
                Some(MethodSpec { args: None, .. }) => Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "TypeError",
                    format!("the service does not tell the argument names of `{method}` (its introspection failed): pass the arguments as a JSON array"),
                )),
                Some(MethodSpec {
                    args: Some(spec), ..
                }) => describe::positional(spec, named.clone()).map_err(|m| {
                    let msg = match m {
                        describe::Mismatch::Unknown(a) => {
                            format!("{method}() got an unexpected keyword argument '{a}'")
                        }
                        describe::Mismatch::Missing(a) => format!(
                            "{method}() missing argument '{a}' (it has no default and a later argument is given)"
                        ),
                    };
                    HttpError::new(StatusCode::BAD_REQUEST, "TypeError", msg)
                }),
            };
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

/// The request body as arguments.
enum Args {
    Positional(Vec<Value>),
    Named(serde_json::Map<String, serde_json::Value>),
}

fn parse_body(body: &[u8]) -> Result<Args, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Args::Positional(Vec::new()));
    }
    let j: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("malformed JSON: {e}"),
        )
    })?;
    match j {
        serde_json::Value::Null => Ok(Args::Positional(Vec::new())),
        serde_json::Value::Array(a) => Ok(Args::Positional(
            a.into_iter().map(json::from_json).collect(),
        )),
        serde_json::Value::Object(o) => Ok(Args::Named(o)),
        _ => Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body must be a JSON array (positional arguments), an object (named arguments), null or empty",
        )),
    }
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
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let method = match method {
        Ok(Path(m)) => m,
        Err(e) => {
            return HttpError::new(StatusCode::BAD_REQUEST, "BadRequest", e.body_text())
                .into_response()
        }
    };
    let span = gateway_span(&headers, g.opts.start_traces);
    let mut response = match handle(&g, &method, &headers, body, span.clone()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, status = %e.status, name = %e.name, "call failed");
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
    body: Result<Bytes, BytesRejection>,
    span: Option<TraceContext>,
) -> Result<Response, HttpError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("the request body exceeds {} bytes", g.opts.max_body),
            )
        } else {
            HttpError::new(e.status(), "BadRequest", e.body_text())
        }
    })?;
    let args = match parse_body(&body)? {
        Args::Positional(a) => a,
        Args::Named(named) => g.place(method, named).await?,
    };
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
                    tracing::debug!(name = %e.name, "stream failed after {n} items");
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

    #[test]
    fn bodies_parse_or_say_why() {
        assert!(matches!(parse_body(b""), Ok(Args::Positional(a)) if a.is_empty()));
        assert!(matches!(parse_body(b" null "), Ok(Args::Positional(a)) if a.is_empty()));
        assert!(matches!(parse_body(b"[1]"), Ok(Args::Positional(a)) if a == [Value::from(1)]));
        assert!(matches!(parse_body(b"{\"a\": 1}"), Ok(Args::Named(_))));
        for bad in [&b"[1,"[..], b"42", b"\"x\"", b"{]"] {
            let e = parse_body(bad).err().unwrap();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }
}
