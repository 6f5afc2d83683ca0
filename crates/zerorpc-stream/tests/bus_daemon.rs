//! A spout over our bus daemon: failed trees are emitted again, the
//! checkpoint records the sequence below which everything is acked, and a
//! spout started from the checkpoint resumes there (nothing again that was
//! acked, nothing skipped).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::Since;
use zerorpc_stream::runner::{run, RunOptions};
use zerorpc_stream::sources::BusSpout;
use zerorpc_stream::{Bolt, BoltCollector, BoxError, Outputs, Registry, TopologyBuilder, Tuple};

/// Fails a third of the first deliveries; counts the ones it acks.
struct Flaky {
    seen: Arc<Mutex<BTreeMap<u64, u32>>>,
}

impl Bolt for Flaky {
    fn outputs(&self) -> Outputs {
        Outputs::none()
    }
    fn process(&mut self, t: &Tuple, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let n = t.values[1]["n"].as_u64().ok_or("no n")?;
        let mut seen = self.seen.lock().unwrap();
        let tries = seen.entry(n).or_insert(0);
        *tries += 1;
        if *tries == 1 && n % 3 == 0 {
            return Err("first try of a multiple of 3".into());
        }
        Ok(())
    }
}

async fn run_once(
    ingest: &str,
    checkpoint: &std::path::Path,
    seen: Arc<Mutex<BTreeMap<u64, u32>>>,
) -> u64 {
    let (ingest, checkpoint) = (ingest.to_string(), checkpoint.to_path_buf());
    let topology = TopologyBuilder::new("daemon")
        .spout("bus", 1, move || {
            BusSpout::daemon_resuming(&ingest, Since::Start, Vec::new(), checkpoint.clone())
        })
        .bolt("flaky", 2, move || Flaky { seen: seen.clone() })
        .shuffle("bus")
        .build();
    let stats = run(
        topology,
        &Registry::new(),
        RunOptions {
            stop_when_idle: Some(Duration::from_secs(1)),
            duration: Some(Duration::from_secs(60)),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(stats.trees.pending, 0);
    stats.trees.acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_messages_replay_on_fail_and_resume_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(DaemonOptions::ephemeral(dir.path().join("store")))
        .await
        .unwrap();
    let p = Publisher::connect(PublisherOptions::new(daemon.ingest_endpoint()))
        .await
        .unwrap();
    for n in 0..90u64 {
        p.publish("org.example.work", json!({ "n": n }))
            .await
            .unwrap();
    }
    let checkpoint = dir.path().join("checkpoint");
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let acked = run_once(daemon.ingest_endpoint(), &checkpoint, seen.clone()).await;
    assert_eq!(acked, 90);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 90);
        for (n, tries) in seen.iter() {
            assert_eq!(*tries, if n % 3 == 0 { 2 } else { 1 }, "message {n}");
        }
    }
    // Everything up to seq 90 is acked: the checkpoint says 91.
    assert_eq!(std::fs::read_to_string(&checkpoint).unwrap().trim(), "91");

    // More messages; a new run resumes at 91: only the new ones.
    for n in 90..120u64 {
        p.publish("org.example.work", json!({ "n": n }))
            .await
            .unwrap();
    }
    let seen2 = Arc::new(Mutex::new(BTreeMap::new()));
    let acked = run_once(daemon.ingest_endpoint(), &checkpoint, seen2.clone()).await;
    assert_eq!(acked, 30);
    assert_eq!(
        seen2.lock().unwrap().keys().copied().collect::<Vec<_>>(),
        (90..120).collect::<Vec<_>>()
    );
    assert_eq!(std::fs::read_to_string(&checkpoint).unwrap().trim(), "121");
    daemon.shutdown().await;
}
