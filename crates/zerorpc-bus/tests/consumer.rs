//! Hosted consumers against a daemon in process: every verdict (ack,
//! retry, drop, halt), panicking callbacks, resuming from a position file,
//! and a long blocking callback that holds back nobody but itself.
//!
//! One file over 600 lines on purpose: each file under `tests/` is a test
//! binary of its own, linked on its own, so a suite that shares its peers
//! and fixtures stays one binary (split, it would link once per part).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use zerorpc_bus::consumer::{
    consume, consume_blocking, resume_from, ConsumerOptions, ConsumerReport, Verdict,
};
use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Delivery, Filters, Since, Subscription};
use zerorpc_testkit::{scratch_dir, within, WEDGE};

/// A daemon and a publisher to it.
async fn bus(name: &str) -> (Daemon, Publisher, std::path::PathBuf) {
    let dir = scratch_dir(name);
    let daemon = Daemon::start(DaemonOptions::ephemeral(dir.join("store")))
        .await
        .unwrap();
    let mut o = PublisherOptions::new(daemon.ingest_endpoint());
    o.modname = "consumertest".into();
    let p = Publisher::connect(o).await.unwrap();
    (daemon, p, dir)
}

/// Publishes `{"n": k}` on `work` for each k, in order; their seqs.
async fn publish_work(p: &Publisher, ks: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut seqs = Vec::new();
    for k in ks {
        let c = within("publish", p.publish("work", json!({ "n": k })))
            .await
            .unwrap();
        seqs.push(c.seq().expect("a seq from the daemon"));
    }
    seqs
}

/// Publishes the message the test callbacks halt on; its seq.
async fn publish_stop(p: &Publisher) -> u64 {
    within("publish stop", p.publish("stop", json!({})))
        .await
        .unwrap()
        .seq()
        .expect("a seq from the daemon")
}

fn n_of(d: &Delivery) -> Option<u64> {
    d.message.msg.get("n").and_then(|v| v.as_u64())
}

fn is_stop(d: &Delivery) -> bool {
    d.message.topic.ends_with(".stop")
}

fn seq_of(d: &Delivery) -> u64 {
    d.seq.expect("a seq from the daemon")
}

/// Quick retries, so tests do not wait.
fn quick() -> ConsumerOptions {
    ConsumerOptions {
        retry_delay: Duration::from_millis(5),
        max_retry_delay: Duration::from_millis(20),
        ..ConsumerOptions::default()
    }
}

async fn from(daemon: &Daemon, since: Since) -> Subscription {
    Subscription::bus(daemon.ingest_endpoint(), since, Filters::default())
        .await
        .unwrap()
}

/// Every handing-over of a message to a callback, in order, and whether two
/// callbacks ever ran at once.
#[derive(Clone, Default)]
struct Log {
    seqs: Arc<Mutex<Vec<u64>>>,
    active: Arc<AtomicU32>,
    overlaps: Arc<AtomicU32>,
}

impl Log {
    fn enter(&self, seq: u64) {
        if self.active.fetch_add(1, Ordering::SeqCst) != 0 {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        self.seqs.lock().unwrap().push(seq);
    }

    fn leave(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    fn seqs(&self) -> Vec<u64> {
        self.seqs.lock().unwrap().clone()
    }

    fn overlaps(&self) -> u32 {
        self.overlaps.load(Ordering::SeqCst)
    }
}

/// A callback for [`consume`]: `decide(delivery, attempt)` (attempt counts
/// from 1 per seq) says what to answer; `stop` messages halt.
fn callback(
    log: &Log,
    decide: impl Fn(&Delivery, u32) -> Verdict + Send + Sync + 'static,
) -> impl FnMut(Delivery) -> std::pin::Pin<Box<dyn std::future::Future<Output = Verdict> + Send>> {
    let log = log.clone();
    let decide = Arc::new(decide);
    let attempts: Arc<Mutex<std::collections::HashMap<u64, u32>>> = Arc::default();
    move |d: Delivery| {
        let log = log.clone();
        let decide = decide.clone();
        let attempts = attempts.clone();
        Box::pin(async move {
            let seq = seq_of(&d);
            log.enter(seq);
            // Give a second callback, were one started too early, the time
            // to show up as an overlap.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let attempt = {
                let mut a = attempts.lock().unwrap();
                let n = a.entry(seq).or_insert(0);
                *n += 1;
                *n
            };
            let verdict = if is_stop(&d) {
                Verdict::Halt
            } else {
                decide(&d, attempt)
            };
            log.leave();
            verdict
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acking_every_message_reports_the_count_and_halts_on_request() {
    let (daemon, p, _dir) = bus("consumer-ack").await;
    let mut want = publish_work(&p, 1..=20).await;
    let stop = publish_stop(&p).await;
    want.push(stop);
    let log = Log::default();
    let report = within(
        "consumer",
        consume(
            from(&daemon, Since::Start).await,
            quick(),
            callback(&log, |_, _| Verdict::Ack),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        report,
        ConsumerReport {
            acked: 20,
            halted_at: Some(stop),
            ..ConsumerReport::default()
        }
    );
    assert_eq!(log.seqs(), want, "every message once, in order");
    assert_eq!(log.overlaps(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_comes_back_before_anything_after_it() {
    let (daemon, p, _dir) = bus("consumer-retry").await;
    let seqs = publish_work(&p, 1..=5).await;
    let stop = publish_stop(&p).await;
    let log = Log::default();
    // The second message: retry twice, then ack.
    let report = within(
        "consumer",
        consume(
            from(&daemon, Since::Start).await,
            quick(),
            callback(&log, |d, attempt| {
                if n_of(d) == Some(2) && attempt < 3 {
                    Verdict::Retry
                } else {
                    Verdict::Ack
                }
            }),
        ),
    )
    .await
    .unwrap();
    let s = &seqs;
    assert_eq!(
        log.seqs(),
        [s[0], s[1], s[1], s[1], s[2], s[3], s[4], stop],
        "the same message three times, nothing after it meanwhile"
    );
    assert_eq!(log.overlaps(), 0, "one callback at a time");
    assert_eq!(
        report,
        ConsumerReport {
            acked: 5,
            retries: 2,
            halted_at: Some(stop),
            ..ConsumerReport::default()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_asking_for_retries_is_dropped_after_max_attempts() {
    let (daemon, p, _dir) = bus("consumer-max-attempts").await;
    let seqs = publish_work(&p, 1..=4).await;
    let stop = publish_stop(&p).await;
    let log = Log::default();
    let opts = ConsumerOptions {
        max_attempts: Some(3),
        ..quick()
    };
    let report = within(
        "consumer",
        consume(
            from(&daemon, Since::Start).await,
            opts,
            callback(&log, |d, _| {
                if n_of(d) == Some(2) {
                    Verdict::Retry
                } else {
                    Verdict::Ack
                }
            }),
        ),
    )
    .await
    .unwrap();
    let s = &seqs;
    assert_eq!(log.seqs(), [s[0], s[1], s[1], s[1], s[2], s[3], stop]);
    assert_eq!(
        report,
        ConsumerReport {
            acked: 3,
            dropped: 1,
            retries: 2,
            halted_at: Some(stop),
            ..ConsumerReport::default()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_message_is_counted_and_the_consumer_goes_on() {
    let (daemon, p, _dir) = bus("consumer-drop").await;
    let mut want = publish_work(&p, 1..=5).await;
    let stop = publish_stop(&p).await;
    want.push(stop);
    let log = Log::default();
    let report = within(
        "consumer",
        consume(
            from(&daemon, Since::Start).await,
            quick(),
            callback(&log, |d, _| {
                if n_of(d) == Some(3) {
                    Verdict::Drop
                } else {
                    Verdict::Ack
                }
            }),
        ),
    )
    .await
    .unwrap();
    assert_eq!(log.seqs(), want, "the dropped one is not handed over again");
    assert_eq!(
        report,
        ConsumerReport {
            acked: 4,
            dropped: 1,
            halted_at: Some(stop),
            ..ConsumerReport::default()
        }
    );
}

fn position(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halting_keeps_the_message_and_a_new_consumer_resumes_with_it() {
    let (daemon, p, dir) = bus("consumer-halt").await;
    let seqs = publish_work(&p, 1..=6).await;
    let file = dir.join("position");
    let opts = ConsumerOptions {
        position_file: Some(file.clone()),
        ..quick()
    };
    assert_eq!(resume_from(&file, Since::Start).unwrap(), Since::Start);

    let first = Log::default();
    let report = within(
        "first consumer",
        consume(
            from(&daemon, resume_from(&file, Since::Start).unwrap()).await,
            opts.clone(),
            callback(&first, |d, _| {
                if n_of(d) == Some(4) {
                    Verdict::Halt
                } else {
                    Verdict::Ack
                }
            }),
        ),
    )
    .await
    .unwrap();
    assert_eq!(report.halted_at, Some(seqs[3]));
    assert_eq!(report.acked, 3);
    assert_eq!(first.seqs(), seqs[..4]);
    assert_eq!(
        position(&file),
        seqs[3].to_string(),
        "the position is the halted message, not past it"
    );

    // A new consumer resumes with the message the first one halted on.
    let since = resume_from(&file, Since::Start).unwrap();
    assert_eq!(since, Since::Seq(seqs[3]));
    let second = Log::default();
    let report = within(
        "second consumer",
        consume(
            from(&daemon, since).await,
            opts,
            callback(&second, |d, _| {
                if n_of(d) == Some(6) {
                    Verdict::Halt
                } else {
                    Verdict::Ack
                }
            }),
        ),
    )
    .await
    .unwrap();
    assert_eq!(second.seqs(), seqs[3..]);
    assert_eq!(report.acked, 2);
    assert_eq!(report.halted_at, Some(seqs[5]));
    assert_eq!(position(&file), seqs[5].to_string());
}

/// Halting on the very first message a consumer is handed (nothing acked
/// yet) must record it too: otherwise a consumer resuming with
/// `Since::Next` would skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halting_on_the_first_message_handled_records_it() {
    let (daemon, p, dir) = bus("consumer-halt-first").await;
    let seqs = publish_work(&p, 1..=4).await;
    let file = dir.join("position");
    let opts = ConsumerOptions {
        position_file: Some(file.clone()),
        ..quick()
    };
    let log = Log::default();
    let report = within(
        "consumer",
        consume(
            from(&daemon, Since::Seq(seqs[2])).await,
            opts,
            callback(&log, |_, _| Verdict::Halt),
        ),
    )
    .await
    .unwrap();
    assert_eq!(log.seqs(), [seqs[2]]);
    assert_eq!(report.halted_at, Some(seqs[2]));
    assert_eq!(position(&file), seqs[2].to_string());
    assert_eq!(
        resume_from(&file, Since::Next).unwrap(),
        Since::Seq(seqs[2])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_callback_is_counted_and_its_message_retried() {
    let (daemon, p, _dir) = bus("consumer-panic").await;
    let seqs = publish_work(&p, 1..=3).await;
    let stop = publish_stop(&p).await;
    let s = &seqs;
    let want = [s[0], s[1], s[1], s[2], stop];

    // An async callback whose future panics the first time it sees n = 2.
    let log = Log::default();
    let report = within(
        "async consumer",
        consume(
            from(&daemon, Since::Start).await,
            quick(),
            callback(&log, |d, attempt| {
                if n_of(d) == Some(2) && attempt == 1 {
                    panic!("the callback fails on purpose");
                }
                Verdict::Ack
            }),
        ),
    )
    .await
    .unwrap();
    assert_eq!(log.seqs(), want);
    assert_eq!(
        report,
        ConsumerReport {
            acked: 3,
            retries: 1,
            panics: 1,
            halted_at: Some(stop),
            ..ConsumerReport::default()
        }
    );

    // The same with a blocking callback.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let panicked = Arc::new(AtomicBool::new(false));
    let report = within("blocking consumer", {
        let seen = seen.clone();
        consume_blocking(from(&daemon, Since::Start).await, quick(), move |d| {
            seen.lock().unwrap().push(seq_of(&d));
            if is_stop(&d) {
                return Verdict::Halt;
            }
            if n_of(&d) == Some(2) && !panicked.swap(true, Ordering::SeqCst) {
                panic!("the blocking callback fails on purpose");
            }
            Verdict::Ack
        })
    })
    .await
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), want);
    assert_eq!(
        report,
        ConsumerReport {
            acked: 3,
            retries: 1,
            panics: 1,
            halted_at: Some(stop),
            ..ConsumerReport::default()
        }
    );
}

/// A blocking callback that takes seconds on one message: the other
/// consumer on the same daemon keeps receiving meanwhile (on a runtime with
/// a single worker thread, so a callback that blocked the runtime would
/// stall it, and the subscriptions' heartbeats with it); the slow consumer
/// then gets everything published during its callback, more than its
/// subscription buffers, without a loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_long_callback_holds_back_only_its_own_consumer() {
    const DURING: u64 = 5_000;
    let (daemon, p, _dir) = bus("consumer-long-callback").await;
    let before = publish_work(&p, 1..=3).await;
    let slow = within("publish slow", p.publish("slow", json!({})))
        .await
        .unwrap()
        .seq()
        .expect("a seq from the daemon");

    // Consumer A: blocks on the `slow` message for a few seconds and until
    // the test has seen consumer B get everything published meanwhile.
    let a_blocked = Arc::new(AtomicBool::new(false));
    let (a_started_tx, mut a_started) = mpsc::unbounded_channel::<u64>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let a_seen = Arc::new(Mutex::new(Vec::new()));
    let consumer_a = tokio::spawn({
        let a_blocked = a_blocked.clone();
        let a_seen = a_seen.clone();
        let sub = from(&daemon, Since::Start).await;
        consume_blocking(sub, quick(), move |d| {
            let seq = seq_of(&d);
            a_seen.lock().unwrap().push(seq);
            if is_stop(&d) {
                return Verdict::Halt;
            }
            if d.message.topic.ends_with(".slow") {
                a_blocked.store(true, Ordering::SeqCst);
                let _ = a_started_tx.send(seq);
                std::thread::sleep(Duration::from_secs(6));
                let released = release_rx.lock().unwrap().recv_timeout(WEDGE);
                a_blocked.store(false, Ordering::SeqCst);
                assert!(released.is_ok(), "the test never released the callback");
            }
            Verdict::Ack
        })
    });

    // Consumer B: quick; reports each seq and whether A was blocked then.
    let (b_tx, mut b_rx) = mpsc::unbounded_channel::<(u64, bool)>();
    let b_count = Arc::new(AtomicU64::new(0));
    let consumer_b = tokio::spawn({
        let a_blocked = a_blocked.clone();
        let b_count = b_count.clone();
        let sub = from(&daemon, Since::Start).await;
        consume(sub, quick(), move |d| {
            let a_blocked = a_blocked.clone();
            let b_tx = b_tx.clone();
            let b_count = b_count.clone();
            async move {
                b_count.fetch_add(1, Ordering::SeqCst);
                let _ = b_tx.send((seq_of(&d), a_blocked.load(Ordering::SeqCst)));
                if is_stop(&d) {
                    Verdict::Halt
                } else {
                    Verdict::Ack
                }
            }
        })
    });

    let started = within("A to reach the slow message", a_started.recv())
        .await
        .unwrap();
    assert_eq!(started, slow);

    // Published while A's callback is blocked.
    let mut during = Vec::with_capacity(DURING as usize);
    for chunk in 0..(DURING / 500) {
        let sends: Vec<_> = (0..500)
            .map(|k| p.publish("work", json!({ "n": 100 + chunk * 500 + k })))
            .collect();
        for c in within("publish during", futures::future::join_all(sends)).await {
            during.push(c.unwrap().seq().expect("a seq from the daemon"));
        }
    }
    // Concurrent publishes: confirmed in any order, stored in seq order.
    during.sort_unstable();
    assert_eq!(during, (slow + 1..=slow + DURING).collect::<Vec<_>>());
    let last_during = *during.last().unwrap();

    // B receives all of it while A is still blocked.
    let mut b_seen = Vec::new();
    within(
        "B to receive what was published during A's callback",
        async {
            while b_seen.last().map(|s: &(u64, bool)| s.0) != Some(last_during) {
                b_seen.push(b_rx.recv().await.expect("B's consumer stopped"));
            }
        },
    )
    .await;
    let b_during: Vec<&(u64, bool)> = b_seen.iter().filter(|s| s.0 > slow).collect();
    assert!(
        b_during.iter().map(|s| s.0).eq(during.iter().copied()),
        "B got every message published during A's callback, in order ({} of {})",
        b_during.len(),
        during.len()
    );
    assert!(
        b_during.iter().all(|s| s.1),
        "B got them while A's callback was still running"
    );
    assert!(a_blocked.load(Ordering::SeqCst));
    assert_eq!(
        *a_seen.lock().unwrap().last().unwrap(),
        slow,
        "A was handed nothing after the message its callback is on"
    );

    release_tx.send(()).unwrap();
    let stop = publish_stop(&p).await;
    let report_a = within("consumer A", consumer_a).await.unwrap().unwrap();
    let report_b = within("consumer B", consumer_b).await.unwrap().unwrap();

    let mut want: Vec<u64> = before.clone();
    want.push(slow);
    want.extend(&during);
    want.push(stop);
    assert!(want.iter().copied().eq(1..=stop));
    let a_seen = a_seen.lock().unwrap().clone();
    assert!(
        a_seen == want,
        "A lost nothing: it was handed {} messages for {}",
        a_seen.len(),
        want.len()
    );
    let expected = ConsumerReport {
        acked: stop - 1,
        halted_at: Some(stop),
        ..ConsumerReport::default()
    };
    assert_eq!(report_a, expected);
    assert_eq!(report_b, expected);
    assert_eq!(b_count.load(Ordering::SeqCst), stop);
}
