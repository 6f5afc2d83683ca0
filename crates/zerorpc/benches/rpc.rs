//! RPC benchmark: small `echo` calls, sequential latency and concurrent
//! throughput, for every pairing of our peer and zerorpc-python 0.6.3, in
//! one run (ratios against Rust↔Rust).
//!
//! `cargo bench -p zerorpc --bench rpc [-- --quick]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use zerorpc::demo::Demo;
use zerorpc::{Client, Server, Value};

const PY_SERVER: &str = r#"
import sys, zerorpc
class S(object):
    def echo(self, x):
        return x
s = zerorpc.Server(S())
s.bind(sys.argv[1])
print("READY", flush=True)
s.run()
"#;

const PY_CLIENT: &str = r#"
import sys, time, json, zerorpc
from gevent.pool import Pool
ep, n_seq, n_conc, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c = zerorpc.Client(timeout=60)
c.connect(ep)
for _ in range(200):
    c.echo(1)
lat = []
for _ in range(n_seq):
    t = time.perf_counter(); c.echo(1); lat.append(time.perf_counter() - t)
lat.sort()
t = time.perf_counter()
Pool(conc).map(lambda i: c.echo(i), range(n_conc))
dt = time.perf_counter() - t
print("RESULT", json.dumps({"p50_us": lat[len(lat)//2] * 1e6, "p99_us": lat[int(len(lat) * 0.99)] * 1e6, "rate": n_conc / dt}), flush=True)
"#;

struct Row {
    name: &'static str,
    p50_us: f64,
    p99_us: f64,
    rate16: f64,
    rate256: Option<f64>,
}

async fn rust_client(
    ep: &str,
    n_seq: usize,
    n_conc: usize,
    concurrency: &[usize],
) -> (f64, f64, Vec<f64>) {
    let c = Client::connect(ep).await.expect("connect");
    for _ in 0..200 {
        c.call("echo", vec![1.into()]).await.expect("warm up");
    }
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    for _ in 0..n_seq {
        let t = Instant::now();
        c.call("echo", vec![1.into()]).await.expect("call");
        h.record(t.elapsed().as_nanos() as u64).ok();
    }
    let mut rates = Vec::new();
    for &k in concurrency {
        let t = Instant::now();
        let per = n_conc / k;
        let tasks: Vec<_> = (0..k)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move {
                    for i in 0..per {
                        c.call("echo", vec![Value::from(i)]).await.expect("call");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        rates.push((per * k) as f64 / t.elapsed().as_secs_f64());
    }
    (
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        rates,
    )
}

fn python_client(ep: &str, n_seq: usize, n_conc: usize, conc: usize) -> (f64, f64, f64) {
    let mut p = common::Proc::python(
        PY_CLIENT,
        &[
            ep,
            &n_seq.to_string(),
            &n_conc.to_string(),
            &conc.to_string(),
        ],
    );
    let line = p.wait_line("RESULT");
    let json = line.trim_start_matches("RESULT").trim();
    let num = |k: &str| -> f64 {
        let i = json.find(&format!("\"{k}\": ")).expect("key") + k.len() + 4;
        json[i..]
            .split([',', '}'])
            .next()
            .and_then(|v| v.trim().parse().ok())
            .expect("number")
    };
    (num("p50_us"), num("p99_us"), num("rate"))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n_seq, n_conc, py_seq, py_conc) = if quick {
        (2_000, 20_000, 500, 2_000)
    } else {
        (10_000, 200_000, 2_000, 10_000)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    eprintln!("provisioning the Python venv (first run only)...");
    common::python();

    let server = Arc::new(rt.block_on(async { Server::new(Demo) }));
    let rust_ep = rt
        .block_on(server.bind("tcp://127.0.0.1:0"))
        .expect("bind")
        .to_string();
    let s = server.clone();
    rt.spawn(async move { s.run().await });

    let py_ep = format!("tcp://127.0.0.1:{}", common::free_port());
    let mut py_server = common::Proc::python(PY_SERVER, &[&py_ep]);
    py_server.wait_line("READY");

    let mut rows = Vec::new();
    eprintln!("[1/4] Rust client -> Rust server");
    let (p50, p99, r) = rt.block_on({
        let ep = rust_ep.clone();
        async move {
            tokio::spawn(async move { rust_client(&ep, n_seq, n_conc, &[16, 256]).await })
                .await
                .expect("task")
        }
    });
    rows.push(Row {
        name: "Rust client → Rust server",
        p50_us: p50,
        p99_us: p99,
        rate16: r[0],
        rate256: Some(r[1]),
    });
    eprintln!("[2/4] Rust client -> Python server");
    let (p50, p99, r) = rt.block_on({
        let ep = py_ep.clone();
        async move {
            tokio::spawn(async move { rust_client(&ep, py_seq, py_conc, &[16]).await })
                .await
                .expect("task")
        }
    });
    rows.push(Row {
        name: "Rust client → Python server",
        p50_us: p50,
        p99_us: p99,
        rate16: r[0],
        rate256: None,
    });
    eprintln!("[3/4] Python client -> Rust server");
    let (p50, p99, rate) = python_client(&rust_ep, py_seq, py_conc, 16);
    rows.push(Row {
        name: "Python client → Rust server",
        p50_us: p50,
        p99_us: p99,
        rate16: rate,
        rate256: None,
    });
    eprintln!("[4/4] Python client -> Python server");
    let (p50, p99, rate) = python_client(&py_ep, py_seq, py_conc, 16);
    rows.push(Row {
        name: "Python client → Python server",
        p50_us: p50,
        p99_us: p99,
        rate16: rate,
        rate256: None,
    });

    let base = &rows[0];
    let (b50, b16) = (base.p50_us, base.rate16);
    println!("\n## zerorpc echo calls, one run (loopback, 2 tokio workers)\n");
    println!("| pairing | p50 µs | p99 µs | calls/s @16 in flight | calls/s @256 | p50 vs Rust↔Rust | calls/s@16 vs Rust↔Rust |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {} | {:.1}× | {:.3}× |",
            r.name,
            r.p50_us,
            r.p99_us,
            r.rate16,
            r.rate256
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "–".into()),
            r.p50_us / b50,
            r.rate16 / b16
        );
    }
    drop(py_server);
}
