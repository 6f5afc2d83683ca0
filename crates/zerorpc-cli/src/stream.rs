//! `zerorpc stream ...`: Storm-style stream processing with no JVM
//! (`zerorpc-stream`): run a Flux topology with the local runner, start a
//! project, read its logs and statistics.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use zerorpc_stream::app::{self, RunCommand};
use zerorpc_stream::runner::RunOptions;
use zerorpc_stream::{render_table, Registry, RunStats};

const EXAMPLES: &str = "\
Examples:
  zerorpc stream quickstart wordcount           a project: Rust spout and split bolt, Python count bolt, Flux file
  cd wordcount && zerorpc stream run topologies/wordcount.yaml --stop-when-idle 3 --log-dir logs
  zerorpc stream run shell.yaml --duration 30 --stats-json stats.json   shell (multi-lang) components only
  zerorpc stream tail --log-dir logs count -f   follow the count bolt's log
  zerorpc stream stats stats.json --watch       the statistics table, refreshed as the run writes it

`run` runs shell components (FluxShellSpout/FluxShellBolt) itself. A Flux file that names
Rust classes is run by the Cargo project next to it or above it, which registers them:
`cargo run --release --quiet -- run FILE [options]` there. Exit codes: 0 ok, 1 the run
failed, 2 usage or an invalid topology.";

/// Storm topologies with no JVM: Flux files, Rust and multi-lang components
#[derive(Parser, Debug)]
#[command(name = "zerorpc stream", after_help = EXAMPLES)]
pub struct StreamArgs {
    #[command(subcommand)]
    pub command: StreamCommand,
}

#[derive(Subcommand, Debug)]
pub enum StreamCommand {
    /// Run a Flux topology with the local runner
    Run(RunArgs),
    /// Create a word count project (Rust spout and bolt, Python bolt, Flux file)
    Quickstart(QuickstartArgs),
    /// Print component logs written by `run --log-dir`
    Tail(TailArgs),
    /// Print a statistics file written by `run --stats-json` as a table
    Stats(StatsArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The Flux file (YAML)
    pub file: PathBuf,
    /// Stop after this long (seconds, or 500ms, 10s, 5m, 1h)
    #[arg(long, value_name = "S", value_parser = app::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop once no tuple moved and no tree was pending for this long
    #[arg(long, value_name = "S", value_parser = app::parse_duration)]
    pub stop_when_idle: Option<Duration>,
    /// Write the statistics as JSON here (every 2 s and at the end)
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Write component logs to DIR/<component>.log
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// No live statistics table on stderr
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// When the file names Rust classes: build the project without
    /// --release (quicker to build, slower to run)
    #[arg(long)]
    pub debug: bool,
}

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// The project's directory (created; its last part names the package)
    pub name: PathBuf,
    /// The Python interpreter the count bolt runs with (one with
    /// streamparse installed); default `python3` from PATH
    #[arg(long, value_name = "PATH")]
    pub python: Option<String>,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Only this component's log (default: every component's, merged by time)
    pub component: Option<String>,
    /// The directory given to `run --log-dir`
    #[arg(long, value_name = "DIR", default_value = "logs")]
    pub log_dir: PathBuf,
    /// Keep printing lines as they are written
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print only the last N lines first
    #[arg(short = 'n', long, value_name = "N")]
    pub lines: Option<usize>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The file given to `run --stats-json`
    pub file: PathBuf,
    /// Print it again whenever it changes
    #[arg(long, short = 'w')]
    pub watch: bool,
}

/// Runs a `zerorpc stream` command.
pub fn run(args: StreamArgs, rt: &tokio::runtime::Runtime) -> ExitCode {
    let result = match args.command {
        StreamCommand::Run(a) => run_topology(a, rt),
        StreamCommand::Quickstart(a) => quickstart(&a).map(|dir| {
            print_quickstart_done(&dir);
            ExitCode::SUCCESS
        }),
        StreamCommand::Tail(a) => tail(&a, rt),
        StreamCommand::Stats(a) => stats(&a, rt),
    };
    match result {
        Ok(code) => code,
        Err((code, msg)) => {
            eprintln!("zerorpc stream: {msg}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn run_topology(a: RunArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode, Failure> {
    let topology = zerorpc_stream::flux::load(&a.file).map_err(|e| (2, e.to_string()))?;
    let classes = app::rust_classes(&topology);
    if !classes.is_empty() {
        let project = cargo_project(&absolute(&a.file)).ok_or_else(|| {
            (
                2,
                format!(
                    "{} names Rust classes ({}), which only a binary that registers them can \
                     run, and no Cargo project is next to it or above it: run it with that \
                     binary (`cargo run -- run {}`)",
                    a.file.display(),
                    classes.join(", "),
                    a.file.display()
                ),
            )
        })?;
        return delegate(&a, &project, rt);
    }
    let cmd = RunCommand {
        file: a.file.clone(),
        options: RunOptions {
            duration: a.duration,
            stop_when_idle: a.stop_when_idle,
            stats_json: a.stats_json.clone(),
            log_dir: a.log_dir.clone(),
            terminal: !a.quiet,
            ctrl_c: true,
            ..RunOptions::default()
        },
    };
    let stats = rt
        .block_on(zerorpc_stream::runner::run(
            topology,
            &Registry::new(),
            cmd.options,
        ))
        .map_err(|e| (1, e.to_string()))?;
    print!("{}", render_table(&stats));
    Ok(ExitCode::SUCCESS)
}

/// The directory of the nearest `Cargo.toml` with a package at or above
/// the file's directory.
fn cargo_project(file: &Path) -> Option<PathBuf> {
    let mut dir = file.parent();
    while let Some(d) = dir {
        let manifest = d.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            if text.lines().any(|l| l.trim() == "[package]") {
                return Some(d.to_path_buf());
            }
        }
        dir = d.parent();
    }
    None
}

/// `cargo run --release --quiet -- run FILE ...` in the project.
fn delegate(
    a: &RunArgs,
    project: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<ExitCode, Failure> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
    if !a.debug {
        args.push("--release".into());
    }
    args.extend([
        "--quiet".into(),
        "--".into(),
        "run".into(),
        absolute(&a.file).into(),
    ]);
    let secs = |d: Duration| format!("{}", d.as_secs_f64());
    if let Some(d) = a.duration {
        args.extend(["--duration".into(), secs(d).into()]);
    }
    if let Some(d) = a.stop_when_idle {
        args.extend(["--stop-when-idle".into(), secs(d).into()]);
    }
    if let Some(p) = &a.stats_json {
        args.extend(["--stats-json".into(), absolute(p).into()]);
    }
    if let Some(p) = &a.log_dir {
        args.extend(["--log-dir".into(), absolute(p).into()]);
    }
    if a.quiet {
        args.push("--quiet".into());
    }
    eprintln!(
        "zerorpc stream: the topology names Rust classes: running it with the project in {} \
         (cargo run{})",
        project.display(),
        if a.debug { "" } else { " --release" }
    );
    let status = rt.block_on(async {
        let mut child = tokio::process::Command::new(&cargo)
            .args(&args)
            .current_dir(project)
            .spawn()?;
        loop {
            tokio::select! {
                s = child.wait() => return s,
                // The child (same process group) gets Ctrl-C too and
                // drains; wait for it.
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    });
    match status {
        Ok(s) if s.success() => Ok(ExitCode::SUCCESS),
        Ok(s) => Ok(ExitCode::from(
            s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1),
        )),
        Err(e) => Err((1, format!("cannot run {cargo:?}: {e}"))),
    }
}

// ---- quickstart ----

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

fn print_quickstart_done(dir: &Path) {
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

// ---- tail ----

/// One log file being read.
struct LogFile {
    offset: u64,
    partial: String,
}

fn log_files(dir: &Path, component: Option<&str>) -> Result<Vec<PathBuf>, Failure> {
    if let Some(c) = component {
        return Ok(vec![dir.join(format!("{c}.log"))]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        (
            1,
            format!(
                "log directory {}: {e} (written by `zerorpc stream run --log-dir {}`)",
                dir.display(),
                dir.display()
            ),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads what was added to `path` since the last call: complete lines.
fn read_new(path: &Path, state: &mut LogFile) -> std::io::Result<Vec<String>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < state.offset {
        // Truncated: a new run.
        state.offset = 0;
        state.partial.clear();
    }
    f.seek(SeekFrom::Start(state.offset))?;
    let mut buf = Vec::new();
    f.take(len - state.offset).read_to_end(&mut buf)?;
    state.offset += buf.len() as u64;
    state.partial.push_str(&String::from_utf8_lossy(&buf));
    let mut lines = Vec::new();
    while let Some(i) = state.partial.find('\n') {
        lines.push(state.partial[..i].to_string());
        state.partial.drain(..=i);
    }
    Ok(lines)
}

fn tail(a: &TailArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode, Failure> {
    let mut states: BTreeMap<PathBuf, LogFile> = BTreeMap::new();
    let mut lines = Vec::new();
    for path in log_files(&a.log_dir, a.component.as_deref())? {
        let mut st = LogFile {
            offset: 0,
            partial: String::new(),
        };
        match read_new(&path, &mut st) {
            Ok(l) => lines.extend(l),
            Err(e) if a.follow && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err((1, format!("{}: {e}", path.display()))),
        }
        states.insert(path, st);
    }
    // Lines start with their UTC time: merged in time order.
    lines.sort_by(|x, y| x.split(' ').next().cmp(&y.split(' ').next()));
    let skip = a.lines.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out = std::io::stdout().lock();
    for l in &lines[skip..] {
        if writeln!(out, "{l}").is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let _ = out.flush();
    drop(out);
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
            if a.component.is_none() {
                for p in log_files(&a.log_dir, None).unwrap_or_default() {
                    states.entry(p).or_insert(LogFile {
                        offset: 0,
                        partial: String::new(),
                    });
                }
            }
            let mut new = Vec::new();
            for (path, st) in states.iter_mut() {
                if let Ok(l) = read_new(path, st) {
                    new.extend(l);
                }
            }
            new.sort_by(|x, y| x.split(' ').next().cmp(&y.split(' ').next()));
            let mut out = std::io::stdout().lock();
            for l in &new {
                if writeln!(out, "{l}").is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            if out.flush().is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
    })
}

// ---- stats ----

fn read_stats(path: &Path) -> Result<RunStats, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a statistics file: {e}", path.display()))
}

fn stats(a: &StatsArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode, Failure> {
    if !a.watch {
        let s = read_stats(&a.file).map_err(|e| (1, e))?;
        print!("{}", render_table(&s));
        return Ok(ExitCode::SUCCESS);
    }
    let clear = std::io::stdout().is_terminal();
    rt.block_on(async {
        let mut seen: Option<SystemTime> = None;
        let mut complained = false;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
            let modified = std::fs::metadata(&a.file).and_then(|m| m.modified()).ok();
            if modified.is_none() || modified == seen {
                if modified.is_none() && !complained {
                    eprintln!("zerorpc stream: waiting for {}", a.file.display());
                    complained = true;
                }
                continue;
            }
            // (the runner replaces the file whole: a read sees one version)
            match read_stats(&a.file) {
                Ok(s) => {
                    seen = modified;
                    let mut out = std::io::stdout().lock();
                    let text = if clear {
                        format!("\x1b[2J\x1b[H{}", render_table(&s))
                    } else {
                        format!("{}\n", render_table(&s))
                    };
                    if out
                        .write_all(text.as_bytes())
                        .and_then(|_| out.flush())
                        .is_err()
                    {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Err(e) => eprintln!("zerorpc stream: {e}"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
