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
        let s = t.values.first().and_then(Value::as_str).ok_or("no sentence")?;
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

pub(crate) async fn stream_bench(quick: bool) {
    let secs = if quick { 3.0 } else { 10.0 };
    println!("| word count | trees/s | × | tuples/s | × | failed |");
    println!("|---|---|---|---|---|---|");
    for (split, count) in [(1, 1), (1, 2), (2, 2)] {
        let r = in_process(secs, split, count).await;
        row(&format!("Rust in process, split {split} count {count}"), &r, None);
    }
}
