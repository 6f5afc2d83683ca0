//! `zerorpc-bench soak [--minutes M] [--bus-retention R] [--out DIR]`: M
//! minutes (default 30) of mixed load against one server process, sampled
//! every few seconds; the bus daemon keeps R minutes of messages (default
//! 5, `0`: every message, the daemon's default of 7 days).
//!
//! The server is this binary re-run as `zerorpc-bench soak-server` (see
//! [`server`]): the demo service, a hub with two workers, the HTTP gateway,
//! a bus daemon and a running topology. This process drives the load (see
//! [`load::RATES`]: calls, streams, abandoned calls and streams,
//! reconnects, hub, gateway and bus traffic, hostile clients), takes the
//! server's samples (RSS, open fds, tokio tasks, CPU) and adds its own
//! (latency of the quick calls, errors per kind) for each window. Writes
//! `DIR/soak-<date>.md` (figures, slopes after warm-up), `.svg` (plot) and
//! `.csv` (samples); DIR defaults to the workspace's `bench-results/`.
//! Not a test: nothing is asserted.

mod load;
mod report;
mod server;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::AsyncBufReadExt;

pub(crate) use server::main as server_main;

/// Where the server listens, as it printed.
#[derive(Clone, serde::Deserialize)]
struct Endpoints {
    rpc: String,
    hub: String,
    http: String,
    bus: String,
}

/// Outcomes of one kind of load. Kinds named `hostile…` are hostile
/// traffic: their `err` is a connection (or handshake) that failed.
#[derive(Default, Clone)]
struct Kind {
    ok: u64,
    err: u64,
    first_err: Option<String>,
    /// Hostile connections the server closed, left open until we hung up,
    /// and that we hung up at once.
    closed: u64,
    open: u64,
    gone: u64,
}

fn is_hostile(kind: &str) -> bool {
    kind.starts_with("hostile")
}

/// What the load tasks report to.
struct Tally {
    window: Mutex<Histogram<u64>>,
    kinds: Mutex<BTreeMap<&'static str, Kind>>,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")
}

impl Tally {
    fn kind(&self, kind: &'static str, f: impl FnOnce(&mut Kind)) {
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        f(kinds.entry(kind).or_default());
    }
    fn latency(&self, d: Duration) {
        let mut h = self.window.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(d.as_micros() as u64);
    }
    fn outcome<T, E: std::fmt::Display>(&self, kind: &'static str, r: Result<T, E>) {
        match r {
            Ok(_) => self.ok(kind),
            Err(e) => self.err(kind, e),
        }
    }
    fn ok(&self, kind: &'static str) {
        self.kind(kind, |k| k.ok += 1);
    }
    fn err(&self, kind: &'static str, e: impl std::fmt::Display) {
        self.kind(kind, |k| {
            k.err += 1;
            k.first_err
                .get_or_insert_with(|| e.to_string().chars().take(200).collect());
        });
    }
    /// A hostile connection: `Some(closed by the server)`, or `None`
    /// when we hung up at once.
    fn hostile(&self, kind: &'static str, closed: Option<bool>) {
        self.kind(kind, |k| match closed {
            Some(true) => k.closed += 1,
            Some(false) => k.open += 1,
            None => k.gone += 1,
        });
    }
    fn take_window(&self) -> Histogram<u64> {
        let mut h = self.window.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *h, hist())
    }
    /// (errors of the well-behaved load, hostile connections) so far.
    fn totals(&self) -> (u64, u64) {
        let kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        kinds.iter().fold((0, 0), |(e, h), (name, k)| {
            if is_hostile(name) {
                (e, h + k.closed + k.open + k.gone + k.err)
            } else {
                (e + k.err, h)
            }
        })
    }
}

/// One sampling window.
struct Sample {
    /// Minutes since the load started (the window's end), and the minute
    /// of the run the window counts in (by its middle).
    t_min: f64,
    minute: usize,
    rss_kib: u64,
    fds: u64,
    tasks: u64,
    /// CPU over the window, % of one core: the server, and this process.
    server_cpu: f64,
    load_cpu: f64,
    calls: u64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    /// In the window: well-behaved errors, hostile connections.
    errors: u64,
    hostile: u64,
    /// Since the start: topology trees acked and failed.
    trees_acked: u64,
    trees_failed: u64,
    /// The bus daemon's log file (every message is kept).
    bus_log_kib: u64,
}

struct Run {
    minutes: f64,
    /// The bus daemon's retention in minutes (`None`: 7 days).
    bus_retention_min: Option<f64>,
    samples: Vec<Sample>,
    /// Quick-call latency (µs) and errors per minute of the run.
    per_minute: Vec<(Histogram<u64>, u64)>,
    kinds: BTreeMap<&'static str, Kind>,
    ended_early: Option<String>,
}

pub(crate) fn main(args: &[String]) {
    let mut minutes = 30.0;
    let mut retention = Some(5.0);
    let mut out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-results");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--minutes", Some(m)) if m.parse::<f64>().is_ok_and(|m| m > 0.0) => {
                minutes = m.parse().unwrap_or(minutes)
            }
            ("--bus-retention", Some(r)) if r.parse::<f64>().is_ok_and(|r| r >= 0.0) => {
                retention = r.parse().ok().filter(|r: &f64| *r > 0.0)
            }
            ("--out", Some(d)) => out = d.into(),
            _ => {
                eprintln!(
                    "usage: zerorpc-bench soak [--minutes M] [--bus-retention R] [--out DIR]"
                );
                std::process::exit(2);
            }
        }
    }
    let rt = crate::runtime();
    let run = rt.block_on(drive(minutes, retention));
    match report::write(&run, &out) {
        Ok(paths) => {
            for p in paths {
                eprintln!("wrote {}", p.display());
            }
        }
        Err(e) => eprintln!("soak: writing the report failed: {e}"),
    }
    rt.shutdown_timeout(Duration::from_secs(1));
}

async fn drive(minutes: f64, bus_retention_min: Option<f64>) -> Run {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = tokio::process::Command::new(exe)
        .arg("soak-server")
        .arg(bus_retention_min.map_or(0.0, |r| r * 60.0).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start soak-server");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ep: Endpoints = loop {
        let line = lines.next_line().await.ok().flatten();
        let line = line.expect("soak-server exited before printing its endpoints");
        if let Some(j) = line.strip_prefix("ENDPOINTS ") {
            break serde_json::from_str(j).expect("endpoints");
        }
    };
    eprintln!(
        "soak: {minutes} min of mixed load against soak-server (pid {:?})",
        child.id()
    );
    let tally = Arc::new(Tally {
        window: Mutex::new(hist()),
        kinds: Mutex::default(),
    });
    let tasks = load::start(&ep, &tally).await;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(minutes * 60.0);
    let mut run = Run {
        minutes,
        bus_retention_min,
        samples: Vec::new(),
        per_minute: Vec::new(),
        kinds: BTreeMap::new(),
        ended_early: None,
    };
    let mut last = (0.0, server::cpu_ticks(), None::<u64>, 0, 0);
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l,
            _ = tokio::time::sleep_until(end.into()) => break,
        };
        let line = match line {
            Ok(Some(l)) => l,
            Ok(None) | Err(_) => {
                let status = child.try_wait().ok().flatten();
                run.ended_early = Some(format!("the server process ended early ({status:?})"));
                break;
            }
        };
        let Some(fields) = line.strip_prefix("SAMPLE ") else {
            continue;
        };
        let f: Vec<u64> = fields
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [rss_kib, fds, tasks, cpu, trees_acked, trees_failed, bus_log_kib] = f[..] else {
            continue;
        };
        let t = t0.elapsed().as_secs_f64();
        let dt = (t - last.0).max(1e-3);
        let h = tally.take_window();
        let (errors, hostile) = tally.totals();
        let load_cpu = server::cpu_ticks();
        let q = |q: f64| {
            if h.is_empty() {
                f64::NAN
            } else {
                h.value_at_quantile(q) as f64
            }
        };
        let minute = ((t - dt / 2.0) / 60.0).max(0.0) as usize;
        while run.per_minute.len() <= minute {
            run.per_minute.push((hist(), 0));
        }
        run.per_minute[minute].0.add(&h).ok();
        run.per_minute[minute].1 += errors - last.3;
        let s = Sample {
            t_min: t / 60.0,
            minute,
            rss_kib,
            fds,
            tasks,
            // (clock ticks are 1/100 s: ticks per second = % of a core)
            server_cpu: last
                .2
                .map_or(f64::NAN, |c| cpu.saturating_sub(c) as f64 / dt),
            load_cpu: load_cpu.saturating_sub(last.1) as f64 / dt,
            calls: h.len(),
            p50_us: q(0.5),
            p99_us: q(0.99),
            max_us: if h.is_empty() {
                f64::NAN
            } else {
                h.max() as f64
            },
            errors: errors - last.3,
            hostile: hostile - last.4,
            trees_acked,
            trees_failed,
            bus_log_kib,
        };
        eprintln!(
            "[{:5.1} min] RSS {:6.1} MiB, {fds} fds, {tasks} tasks, CPU server {:3.0}% load {:3.0}%, {} calls p50 {:.0} µs p99 {:.0} µs, {} errors",
            s.t_min, rss_kib as f64 / 1024.0, s.server_cpu, s.load_cpu, s.calls, s.p50_us, s.p99_us, s.errors
        );
        last = (t, load_cpu, Some(cpu), errors, hostile);
        run.samples.push(s);
    }
    for t in &tasks {
        t.abort();
    }
    // (counted before the server stops: calls still in flight then are
    // not errors)
    run.kinds = tally
        .kinds
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    drop(child.stdin.take());
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    run
}
