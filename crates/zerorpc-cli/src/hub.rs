//! `zerorpc hub CONFIG.yml`: the load-balancing hub, configured like
//! dotCloud's zerohub (`in`, `out`, `type: queue`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use zerorpc::hub::{Hub, HubOptions};

/// Run a load-balancing hub: clients connect to `in`, workers (servers
/// started with --connect) to `out`
#[derive(Parser, Debug)]
#[command(
    name = "zerorpc hub",
    after_help = "Config (YAML, the keys of dotCloud's zerohub):\n  in: \"tcp://*:1111\"     # clients connect here\n  out: \"tcp://*:2222\"    # workers connect here (zerorpc --server --connect ...)\n  type: queue            # the only type\n  heartbeat: 5           # optional, seconds (as the clients and workers use)\n  max_pending: 10000     # optional, calls held while no worker is available\n\nStatistics: call _zerorpc_hub_stats on the in side, e.g.\n  zerorpc tcp://127.0.0.1:1111 _zerorpc_hub_stats"
)]
pub struct HubArgs {
    /// The hub's YAML configuration
    pub config: PathBuf,
    /// Seconds between statistics lines on stderr (0: none)
    #[arg(long, default_value_t = 10.0)]
    pub stats_interval: f64,
}

/// The configuration file.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Where clients connect.
    #[serde(rename = "in")]
    pub input: String,
    /// Where workers connect.
    pub out: String,
    /// The hub type: only `queue`.
    #[serde(rename = "type", default = "queue")]
    pub kind: String,
    /// Heartbeat interval, seconds.
    #[serde(default)]
    pub heartbeat: Option<f64>,
    /// Calls held while no worker is available.
    #[serde(default)]
    pub max_pending: Option<usize>,
}

fn queue() -> String {
    "queue".into()
}

/// Reads and checks a configuration; the error says what is wrong where.
pub fn load(path: &Path) -> Result<HubConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses and checks a configuration's text.
pub fn parse(text: &str) -> Result<HubConfig, String> {
    let cfg: HubConfig = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    if cfg.kind != "queue" {
        return Err(format!(
            "type {:?} is not supported (the only hub type is \"queue\")",
            cfg.kind
        ));
    }
    for (key, ep) in [("in", &cfg.input), ("out", &cfg.out)] {
        ep.parse::<zerorpc::zmtp::Endpoint>()
            .map_err(|e| format!("{key}: {e}"))?;
    }
    if cfg.input == cfg.out {
        return Err("in and out must be different endpoints".into());
    }
    match cfg.heartbeat {
        Some(h) if !(h.is_finite() && h > 0.0) => {
            return Err(format!(
                "heartbeat must be a positive number of seconds, got {h}"
            ))
        }
        _ => {}
    }
    if cfg.max_pending == Some(0) {
        return Err("max_pending must be at least 1".into());
    }
    Ok(cfg)
}

pub async fn run(args: HubArgs) -> ExitCode {
    let cfg = match load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zerorpc hub: {e}");
            return ExitCode::from(2);
        }
    };
    let mut opts = HubOptions::default();
    if let Some(h) = cfg.heartbeat {
        opts.heartbeat = Duration::from_secs_f64(h);
    }
    if let Some(n) = cfg.max_pending {
        opts.max_pending = n;
    }
    let hub = Arc::new(Hub::new(opts));
    let input = match hub.bind_in(&cfg.input).await {
        Ok(ep) => ep,
        Err(e) => {
            eprintln!("zerorpc hub: cannot bind in ({}): {e}", cfg.input);
            return ExitCode::from(5);
        }
    };
    let output = match hub.bind_out(&cfg.out).await {
        Ok(ep) => ep,
        Err(e) => {
            eprintln!("zerorpc hub: cannot bind out ({}): {e}", cfg.out);
            return ExitCode::from(5);
        }
    };
    eprintln!("hub: clients connect to {input}, workers to {output}");
    let h = hub.clone();
    let mut routing = tokio::spawn(async move { h.run().await });
    let every = Duration::from_secs_f64(args.stats_interval.max(0.0));
    let mut ticker = tokio::time::interval(if every.is_zero() {
        Duration::from_secs(3600)
    } else {
        every
    });
    ticker.tick().await;
    // (made once: a signal is never missed between two ticks)
    let signal = crate::server::wait_for_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            r = &mut routing => {
                return match r {
                    Ok(Ok(())) => ExitCode::SUCCESS,
                    Ok(Err(e)) => {
                        note!("zerorpc hub: {e}");
                        ExitCode::from(5)
                    }
                    Err(e) => {
                        note!("zerorpc hub: {e}");
                        ExitCode::from(5)
                    }
                };
            }
            _ = ticker.tick(), if !every.is_zero() => {
                let s = hub.stats();
                let alive = s.workers.iter().filter(|w| w.3).count();
                // (never waits: an unread stderr must not stop the hub)
                crate::status_line(&format!(
                    "hub: {alive} workers ({} known), {} in flight, {} waiting, {} completed, {} failed, {:.0} calls/s",
                    s.workers.len(), s.in_flight, s.pending, s.completed, s.failed, s.calls_per_sec
                ));
            }
            signal = &mut signal => {
                note!("{signal}: hub stopping");
                hub.shutdown();
                return ExitCode::SUCCESS;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn zerohub_configs_parse_and_bad_ones_say_why() {
        let c = parse("in: \"tcp://*:1111\"\nout: \"tcp://*:2222\"\ntype: queue\n").unwrap();
        assert_eq!(
            (c.input.as_str(), c.out.as_str()),
            ("tcp://*:1111", "tcp://*:2222")
        );
        let c = parse("in: tcp://127.0.0.1:1\nout: tcp://127.0.0.1:2\nheartbeat: 0.5\n").unwrap();
        assert_eq!(c.heartbeat, Some(0.5));
        for (text, why) in [
            ("out: tcp://*:2\n", "missing field `in`"),
            ("in: tcp://*:1\n", "missing field `out`"),
            (
                "in: tcp://*:1\nout: tcp://*:2\ntype: pubsub\n",
                "only hub type",
            ),
            (
                "in: tcp://*:1\nout: tcp://*:2\nbogus: 1\n",
                "unknown field `bogus`",
            ),
            ("in: tcp://*:1\nout: tcp://*:1\n", "different"),
            ("in: udp://x:1\nout: tcp://*:2\n", "in:"),
            ("in: tcp://*:1\nout: tcp://*:2\nheartbeat: -1\n", "positive"),
            ("- just\n- a list\n", "invalid type"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
