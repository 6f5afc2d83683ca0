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

mod extras;
mod snapshot;

use std::collections::VecDeque;
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
use tokio::sync::{broadcast, watch};
use zerorpc::collector::CollectorQueries;
use zerorpc::record::Record;

pub use extras::Extras;
use extras::{bus_json, follow_bus, stream_json, BusView};
use snapshot::{end_us, now_us, snapshot};

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

fn lock_any<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    use zerorpc::record::{Outcome, Side};

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
