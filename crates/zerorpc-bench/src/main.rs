//! # zerorpc-bench — one run, every contender, ratios to ours
//!
//! `cargo run --release -p zerorpc-bench -- compare [--quick]`
//!
//! Measures the same workloads, in one run on one machine, on: our Rust
//! client and server; zerorpc-python 0.6.3 (client and server, from the
//! venv the test harness provisions under `target/`); both cross pairings;
//! raw libzmq DEALER↔ROUTER with a msgpack event round trip (the floor for
//! any ZeroMQ RPC); plain tokio TCP echo (the physical floor); tarpc
//! (bincode over TCP); tonic (gRPC, HTTP/2). Writes a
//! markdown table with ratios to ours and a JSON file under
//! `bench-results/`.
//!
//! Also draws the latency distributions (`bench-results/*.svg`).
//!
//! Idle-channel memory is measured for ours, tarpc and tonic, each in a
//! fresh child process (`zerorpc-bench idle SYSTEM N`) whose allocator
//! commits only what it touches (see `idle::idle_in_child`); not yet for
//! Python.
//!
//! Layout: this file holds `main` (the modes), our client's workloads,
//! the shared call workloads and the report; `report` the report's plot
//! and table cells, `idle` idle-channel memory, `instructions` the
//! callgrind workload, `ours` our row alone, `load` one system at a fixed
//! number in flight; [`contenders`] the systems
//! measured beside ours (Python, libzmq, TCP, tarpc, tonic); [`scenarios`]
//! the one-feature benchmarks (hub, gateway, tracing, security, deadline)
//! and `rows` (the Rust-side call rows in alternating rounds);
//! `soak`, `stream`, `bus` and `brokers` their own modes.

use zerorpc_testkit as common;

mod brokers;
mod bus;
mod contenders;
mod idle;
mod instructions;
mod load;
mod ours;
mod report;
mod scenarios;
mod soak;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zerorpc::{Client, Server, Value};

use contenders::libzmq::*;
use contenders::python::*;
use contenders::tarpc::*;
use contenders::tcp::*;
use contenders::tonic::*;
use scenarios::deadline::*;
use scenarios::gateway::*;
use scenarios::hub::*;
use scenarios::rows::*;
use scenarios::security::*;
use scenarios::tracing::*;

use idle::{idle_common, idle_in_child, idle_ours};
use instructions::instructions_workload;
use report::{cell, plot};

#[derive(Clone, Copy)]
struct Size {
    seq: usize,
    conc: usize,
    stream: u64,
    py_seq: usize,
    py_conc: usize,
    py_stream: u64,
}

impl Size {
    /// `compare`'s workload sizes (also `ours`'s), quick or full.
    fn of(quick: bool) -> Size {
        if quick {
            Size {
                seq: 2_000,
                conc: 20_000,
                stream: 200_000,
                py_seq: 500,
                py_conc: 2_000,
                py_stream: 20_000,
            }
        } else {
            Size {
                seq: 10_000,
                conc: 200_000,
                stream: 1_000_000,
                py_seq: 2_000,
                py_conc: 10_000,
                py_stream: 100_000,
            }
        }
    }
}

#[derive(Default, Clone)]
struct Row {
    name: String,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    rate16: Option<f64>,
    rate256: Option<f64>,
    rate64k: Option<f64>,
    items: Option<f64>,
    /// Sequential latency (µs) at each of [`QUANTILES`].
    pcts: Vec<f64>,
    /// RSS bytes per idle open channel (client and server in one process).
    idle: Option<f64>,
}

impl Row {
    /// A request/reply contender's figures: sequential latency from `h`,
    /// and calls/s at 16, 256 and with 64 KiB payloads.
    fn calls(name: &str, h: &Histogram<u64>, rate16: f64, rate256: f64, rate64k: f64) -> Row {
        Row {
            name: name.into(),
            p50_us: Some(h.value_at_quantile(0.5) as f64 / 1e3),
            p99_us: Some(h.value_at_quantile(0.99) as f64 / 1e3),
            rate16: Some(rate16),
            rate256: Some(rate256),
            rate64k: Some(rate64k),
            items: None,
            pcts: pcts(h),
            idle: None,
        }
    }

    /// Its figures as one markdown row, without a name or ratios.
    fn brief(&self) -> String {
        let f = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0}"));
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            f(self.p50_us),
            f(self.p99_us),
            f(self.rate16),
            f(self.rate256),
            f(self.rate64k),
            f(self.items)
        )
    }
}

/// Quantiles plotted for the latency distributions.
const QUANTILES: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999];

fn pcts(h: &Histogram<u64>) -> Vec<f64> {
    QUANTILES
        .iter()
        .map(|q| h.value_at_quantile(*q) as f64 / 1e3)
        .collect()
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

const BIG: usize = 64 * 1024;

// ------------------------------------------------------------ Rust client

/// Our echo call: a small integer, or 64 KiB of bytes.
fn echo_call(c: Client, big: bool) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        let arg = if big {
            Value::Binary(vec![7u8; BIG])
        } else {
            Value::from(1)
        };
        c.call("echo", vec![arg]).await.expect("call");
    })
}

async fn rust_client(name: &str, ep: &str, seq: usize, conc: usize, stream: u64) -> Row {
    let c = Client::connect(ep).await.expect("connect");
    let mut row = call_workloads(name, seq, conc, c.clone(), echo_call).await;
    let t = Instant::now();
    let items = c
        .call("range", vec![Value::from(stream)])
        .await
        .expect("stream");
    let n = items.as_array().map(Vec::len).unwrap_or(0);
    row.items = Some(n as f64 / t.elapsed().as_secs_f64());
    row
}

/// A demo server in this process, serving in the background; returns it
/// and its endpoint.
pub(crate) async fn demo_server(opts: zerorpc::ServerOptions) -> (Arc<Server>, String) {
    let server = Arc::new(Server::with_options(zerorpc::demo::Demo, opts));
    let ep = server
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind")
        .to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    (server, ep)
}

// ------------------------------------------------------------ shared call workloads

/// One call of a contender: `big` selects the 64 KiB payload.
type CallFn<C> = fn(C, bool) -> futures::future::BoxFuture<'static, ()>;

/// Sequential latency, then 16 and 256 calls in flight (one task each),
/// then 64 KiB calls at 16: the workloads every request/reply contender
/// runs the same way.
async fn call_workloads<C: Clone + Send + 'static>(
    name: &str,
    seq: usize,
    conc: usize,
    client: C,
    call: CallFn<C>,
) -> Row {
    for _ in 0..200 {
        call(client.clone(), false).await;
    }
    let mut h = hist();
    for _ in 0..seq {
        let t = Instant::now();
        call(client.clone(), false).await;
        h.record(t.elapsed().as_nanos() as u64).ok();
    }
    let rate = |k: usize, n: usize, big: bool| {
        let client = client.clone();
        async move {
            let t = Instant::now();
            let per = (n / k).max(1);
            let tasks: Vec<_> = (0..k)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move {
                        for _ in 0..per {
                            call(c.clone(), big).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            (per * k) as f64 / t.elapsed().as_secs_f64()
        }
    };
    let r16 = rate(16, conc, false).await;
    let r256 = rate(256, conc, false).await;
    let r64k = rate(16, conc / 10, true).await;
    Row::calls(name, &h, r16, r256, r64k)
}

/// The runtime every measurement runs on: two workers, like the machine.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The process allocator: the stream runner allocates tuples on one thread
/// and frees them on another (reader threads, tasks), where glibc's malloc
/// takes its slow paths; mimalloc's per-thread free lists cut the runner's
/// CPU per tuple tree by about a quarter (bench-results/2026-12-04-stream.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("tracing") {
        tracing_bench(args.iter().any(|a| a == "--quick"));
        return;
    }
    if args.get(1).map(String::as_str) == Some("tracing-child") {
        let mode: u8 = args.get(2).and_then(|m| m.parse().ok()).unwrap_or(0);
        let rt = runtime();
        let r = rt.block_on(tracing_child(mode, args.iter().any(|a| a == "--quick")));
        println!(
            "ROW {}",
            json!({"p50": r.p50_us, "p99": r.p99_us, "r16": r.rate16, "r256": r.rate256, "r64k": r.rate64k})
        );
        std::process::exit(0);
    }
    if args.get(1).map(String::as_str) == Some("brokers") {
        let rt = runtime();
        rt.block_on(brokers::brokers_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("bus") {
        let rt = runtime();
        rt.block_on(bus::bus_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("stream") {
        let rt = runtime();
        rt.block_on(stream::stream_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("soak") {
        soak::main(&args[2..]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("soak-server") {
        soak::server_main(&args[2..]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("security") {
        let rt = runtime();
        rt.block_on(security_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("deadline") {
        let rt = runtime();
        rt.block_on(alternate("deadline", "no deadline", |on| {
            deadline_row(on, args.iter().any(|a| a == "--quick"))
        }));
        return;
    }
    if args.get(1).map(String::as_str) == Some("hub") {
        let rt = runtime();
        rt.block_on(hub_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("rows") {
        let rounds = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5);
        rows_bench(rounds, args.iter().any(|a| a == "--quick"));
        return;
    }
    if args.get(1).map(String::as_str) == Some("gateway") {
        let rt = runtime();
        rt.block_on(gateway_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("instructions") {
        // Child mode (see `callgrind.sh`): N sequential calls or one
        // stream of N items, client and server in this process.
        let n: u64 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1000);
        instructions_workload(args.get(2).map(String::as_str).unwrap_or("calls"), n);
        return;
    }
    if args.get(1).map(String::as_str) == Some("load") {
        load::main(&args[2..]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("ours") {
        ours::main(&args[2..]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("idle") {
        // Child mode (see `idle_in_child`): one system, a fresh heap.
        let n: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1000);
        // (`idle ours N SECONDS`: measured after the channels have been
        // open that long, heartbeats exchanged)
        let settle: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0.5);
        let rt = runtime();
        let bytes = rt.block_on(async {
            match args.get(2).map(String::as_str) {
                Some("ours") => idle_ours(n, Duration::from_secs_f64(settle)).await,
                Some("tarpc") => idle_tarpc(n).await,
                Some("tonic") => idle_tonic(n).await,
                _ => f64::NAN,
            }
        });
        println!("IDLE {bytes}");
        // The open calls would sleep for an hour: leave now.
        std::process::exit(0);
    }
    if args.get(1).map(String::as_str) != Some("compare") {
        eprintln!("usage: zerorpc-bench compare|rows|ours|hub|tracing|gateway|security|deadline|bus|stream [--quick]");
        std::process::exit(2);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let s = Size::of(quick);
    let rt = runtime();
    let started = Instant::now();
    let step = |i: usize, what: &str| {
        eprintln!("[{i}/8 {:>5.1}s] {what}", started.elapsed().as_secs_f64())
    };

    step(0, "provisioning the Python venv (first run only)");
    common::python();
    let (_server, rust_ep) = rt.block_on(demo_server(Default::default()));
    let py_ep = format!("tcp://127.0.0.1:{}", common::free_port());
    let py_server_script = common::PY_DEMO_SERVER;
    let mut py_server = common::Proc::python(py_server_script, &[&py_ep, "5"]);
    py_server.wait_line("READY");

    // Idle-channel memory, each system in a fresh child process.
    let idle_n = if quick { 2_000 } else { 10_000 };
    eprintln!(
        "[+ {:>5.1}s] {idle_n} idle open channels (ours, tarpc, tonic; each in a fresh process)",
        started.elapsed().as_secs_f64()
    );
    let idle_ours = idle_in_child("ours", idle_n);
    let idle_tarpc = idle_in_child("tarpc", idle_n);
    let idle_tonic = idle_in_child("tonic", idle_n);
    let per_channel = idle_ours.unwrap_or(f64::NAN);

    let mut rows = Vec::new();
    step(1, "ours: Rust client -> Rust server");
    let ep = rust_ep.clone();
    rows.push(rt.block_on(async move {
        tokio::spawn(async move {
            rust_client("ours: Rust → Rust", &ep, s.seq, s.conc, s.stream).await
        })
        .await
        .expect("task")
    }));
    step(2, "zerorpc-python: Python client -> Python server");
    rows.push(python_client("zerorpc-python: Python → Python", &py_ep, s));
    step(3, "cross: Rust client -> Python server");
    let ep = py_ep.clone();
    rows.push(rt.block_on(async move {
        tokio::spawn(async move {
            rust_client(
                "cross: Rust → Python",
                &ep,
                s.py_seq,
                s.py_conc,
                s.py_stream,
            )
            .await
        })
        .await
        .expect("task")
    }));
    step(4, "cross: Python client -> Rust server");
    rows.push(python_client("cross: Python → Rust", &rust_ep, s));
    step(5, "raw libzmq DEALER<->ROUTER with msgpack");
    let ctx = zmq::Context::new();
    rows.push(zmq_client(&ctx, s.seq, s.conc));
    step(6, "plain tokio TCP echo");
    rows.push(
        rt.block_on(async move { tokio::spawn(tcp_echo(s.seq, s.conc)).await.expect("task") }),
    );
    drop(py_server);
    step(7, "tarpc");
    rows.push(rt.block_on(async move {
        tokio::spawn(tarpc_bench(s.seq, s.conc))
            .await
            .expect("task")
    }));
    step(8, "tonic");
    rows.push(rt.block_on(async move {
        tokio::spawn(tonic_bench(s.seq, s.conc))
            .await
            .expect("task")
    }));

    for r in rows.iter_mut() {
        if r.name.starts_with("ours") {
            r.idle = idle_ours;
        } else if r.name.starts_with("tarpc") {
            r.idle = idle_tarpc;
        } else if r.name.starts_with("tonic") {
            r.idle = idle_tonic;
        }
    }
    let base = rows[0].clone();
    let mut md = String::new();
    md.push_str(&format!(
        "## zerorpc-bench compare ({}, {})\n\nEach cell: the figure (ratio to ours). Latency in µs (lower is better), rates per second (higher is better).\n\n",
        if quick { "quick" } else { "full" },
        "2 tokio workers, loopback"
    ));
    md.push_str("| system | p50 µs | p99 µs | calls/s @16 | calls/s @256 | 64 KiB calls/s @16 | stream items/s | bytes per idle channel |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.name,
            r.call_cells(&base),
            cell(r.items, base.items),
            cell(r.idle, base.idle),
        ));
    }
    // Targets (issue 6), reported as measured.
    let find = |prefix: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(prefix))
            .cloned()
            .unwrap_or_default()
    };
    let (tcp, py) = (find("plain"), find("zerorpc-python"));
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b).unwrap_or(f64::NAN);
    let checks = [
        (
            "sequential p50 ≤ 1.5× plain TCP RTT",
            ratio(base.p50_us, tcp.p50_us),
            ratio(base.p50_us, tcp.p50_us) <= 1.5,
        ),
        (
            "≥ 25× zerorpc-python sequential (p50 ratio)",
            ratio(py.p50_us, base.p50_us),
            ratio(py.p50_us, base.p50_us) >= 25.0,
        ),
        (
            "≥ 100× zerorpc-python concurrent calls/s (@16)",
            ratio(base.rate16, py.rate16),
            ratio(base.rate16, py.rate16) >= 100.0,
        ),
        (
            "≥ 1 M streamed items/s",
            base.items.unwrap_or(0.0) / 1e6,
            base.items.unwrap_or(0.0) >= 1e6,
        ),
    ];
    md.push_str("\n| target | measured | met |\n|---|---:|---|\n");
    for (what, v, ok) in &checks {
        md.push_str(&format!(
            "| {what} | {v:.2} | {} |\n",
            if *ok { "yes" } else { "no" }
        ));
    }
    md.push_str(&format!(
        "| ≤ 2 KiB per idle channel ({idle_n} open; client + server in one process; RSS, no huge pages or eager commit) | {:.0} bytes | {} |\n",
        per_channel,
        if per_channel <= 2048.0 { "yes" } else { "no" }
    ));
    let tonic = find("tonic");
    let (t16, t256) = (
        ratio(base.rate16, tonic.rate16),
        ratio(base.rate256, tonic.rate256),
    );
    md.push_str(&format!(
        "| ≥ 3× tonic concurrent calls/s (at 16 / at 256 in flight) | {t16:.2} / {t256:.2} | {} |\n",
        if t16 >= 3.0 && t256 >= 3.0 { "yes" } else { "no" }
    ));
    println!("{md}");
    let json = json!({
        "mode": if quick { "quick" } else { "full" },
        "seconds": started.elapsed().as_secs_f64(),
        "idle_channels": {"open": idle_n, "bytes_per_channel_client_and_server": per_channel},
        "rows": rows.iter().map(|r| json!({
            "system": r.name, "p50_us": r.p50_us, "p99_us": r.p99_us, "calls_per_sec_16": r.rate16,
            "calls_per_sec_256": r.rate256, "calls_per_sec_64k_16": r.rate64k, "stream_items_per_sec": r.items,
            "idle_channel_bytes": r.idle,
            "latency_us_by_quantile": QUANTILES.iter().zip(r.pcts.iter()).map(|(q, v)| json!([q, v])).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-results");
    if std::fs::create_dir_all(&dir).is_ok() {
        let stem = if quick { "latest-quick" } else { "latest-full" };
        let _ = std::fs::write(dir.join(format!("{stem}.md")), &md);
        let _ = std::fs::write(
            dir.join(format!("{stem}.json")),
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        );
        if let Err(e) = plot(&rows, &dir.join(format!("{stem}.svg"))) {
            eprintln!("plot failed: {e}");
        }
        eprintln!(
            "wrote {}/{stem}.md, .json and .svg ({:.0}s)",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    rt.shutdown_timeout(Duration::from_secs(1));
}
