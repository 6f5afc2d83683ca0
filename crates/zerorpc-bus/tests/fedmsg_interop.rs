//! Real fedmsg 1.1.7 (in the test venv) against our bus, both ways:
//! fedmsg's `tail_messages` reads our daemon's PUB endpoint; our
//! subscriber reads what fedmsg publishes, directly and through
//! `fedmsg-relay`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Event, Filters, Subscription};
use zerorpc_testkit::{fedmsg_python, free_port, scratch_dir, within};

const TAIL: &str = include_str!("py/fedmsg_tail.py");
const PUBLISH: &str = include_str!("py/fedmsg_publish.py");

/// A Python child with piped stdin and stdout, killed on drop.
struct Py {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<BufReader<ChildStdout>>>,
}

impl Py {
    fn start(script: &str, args: &[String], cwd: Option<&std::path::Path>) -> Py {
        let mut cmd = Command::new(fedmsg_python());
        cmd.arg("-u")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(dir) = cwd {
            cmd.current_dir(dir).env("HOME", dir);
        }
        let mut child = cmd.spawn().expect("start python");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        Py {
            child,
            stdin,
            lines: Arc::new(Mutex::new(BufReader::new(stdout))),
        }
    }

    /// The next line starting with `prefix` (others are skipped).
    async fn line(&self, prefix: &str) -> String {
        let lines = self.lines.clone();
        let prefix = prefix.to_owned();
        let what = format!("python to print {prefix:?}");
        within(
            &what,
            tokio::task::spawn_blocking(move || {
                let mut lines = lines.lock().unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    let n = lines.read_line(&mut line).expect("read python's stdout");
                    assert!(n > 0, "python exited before printing {prefix:?}");
                    if line.starts_with(&prefix) {
                        return line.trim_end().to_owned();
                    }
                }
            }),
        )
        .await
        .unwrap()
    }

    fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `warmup` messages until `warm` resolves (a PUB endpoint
/// drops what is sent before a subscriber has joined).
async fn warm_up<F: std::future::Future>(p: &Publisher, warm: F) -> F::Output {
    let p = p.clone();
    let pumping = tokio::spawn(async move {
        loop {
            let _ = p.publish("warmup", json!({})).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let out = warm.await;
    pumping.abort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedmsg_tail_messages_reads_the_daemon() {
    let dir = scratch_dir("bus-fedmsg-tail");
    let daemon = Daemon::start(DaemonOptions::ephemeral(&dir)).await.unwrap();
    let mut o = PublisherOptions::new(daemon.ingest_endpoint());
    o.modname = "rusty".into();
    o.username = "tester".into();
    let p = Publisher::connect(o).await.unwrap();
    const N: usize = 25;
    let py = Py::start(
        TAIL,
        &[daemon.publish_endpoint().to_owned(), N.to_string()],
        None,
    );
    py.line("READY").await;
    warm_up(&p, py.line("WARM")).await;
    let mut sent = Vec::new();
    for k in 0..N {
        let body = json!({
            "k": k, "text": "h\u{e9}llo \u{1F600} \"q\"\n\u{1}", "f": 0.1, "big": 1e20,
            "small": 1e-7, "neg": -0.0, "nested": {"b": [1, 2.5, null, true], "a": {}}
        });
        let msg = p.envelope("real.thing", body).unwrap();
        let c = p.send(&msg).await.unwrap();
        sent.push((c.seq, msg));
    }
    for (seq, ours) in &sent {
        let line = py.line("MSG ").await;
        let theirs: Value = serde_json::from_str(&line[4..]).unwrap();
        let mut expected = ours.to_value();
        expected
            .as_object_mut()
            .unwrap()
            .insert("seq_id".into(), json!(seq));
        assert_eq!(theirs, expected, "fedmsg got every field as we sent it");
        // Byte for byte: fedmsg's dumps of what it got is our canonical form.
        let mut with_seq = ours.clone();
        with_seq.extra.insert("seq_id".into(), json!(seq));
        assert_eq!(&line[4..], with_seq.to_canonical_json());
        assert_eq!(theirs["topic"], "org.fedoraproject.dev.rusty.real.thing");
        assert_eq!(theirs["username"], "tester");
        assert!(theirs["timestamp"].is_i64());
        let id = theirs["msg_id"].as_str().unwrap();
        assert!(id.len() == 41 && id.as_bytes()[4] == b'-', "msg_id {id}");
    }
    py.line("ALL DONE").await;
}

/// Collects `n` messages with topic `*.real` from a subscription.
async fn collect_real(sub: &mut Subscription, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        match sub.next().await {
            Some(Event::Message(d)) if d.message.topic.ends_with(".real") => {
                got.push(d.message.to_value())
            }
            Some(Event::Message(_)) => {}
            Some(Event::Quarantined { reason, raw, .. }) => panic!("quarantined {raw}: {reason}"),
            None => panic!("subscription ended"),
        }
    }
    got
}

/// Waits for the first message of a subscription (a warmup).
async fn first_message(sub: &mut Subscription) {
    loop {
        match sub.next().await {
            Some(Event::Message(_)) => return,
            Some(Event::Quarantined { reason, .. }) => panic!("quarantined: {reason}"),
            None => panic!("subscription ended"),
        }
    }
}

fn check_real(got: &[Value]) {
    for (k, m) in got.iter().enumerate() {
        assert_eq!(m["msg"]["k"], json!(k), "in order, none lost or twice");
        assert_eq!(m["msg"]["text"], "h\u{e9}llo \u{1F600} \"q\"\n");
        assert_eq!(m["msg"]["big"], json!(1e20));
        assert_eq!(m["topic"], "org.fedoraproject.dev.pytest.real");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_subscriber_reads_a_fedmsg_publisher() {
    let port = free_port();
    const N: usize = 50;
    let config = json!({
        "endpoints": {"pytest.host": [format!("tcp://127.0.0.1:{port}")]},
        "name": "pytest.host",
    });
    let mut py = Py::start(PUBLISH, &[N.to_string(), config.to_string()], None);
    py.line("READY").await;
    let mut sub = Subscription::fedmsg(&[format!("tcp://127.0.0.1:{port}")], Filters::default())
        .await
        .unwrap();
    within("a first message", first_message(&mut sub)).await;
    py.say("GO\n");
    let got = within("fedmsg's messages", collect_real(&mut sub, N)).await;
    check_real(&got);
    py.line("ALL DONE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_subscriber_reads_through_fedmsg_relay() {
    let dir = scratch_dir("bus-fedmsg-relay");
    let (inbound, outbound, gateway) = (free_port(), free_port(), free_port());
    std::fs::create_dir_all(dir.join("fedmsg.d")).unwrap();
    std::fs::write(
        dir.join("fedmsg.d/relay.py"),
        format!(
            "config = dict(\n    topic_prefix='org.fedoraproject',\n    environment='dev',\n    \
             zmq_enabled=True,\n    io_threads=1,\n    \
             relay_inbound=['tcp://127.0.0.1:{inbound}'],\n    \
             endpoints={{'relay_outbound': ['tcp://127.0.0.1:{outbound}']}},\n    \
             **{{'fedmsg.consumers.gateway.port': {gateway}}},\n)\n"
        ),
    )
    .unwrap();
    let relay = Py::start(
        "import sys\nsys.argv = ['fedmsg-relay']\nfrom fedmsg.commands.relay import relay\nrelay()\n",
        &[],
        Some(&dir),
    );
    let mut sub = Subscription::fedmsg(&[format!("tcp://127.0.0.1:{outbound}")], Filters::default())
        .await
        .unwrap();
    const N: usize = 30;
    // An active publisher (fedmsg-logger's way): connects to the relay.
    let config = json!({
        "active": true,
        "name": "relay_inbound",
        "relay_inbound": [format!("tcp://127.0.0.1:{inbound}")],
        "endpoints": {},
    });
    let mut py = Py::start(PUBLISH, &[N.to_string(), config.to_string()], None);
    py.line("READY").await;
    within("a first message through the relay", first_message(&mut sub)).await;
    py.say("GO\n");
    let got = within("fedmsg's messages via the relay", collect_real(&mut sub, N)).await;
    check_real(&got);
    py.line("ALL DONE").await;
    drop(relay);
}
