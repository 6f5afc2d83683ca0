//! One snapshot of the live records: per method rates, errors and
//! quantiles, the call graph, the top offenders and the newest records.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value as J};
use zerorpc::record::{Outcome, Record, Side};

use super::{JOIN_SECS, WINDOW_SECS};

pub(super) fn end_us(r: &Record) -> u64 {
    r.start_us.saturating_add(r.duration_us)
}

pub(super) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn is_error(o: &Outcome) -> bool {
    !matches!(o, Outcome::Ok | Outcome::Stream { .. } | Outcome::Cancelled)
}

/// Calls, errors and durations of a group of records.
#[derive(Default)]
struct Agg {
    calls: u64,
    errors: u64,
    durations: Vec<u64>,
}

impl Agg {
    fn add(&mut self, r: &Record) {
        self.calls += 1;
        self.errors += u64::from(is_error(&r.outcome));
        self.durations.push(r.duration_us);
    }

    fn json(mut self, secs: f64) -> J {
        self.durations.sort_unstable();
        json!({
            "calls": self.calls,
            "rate": self.calls as f64 / secs,
            "err_rate": if self.calls == 0 { 0.0 } else { self.errors as f64 / self.calls as f64 },
            "p50_ms": quantile(&self.durations, 0.5),
            "p99_ms": quantile(&self.durations, 0.99),
        })
    }
}

/// One snapshot of the records in the window (and the fresh ones).
pub(super) fn snapshot(recent: &[Arc<Record>], fresh: &[Arc<Record>], skipped: u64, now: u64) -> J {
    let since = now.saturating_sub(WINDOW_SECS * 1_000_000);
    let window: Vec<&Record> = recent
        .iter()
        .map(|r| &**r)
        .filter(|r| end_us(r) >= since)
        .collect();
    // Server records by their span, and by the client span that reached
    // them: those of the window and a minute before it (a caller's handler
    // may have started long before its call ended).
    let joinable = now.saturating_sub((WINDOW_SECS + JOIN_SECS) * 1_000_000);
    let mut server_by_span: HashMap<&str, &Record> = HashMap::new();
    let mut server_by_parent: HashMap<&str, &Record> = HashMap::new();
    for r in recent
        .iter()
        .filter(|r| r.side == Side::Server && end_us(r) >= joinable)
    {
        server_by_span.insert(&r.span_id, r);
        if let Some(p) = &r.parent_id {
            server_by_parent.insert(p, r);
        }
    }
    let callee = |c: &Record| -> String {
        server_by_parent
            .get(c.span_id.as_str())
            .map_or_else(|| c.service.to_string(), |s| s.service.to_string())
    };
    let caller = |c: &Record| -> String {
        c.parent_id
            .as_deref()
            .and_then(|p| server_by_span.get(p))
            .map_or_else(
                || format!("client {}", c.process),
                |s| s.service.to_string(),
            )
    };
    let secs = WINDOW_SECS as f64;
    // Methods: their server side; a callee without server records (one
    // that records nothing) by its callers' records.
    let served: std::collections::HashSet<&str> = window
        .iter()
        .filter(|r| r.side == Side::Server)
        .map(|r| &*r.service)
        .collect();
    let mut methods: HashMap<(String, String, &str), Agg> = HashMap::new();
    let mut edges: HashMap<(String, String), Agg> = HashMap::new();
    for r in &window {
        match r.side {
            Side::Server => methods
                .entry((r.service.to_string(), r.method.clone(), "server"))
                .or_default()
                .add(r),
            Side::Client => {
                let to = callee(r);
                if !served.contains(to.as_str()) {
                    methods
                        .entry((to.clone(), r.method.clone(), "client"))
                        .or_default()
                        .add(r);
                }
                edges.entry((caller(r), to)).or_default().add(r);
            }
        }
    }
    let mut methods: Vec<J> = methods
        .into_iter()
        .map(|((service, method, side), a)| {
            let mut j = a.json(secs);
            j["service"] = service.into();
            j["method"] = method.into();
            j["side"] = side.into();
            j
        })
        .collect();
    methods.sort_by(|a, b| {
        (a["service"].as_str(), a["method"].as_str())
            .cmp(&(b["service"].as_str(), b["method"].as_str()))
    });
    let mut nodes: Vec<String> = Vec::new();
    let edges: Vec<J> = edges
        .into_iter()
        .map(|((from, to), a)| {
            for n in [&from, &to] {
                if !nodes.contains(n) {
                    nodes.push(n.clone());
                }
            }
            let mut j = a.json(secs);
            j["from"] = from.into();
            j["to"] = to.into();
            j
        })
        .collect();
    for s in served {
        if !nodes.iter().any(|n| n == s) {
            nodes.push(s.to_owned());
        }
    }
    nodes.sort();
    // Top offenders: time spent per second (rate × p50), and errors.
    let mut offenders: Vec<J> = methods
        .iter()
        .map(|m| {
            let rate = m["rate"].as_f64().unwrap_or(0.0);
            json!({
                "service": m["service"], "method": m["method"],
                "load_ms_per_s": rate * m["p50_ms"].as_f64().unwrap_or(0.0),
                "errors_per_s": rate * m["err_rate"].as_f64().unwrap_or(0.0),
                "p99_ms": m["p99_ms"],
            })
        })
        .collect();
    offenders.sort_by(|a, b| {
        let k = |j: &J| {
            (
                j["errors_per_s"].as_f64().unwrap_or(0.0),
                j["load_ms_per_s"].as_f64().unwrap_or(0.0),
            )
        };
        k(b).partial_cmp(&k(a)).unwrap_or(std::cmp::Ordering::Equal)
    });
    offenders.truncate(10);
    let tail: Vec<J> = fresh.iter().map(|r| tail_row(r)).collect();
    json!({
        "t_ms": now / 1000,
        "window_s": WINDOW_SECS,
        "kept": recent.len(),
        "skipped": skipped,
        "methods": methods,
        "nodes": nodes,
        "edges": edges,
        "offenders": offenders,
        "tail": tail,
    })
}

fn tail_row(r: &Record) -> J {
    let (outcome, error) = match &r.outcome {
        Outcome::Err { name, message } => ("ERR", Some(format!("{name}: {message}"))),
        o => (o.label(), None),
    };
    json!({
        "trace_id": r.trace_id, "span_id": r.span_id,
        "side": match r.side { Side::Client => "client", Side::Server => "server" },
        "service": r.service, "method": r.method, "peer": r.peer,
        "start_us": r.start_us, "duration_ms": r.duration_us as f64 / 1000.0,
        "outcome": outcome, "error": error,
    })
}
