//! `zerorpc-bench stream`: word count through the stream runner.
//!
//! Rows (one run, ratios to the pystorm topology run by the same runner):
//! - in process: a Rust spout, split and count bolts, XOR acking on;
//! - multi-lang: the same spout with the split and count bolts as our
//!   multi-lang example programs (subprocesses), JSON and msgpack;
//! - pystorm: a pystorm spout and pystorm split/count bolts as
//!   subprocesses (streamparse's word count);
//! - one pystorm bolt driven by our runner against the same bolt driven by
//!   a minimal Python driver (our side must not be the bottleneck).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use zerorpc_stream::runner::{run, RunOptions};
use zerorpc_stream::{
    Bolt, BoltCollector, BoxError, MsgId, Outputs, Registry, RunStats, Spout, SpoutCollector,
    TopologyBuilder, Tuple, Value,
};

const SENTENCES: &[&str] = &[
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
    "snow white and the seven dwarfs",
    "i am at two with nature",
];

/// Emits sentences forever, tracked; replays failures.
pub(crate) struct SentenceSpout {
    next: u64,
    replay: Vec<u64>,
}

impl SentenceSpout {
    pub(crate) fn new() -> SentenceSpout {
        SentenceSpout {
            next: 0,
            replay: Vec::new(),
        }
    }
}

impl Spout for SentenceSpout {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["sentence"])
    }
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        let i = self.replay.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next
        });
        let s = SENTENCES[(i % SENTENCES.len() as u64) as usize];
        out.emit(vec![Value::String(s.to_string())], json!(i))?;
        Ok(())
    }
    fn fail(&mut self, msg_id: MsgId, _out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        if let Some(i) = msg_id.as_u64() {
            self.replay.push(i);
        }
        Ok(())
    }
}

pub(crate) struct Split;

impl Bolt for Split {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["word"])
    }
    fn process(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let s = t
            .values
            .first()
            .and_then(Value::as_str)
            .ok_or("no sentence")?;
        for w in s.split(' ') {
            out.emit(&[t], vec![Value::String(w.to_string())])?;
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct Count {
    counts: HashMap<String, u64>,
}

impl Bolt for Count {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["word", "count"])
    }
    fn process(&mut self, t: &Tuple, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let w = t.values.first().and_then(Value::as_str).ok_or("no word")?;
        match self.counts.get_mut(w) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(w.to_string(), 1);
            }
        }
        Ok(())
    }
}

/// Trees/s and tuples/s (executed by bolts) of a finished run.
pub(crate) struct Rates {
    pub(crate) trees: f64,
    pub(crate) tuples: f64,
    pub(crate) failed: u64,
    /// The run's statistics table (components' rates and capacity).
    pub(crate) table: String,
}

pub(crate) fn rates(stats: &RunStats) -> Rates {
    let secs = stats.elapsed_secs.max(1e-9);
    let executed: u64 = stats
        .components
        .values()
        .filter(|c| c.kind == "bolt")
        .map(|c| c.executed)
        .sum();
    Rates {
        trees: stats.trees.acked as f64 / secs,
        tuples: executed as f64 / secs,
        failed: stats.trees.failed + stats.trees.timed_out,
        table: zerorpc_stream::render_table(stats),
    }
}

pub(crate) fn options(secs: f64) -> RunOptions {
    RunOptions {
        duration: Some(Duration::from_secs_f64(secs)),
        ..RunOptions::default()
    }
}

async fn in_process(secs: f64, split: u32, count: u32) -> Rates {
    let t = TopologyBuilder::new("wordcount-rust")
        .config("topology.max.spout.pending", 20_000)
        .spout("sentences", 1, SentenceSpout::new)
        .bolt("split", split, || Split)
        .shuffle("sentences")
        .bolt("count", count, Count::default)
        .fields("split", ["word"])
        .build();
    let stats = run(t, &Registry::new(), options(secs))
        .await
        .expect("in-process word count");
    rates(&stats)
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

pub(crate) fn row(name: &str, r: &Rates, base: Option<&Rates>) {
    let ratio = |a: f64, b: Option<f64>| match b {
        Some(b) if b > 0.0 => format!("{:.1}×", a / b),
        _ => "–".into(),
    };
    println!(
        "| {name} | {} | {} | {} | {} | {} |",
        fmt_rate(r.trees),
        ratio(r.trees, base.map(|b| b.trees)),
        fmt_rate(r.tuples),
        ratio(r.tuples, base.map(|b| b.tuples)),
        r.failed
    );
}

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/stream")
}

/// `python -m streamparse.run components.CLASS` in the streamparse venv.
fn pystorm(class: &str) -> Vec<String> {
    vec![
        zerorpc_testkit::streamparse_python().display().to_string(),
        "-m".into(),
        "streamparse.run".into(),
        format!("components.{class}"),
    ]
}

/// One of our multi-lang example programs (release build).
fn ours(name: &str) -> Vec<String> {
    let exe = std::env::current_exe().expect("current exe");
    let path = exe
        .parent()
        .map(|d| d.join("examples").join(name))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            eprintln!(
                "{name} is missing: run `cargo build --release --examples -p zerorpc-stream` first"
            );
            std::process::exit(2)
        });
    vec![path.display().to_string()]
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Word count with the split and count bolts as shell components (and a
/// Rust or a pystorm spout).
const ML_JSON: &str = "Rust spout, our multi-lang split and count (JSON)";

/// The word count with a Rust spout and our multi-lang split and count
/// (JSON): the `ml` mode and a row of the full run.
async fn ours_multilang_json(secs: f64) -> Rates {
    shell_word_count(
        secs,
        None,
        ours("multilang_split"),
        ours("multilang_count"),
        false,
    )
    .await
}

/// The word count with a Rust spout and pystorm's split and count (JSON).
async fn pystorm_bolts_json(secs: f64) -> Rates {
    shell_word_count(
        secs,
        None,
        pystorm("SplitBolt"),
        pystorm("CountBolt"),
        false,
    )
    .await
}

async fn shell_word_count(
    secs: f64,
    spout: Option<Vec<String>>,
    split: Vec<String>,
    count: Vec<String>,
    msgpack: bool,
) -> Rates {
    let mut b = TopologyBuilder::new("wordcount-shell").config("topology.max.spout.pending", 5_000);
    if msgpack {
        b = b.config(
            "topology.multilang.serializer",
            "org.apache.storm.multilang.MsgpackSerializer",
        );
    }
    b = match &spout {
        Some(cmd) => b.shell_spout("sentences", 1, &refs(cmd), Outputs::fields(["sentence"])),
        None => b.spout("sentences", 1, SentenceSpout::new),
    };
    let mut t = b
        .shell_bolt("split", 1, &refs(&split), Outputs::fields(["word"]))
        .shuffle("sentences")
        .shell_bolt(
            "count",
            1,
            &refs(&count),
            Outputs::fields(["word", "count"]),
        )
        .fields("split", ["word"])
        .build();
    t.base_dir = Some(here());
    let stats = run(t, &Registry::new(), options(secs))
        .await
        .expect("shell word count");
    rates(&stats)
}

/// How one bolt was driven: its tuples/s, and the CPU seconds per tuple
/// of the driver and of the bolt (the driver is not the bottleneck when
/// its share is small; on a shared machine these hold better than rates).
struct Drive {
    rate: f64,
    driver_cpu: f64,
    bolt_cpu: f64,
}

/// CPU seconds (user + system) of this process and of its waited-for
/// children, from `/proc/self/stat`.
fn cpu_self_and_children() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let rest = &stat[stat.rfind(')').expect("stat") + 1..];
    // After the command: state is field 3; utime, stime, cutime, cstime
    // are fields 14 to 17.
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|x| x.parse().expect("stat field"))
        .collect();
    // Clock ticks: 100 per second on Linux.
    ((f[0] + f[1]) / 100.0, (f[2] + f[3]) / 100.0)
}

/// One pystorm count bolt fed words by a Rust spout through the runner.
async fn runner_drives_pystorm_bolt(secs: f64) -> Drive {
    struct Words(u64);
    impl Spout for Words {
        fn outputs(&self) -> Outputs {
            Outputs::fields(["word"])
        }
        fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
            const W: &[&str] = &["the", "cow", "jumped", "over", "moon", "apple", "day"];
            self.0 += 1;
            out.emit(vec![json!(W[(self.0 % 7) as usize])], json!(self.0))?;
            Ok(())
        }
    }
    let mut t = TopologyBuilder::new("one-bolt")
        .config("topology.max.spout.pending", 1_000)
        .spout("words", 1, || Words(0))
        .shell_bolt(
            "count",
            1,
            &refs(&pystorm("CountBolt")),
            Outputs::fields(["word", "count"]),
        )
        .shuffle("words")
        .build();
    t.base_dir = Some(here());
    let (own0, children0) = cpu_self_and_children();
    let stats = run(t, &Registry::new(), options(secs))
        .await
        .expect("one pystorm bolt");
    let (own1, children1) = cpu_self_and_children();
    let n = stats.components["count"].executed as f64;
    Drive {
        rate: n / stats.elapsed_secs,
        driver_cpu: (own1 - own0) / n,
        bolt_cpu: (children1 - children0) / n,
    }
}

/// The same bolt driven by `driver.py` (1,000 in flight, as above).
fn python_drives_pystorm_bolt(secs: f64) -> Drive {
    let py = zerorpc_testkit::streamparse_python();
    let mut args = vec![
        here().join("driver.py").display().to_string(),
        secs.to_string(),
        "1000".into(),
        "--".into(),
    ];
    args.extend(pystorm("CountBolt"));
    let out = std::process::Command::new(py)
        .args(&args)
        .output()
        .expect("driver.py");
    // "RATE DRIVER_CPU_PER_TUPLE BOLT_CPU_PER_TUPLE"
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    match f[..] {
        [rate, driver_cpu, bolt_cpu] => Drive {
            rate,
            driver_cpu,
            bolt_cpu,
        },
        _ => panic!("driver.py: {text} {}", String::from_utf8_lossy(&out.stderr)),
    }
}

pub(crate) async fn stream_bench(quick: bool) {
    let secs = if quick { 3.0 } else { 10.0 };
    // `--only drivers`: just the last table (to look at one case).
    if std::env::args().any(|a| a == "drivers") {
        let ours = runner_drives_pystorm_bolt(secs).await;
        let py = python_drives_pystorm_bolt(secs);
        drive_table(&py, &ours);
        return;
    }
    // `ml`: just our multi-lang bolts (JSON), for profiling; the runner's
    // table shows each task's capacity.
    if std::env::args().any(|a| a == "ml") {
        std::env::set_var("ZERORPC_STREAM_NEED_TASK_IDS", "0");
        let ml = ours_multilang_json(secs).await;
        row(ML_JSON, &ml, None);
        eprintln!("{}", ml.table);
        return;
    }
    // pystorm components send need_task_ids false; ours do the same here
    // (the row with task ids shows their cost).
    std::env::set_var("ZERORPC_STREAM_NEED_TASK_IDS", "0");
    let base = shell_word_count(
        secs,
        Some(pystorm("SentenceSpout")),
        pystorm("SplitBolt"),
        pystorm("CountBolt"),
        false,
    )
    .await;
    println!("word count, spout → split → count (fields), acking on, {secs} s per row; × is against the pystorm topology (first row)");
    println!();
    println!("| word count | trees/s | × | tuples/s | × | failed |");
    println!("|---|---|---|---|---|---|");
    row("pystorm spout, split, count (JSON)", &base, None);
    let py_bolts = pystorm_bolts_json(secs).await;
    row(
        "Rust spout, pystorm split and count (JSON)",
        &py_bolts,
        Some(&base),
    );
    let py_bolts_mp = shell_word_count(
        secs,
        None,
        pystorm_mp("SplitBolt"),
        pystorm_mp("CountBolt"),
        true,
    )
    .await;
    row(
        "Rust spout, pystorm split and count (msgpack)",
        &py_bolts_mp,
        Some(&base),
    );
    let ml = ours_multilang_json(secs).await;
    row(ML_JSON, &ml, Some(&base));
    let ml_mp = shell_word_count(
        secs,
        None,
        ours("multilang_split"),
        ours("multilang_count"),
        true,
    )
    .await;
    row(
        "Rust spout, our multi-lang split and count (msgpack)",
        &ml_mp,
        Some(&base),
    );
    std::env::set_var("ZERORPC_STREAM_NEED_TASK_IDS", "1");
    let ml_ids = shell_word_count(
        secs,
        None,
        ours("multilang_split"),
        ours("multilang_count"),
        false,
    )
    .await;
    row("… the same, JSON, need_task_ids true", &ml_ids, Some(&base));
    for (split, count) in [(1, 1), (2, 2)] {
        let r = in_process(secs, split, count).await;
        row(
            &format!("Rust in process, split {split} count {count}"),
            &r,
            Some(&base),
        );
    }
    // The JSON pair again in the reverse order (A B … B A): the machine's
    // speed drifts over a run (±20% here), and the sums of an ABBA
    // sequence cancel a linear drift.
    std::env::set_var("ZERORPC_STREAM_NEED_TASK_IDS", "0");
    let ml2 = ours_multilang_json(secs).await;
    let py_bolts2 = pystorm_bolts_json(secs).await;
    println!();
    println!(
        "multi-lang bolts against pystorm bolts (same Rust spout): {:.1}× trees/s (JSON; {:.1}× in the table, {:.1}× in the pair run again after it: {} against {} trees/s), {:.1}× (msgpack)",
        (ml.trees + ml2.trees) / (py_bolts.trees + py_bolts2.trees).max(1e-9),
        ml.trees / py_bolts.trees.max(1e-9),
        ml2.trees / py_bolts2.trees.max(1e-9),
        fmt_rate(ml2.trees),
        fmt_rate(py_bolts2.trees),
        ml_mp.trees / py_bolts_mp.trees.max(1e-9)
    );
    let ours = runner_drives_pystorm_bolt(secs).await;
    let py = python_drives_pystorm_bolt(secs);
    println!();
    drive_table(&py, &ours);
}

fn drive_table(py: &Drive, ours: &Drive) {
    println!("| one pystorm count bolt driven by | tuples/s | × | driver CPU µs/tuple | bolt CPU µs/tuple |");
    println!("|---|---|---|---|---|");
    for (name, d) in [
        ("a minimal Python driver (driver.py, 1,000 in flight)", py),
        ("our runner (Rust spout, max pending 1,000)", ours),
    ] {
        println!(
            "| {name} | {} | {:.2}× | {:.1} | {:.1} |",
            fmt_rate(d.rate),
            d.rate / py.rate.max(1e-9),
            d.driver_cpu * 1e6,
            d.bolt_cpu * 1e6
        );
    }
}

fn pystorm_mp(class: &str) -> Vec<String> {
    let mut c = pystorm(class);
    c.extend(["-s".into(), "msgpack".into()]);
    c
}
