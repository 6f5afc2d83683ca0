//! `zerorpc trace-collector` and `zerorpc trace show|tail|top`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::StreamExt;
use zerorpc::collector::{Collector, RedisStore};
use zerorpc::record::{render_line, render_top, render_tree, SLOT_SECS};
use zerorpc::record::{EmbeddedStore, MethodRow, Record};
use zerorpc::{Client, ClientOptions, Server, Value};

/// Where `zerorpc trace` asks a collector by default.
const QUERY: &str = "tcp://127.0.0.1:5556";
/// Where a collector receives records by default.
const RECORDS: &str = "tcp://127.0.0.1:5555";

/// Collect call records sent by services (over ZeroMQ) into Redis, or
/// into memory when no --redis is given; answer `zerorpc trace` queries
#[derive(Parser, Debug)]
#[command(name = "zerorpc trace-collector")]
pub struct CollectorArgs {
    /// Where services send their records (a PULL socket: their --records
    /// address)
    #[arg(long = "records", visible_alias = "bind", default_value = RECORDS, value_name = "ADDR")]
    pub bind: String,
    /// Where `zerorpc trace show|tail|top` ask (a zerorpc service: their
    /// --query address)
    #[arg(long, default_value = QUERY, value_name = "ADDR")]
    pub query: String,
    /// Redis URL (for example redis://127.0.0.1:6379/); without it records
    /// stay in this process's memory
    #[arg(long)]
    pub redis: Option<String>,
    /// Prefix of the Redis keys
    #[arg(long, default_value = "zerorpc")]
    pub prefix: String,
    /// Seconds a trace is kept after its last record
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// Without --redis: the most records kept in memory (past it, the
    /// traces that would expire first are dropped)
    #[arg(long, value_name = "N", conflicts_with = "redis",
          default_value_t = EmbeddedStore::DEFAULT_MAX_RECORDS)]
    pub max_records: usize,
    /// Also export every record as an OpenTelemetry span to this OTLP/gRPC
    /// endpoint (for example http://127.0.0.1:4317)
    #[arg(long, value_name = "URL")]
    pub otlp: Option<String>,
    /// Serve the live dashboard (rates, latency, call graph, live calls,
    /// traces) at http://HOST:PORT/
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// Dashboard: an event bus daemon to show (its ingest address, as
    /// `zerorpc bus ... --bus`): messages/s per topic, subscriptions' lag
    #[arg(long, value_name = "ADDR", requires = "http")]
    pub bus: Option<String>,
    /// Dashboard: a stream runner's statistics file to show (`zerorpc
    /// stream run --stats-json FILE`)
    #[arg(long, value_name = "FILE", requires = "http")]
    pub stream_stats: Option<std::path::PathBuf>,
}

/// Look at recorded traces
#[derive(Parser, Debug)]
#[command(name = "zerorpc trace")]
pub struct TraceArgs {
    #[command(subcommand)]
    pub cmd: TraceCmd,
}

/// What to look at.
#[derive(Subcommand, Debug)]
pub enum TraceCmd {
    /// Print a trace's call tree (service, method, duration, outcome)
    Show {
        /// The trace id (32 hex digits)
        trace_id: String,
        #[command(flatten)]
        from: From,
    },
    /// Follow records as the collector receives them
    Tail {
        /// The collector's query address (`trace-collector --query`; not
        /// its records port). Formerly --collector.
        #[arg(long = "query", alias = "collector", default_value = QUERY, value_name = "ADDR")]
        collector: String,
        /// Only records of this trace
        #[arg(long = "trace")]
        trace_id: Option<String>,
        /// Stop after this many records
        #[arg(long)]
        count: Option<u64>,
    },
    /// Per-method call rates, failures and p50/p99 latency, refreshing
    Top {
        #[command(flatten)]
        from: From,
        /// Seconds of history each table covers (10-second steps)
        #[arg(long, default_value_t = 60)]
        window: u64,
        /// Seconds between refreshes
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Print one table and exit
        #[arg(long)]
        once: bool,
    },
}

/// Where records are read from: the collector (the default), or the Redis
/// it stores into.
#[derive(clap::Args, Debug)]
pub struct From {
    /// The collector's query address (`trace-collector --query`; not its
    /// records port). Formerly --collector.
    #[arg(long = "query", alias = "collector", default_value = QUERY, value_name = "ADDR")]
    collector: String,
    /// Read Redis directly instead (for example redis://127.0.0.1:6379/)
    #[arg(long)]
    redis: Option<String>,
    /// Prefix of the Redis keys
    #[arg(long, default_value = "zerorpc")]
    prefix: String,
}

/// A connected source of records.
enum Source {
    Collector(Client),
    Redis(RedisStore),
}

impl Source {
    async fn open(from: &From) -> Result<Source, String> {
        match &from.redis {
            Some(url) => RedisStore::connect(url, &from.prefix, Duration::from_secs(1))
                .await
                .map(Source::Redis)
                .map_err(|e| format!("cannot reach {url}: {e}")),
            None => Ok(Source::Collector(collector_client(&from.collector).await?)),
        }
    }

    async fn trace(&self, id: &str) -> Result<Vec<Record>, String> {
        match self {
            Source::Redis(r) => r.trace(id).await.map_err(|e| e.to_string()),
            Source::Collector(c) => decode(c.call("trace", vec![id.into()]).await, &c.endpoints()),
        }
    }

    async fn stats(&self, since_us: u64, window: u64) -> Result<Vec<MethodRow>, String> {
        match self {
            Source::Redis(r) => r.stats(Some(since_us)).await.map_err(|e| e.to_string()),
            Source::Collector(c) => {
                decode(c.call("stats", vec![window.into()]).await, &c.endpoints())
            }
        }
    }
}

/// A client of the collector's query service. (Its calls give up after
/// 5 s: a collector that is not running gets no reply.)
async fn collector_client(addr: &str) -> Result<Client, String> {
    Client::connect_with(
        &[addr],
        ClientOptions::default().timeout(Duration::from_secs(5)),
    )
    .await
    .map_err(|e| format!("cannot reach the collector at {addr}: {e}"))
}

fn decode<T: serde::de::DeserializeOwned>(
    r: Result<Value, zerorpc::Error>,
    addr: &[String],
) -> Result<T, String> {
    let v = r.map_err(|e| collector_error(e, &addr.join(", ")))?;
    zerorpc::from_value(v).map_err(|e| format!("unreadable answer from the collector: {e}"))
}

pub async fn collector(args: CollectorArgs) -> ExitCode {
    let ttl = Duration::from_secs(args.ttl.max(1));
    let collector = match &args.redis {
        Some(url) => match RedisStore::connect(url, &args.prefix, ttl).await {
            Ok(store) => Collector::new(store),
            Err(e) => {
                eprintln!("zerorpc trace-collector: cannot reach {url}: {e}");
                return ExitCode::from(5);
            }
        },
        None => Collector::new(EmbeddedStore::new(ttl).max_records(args.max_records)),
    };
    let collector = match &args.otlp {
        None => collector,
        Some(url) => match zerorpc_otlp::OtlpSink::new(url) {
            Ok(sink) => collector.forward_to(zerorpc::record::Recorder::new(sink, 65_536)),
            Err(e) => {
                eprintln!("zerorpc trace-collector: --otlp {url}: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let queries = Arc::new(Server::new(collector.queries()));
    let bound = async {
        let records = collector
            .bind(&args.bind)
            .await
            .map_err(|e| (&args.bind, e))?;
        let query = queries
            .bind(&args.query)
            .await
            .map_err(|e| (&args.query, e))?;
        Ok::<_, (&String, zerorpc::Error)>((records, query))
    };
    match bound.await {
        Ok((records, query)) => eprintln!(
            "collecting records on {records} into {}{}; answering queries on {query}",
            args.redis.as_deref().unwrap_or("memory"),
            args.otlp
                .as_deref()
                .map(|u| format!(" and OTLP {u}"))
                .unwrap_or_default()
        ),
        Err((ep, e)) => {
            eprintln!("zerorpc trace-collector: cannot bind {ep}: {e}");
            return ExitCode::from(5);
        }
    }
    if let Some(addr) = &args.http {
        let extras = crate::dashboard::Extras {
            bus: args.bus.clone(),
            stream_stats: args.stream_stats.clone(),
        };
        match crate::dashboard::serve(addr, Arc::new(collector.queries()), extras).await {
            Ok(bound) => eprintln!("dashboard on http://{bound}/"),
            Err(e) => {
                eprintln!("zerorpc trace-collector: cannot serve the dashboard on {addr}: {e}");
                return ExitCode::from(5);
            }
        }
    }
    let q = queries.clone();
    tokio::spawn(async move { q.run().await });
    tokio::select! {
        r = collector.run() => match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                note!("zerorpc trace-collector: {e}");
                ExitCode::from(5)
            }
        },
        s = crate::server::wait_for_signal() => {
            note!("{s}: collector stopping");
            ExitCode::SUCCESS
        }
    }
}

pub async fn trace(args: TraceArgs) -> ExitCode {
    let r = match args.cmd {
        TraceCmd::Show { trace_id, from } => show(&trace_id, &from).await,
        TraceCmd::Tail {
            collector,
            trace_id,
            count,
        } => tail(&collector, trace_id.as_deref(), count).await,
        TraceCmd::Top {
            from,
            window,
            interval,
            once,
        } => top(&from, window, interval, once).await,
    };
    r.unwrap_or_else(|(code, e)| {
        eprintln!("zerorpc trace: {e}");
        ExitCode::from(code)
    })
}

type Failed = (u8, String);

async fn show(trace_id: &str, from: &From) -> Result<ExitCode, Failed> {
    let src = Source::open(from).await.map_err(|e| (5, e))?;
    let recs = src.trace(trace_id).await.map_err(|e| (5, e))?;
    if recs.is_empty() {
        return Err((1, format!("no trace {trace_id} (unknown, or expired)")));
    }
    print!("{}", render_tree(&recs));
    Ok(ExitCode::SUCCESS)
}

fn collector_error(e: zerorpc::Error, addr: &str) -> String {
    match e {
        zerorpc::Error::Timeout(_) => {
            format!("the collector did not answer at {addr} ({e}); is `zerorpc trace-collector` running, and is {addr} its --query address?")
        }
        zerorpc::Error::IncompatibleSocketType { reason } => {
            let records = reason.contains("PULL");
            format!(
                "{addr} is not a trace collector's query port ({reason}){}; give the collector's --query address with --query (default {QUERY})",
                if records {
                    ": it looks like its records port, where services send records (their --records)"
                } else {
                    ""
                }
            )
        }
        zerorpc::Error::Remote(r) if r.name == "NameError" => format!(
            "{addr} is a zerorpc service but not a trace collector ({}: {}); give the collector's --query address with --query",
            r.name, r.message
        ),
        e => format!("the collector at {addr}: {e}"),
    }
}

async fn tail(addr: &str, trace_id: Option<&str>, count: Option<u64>) -> Result<ExitCode, Failed> {
    let c = collector_client(addr).await.map_err(|e| (5, e))?;
    let mut live = c
        .call_stream("tail", vec![])
        .await
        .map_err(|e| (5, collector_error(e, addr)))?;
    eprintln!("following records from {addr}");
    let mut shown = 0;
    while count.is_none_or(|n| shown < n) {
        let Some(item) = live.next().await else {
            return Ok(ExitCode::SUCCESS);
        };
        let v = item.map_err(|e| (5, collector_error(e, addr)))?;
        if let Some(n) = skipped(&v) {
            eprintln!("... {n} records skipped (this terminal fell behind)");
            continue;
        }
        let r: Record = decode(Ok(v), &[]).map_err(|e| (5, e))?;
        if trace_id.is_some_and(|t| t != r.trace_id) {
            continue;
        }
        println!("{}", render_line(&r));
        shown += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// `{"skipped": n}`: what a lagging follower gets.
fn skipped(v: &Value) -> Option<u64> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some("skipped"))
        .and_then(|(_, n)| n.as_u64())
}

async fn top(from: &From, window: u64, interval: f64, once: bool) -> Result<ExitCode, Failed> {
    let window = window.max(SLOT_SECS);
    let src = Source::open(from).await.map_err(|e| (5, e))?;
    let tty = std::io::stdout().is_terminal();
    loop {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let since = now_us.saturating_sub(window * 1_000_000);
        // (slots are whole: the table covers from its first slot's start)
        let slot_us = SLOT_SECS * 1_000_000;
        let covered = (now_us - since / slot_us * slot_us) as f64 / 1e6;
        let rows = src.stats(since, window).await.map_err(|e| (5, e))?;
        if tty && !once {
            print!("\x1b[H\x1b[2J");
        }
        println!("last {covered:.0} s");
        print!("{}", render_top(&rows, covered));
        if once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs_f64(interval.max(0.1))).await;
    }
}
