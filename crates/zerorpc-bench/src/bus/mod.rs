//! `zerorpc-bench bus [--quick]`: the event bus against fedmsg's own
//! publisher and `tail_messages`, on this machine, in one run.
//!
//! Rows: confirmed durable publishes/s, one at a time and pipelined;
//! messages/s delivered to 1 and 10 subscribers; p50/p99 publish-to-delivery
//! latency. Baseline: fedmsg 1.1.7's `FedMsgContext.publish` (binding its
//! own PUB, no confirmation, no log) → `tail_messages` in Python processes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Event, Filters, Since, Subscription};
use zerorpc_testkit as common;

const PY_PUB: &str = include_str!("fedmsg_pub.py");
const PY_TAIL: &str = include_str!("fedmsg_tail.py");

struct Sizes {
    sequential: usize,
    pipelined: usize,
    delivered: usize,
    latency: usize,
    fedmsg: usize,
}

/// A Python process with piped stdin/stdout.
struct Py {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Py {
    fn start(script: &str, args: &[String]) -> Py {
        let mut child = Command::new(common::fedmsg_python())
            .arg("-u")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Py { child, out }
    }

    fn line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.out.read_line(&mut line).expect("read") > 0,
                "python exited"
            );
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }

    fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"GO\n").expect("write");
        stdin.flush().expect("flush");
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// fedmsg publisher → `subs` tails: (published/s, delivered/s in total,
/// messages lost).
fn fedmsg_run(n: usize, subs: usize) -> (f64, f64, usize) {
    let port = common::free_port();
    let mut publisher = Py::start(PY_PUB, &[port.to_string(), n.to_string()]);
    publisher.line("READY");
    let ep = format!("tcp://127.0.0.1:{port}");
    let mut tails: Vec<Py> = (0..subs)
        .map(|_| Py::start(PY_TAIL, &[ep.clone(), n.to_string()]))
        .collect();
    for t in &mut tails {
        t.line("WARM");
    }
    publisher.go();
    let published: Value = serde_json::from_str(&publisher.line("RESULT ")).expect("json");
    let mut rate = 0.0;
    let mut lost = 0;
    for t in &mut tails {
        let r: Value = serde_json::from_str(&t.line("RESULT ")).expect("json");
        let got = r["received"].as_u64().unwrap_or(0) as usize;
        let secs = r["seconds"].as_f64().unwrap_or(f64::NAN);
        lost += n - got.min(n);
        rate += got as f64 / secs;
    }
    (
        published["published_per_s"].as_f64().unwrap_or(f64::NAN),
        rate,
        lost,
    )
}

/// fedmsg publisher → the `fedmsg-tail` command (its default output: one
/// log line a message): (delivered/s, messages lost).
fn fedmsg_tail_cli(n: usize) -> (f64, usize) {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("zerorpc-bench-fedmsg-tail-{port}"));
    std::fs::create_dir_all(dir.join("fedmsg.d")).expect("config dir");
    std::fs::write(
        dir.join("fedmsg.d/bench.py"),
        format!("config = dict(endpoints={{'bench': ['tcp://127.0.0.1:{port}']}}, io_threads=1)\n"),
    )
    .expect("config");
    let mut publisher = Py::start(PY_PUB, &[port.to_string(), n.to_string()]);
    publisher.line("READY");
    let mut tail = Command::new(common::fedmsg_python())
        .arg("-c")
        .arg(
            "import sys; sys.argv = ['fedmsg-tail']\nfrom fedmsg.commands.tail import tail\ntail()",
        )
        .current_dir(&dir)
        .env("HOME", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fedmsg-tail");
    let mut out = BufReader::new(tail.stdout.take().expect("stdout"));
    let mut line = String::new();
    // Its first warmup line: it is listening.
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "fedmsg-tail exited"
        );
        if line.contains("bench.warmup") {
            break;
        }
    }
    publisher.go();
    // (count, first, last) as the reader sees lines; it stops at `n`, we
    // stop waiting 5 s after the last one (fedmsg-tail may lose some).
    let seen = std::sync::Arc::new(std::sync::Mutex::new((
        0usize,
        None::<Instant>,
        Instant::now(),
    )));
    std::thread::spawn({
        let seen = seen.clone();
        move || {
            let mut line = String::new();
            loop {
                line.clear();
                match out.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.contains("bench.load") => {
                        let mut s = seen.lock().expect("lock");
                        let now = Instant::now();
                        s.0 += 1;
                        s.1.get_or_insert(now);
                        s.2 = now;
                        if s.0 >= n {
                            break;
                        }
                    }
                    Ok(_) => {}
                }
            }
        }
    });
    let started = Instant::now();
    let (got, secs) = loop {
        std::thread::sleep(Duration::from_millis(100));
        let s = *seen.lock().expect("lock");
        let idle = s.1.is_some() && s.2.elapsed() > Duration::from_secs(5);
        if s.0 >= n || idle || started.elapsed() > Duration::from_secs(300) {
            let secs = s.1.map(|f| (s.2 - f).as_secs_f64()).unwrap_or(f64::NAN);
            break (s.0, secs);
        }
    };
    let _ = tail.kill();
    let _ = tail.wait();
    let _ = std::fs::remove_dir_all(&dir);
    (got as f64 / secs, n - got.min(n))
}

/// `zerorpc bus tail --json` (the CLI, printing every message) following
/// the daemon while `n` messages are published: delivered/s.
async fn our_tail_cli(bus: &str, p: &Publisher, n: usize) -> f64 {
    let exe = std::env::current_exe().expect("exe");
    let cli = exe.with_file_name("zerorpc");
    assert!(
        cli.exists(),
        "build the CLI first: cargo build --release -p zerorpc-cli"
    );
    let mut tail = tokio::process::Command::new(cli)
        .args([
            "bus",
            "tail",
            "--bus",
            bus,
            "--json",
            "--count",
            &n.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zerorpc bus tail");
    let mut err = tokio::io::BufReader::new(tail.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        use tokio::io::AsyncBufReadExt;
        line.clear();
        assert!(
            err.read_line(&mut line).await.expect("read") > 0,
            "tail exited"
        );
        if line.contains("following") {
            break;
        }
    }
    let mut out = tokio::io::BufReader::new(tail.stdout.take().expect("stdout"));
    let t = Instant::now();
    let publishing = {
        let p = p.clone();
        tokio::spawn(async move { pipelined(&p, n).await })
    };
    let mut got = 0;
    while got < n {
        use tokio::io::AsyncBufReadExt;
        line.clear();
        if out.read_line(&mut line).await.expect("read") == 0 {
            break;
        }
        got += 1;
    }
    let rate = got as f64 / t.elapsed().as_secs_f64();
    publishing.await.expect("publisher");
    let _ = tail.kill().await;
    rate
}

/// A subscriber reading `n` stored messages from the start of the log.
async fn catch_up(bus: &str, n: usize) -> f64 {
    let mut sub = Subscription::bus(bus, Since::Start, Filters::default())
        .await
        .expect("subscribe");
    let t = Instant::now();
    let got = count(&mut sub, n).await;
    got as f64 / t.elapsed().as_secs_f64()
}

/// Receives up to `n` messages (fewer if the subscription ends).
async fn count(sub: &mut Subscription, n: usize) -> usize {
    let mut got = 0;
    while got < n {
        match sub.next().await {
            Some(Event::Message(_)) => got += 1,
            Some(Event::Quarantined { reason, .. }) => panic!("{reason}"),
            None => break,
        }
    }
    got
}

fn body(k: usize) -> Value {
    json!({"text": "x".repeat(200), "n": k})
}

async fn sequential(p: &Publisher, n: usize) -> f64 {
    let t = Instant::now();
    for k in 0..n {
        p.publish("seq", body(k)).await.expect("confirmed");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

async fn pipelined(p: &Publisher, n: usize) -> f64 {
    let t = Instant::now();
    let window = 16_384;
    let mut done = 0;
    while done < n {
        let batch = window.min(n - done);
        let results = p
            .publish_all("pipe", (0..batch).map(|k| body(done + k)))
            .await;
        for c in results {
            c.expect("confirmed");
        }
        done += batch;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// `subs` live subscribers while `n` messages are published pipelined:
/// messages/s delivered, all subscribers together.
async fn delivered(bus: &str, p: &Publisher, n: usize, subs: usize) -> f64 {
    let mut followers = Vec::new();
    for _ in 0..subs {
        let sub = Subscription::bus(bus, Since::Next, Filters::default())
            .await
            .expect("subscribe");
        followers.push(tokio::spawn(async move {
            let mut sub = sub;
            count(&mut sub, n).await
        }));
    }
    let t = Instant::now();
    let publishing = {
        let p = p.clone();
        tokio::spawn(async move { pipelined(&p, n).await })
    };
    let mut total = 0;
    for f in followers {
        total += f.await.expect("follower");
    }
    publishing.await.expect("publisher");
    total as f64 / t.elapsed().as_secs_f64()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// p50 and p99 publish-to-delivery latency (µs), one message at a time.
async fn latency(bus: &str, p: &Publisher, n: usize) -> (f64, f64) {
    let mut sub = Subscription::bus(bus, Since::Next, Filters::default())
        .await
        .expect("subscribe");
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..n {
        p.publish_nowait("lat", json!({"t": now_ns()}))
            .await
            .expect("queued");
        loop {
            match sub.next().await {
                Some(Event::Message(d)) if d.message.topic.ends_with(".lat") => {
                    let sent = d.message.msg["t"].as_u64().unwrap_or(0);
                    let _ = hist.record(now_ns().saturating_sub(sent) / 1000);
                    break;
                }
                Some(_) => {}
                None => panic!("subscription ended"),
            }
        }
    }
    (
        hist.value_at_quantile(0.5) as f64,
        hist.value_at_quantile(0.99) as f64,
    )
}

/// Runs the comparison and prints it (markdown).
pub async fn bus_bench(quick: bool) {
    let s = if quick {
        Sizes {
            sequential: 500,
            pipelined: 20_000,
            delivered: 20_000,
            latency: 500,
            fedmsg: 10_000,
        }
    } else {
        Sizes {
            sequential: 3_000,
            pipelined: 200_000,
            delivered: 100_000,
            latency: 3_000,
            fedmsg: 50_000,
        }
    };
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    step("provisioning fedmsg's venv (first run only)");
    common::fedmsg_python();

    step("fedmsg: Python publisher → 1 tail_messages");
    let (py_pub, py_del1, lost1) = tokio::task::spawn_blocking({
        let n = s.fedmsg;
        move || fedmsg_run(n, 1)
    })
    .await
    .expect("fedmsg run");
    step("fedmsg: Python publisher → fedmsg-tail (the command)");
    let (py_cli, lost_cli) = tokio::task::spawn_blocking({
        let n = s.fedmsg;
        move || fedmsg_tail_cli(n)
    })
    .await
    .expect("fedmsg-tail run");
    step("fedmsg: Python publisher → 10 tail_messages");
    let (_, py_del10, lost10) = tokio::task::spawn_blocking({
        let n = s.fedmsg / 5;
        move || fedmsg_run(n, 10)
    })
    .await
    .expect("fedmsg run");

    let dir = std::env::temp_dir().join(format!("zerorpc-bench-bus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let daemon = Daemon::start(DaemonOptions::ephemeral(&dir))
        .await
        .expect("daemon");
    let bus = daemon.ingest_endpoint().to_owned();
    let p = Publisher::connect(PublisherOptions::new(&bus))
        .await
        .expect("publisher");
    step("ours: confirmed publishes, one at a time");
    let seq = sequential(&p, s.sequential).await;
    step("ours: confirmed publishes, pipelined");
    let pipe = pipelined(&p, s.pipelined).await;
    step("ours: delivered to 1 subscriber");
    let del1 = delivered(&bus, &p, s.delivered, 1).await;
    step("ours: a subscriber catching up from the log");
    let caught = catch_up(&bus, s.pipelined).await;
    step("ours: zerorpc bus tail --json (the command)");
    let cli = our_tail_cli(&bus, &p, s.delivered).await;
    step("ours: delivered to 10 subscribers");
    let del10 = delivered(&bus, &p, s.delivered / 5, 10).await;
    step("ours: publish-to-delivery latency");
    let (p50, p99) = latency(&bus, &p, s.latency).await;
    drop(p);
    daemon.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!("| row | zerorpc-bus | fedmsg 1.1.7 | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| publishes/s, one at a time (ours: each confirmed durable; fedmsg: unconfirmed) | {seq:.0} | {py_pub:.0} | {:.2}× |",
        seq / py_pub
    );
    println!(
        "| publishes/s, pipelined (ours: confirmed durable; fedmsg: unconfirmed) | {pipe:.0} | {py_pub:.0} | {:.1}× |",
        pipe / py_pub
    );
    println!(
        "| messages/s delivered, 1 subscriber | {del1:.0} | {py_del1:.0} (lost {lost1}) | {:.1}× |",
        del1 / py_del1
    );
    println!(
        "| messages/s delivered, 10 subscribers (all together) | {del10:.0} | {py_del10:.0} (lost {lost10}) | {:.1}× |",
        del10 / py_del10
    );
    println!(
        "| messages/s delivered, the tail command printing each (`zerorpc bus tail --json` / `fedmsg-tail`) | {cli:.0} | {py_cli:.0} (lost {lost_cli}) | {:.1}× |",
        cli / py_cli
    );
    println!(
        "| messages/s delivered from the log (a subscriber catching up; fedmsg has no log) | {caught:.0} | – | {:.1}× fedmsg-tail live |",
        caught / py_cli
    );
    println!("| publish-to-delivery latency p50 / p99 (µs), ours | {p50:.0} / {p99:.0} | | |");
    step("done");
}
