//! The runner driving real streamparse/pystorm components (pip's
//! streamparse 5.0.1, pystorm 3.1.4) as multi-lang subprocesses: JSON and
//! msgpack, Python-only and mixed Rust + Python topologies, stray stdout,
//! busy, stuck and dying subprocesses.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{expected_counts, sorted, LastCount, RustCount, RustSentences};
use zerorpc_stream::runner::{run, RunOptions};
use zerorpc_stream::{Outputs, Registry, RunStats, Topology, TopologyBuilder};

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// `python -m streamparse.run components.CLASS` in the test venv.
fn component(class: &str, msgpack: bool) -> Vec<String> {
    let py = zerorpc_testkit::streamparse_python();
    let mut c = vec![
        py.display().to_string(),
        "-m".into(),
        "streamparse.run".into(),
        format!("components.{class}"),
    ];
    if msgpack {
        c.extend(["-s".into(), "msgpack".into()]);
    }
    c
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn options(log_dir: &Path) -> RunOptions {
    RunOptions {
        stop_when_idle: Some(Duration::from_secs(2)),
        duration: Some(Duration::from_secs(240)),
        log_dir: Some(log_dir.to_path_buf()),
        ..RunOptions::default()
    }
}

async fn python_word_count(msgpack: bool) {
    let n = 300;
    let dir = tempfile::tempdir().unwrap();
    let last = Arc::new(Mutex::new(HashMap::new()));
    let l = last.clone();
    let mut b = TopologyBuilder::new("py-wordcount")
        .config("test.sentences", n)
        .shell_spout(
            "sentences",
            1,
            &refs(&component("SentenceSpout", msgpack)),
            Outputs::fields(["sentence"]),
        )
        .shell_bolt(
            "split",
            2,
            &refs(&component("SplitBolt", msgpack)),
            Outputs::fields(["word"]),
        )
        .shuffle("sentences")
        .shell_bolt(
            "count",
            2,
            &refs(&component("CountBolt", msgpack)),
            Outputs::fields(["word", "count"]),
        )
        .fields("split", ["word"])
        .bolt("last", 1, move || LastCount { last: l.clone() })
        .shuffle("count");
    if msgpack {
        b = b.config(
            "topology.multilang.serializer",
            "org.apache.storm.multilang.MsgpackSerializer",
        );
    }
    let mut topology = b.build();
    topology.base_dir = Some(python_dir());
    let stats = run(topology, &Registry::new(), options(dir.path()))
        .await
        .unwrap();
    assert_all_acked(&stats, n);
    let words: u64 = expected_counts(n).values().sum();
    assert_eq!(stats.components["split"].executed, n);
    assert_eq!(stats.components["count"].executed, words);
    // Each word's last count is its total: exact.
    assert_eq!(sorted(&last), expected_counts(n));
}

fn assert_all_acked(stats: &RunStats, n: u64) {
    assert_eq!(stats.trees.started, n, "{stats:#?}");
    assert_eq!(stats.trees.acked, n, "{stats:#?}");
    assert_eq!(
        (
            stats.trees.failed,
            stats.trees.timed_out,
            stats.trees.pending
        ),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamparse_word_count_json() {
    python_word_count(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamparse_word_count_msgpack() {
    python_word_count(true).await;
}

/// Rust spout → Python split → Rust count, and Rust spout → Rust split
/// (through the Python count) in one topology.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_rust_and_python_components() {
    let n = 400;
    let dir = tempfile::tempdir().unwrap();
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let c = counts.clone();
    let mut topology = TopologyBuilder::new("mixed")
        .spout("sentences", 1, move || RustSentences {
            next: 0,
            total: n,
            replay: Vec::new(),
        })
        .shell_bolt(
            "split",
            2,
            &refs(&component("SplitBolt", false)),
            Outputs::fields(["word"]),
        )
        .shuffle("sentences")
        .bolt("count", 2, move || RustCount { counts: c.clone() })
        .fields("split", ["word"])
        .build();
    topology.base_dir = Some(python_dir());
    let stats = run(topology, &Registry::new(), options(dir.path()))
        .await
        .unwrap();
    assert_all_acked(&stats, n);
    assert_eq!(sorted(&counts), expected_counts(n));
    assert_eq!(stats.components["sentences"].acked, n);
}

fn trouble_topology(
    n: u64,
    mode: &str,
    dir: &Path,
    counts: Arc<Mutex<HashMap<String, u64>>>,
) -> Topology {
    let mut topology = TopologyBuilder::new("trouble")
        .config("topology.subprocess.timeout.secs", 1)
        .config("topology.message.timeout.secs", 30)
        .config("test.trouble", mode)
        .config("test.dir", dir.display().to_string())
        .config("test.stray", "yes")
        .spout("sentences", 1, move || RustSentences {
            next: 0,
            total: n,
            replay: Vec::new(),
        })
        .shell_bolt(
            "split",
            1,
            &refs(&component("SplitBolt", false)),
            Outputs::fields(["word"]),
        )
        .shuffle("sentences")
        .shell_bolt(
            "trouble",
            1,
            &refs(&component("TroubleBolt", false)),
            Outputs::fields(["word"]),
        )
        .shuffle("split")
        .bolt("count", 1, move || RustCount {
            counts: counts.clone(),
        })
        .shuffle("trouble")
        .build();
    topology.base_dir = Some(python_dir());
    topology
}

fn log_of(dir: &Path, component: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{component}.log"))).unwrap_or_default()
}

/// A bolt computing for 3 s with a 1 s subprocess timeout is busy: not
/// killed. Stray lines on split's stdout are reported with the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_subprocess_is_not_killed_and_stray_lines_are_reported() {
    let n = 200;
    let dir = tempfile::tempdir().unwrap();
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let topology = trouble_topology(n, "busy", dir.path(), counts.clone());
    let stats = run(topology, &Registry::new(), options(dir.path()))
        .await
        .unwrap();
    assert!(
        dir.path().join("trouble-busy").exists(),
        "the bolt was busy"
    );
    assert_all_acked(&stats, n);
    assert_eq!(stats.components["trouble"].restarts, 0, "{stats:#?}");
    assert_eq!(sorted(&counts), expected_counts(n), "nothing replayed");
    let log = log_of(dir.path(), "trouble");
    assert!(log.contains("busy, not killed"), "{log}");
    let split = log_of(dir.path(), "split");
    assert!(
        split.contains("stray output on stdout (not protocol): debug: a stray line 50"),
        "{split}"
    );
    assert_eq!(stats.components["split"].errors, n / 50);
}

/// A bolt that sleeps with its tuple is stuck: killed, reported, restarted;
/// its tuples in flight fail and replay; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subprocess_is_killed_and_restarted() {
    trouble_restart("stuck", "stuck: no message and no CPU time").await;
}

/// A bolt whose process exits is reported with its exit status and
/// restarted; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_subprocess_is_reported_and_restarted() {
    trouble_restart("exit", "exited: exit status: 3").await;
}

async fn trouble_restart(mode: &str, report: &str) {
    let n = 200;
    let dir = tempfile::tempdir().unwrap();
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let topology = trouble_topology(n, mode, dir.path(), counts.clone());
    let stats = run(topology, &Registry::new(), options(dir.path()))
        .await
        .unwrap();
    assert!(dir.path().join(format!("trouble-{mode}")).exists());
    assert_eq!(stats.trees.acked, n, "{stats:#?}");
    assert_eq!(stats.trees.pending, 0);
    assert!(stats.trees.failed >= 1, "{stats:#?}");
    assert_eq!(stats.components["trouble"].restarts, 1, "{stats:#?}");
    // At least once: every word at least its count.
    let got = sorted(&counts);
    for (w, c) in expected_counts(n) {
        assert!(got.get(&w).copied().unwrap_or(0) >= c, "{w}");
    }
    let log = log_of(dir.path(), "trouble");
    assert!(log.contains(report), "{log}");
}

/// `sparse quickstart`'s own word count components, unchanged: its spout
/// emits untracked words forever; its count bolt weighs "dog" 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_quickstart_components_run_unchanged() {
    let py = zerorpc_testkit::streamparse_python();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(py)
        .args([
            "-c",
            "import sys; from streamparse.cli.sparse import main; sys.argv=['sparse','quickstart','wc']; main()",
        ])
        .env("LEIN_ROOT", "1")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let src = dir.path().join("wc/src");
    assert!(
        src.join("bolts/wordcount.py").exists(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_py = |class: &str| {
        vec![
            py.display().to_string(),
            "-m".into(),
            "streamparse.run".into(),
            class.to_string(),
        ]
    };
    let last = Arc::new(Mutex::new(HashMap::new()));
    let l = last.clone();
    let mut topology = TopologyBuilder::new("wordcount")
        .shell_spout(
            "word_spout",
            1,
            &refs(&run_py("spouts.words.WordSpout")),
            Outputs::fields(["word"]),
        )
        .shell_bolt(
            "count_bolt",
            2,
            &refs(&run_py("bolts.wordcount.WordCountBolt")),
            Outputs::fields(["word", "count"]),
        )
        .fields("word_spout", ["word"])
        .bolt("last", 1, move || LastCount { last: l.clone() })
        .shuffle("count_bolt")
        .build();
    topology.base_dir = Some(src);
    let stats = run(
        topology,
        &Registry::new(),
        RunOptions {
            duration: Some(Duration::from_secs(4)),
            log_dir: Some(dir.path().join("logs")),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    let spout = &stats.components["word_spout"];
    let count = &stats.components["count_bolt"];
    assert!(spout.emitted > 100, "{stats:#?}");
    assert_eq!(count.executed, spout.emitted, "every word counted");
    assert_eq!(stats.components["last"].executed, count.emitted);
    // The cycle dog, cat, zebra, elephant: dog counts 10 each.
    let last = sorted(&last);
    let dogs = last["dog"] / 10;
    assert_eq!(last["dog"] % 10, 0);
    let total: u64 = dogs + last["cat"] + last["zebra"] + last["elephant"];
    assert_eq!(total, spout.emitted, "{last:?}");
    assert_eq!(
        stats.trees.started, 0,
        "the quickstart's spout emits untracked"
    );
}

fn load_flux(name: &str) -> Topology {
    // The Flux files name the interpreter through ${ENV-...}.
    std::env::set_var(
        "ZTEST_STREAMPARSE_PYTHON",
        zerorpc_testkit::streamparse_python(),
    );
    zerorpc_stream::flux::load(&python_dir().join(name)).unwrap()
}

/// streamparse's word count from a Flux file, every component a Python
/// subprocess: every tree acked, the Python count bolts' counts exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_file_of_streamparse_components() {
    let dir = tempfile::tempdir().unwrap();
    let mut topology = load_flux("wordcount.yaml");
    topology.config.insert(
        "test.counts_dir".into(),
        dir.path().display().to_string().into(),
    );
    let stats = run(topology, &Registry::new(), options(dir.path()))
        .await
        .unwrap();
    let n = 300;
    assert_all_acked(&stats, n);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let m: BTreeMap<String, u64> =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for (w, c) in m {
                assert!(counts.insert(w, c).is_none(), "a word on two tasks");
            }
        }
    }
    assert_eq!(counts, expected_counts(n));
}

/// A Flux file mixing Rust classes (from the registry) and a Python bolt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_file_mixing_rust_and_python() {
    let dir = tempfile::tempdir().unwrap();
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let c = counts.clone();
    let registry = Registry::new()
        .spout("test.Sentences", |args| {
            Ok(RustSentences {
                next: 0,
                total: args.first().and_then(|v| v.as_u64()).ok_or("a count")?,
                replay: Vec::new(),
            })
        })
        .bolt("test.Count", move |_| Ok(RustCount { counts: c.clone() }));
    let stats = run(load_flux("mixed.yaml"), &registry, options(dir.path()))
        .await
        .unwrap();
    assert_all_acked(&stats, 400);
    assert_eq!(sorted(&counts), expected_counts(400));
}
