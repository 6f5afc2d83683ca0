//! A writer killed with SIGKILL in the middle of appending loses nothing
//! that `append` had confirmed, and the store reopens and goes on.
//!
//! The test re-executes its own binary as the writer (selected by an
//! environment variable): the child appends batches forever, printing
//! `CONFIRMED <last seq>` after each `append` returns; the parent kills it
//! after a number of confirmations, reopens the store and checks every
//! confirmed record. Three rounds, each child continuing the same store.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use zerorpc_bus::store::{NewRecord, Store, StoreOptions};

const CHILD_ENV: &str = "ZERORPC_BUS_STORE_CRASH_DIR";
const TEST_NAME: &str = "confirmed_appends_survive_kill_9";
const BATCH: u64 = 64;

/// The message with this number: what the child writes and the parent
/// expects back. Numbers are the seqs they get (no duplicates).
fn expected(n: u64) -> (String, String, i64, String) {
    let msg_id = format!("2026-crash-{n:08}");
    let topic = format!("org.example.crash.t{}", n % 5);
    let timestamp = 1_700_000_000 + (n / 100) as i64;
    let pad = "p".repeat((n % 200) as usize + 50);
    let json = format!(
        r#"{{"i":{n},"msg":{{"pad":"{pad}"}},"msg_id":"{msg_id}","timestamp":{timestamp},"topic":"{topic}"}}"#
    );
    (topic, msg_id, timestamp, json)
}

/// The child: append forever (until killed).
fn writer(dir: &Path) -> ! {
    let store = Store::open(dir, StoreOptions::default()).expect("child: open");
    let mut next = store.last_seq() + 1;
    let mut out = std::io::stdout().lock();
    loop {
        let owned: Vec<_> = (next..next + BATCH).map(expected).collect();
        let batch: Vec<NewRecord<'_>> = owned
            .iter()
            .map(|(topic, msg_id, timestamp, json)| NewRecord {
                topic,
                msg_id,
                timestamp: *timestamp,
                json,
            })
            .collect();
        let got = store.append(&batch).expect("child: append");
        let last = got.last().expect("a result per record").seq();
        assert_eq!(last, next + BATCH - 1, "child: seqs are the numbers");
        writeln!(out, "CONFIRMED {last}").expect("child: stdout");
        out.flush().expect("child: flush");
        next += BATCH;
    }
}

#[test]
fn confirmed_appends_survive_kill_9() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        writer(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut confirmed = 0u64;
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let Some(n) = line.strip_prefix("CONFIRMED ") else {
                continue;
            };
            let n: u64 = n.parse().unwrap();
            assert!(n > confirmed, "round {round}: confirmations go up");
            confirmed = n;
            seen += 1;
            if seen == 40 {
                // SIGKILL while the child is in its next append.
                child.kill().unwrap();
                break;
            }
        }
        let status = child.wait().unwrap();
        assert_eq!(
            seen, 40,
            "round {round}: the child stopped early ({status})"
        );

        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        // The batch in flight may or may not have committed, whole.
        let last = store.last_seq();
        assert!(
            last >= confirmed,
            "round {round}: last {last} < confirmed {confirmed}"
        );
        assert_eq!(
            (last - confirmed) % BATCH,
            0,
            "round {round}: a partial batch"
        );
        assert_eq!(store.first_seq(), Some(1));
        assert_eq!(store.len().unwrap(), last);
        let mut seq = 1;
        while seq <= last {
            let chunk = store.read_from(seq, 1000).unwrap();
            assert!(!chunk.is_empty(), "round {round}: seq {seq} missing");
            for r in chunk {
                assert_eq!(r.seq, seq, "round {round}: a hole before {}", r.seq);
                let (topic, msg_id, timestamp, json) = expected(seq);
                assert_eq!(r.topic, topic);
                assert_eq!(r.msg_id, msg_id);
                assert_eq!(r.timestamp, timestamp);
                assert_eq!(&*r.json, json);
                seq += 1;
            }
        }
        assert_eq!(
            store
                .get_by_msg_id(&expected(confirmed).1)
                .unwrap()
                .map(|r| r.seq),
            Some(confirmed)
        );
        confirmed = last;
    }
    assert!(confirmed >= 3 * 40 * BATCH);
}
