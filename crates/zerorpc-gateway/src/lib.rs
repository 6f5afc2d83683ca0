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

mod error;
pub mod json;
mod openapi;
mod options;
mod routes;
mod serve;
#[cfg(test)]
mod tests;

use error::*;
pub use error::{default_status, GatewayError, HttpError};
pub use options::{GatewayOptions, StreamFormat};
use routes::*;

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

pub(crate) struct Shared {
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
    pub(crate) fn info(&self) -> Arc<ServiceInfo> {
        self.info
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_info(&self, info: ServiceInfo) {
        *self.info.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(info);
    }

    /// Fetches introspection again unless it was fetched less than the
    /// refresh interval ago (concurrent requests share one fetch).
    pub(crate) async fn refresh_if_due(&self) {
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
    pub(crate) async fn place(
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
    pub(crate) async fn collect(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Vec<u8>, HttpError> {
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
