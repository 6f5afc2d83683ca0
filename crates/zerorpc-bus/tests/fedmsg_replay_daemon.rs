//! fedmsg 1.1.7's own replay client (`get_replay`, `check_for_replay`, run
//! in the real Python package) against our daemon's replay endpoint, with
//! messages published through our `Publisher`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::replay::with_seq_id;
use zerorpc_testkit::{fedmsg_python, run_python_script_with, scratch_dir, within};

const CLIENT: &str = include_str!("py/replay_daemon_client.py");

/// One published message: its seq, `msg_id`, timestamp, and what fedmsg's
/// replay should hand back for it (the envelope with `seq_id`, canonical).
struct Published {
    seq: u64,
    msg_id: String,
    timestamp: i64,
    replayed: String,
}

/// Publishes message `k` with the given timestamp.
async fn publish(p: &Publisher, k: u64, timestamp: i64) -> Published {
    let mut msg = p
        .envelope(
            "thing.happened",
            json!({"k": k, "text": format!("caf\u{e9} \u{2615} #{k}"), "x": [1.5, null, true]}),
        )
        .unwrap();
    msg.timestamp = timestamp;
    let c = within("publish", p.send(&msg)).await.unwrap();
    assert!(!c.duplicate());
    Published {
        seq: c.seq().expect("a seq from the daemon"),
        msg_id: msg.msg_id.clone(),
        timestamp,
        replayed: with_seq_id(
            &msg.to_canonical_json(),
            c.seq().expect("a seq from the daemon"),
        )
        .unwrap(),
    }
}

/// What the Python client printed: the `GOT`/`ERR` answers, the `CALL`
/// results of `check_for_replay`, and its final `STATE`.
struct Output {
    answers: Vec<Result<Vec<String>, String>>,
    calls: Vec<Vec<String>>,
    state: u64,
}

async fn run_client(
    dir: &Path,
    endpoint: &str,
    queries: Value,
    live: Vec<String>,
    last_seen: u64,
) -> Output {
    let queries_file = dir.join("queries.json");
    let live_file = dir.join("live.json");
    let live: Vec<Value> = live
        .iter()
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    std::fs::write(&queries_file, serde_json::to_vec(&queries).unwrap()).unwrap();
    std::fs::write(&live_file, serde_json::to_vec(&live).unwrap()).unwrap();
    let out = run_python_script_with(
        fedmsg_python(),
        "fedmsg replay client",
        CLIENT,
        vec![
            endpoint.to_owned(),
            queries_file.display().to_string(),
            live_file.display().to_string(),
            last_seen.to_string(),
        ],
    )
    .await;
    let list = |text: &str| -> Vec<String> {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}\noutput:\n{out}"))
    };
    let mut output = Output {
        answers: Vec::new(),
        calls: Vec::new(),
        state: 0,
    };
    for line in out.lines() {
        if let Some(got) = line.strip_prefix("GOT ") {
            output.answers.push(Ok(list(got)));
        } else if let Some(err) = line.strip_prefix("ERR ") {
            output.answers.push(Err(err.to_owned()));
        } else if let Some(call) = line.strip_prefix("CALL ") {
            output.calls.push(list(call));
        } else if let Some(state) = line.strip_prefix("STATE ") {
            output.state = state.parse().unwrap();
        }
    }
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedmsg_replay_client_against_our_daemon() {
    // The venv first (built on first use), so the daemon's clock of
    // retention does not matter.
    let _ = tokio::task::spawn_blocking(fedmsg_python).await.unwrap();
    let dir = scratch_dir("fedmsg-replay-daemon");
    let daemon = Daemon::start(DaemonOptions::ephemeral(dir.join("store")))
        .await
        .unwrap();
    let endpoint = daemon
        .replay_endpoint()
        .expect("a replay endpoint")
        .to_owned();
    let mut o = PublisherOptions::new(daemon.ingest_endpoint());
    o.modname = "replaytest".into();
    let p = Publisher::connect(o).await.unwrap();

    // Eight messages, ten seconds apart, an hour ago.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let base = now - 3600;
    let mut m = Vec::new();
    for k in 1..=8u64 {
        m.push(publish(&p, k, base + 10 * k as i64).await);
    }
    assert_eq!(
        m.iter().map(|x| x.seq).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    let replayed = |seqs: &[u64]| -> Vec<String> {
        seqs.iter()
            .map(|&s| m[(s - 1) as usize].replayed.clone())
            .collect()
    };

    let queries = json!([
        {"seq_id": 5},
        {"seq_ids": [7, 2, 7]},
        {"seq_id_range": [3, 6]},
        {"msg_id": m[2].msg_id},
        {"msg_ids": [m[7].msg_id, m[0].msg_id]},
        {"time": [m[1].timestamp, m[3].timestamp]},
        {"time": [m[1].timestamp as f64 + 0.5, m[3].timestamp as f64 + 0.5]},
        {"seq_id": 99},
        {"sequence": 1},
        {"seq_id_range": [6, 4]},
        {"time": "yesterday"},
        {"seq_id": 5, "msg_id": m[4].msg_id},
    ]);
    // check_for_replay: the consumer has seen up to 2, then receives 5 live
    // (3 and 4 were missed), then 5 again, then 6, then 8 (7 missed).
    let live = vec![
        m[4].replayed.clone(),
        m[4].replayed.clone(),
        m[5].replayed.clone(),
        m[7].replayed.clone(),
    ];
    let out = run_client(&dir, &endpoint, queries, live, 2).await;

    let err = |text: &str| Err::<Vec<String>, String>(format!("error: '{text}'"));
    let want = vec![
        Ok(replayed(&[5])),
        Ok(replayed(&[2, 7])),
        Ok(replayed(&[4, 5, 6])),
        Ok(replayed(&[3])),
        Ok(replayed(&[1, 8])),
        Ok(replayed(&[2, 3, 4])),
        Ok(replayed(&[3, 4])),
        err("There was no match for the given query"),
        err("Unsupported field: \"sequence\""),
        err("Ill-format \"seq_id_range\" field: 6 is after 4"),
        err("Ill-format \"time\" field: expected a pair of numbers"),
        err("the query has more than one field"),
    ];
    assert_eq!(out.answers.len(), want.len());
    for (i, (got, want)) in out.answers.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "query {i}");
    }
    // Every replayed message is the envelope as published, plus seq_id.
    let five: Value = serde_json::from_str(&replayed(&[5])[0]).unwrap();
    assert_eq!(five["seq_id"], 5);
    assert_eq!(five["msg_id"], m[4].msg_id.as_str());
    assert_eq!(five["msg"]["text"], "caf\u{e9} \u{2615} #5");
    assert_eq!(five["timestamp"], m[4].timestamp);

    assert_eq!(
        out.calls,
        vec![
            replayed(&[3, 4, 5]),
            vec![],
            replayed(&[6]),
            replayed(&[7, 8]),
        ],
        "check_for_replay: every message once, in order"
    );
    assert_eq!(out.state, 8);

    // The daemon still takes publishes, and its replay endpoint still
    // answers (the new message included).
    let ninth = publish(&p, 9, now).await;
    assert_eq!(ninth.seq, 9);
    assert_eq!(daemon.info().last_seq, 9);
    let out = run_client(
        &dir,
        &endpoint,
        json!([{"seq_id_range": [7, 9]}]),
        vec![ninth.replayed.clone()],
        7,
    )
    .await;
    let mut eight_nine = replayed(&[8]);
    eight_nine.push(ninth.replayed.clone());
    assert_eq!(out.answers, vec![Ok(eight_nine.clone())]);
    assert_eq!(out.calls, vec![eight_nine]);
    assert_eq!(out.state, 9);
}
