//! Metrics through the [`metrics`] facade: call counts by method and
//! outcome, duration histograms, calls in flight, heartbeat losses, stream
//! items and connections. Servers and clients emit them when their
//! `metrics` option is on; an exporter installed in the process collects
//! them (`install_prometheus`, the `prometheus` feature, serves the
//! Prometheus text format over HTTP). Without an exporter the facade discards them.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `zerorpc_server_calls_total` | counter | service, method, outcome |
//! | `zerorpc_server_call_duration_seconds` | histogram | service, method |
//! | `zerorpc_server_in_flight` | gauge | service |
//! | `zerorpc_client_calls_total` | counter | method, outcome |
//! | `zerorpc_client_call_duration_seconds` | histogram | method |
//! | `zerorpc_heartbeat_losses_total` | counter | side |
//! | `zerorpc_stream_items_total` | counter | side, method |
//! | `zerorpc_connections` | gauge | side |
//! | `zerorpc_server_overloaded_total` | counter | service |
//!
//! Method labels are bounded: a server labels calls to methods it does not
//! have `<unknown>`, and past [`MAX_METHOD_LABELS`] distinct methods per
//! side in a process (a gateway whose HTTP clients name any method, say)
//! new ones are labelled `<other>`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::record::{Outcome, Side};

/// Duration buckets (seconds) of the histograms.
#[cfg(feature = "prometheus")]
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs a Prometheus exporter for this process: the metrics of every
/// server and client with `metrics` on are served at
/// `http://ADDR/metrics` (any path answers). Call once, inside a tokio
/// runtime. (The `prometheus` feature.)
#[cfg(feature = "prometheus")]
pub fn install_prometheus(addr: std::net::SocketAddr) -> Result<(), crate::Error> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(BUCKETS)
        .and_then(|b| b.install())
        .map_err(|e| crate::Error::Config(format!("cannot install the Prometheus exporter: {e}")))
}

/// Distinct method labels one side (server, client) uses in a process;
/// further methods are labelled `<other>`. Far above the methods real
/// services have, far below what makes an exporter's memory a concern.
pub const MAX_METHOD_LABELS: usize = 1000;

/// `method`, or `<other>` once this side has [`MAX_METHOD_LABELS`] others.
fn method_label(side: &'static str, method: &str) -> String {
    static SEEN: OnceLock<Mutex<[HashSet<String>; 2]>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let set = &mut seen[usize::from(side == "client")];
    if set.contains(method) {
        return method.to_owned();
    }
    if set.len() < MAX_METHOD_LABELS {
        set.insert(method.to_owned());
        return method.to_owned();
    }
    crate::record::OTHER.to_owned()
}

/// A call starts on this side (a server counts it in flight).
pub(crate) fn call_started(side: Side, service: &Arc<str>) {
    if side == Side::Server {
        in_flight(service, 1.0);
    }
}

/// A call on this side ended: its count by outcome, its duration, its
/// stream items, a heartbeat loss; a server's call leaves the in-flight
/// gauge.
pub(crate) fn call_ended(
    side: Side,
    service: &Arc<str>,
    method: &str,
    outcome: &Outcome,
    took: Duration,
    items: u64,
) {
    let side_label = crate::record::side_label(side);
    let method = method_label(side_label, method);
    match side {
        Side::Server => {
            let name = service.to_string();
            metrics::counter!(
                "zerorpc_server_calls_total",
                "service" => name.clone(),
                "method" => method.clone(),
                "outcome" => outcome.label()
            )
            .increment(1);
            metrics::histogram!(
                "zerorpc_server_call_duration_seconds",
                "service" => name,
                "method" => method.clone()
            )
            .record(took.as_secs_f64());
            in_flight(service, -1.0);
        }
        Side::Client => {
            metrics::counter!(
                "zerorpc_client_calls_total",
                "method" => method.clone(),
                "outcome" => outcome.label()
            )
            .increment(1);
            metrics::histogram!("zerorpc_client_call_duration_seconds", "method" => method.clone())
                .record(took.as_secs_f64());
        }
    }
    if items > 0 {
        metrics::counter!("zerorpc_stream_items_total", "side" => side_label, "method" => method)
            .increment(items);
    }
    if *outcome == Outcome::Lost {
        metrics::counter!("zerorpc_heartbeat_losses_total", "side" => side_label).increment(1);
    }
}

fn in_flight(service: &Arc<str>, delta: f64) {
    metrics::gauge!("zerorpc_server_in_flight", "service" => service.to_string()).increment(delta);
}

/// A request refused with `ServerOverloaded`.
pub(crate) fn overloaded(service: &Arc<str>) {
    metrics::counter!("zerorpc_server_overloaded_total", "service" => service.to_string())
        .increment(1);
}

pub(crate) fn connections(side: &'static str, delta: f64) {
    metrics::gauge!("zerorpc_connections", "side" => side).increment(delta);
}
