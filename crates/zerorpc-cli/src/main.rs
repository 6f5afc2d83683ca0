//! # zerorpc-cli — the `zerorpc` command
//!
//! A drop-in for zerorpc-python's CLI (same flags: list a service, call a
//! method, watch a stream, serve), plus `zerorpc demo` (a guided tour),
//! `zerorpc bench` (a load generator), `zerorpc gateway` (HTTP/JSON in
//! front of a service) and `zerorpc completions SHELL`.
//!
//! Exit codes: 0 success, 1 remote error, 2 usage error, 3 timeout,
//! 4 lost remote, 5 other failure (connection, protocol), 6 authentication
//! failed (CURVE: the server refused our key, the wrong server key, or
//! CURVE on one side only).

/// `eprintln!` for what long-running commands print once running: never
/// waits for stderr (see [`status_line`]).
macro_rules! note {
    ($($t:tt)*) => {
        $crate::status_line(&format!($($t)*))
    };
}

mod bench;
mod bus;
mod client;
mod contract;
mod dashboard;
mod gateway;
mod hub;
mod literal;
mod naming;
mod output;
mod security;
mod server;
mod stream;
mod trace;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

const EXAMPLES: &str = "\
Examples:
  zerorpc tcp://127.0.0.1:4242                  list the service's methods
  zerorpc -? tcp://127.0.0.1:4242 add           show add's signature and documentation
  zerorpc tcp://127.0.0.1:4242 add 2 40         call add(2, 40)
  zerorpc tcp://127.0.0.1:4242 echo \"[1, 'a', None]\"   arguments are Python/JSON literals
  zerorpc -j tcp://127.0.0.1:4242 echo '{\"k\": 1}' arguments as strict JSON
  zerorpc --named tcp://127.0.0.1:4242 add b=40 a=2   named arguments (by introspection)
  zerorpc -pj tcp://127.0.0.1:4242 range 3      print results as JSON, one line per stream item
  zerorpc --server --bind tcp://0.0.0.0:4242 demo   serve the built-in demo service
  zerorpc demo                                  a tour: serve, list, call, stream, error
  zerorpc bench --connect tcp://127.0.0.1:4242 --method echo --concurrency 64 --duration 10 hello
  zerorpc hub hub.yml                           a load-balancing hub (zerohub keys: in, out, type: queue)
  zerorpc --server --connect tcp://hub:2222 demo   a worker behind that hub
  zerorpc gateway --connect tcp://127.0.0.1:4242 --listen 127.0.0.1:8080   HTTP/JSON: curl -d '[2, 40]' http://127.0.0.1:8080/add
  zerorpc trace-collector --redis redis://127.0.0.1:6379/   store call records sent by services
                                                (records on tcp://127.0.0.1:5555, queries on :5556)
  zerorpc --server --records tcp://127.0.0.1:5555 --bind tcp://0.0.0.0:4242 demo   record every call
  zerorpc trace show 4bf92f3577b34da6a3ce929d0e0e4736       print a trace's call tree
                                                (asks the collector's --query address)
  zerorpc keygen server                         write server.key and server.key_secret (CURVE)
  zerorpc --server --curve-keys server.key_secret --curve-allow clients/ --bind tcp://0.0.0.0:4242 demo
  zerorpc --curve-keys alice.key_secret --curve-server-key server.key tcp://host:4242 echo hi
  zerorpc registry --bind tcp://0.0.0.0:4000      a naming registry (zerorpc://SERVICE addresses)
  zerorpc --server --register tcp://reg:4000 --name calc --bind tcp://0.0.0.0:0 demo   register while serving
  zerorpc --registry tcp://reg:4000 zerorpc://calc add 1 2   call a service by name (also --directory FILE,
                                                --dns-domain DOMAIN [--dns-server IP:PORT])
  zerorpc trace tail                            follow records as they arrive
  zerorpc trace top                             per-method rates, failures, p50/p99
  zerorpc bus serve                             the fedmsg-compatible event bus (also bus publish,
                                                tail, replay, record, config: zerorpc help bus)
  zerorpc stream quickstart wordcount           Storm topologies with no JVM (also stream run FILE.yaml,
                                                tail, stats: zerorpc help stream)
  zerorpc contract record --out calc.contract.yml   a contract from a client's calls (the client runs with
                                                --records tcp://127.0.0.1:5555 --record-payloads)
  zerorpc contract verify tcp://127.0.0.1:4242 calc.contract.yml   would this service break that client?

Arguments that are not literals are sent as strings. Exit codes: 0 ok, 1 remote error,
2 usage, 3 timeout, 4 lost remote, 5 other failure, 6 authentication failed.
`zerorpc help SUBCOMMAND` (or `zerorpc SUBCOMMAND --help`) describes bench, bus, stream, hub, gateway,
trace-collector, trace, contract, registry, keygen.";

/// Call, list and serve ZeroRPC services.
#[derive(Parser, Debug)]
#[command(name = "zerorpc", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Client mode (the default).
    #[arg(long, conflicts_with = "server")]
    pub client: bool,
    /// Server mode: serve a service (only the built-in `demo`).
    #[arg(long)]
    pub server: bool,
    /// Connect to this address (repeatable).
    #[arg(long = "connect", value_name = "ADDR")]
    pub connect: Vec<String>,
    /// Bind to this address (repeatable; server mode).
    #[arg(long = "bind", value_name = "ADDR")]
    pub bind: Vec<String>,
    /// Seconds to wait for the first reply.
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub timeout: f64,
    /// Heartbeat interval in seconds.
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    pub heartbeat: f64,
    /// Parse arguments as JSON.
    #[arg(short = 'j', long = "json")]
    pub json: bool,
    /// Arguments are NAME=VALUE, placed by the argument names the
    /// service's introspection gives (`_zerorpc_inspect`); values as
    /// without it (literals, or JSON with -j).
    #[arg(long = "named")]
    pub named: bool,
    /// Print results as JSON (also `-pj`).
    #[arg(long = "print-json")]
    pub print_json: bool,
    /// Show signatures and documentation instead of calling (also `-?`).
    #[arg(long = "inspect")]
    pub inspect: bool,
    /// Record every call (with its trace) and send the records to this
    /// trace collector's records port (`zerorpc trace-collector
    /// --records`, tcp://127.0.0.1:5555 by default; not its --query port).
    /// Formerly --collector.
    #[arg(long = "records", alias = "collector", value_name = "ADDR")]
    pub records: Option<String>,
    /// With --records: record each call's arguments and result too (what
    /// `zerorpc contract record` turns into a contract).
    #[arg(long = "record-payloads", requires = "records")]
    pub record_payloads: bool,
    /// CURVE: our key pair (a NAME.key_secret file from `zerorpc keygen`).
    /// A server with it speaks CURVE.
    #[arg(long = "curve-keys", value_name = "FILE")]
    pub curve_keys: Option<String>,
    /// CURVE client: the server's public key (40 Z85 characters, or its
    /// NAME.key file); without --curve-keys a throwaway key pair is used.
    #[arg(long = "curve-server-key", value_name = "KEY|FILE")]
    pub curve_server_key: Option<String>,
    /// CURVE server: accept only the client keys in this directory's
    /// NAME.key files (each known by its NAME).
    #[arg(long = "curve-allow", value_name = "DIR")]
    pub curve_allow: Option<String>,
    /// Server: per-method authorization rules (YAML: rules: [{user, allow,
    /// deny}], globs); denied calls get PermissionDenied.
    #[arg(long = "authorize", value_name = "FILE")]
    pub authorize: Option<String>,
    /// Naming: resolve zerorpc://SERVICE addresses with this YAML
    /// directory (default: $ZERORPC_DIRECTORY).
    #[arg(long = "directory", value_name = "FILE")]
    pub directory: Option<String>,
    /// Naming: resolve zerorpc://SERVICE addresses with the registry at
    /// ADDR (default: $ZERORPC_REGISTRY).
    #[arg(long = "registry", value_name = "ADDR")]
    pub registry: Option<String>,
    /// Naming: the nameserver for DNS SRV lookups (IP:PORT; default:
    /// $ZERORPC_DNS_SERVER, else the system's).
    #[arg(long = "dns-server", value_name = "IP:PORT")]
    pub dns_server: Option<String>,
    /// Naming: resolve zerorpc://SERVICE with DNS SRV records
    /// _SERVICE._zerorpc._tcp.DOMAIN (default: $ZERORPC_DNS_DOMAIN).
    #[arg(long = "dns-domain", value_name = "DOMAIN")]
    pub dns_domain: Option<String>,
    /// Server: register with the registry at ADDR (heart-beating; gone
    /// when the server stops).
    #[arg(long = "register", value_name = "ADDR")]
    pub register: Option<String>,
    /// Server: the service name to register (default: the service served).
    #[arg(long = "name", value_name = "SERVICE")]
    pub name: Option<String>,
    /// Server: the endpoint to register (default: the first bound one,
    /// with 0.0.0.0 or * replaced by 127.0.0.1).
    #[arg(long = "advertise", value_name = "ENDPOINT")]
    pub advertise: Option<String>,
    /// Server: seconds a registration lives without a heartbeat.
    #[arg(long = "register-ttl", default_value_t = 10.0, value_name = "S")]
    pub register_ttl: f64,
    /// Accepted for compatibility: our client always heart-beats actively.
    #[arg(long = "active-hb")]
    pub active_hb: bool,
    /// ADDRESS [METHOD [ARGS...]] (ADDRESS may be replaced by --connect).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ADDRESS METHOD ARGS"
    )]
    pub rest: Vec<String>,
}

/// The options of [`Cli`] that take a value.
const VALUE_OPTIONS: &[&str] = &[
    "--connect",
    "--bind",
    "--timeout",
    "--heartbeat",
    "--records",
    "--collector",
    "--curve-keys",
    "--curve-server-key",
    "--curve-allow",
    "--authorize",
    "--directory",
    "--registry",
    "--dns-server",
    "--dns-domain",
    "--register",
    "--name",
    "--advertise",
    "--register-ttl",
];

/// Python's spellings that clap cannot express (`-pj`, `-?`), rewritten
/// among the options only: arguments after the address are left alone.
fn normalize(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut options = true;
    let mut takes_value = false;
    for (i, a) in args.enumerate() {
        if i == 0 || !options {
            out.push(a);
            continue;
        }
        if takes_value {
            takes_value = false;
            out.push(a);
            continue;
        }
        match a.as_str() {
            "-pj" => out.push("--print-json".into()),
            "-?" => out.push("--inspect".into()),
            o if VALUE_OPTIONS.contains(&o) => {
                takes_value = true;
                out.push(a);
            }
            s if s.starts_with('-') => out.push(a),
            _ => {
                options = false;
                out.push(a);
            }
        }
    }
    out
}

/// A recorder shipping to `--records`, if given.
async fn recorder(cli: &Cli) -> Result<Option<zerorpc::record::Recorder>, ExitCode> {
    let Some(addr) = &cli.records else {
        return Ok(None);
    };
    match zerorpc::collector::PushSink::connect_monitored(addr).await {
        Ok((sink, events)) => {
            // The first attempt's outcome, before any call (a call can be
            // over before a background check would have said anything).
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(3),
                warn_if_not_records_port(events, addr.clone()),
            )
            .await;
            Ok(Some(zerorpc::record::Recorder::new(sink, 65_536)))
        }
        Err(e) => {
            eprintln!("zerorpc: cannot use the collector {addr}: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// Says so when `--records` names something that is not a collector's
/// records port (its query port, a server...). Returns at the first
/// attempt's outcome (connected, refused, or the handshake failed).
async fn warn_if_not_records_port(
    mut events: tokio::sync::broadcast::Receiver<zerorpc::zmtp::SocketEvent>,
    addr: String,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(zerorpc::zmtp::SocketEvent::HandshakeFailed {
                reason,
                kind: zerorpc::zmtp::HandshakeFailure::IncompatibleSocketType,
                ..
            }) => {
                eprintln!(
                    "zerorpc: --records {addr} is not a trace collector's records port ({reason}); records are not sent. Is it the collector's --query port? Give the address the collector receives records on (`zerorpc trace-collector --records`, tcp://127.0.0.1:5555 by default)."
                );
                return;
            }
            Ok(
                zerorpc::zmtp::SocketEvent::Connected { .. }
                | zerorpc::zmtp::SocketEvent::ConnectFailed { .. }
                | zerorpc::zmtp::SocketEvent::HandshakeFailed { .. },
            )
            | Err(RecvError::Closed) => return,
            Ok(_) | Err(RecvError::Lagged(_)) => {}
        }
    }
}

/// The non-blocking stderr writer the logs use (see [`status_line`]).
static STDERR: std::sync::OnceLock<tracing_appender::non_blocking::NonBlocking> =
    std::sync::OnceLock::new();

/// Writes a line to stderr without ever waiting for it: through the log
/// writer (lossy: dropped when stderr is not read), for the periodic lines
/// of long-running commands.
pub fn status_line(line: &str) {
    use std::io::Write;
    match STDERR.get() {
        // (one write: the line stays whole among the log lines)
        Some(w) => {
            let _ = w.clone().write_all(format!("{line}\n").as_bytes());
        }
        None => eprintln!("{line}"),
    }
}

/// Logs to stderr through a non-blocking writer (lossy: a stderr nobody
/// reads drops log lines instead of stopping the program), coloured only
/// when stderr is a terminal. Keep the guard alive: dropping it flushes.
fn init_tracing() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use std::io::IsTerminal;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("zerorpc-log")
        .finish(std::io::stderr());
    let _ = STDERR.set(writer.clone());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .try_init()
        .ok()
        .map(|()| guard)
}

/// The subcommands `zerorpc help NAME` describes.
const SUBCOMMANDS: &[&str] = &[
    "bench",
    "bus",
    "stream",
    "hub",
    "gateway",
    "trace-collector",
    "trace",
    "registry",
    "keygen",
    "completions",
    "demo",
];

/// `zerorpc help [SUBCOMMAND [...]]`: the help of the command asked for,
/// as `--help` gives it (`None`: let `--help` do it).
fn help(args: &[String]) -> Option<ExitCode> {
    match args.get(2).map(String::as_str) {
        None => {
            let _ = Cli::command().print_long_help();
            Some(ExitCode::SUCCESS)
        }
        Some("demo") => {
            println!("zerorpc demo: serves the built-in demo service on a free port and drives it as a user would (list, inspect, call, stream, error).\n\nUsage: zerorpc demo");
            Some(ExitCode::SUCCESS)
        }
        Some("completions") => {
            println!("zerorpc completions: prints a shell completion script.\n\nUsage: zerorpc completions bash|zsh|fish|elvish|powershell");
            Some(ExitCode::SUCCESS)
        }
        Some(sub) if SUBCOMMANDS.contains(&sub) => None,
        Some(other) => {
            eprintln!(
                "zerorpc: no subcommand {other:?} (subcommands: {}); see zerorpc --help",
                SUBCOMMANDS.join(", ")
            );
            Some(ExitCode::from(2))
        }
    }
}

/// A note on stderr for the old spelling `--collector`, which meant the
/// records port on servers and the query port on `trace`.
fn deprecation_notes(args: &[String]) {
    let is_old = |a: &String| a == "--collector" || a.starts_with("--collector=");
    let old = match args.get(1).map(String::as_str) {
        Some(sub) if SUBCOMMANDS.contains(&sub) => args.iter().skip(2).any(is_old),
        // (among the options only: the arguments of a call are the user's;
        // `normalize` already wrote every option taking a value as
        // `--name value`)
        _ => {
            let mut takes_value = false;
            args.iter()
                .skip(1)
                .take_while(|a| {
                    let option = takes_value || a.starts_with('-');
                    takes_value = a.starts_with("--")
                        && !a.contains('=')
                        && VALUE_OPTIONS.contains(&a.as_str());
                    option
                })
                .any(is_old)
        }
    };
    if !old {
        return;
    }
    match args.get(1).map(String::as_str) {
        Some("trace") => eprintln!(
            "zerorpc: --collector is deprecated here: use --query (the collector's query address)"
        ),
        Some(sub) if SUBCOMMANDS.contains(&sub) => {}
        _ => eprintln!(
            "zerorpc: --collector is deprecated: use --records (the collector's records address)"
        ),
    }
}

/// The process allocator: the stream runner allocates tuples on one thread
/// and frees them on another (reader threads, tasks), where glibc's malloc
/// takes its slow paths; mimalloc's per-thread free lists cut the runner's
/// CPU per tuple tree by about a quarter (bench-results/2026-12-04-stream.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let _log = init_tracing();
    let mut args = normalize(std::env::args());
    if args.get(1).map(String::as_str) == Some("help") {
        if let Some(code) = help(&args) {
            return code;
        }
        // `zerorpc help SUB [...]` is `zerorpc SUB [...] --help`
        args.remove(1);
        args.push("--help".into());
    }
    deprecation_notes(&args);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zerorpc: cannot start the runtime: {e}");
            return ExitCode::from(5);
        }
    };
    match args.get(1).map(String::as_str) {
        Some("bench") => {
            let b = bench::BenchArgs::parse_from(
                std::iter::once("zerorpc bench".to_owned()).chain(args.into_iter().skip(2)),
            );
            rt.block_on(bench::run(b))
        }
        Some("demo") if args.len() == 2 => rt.block_on(client::demo()),
        Some("bus") => {
            let a = bus::BusArgs::parse_from(
                std::iter::once("zerorpc bus".to_owned()).chain(args.into_iter().skip(2)),
            );
            rt.block_on(bus::run(a))
        }
        Some("stream") => {
            let a = stream::StreamArgs::parse_from(
                std::iter::once("zerorpc stream".to_owned()).chain(args.into_iter().skip(2)),
            );
            stream::run(a, &rt)
        }
        Some("trace-collector") => {
            let a = trace::CollectorArgs::parse_from(
                std::iter::once("zerorpc trace-collector".to_owned())
                    .chain(args.into_iter().skip(2)),
            );
            rt.block_on(trace::collector(a))
        }
        Some("trace") => {
            let a = trace::TraceArgs::parse_from(
                std::iter::once("zerorpc trace".to_owned()).chain(args.into_iter().skip(2)),
            );
            rt.block_on(trace::trace(a))
        }
        Some("hub") => {
            let h = hub::HubArgs::parse_from(
                std::iter::once("zerorpc hub".to_owned()).chain(args.into_iter().skip(2)),
            );
            rt.block_on(hub::run(h))
        }
        Some("contract") => {
            let a = contract::ContractArgs::parse_from(
                std::iter::once("zerorpc contract".to_owned()).chain(args.into_iter().skip(2)),
            );
            rt.block_on(contract::run(a))
        }
        Some("gateway") => {
            let g = gateway::GatewayArgs::parse_from(
                std::iter::once("zerorpc gateway".to_owned()).chain(args.into_iter().skip(2)),
            );
            rt.block_on(gateway::run(g))
        }
        Some("registry") => {
            let a = naming::RegistryArgs::parse_from(
                std::iter::once("zerorpc registry".to_owned()).chain(args.into_iter().skip(2)),
            );
            rt.block_on(naming::run_registry(a))
        }
        Some("keygen") => security::keygen(security::KeygenArgs::parse_from(
            std::iter::once("zerorpc keygen".to_owned()).chain(args.into_iter().skip(2)),
        )),
        Some("completions") => {
            let shell = args
                .get(2)
                .and_then(|s| s.parse::<clap_complete::Shell>().ok());
            match shell {
                Some(shell) => {
                    clap_complete::generate(
                        shell,
                        &mut Cli::command(),
                        "zerorpc",
                        &mut std::io::stdout(),
                    );
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("usage: zerorpc completions bash|zsh|fish|elvish|powershell");
                    ExitCode::from(2)
                }
            }
        }
        _ => {
            let cli = Cli::parse_from(args);
            if cli.server {
                rt.block_on(server::run(cli))
            } else {
                rt.block_on(client::run(cli))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    fn n(args: &[&str]) -> Vec<String> {
        normalize(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn python_spellings_only_among_options() {
        assert_eq!(
            n(&["zerorpc", "-pj", "-?", "tcp://x:1"]),
            ["zerorpc", "--print-json", "--inspect", "tcp://x:1"]
        );
        assert_eq!(
            n(&["zerorpc", "tcp://x:1", "echo", "-pj", "-?"]),
            ["zerorpc", "tcp://x:1", "echo", "-pj", "-?"]
        );
        assert_eq!(
            n(&[
                "zerorpc",
                "--timeout",
                "3",
                "-pj",
                "--connect",
                "tcp://x:1",
                "m",
                "-?"
            ]),
            [
                "zerorpc",
                "--timeout",
                "3",
                "--print-json",
                "--connect",
                "tcp://x:1",
                "m",
                "-?"
            ]
        );
    }
}
