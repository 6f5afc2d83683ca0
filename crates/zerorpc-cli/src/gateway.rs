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
    /// Seconds a client may take to send a request's head (then: closed)
    #[arg(long, default_value_t = GatewayOptions::default().header_timeout.as_secs_f64(), value_name = "S")]
    pub header_timeout: f64,
    /// Seconds a client may take to send a request's body (then: 408)
    #[arg(long, default_value_t = GatewayOptions::default().body_timeout.as_secs_f64(), value_name = "S")]
    pub body_timeout: f64,
    /// Seconds a kept-alive connection may stay idle between requests
    #[arg(long, default_value_t = GatewayOptions::default().idle_timeout.as_secs_f64(), value_name = "S")]
    pub idle_timeout: f64,
    /// Seconds a response may wait for its client to read (then: closed)
    #[arg(long, default_value_t = GatewayOptions::default().write_timeout.as_secs_f64(), value_name = "S")]
    pub write_timeout: f64,
    /// Most HTTP connections open at once (the next wait to be accepted)
    #[arg(long, default_value_t = GatewayOptions::default().max_connections, value_name = "N")]
    pub max_connections: usize,
    /// Most bytes of request bodies read at once, all connections together
    #[arg(long, default_value_t = GatewayOptions::default().max_body_memory, value_name = "BYTES")]
    pub max_body_memory: usize,
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
    let conn_timeouts = [
        seconds("header-timeout", a.header_timeout),
        seconds("body-timeout", a.body_timeout),
        seconds("idle-timeout", a.idle_timeout),
        seconds("write-timeout", a.write_timeout),
    ];
    let [header_timeout, body_timeout, idle_timeout, write_timeout] = match conn_timeouts {
        [Ok(h), Ok(b), Ok(i), Ok(w)] => [h, b, i, w],
        [Err(e), ..] | [_, Err(e), ..] | [_, _, Err(e), _] | [.., Err(e)] => return e,
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
        .max_body(a.max_body)
        .header_timeout(header_timeout)
        .body_timeout(body_timeout)
        .idle_timeout(idle_timeout)
        .write_timeout(write_timeout)
        .max_connections(a.max_connections.max(1))
        .max_body_memory(a.max_body_memory);
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
