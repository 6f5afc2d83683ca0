//! `zerorpc stream`: quickstart (the generated project builds and runs
//! through `zerorpc stream run`), run's errors, tail and stats on the files
//! a run writes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zerorpc_stream::{render_table, ComponentStats, RunStats, TreeStats};

const BIN: &str = env!("CARGO_BIN_EXE_zerorpc");

/// Runs a command to its end, killing it (and failing) after `limit`.
fn output(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read both pipes as the command runs (a full pipe would stall it).
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&e.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: o.join().expect("stdout reader"),
        stderr: e.join().expect("stderr reader"),
    }
}

fn zerorpc(args: &[&str]) -> Output {
    output(Command::new(BIN).args(args), Duration::from_secs(60))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// A child killed on drop, with its stdout lines on a channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(args: &[&str]) -> Follower {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    /// Lines until one contains `needle` (fails after 30 s).
    fn until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l.contains(needle);
                    seen.push(l);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; got {seen:#?}"),
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tail_merges_filters_and_follows_component_logs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // The runner's format: UTC time, level, [component:task], message.
    std::fs::write(
        logs.join("split.log"),
        "2026-01-01T00:00:01.000Z INFO  [split:3] one\n2026-01-01T00:00:03.000Z WARN  [split:4] three\n",
    )
    .unwrap();
    std::fs::write(
        logs.join("count.log"),
        "2026-01-01T00:00:02.000Z INFO  [count:1] two\n2026-01-01T00:00:04.000Z ERROR [count:2] four\n",
    )
    .unwrap();
    std::fs::write(logs.join("notes.txt"), "not a log\n").unwrap();
    let d = logs.to_str().unwrap();

    let o = zerorpc(&["stream", "tail", "--log-dir", d]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let msgs: Vec<&str> = out.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(msgs, ["one", "two", "three", "four"], "{out}");

    let o = zerorpc(&["stream", "tail", "--log-dir", d, "count"]);
    assert_eq!(
        text(&o.stdout),
        "2026-01-01T00:00:02.000Z INFO  [count:1] two\n2026-01-01T00:00:04.000Z ERROR [count:2] four\n"
    );
    let o = zerorpc(&["stream", "tail", "--log-dir", d, "-n", "1"]);
    assert_eq!(
        text(&o.stdout),
        "2026-01-01T00:00:04.000Z ERROR [count:2] four\n"
    );

    let o = zerorpc(&["stream", "tail", "--log-dir", d, "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("nope.log"), "{}", text(&o.stderr));
    let o = zerorpc(&["stream", "tail", "--log-dir", "/nonexistent/logs"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--log-dir"), "{}", text(&o.stderr));

    // Follow: lines written later (a partial line only once complete), and
    // a component whose log appears later.
    let f = Follower::start(&["stream", "tail", "--log-dir", d, "-f"]);
    f.until("four");
    let mut split = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("split.log"))
        .unwrap();
    split
        .write_all(b"2026-01-01T00:00:05.000Z INFO  [split:3] fi")
        .unwrap();
    split.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    split.write_all(b"ve\n").unwrap();
    std::fs::write(
        logs.join("sink.log"),
        "2026-01-01T00:00:06.000Z INFO  [sink:9] six\n",
    )
    .unwrap();
    let mut got = f.until("five");
    got.extend(f.until("six"));
    assert!(got.iter().any(|l| l.ends_with("[split:3] five")), "{got:?}");
}

fn sample_stats(acked: u64) -> RunStats {
    let mut s = RunStats {
        topology: "wordcount".into(),
        elapsed_secs: 4.0,
        trees: TreeStats {
            started: 100,
            acked,
            failed: 1,
            timed_out: 0,
            pending: 100 - acked - 1,
            acker_capacity: 0.25,
        },
        ..RunStats::default()
    };
    s.components.insert(
        "sentences".into(),
        ComponentStats {
            kind: "spout".into(),
            tasks: 1,
            emitted: 100,
            acked,
            ..ComponentStats::default()
        },
    );
    s.components.insert(
        "split".into(),
        ComponentStats {
            kind: "bolt".into(),
            tasks: 2,
            emitted: 700,
            executed: 100,
            acked: 100,
            latency_ms: 0.25,
            ..ComponentStats::default()
        },
    );
    s
}

#[test]
fn stats_renders_a_stats_file_and_watches_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stats.json");
    let first = sample_stats(90);
    std::fs::write(&file, serde_json::to_vec(&first).unwrap()).unwrap();
    let f = file.to_str().unwrap();

    let o = zerorpc(&["stream", "stats", f]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), render_table(&first));
    assert!(text(&o.stdout).contains("90 acked"));

    std::fs::write(dir.path().join("bad.json"), "{\"topology\": 3}").unwrap();
    let o = zerorpc(&[
        "stream",
        "stats",
        dir.path().join("bad.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("not a statistics file"),
        "{}",
        text(&o.stderr)
    );
    let o = zerorpc(&["stream", "stats", "/nonexistent/stats.json"]);
    assert_eq!(o.status.code(), Some(1));

    let w = Follower::start(&["stream", "stats", f, "--watch"]);
    w.until("90 acked");
    // A new version (written whole, as the runner does: write and rename).
    let second = sample_stats(99);
    let tmp = dir.path().join("stats.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&second).unwrap()).unwrap();
    // (a distinct modification time even on coarse clocks)
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::rename(&tmp, &file).unwrap();
    w.until("99 acked");
}

#[test]
fn run_reports_invalid_topologies_and_rust_classes_without_a_project() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: x\nspouts:\n  - className: S\n").unwrap();
    let o = zerorpc(&["stream", "run", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("missing field `id` at line 3"), "{e}");

    let rust = dir.path().join("rust.yaml");
    std::fs::write(
        &rust,
        "name: x\nspouts:\n  - id: s\n    className: my.Spout\nbolts:\n  - id: b\n    className: my.Bolt\nstreams:\n  - from: s\n    to: b\n    grouping: {type: SHUFFLE}\n",
    )
    .unwrap();
    let o = zerorpc(&["stream", "run", rust.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(
        e.contains("Rust classes (my.Spout, my.Bolt)") && e.contains("no Cargo project"),
        "{e}"
    );

    let o = zerorpc(&[
        "stream",
        "run",
        rust.to_str().unwrap(),
        "--duration",
        "soon",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("not a duration"),
        "{}",
        text(&o.stderr)
    );

    let o = zerorpc(&["help", "stream"]);
    assert!(
        text(&o.stdout).contains("quickstart"),
        "{}",
        text(&o.stdout)
    );
}

/// The quickstart project compiles, and `zerorpc stream run` runs a Flux
/// file naming its Rust classes through it (`cargo run`): every sentence
/// tree acked, the statistics file and the logs written, `stats` reading
/// the file. (The Python count bolt needs the runner's shell components:
/// see `quickstart_word_count_with_the_python_bolt`.)
#[test]
fn quickstart_project_builds_and_runs_its_rust_classes() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("WordCount");
    let o = zerorpc(&["stream", "quickstart", project.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("zerorpc stream run topologies/wordcount.yaml"));
    for f in [
        "Cargo.toml",
        "src/main.rs",
        "bolts/count.py",
        "topologies/wordcount.yaml",
        "README.md",
    ] {
        assert!(project.join(f).is_file(), "{f} missing");
    }
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"wordcount\""), "{manifest}");
    assert!(
        manifest.contains("zerorpc-stream = { path = "),
        "{manifest}"
    );
    // Not over an existing project.
    let o = zerorpc(&["stream", "quickstart", project.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("not empty"), "{}", text(&o.stderr));

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let o = output(
        Command::new(&cargo)
            .args(["check", "--offline", "--quiet"])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", target_dir()),
        Duration::from_secs(900),
    );
    assert!(o.status.success(), "cargo check: {}", text(&o.stderr));

    // The Rust part of the topology, through the CLI and the project.
    std::fs::write(
        project.join("topologies/rust.yaml"),
        "name: rust-only\nconfig:\n  topology.max.spout.pending: 50\nspouts:\n  - id: sentences\n    className: wordcount.SentenceSpout\n    constructorArgs: [200]\nbolts:\n  - id: split\n    className: wordcount.SplitBolt\n    parallelism: 2\nstreams:\n  - from: sentences\n    to: split\n    grouping: {type: SHUFFLE}\n",
    )
    .unwrap();
    let stats = dir.path().join("stats.json");
    let logs = dir.path().join("logs");
    let o = output(
        Command::new(BIN)
            .args(["stream", "run", "--debug", "topologies/rust.yaml"])
            .args(["--stop-when-idle", "1", "--duration", "300", "--quiet"])
            .arg("--stats-json")
            .arg(&stats)
            .arg("--log-dir")
            .arg(&logs)
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("CARGO_NET_OFFLINE", "true"),
        Duration::from_secs(900),
    );
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("running it with the project in"), "{err}");
    let s: RunStats = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s.topology, "rust-only");
    assert_eq!(
        (s.trees.started, s.trees.acked, s.trees.failed),
        (200, 200, 0)
    );
    assert_eq!(s.components["sentences"].emitted, 200);
    assert_eq!(s.components["split"].executed, 200);
    // 200 sentences, 40 of each: 6, 8, 6, 6 and 6 words.
    assert_eq!(s.components["split"].emitted, 40 * (6 + 8 + 6 + 6 + 6));
    assert_eq!(out, render_table(&s), "the final table is the file's");
    assert!(logs.join("split.log").is_file() && logs.join("sentences.log").is_file());
    let o = zerorpc(&["stream", "stats", stats.to_str().unwrap()]);
    assert_eq!(text(&o.stdout), render_table(&s));

    let o = output(
        Command::new(&cargo)
            .args(["run", "--offline", "--quiet", "--", "list"])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", target_dir()),
        Duration::from_secs(900),
    );
    assert_eq!(
        text(&o.stdout),
        "spout wordcount.SentenceSpout\nbolt wordcount.SplitBolt\n",
        "{}",
        text(&o.stderr)
    );
}

/// The whole quickstart topology, with the Python count bolt (streamparse)
/// as a multi-lang subprocess: every sentence counted once.
#[test]
fn quickstart_word_count_with_the_python_bolt() {
    let python = zerorpc_testkit::streamparse_python();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("wc");
    let o = zerorpc(&[
        "stream",
        "quickstart",
        project.to_str().unwrap(),
        "--python",
        python.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let yaml = project.join("topologies/wordcount.yaml");
    let flux = std::fs::read_to_string(&yaml)
        .unwrap()
        .replace("constructorArgs: [10000]", "constructorArgs: [100]");
    std::fs::write(&yaml, flux).unwrap();
    let stats = dir.path().join("stats.json");
    let o = output(
        Command::new(BIN)
            .args(["stream", "run", "--debug", "topologies/wordcount.yaml"])
            .args(["--stop-when-idle", "2", "--duration", "300", "--quiet"])
            .arg("--stats-json")
            .arg(&stats)
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("CARGO_NET_OFFLINE", "true"),
        Duration::from_secs(900),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s: RunStats = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!((s.trees.started, s.trees.acked), (100, 100));
    let words = 20 * (6 + 8 + 6 + 6 + 6);
    assert_eq!(s.components["count"].executed, words);
    assert_eq!(s.components["count"].emitted, words);
}
