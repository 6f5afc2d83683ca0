//! The dashboard's optional panels: an event bus daemon's topics and lag,
//! and a stream runner's statistics file.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as J};

use super::{lock_any, TICK, WINDOW_SECS};

/// What else the dashboard shows, when asked to.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// An event bus daemon (its ingest address): messages/s per topic and
    /// its subscriptions' lag.
    pub bus: Option<String>,
    /// A stream runner's statistics file (`zerorpc stream run
    /// --stats-json FILE`): per-component rates, pending trees, failures.
    pub stream_stats: Option<std::path::PathBuf>,
}

/// The bus as last seen: its `info`, and the topics of recent messages.
#[derive(Default)]
pub(super) struct BusView {
    info: Option<zerorpc_bus::protocol::BusInfo>,
    error: Option<String>,
    /// (when, stored) of the two last `info`s: the store rate.
    stored: VecDeque<(std::time::Instant, u64)>,
    /// (when, topic) of the messages of the last window.
    topics: VecDeque<(std::time::Instant, String)>,
    /// When following the messages started (a young window is shorter).
    following_since: Option<std::time::Instant>,
}

/// Most topic entries kept for the window (beyond: rates are a floor).
const TOPICS_MAX: usize = 200_000;

/// Follows the bus: `info` every tick, and every message's topic.
pub(super) fn follow_bus(addr: String, view: Arc<Mutex<BusView>>) {
    let v = view.clone();
    let a = addr.clone();
    tokio::spawn(async move {
        loop {
            let r = async {
                let c = zerorpc::Client::connect(&a).await?;
                loop {
                    let info: zerorpc_bus::protocol::BusInfo =
                        zerorpc::from_value(c.call("info", vec![]).await?)?;
                    {
                        let mut b = lock_any(&v);
                        b.stored.push_back((std::time::Instant::now(), info.stored));
                        while b.stored.len() > 2 {
                            b.stored.pop_front();
                        }
                        b.info = Some(info);
                        b.error = None;
                    }
                    tokio::time::sleep(TICK).await;
                }
                #[allow(unreachable_code)]
                Ok::<(), zerorpc::Error>(())
            }
            .await;
            if let Err(e) = r {
                lock_any(&v).error = Some(format!("{a}: {e}"));
            }
            tokio::time::sleep(TICK).await;
        }
    });
    tokio::spawn(async move {
        use futures::StreamExt;
        loop {
            let r = async {
                let c = zerorpc::Client::connect(&addr).await?;
                let args = vec![0.into(), zerorpc::Value::Array(Vec::new())];
                let mut batches = Box::pin(c.call_stream("subscribe", args).await?);
                lock_any(&view).following_since = Some(std::time::Instant::now());
                while let Some(batch) = batches.next().await {
                    let batch = batch?;
                    let now = std::time::Instant::now();
                    let msgs = batch
                        .as_array()
                        .and_then(|b| b.get(1))
                        .and_then(|m| m.as_array());
                    let topics: Vec<String> = msgs
                        .into_iter()
                        .flatten()
                        .map(|m| {
                            m.as_array()
                                .and_then(|m| m.get(1))
                                .and_then(|e| e.as_str())
                                .and_then(|e| serde_json::from_str::<J>(e).ok())
                                .and_then(|e| e["topic"].as_str().map(str::to_owned))
                                .unwrap_or_else(|| "?".into())
                        })
                        .collect();
                    let mut b = lock_any(&view);
                    for topic in topics {
                        if b.topics.len() < TOPICS_MAX {
                            b.topics.push_back((now, topic));
                        }
                    }
                }
                Ok::<(), zerorpc::Error>(())
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(bus = %addr, error = %e, "dashboard: following the bus failed");
            }
            tokio::time::sleep(TICK).await;
        }
    });
}

/// The bus panel's data.
pub(super) fn bus_json(view: &Mutex<BusView>) -> J {
    let mut b = lock_any(view);
    let now = std::time::Instant::now();
    let window = Duration::from_secs(WINDOW_SECS);
    while b
        .topics
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) > window)
    {
        b.topics.pop_front();
    }
    let mut per: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (_, t) in &b.topics {
        *per.entry(t).or_default() += 1;
    }
    let secs = b
        .following_since
        .map_or(window, |t| now.duration_since(t).min(window))
        .as_secs_f64()
        .max(1.0);
    let topics: Vec<J> = per
        .into_iter()
        .map(|(t, n)| json!({"topic": t, "rate": n as f64 / secs}))
        .collect();
    let stored_per_s = match (b.stored.front(), b.stored.back()) {
        (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
            n1.saturating_sub(*n0) as f64 / t1.duration_since(*t0).as_secs_f64()
        }
        _ => 0.0,
    };
    match &b.info {
        Some(i) => json!({
            "error": b.error,
            "last_seq": i.last_seq, "stored_per_s": stored_per_s,
            "subscribers": i.subscribers, "duplicates": i.duplicates,
            "rejected": i.rejected.iter().map(|(_, n)| n).sum::<u64>(),
            "pub_dropped": i.pub_dropped,
            "topics": topics,
            "subscriptions": i.subscriptions.iter().map(|s| json!({
                "patterns": if s.patterns.is_empty() { "(all)".to_owned() } else { s.patterns.join(" ") },
                "position": s.position, "lag": s.lag,
            })).collect::<Vec<_>>(),
        }),
        None => json!({"error": b.error.clone().unwrap_or_else(|| "connecting…".into())}),
    }
}

/// The stream panel's data: the runner's statistics, with rates from the
/// previous reading.
pub(super) fn stream_json(
    path: &std::path::Path,
    prev: &mut Option<zerorpc_stream::RunStats>,
) -> J {
    let stats: zerorpc_stream::RunStats = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => return json!({"error": format!("{}: {e}", path.display())}),
    };
    let dt = prev
        .as_ref()
        .map(|p| stats.elapsed_secs - p.elapsed_secs)
        .filter(|d| *d > 0.0);
    let rate = |now: u64, before: Option<u64>| match (dt, before) {
        (Some(dt), Some(b)) => now.saturating_sub(b) as f64 / dt,
        _ => 0.0,
    };
    let components: Vec<J> = stats
        .components
        .iter()
        .map(|(id, c)| {
            let p = prev.as_ref().and_then(|p| p.components.get(id));
            json!({
                "id": id, "kind": c.kind, "tasks": c.tasks,
                "emitted_per_s": rate(c.emitted, p.map(|p| p.emitted)),
                "executed_per_s": rate(c.executed, p.map(|p| p.executed)),
                "acked": c.acked, "failed": c.failed, "pending": c.pending,
                "latency_ms": c.latency_ms, "p99_ms": c.latency_p99_ms,
                "errors": c.errors, "restarts": c.restarts,
            })
        })
        .collect();
    let out = json!({
        "topology": stats.topology,
        "elapsed_s": stats.elapsed_secs,
        "trees": {
            "started": stats.trees.started, "acked": stats.trees.acked,
            "failed": stats.trees.failed, "timed_out": stats.trees.timed_out,
            "pending": stats.trees.pending,
            "acked_per_s": rate(stats.trees.acked, prev.as_ref().map(|p| p.trees.acked)),
        },
        "components": components,
    });
    if dt.is_some() || prev.is_none() {
        *prev = Some(stats);
    }
    out
}
