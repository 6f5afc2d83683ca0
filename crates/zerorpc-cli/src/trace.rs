//! `zerorpc trace-collector` and `zerorpc trace show`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use zerorpc::collector::{Collector, RedisStore};
use zerorpc::record::render_tree;
use zerorpc::EmbeddedStore;

/// Collect call records sent by services (over ZeroMQ) into Redis, or
/// into memory when no --redis is given
#[derive(Parser, Debug)]
#[command(name = "zerorpc trace-collector")]
pub struct CollectorArgs {
    /// Where services send their records (a PULL socket)
    #[arg(long, default_value = "tcp://127.0.0.1:5555")]
    pub bind: String,
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
        /// Redis URL the collector stores into
        #[arg(long, default_value = "redis://127.0.0.1:6379/")]
        redis: String,
        /// Prefix of the Redis keys
        #[arg(long, default_value = "zerorpc")]
        prefix: String,
    },
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
        None => Collector::new(EmbeddedStore::new(ttl)),
    };
    match collector.bind(&args.bind).await {
        Ok(ep) => eprintln!(
            "collecting records on {ep} into {}",
            args.redis.as_deref().unwrap_or("memory")
        ),
        Err(e) => {
            eprintln!("zerorpc trace-collector: cannot bind {}: {e}", args.bind);
            return ExitCode::from(5);
        }
    }
    tokio::select! {
        r = collector.run() => match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("zerorpc trace-collector: {e}");
                ExitCode::from(5)
            }
        },
        s = crate::server::wait_for_signal() => {
            eprintln!("{s}: collector stopping");
            ExitCode::SUCCESS
        }
    }
}

pub async fn trace(args: TraceArgs) -> ExitCode {
    match args.cmd {
        TraceCmd::Show {
            trace_id,
            redis,
            prefix,
        } => {
            let store = match RedisStore::connect(&redis, &prefix, Duration::from_secs(1)).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("zerorpc trace: cannot reach {redis}: {e}");
                    return ExitCode::from(5);
                }
            };
            match store.trace(&trace_id).await {
                Ok(recs) if recs.is_empty() => {
                    eprintln!("zerorpc trace: no trace {trace_id} (unknown, or expired)");
                    ExitCode::from(1)
                }
                Ok(recs) => {
                    print!("{}", render_tree(&recs));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("zerorpc trace: {e}");
                    ExitCode::from(5)
                }
            }
        }
    }
}
