//! `zerorpc bus ...` end to end: the daemon as its own process (serve,
//! publish, tail, replay, record, publish --file, config), and `kill -9`
//! of the daemon after confirmations: every confirmed message is in the
//! log after a restart.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use zerorpc_bus::daemon::BusServiceClient;
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_testkit::{free_port, scratch_dir, within};

const BIN: &str = env!("CARGO_BIN_EXE_zerorpc");

/// `zerorpc bus ARGS` with a clean environment (no ZERORPC_BUS_*, HOME in
/// the scratch dir), waited for (at most a minute).
fn bus(home: &Path, args: &[&str]) -> Output {
    zerorpc_testkit::output_within_a_minute(&mut command(home, args))
}

fn command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("bus")
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME");
    for (k, _) in std::env::vars() {
        if k.starts_with("ZERORPC_BUS_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A long-running `zerorpc bus ...`, killed (SIGKILL) on drop.
struct Bg {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Bg {
    /// Starts it and waits for a stderr line containing `ready`.
    fn start(home: &Path, args: &[&str], ready: &str) -> Bg {
        let mut child = command(home, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run zerorpc");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            let mut said = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[bus] {line}");
                if !said && line.contains(&ready) {
                    said = true;
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("zerorpc bus {args:?} never said it was ready"));
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Bg { child, stdout }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        assert!(
            self.stdout.read_line(&mut line).expect("read") > 0,
            "it exited"
        );
        line.trim_end().to_owned()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Endpoints {
    ingest: String,
    publish: String,
    replay: String,
}

impl Endpoints {
    fn new() -> Endpoints {
        let ep = || format!("tcp://127.0.0.1:{}", free_port());
        Endpoints {
            ingest: ep(),
            publish: ep(),
            replay: ep(),
        }
    }

    fn serve(&self, home: &Path, store: &Path, extra: &[&str]) -> Bg {
        let store = store.to_str().unwrap();
        let mut args = vec![
            "serve",
            "--ingest",
            &self.ingest,
            "--publish",
            &self.publish,
            "--replay",
            &self.replay,
            "--store",
            store,
        ];
        args.extend_from_slice(extra);
        Bg::start(home, &args, "serving")
    }
}

#[test]
fn serve_publish_tail_replay_record_and_republish() {
    let home = scratch_dir("bus-cli");
    let eps = Endpoints::new();
    let _daemon = eps.serve(&home, &home.join("log"), &[]);
    let b = eps.ingest.as_str();
    let mut tail = Bg::start(
        &home,
        &["tail", "--bus", b, "--json", "--count", "3"],
        "following",
    );
    for (k, topic) in ["alpha.one", "alpha.two", "beta.one"].iter().enumerate() {
        let body = json!({"k": k, "text": "h\u{e9}"}).to_string();
        let out = bus(
            &home,
            &["publish", "--bus", b, "--modname", "cli", topic, &body],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let said = text(&out.stdout);
        assert!(
            said.trim_end().ends_with(&format!("seq {}", k + 1)),
            "{said}"
        );
    }
    for (k, topic) in ["alpha.one", "alpha.two", "beta.one"].iter().enumerate() {
        let m: Value = serde_json::from_str(&tail.line()).unwrap();
        assert_eq!(m["topic"], format!("org.fedoraproject.dev.cli.{topic}"));
        assert_eq!(m["msg"], json!({"k": k, "text": "h\u{e9}"}));
        assert_eq!(m["i"], 1, "each CLI publish is a new publisher");
    }

    // Replay from the log, with a topic glob.
    let out = bus(
        &home,
        &[
            "replay",
            "--bus",
            b,
            "--since-seq",
            "1",
            "--json",
            "*.alpha.*",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["topic"], "org.fedoraproject.dev.cli.alpha.two");
    let human = text(&bus(&home, &["replay", "--bus", b, "--since-seq", "3"]).stdout);
    assert!(
        human.starts_with("3 org.fedoraproject.dev.cli.beta.one {"),
        "{human}"
    );

    // Record, then publish the recording again: new messages, same bodies.
    let file = home.join("rec.jsonl");
    let f = file.to_str().unwrap();
    let out = bus(
        &home,
        &["record", f, "--bus", b, "--since-seq", "1", "--count", "3"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let recorded = std::fs::read_to_string(&file).unwrap();
    assert_eq!(recorded.lines().count(), 3);
    let out = bus(&home, &["publish", "--bus", b, "--file", f]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = bus(&home, &["replay", "--bus", b, "--since-seq", "4", "--json"]);
    let again: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(again.len(), 3);
    for (old, new) in recorded
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .zip(&again)
    {
        assert_eq!(old["topic"], new["topic"]);
        assert_eq!(old["msg"], new["msg"]);
        assert_ne!(old["msg_id"], new["msg_id"]);
    }

    // Bad input: a clear error and the usage exit code.
    let out = bus(&home, &["publish", "--bus", b, "x", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not JSON"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn config_shows_each_value_and_where_it_came_from() {
    let home = scratch_dir("bus-cli-config");
    let file = home.join("bus.toml");
    std::fs::write(&file, "environment = \"stg\"\nretention = \"12h\"\n").unwrap();
    let out = command(
        &home,
        &[
            "config",
            "--config",
            file.to_str().unwrap(),
            "--bus",
            "tcp://127.0.0.1:1234",
        ],
    )
    .env("ZERORPC_BUS_TOPIC_PREFIX", "org.example")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let line = |key: &str| {
        said.lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("no {key} in:\n{said}"))
            .to_owned()
    };
    assert!(
        line("environment").contains("\"stg\"") && line("environment").contains("file"),
        "{said}"
    );
    assert!(
        line("topic_prefix").contains("org.example")
            && line("topic_prefix").contains("ZERORPC_BUS_TOPIC_PREFIX"),
        "{said}"
    );
    assert!(
        line("ingest").contains("tcp://127.0.0.1:1234") && line("ingest").contains("flag"),
        "{said}"
    );
    assert!(line("publish").contains("default"), "{said}");
    // A typo is an error, not ignored.
    let out = command(&home, &["config"])
        .env("ZERORPC_BUS_ENVIRONEMNT", "prod")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("ZERORPC_BUS_ENVIRONMENT"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_confirmations_loses_nothing_confirmed() {
    let home = scratch_dir("bus-cli-kill9");
    let store = home.join("log");
    let eps = Endpoints::new();
    let daemon = eps.serve(&home, &store, &[]);
    let mut o = PublisherOptions::new(&eps.ingest);
    o.confirm_timeout = Duration::from_secs(2);
    let p = Publisher::connect(o).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let publishing = tokio::spawn({
        let p = p.clone();
        async move {
            for round in 0u64.. {
                let sends: Vec<_> = (0..200)
                    .map(|k| p.publish("durable", json!({"round": round, "k": k})))
                    .collect();
                for c in futures::future::join_all(sends).await {
                    match c {
                        Ok(c) => {
                            if tx.send(c).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            }
        }
    });
    let mut confirmed = Vec::new();
    while confirmed.len() < 3_000 {
        confirmed.push(within("confirmations", rx.recv()).await.unwrap());
    }
    // SIGKILL while publishes are still in flight.
    drop(daemon);
    let _ = within("the publisher to notice", publishing).await;
    while let Ok(c) = rx.try_recv() {
        confirmed.push(c);
    }
    let restarted = eps.serve(&home, &store, &[]);
    let client = BusServiceClient::new(zerorpc::Client::connect(&eps.ingest).await.unwrap());
    let mut log = std::collections::HashMap::new();
    let mut from = 1;
    loop {
        let (upto, batch) = client.read(from, vec![], 5_000).await.unwrap();
        if upto < from {
            break;
        }
        for (seq, json) in batch {
            let m: Value = serde_json::from_str(&json).unwrap();
            log.insert(seq, m["msg_id"].as_str().unwrap().to_owned());
        }
        from = upto + 1;
    }
    for c in &confirmed {
        assert_eq!(
            log.get(&c.seq().expect("a seq from the daemon")),
            Some(&c.msg_id),
            "confirmed seq {} is in the log",
            c.seq().expect("a seq from the daemon")
        );
    }
    assert!(confirmed.len() >= 3_000);
    drop(restarted);
}

/// A name no other test (or run) uses.
fn unique(what: &str) -> String {
    format!("ztest{what}{}{}", std::process::id(), free_port())
}

#[test]
fn on_rabbitmq_and_nats_publish_tail_replay_and_bridge() {
    let home = scratch_dir("bus-cli-brokers");
    let amqp_url = zerorpc_testkit::rabbitmq_url();
    let nats_url = zerorpc_testkit::nats_url();
    let eps = Endpoints::new();
    let _daemon = eps.serve(&home, &home.join("log"), &[]);
    let b = eps.ingest.as_str();
    let word = unique("cli");
    let pattern = format!("org.fedoraproject.dev.zerorpc.{word}.*");
    let queue = unique("cliq");

    // A competing consumer's queue, read by `tail`.
    let mut tail = Bg::start(
        &home,
        &[
            "tail",
            "--transport",
            "amqp",
            "--queue",
            &queue,
            "--json",
            "--count",
            "2",
            &pattern,
        ],
        "following amqp",
    );
    // One publish onto RabbitMQ and the daemon, each confirmed.
    let out = bus(
        &home,
        &[
            "publish",
            "--bus",
            b,
            "--transport",
            "amqp,zmq",
            &format!("{word}.one"),
            r#"{"n": 1}"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let first_id = printed.split_whitespace().next().unwrap().to_owned();
    assert!(printed.contains(" seq 1"), "the daemon's seq: {printed}");

    // A message no queue takes: an error, not a silent loss.
    let out = bus(
        &home,
        &[
            "publish",
            "--transport",
            "amqp",
            &format!("{}.nobody", unique("unrouted")),
            "{}",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("routed to no queue"),
        "{}",
        text(&out.stderr)
    );

    // A bridge from the daemon onto RabbitMQ: a publish on the daemon alone
    // reaches the AMQP consumer too.
    let _bridge = Bg::start(
        &home,
        &[
            "bridge", "--bus", b, "--from", "zmq", "--to", &amqp_url, &pattern,
        ],
        "bridging zmq -> amqp",
    );
    let out = bus(
        &home,
        &[
            "publish",
            "--bus",
            b,
            "--transport",
            "zmq",
            &format!("{word}.two"),
            r#"{"n": 2}"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second_id = text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let got: Vec<Value> = (0..2)
        .map(|_| serde_json::from_str(&tail.line()).unwrap())
        .collect();
    let ids: Vec<&str> = got.iter().map(|m| m["msg_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [first_id.as_str(), second_id.as_str()],
        "each once, in order"
    );
    assert_eq!(got[1]["msg"], json!({"n": 2}));
    // `tail --count 2` ends by itself (before its queue is deleted below:
    // a live consumer would declare it again).
    let status = tail.child.wait().unwrap();
    assert!(status.success(), "tail: {status}");

    // NATS: publish, then replay the stream from a sequence.
    // Under a prefix of its own, so that the test's stream is its own.
    let nats_word = unique("nats");
    let nats_prefix = format!("{nats_word}.bus");
    let _streams = zerorpc_testkit::DropNatsStreams(vec![nats_prefix.clone()]);
    let nats_env = [
        ("ZERORPC_BUS_NATS_URL", nats_url.as_str()),
        ("ZERORPC_BUS_TOPIC_PREFIX", nats_prefix.as_str()),
    ];
    let mut seqs = Vec::new();
    for n in 0..3 {
        let out = zerorpc_testkit::output_within_a_minute(
            command(
                &home,
                &[
                    "publish",
                    "--transport",
                    "nats",
                    &format!("{nats_word}.m{n}"),
                    &format!(r#"{{"n": {n}}}"#),
                ],
            )
            .envs(nats_env),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let printed = text(&out.stdout);
        let seq: u64 = printed
            .split(" seq ")
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        seqs.push(seq);
    }
    let out = zerorpc_testkit::output_within_a_minute(
        command(
            &home,
            &[
                "replay",
                "--transport",
                "nats",
                "--json",
                "--idle",
                "1",
                "--since-seq",
                &seqs[1].to_string(),
                &format!("{nats_prefix}.dev.zerorpc.{nats_word}.*"),
            ],
        )
        .envs(nats_env),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replayed: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bodies: Vec<&Value> = replayed.iter().map(|m| &m["msg"]).collect();
    assert_eq!(
        bodies,
        [&json!({"n": 1}), &json!({"n": 2})],
        "from the second on"
    );

    // The shared queue goes (the test's stream goes with `_streams`).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conn = lapin::Connection::connect(&amqp_url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.queue_delete(
            queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    });
}
