//! The HTTP handlers: calls and streams, bodies read within their
//! limits, content negotiation, the index and OpenAPI document, and the
//! token check.

use crate::*;

pub(crate) async fn in_span<F: Future>(span: Option<TraceContext>, f: F) -> F::Output {
    match span {
        Some(s) => s.scope(f).await,
        None => f.await,
    }
}

/// The format the request asks for, else the default.
pub(crate) fn negotiate(headers: &HeaderMap, default: StreamFormat) -> StreamFormat {
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
pub(crate) fn parse_body(body: &[u8], limits: json::Limits) -> Result<json::BodyArgs, HttpError> {
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
pub(crate) async fn read_body(
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
pub(crate) fn body_kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// Reserves room for the request's body in
/// [`GatewayOptions::max_body_memory`], waiting at most `body_timeout`.
pub(crate) async fn reserve_body(
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
pub(crate) fn closing(e: HttpError) -> Response {
    let mut r = e.into_response();
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The caller's trace context, made the parent of the gateway's span.
pub(crate) fn gateway_span(headers: &HeaderMap, start_traces: bool) -> Option<TraceContext> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("traceparent")
        .and_then(|tp| TraceContext::parse(tp, header("tracestate")))
        .map(|remote| remote.child())
        .or_else(|| start_traces.then(TraceContext::new_root))
}

pub(crate) async fn call(
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

pub(crate) async fn handle(
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
pub(crate) fn item_frame(format: StreamFormat, v: &Value) -> Bytes {
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

pub(crate) fn error_frame(format: StreamFormat, e: &HttpError) -> Bytes {
    Bytes::from(if format == StreamFormat::Sse {
        format!("event: error\ndata: {}\n\n", e.to_json())
    } else {
        format!("{}\n", serde_json::json!({ "error": e.to_json() }))
    })
}

/// A streamed response: items are read from the service only as the body
/// is polled, that is as hyper can send them.
pub(crate) fn stream_response(
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

pub(crate) async fn index(State(g): State<Arc<Shared>>) -> Response {
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

pub(crate) async fn openapi_doc(State(g): State<Arc<Shared>>) -> Response {
    let doc = openapi::document(&g.info(), g.opts.token.is_some());
    json_response(StatusCode::OK, doc.to_string().into_bytes())
}

pub(crate) fn not_allowed(allow: &'static str) -> Response {
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

pub(crate) async fn post_only() -> Response {
    not_allowed("POST")
}

pub(crate) async fn get_only() -> Response {
    not_allowed("GET")
}

pub(crate) async fn not_found() -> Response {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such route: POST /METHOD calls a method, GET / lists them, GET /openapi.json describes them",
    )
    .into_response()
}

/// Equal, in a time that depends only on the expected token's length.
pub(crate) fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ e;
    }
    std::hint::black_box(diff) == 0
}

pub(crate) async fn auth(State(g): State<Arc<Shared>>, req: Request, next: Next) -> Response {
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
