//! The local runner with Rust components: groupings, XOR acking, replay of
//! failed and timed-out trees, `max.spout.pending`, restarts after panics,
//! batching bolts, statistics.
//!
//! One file over 600 lines on purpose: each file under `tests/` is a test
//! binary of its own, linked on its own, so a suite that shares its peers
//! and fixtures stays one binary (split, it would link once per part).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{expected_counts, sentence};
use serde_json::json;
use zerorpc_stream::runner::{run, RunOptions};
use zerorpc_stream::{
    BatchingBolt, Bolt, BoltCollector, BoxError, Error, Grouping, MsgId, Outputs, Registry, Spout,
    SpoutCollector, TopologyBuilder, Tuple, Value,
};

/// What the spout saw.
#[derive(Default)]
struct Ledger {
    acked: HashSet<u64>,
    acks: u64,
    fails: u64,
    max_in_flight: usize,
}

/// Emits sentences `0..total` with their index as message id; replays a
/// failed one; records acks in the ledger.
struct SentenceSpout {
    next: u64,
    total: u64,
    in_flight: HashSet<u64>,
    replay: VecDeque<u64>,
    ledger: Arc<Mutex<Ledger>>,
}

impl SentenceSpout {
    fn new(total: u64, ledger: Arc<Mutex<Ledger>>) -> SentenceSpout {
        SentenceSpout {
            next: 0,
            total,
            in_flight: HashSet::new(),
            replay: VecDeque::new(),
            ledger,
        }
    }
}

fn id_of(msg_id: &MsgId) -> u64 {
    msg_id.as_u64().expect("numeric msg id")
}

impl Spout for SentenceSpout {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["sentence"])
    }
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        let i = match self.replay.pop_front() {
            Some(i) => i,
            None if self.next < self.total => {
                self.next += 1;
                self.next - 1
            }
            None => return Ok(()),
        };
        out.emit(vec![json!(sentence(i))], json!(i))?;
        self.in_flight.insert(i);
        let mut l = self.ledger.lock().unwrap();
        l.max_in_flight = l.max_in_flight.max(self.in_flight.len());
        Ok(())
    }
    fn ack(&mut self, msg_id: MsgId, _out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        let i = id_of(&msg_id);
        self.in_flight.remove(&i);
        let mut l = self.ledger.lock().unwrap();
        l.acks += 1;
        l.acked.insert(i);
        Ok(())
    }
    fn fail(&mut self, msg_id: MsgId, _out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        let i = id_of(&msg_id);
        self.in_flight.remove(&i);
        self.replay.push_back(i);
        self.ledger.lock().unwrap().fails += 1;
        Ok(())
    }
}

/// Splits sentences into words, anchored.
struct SplitBolt;

impl Bolt for SplitBolt {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["word"])
    }
    fn process(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let s = t
            .get("sentence")
            .and_then(Value::as_str)
            .ok_or("no sentence")?;
        for w in s.split(' ') {
            out.emit(&[t], vec![json!(w)])?;
        }
        Ok(())
    }
}

/// Counts words into a shared map; checks that each word reaches one task.
struct CountBolt {
    counts: Arc<Mutex<HashMap<String, u64>>>,
    owners: Arc<Mutex<HashMap<String, i32>>>,
    task: i32,
}

impl Bolt for CountBolt {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["word", "count"])
    }
    fn prepare(&mut self, ctx: &zerorpc_stream::TaskContext) -> Result<(), BoxError> {
        self.task = ctx.task;
        Ok(())
    }
    fn process(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let w = t.values[0].as_str().ok_or("no word")?.to_string();
        let owner = *self
            .owners
            .lock()
            .unwrap()
            .entry(w.clone())
            .or_insert(self.task);
        assert_eq!(owner, self.task, "fields grouping sent {w:?} to two tasks");
        let mut c = self.counts.lock().unwrap();
        let n = c.entry(w.clone()).or_insert(0);
        *n += 1;
        out.emit(&[t], vec![json!(w), json!(*n)])?;
        Ok(())
    }
}

struct Counts {
    counts: Arc<Mutex<HashMap<String, u64>>>,
    owners: Arc<Mutex<HashMap<String, i32>>>,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            counts: Default::default(),
            owners: Default::default(),
        }
    }
    fn bolt(&self) -> impl Fn() -> CountBolt + Send + Sync + 'static {
        let (counts, owners) = (self.counts.clone(), self.owners.clone());
        move || CountBolt {
            counts: counts.clone(),
            owners: owners.clone(),
            task: 0,
        }
    }
    fn sorted(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap().clone().into_iter().collect()
    }
}

fn idle_options() -> RunOptions {
    RunOptions {
        stop_when_idle: Some(Duration::from_millis(500)),
        duration: Some(Duration::from_secs(120)),
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_acks_every_tree_and_counts_exactly() {
    let n = 5_000;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let counts = Counts::new();
    let l = ledger.clone();
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    let topology = TopologyBuilder::new("wordcount")
        .spout("sentences", 1, move || SentenceSpout::new(n, l.clone()))
        .bolt("split", 2, || SplitBolt)
        .shuffle("sentences")
        .bolt("count", 3, counts.bolt())
        .fields("split", ["word"])
        .build();
    let stats = run(
        topology,
        &Registry::new(),
        RunOptions {
            stats_json: Some(stats_path.clone()),
            ..idle_options()
        },
    )
    .await
    .unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.acked.len() as u64, n);
    assert_eq!((l.acks, l.fails), (n, 0));
    assert_eq!(counts.sorted(), expected_counts(n));
    let words: u64 = expected_counts(n).values().sum();
    assert_eq!(stats.trees.started, n);
    assert_eq!(stats.trees.acked, n);
    assert_eq!(stats.trees.pending, 0);
    let split = &stats.components["split"];
    assert_eq!((split.executed, split.emitted, split.acked), (n, words, n));
    let count = &stats.components["count"];
    assert_eq!(
        (count.tasks, count.executed, count.acked),
        (3, words, words)
    );
    assert_eq!(stats.components["sentences"].acked, n);
    let written: zerorpc_stream::RunStats =
        serde_json::from_slice(&std::fs::read(&stats_path).unwrap()).unwrap();
    assert_eq!(written.trees.acked, n);
    assert_eq!(written.components["count"].executed, words);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_the_share_of_the_run_a_task_spends_working() {
    let n = 200;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let l = ledger.clone();
    let topology = TopologyBuilder::new("capacity")
        .spout("sentences", 1, move || SentenceSpout::new(n, l.clone()))
        .bolt("slow", 1, || Slow(Duration::from_millis(2)))
        .shuffle("sentences")
        .build();
    let stats = run(topology, &Registry::new(), idle_options())
        .await
        .unwrap();
    assert_eq!(stats.trees.acked, n);
    let slow = &stats.components["slow"];
    assert_eq!(slow.executed, n);
    // Its polls held at least its sleeps, and a task's polls never overlap.
    let worked = slow.capacity * stats.elapsed_secs;
    assert!(worked >= 0.002 * n as f64, "{worked} s for {n} × 2 ms");
    assert!(slow.capacity <= 1.0, "{}", slow.capacity);
    assert!(stats.trees.acker_capacity > 0.0 && stats.trees.acker_capacity < slow.capacity);
    let table = zerorpc_stream::render_table(&stats);
    assert!(table.contains("capacity"), "{table}");
}

/// Fails a share of the tuples it gets, at random.
struct Flaky {
    share: f64,
}

impl Bolt for Flaky {
    fn outputs(&self) -> Outputs {
        Outputs::none()
    }
    fn process(&mut self, _t: &Tuple, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        if rand::random::<f64>() < self.share {
            Err("flaky".into())
        } else {
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bolt_failing_ten_percent_loses_nothing() {
    let n = 3_000;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let counts = Counts::new();
    let l = ledger.clone();
    let topology = TopologyBuilder::new("flaky")
        .spout("sentences", 1, move || SentenceSpout::new(n, l.clone()))
        .bolt("split", 2, || SplitBolt)
        .shuffle("sentences")
        .bolt("flaky", 2, || Flaky { share: 0.1 })
        .shuffle("split")
        .bolt("count", 2, counts.bolt())
        .fields("split", ["word"])
        .build();
    let stats = run(topology, &Registry::new(), idle_options())
        .await
        .unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.acked.len() as u64, n, "every sentence acked in the end");
    assert_eq!(l.acks, n, "each acked once");
    assert!(l.fails > 0, "some trees failed and were replayed");
    assert_eq!(stats.trees.failed, l.fails);
    assert_eq!(stats.trees.pending, 0);
    assert!(stats.components["flaky"].failed > 0);
    assert_eq!(
        stats.components["flaky"].errors,
        stats.components["flaky"].failed
    );
    // count sees replays too (at least once): every word at least its count
    let got = counts.sorted();
    for (w, c) in expected_counts(n) {
        assert!(got[&w] >= c, "{w}: {} < {c}", got[&w]);
    }
}

/// Never acks the first delivery of every fifth sentence (its tree times
/// out and is replayed); acks the rest.
struct Forgetful {
    seen: HashSet<String>,
}

impl Bolt for Forgetful {
    fn outputs(&self) -> Outputs {
        Outputs::none()
    }
    fn auto_ack(&self) -> bool {
        false
    }
    fn process(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let s = t.values[0].as_str().unwrap_or_default().to_string();
        let i: u64 = s.len() as u64;
        if i.is_multiple_of(5) && self.seen.insert(s) {
            return Ok(());
        }
        out.ack(t);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_trees_are_replayed() {
    let n = 400;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let l = ledger.clone();
    let topology = TopologyBuilder::new("timeouts")
        .config("topology.message.timeout.secs", 1)
        .spout("sentences", 1, move || SentenceSpout::new(n, l.clone()))
        .bolt("forgetful", 1, || Forgetful {
            seen: HashSet::new(),
        })
        .global("sentences")
        .build();
    let stats = run(
        topology,
        &Registry::new(),
        RunOptions {
            stop_when_idle: Some(Duration::from_millis(1500)),
            ..idle_options()
        },
    )
    .await
    .unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.acked.len() as u64, n);
    assert!(stats.trees.timed_out > 0, "{:?}", stats.trees);
    assert_eq!(stats.trees.timed_out, l.fails);
    assert_eq!(stats.trees.pending, 0);
}

/// Sleeps this long per tuple (blocking its task, as heavy work does).
struct Slow(Duration);

impl Bolt for Slow {
    fn outputs(&self) -> Outputs {
        Outputs::none()
    }
    fn process(&mut self, _t: &Tuple, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        std::thread::sleep(self.0);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_spout_pending_bounds_trees_in_flight() {
    let n = 2_000;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let l = ledger.clone();
    let topology = TopologyBuilder::new("pending")
        .config("topology.max.spout.pending", 25)
        .spout("sentences", 1, move || SentenceSpout::new(n, l.clone()))
        .bolt("split", 1, || SplitBolt)
        .shuffle("sentences")
        .bolt("slow", 1, || Slow(Duration::from_micros(200)))
        .shuffle("split")
        .build();
    run(topology, &Registry::new(), idle_options())
        .await
        .unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.acked.len() as u64, n);
    assert!(l.max_in_flight <= 25, "{}", l.max_in_flight);
    assert!(
        l.max_in_flight >= 20,
        "the bound was reached: {}",
        l.max_in_flight
    );
}

/// Panics on the first delivery of any sentence containing "moon", per
/// instance.
struct Panicky {
    panicked: Arc<AtomicUsize>,
}

impl Bolt for Panicky {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["sentence"])
    }
    fn process(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let s = t.values[0].as_str().unwrap_or_default();
        if s.contains("moon") && self.panicked.fetch_add(1, Ordering::SeqCst) < 5 {
            panic!("moon in {s:?}");
        }
        out.emit(&[t], vec![json!(s)])?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_bolt_is_made_again_and_its_tuples_replayed() {
    let n = 500;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let l = ledger.clone();
    let panicked = Arc::new(AtomicUsize::new(0));
    let p = panicked.clone();
    let counts = Counts::new();
    let topology = TopologyBuilder::new("panics")
        .spout("sentences", 1, move || SentenceSpout::new(n, l.clone()))
        .bolt("panicky", 2, move || Panicky {
            panicked: p.clone(),
        })
        .shuffle("sentences")
        .bolt("split", 1, || SplitBolt)
        .shuffle("panicky")
        .bolt("count", 1, counts.bolt())
        .shuffle("split")
        .build();
    let stats = run(topology, &Registry::new(), idle_options())
        .await
        .unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.acked.len() as u64, n);
    assert_eq!(l.fails, 5);
    let c = &stats.components["panicky"];
    assert_eq!((c.restarts, c.errors, c.failed), (5, 5, 5));
    assert_eq!(
        counts.sorted(),
        expected_counts(n),
        "failed before emitting: no duplicate"
    );
}

/// Sums word lengths per first letter in batches.
struct LetterBatches {
    batches: Arc<Mutex<Vec<(String, usize)>>>,
}

impl BatchingBolt for LetterBatches {
    fn outputs(&self) -> Outputs {
        Outputs::none()
    }
    fn group_key(&self, t: &Tuple) -> Value {
        json!(t.values[0].as_str().unwrap_or_default().chars().next())
    }
    fn batch_secs(&self) -> f64 {
        0.2
    }
    fn process_batch(
        &mut self,
        key: &Value,
        tuples: &[Tuple],
        _out: &mut BoltCollector<'_>,
    ) -> Result<(), BoxError> {
        for t in tuples {
            let w = t.values[0].as_str().unwrap_or_default();
            assert_eq!(json!(w.chars().next()), *key);
        }
        self.batches
            .lock()
            .unwrap()
            .push((key.as_str().unwrap_or_default().to_string(), tuples.len()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batching_bolt_acks_its_batches() {
    let n = 300;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let l = ledger.clone();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let b = batches.clone();
    let registry = Registry::new().batching_bolt("LetterBatches", move |_| {
        Ok(LetterBatches { batches: b.clone() })
    });
    let mut topology = TopologyBuilder::new("batches")
        .spout("sentences", 1, move || SentenceSpout::new(n, l.clone()))
        .bolt("split", 1, || SplitBolt)
        .shuffle("sentences")
        .build();
    topology.bolts.push(zerorpc_stream::ComponentDef {
        id: "letters".into(),
        kind: zerorpc_stream::ComponentKind::Registered {
            class: "LetterBatches".into(),
            args: vec![],
        },
        parallelism: 1,
        config: Default::default(),
    });
    topology.streams.push(zerorpc_stream::StreamDef {
        name: None,
        from: "split".into(),
        to: "letters".into(),
        stream: "default".into(),
        grouping: Grouping::Shuffle,
    });
    run(topology, &registry, idle_options()).await.unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(l.acked.len() as u64, n);
    let batches = batches.lock().unwrap();
    let total: usize = batches.iter().map(|(_, n)| n).sum();
    assert_eq!(total as u64, expected_counts(n).values().sum::<u64>());
    let keys: HashSet<&str> = batches.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.len() > 3, "{batches:?}");
}

/// Emits each number to a chosen task over a direct stream and to every
/// task over `all`.
struct Director;

impl Bolt for Director {
    fn outputs(&self) -> Outputs {
        Outputs::none()
            .direct_stream("direct", ["n"])
            .stream("broadcast", ["n"])
    }
    fn process(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let n = t.values[0].as_u64().ok_or("no n")?;
        // Tasks of "sink" are 1..=3 (components in id order: director is 1,
        // numbers 2, sink 3..=5).
        let target = 3 + (n % 3) as i32;
        let got = out
            .emit_direct(target, "direct", &[t], vec![json!(n)])?
            .to_vec();
        assert_eq!(got, vec![target]);
        let all = out.emit_to("broadcast", &[t], vec![json!(n)])?.to_vec();
        assert_eq!(all, vec![3, 4, 5]);
        // An undeclared stream and a wrong arity are errors, not panics.
        let e = out.emit_to("nope", &[t], vec![json!(n)]).unwrap_err();
        assert!(matches!(e, Error::Emit { .. }), "{e}");
        let e = out.emit_to("broadcast", &[t], vec![]).unwrap_err();
        assert!(e.to_string().contains("fields"), "{e}");
        let e = out.emit_to("direct", &[t], vec![json!(n)]).unwrap_err();
        assert!(e.to_string().contains("direct"), "{e}");
        Ok(())
    }
}

struct Numbers {
    next: u64,
}

impl Spout for Numbers {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["n"])
    }
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        if self.next < 90 {
            out.emit(vec![json!(self.next)], json!(self.next))?;
            self.next += 1;
        }
        Ok(())
    }
}

struct Recorder {
    seen: Arc<Mutex<Vec<(String, i32, u64)>>>,
    task: i32,
}

impl Bolt for Recorder {
    fn outputs(&self) -> Outputs {
        Outputs::none()
    }
    fn prepare(&mut self, ctx: &zerorpc_stream::TaskContext) -> Result<(), BoxError> {
        self.task = ctx.task;
        Ok(())
    }
    fn process(&mut self, t: &Tuple, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let n = t.values[0].as_u64().ok_or("n")?;
        self.seen
            .lock()
            .unwrap()
            .push((t.stream().to_string(), self.task, n));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_all_groupings() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let topology = TopologyBuilder::new("direct")
        .spout("numbers", 1, || Numbers { next: 0 })
        .bolt("director", 1, || Director)
        .shuffle("numbers")
        .bolt("sink", 3, move || Recorder {
            seen: s.clone(),
            task: 0,
        })
        .grouping("director", "direct", Grouping::Direct)
        .grouping("director", "broadcast", Grouping::All)
        .build();
    let stats = run(topology, &Registry::new(), idle_options())
        .await
        .unwrap();
    assert_eq!((stats.trees.acked, stats.trees.failed), (90, 0));
    let seen = seen.lock().unwrap();
    let direct: Vec<_> = seen.iter().filter(|(s, _, _)| s == "direct").collect();
    assert_eq!(direct.len(), 90);
    for (_, task, n) in direct {
        assert_eq!(*task, 3 + (*n % 3) as i32);
    }
    assert_eq!(
        seen.iter().filter(|(s, _, _)| s == "broadcast").count(),
        270
    );
}

#[tokio::test]
async fn topology_mistakes_are_clear_errors() {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let l = ledger.clone();
    let t = TopologyBuilder::new("bad")
        .spout("sentences", 1, move || SentenceSpout::new(1, l.clone()))
        .bolt("count", 1, Counts::new().bolt())
        .fields("sentences", ["word"])
        .build();
    let e = run(t, &Registry::new(), idle_options())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("\"word\""), "{e}");

    let mut t = TopologyBuilder::new("bad").build();
    t.bolts.push(zerorpc_stream::ComponentDef {
        id: "x".into(),
        kind: zerorpc_stream::ComponentKind::Registered {
            class: "com.example.Nope".into(),
            args: vec![],
        },
        parallelism: 1,
        config: Default::default(),
    });
    let e = run(
        t,
        &Registry::new().bolt("Split", |_| Ok(SplitBolt)),
        idle_options(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(e, Error::UnknownClass { .. }), "{e}");
    assert!(e.to_string().contains("registered: Split"), "{e}");

    let l = ledger.clone();
    let t = TopologyBuilder::new("bad")
        .spout("sentences", 1, move || SentenceSpout::new(1, l.clone()))
        .bolt("split", 1, || SplitBolt)
        .grouping("sentences", "other", Grouping::Shuffle)
        .build();
    let e = run(t, &Registry::new(), idle_options())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("\"other\""), "{e}");
}
