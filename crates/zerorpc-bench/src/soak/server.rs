//! `zerorpc-bench soak-server`: the one process under soak. Hosts the demo
//! service, a hub with two demo workers, the HTTP gateway in front of the
//! service, a bus daemon and an in-process topology (a paced spout, split
//! and count bolts, acking on). Prints `ENDPOINTS {json}`, then a
//! `SAMPLE` line every [`EVERY`] (RSS KiB, open fds, alive tokio tasks,
//! CPU ticks, topology trees acked and failed, bus log file KiB); stops when
//! its stdin closes.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_stream::runner::{run, RunOptions};
use zerorpc_stream::{
    Bolt, BoltCollector, BoxError, MsgId, Outputs, Registry, Spout, SpoutCollector,
    TopologyBuilder, Tuple, Value,
};

/// How often the server reports a sample.
pub(super) const EVERY: Duration = Duration::from_secs(5);
/// Topology trees (sentences) per second.
pub(super) const TREES_PER_SEC: u32 = 1_000;
/// Recent bus messages the daemon keeps in memory (the default, 65,536,
/// takes most of an hour to fill at the soak's rate: a bounded cache
/// filling would read as a creep).
pub(super) const BUS_RECENT: usize = 2_048;

const LINES: &[&str] = &[
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
];

/// Emits [`TREES_PER_SEC`] tracked sentences a second; counts the trees
/// acked and failed.
struct Paced {
    every: Duration,
    next: Instant,
    n: u64,
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Spout for Paced {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["line"])
    }
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        let now = Instant::now();
        if now.duration_since(self.next) > Duration::from_secs(1) {
            self.next = now; // (far behind: do not burst to catch up)
        }
        while self.next <= now {
            self.n += 1;
            let line = LINES[(self.n % LINES.len() as u64) as usize];
            out.emit(vec![Value::String(line.into())], json!(self.n))?;
            self.next += self.every;
        }
        Ok(())
    }
    fn ack(&mut self, _: MsgId, _: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        self.acked.fetch_add(1, Relaxed);
        Ok(())
    }
    fn fail(&mut self, _: MsgId, _: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        self.failed.fetch_add(1, Relaxed);
        Ok(())
    }
}

struct Split;

impl Bolt for Split {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["word"])
    }
    fn process(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let line = t.values.first().and_then(Value::as_str).ok_or("no line")?;
        for w in line.split(' ') {
            out.emit(&[t], vec![Value::String(w.into())])?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Count(HashMap<String, u64>);

impl Bolt for Count {
    fn outputs(&self) -> Outputs {
        Outputs::none()
    }
    fn process(&mut self, t: &Tuple, _: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let w = t.values.first().and_then(Value::as_str).ok_or("no word")?;
        *self.0.entry(w.to_owned()).or_default() += 1;
        Ok(())
    }
}

/// This process's CPU time (user + system), in clock ticks (100 a second).
pub(super) fn cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// `args[0]`: the bus daemon's retention in seconds (`0` or absent: the
/// daemon's default, 7 days).
pub(crate) fn main(args: &[String]) {
    let retention = args
        .first()
        .and_then(|a| a.parse::<f64>().ok())
        .filter(|r| r.is_finite() && *r > 0.0)
        .map(Duration::from_secs_f64);
    crate::runtime().block_on(serve(retention));
    std::process::exit(0);
}

async fn serve(retention: Option<Duration>) {
    let (_server, rpc) = crate::demo_server(Default::default()).await;
    let (_hub, hub_in, _workers) = crate::start_hub(2).await;

    let http = crate::start_gateway(&rpc).await;

    let dir = std::env::temp_dir().join(format!("zerorpc-soak-bus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let defaults = DaemonOptions::ephemeral(&dir);
    let daemon = Daemon::start(DaemonOptions {
        recent: BUS_RECENT,
        retention: retention.or(defaults.retention),
        ..defaults
    })
    .await
    .expect("bus daemon");

    let log = dir.join(zerorpc_bus::store::FILE_NAME);
    let (acked, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (a, f) = (acked.clone(), failed.clone());
    let topology = TopologyBuilder::new("soak")
        .config("topology.max.spout.pending", 1_000)
        .spout("lines", 1, move || Paced {
            every: Duration::from_secs(1) / TREES_PER_SEC,
            next: Instant::now(),
            n: 0,
            acked: a.clone(),
            failed: f.clone(),
        })
        .bolt("split", 1, || Split)
        .shuffle("lines")
        .bolt("count", 1, Count::default)
        .fields("split", ["word"])
        .build();
    tokio::spawn(async move {
        if let Err(e) = run(topology, &Registry::new(), RunOptions::default()).await {
            eprintln!("soak-server: topology stopped: {e}");
        }
    });

    let endpoints = json!({
        "rpc": rpc,
        "hub": hub_in,
        "http": http.to_string(),
        "bus": daemon.ingest_endpoint(),
    });
    let mut out = std::io::stdout();
    if writeln!(out, "ENDPOINTS {endpoints}")
        .and_then(|_| out.flush())
        .is_err()
    {
        return;
    }
    let (closed, mut stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = closed.send(());
    });
    let mut tick = tokio::time::interval(EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
                let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
                let line = format!(
                    "SAMPLE {} {fds} {tasks} {} {} {} {}",
                    zerorpc_testkit::rss_kib(),
                    cpu_ticks(),
                    acked.load(Relaxed),
                    failed.load(Relaxed),
                    std::fs::metadata(&log).map_or(0, |m| m.len() / 1024),
                );
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
            _ = &mut stdin_closed => break,
        }
    }
    daemon.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
