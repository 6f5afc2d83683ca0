//! Test support shared by this crate's integration tests: the sentence
//! corpus (tests/python/components.py has the same), word counting
//! components, and the example programs' paths.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::json;
use zerorpc_stream::{Bolt, BoltCollector, BoxError, Outputs, Spout, SpoutCollector, Tuple};

pub const WORDS: &[&str] = &[
    "the", "cow", "jumped", "over", "moon", "an", "apple", "a", "day", "keeps", "doctor", "away",
];

/// Sentence `i` (components.py has the same).
pub fn sentence(i: u64) -> String {
    let n = 3 + (i % 5) as usize;
    (0..n)
        .map(|k| WORDS[(i as usize * 7 + k * 3) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn expected_counts(n: u64) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        for w in sentence(i).split(' ') {
            *m.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    m
}

/// Records the last count seen per word (from a count bolt's emits).
pub struct LastCount {
    pub last: Arc<Mutex<HashMap<String, u64>>>,
}

impl Bolt for LastCount {
    fn outputs(&self) -> Outputs {
        Outputs::none()
    }
    fn process(&mut self, t: &Tuple, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let w = t.values[0].as_str().ok_or("word")?.to_string();
        let c = t.values[1].as_u64().ok_or("count")?;
        let mut last = self.last.lock().unwrap();
        let e = last.entry(w).or_insert(0);
        *e = (*e).max(c);
        Ok(())
    }
}

/// Counts words in Rust.
pub struct RustCount {
    pub counts: Arc<Mutex<HashMap<String, u64>>>,
}

impl Bolt for RustCount {
    fn outputs(&self) -> Outputs {
        Outputs::none()
    }
    fn process(&mut self, t: &Tuple, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let w = t.values[0].as_str().ok_or("word")?.to_string();
        *self.counts.lock().unwrap().entry(w).or_insert(0) += 1;
        Ok(())
    }
}

/// Sentences `0..total`, tracked, replaying failures.
pub struct RustSentences {
    pub next: u64,
    pub total: u64,
    pub replay: Vec<u64>,
}

impl Spout for RustSentences {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["sentence"])
    }
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        let i = match self.replay.pop() {
            Some(i) => i,
            None if self.next < self.total => {
                self.next += 1;
                self.next - 1
            }
            None => return Ok(()),
        };
        out.emit(vec![json!(sentence(i))], json!(i))?;
        Ok(())
    }
    fn fail(
        &mut self,
        id: zerorpc_stream::MsgId,
        _out: &mut SpoutCollector<'_>,
    ) -> Result<(), BoxError> {
        self.replay.push(id.as_u64().ok_or("id")?);
        Ok(())
    }
}

/// An example program, built by `cargo test` next to the test binaries
/// (`cargo test --test NAME` alone does not build examples).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo build --examples -p zerorpc-stream`",
        path.display()
    );
    path
}

/// A shared map's contents, sorted.
pub fn sorted(m: &Arc<Mutex<HashMap<String, u64>>>) -> BTreeMap<String, u64> {
    m.lock().unwrap().clone().into_iter().collect()
}
