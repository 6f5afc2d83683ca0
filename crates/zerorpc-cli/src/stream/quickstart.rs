//! `zerorpc stream quickstart`: writing a word count project from the
//! templates here (Cargo.toml, src/main.rs, a Python bolt, the Flux file).

use std::path::{Path, PathBuf};

use super::{Failure, QuickstartArgs};

/// The package name from the directory's last part.
fn package_name(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').to_string();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name = format!("topology-{name}").trim_end_matches('-').to_string();
    }
    name
}

/// This checkout's zerorpc-stream crate, when the CLI runs from one.
fn checkout_crate() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zerorpc-stream");
    let dir = std::fs::canonicalize(dir).ok()?;
    dir.join("Cargo.toml").is_file().then_some(dir)
}

/// Writes the project; its directory.
pub fn quickstart(a: &QuickstartArgs) -> Result<PathBuf, Failure> {
    let dir = &a.name;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err((2, format!("{} exists and is not empty", dir.display())));
    }
    let name = package_name(dir);
    let (dependency, lock) = match checkout_crate() {
        Some(path) => (
            format!(
                "zerorpc-stream = {{ path = {} }}",
                toml_string(&path.display().to_string())
            ),
            // The checkout's lock file: the same versions as the checkout
            // (and its build cache).
            path.join("../../Cargo.lock"),
        ),
        None => (
            format!("zerorpc-stream = \"{}\"", env!("CARGO_PKG_VERSION")),
            PathBuf::new(),
        ),
    };
    let python = a.python.clone().unwrap_or_else(|| "python3".into());
    let files: [(&str, String); 5] = [
        (
            "Cargo.toml",
            CARGO_TOML
                .replace("{name}", &name)
                .replace("{dependency}", &dependency),
        ),
        ("src/main.rs", MAIN_RS.to_string()),
        ("bolts/count.py", COUNT_PY.to_string()),
        (
            "topologies/wordcount.yaml",
            WORDCOUNT_YAML.replace("{python}", &yaml_string(&python)),
        ),
        ("README.md", README_MD.replace("{name}", &name)),
    ];
    let io = |what: &Path, e: std::io::Error| (1, format!("{}: {e}", what.display()));
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    if lock.is_file() {
        let to = dir.join("Cargo.lock");
        std::fs::copy(&lock, &to).map_err(|e| io(&to, e))?;
    }
    Ok(dir.clone())
}

pub(super) fn print_quickstart_done(dir: &Path) {
    println!(
        "Created {d}: a word count topology (Rust sentence spout and split bolt in src/main.rs,
a Python count bolt in bolts/count.py, the wiring in topologies/wordcount.yaml).

The count bolt needs a Python with streamparse:
    python3 -m venv {d}/.venv && {d}/.venv/bin/pip install streamparse
    export PATH=\"$PWD/{d}/.venv/bin:$PATH\"

Run it:
    cd {d}
    zerorpc stream run topologies/wordcount.yaml --stop-when-idle 3 --log-dir logs
(or: cargo run --release -- run topologies/wordcount.yaml --stop-when-idle 3 --log-dir logs)",
        d = dir.display()
    );
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn yaml_string(s: &str) -> String {
    // A JSON string is a YAML flow scalar.
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
{dependency}
mimalloc = { version = "0.1", default-features = false }

# A project of its own, even inside another workspace's directory.
[workspace]
"#;

const MAIN_RS: &str = r#"//! The word count topology's Rust components, registered by the class names
//! the Flux file (topologies/wordcount.yaml) uses. `cargo run -- run
//! topologies/wordcount.yaml` runs it; `cargo run -- list` lists the classes;
//! `cargo run -- multilang wordcount.SplitBolt` serves the split bolt as a
//! Storm multi-lang program (what a FluxShellBolt runs on a Storm cluster).

use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;

use zerorpc_stream::{
    Bolt, BoltCollector, BoxError, MsgId, Outputs, Registry, Spout, SpoutCollector, Tuple, Value,
};

const SENTENCES: &[&str] = &[
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
    "snow white and the seven dwarfs",
    "i am at two with nature",
];

/// Emits sentences, each tracked with its number as message id: a sentence
/// whose tree fails (or times out) is emitted again, until it is acked.
struct SentenceSpout {
    /// How many sentences to emit (`None`: forever).
    limit: Option<u64>,
    next: u64,
    /// Emitted and not acked yet.
    pending: BTreeMap<u64, String>,
    /// Failed: emitted again before new ones.
    replay: VecDeque<u64>,
}

impl SentenceSpout {
    /// `constructorArgs: [N]`: N sentences (0 or none: forever).
    fn new(args: &[Value]) -> Result<SentenceSpout, BoxError> {
        let limit = match args.first() {
            None => None,
            Some(v) => match v.as_u64() {
                Some(0) => None,
                Some(n) => Some(n),
                None => return Err(format!("SentenceSpout: {v} is not a count").into()),
            },
        };
        Ok(SentenceSpout {
            limit,
            next: 0,
            pending: BTreeMap::new(),
            replay: VecDeque::new(),
        })
    }
}

impl Spout for SentenceSpout {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["sentence"])
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        if let Some(id) = self.replay.pop_front() {
            if let Some(sentence) = self.pending.get(&id) {
                out.emit(vec![sentence.as_str().into()], id.into())?;
            }
            return Ok(());
        }
        if self.limit.is_some_and(|limit| self.next >= limit) {
            return Ok(());
        }
        let id = self.next;
        self.next += 1;
        let sentence = SENTENCES[id as usize % SENTENCES.len()].to_string();
        out.emit(vec![sentence.as_str().into()], id.into())?;
        self.pending.insert(id, sentence);
        Ok(())
    }

    fn ack(&mut self, msg_id: MsgId, _out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        if let Some(id) = msg_id.as_u64() {
            self.pending.remove(&id);
        }
        Ok(())
    }

    fn fail(&mut self, msg_id: MsgId, _out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        if let Some(id) = msg_id.as_u64() {
            if self.pending.contains_key(&id) {
                self.replay.push_back(id);
            }
        }
        Ok(())
    }
}

/// Splits sentences into words, each anchored to its sentence.
struct SplitBolt;

impl Bolt for SplitBolt {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["word"])
    }

    fn process(&mut self, tuple: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let sentence = tuple
            .get("sentence")
            .and_then(Value::as_str)
            .ok_or("a sentence that is not a string")?;
        for word in sentence.split_whitespace() {
            out.emit(&[tuple], vec![word.to_lowercase().into()])?;
        }
        Ok(())
    }
}

fn registry() -> Registry {
    Registry::new()
        .spout("wordcount.SentenceSpout", SentenceSpout::new)
        .bolt("wordcount.SplitBolt", |_args| Ok(SplitBolt))
}

/// The runner allocates tuples on one thread and frees them on another:
/// mimalloc does that far faster than the system's malloc (about a third
/// less CPU per tuple tree, measured with glibc).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    zerorpc_stream::app::main(registry())
}
"#;

const COUNT_PY: &str = r#""""Counts words: a streamparse bolt, run by the topology as a Storm
multi-lang subprocess (`python3 bolts/count.py`), as Storm's ShellBolt would.

Needs streamparse (pip install streamparse). Each word comes in as a
tuple [word]; the bolt emits [word, count so far], anchored to it and acked
when process returns (streamparse's auto_anchor and auto_ack).
"""

from collections import Counter

from streamparse import Bolt


class WordCountBolt(Bolt):
    outputs = ["word", "count"]

    def initialize(self, conf, ctx):
        self.counts = Counter()

    def process(self, tup):
        word = tup.values[0]
        self.counts[word] += 1
        self.emit([word, self.counts[word]])


if __name__ == "__main__":
    WordCountBolt().run()
"#;

const WORDCOUNT_YAML: &str = r#"# The word count: sentences (Rust) -> split (Rust) -> count (Python).
# Storm Flux: `zerorpc stream run topologies/wordcount.yaml` runs it here;
# the Rust classes are registered in src/main.rs.
name: "wordcount"

config:
  topology.message.timeout.secs: 30
  topology.max.spout.pending: 1000

spouts:
  - id: "sentences"
    className: "wordcount.SentenceSpout"
    # how many sentences to emit (0: forever)
    constructorArgs: [10000]
    parallelism: 1

bolts:
  - id: "split"
    className: "wordcount.SplitBolt"
    parallelism: 2

  - id: "count"
    className: "org.apache.storm.flux.wrappers.bolts.FluxShellBolt"
    constructorArgs:
      # the command, run in this file's directory (Storm: the jar's resources/)
      - [{python}, "../bolts/count.py"]
      # its output fields
      - ["word", "count"]
    parallelism: 2

streams:
  - name: "sentences --> split"
    from: "sentences"
    to: "split"
    grouping:
      type: SHUFFLE

  - name: "split --> count"
    from: "split"
    to: "count"
    grouping:
      type: FIELDS
      args: ["word"]
"#;

const README_MD: &str = r#"# {name}

A word count in Apache Storm's model, run with zerorpc-stream's local runner
(no JVM):

- `src/main.rs`: a Rust sentence spout (every sentence tracked with a message
  id, emitted again when its tree fails or times out) and a Rust split bolt,
  registered under the class names the Flux file uses;
- `bolts/count.py`: a Python count bolt (streamparse), run as a Storm
  multi-lang subprocess;
- `topologies/wordcount.yaml`: the topology, in Storm Flux: sentences →
  split (shuffle) → count (fields grouping on `word`).

## Run

The count bolt needs a Python with streamparse on `PATH` as `python3`:

    python3 -m venv .venv && .venv/bin/pip install streamparse
    export PATH="$PWD/.venv/bin:$PATH"

Then:

    zerorpc stream run topologies/wordcount.yaml --stop-when-idle 3 --log-dir logs

(the file names Rust classes, so `zerorpc stream run` runs this project's
binary: `cargo run --release -- run topologies/wordcount.yaml ...`, which you
can also type yourself). Options: `--duration S`, `--stop-when-idle S`,
`--stats-json FILE`, `--log-dir DIR`, `--quiet`. Then:

    zerorpc stream tail --log-dir logs count       # the count bolt's log
    zerorpc stream stats stats.json --watch        # with --stats-json stats.json

`cargo run -- list` lists the registered classes.

## On a Storm cluster

The same Flux file describes the topology to Storm's `org.apache.storm.flux.Flux`.
There the Rust components run as multi-lang subprocesses: declare them as
`FluxShellSpout`/`FluxShellBolt` with the command
`[./{name}, multilang, wordcount.SplitBolt]` (the binary built for the
cluster's machines, in the jar's `resources/`, next to `bolts/count.py`).
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use zerorpc_stream::app;

    #[test]
    fn package_names() {
        assert_eq!(package_name(Path::new("/x/WordCount")), "wordcount");
        assert_eq!(package_name(Path::new("my_topo")), "my-topo");
        assert_eq!(package_name(Path::new("1st")), "topology-1st");
        assert_eq!(package_name(Path::new("/")), "topology");
    }

    #[test]
    fn the_templates_flux_file_parses() {
        let yaml = WORDCOUNT_YAML.replace("{python}", &yaml_string("/opt/py 3/bin/python"));
        let t =
            zerorpc_stream::flux::parse(&yaml, Path::new("/p/topologies/wordcount.yaml")).unwrap();
        assert_eq!(
            app::rust_classes(&t),
            ["wordcount.SentenceSpout", "wordcount.SplitBolt"]
        );
        match &t.bolts[1].kind {
            zerorpc_stream::ComponentKind::Shell { command, .. } => {
                assert_eq!(command, &["/opt/py 3/bin/python", "../bolts/count.py"])
            }
            _ => panic!("count is not a shell bolt"),
        }
    }
}
