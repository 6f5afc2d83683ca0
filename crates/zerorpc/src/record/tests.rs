//! The call records' unit tests: spans, payload caps, the recorder and its stores.

use super::*;
use futures::future::BoxFuture;

pub(super) fn rec(
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
fn a_batch_s_statistics_are_what_adding_each_call_would_make() {
    // (the store counts a batch in arrays, then makes statistics of them)
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let outcomes = [
        Outcome::Ok,
        Outcome::Stream { items: 3 },
        Outcome::Lost,
        Outcome::Timeout,
        Outcome::Cancelled,
        Outcome::Err {
            name: "E".into(),
            message: "x".into(),
        },
    ];
    let durations = [
        0,
        1,
        7,
        8,
        9,
        1500,
        1501,
        65_000,
        10_000_000_000,
        u64::MAX / 3,
    ];
    let mut want = MethodStats::default();
    let mut batch = Vec::new();
    for (i, &d) in durations.iter().enumerate() {
        for (j, o) in outcomes.iter().enumerate().take(i % 6 + 1) {
            let mut r = rec("t", &format!("{i}-{j}"), None, Side::Client, "m", o.clone());
            r.start_us = 1_000_000;
            r.duration_us = d;
            want.add(r.outcome.label(), r.duration_us);
            batch.push(r);
        }
    }
    store.insert_at(batch, Instant::now());
    let rows = store.stats_since(None);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].stats, want);
    assert!(want.outcomes.len() == 6 && want.latency.buckets.len() > 8);
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
        fast.add(r.outcome.label(), r.duration_us);
    }
    r.outcome = Outcome::Timeout;
    r.duration_us = 30_000;
    fast.add(r.outcome.label(), r.duration_us);
    let row = |method: &str, stats: MethodStats| MethodRow {
        side: "server".into(),
        service: "svc".into(),
        method: method.into(),
        stats,
    };
    let slow = {
        let mut m = MethodStats::default();
        m.add(r.outcome.label(), r.duration_us);
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
            service: format!("svc{i}").into(),
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

#[test]
fn a_full_store_drops_the_traces_that_would_expire_first() {
    let store = EmbeddedStore::new(Duration::from_secs(60)).max_records(10);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    // Traces t0..t9, one record each, a second apart.
    for i in 0..10 {
        let r = rec(&format!("t{i}"), "s", None, Side::Server, "m", Outcome::Ok);
        store.insert_at(vec![r], at(i));
    }
    assert_eq!((store.record_count(), store.evicted()), (10, 0));
    // t0 gets a second record: it now expires last.
    store.insert_at(
        vec![rec("t0", "s2", Some("s"), Side::Client, "m", Outcome::Ok)],
        at(10),
    );
    assert_eq!(store.trace_at("t1", at(10)).len(), 0, "t1 went first");
    assert_eq!(store.trace_at("t0", at(10)).len(), 2, "t0 was refreshed");
    // Five new traces push out the five oldest (t2..t6), whole.
    let batch = (10..15)
        .map(|i| rec(&format!("t{i}"), "s", None, Side::Server, "m", Outcome::Ok))
        .collect();
    store.insert_at(batch, at(11));
    let held = |id: &str| !store.trace_at(id, at(11)).is_empty();
    assert!((1..=6).all(|i| !held(&format!("t{i}"))));
    assert!((7..15).all(|i| held(&format!("t{i}"))) && held("t0"));
    assert_eq!((store.record_count(), store.evicted()), (10, 6));
    // The statistics still count every call.
    let calls: u64 = store.methods().values().map(MethodStats::calls).sum();
    assert_eq!(calls, 16);
    // Expiry keeps the count right: t7..t9 expire by 69 s.
    store.insert_at(Vec::new(), at(69));
    assert_eq!(store.record_count(), 2 + 5);
    // A smaller bound applies at once.
    let store = store.max_records(3);
    assert_eq!(store.record_count(), 3);
}

#[test]
fn a_full_store_takes_new_records_into_the_room_of_those_it_dropped() {
    let store = EmbeddedStore::new(Duration::from_secs(60)).max_records(100);
    let t0 = Instant::now();
    // 10,000 calls of two sides, in batches of ten calls: the store holds
    // the last 50 calls, and never more room than that and one batch.
    for b in 0..1_000u64 {
        let batch = (0..10)
            .flat_map(|c| {
                let t = format!("t{}", b * 10 + c);
                [
                    rec(&t, "c", None, Side::Client, "m", Outcome::Ok),
                    rec(&t, "s", Some("c"), Side::Server, "m", Outcome::Ok),
                ]
            })
            .collect();
        store.insert_at(batch, t0 + Duration::from_millis(b));
        assert!(
            store.record_room() <= 100 + 20,
            "room {}",
            store.record_room()
        );
    }
    assert_eq!((store.record_count(), store.evicted()), (100, 19_900));
    let at = t0 + Duration::from_secs(1);
    // The last calls read back whole, each with its own two records.
    for c in 9_950..10_000 {
        let t = format!("t{c}");
        let spans: Vec<String> = store
            .trace_at(&t, at)
            .into_iter()
            .map(|r| r.span_id)
            .collect();
        assert_eq!(spans.len(), 2, "{t}: {spans:?}");
        assert!(
            spans.contains(&"c".into()) && spans.contains(&"s".into()),
            "{t}: {spans:?}"
        );
    }
    assert!(store.trace_at("t9949", at).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_from_threads_that_ended_are_all_shipped_and_flush_waits_for_new_ones() {
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let r = Recorder::new(store.clone(), 10_000);
    // Each thread records into a shard of its own, then ends.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let r = r.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    r.record(rec(
                        &format!("t{t}"),
                        "a",
                        None,
                        Side::Client,
                        "m",
                        Outcome::Ok,
                    ));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(r.flush(Duration::from_secs(10)).await);
    assert_eq!((r.written(), r.dropped()), (800, 0));
    for t in 0..8 {
        assert_eq!(store.trace(&format!("t{t}")).len(), 100);
    }
    // Once shipped, the ended threads' shards are forgotten; what they
    // queued still counts, so a flush waits for the records queued after.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..10 {
        r.record(rec("late", "a", None, Side::Client, "m", Outcome::Ok));
    }
    assert!(r.flush(Duration::from_secs(10)).await);
    assert_eq!(r.written(), 810);
    assert_eq!(store.trace("late").len(), 10);
}

#[test]
fn a_thread_holds_its_share_of_the_capacity() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _in_rt = rt.enter();
    // (the shipping task never runs: nothing is polled)
    let r = Recorder::new(Discarding, 10);
    for _ in 0..15 {
        r.record(rec("t", "a", None, Side::Client, "m", Outcome::Ok));
    }
    assert_eq!(r.dropped(), 5, "one thread: the whole capacity");
    let r2 = r.clone();
    std::thread::spawn(move || {
        for _ in 0..15 {
            r2.record(rec("t", "a", None, Side::Client, "m", Outcome::Ok));
        }
    })
    .join()
    .unwrap();
    assert_eq!(r.dropped(), 5 + 10, "two threads: half each");
}

struct Discarding;
impl TraceSink for Discarding {
    fn write(&self, _: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[test]
fn a_record_s_wall_clock_start_comes_from_the_clocks_read_when_it_is_built() {
    let mono = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_secs(1_000);
    let finished = |start: Instant| {
        Span::started(
            TraceContext::new_root(),
            Side::Client,
            "svc".into(),
            "m".into(),
            Peer::Endpoint("tcp://x:1".into()),
            start,
        )
        .ended(Outcome::Ok, Duration::from_millis(3))
    };
    let (process, host): (Arc<str>, Arc<str>) = ("p[1]".into(), "h".into());
    let r = finished(mono - Duration::from_secs(2)).into_record(
        &process,
        &host,
        Clocks::at(wall, mono),
    );
    assert_eq!((r.start_us, r.duration_us), (998_000_000, 3_000));
    // (a start read after the clocks, on another thread)
    let r = finished(mono + Duration::from_millis(1)).into_record(
        &process,
        &host,
        Clocks::at(wall, mono),
    );
    assert_eq!(r.start_us, 1_000_001_000);
}

/// Spans of every shape, in one trace (the same every time): root and
/// child contexts, both sides and peers, each outcome, what few have
/// (user, payload, traceback), an all-zero parent; each with the outcome
/// and duration it ends with.
fn spans_of_every_shape(start: Instant) -> Vec<(Span, Outcome, Duration)> {
    let ctx = |span: u8, parent: Option<[u8; 8]>| TraceContext {
        trace_id: [0x4b; 16],
        span_id: [span; 8],
        parent_id: parent,
        sampled: false,
        tracestate: None,
    };
    let root = ctx(1, None);
    let child = ctx(2, Some([1; 8]));
    let zero_parent = ctx(3, Some([0; 8]));
    let outcomes = [
        Outcome::Ok,
        Outcome::Err {
            name: "ValueError".into(),
            message: "bad".into(),
        },
        Outcome::Stream { items: 3 },
        Outcome::Lost,
        Outcome::Timeout,
        Outcome::Cancelled,
    ];
    let mut out = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        for (ctx, side, peer) in [
            (&root, Side::Client, Peer::Endpoint("tcp://x:1".into())),
            (
                &child,
                Side::Server,
                Peer::RoutingId(bytes::Bytes::from_static(b"\x00k\x8b")),
            ),
            (&zero_parent, Side::Server, Peer::Endpoint("e".into())),
        ] {
            let mut span = Span::started(
                ctx.clone(),
                side,
                "svc".into(),
                format!("m{}", i % 2).into(),
                peer,
                start,
            );
            if i == 1 {
                span.set_user(Some("alice".into()));
                span.set_traceback("Traceback (most recent call last): ...");
                span.set_payload(Payload::capped(vec![1.into()], None));
            }
            out.push((span, outcome.clone(), Duration::from_micros(40 + i as u64)));
        }
    }
    out
}

#[test]
fn a_finished_span_kept_directly_reads_back_as_the_record_it_would_have_made() {
    let mono = Instant::now();
    let clocks = Clocks::at(UNIX_EPOCH + Duration::from_secs(1_000), mono);
    let (process, host): (Arc<str>, Arc<str>) = ("p[1]".into(), "h".into());
    let start = mono - Duration::from_millis(5);
    let direct = EmbeddedStore::new(Duration::from_secs(60));
    let ended =
        |(span, outcome, duration): (Span, Outcome, Duration)| span.ended(outcome, duration);
    direct.insert_finished(
        spans_of_every_shape(start).into_iter().map(ended),
        &process,
        &host,
        clocks,
        mono,
    );
    let records: Vec<Record> = spans_of_every_shape(start)
        .into_iter()
        .map(|s| ended(s).into_record(&process, &host, clocks))
        .collect();
    let via_records = EmbeddedStore::new(Duration::from_secs(60));
    via_records.insert_at(records.clone(), mono);
    let traces: Vec<&str> = records.iter().map(|r| r.trace_id.as_str()).collect();
    assert!(traces.iter().all(|t| *t == "4b".repeat(16)), "one trace");
    let sorted = |mut v: Vec<Record>| {
        v.sort_by(|a, b| (&a.span_id, a.duration_us).cmp(&(&b.span_id, b.duration_us)));
        v
    };
    assert_eq!(
        sorted(direct.trace_at(traces[0], mono)),
        sorted(records.clone())
    );
    assert_eq!(
        sorted(via_records.trace_at(traces[0], mono)),
        sorted(records)
    );
    assert_eq!(direct.methods(), via_records.methods());
    assert_eq!(direct.stats_since(None), via_records.stats_since(None));
}

/// Keeps what it is given.
#[derive(Clone, Default)]
struct Collecting(Arc<std::sync::Mutex<Vec<Record>>>);
impl TraceSink for Collecting {
    fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
        self.0.lock().unwrap().extend(batch);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test]
async fn a_recorder_gives_an_embedded_store_the_same_records_it_gives_any_sink() {
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let sink = Collecting::default();
    let (to_store, to_sink) = (
        Recorder::new(store.clone(), 100),
        Recorder::new(sink.clone(), 100),
    );
    let start = Instant::now();
    for ((a, outcome, duration), (b, _, _)) in spans_of_every_shape(start)
        .into_iter()
        .zip(spans_of_every_shape(start))
    {
        let ended = start + duration;
        a.finish_at(&to_store, outcome.clone(), ended);
        b.finish_at(&to_sink, outcome, ended);
    }
    // and a record given as one
    let given = rec("t", "a", None, Side::Client, "m", Outcome::Ok);
    to_store.record(given.clone());
    to_sink.record(given.clone());
    assert!(to_store.flush(Duration::from_secs(10)).await);
    assert!(to_sink.flush(Duration::from_secs(10)).await);
    assert_eq!((to_store.written(), to_sink.written()), (19, 19));
    let collected = sink.0.lock().unwrap().clone();
    let trace = collected[0].trace_id.clone();
    let in_trace = |v: &[Record]| {
        let mut v: Vec<Record> = v.iter().filter(|r| r.trace_id == trace).cloned().collect();
        // (the two recorders read their clocks apart: starts may differ by a µs)
        for r in &mut v {
            r.start_us = 0;
        }
        v.sort_by(|a, b| (&a.span_id, a.duration_us).cmp(&(&b.span_id, b.duration_us)));
        v
    };
    assert_eq!(in_trace(&store.trace(&trace)), in_trace(&collected));
    assert_eq!(in_trace(&collected).len(), 18);
    assert_eq!(store.trace("t"), vec![given]);
}
