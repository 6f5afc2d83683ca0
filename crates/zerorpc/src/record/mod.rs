//! Call records: one per call side (client and server), with the trace
//! and span ids that link them into a tree, sent in batches to a sink
//! without ever blocking a call.
//!
//! A [`Recorder`] holds a bounded queue: `record` never waits, and a full
//! queue (or a failing sink) drops records and counts them
//! ([`Recorder::dropped`]). A background task takes batches and hands
//! them to a [`TraceSink`]. [`EmbeddedStore`] is the sink that needs
//! nothing else: per-trace lists that expire after a TTL, per-method
//! counters and latency samples, kept in memory.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::trace::{hex, TraceContext};

/// Which end of the call a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// The caller.
    Client,
    /// The callee.
    Server,
}

/// How a call ended, seen from one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A reply.
    Ok,
    /// A remote error (or an error raised by the handler).
    Err {
        /// Error name (`ValueError`, ...).
        name: String,
        /// Its message.
        message: String,
    },
    /// A stream that ended normally after `items` items.
    Stream {
        /// Items sent or received.
        items: u64,
    },
    /// The other side went silent, or its connection dropped.
    Lost,
    /// No reply within the timeout.
    Timeout,
    /// Abandoned (the caller dropped the call, the server stopped).
    Cancelled,
}

impl Outcome {
    /// A short label for counters: `OK`, `ERR`, `STREAM`, `LOST`,
    /// `TIMEOUT`, `CANCELLED`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "OK",
            Outcome::Err { .. } => "ERR",
            Outcome::Stream { .. } => "STREAM",
            Outcome::Lost => "LOST",
            Outcome::Timeout => "TIMEOUT",
            Outcome::Cancelled => "CANCELLED",
        }
    }
}

impl std::fmt::Display for Outcome {
    /// `OK`, `ERR name: message`, `STREAM n items`, `LOST`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Err { name, message } => write!(f, "ERR {name}: {message}"),
            Outcome::Stream { items } => write!(f, "STREAM {items} items"),
            other => f.write_str(other.label()),
        }
    }
}

/// One side of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The span this one was started from (for a server side: the
    /// client's span; for a call made inside a handler: that handler's).
    pub parent_id: Option<String>,
    /// Client or server.
    pub side: Side,
    /// The service (server side: its name; client side: the endpoint).
    pub service: String,
    /// The method called.
    pub method: String,
    /// The other end (client side: the endpoint; server side: the
    /// caller's routing id).
    pub peer: String,
    /// This process (`name[pid]`).
    pub process: String,
    /// This host.
    pub host: String,
    /// Start, microseconds since the Unix epoch.
    pub start_us: u64,
    /// Duration in microseconds.
    pub duration_us: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Server side: the caller's authenticated user id (CURVE), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Client side, when the client records payloads
    /// ([`crate::ClientOptions::record_payloads`]): the call's arguments
    /// and result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<Payload>>,
    /// A failed call's remote traceback (either side), when there was one
    /// (at most [`MAX_TRACEBACK`] bytes, the end kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// The longest traceback a record keeps (its last lines: where it failed).
pub const MAX_TRACEBACK: usize = 8 * 1024;

/// A call's arguments and result (`None` for a call that failed), as a
/// client that records payloads saw them: what `zerorpc contract record`
/// turns into a contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The arguments, by position.
    pub args: Vec<rmpv::Value>,
    /// The result (a stream's items collected), if the call succeeded.
    pub result: Option<rmpv::Value>,
}

impl Payload {
    /// Most encoded bytes the arguments, and the result, may each have to
    /// be recorded (a bigger call is recorded without its payload).
    pub const MAX_BYTES: usize = 64 * 1024;

    /// The bytes `v` takes encoded.
    pub fn size_of(v: &rmpv::Value) -> usize {
        let mut n = Counter(0);
        let _ = rmpv::encode::write_value(&mut n, v);
        n.0
    }

    /// The payload, unless its arguments or result are too big to keep.
    pub fn capped(args: Vec<rmpv::Value>, result: Option<rmpv::Value>) -> Option<Box<Payload>> {
        let size = Payload::size_of;
        let args_size: usize = args.iter().map(size).sum();
        if args_size > Self::MAX_BYTES || result.as_ref().map_or(0, size) > Self::MAX_BYTES {
            return None;
        }
        Some(Box::new(Payload { args, result }))
    }
}

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The other end of a span, as cheap to keep as possible (turned into
/// text off the call path).
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    /// A client's endpoint (shared by its calls).
    Endpoint(Arc<str>),
    /// A server's caller: its routing id.
    RoutingId(bytes::Bytes),
}

/// A span being timed; becomes a [`Record`] when it ends. Holds no text
/// it does not need: ids stay binary and names shared until the
/// recorder's task builds the record.
#[derive(Debug)]
pub(crate) struct Span {
    ctx: TraceContext,
    side: Side,
    service: Arc<str>,
    method: String,
    peer: Peer,
    start_wall: SystemTime,
    start: Instant,
    user: Option<Arc<str>>,
    payload: Option<Box<Payload>>,
    traceback: Option<String>,
}

/// A finished span on its way to the recorder's task.
struct Finished {
    span: Span,
    duration: Duration,
    outcome: Outcome,
}

impl Span {
    pub fn start(
        ctx: TraceContext,
        side: Side,
        service: Arc<str>,
        method: String,
        peer: Peer,
    ) -> Self {
        Span::started(
            ctx,
            side,
            service,
            method,
            peer,
            (SystemTime::now(), Instant::now()),
        )
    }

    /// A span that started at `at` (wall clock and monotonic).
    pub fn started(
        ctx: TraceContext,
        side: Side,
        service: Arc<str>,
        method: String,
        peer: Peer,
        at: (SystemTime, Instant),
    ) -> Self {
        Span {
            ctx,
            side,
            service,
            method,
            peer,
            start_wall: at.0,
            start: at.1,
            user: None,
            payload: None,
            traceback: None,
        }
    }

    /// A failed call's traceback (an empty one is none; a long one keeps
    /// its end).
    pub fn set_traceback(&mut self, tb: &str) {
        if tb.trim().is_empty() {
            return;
        }
        let mut start = tb.len().saturating_sub(MAX_TRACEBACK);
        while !tb.is_char_boundary(start) {
            start += 1;
        }
        self.traceback = Some(tb[start..].to_owned());
    }

    /// The call's arguments and result (client side, when recorded).
    pub fn set_payload(&mut self, payload: Option<Box<Payload>>) {
        self.payload = payload;
    }

    /// The caller's authenticated user (server side).
    pub fn set_user(&mut self, user: Option<Arc<str>>) {
        self.user = user;
    }

    pub fn finish(self, recorder: &Recorder, outcome: Outcome) {
        let now = Instant::now();
        self.finish_at(recorder, outcome, now);
    }

    /// Finishes a span that ended at `ended` (recorded later).
    pub fn finish_at(self, recorder: &Recorder, outcome: Outcome, ended: Instant) {
        let duration = ended.saturating_duration_since(self.start);
        recorder.push(Finished {
            span: self,
            duration,
            outcome,
        });
    }
}

impl Finished {
    fn into_record(self, process: &str, host: &str) -> Record {
        let s = self.span;
        Record {
            trace_id: s.ctx.trace_id_hex(),
            span_id: s.ctx.span_id_hex(),
            parent_id: s.ctx.parent_id.map(|p| hex(&p)),
            side: s.side,
            service: s.service.to_string(),
            method: s.method,
            peer: match s.peer {
                Peer::Endpoint(e) => e.to_string(),
                Peer::RoutingId(id) => hex(&id),
            },
            process: process.to_owned(),
            host: host.to_owned(),
            start_us: s
                .start_wall
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            duration_us: self.duration.as_micros() as u64,
            outcome: self.outcome,
            user: s.user.map(|u| u.to_string()),
            payload: s.payload,
            traceback: s.traceback,
        }
    }
}

mod recorder;
mod render;
mod stats;
mod store;

pub use recorder::{Recorder, TraceSink};
pub use render::{render_line, render_top, render_tree};
pub use stats::{
    rows, side_label, slot_of, Histogram, KeyLimits, MethodKeys, MethodRow, MethodStats, OTHER,
    SLOTS_KEPT, SLOT_SECS, UNKNOWN_METHOD,
};
pub use store::{EmbeddedStore, TraceStore};

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;

    fn rec(
        trace: &str,
        span: &str,
        parent: Option<&str>,
        side: Side,
        method: &str,
        outcome: Outcome,
    ) -> Record {
        Record {
            trace_id: trace.into(),
            span_id: span.into(),
            parent_id: parent.map(Into::into),
            side,
            service: "svc".into(),
            method: method.into(),
            peer: "p".into(),
            process: "test[1]".into(),
            host: "h".into(),
            start_us: span.len() as u64,
            duration_us: 1500,
            outcome,
            user: None,
            payload: None,
            traceback: None,
        }
    }

    #[test]
    fn traces_expire_after_their_ttl_and_counters_stay() {
        let t0 = Instant::now();
        let store = EmbeddedStore::new(Duration::from_secs(10));
        store.insert_at(
            vec![rec("t1", "a", None, Side::Client, "m", Outcome::Ok)],
            t0,
        );
        store.insert_at(
            vec![rec("t1", "bb", Some("a"), Side::Server, "m", Outcome::Ok)],
            t0 + Duration::from_secs(5),
        );
        // the TTL runs from the last record
        assert_eq!(store.trace_at("t1", t0 + Duration::from_secs(14)).len(), 2);
        assert!(store
            .trace_at("t1", t0 + Duration::from_secs(15))
            .is_empty());
        let m = store.methods();
        assert_eq!(
            m[&("server".into(), "svc".into(), "m".into())].outcomes["OK"],
            1
        );
        // (a histogram bucket's middle: within 6%)
        let p50 = m[&("client".into(), "svc".into(), "m".into())]
            .quantile_us(0.5)
            .unwrap();
        assert!((1410..=1590).contains(&p50), "{p50}");
    }

    #[test]
    fn the_tree_follows_parent_links() {
        let recs = vec![
            rec("t", "a", None, Side::Client, "outer", Outcome::Ok),
            rec("t", "bb", Some("a"), Side::Server, "outer", Outcome::Ok),
            rec(
                "t",
                "ccc",
                Some("bb"),
                Side::Client,
                "inner",
                Outcome::Err {
                    name: "ValueError".into(),
                    message: "no".into(),
                },
            ),
        ];
        let tree = render_tree(&recs);
        assert_eq!(
            tree,
            "call svc outer 1.500 ms OK\n  serve svc outer 1.500 ms OK\n    call svc inner 1.500 ms ERR ValueError: no\n"
        );
    }

    #[test]
    fn histogram_buckets_are_within_six_percent_and_quantiles_follow() {
        for us in (0..100_000u64).chain((0..60).map(|e| 1u64 << e)) {
            let v = Histogram::bucket_value(Histogram::bucket_of(us));
            let err = (v as f64 - us as f64).abs() / (us.max(1) as f64);
            assert!(err <= 0.0625, "{us} -> {v}");
        }
        // the top bucket neither overflows nor panics
        assert!(Histogram::bucket_value(Histogram::bucket_of(u64::MAX)) >= 15 << 60);
        let mut h = Histogram::default();
        for us in 1..=1000 {
            h.add(us);
        }
        let near = |got: Option<u64>, want: f64| {
            let got = got.unwrap() as f64;
            assert!((got - want).abs() / want < 0.07, "{got} vs {want}");
        };
        near(h.quantile_us(0.5), 500.0);
        near(h.quantile_us(0.99), 990.0);
        near(h.quantile_us(1.0), 1000.0);
        assert_eq!(h.count, 1000);
        let mut twice = h.clone();
        twice.merge(&h);
        assert_eq!(twice.count, 2000);
        near(twice.quantile_us(0.5), 500.0);
        assert_eq!(Histogram::default().quantile_us(0.5), None);
    }

    #[test]
    fn stats_are_kept_per_slot_for_recent_windows() {
        let store = EmbeddedStore::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let slot_us = SLOT_SECS * 1_000_000;
        let at = |slot: u64, ok: bool| {
            let mut r = rec(
                "t",
                "a",
                None,
                Side::Server,
                "m",
                if ok {
                    Outcome::Ok
                } else {
                    Outcome::Err {
                        name: "E".into(),
                        message: "x".into(),
                    }
                },
            );
            r.start_us = 1000 * slot_us + slot * slot_us;
            r
        };
        // three calls in slot 0, two (one failing) in slot 5
        store.insert_at(vec![at(0, true), at(0, true), at(0, true)], t0);
        store.insert_at(vec![at(5, true), at(5, false)], t0);
        let all = store.stats_since(None);
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].stats.calls(), all[0].stats.failures()), (5, 1));
        let recent = store.stats_since(Some(1000 * slot_us + 3 * slot_us));
        assert_eq!(
            (recent[0].stats.calls(), recent[0].stats.failures()),
            (2, 1)
        );
        assert_eq!(recent[0].side, "server");
        // a slot SLOTS_KEPT newer pushes the old ones out (not the totals)
        store.insert_at(vec![at(5 + SLOTS_KEPT - 1, true)], t0);
        let window = store.stats_since(Some(1000 * slot_us));
        assert_eq!(window[0].stats.calls(), 3);
        // a record older than what is kept only counts in the totals
        store.insert_at(vec![at(1, true)], t0);
        assert_eq!(store.stats_since(Some(1000 * slot_us))[0].stats.calls(), 3);
        assert_eq!(store.stats_since(None)[0].stats.calls(), 7);
    }

    #[test]
    fn lines_and_top_tables() {
        let mut r = rec("0af7", "b7ad", None, Side::Server, "echo", Outcome::Ok);
        r.start_us = 3_723_004_000; // 01:02:03.004
        r.duration_us = 1500;
        assert_eq!(
            render_line(&r),
            "01:02:03.005 0af7 serve svc echo 1.500 ms OK"
        );
        let mut fast = MethodStats::default();
        for _ in 0..9 {
            fast.add(&r);
        }
        r.outcome = Outcome::Timeout;
        r.duration_us = 30_000;
        fast.add(&r);
        let row = |method: &str, stats: MethodStats| MethodRow {
            side: "server".into(),
            service: "svc".into(),
            method: method.into(),
            stats,
        };
        let slow = {
            let mut m = MethodStats::default();
            m.add(&r);
            m
        };
        let table = render_top(&[row("slow", slow), row("echo", fast)], 10.0);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("SIDE"));
        // busiest first: 10 calls in 10 s, one failed, p99 the slow one
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cols[..5],
            ["server", "svc", "echo", "1.00", "10.0"],
            "{table}"
        );
        let p50: f64 = cols[5].parse().unwrap();
        let p99: f64 = cols[6].parse().unwrap();
        assert!(
            (1.4..1.6).contains(&p50) && (28.0..32.0).contains(&p99),
            "{table}"
        );
        assert!(lines[2].contains(" slow "), "{table}");
    }

    struct Failing;
    impl TraceSink for Failing {
        fn write(&self, _: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
            Box::pin(std::future::ready(Err("sink down".to_owned())))
        }
    }

    // (paused clock: the recorder's gathering pause passes at once)
    #[tokio::test(start_paused = true)]
    async fn a_failing_sink_or_full_queue_drops_and_counts() {
        let r = Recorder::new(Failing, 4);
        for _ in 0..100 {
            r.record(rec("t", "a", None, Side::Client, "m", Outcome::Ok));
        }
        // Nothing blocked; what did not fit was dropped at once, and the
        // rest is dropped by the failing sink.
        for _ in 0..1000 {
            if r.dropped() == 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(r.dropped(), 100);
        assert_eq!(r.written(), 0);
        assert!(r.flush(Duration::from_secs(1)).await);
    }

    #[test]
    fn a_store_fed_endless_method_and_service_names_keeps_its_keys_bounded() {
        let store = EmbeddedStore::with_limits(
            Duration::from_secs(60),
            KeyLimits {
                max_methods_per_service: 10,
                max_keys: 50,
            },
        );
        let now = Instant::now();
        // Records reach a collector from anyone: 10,000 methods of one
        // service, then 10,000 services.
        let batch: Vec<Record> = (0..10_000)
            .map(|i| {
                rec(
                    "t1",
                    "s1",
                    None,
                    Side::Server,
                    &format!("m{i}"),
                    Outcome::Ok,
                )
            })
            .collect();
        store.insert_at(batch, now);
        let batch: Vec<Record> = (0..10_000)
            .map(|i| Record {
                service: format!("svc{i}"),
                ..rec("t2", "s2", None, Side::Server, "m", Outcome::Ok)
            })
            .collect();
        store.insert_at(batch, now);
        let keys = store.key_count();
        assert!(keys <= 2 * 50 + 2, "{keys} keys");
        let m = store.methods();
        let calls: u64 = m.values().map(MethodStats::calls).sum();
        assert_eq!(calls, 20_000, "every call is still counted");
        let other = |svc: &str| m[&("server".into(), svc.into(), OTHER.into())].calls();
        assert_eq!(other("svc"), 9_990);
        assert_eq!(other(OTHER), 10_000 - 40);
        assert_eq!(store.folded(), 9_990 + 9_960);
        // Known keys keep counting under their own name.
        store.insert_at(
            vec![rec("t3", "s3", None, Side::Server, "m3", Outcome::Ok)],
            now,
        );
        assert_eq!(
            store.methods()[&("server".into(), "svc".into(), "m3".into())].calls(),
            2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn flush_waits_for_what_was_queued() {
        let store = EmbeddedStore::new(Duration::from_secs(60));
        let r = Recorder::new(store.clone(), 100);
        for _ in 0..10 {
            r.record(rec("t", "a", None, Side::Client, "m", Outcome::Ok));
        }
        assert!(r.flush(Duration::from_secs(5)).await);
        assert_eq!((r.written(), store.trace("t").len()), (10, 10));
    }
}
