//! Replay queries: parsing (and its errors) and answers from a real store.

use zerorpc_bus::replay::{answer, error_reply, ReplayError, ReplayQuery};
use zerorpc_bus::store::{NewRecord, Store, StoreOptions};

fn parse(s: &str) -> Result<ReplayQuery, ReplayError> {
    ReplayQuery::parse(s.as_bytes())
}

#[test]
fn parses_every_query_fedmsg_defines() {
    assert_eq!(parse(r#"{"seq_id":3}"#).unwrap(), ReplayQuery::SeqId(3));
    assert_eq!(
        parse(r#"{"seq_ids":[3,1]}"#).unwrap(),
        ReplayQuery::SeqIds(vec![3, 1])
    );
    assert_eq!(
        parse(r#"{"seq_id_range":[2,9]}"#).unwrap(),
        ReplayQuery::SeqIdRange(2, 9)
    );
    assert_eq!(
        parse(r#"{"msg_id":"2026-x"}"#).unwrap(),
        ReplayQuery::MsgId("2026-x".into())
    );
    assert_eq!(
        parse(r#"{"msg_ids":["a","b"]}"#).unwrap(),
        ReplayQuery::MsgIds(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        parse(r#"{"time":[1.5,20]}"#).unwrap(),
        ReplayQuery::Time(1.5, 20.0)
    );
    // Whitespace as Python's default json.dumps writes it.
    assert_eq!(
        parse(r#"{"seq_id_range": [2, 9]}"#).unwrap(),
        ReplayQuery::SeqIdRange(2, 9)
    );
}

#[test]
fn malformed_queries_get_clear_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"\xff\xfe", "not UTF-8"),
        (b"{\"seq_id\":", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b"{}", "no field"),
        (b"{\"seq_id\":1,\"msg_id\":\"x\"}", "more than one field"),
        (b"{\"seq\":1}", "Unsupported field: \"seq\""),
        (
            b"{\"seq_id\":-1}",
            "\"seq_id\" field: expected a non-negative integer",
        ),
        (b"{\"seq_id\":1.0}", "expected a non-negative integer"),
        (b"{\"seq_id\":\"1\"}", "expected a non-negative integer"),
        (b"{\"seq_id\":true}", "expected a non-negative integer"),
        (b"{\"seq_ids\":5}", "\"seq_ids\" field: expected a list"),
        (
            b"{\"seq_ids\":[1,\"2\"]}",
            "expected a list of non-negative integers",
        ),
        (b"{\"seq_ids\":[]}", "\"seq_ids\" field: the list is empty"),
        (b"{\"seq_id_range\":[1]}", "expected a pair"),
        (b"{\"seq_id_range\":[1,2,3]}", "expected a pair"),
        (
            b"{\"seq_id_range\":[5,2]}",
            "\"seq_id_range\" field: 5 is after 2",
        ),
        (
            b"{\"seq_id_range\":[0,1000001]}",
            "1000001 seqs wide, at most 1000000",
        ),
        (b"{\"msg_id\":7}", "\"msg_id\" field: expected a string"),
        (b"{\"msg_ids\":[\"a\",null]}", "expected a list of strings"),
        (
            b"{\"time\":[3,\"4\"]}",
            "\"time\" field: expected a pair of numbers",
        ),
        (b"{\"time\":[9,4]}", "\"time\" field: 9 is after 4"),
    ];
    for (input, want) in cases {
        let err = ReplayQuery::parse(input).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(want),
            "{:?}: {text:?} lacks {want:?}",
            String::from_utf8_lossy(input)
        );
    }
    let long = format!("{{\"msg_ids\":[{}]}}", vec!["\"a\""; 10_001].join(","));
    let err = parse(&long).unwrap_err();
    assert!(
        err.to_string().contains("10001 items, at most 10000"),
        "{err}"
    );
    assert_eq!(
        error_reply(&parse("{\"seq\":1}").unwrap_err()),
        "error: 'Unsupported field: \"seq\"'"
    );
}

/// A store with seqs 1..=n: msg_id `id-<seq>`, timestamp 100 + 10·seq.
fn store_with(n: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let owned: Vec<(String, String)> = (1..=n)
        .map(|s| {
            let id = format!("id-{s}");
            let json = format!(
                r#"{{"i":{s},"msg":{{}},"msg_id":"{id}","timestamp":{},"topic":"t"}}"#,
                100 + 10 * s
            );
            (id, json)
        })
        .collect();
    let batch: Vec<NewRecord<'_>> = owned
        .iter()
        .zip(1..)
        .map(|((id, json), s)| NewRecord {
            topic: "t",
            msg_id: id,
            timestamp: 100 + 10 * s,
            json,
        })
        .collect();
    store.append(&batch).unwrap();
    (dir, store)
}

/// The seq_ids of an answer, read back from its JSON.
fn seq_ids(frames: &[String]) -> Vec<u64> {
    frames
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_str(f).unwrap();
            assert_eq!(v["msg_id"], format!("id-{}", v["seq_id"]));
            v["seq_id"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn answers_each_query_in_seq_order() {
    let (_dir, store) = store_with(10);
    let ask = |q: ReplayQuery| answer(&store, &q, 100).map(|f| seq_ids(&f));

    let one = answer(&store, &ReplayQuery::SeqId(4), 100).unwrap();
    assert_eq!(
        one,
        vec![r#"{"i":4,"msg":{},"msg_id":"id-4","seq_id":4,"timestamp":140,"topic":"t"}"#]
    );
    assert_eq!(
        ask(ReplayQuery::SeqIds(vec![9, 2, 9, 50, 5])).unwrap(),
        vec![2, 5, 9]
    );
    assert_eq!(
        ask(ReplayQuery::SeqIdRange(3, 7)).unwrap(),
        vec![4, 5, 6, 7]
    );
    assert_eq!(ask(ReplayQuery::SeqIdRange(0, 2)).unwrap(), vec![1, 2]);
    assert_eq!(ask(ReplayQuery::SeqIdRange(8, 40)).unwrap(), vec![9, 10]);
    assert_eq!(ask(ReplayQuery::MsgId("id-6".into())).unwrap(), vec![6]);
    assert_eq!(
        ask(ReplayQuery::MsgIds(vec![
            "id-8".into(),
            "nope".into(),
            "id-3".into(),
            "id-8".into()
        ]))
        .unwrap(),
        vec![3, 8]
    );
    // timestamps 110..=200; both ends included.
    assert_eq!(ask(ReplayQuery::Time(130.0, 150.0)).unwrap(), vec![3, 4, 5]);
    assert_eq!(ask(ReplayQuery::Time(125.5, 139.9)).unwrap(), vec![3]);

    for q in [
        ReplayQuery::SeqId(11),
        ReplayQuery::SeqIdRange(5, 5),
        ReplayQuery::SeqIdRange(10, 20),
        ReplayQuery::SeqIdRange(u64::MAX, u64::MAX),
        ReplayQuery::MsgId("nope".into()),
        ReplayQuery::Time(0.0, 100.0),
    ] {
        let err = ask(q.clone()).unwrap_err();
        assert!(matches!(err, ReplayError::NoMatch), "{q:?}: {err:?}");
        assert_eq!(
            error_reply(&err),
            "error: 'There was no match for the given query'"
        );
    }
}

#[test]
fn an_answer_over_the_limit_is_an_error_not_a_short_list() {
    let (_dir, store) = store_with(10);
    let q = ReplayQuery::SeqIdRange(0, 10);
    assert_eq!(answer(&store, &q, 10).unwrap().len(), 10);
    let err = answer(&store, &q, 9).unwrap_err();
    assert!(
        matches!(err, ReplayError::TooManyMatches { max: 9 }),
        "{err:?}"
    );
    assert!(matches!(
        answer(&store, &ReplayQuery::Time(0.0, 1e12), 3),
        Err(ReplayError::TooManyMatches { max: 3 })
    ));
    assert!(matches!(
        answer(&store, &ReplayQuery::SeqIds(vec![1, 2, 3]), 2),
        Err(ReplayError::TooManyMatches { max: 2 })
    ));
    // Missing ids do not count against the limit.
    assert_eq!(
        answer(&store, &ReplayQuery::SeqIds(vec![1, 2, 30, 40]), 2)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_range_after_retention_answers_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        retention: None,
        max_messages: Some(4),
    };
    let store = Store::open(dir.path(), opts).unwrap();
    let owned: Vec<(String, String)> = (1..=6)
        .map(|s| {
            (
                format!("id-{s}"),
                format!(r#"{{"msg_id":"id-{s}","topic":"t"}}"#),
            )
        })
        .collect();
    let batch: Vec<NewRecord<'_>> = owned
        .iter()
        .map(|(id, json)| NewRecord {
            topic: "t",
            msg_id: id,
            timestamp: 0,
            json,
        })
        .collect();
    store.append(&batch).unwrap();
    assert_eq!(store.prune(0).unwrap(), 2);
    let got = answer(&store, &ReplayQuery::SeqIdRange(0, 6), 100).unwrap();
    assert_eq!(seq_ids(&got), vec![3, 4, 5, 6]);
    assert_eq!(got[0], r#"{"msg_id":"id-3","seq_id":3,"topic":"t"}"#);
}
