//! Exports zerorpc call records to OpenTelemetry over OTLP.
//!
//! This crate owns one thing: [`OtlpSink`], a [`zerorpc::record::TraceSink`] that
//! turns each [`zerorpc::record::Record`] (one side of one call) into an
//! OpenTelemetry span and hands the spans to an OTLP span exporter (gRPC by
//! default, or any [`opentelemetry_sdk::trace::SpanExporter`] you give it).
//! Give it to a [`zerorpc::record::Recorder`]: calls never wait on the export, a
//! failed export drops its batch and the recorder counts it
//! ([`zerorpc::record::Recorder::dropped`]).
//!
//! It does not start spans, sample, or propagate context: zerorpc does that
//! itself (W3C `traceparent` in event headers, see [`zerorpc::TraceContext`]); this
//! crate only converts and ships what the recorder collected.
//!
//! # Usage
//!
//! ```no_run
//! use zerorpc::{Client, ClientOptions, TraceContext};
//! use zerorpc::record::Recorder;
//! use zerorpc_otlp::OtlpSink;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Within a tokio runtime: an OTLP/gRPC collector (Jaeger, Tempo, the
//! // OpenTelemetry Collector...) listening on 4317.
//! let sink = OtlpSink::builder()
//!     .endpoint("http://127.0.0.1:4317")
//!     .service_name("shop")
//!     .build()?;
//! let recorder = Recorder::new(sink, 65_536);
//! let client = Client::connect_with(
//!     &["tcp://127.0.0.1:4242"],
//!     ClientOptions { recorder: Some(recorder.clone()), ..Default::default() },
//! )
//! .await?;
//! // A traced call: its client side (and the server side, when the server
//! // records too) shows up as spans of one trace.
//! TraceContext::new_root()
//!     .scope(client.call("hello", vec!["world".into()]))
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Mapping
//!
//! | record | span |
//! | --- | --- |
//! | `trace_id`, `span_id`, `parent_id` (hex) | the span context and parent span id; a record with a malformed id is skipped (logged, counted by [`OtlpSink::skipped`]) |
//! | `side` | kind `Client` or `Server` (a server span's parent is remote) |
//! | `service`, `method` | name `"{service}/{method}"`; `rpc.method`; `rpc.service` on server spans (a client record's service is the endpoint it called) |
//! | `user` | `enduser.id` (the caller's authenticated user, server side) |
//! | `peer` | `zerorpc.peer`; on client spans also `server.address` and `server.port` parsed from a `tcp://host:port` endpoint (`server.address` alone for `ipc://path`) |
//! | `process`, `host` | resource attributes `process.executable.name`, `process.pid`, `host.name` (a batch holding records of several processes is exported as one resource per process) |
//! | `start_us`, `duration_us` | start and end time |
//! | `outcome` | `zerorpc.outcome` (the label), `zerorpc.stream.items` for streams, and the status below |
//!
//! Every span also has `rpc.system.name` = `zerorpc` and the older
//! `rpc.system` = `zerorpc`. Statuses: `OK` and `STREAM` are `Ok`; `ERR` is
//! an `Error` described as `"{name}: {message}"`, with `error.type` = the
//! error name and an `exception` event (`exception.type`,
//! `exception.message`); `LOST` and `TIMEOUT` are errors with `error.type`
//! `LOST` or `TIMEOUT`; `CANCELLED` leaves the status unset, with
//! `error.type` = `CANCELLED`. The resource's `service.name` is the one
//! configured, else `OTEL_SERVICE_NAME`, else `zerorpc`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use futures::future::BoxFuture;
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use opentelemetry_sdk::Resource;
use zerorpc::record::Side;
use zerorpc::record::{Outcome, Record, TraceSink};

/// The name of the RPC system, as `rpc.system.name` and `rpc.system`.
pub const RPC_SYSTEM: &str = "zerorpc";

/// The resource's `service.name` unless configured (or set by
/// `OTEL_SERVICE_NAME`).
pub const DEFAULT_SERVICE_NAME: &str = "zerorpc";

/// How long one export may take unless configured (the OTLP default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong building a sink or converting a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// The OTLP exporter could not be built (a malformed endpoint, an
    /// `https` endpoint: this crate enables no TLS...).
    #[error("cannot build the OTLP exporter: {0}")]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The gRPC exporter needs a tokio runtime to run its connection on.
    #[error("an OTLP sink must be built within a tokio runtime")]
    NoRuntime,
    /// A record that cannot be a span: `field` holds `value`.
    #[error("invalid {field} in a call record: {value:?}")]
    InvalidRecord {
        /// `trace_id`, `span_id`, `parent_id` or `start_us`.
        field: &'static str,
        /// What it held.
        value: String,
    },
    /// The exporter failed.
    #[error("OTLP export failed: {0}")]
    Export(#[from] OTelSdkError),
    /// The export took longer than the sink's timeout.
    #[error("OTLP export took longer than {0:?}")]
    Timeout(Duration),
}

/// A span exporter behind a lock (an exporter's `export` is never called
/// concurrently), made object-safe.
trait Export: Send + Sync {
    fn export<'a>(
        &'a self,
        resource: &'a Resource,
        batch: Vec<SpanData>,
    ) -> BoxFuture<'a, OTelSdkResult>;
}

struct Locked<E>(tokio::sync::Mutex<E>);

impl<E: SpanExporter + 'static> Export for Locked<E> {
    fn export<'a>(
        &'a self,
        resource: &'a Resource,
        batch: Vec<SpanData>,
    ) -> BoxFuture<'a, OTelSdkResult> {
        Box::pin(async move {
            let mut exporter = self.0.lock().await;
            exporter.set_resource(resource);
            exporter.export(batch).await
        })
    }
}

/// A [`TraceSink`] exporting records as OpenTelemetry spans. Cheap to
/// clone (clones share the exporter and the counter of skipped records).
///
/// Records are converted when the recorder hands over a batch; records
/// that cannot be spans are skipped with a warning. A batch whose export
/// fails or takes longer than the timeout is an error of
/// [`TraceSink::write`], which the recorder counts as dropped.
#[derive(Clone)]
pub struct OtlpSink {
    exporter: Arc<dyn Export>,
    /// The resource without the per-process attributes.
    base: Resource,
    scope: InstrumentationScope,
    timeout: Duration,
    skipped: Arc<AtomicU64>,
}

impl std::fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSink")
            .field("resource", &self.base)
            .field("timeout", &self.timeout)
            .field("skipped", &self.skipped())
            .finish()
    }
}

/// Configures an [`OtlpSink`]: see [`OtlpSink::builder`].
#[derive(Debug, Clone)]
pub struct OtlpSinkBuilder {
    endpoint: Option<String>,
    service_name: Option<String>,
    timeout: Duration,
}

impl OtlpSinkBuilder {
    /// The collector's OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`
    /// (else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, or `http://localhost:4317`).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The resource's `service.name` (else `OTEL_SERVICE_NAME`, else
    /// `zerorpc`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// The longest one batch's export may take, retries included (default
    /// 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A sink exporting over OTLP/gRPC (tonic). Call within a tokio
    /// runtime; it connects on the first export (and again after a
    /// failure), so a collector that is not up yet is no error here.
    pub fn build(self) -> Result<OtlpSink, OtlpError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(OtlpError::NoRuntime);
        }
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_timeout(self.timeout);
        if let Some(endpoint) = &self.endpoint {
            exporter = exporter.with_endpoint(endpoint.clone());
        }
        let exporter = exporter.build()?;
        Ok(self.build_with_exporter(exporter))
    }

    /// A sink handing spans to `exporter` (an OTLP exporter configured
    /// your way, an in-memory one for tests...). The endpoint set here is
    /// not used.
    pub fn build_with_exporter<E: SpanExporter + 'static>(self, exporter: E) -> OtlpSink {
        let service_name = self
            .service_name
            .or_else(|| {
                std::env::var("OTEL_SERVICE_NAME")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        OtlpSink {
            exporter: Arc::new(Locked(tokio::sync::Mutex::new(exporter))),
            base: Resource::builder().with_service_name(service_name).build(),
            scope: InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            timeout: self.timeout,
            skipped: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl OtlpSink {
    /// A builder: endpoint, service name, timeout.
    pub fn builder() -> OtlpSinkBuilder {
        OtlpSinkBuilder {
            endpoint: None,
            service_name: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A sink exporting over OTLP/gRPC to `endpoint` (e.g.
    /// `http://127.0.0.1:4317`), with the default service name and
    /// timeout. Call within a tokio runtime.
    pub fn new(endpoint: &str) -> Result<OtlpSink, OtlpError> {
        OtlpSink::builder().endpoint(endpoint).build()
    }

    /// A sink handing spans to `exporter`, with the default service name
    /// and timeout.
    pub fn with_exporter<E: SpanExporter + 'static>(exporter: E) -> OtlpSink {
        OtlpSink::builder().build_with_exporter(exporter)
    }

    /// Records skipped so far because they could not be spans (malformed
    /// ids or times).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The resource the spans of `process` on `host` are exported with.
    pub fn resource(&self, process: &str, host: &str) -> Resource {
        let mut attrs: Vec<KeyValue> = self
            .base
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        let (name, pid) = split_process(process);
        if !name.is_empty() {
            attrs.push(KeyValue::new("process.executable.name", name.to_owned()));
        }
        if let Some(pid) = pid {
            attrs.push(KeyValue::new("process.pid", pid));
        }
        if !host.is_empty() {
            attrs.push(KeyValue::new("host.name", host.to_owned()));
        }
        Resource::builder_empty().with_attributes(attrs).build()
    }

    /// The batch's spans, one group per (process, host); records that
    /// cannot be spans are skipped.
    fn group(&self, batch: Vec<Record>) -> Vec<(Resource, Vec<SpanData>)> {
        let mut groups: BTreeMap<(Arc<str>, Arc<str>), Vec<SpanData>> = BTreeMap::new();
        for record in batch {
            match span_data_in(&record, self.scope.clone()) {
                Ok(span) => groups
                    .entry((record.process, record.host))
                    .or_default()
                    .push(span),
                Err(e) => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        error = %e,
                        service = %record.service,
                        method = %record.method,
                        "call record skipped: it cannot be an OpenTelemetry span"
                    );
                }
            }
        }
        groups
            .into_iter()
            .map(|((process, host), spans)| (self.resource(&process, &host), spans))
            .collect()
    }
}

impl TraceSink for OtlpSink {
    fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
        let groups = self.group(batch);
        let exporter = self.exporter.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let all = async {
                for (resource, spans) in groups {
                    exporter.export(&resource, spans).await?;
                }
                Ok::<(), OtlpError>(())
            };
            let result = match tokio::time::timeout(timeout, all).await {
                Ok(r) => r,
                Err(_) => Err(OtlpError::Timeout(timeout)),
            };
            result.map_err(|e| e.to_string())
        })
    }
}

/// `name[pid]` → (name, pid); anything else is all name.
fn split_process(process: &str) -> (&str, Option<i64>) {
    if let Some(rest) = process.strip_suffix(']') {
        if let Some(open) = rest.rfind('[') {
            if let Ok(pid) = rest[open + 1..].parse::<i64>() {
                return (&rest[..open], Some(pid));
            }
        }
    }
    (process, None)
}

/// Exactly `2 * N` hex digits, not all zero (the W3C rule for ids).
fn parse_id<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], OtlpError> {
    let invalid = || OtlpError::InvalidRecord {
        field,
        value: s.to_owned(),
    };
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return Err(invalid());
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = nibble(b[2 * i]).ok_or_else(invalid)?;
        let lo = nibble(b[2 * i + 1]).ok_or_else(invalid)?;
        *o = (hi << 4) | lo;
    }
    if out.iter().all(|x| *x == 0) {
        return Err(invalid());
    }
    Ok(out)
}

/// The span a record describes (without the resource, which carries its
/// process and host). Fails on a malformed id, or times that an OTLP
/// timestamp (nanoseconds in a u64) cannot hold.
pub fn span_data(record: &Record) -> Result<SpanData, OtlpError> {
    span_data_in(
        record,
        InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    )
}

fn span_data_in(record: &Record, scope: InstrumentationScope) -> Result<SpanData, OtlpError> {
    let trace_id = TraceId::from_bytes(parse_id("trace_id", &record.trace_id)?);
    let span_id = SpanId::from_bytes(parse_id("span_id", &record.span_id)?);
    let parent_span_id = match &record.parent_id {
        Some(p) => SpanId::from_bytes(parse_id("parent_id", p)?),
        None => SpanId::INVALID,
    };
    let bad_time = || OtlpError::InvalidRecord {
        field: "start_us",
        value: format!("{} (+{} µs)", record.start_us, record.duration_us),
    };
    // Both ends as OTLP nanoseconds (u64), checked.
    let start_ns = record.start_us.checked_mul(1000).ok_or_else(bad_time)?;
    let end_ns = record
        .duration_us
        .checked_mul(1000)
        .and_then(|d| start_ns.checked_add(d))
        .ok_or_else(bad_time)?;
    let at = |ns: u64| UNIX_EPOCH.checked_add(Duration::from_nanos(ns));
    let start_time = at(start_ns).ok_or_else(bad_time)?;
    let end_time = at(end_ns).ok_or_else(bad_time)?;

    let (span_kind, parent_span_is_remote) = match record.side {
        Side::Client => (SpanKind::Client, false),
        Side::Server => (SpanKind::Server, record.parent_id.is_some()),
    };
    let mut attributes = vec![
        KeyValue::new("rpc.system.name", RPC_SYSTEM),
        KeyValue::new("rpc.system", RPC_SYSTEM),
        KeyValue::new("rpc.method", record.method.clone()),
    ];
    match record.side {
        Side::Server => attributes.push(KeyValue::new("rpc.service", record.service.clone())),
        Side::Client => attributes.extend(server_address(&record.peer)),
    }
    attributes.push(KeyValue::new("zerorpc.peer", record.peer.clone()));
    if let Some(user) = &record.user {
        attributes.push(KeyValue::new("enduser.id", user.clone()));
    }
    attributes.push(KeyValue::new("zerorpc.outcome", record.outcome.label()));
    let mut events = SpanEvents::default();
    let status = match &record.outcome {
        Outcome::Ok => Status::Ok,
        Outcome::Stream { items } => {
            attributes.push(KeyValue::new(
                "zerorpc.stream.items",
                i64::try_from(*items).unwrap_or(i64::MAX),
            ));
            Status::Ok
        }
        Outcome::Err { name, message } => {
            attributes.push(KeyValue::new("error.type", name.clone()));
            events.events.push(Event::new(
                "exception",
                end_time,
                vec![
                    KeyValue::new("exception.type", name.clone()),
                    KeyValue::new("exception.message", message.clone()),
                ],
                0,
            ));
            Status::error(format!("{name}: {message}"))
        }
        Outcome::Lost => {
            attributes.push(KeyValue::new("error.type", "LOST"));
            Status::error("LOST: the peer went silent or its connection dropped")
        }
        Outcome::Timeout => {
            attributes.push(KeyValue::new("error.type", "TIMEOUT"));
            Status::error("TIMEOUT: no reply within the timeout")
        }
        Outcome::Cancelled => {
            attributes.push(KeyValue::new("error.type", "CANCELLED"));
            Status::Unset
        }
    };
    Ok(SpanData {
        span_context: SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id,
        parent_span_is_remote,
        span_kind,
        name: Cow::Owned(format!("{}/{}", record.service, record.method)),
        start_time,
        end_time,
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope,
    })
}

/// `server.address` (and `server.port`) of a client's endpoint:
/// `tcp://host:port` (`[v6]:port` too) or `ipc://path`; nothing for other
/// endpoints.
fn server_address(endpoint: &str) -> Vec<KeyValue> {
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        return vec![KeyValue::new("server.address", path.to_owned())];
    }
    let Some(addr) = endpoint.strip_prefix("tcp://") else {
        return Vec::new();
    };
    let Some((host, port)) = addr.rsplit_once(':') else {
        return vec![KeyValue::new("server.address", addr.to_owned())];
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let mut kv = vec![KeyValue::new("server.address", host.to_owned())];
    if let Ok(port) = port.parse::<u16>() {
        kv.push(KeyValue::new("server.port", i64::from(port)));
    }
    kv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_exactly_so_many_hex_digits_and_not_zero() {
        assert_eq!(parse_id::<2>("f", "aB09").ok(), Some([0xab, 0x09]));
        for bad in ["", "ab0", "ab090", "0000", "zz00", "+a00", "éé", "ab 0"] {
            assert!(parse_id::<2>("f", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn processes_and_endpoints_are_split() {
        assert_eq!(split_process("svc[42]"), ("svc", Some(42)));
        assert_eq!(split_process("a[b][7]"), ("a[b]", Some(7)));
        assert_eq!(split_process("svc[x]"), ("svc[x]", None));
        assert_eq!(split_process("svc"), ("svc", None));
        let kv = |e| {
            server_address(e)
                .into_iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kv("tcp://10.0.0.1:4242"),
            [
                ("server.address".into(), "10.0.0.1".into()),
                ("server.port".into(), "4242".into())
            ]
        );
        assert_eq!(kv("tcp://[::1]:1")[0].1, "::1");
        assert_eq!(kv("ipc:///tmp/s")[0].1, "/tmp/s");
        assert!(kv("inproc://x").is_empty());
    }
}
