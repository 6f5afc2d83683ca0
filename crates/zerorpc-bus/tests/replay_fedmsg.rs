//! fedmsg 1.1.7's replay client (`check_for_replay`, `get_replay`, run in
//! the real Python package) against `replay::answer` served over our own
//! ZeroMQ stack (a ROUTER socket answering fedmsg's REQ).

use std::sync::Arc;

use bytes::Bytes;
use zerorpc_bus::replay::{answer, error_reply, with_seq_id, ReplayQuery};
use zerorpc_bus::store::{NewRecord, Store, StoreOptions};
use zerorpc_testkit as common;
use zmtp::{Message, RouterSocket};

const CLIENT: &str = include_str!("py/replay_client.py");

/// The envelope of message `n` as fedmsg would write it (canonical JSON,
/// non-ASCII escaped).
fn envelope(n: u64) -> (String, String) {
    let msg_id = format!("2026-0000-{n:04}");
    let json = format!(
        r#"{{"i":{n},"msg":{{"text":"caf\u00e9 #{n}","x":[1.5,null,true]}},"msg_id":"{msg_id}","timestamp":{},"topic":"org.example.replay.t","username":"bus"}}"#,
        1_700_000_000 + n * 10
    );
    (msg_id, json)
}

/// Serves replay queries from `store` on a ROUTER socket: REQ sends
/// [identity, empty, query]; the reply is [identity, empty, frames...].
async fn serve(router: RouterSocket, store: Arc<Store>) {
    while let Ok(mut m) = router.recv().await {
        let Some(id) = m.pop_front() else { continue };
        let body = m.last().cloned().unwrap_or_default();
        let frames = match ReplayQuery::parse(&body).and_then(|q| answer(&store, &q, 1000)) {
            Ok(frames) => frames,
            Err(e) => vec![error_reply(&e)],
        };
        let reply = std::iter::once(id)
            .chain(std::iter::once(Bytes::new()))
            .chain(frames.into_iter().map(Bytes::from));
        if router.send(Message::from_iter(reply)).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn fedmsg_client_sees_every_message_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), StoreOptions::default()).unwrap());
    let owned: Vec<(String, String)> = (1..=12).map(envelope).collect();
    let batch: Vec<NewRecord<'_>> = owned
        .iter()
        .zip(1..)
        .map(|((msg_id, json), n)| NewRecord {
            topic: "org.example.replay.t",
            msg_id,
            timestamp: 1_700_000_000 + n * 10,
            json,
        })
        .collect();
    store.append(&batch).unwrap();

    let router = RouterSocket::new();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let server = tokio::spawn(serve(router, store.clone()));

    // What the consumer receives live: gaps at the start (1, 2), in the
    // middle (5, 6 and 9) and just before the newest message (11).
    let live: Vec<serde_json::Value> = [3u64, 4, 7, 8, 10, 12]
        .iter()
        .map(|&n| serde_json::from_str(&with_seq_id(&envelope(n).1, n).unwrap()).unwrap())
        .collect();
    let queries = serde_json::json!([
        {"seq_id": 5},
        {"seq_ids": [9, 2, 9]},
        {"seq_id_range": [4, 6]},
        {"msg_id": "2026-0000-0007"},
        {"msg_ids": ["2026-0000-0011", "2026-0000-0001"]},
        {"time": [1_700_000_030, 1_700_000_050]},
        {"seq_id": 99},
        {"sequence": 1},
        {"seq_id_range": [6, 4]},
    ]);
    let live_file = dir.path().join("live.json");
    let queries_file = dir.path().join("queries.json");
    std::fs::write(&live_file, serde_json::to_vec(&live).unwrap()).unwrap();
    std::fs::write(&queries_file, serde_json::to_vec(&queries).unwrap()).unwrap();

    let out = common::run_python_script_with(
        common::fedmsg_python(),
        "fedmsg replay client",
        CLIENT,
        vec![
            ep.to_string(),
            live_file.display().to_string(),
            queries_file.display().to_string(),
        ],
    )
    .await;
    server.abort();

    // check_for_replay: every message once, in order, byte for byte what
    // the store holds with its seq_id (fedmsg re-encodes canonically).
    let seen: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("SEEN "))
        .collect();
    let want: Vec<String> = (1..=12)
        .map(|n| with_seq_id(&envelope(n).1, n).unwrap())
        .collect();
    assert_eq!(seen, want, "output:\n{out}");

    let got: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("GOT ") || l.starts_with("ERR "))
        .collect();
    assert_eq!(
        got,
        vec![
            "GOT [5]",
            "GOT [2, 9]",
            "GOT [5, 6]",
            "GOT [7]",
            "GOT [1, 11]",
            "GOT [3, 4, 5]",
            "ERR error: 'There was no match for the given query'",
            "ERR error: 'Unsupported field: \"sequence\"'",
            "ERR error: 'Ill-format \"seq_id_range\" field: 6 is after 4'",
        ],
        "output:\n{out}"
    );
}

/// `with_seq_id` on random canonical envelopes gives what Python's
/// `fedmsg.encoding.dumps` gives for the envelope with `seq_id` set
/// (tricky keys next to "seq_id", escapes, nested objects, an existing
/// seq_id, Python's number spellings).
#[tokio::test]
async fn with_seq_id_matches_python_byte_for_byte() {
    for seed in ["1", "2"] {
        let out = common::run_python_script_with(
            common::fedmsg_python(),
            "canonical JSON cases",
            include_str!("py/seq_id_cases.py"),
            vec![seed.to_owned()],
        )
        .await;
        let mut cases = 0;
        for line in out.lines() {
            let Some(case) = line.strip_prefix("CASE ") else {
                continue;
            };
            let mut parts = case.split('\t');
            let (Some(seq), Some(before), Some(after), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                panic!("bad case line {line:?}");
            };
            let seq: u64 = seq.parse().unwrap();
            assert_eq!(with_seq_id(before, seq).unwrap(), after, "input {before}");
            cases += 1;
        }
        assert_eq!(cases, 300, "output:\n{out}");
    }
}
