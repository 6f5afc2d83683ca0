//! `zerorpc bench`: a load generator against any ZeroRPC server.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use hdrhistogram::Histogram;
use zerorpc::{Client, ClientOptions, Error, Value};

use crate::literal::{parse_arg, parse_json_arg};

/// Load-test a ZeroRPC server: many calls in flight, latency histogram.
#[derive(Parser, Debug)]
#[command(
    name = "zerorpc bench",
    after_help = "Examples:\n  zerorpc bench --connect tcp://127.0.0.1:4242 --method echo hello\n  zerorpc bench --connect tcp://127.0.0.1:4242 --method add --concurrency 256 --duration 10 1 2\n  zerorpc bench --connect tcp://127.0.0.1:4242 --method range --stream --calls 100 1000 --json"
)]
pub struct BenchArgs {
    /// Server address (repeatable: calls spread over them).
    #[arg(long = "connect", value_name = "ADDR", required = true)]
    pub connect: Vec<String>,
    /// Method to call.
    #[arg(long)]
    pub method: String,
    /// Arguments (literals, like the main command).
    #[arg(allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Parse arguments as JSON.
    #[arg(short = 'j', long = "json-args")]
    pub json_args: bool,
    /// Total calls (default 10000 unless --duration).
    #[arg(long, conflicts_with = "duration")]
    pub calls: Option<u64>,
    /// Run for this many seconds instead.
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Calls in flight at once.
    #[arg(long, short = 'c', default_value_t = 16)]
    pub concurrency: usize,
    /// The method streams: consume every item of each call.
    #[arg(long)]
    pub stream: bool,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for a first reply.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Heartbeat interval in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub heartbeat: f64,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    items: AtomicU64,
    remote: AtomicU64,
    timeout: AtomicU64,
    lost: AtomicU64,
    other: AtomicU64,
}

impl Counters {
    fn errors(&self) -> u64 {
        self.remote.load(Ordering::Relaxed)
            + self.timeout.load(Ordering::Relaxed)
            + self.lost.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
    }

    fn count_error(&self, e: &Error) {
        let c = match e {
            Error::Remote(_) => &self.remote,
            Error::Timeout(_) => &self.timeout,
            Error::LostRemote(_) | Error::Disconnected => &self.lost,
            _ => &self.other,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

async fn one_call(
    client: &Client,
    method: &str,
    args: Vec<Value>,
    stream: bool,
    counters: &Counters,
) -> Result<(), Error> {
    if stream {
        let mut s = Box::pin(client.call_stream(method, args).await?);
        while let Some(item) = s.next().await {
            item?;
            counters.items.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    } else {
        client.call(method, args).await.map(|_| ())
    }
}

pub async fn run(b: BenchArgs) -> ExitCode {
    let mut args = Vec::new();
    for a in &b.args {
        if b.json_args {
            match parse_json_arg(a) {
                Ok(v) => args.push(v),
                Err(e) => {
                    eprintln!("zerorpc bench: {e}");
                    return ExitCode::from(2);
                }
            }
        } else {
            args.push(parse_arg(a));
        }
    }
    let opts = ClientOptions::default()
        .timeout(Duration::from_secs_f64(b.timeout.max(0.001)))
        .heartbeat(Duration::from_secs_f64(b.heartbeat.max(0.01)));
    let eps: Vec<&str> = b.connect.iter().map(String::as_str).collect();
    let client = match Client::connect_with(&eps, opts).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zerorpc bench: {e}");
            return ExitCode::from(5);
        }
    };
    let total = match (b.calls, b.duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(10_000),
    };
    let deadline = b
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let budget = Arc::new(AtomicU64::new(total.unwrap_or(u64::MAX)));
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let concurrency = b.concurrency.max(1);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, args, budget, counters) = (
                client.clone(),
                args.clone(),
                budget.clone(),
                counters.clone(),
            );
            let (method, stream) = (b.method.clone(), b.stream);
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok();
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    if budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_err()
                    {
                        break;
                    }
                    let t = Instant::now();
                    match one_call(&client, &method, args.clone(), stream, &counters).await {
                        Ok(()) => {
                            if let Some(h) = h.as_mut() {
                                let _ = h.record((t.elapsed().as_micros() as u64).max(1));
                            }
                        }
                        Err(e) => counters.count_error(&e),
                    }
                    counters.calls.fetch_add(1, Ordering::Relaxed);
                }
                h
            })
        })
        .collect();

    // A live progress line on a terminal.
    let progress = std::io::stderr().is_terminal().then(|| {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = counters.calls.load(Ordering::Relaxed);
                eprint!(
                    "\r{n} calls  {}/s  errors {}   ",
                    n - last,
                    counters.errors()
                );
                last = n;
            }
        })
    });

    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok();
    for w in workers {
        if let (Ok(Some(h)), Some(all)) = (w.await, hist.as_mut()) {
            let _ = all.add(h);
        }
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    let calls = counters.calls.load(Ordering::Relaxed);
    let items = counters.items.load(Ordering::Relaxed);
    let q = |p: f64| hist.as_ref().map(|h| h.value_at_quantile(p)).unwrap_or(0);
    let max = hist.as_ref().map(|h| h.max()).unwrap_or(0);
    if b.json {
        let out = serde_json::json!({
            "method": b.method,
            "concurrency": concurrency,
            "seconds": secs,
            "calls": calls,
            "calls_per_sec": calls as f64 / secs,
            "items": items,
            "items_per_sec": items as f64 / secs,
            "latency_us": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": max},
            "errors": {
                "remote": counters.remote.load(Ordering::Relaxed),
                "timeout": counters.timeout.load(Ordering::Relaxed),
                "lost_remote": counters.lost.load(Ordering::Relaxed),
                "other": counters.other.load(Ordering::Relaxed),
            },
        });
        println!("{out}");
    } else {
        println!(
            "{calls} calls of {}() in {secs:.2}s with {concurrency} in flight",
            b.method
        );
        println!("  calls/s   {:.0}", calls as f64 / secs);
        if b.stream {
            println!("  items/s   {:.0} ({items} items)", items as f64 / secs);
        }
        println!(
            "  latency   p50 {}µs  p90 {}µs  p99 {}µs  max {}µs",
            q(0.5),
            q(0.9),
            q(0.99),
            max
        );
        println!(
            "  errors    remote {}  timeout {}  lost remote {}  other {}",
            counters.remote.load(Ordering::Relaxed),
            counters.timeout.load(Ordering::Relaxed),
            counters.lost.load(Ordering::Relaxed),
            counters.other.load(Ordering::Relaxed)
        );
    }
    if counters.errors() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
