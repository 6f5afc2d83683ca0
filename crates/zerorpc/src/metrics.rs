//! Metrics through the [`metrics`] facade: call counts by method and
//! outcome, duration histograms, calls in flight, heartbeat losses, stream
//! items and connections. Servers and clients emit them when their
//! `metrics` option is on; an exporter installed in the process collects
//! them ([`install_prometheus`] serves the Prometheus text format over
//! HTTP). Without an exporter the facade discards them.
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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::record::Outcome;

/// Duration buckets (seconds) of the histograms.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs a Prometheus exporter for this process: the metrics of every
/// server and client with `metrics` on are served at
/// `http://ADDR/metrics` (any path answers). Call once, inside a tokio
/// runtime.
pub fn install_prometheus(addr: SocketAddr) -> Result<(), Error> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(BUCKETS)
        .and_then(|b| b.install())
        .map_err(|e| Error::Protocol(format!("cannot install the Prometheus exporter: {e}")))
}

pub(crate) fn server_call(service: &Arc<str>, method: &str, outcome: &Outcome, took: Duration) {
    let (service, method) = (service.to_string(), method.to_owned());
    metrics::counter!(
        "zerorpc_server_calls_total",
        "service" => service.clone(),
        "method" => method.clone(),
        "outcome" => outcome.label()
    )
    .increment(1);
    metrics::histogram!(
        "zerorpc_server_call_duration_seconds",
        "service" => service,
        "method" => method
    )
    .record(took.as_secs_f64());
    side_outcome("server", outcome);
}

pub(crate) fn client_call(method: &str, outcome: &Outcome, took: Duration) {
    let method = method.to_owned();
    metrics::counter!(
        "zerorpc_client_calls_total",
        "method" => method.clone(),
        "outcome" => outcome.label()
    )
    .increment(1);
    metrics::histogram!("zerorpc_client_call_duration_seconds", "method" => method.clone())
        .record(took.as_secs_f64());
    if let Outcome::Stream { items } = outcome {
        metrics::counter!("zerorpc_stream_items_total", "side" => "client", "method" => method)
            .increment(*items);
    }
    side_outcome("client", outcome);
}

pub(crate) fn server_stream_items(method: &str, items: u64) {
    metrics::counter!("zerorpc_stream_items_total", "side" => "server", "method" => method.to_owned())
        .increment(items);
}

fn side_outcome(side: &'static str, outcome: &Outcome) {
    if *outcome == Outcome::Lost {
        metrics::counter!("zerorpc_heartbeat_losses_total", "side" => side).increment(1);
    }
}

pub(crate) fn in_flight(service: &Arc<str>, delta: f64) {
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
