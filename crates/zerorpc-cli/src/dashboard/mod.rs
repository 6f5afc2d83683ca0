//! The trace collector's live dashboard (`zerorpc trace-collector --http
//! HOST:PORT`): one page, its assets in this binary (no CDN, no build
//! step), fed by server-sent events.
//!
//! An aggregator follows the collector's live records and keeps the last
//! few minutes of them (bounded); every two seconds it computes one
//! snapshot — per method rate, error rate, p50/p99 over the last ten
//! seconds; the call graph (services as nodes, calls as edges with rate,
//! error share and p50); the top offenders; the records that arrived since
//! the last snapshot — and every open page gets it (`/api/live`). A click
//! on a call asks `/api/trace/ID` (the collector's store) for its trace.
//!
//! The call graph joins a client-side record to the server-side record it
//! reached (`parent_id` = the client's span) for the callee's name, and to
//! the handler that made it (the client's `parent_id`) for the caller's; a
//! callee that records nothing (a zerorpc-python service) is named by its
//! endpoint, a caller outside any handler by its process.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use serde_json::{json, Value as J};
use tokio::sync::{broadcast, watch};
use zerorpc::collector::CollectorQueries;
use zerorpc::record::{Outcome, Record, Side};

/// The page, with its script and style inline.
const PAGE: &str = include_str!("page.html");

/// Seconds of records kept for the graph and the charts' windows.
const KEEP_SECS: u64 = 300;
/// Most records kept (about five minutes at 1,000 records/s).
const KEEP_MAX: usize = 300_000;
/// The window rates and quantiles are computed over.
const WINDOW_SECS: u64 = 10;
/// How far before the window records are looked at to name a call's
/// caller and callee.
const JOIN_SECS: u64 = 60;
/// How often a snapshot is sent.
const TICK: Duration = Duration::from_secs(2);
/// Most records a snapshot carries for the live tail.
const TAIL_MAX: usize = 200;

/// Records kept, newest last, and those not yet sent to the pages.
#[derive(Default)]
struct Recent {
    records: VecDeque<Arc<Record>>,
    fresh: Vec<Arc<Record>>,
    skipped: u64,
}

impl Recent {
    fn push(&mut self, r: Arc<Record>) {
        if self.fresh.len() < TAIL_MAX {
            self.fresh.push(r.clone());
        }
        self.records.push_back(r);
        if self.records.len() > KEEP_MAX {
            self.records.pop_front();
        }
    }

    fn expire(&mut self, now_us: u64) {
        let horizon = now_us.saturating_sub(KEEP_SECS * 1_000_000);
        while self.records.front().is_some_and(|r| end_us(r) < horizon) {
            self.records.pop_front();
        }
    }
}

fn end_us(r: &Record) -> u64 {
    r.start_us.saturating_add(r.duration_us)
}

fn now_us() -> u64 {
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
fn snapshot(recent: &[Arc<Record>], fresh: &[Arc<Record>], skipped: u64, now: u64) -> J {
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
            .map_or_else(|| c.service.clone(), |s| s.service.clone())
    };
    let caller = |c: &Record| -> String {
        c.parent_id
            .as_deref()
            .and_then(|p| server_by_span.get(p))
            .map_or_else(|| format!("client {}", c.process), |s| s.service.clone())
    };
    let secs = WINDOW_SECS as f64;
    // Methods: their server side; a callee without server records (one
    // that records nothing) by its callers' records.
    let served: std::collections::HashSet<&str> = window
        .iter()
        .filter(|r| r.side == Side::Server)
        .map(|r| r.service.as_str())
        .collect();
    let mut methods: HashMap<(String, String, &str), Agg> = HashMap::new();
    let mut edges: HashMap<(String, String), Agg> = HashMap::new();
    for r in &window {
        match r.side {
            Side::Server => methods
                .entry((r.service.clone(), r.method.clone(), "server"))
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
struct BusView {
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
fn follow_bus(addr: String, view: Arc<Mutex<BusView>>) {
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

fn lock_any<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The bus panel's data.
fn bus_json(view: &Mutex<BusView>) -> J {
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
fn stream_json(path: &std::path::Path, prev: &mut Option<zerorpc_stream::RunStats>) -> J {
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

/// What the routes share.
#[derive(Clone)]
struct Dash {
    queries: Arc<CollectorQueries>,
    latest: watch::Receiver<Arc<String>>,
}

/// Serves the dashboard on `addr` until the process stops; returns the
/// bound address once listening.
pub async fn serve(
    addr: &str,
    queries: Arc<CollectorQueries>,
    extras: Extras,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let recent = Arc::new(Mutex::new(Recent::default()));
    let (tx, latest) = watch::channel(Arc::new(String::from("{}")));
    // Follow the live records.
    let mut live = queries.subscribe();
    let r = recent.clone();
    tokio::spawn(async move {
        loop {
            match live.recv().await {
                Ok(rec) => lock_any(&r).push(rec),
                Err(broadcast::error::RecvError::Lagged(n)) => lock_any(&r).skipped += n,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let bus = extras.bus.map(|a| {
        let view = Arc::new(Mutex::new(BusView::default()));
        follow_bus(a, view.clone());
        view
    });
    let stream_stats = extras.stream_stats;
    let mut stream_prev = None;
    // One snapshot per tick, for every page.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let now = now_us();
            let (records, fresh, skipped) = {
                let mut r = lock_any(&recent);
                r.expire(now);
                let fresh = std::mem::take(&mut r.fresh);
                (
                    r.records.iter().cloned().collect::<Vec<_>>(),
                    fresh,
                    r.skipped,
                )
            };
            // (computed off the async workers: a busy window is work)
            let bus = bus.as_ref().map(|b| bus_json(b));
            let stream = stream_stats
                .as_ref()
                .map(|p| stream_json(p, &mut stream_prev));
            let snap = tokio::task::spawn_blocking(move || {
                let mut j = snapshot(&records, &fresh, skipped, now);
                if let Some(b) = bus {
                    j["bus"] = b;
                }
                if let Some(s) = stream {
                    j["stream"] = s;
                }
                j.to_string()
            })
            .await;
            match snap {
                Ok(s) => {
                    if tx.send(Arc::new(s)).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dashboard snapshot failed"),
            }
        }
    });
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/snapshot", get(snapshot_now))
        .route("/api/live", get(live_events))
        .route("/api/trace/{id}", get(trace))
        .with_state(Dash { queries, latest });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the dashboard stopped");
        }
    });
    Ok(bound)
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn snapshot_now(State(d): State<Dash>) -> Response {
    let s = d.latest.borrow().clone();
    json_response(s.to_string())
}

async fn live_events(
    State(d): State<Dash>,
) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = d.latest;
    let stream = futures::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let s = rx.borrow_and_update().clone();
        Some((Ok(Event::default().data(s.as_str())), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn trace(State(d): State<Dash>, Path(id): Path<String>) -> Response {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (StatusCode::BAD_REQUEST, "a trace id is 32 hex digits").into_response();
    }
    // (typed, so the page reads serde's usual JSON of a record)
    let records = d.queries.trace(id).await.and_then(|v| {
        zerorpc::from_value::<Vec<Record>>(v)
            .map_err(|e| zerorpc::CallError::new("DecodeError", e.to_string()))
    });
    match records {
        Ok(recs) => json_response(serde_json::to_string(&recs).unwrap_or_else(|_| "[]".into())),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {}", e.name, e.message),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        span: &str,
        parent: Option<&str>,
        side: Side,
        service: &str,
        method: &str,
    ) -> Arc<Record> {
        Arc::new(Record {
            trace_id: "t".repeat(32),
            span_id: span.into(),
            parent_id: parent.map(Into::into),
            side,
            service: service.into(),
            method: method.into(),
            peer: "p".into(),
            process: "cli[1]".into(),
            host: "h".into(),
            start_us: now_us() - 1_000,
            duration_us: 500,
            outcome: Outcome::Ok,
            user: None,
            payload: None,
            traceback: None,
        })
    }

    #[test]
    fn the_graph_names_callers_and_callees_through_their_spans() {
        let recs = vec![
            // a client calls A.relay, whose handler calls B.work, which
            // calls an unrecorded service at tcp://py:1
            rec("c1", None, Side::Client, "tcp://a:1", "relay"),
            rec("s1", Some("c1"), Side::Server, "A", "relay"),
            rec("c2", Some("s1"), Side::Client, "tcp://b:1", "work"),
            rec("s2", Some("c2"), Side::Server, "B", "work"),
            rec("c3", Some("s2"), Side::Client, "tcp://py:1", "add"),
        ];
        let j = snapshot(&recs, &recs, 0, now_us());
        let mut edges: Vec<(String, String)> = j["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["from"].as_str().unwrap().into(),
                    e["to"].as_str().unwrap().into(),
                )
            })
            .collect();
        edges.sort();
        assert_eq!(
            edges,
            [
                ("A".into(), "B".into()),
                ("B".into(), "tcp://py:1".into()),
                ("client cli[1]".into(), "A".into()),
            ]
        );
        let methods: Vec<(String, String)> = j["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["service"].as_str().unwrap().into(),
                    m["side"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            methods,
            [
                ("A".into(), "server".into()),
                ("B".into(), "server".into()),
                ("tcp://py:1".into(), "client".into()),
            ]
        );
        assert_eq!(j["tail"].as_array().unwrap().len(), 5);
        assert_eq!(j["methods"][0]["rate"].as_f64(), Some(0.1));
    }
}
