//! Real fedmsg 1.1.7 (in the test venv) against our bus, both ways:
//! fedmsg's `tail_messages` reads our daemon's PUB endpoint; our
//! subscriber reads what fedmsg publishes, directly and through
//! `fedmsg-relay`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use zerorpc_bus::crypto::{Signer, Validator};
use zerorpc_bus::daemon::{BusServiceClient, Daemon, DaemonOptions};
use zerorpc_bus::protocol::REJECTED;
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Event, Filters, Subscription};
use zerorpc_testkit::{fedmsg_python, free_port, scratch_dir, within};

const TAIL: &str = include_str!("py/fedmsg_tail.py");
const PUBLISH: &str = include_str!("py/fedmsg_publish.py");
const MAKE_PKI: &str = include_str!("py/make_pki.py");

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

/// A test CA with signing certificates (see `py/make_pki.py`).
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn make(scratch: &Path) -> Pki {
        let dir = scratch.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(fedmsg_python())
            .arg("-c")
            .arg(MAKE_PKI)
            .arg(&dir)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Our validator: this CA and its CRL, no routing policy.
    fn validator(&self) -> Validator {
        Validator::from_files(
            &self.path("ca.crt"),
            Some(&self.path("crl.pem")),
            HashMap::new(),
            false,
        )
        .unwrap()
    }

    fn signer(&self, name: &str) -> Signer {
        Signer::from_files(
            &self.path(&format!("{name}.crt")),
            &self.path(&format!("{name}.key")),
        )
        .unwrap()
    }

    /// fedmsg configuration keys: sign as `cert` (see `sign_as` in
    /// `py/fedmsg_publish.py`).
    fn sign_as(&self, config: &mut Value, cert: &str) {
        let c = config.as_object_mut().unwrap();
        c.insert("sign_messages".into(), json!(true));
        c.insert("ssldir".into(), json!(self.dir));
        c.insert("sign_as".into(), json!(cert));
        c.insert("crypto_backend".into(), json!("x509"));
    }

    /// fedmsg configuration keys: validate against this CA and CRL.
    fn validating(&self) -> Value {
        json!({
            "validate_signatures": true,
            "ssldir": self.dir,
            "crypto_backend": "x509",
            "crypto_validate_backends": ["x509"],
            "ca_cert_location": self.path("ca.crt"),
            "crl_location": self.path("crl.pem"),
        })
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
        sent.push((c.seq().expect("a seq from the daemon"), msg));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedmsg_validates_our_signed_messages_and_rejects_tampered_ones() {
    let dir = scratch_dir("bus-fedmsg-signed");
    let pki = Pki::make(&dir);
    // A daemon that checks nothing passes everything on: fedmsg must
    // reject the bad ones itself.
    let daemon = Daemon::start(DaemonOptions::ephemeral(dir.join("open")))
        .await
        .unwrap();
    let mut o = PublisherOptions::new(daemon.ingest_endpoint());
    o.modname = "rusty".into();
    o.signer = Some(Arc::new(pki.signer("alice")));
    let p = Publisher::connect(o).await.unwrap();
    const N: usize = 6;
    let py = Py::start(
        TAIL,
        &[
            daemon.publish_endpoint().to_owned(),
            N.to_string(),
            pki.validating().to_string(),
        ],
        None,
    );
    py.line("READY").await;
    warm_up(&p, py.line("WARM")).await;
    let raw = BusServiceClient::new(
        zerorpc::Client::connect(daemon.ingest_endpoint())
            .await
            .unwrap(),
    );
    let mut valid = Vec::new();
    for k in 0..N {
        if k == N / 2 {
            // Tampered after signing, and unsigned: stored by this daemon,
            // rejected by fedmsg.
            let mut tampered = p.envelope("evil", json!({"amount": 1})).unwrap();
            tampered.msg = json!({"amount": 1000});
            let mut unsigned = p.envelope("evil", json!({"amount": 2})).unwrap();
            unsigned.signature = None;
            unsigned.certificate = None;
            unsigned.crypto = None;
            let outcomes = raw
                .publish(vec![
                    tampered.to_canonical_json(),
                    unsigned.to_canonical_json(),
                ])
                .await
                .unwrap();
            assert!(outcomes.iter().all(|o| o.1 != REJECTED), "{outcomes:?}");
        }
        let msg = p.envelope("good", json!({"k": k})).unwrap();
        p.send(&msg).await.unwrap();
        valid.push(msg);
    }
    for ours in &valid {
        let line = py.line("MSG ").await;
        let theirs: Value = serde_json::from_str(&line[4..]).unwrap();
        assert_eq!(
            theirs["msg"], ours.msg,
            "only valid messages reach fedmsg's consumer"
        );
        assert_eq!(theirs["signature"].as_str(), ours.signature.as_deref());
    }
    py.line("ALL DONE").await;

    // A daemon that validates rejects them at the door, with the reason.
    let mut opts = DaemonOptions::ephemeral(dir.join("strict"));
    opts.validator = Some(Arc::new(pki.validator()));
    let strict = Daemon::start(opts).await.unwrap();
    let raw = BusServiceClient::new(
        zerorpc::Client::connect(strict.ingest_endpoint())
            .await
            .unwrap(),
    );
    let mut tampered = p.envelope("evil", json!({"amount": 1})).unwrap();
    tampered.msg = json!({"amount": 1000});
    let mut unsigned = p.envelope("evil", json!({})).unwrap();
    unsigned.signature = None;
    unsigned.certificate = None;
    unsigned.crypto = None;
    let good = p.envelope("fine", json!({})).unwrap();
    let outcomes = raw
        .publish(vec![
            tampered.to_canonical_json(),
            unsigned.to_canonical_json(),
            good.to_canonical_json(),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes[0].1, REJECTED);
    assert!(outcomes[0].2.contains("signature"), "{outcomes:?}");
    assert_eq!(outcomes[1].1, REJECTED);
    assert_eq!(
        (outcomes[2].0, outcomes[2].1),
        (1, zerorpc_bus::protocol::STORED)
    );
}

/// Collects `n` messages with topic `*.real` from a subscription, and the
/// topics of the messages quarantined meanwhile.
async fn collect_real(sub: &mut Subscription, n: usize) -> (Vec<Value>, Vec<String>) {
    let mut got = Vec::new();
    let mut quarantined = Vec::new();
    while got.len() < n {
        match sub.next().await {
            Some(Event::Message(d)) if d.message.topic.ends_with(".real") => {
                got.push(d.message.to_value())
            }
            Some(Event::Message(d)) => {
                assert!(d.message.topic.ends_with(".warmup"), "{:?}", d.message)
            }
            Some(Event::Quarantined { raw, reason, .. }) => {
                let v: Value = serde_json::from_str(&raw).unwrap();
                quarantined.push(format!("{} ({reason})", v["topic"].as_str().unwrap()));
            }
            None => panic!("subscription ended"),
        }
    }
    (got, quarantined)
}

/// Waits for the first message of a subscription (a warmup).
async fn first_message(sub: &mut Subscription) {
    match sub.next().await {
        Some(Event::Message(_)) => {}
        Some(Event::Quarantined { reason, .. }) => panic!("quarantined: {reason}"),
        None => panic!("subscription ended"),
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
    let dir = scratch_dir("bus-fedmsg-publisher");
    let pki = Pki::make(&dir);
    let port = free_port();
    const N: usize = 50;
    let mut config = json!({
        "endpoints": {"pytest.host": [format!("tcp://127.0.0.1:{port}")]},
        "name": "pytest.host",
    });
    pki.sign_as(&mut config, "alice");
    let mut py = Py::start(
        PUBLISH,
        &[N.to_string(), config.to_string(), "bad".into()],
        None,
    );
    py.line("READY").await;
    let filters = Filters {
        validator: Some(Arc::new(pki.validator())),
        ..Filters::default()
    };
    let mut sub = Subscription::fedmsg(&[format!("tcp://127.0.0.1:{port}")], filters)
        .await
        .unwrap();
    within("a first message", first_message(&mut sub)).await;
    py.say("GO\n");
    let (got, quarantined) = within("fedmsg's messages", collect_real(&mut sub, N)).await;
    check_real(&got);
    // The message tampered with after signing and the unsigned one are
    // quarantined, not delivered.
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    assert!(
        quarantined[0].starts_with("org.fedoraproject.dev.pytest.tampered (signature"),
        "{quarantined:?}"
    );
    assert!(
        quarantined[1].starts_with("org.fedoraproject.dev.pytest.unsigned (signature"),
        "{quarantined:?}"
    );
    assert_eq!(
        sub.stats()
            .quarantined
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    py.line("ALL DONE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_subscriber_reads_through_fedmsg_relay() {
    let dir = scratch_dir("bus-fedmsg-relay");
    let pki = Pki::make(&dir);
    let (inbound, outbound, gateway) = (free_port(), free_port(), free_port());
    std::fs::create_dir_all(dir.join("fedmsg.d")).unwrap();
    std::fs::write(
        dir.join("fedmsg.d/relay.py"),
        format!(
            "config = dict(\n    topic_prefix='org.fedoraproject',\n    environment='dev',\n    \
             zmq_enabled=True,\n    io_threads=1,\n    validate_signatures=False,\n    \
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
    let mut sub =
        Subscription::fedmsg(&[format!("tcp://127.0.0.1:{outbound}")], Filters::default())
            .await
            .unwrap();
    const N: usize = 30;
    // An active publisher (fedmsg-logger's way): connects to the relay.
    let mut config = json!({
        "active": true,
        "name": "relay_inbound",
        "relay_inbound": [format!("tcp://127.0.0.1:{inbound}")],
        "endpoints": {},
    });
    pki.sign_as(&mut config, "alice");
    let mut py = Py::start(PUBLISH, &[N.to_string(), config.to_string()], None);
    py.line("READY").await;
    within("a first message through the relay", first_message(&mut sub)).await;
    py.say("GO\n");
    let (got, quarantined) =
        within("fedmsg's messages via the relay", collect_real(&mut sub, N)).await;
    check_real(&got);
    assert!(quarantined.is_empty(), "{quarantined:?}");
    // Signed by fedmsg, relayed, and valid to us.
    for m in &got {
        let m = zerorpc_bus::message::Message::from_value(m.clone()).unwrap();
        pki.validator().validate(&m).expect("valid after the relay");
    }
    py.line("ALL DONE").await;
    drop(relay);
}
