//! A topology fed by a JetStream durable consumer (the machine's NATS
//! server) loses nothing when the runner is killed and started again:
//! JetStream messages are acked only when their tuple trees are. The
//! runner runs in a process of its own (this test binary again, as the
//! ignored `jetstream_worker`), killed with SIGKILL mid-run. Streams are
//! this test's own (`ZTEST<random>_STREAM`) and deleted at the end.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use zerorpc_bus::message::Message;
use zerorpc_bus::subscriber::Since;
use zerorpc_bus::transport::nats::{Nats, NatsOptions, NatsSubscribe};
use zerorpc_bus::transport::{Outgoing, Transport};
use zerorpc_stream::runner::{run, RunOptions};
use zerorpc_stream::sources::BusSpout;
use zerorpc_stream::{Bolt, BoltCollector, BoxError, Outputs, Registry, TopologyBuilder, Tuple};
use zerorpc_testkit::{nats_url, DropNatsStreams};

const PREFIX: &str = "ZTEST_STREAM_JS_PREFIX";
const DURABLE: &str = "ZTEST_STREAM_JS_DURABLE";

/// Prints `DONE <n>` for each message, a little slowly.
struct Record;

impl Bolt for Record {
    fn outputs(&self) -> Outputs {
        Outputs::none()
    }
    fn process(&mut self, t: &Tuple, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let n = t.values[1]["n"].as_u64().ok_or("no n")?;
        std::thread::sleep(Duration::from_millis(3));
        let mut out = std::io::stdout().lock();
        writeln!(out, "DONE {n}")?;
        out.flush()?;
        Ok(())
    }
}

/// The runner process of the test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the runner process of the kill-and-restart test"]
async fn jetstream_worker() {
    let Ok(prefix) = std::env::var(PREFIX) else {
        return;
    };
    let durable = std::env::var(DURABLE).unwrap();
    let topology = TopologyBuilder::new("jetstream")
        .config("topology.max.spout.pending", 32)
        .spout("messages", 1, move || {
            BusSpout::jetstream(
                NatsOptions::new(nats_url()),
                NatsSubscribe {
                    durable: Some(durable.clone()),
                    prefix: Some(prefix.clone()),
                    prefetch: 32,
                    manual_ack: true,
                    since: Since::Start,
                    ack_wait: Duration::from_secs(2),
                },
                Vec::new(),
            )
        })
        .bolt("record", 2, || Record)
        .shuffle("messages")
        .build();
    let log_dir = tempfile::tempdir().unwrap();
    let stats = run(
        topology,
        &Registry::new(),
        RunOptions {
            stop_when_idle: Some(Duration::from_secs(5)),
            duration: Some(Duration::from_secs(120)),
            log_dir: Some(log_dir.path().to_path_buf()),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    let log = std::fs::read_to_string(log_dir.path().join("messages.log")).unwrap_or_default();
    println!(
        "END {} {} {}",
        stats.trees.acked,
        stats.trees.failed,
        log.replace('\n', " | ")
    );
}

struct Worker {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Worker {
    fn start(prefix: &str, durable: &str) -> Worker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "jetstream_worker",
                "--nocapture",
                "--include-ignored",
            ])
            .env(PREFIX, prefix)
            .env(DURABLE, durable)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if (line.starts_with("DONE ") || line.starts_with("END ")) && tx.send(line).is_err()
                {
                    return;
                }
            }
        });
        Worker { child, lines }
    }

    /// The next line, or `None` when the worker's output ended.
    fn line(&self) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(90)).ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runner_loses_nothing_from_jetstream() {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("ztest{}.stream", &id[id.len() - 12..]);
    let _cleanup = DropNatsStreams(vec![prefix.clone()]);
    let durable = format!("runner-{}", &id[id.len() - 8..]);
    let n: u64 = 400;
    let nats = Nats::connect(NatsOptions::new(nats_url())).await.unwrap();
    let batch: Arc<[Outgoing]> = (0..n)
        .map(|i| {
            let m = Message::new(format!("{prefix}.work"), json!({ "n": i }), i + 1, "tester");
            Outgoing {
                json: m.to_canonical_json(),
                message: m,
                schema_name: None,
                via: Vec::new(),
            }
        })
        .collect();
    for r in nats.send(batch).await {
        r.unwrap();
    }

    let mut done = BTreeSet::new();
    let mut first_run = 0;
    {
        let w = Worker::start(&prefix, &durable);
        while first_run < n / 4 {
            let line = w.line().expect("the first runner stopped early");
            if let Some(x) = line.strip_prefix("DONE ") {
                done.insert(x.parse::<u64>().unwrap());
                first_run += 1;
            }
        }
        // SIGKILL with messages in flight (dropped here).
    }
    assert!(
        done.len() < n as usize,
        "the first run was killed before the end"
    );
    let w = Worker::start(&prefix, &durable);
    let mut second_run = 0;
    let end = loop {
        let line = w.line().expect("the second runner said nothing for 90 s");
        if let Some(x) = line.strip_prefix("DONE ") {
            done.insert(x.parse::<u64>().unwrap());
            second_run += 1;
        } else {
            break line;
        }
    };
    assert_eq!(
        done,
        (0..n).collect::<BTreeSet<_>>(),
        "every message processed"
    );
    assert!(first_run + second_run >= n);
    assert!(end.starts_with("END "), "{end}");

    // And JetStream holds nothing unacknowledged for the durable.
    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let stream_name = prefix.to_uppercase().replace('.', "_");
    let mut stream = js.get_stream(&stream_name).await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(&durable).await.unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
    let _ = stream.info().await;
}
