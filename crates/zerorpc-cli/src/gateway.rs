//! `zerorpc gateway`: the HTTP/JSON gateway (`zerorpc-gateway`) in front of
//! one service.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use zerorpc::{Client, ClientOptions};
use zerorpc_gateway::{Gateway, GatewayError, GatewayOptions, DEFAULT_MAX_BODY};

/// Serve a ZeroRPC service over HTTP/JSON: POST /METHOD with the arguments
/// as a JSON array (or object, by name); GET /openapi.json describes it
#[derive(Parser, Debug)]
#[command(
    name = "zerorpc gateway",
    after_help = "Examples:\n  zerorpc gateway --connect tcp://127.0.0.1:4242 --listen 127.0.0.1:8080\n  curl -d '[2, 40]' http://127.0.0.1:8080/add\n  curl -d '{\"a\": 2, \"b\": 40}' http://127.0.0.1:8080/add\n  curl -H 'Accept: application/x-ndjson' -d '[3]' http://127.0.0.1:8080/range\n  curl http://127.0.0.1:8080/openapi.json\n\nThe token may also come from the ZERORPC_GATEWAY_TOKEN environment variable\n(out of sight of ps)."
)]
pub struct GatewayArgs {
    /// The service's address (repeatable: calls spread over them)
    #[arg(long = "connect", value_name = "ADDR", required = true)]
    pub connect: Vec<String>,
    /// Where to serve HTTP
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Require `Authorization: Bearer TOKEN` on every request
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Seconds a request waits for the service's reply
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub timeout: f64,
    /// Heartbeat interval to the service, in seconds
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    pub heartbeat: f64,
    /// Largest request body (and collected stream), in bytes
    #[arg(long, default_value_t = DEFAULT_MAX_BODY, value_name = "BYTES")]
    pub max_body: usize,
}

fn seconds(what: &str, s: f64) -> Result<Duration, ExitCode> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            eprintln!("zerorpc gateway: --{what} must be a positive number of seconds, got {s}");
            ExitCode::from(2)
        })
}

pub async fn run(a: GatewayArgs) -> ExitCode {
    let (timeout, heartbeat) = match (
        seconds("timeout", a.timeout),
        seconds("heartbeat", a.heartbeat),
    ) {
        (Ok(t), Ok(h)) => (t, h),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let endpoints: Vec<&str> = a.connect.iter().map(String::as_str).collect();
    let copts = ClientOptions::default()
        .timeout(timeout)
        .heartbeat(heartbeat);
    let client = match Client::connect_with(&endpoints, copts).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "zerorpc gateway: cannot connect to {}: {e}",
                a.connect.join(", ")
            );
            return ExitCode::from(5);
        }
    };
    let mut opts = GatewayOptions::default()
        .timeout(timeout)
        .max_body(a.max_body);
    opts.token = a
        .token
        .or_else(|| std::env::var("ZERORPC_GATEWAY_TOKEN").ok())
        .filter(|t| !t.is_empty());
    let gateway = match Gateway::new(client, opts).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("zerorpc gateway: {}: {e}", a.connect.join(", "));
            return ExitCode::from(match e {
                GatewayError::Describe(zerorpc::Error::Timeout(_)) => 3,
                GatewayError::Describe(zerorpc::Error::Authentication { .. }) => 6,
                _ => 5,
            });
        }
    };
    let listener = match tokio::net::TcpListener::bind(&a.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("zerorpc gateway: cannot listen on {}: {e}", a.listen);
            return ExitCode::from(5);
        }
    };
    let shown = listener
        .local_addr()
        .map_or_else(|_| a.listen.clone(), |addr| addr.to_string());
    eprintln!("gateway for {} on http://{shown}", gateway.service().name);
    let stop = async {
        let signal = crate::server::wait_for_signal().await;
        note!("{signal}: gateway stopping");
    };
    match gateway.serve_with_shutdown(listener, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note!("zerorpc gateway: {e}");
            ExitCode::from(5)
        }
    }
}
