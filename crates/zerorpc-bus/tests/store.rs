//! The durable log: sequence numbers, duplicates, reads, retention, errors.

use std::time::Duration;

use zerorpc_bus::store::{Appended, NewRecord, Record, Store, StoreError, StoreOptions};

/// An owned message for building batches.
struct Msg {
    topic: String,
    msg_id: String,
    timestamp: i64,
    json: String,
}

fn msg(id: &str, timestamp: i64) -> Msg {
    let topic = format!("org.example.test.{id}");
    Msg {
        json: format!(
            r#"{{"i":1,"msg":{{"id":"{id}"}},"msg_id":"{id}","timestamp":{timestamp},"topic":"{topic}"}}"#
        ),
        topic,
        msg_id: id.to_owned(),
        timestamp,
    }
}

fn batch(msgs: &[Msg]) -> Vec<NewRecord<'_>> {
    msgs.iter()
        .map(|m| NewRecord {
            topic: &m.topic,
            msg_id: &m.msg_id,
            timestamp: m.timestamp,
            json: &m.json,
        })
        .collect()
}

fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn ids(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.msg_id.as_str()).collect()
}

#[test]
fn sequence_numbers_are_consecutive_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.last_seq(), 0);
    assert_eq!(store.first_seq(), None);
    assert!(store.is_empty().unwrap());
    assert_eq!(store.append(&[]).unwrap(), vec![]);

    let first: Vec<Msg> = (0..3).map(|i| msg(&format!("a{i}"), 100 + i)).collect();
    let got = store.append(&batch(&first)).unwrap();
    assert_eq!(
        got,
        vec![Appended::New(1), Appended::New(2), Appended::New(3)]
    );
    let second: Vec<Msg> = (0..2).map(|i| msg(&format!("b{i}"), 200 + i)).collect();
    let got = store.append(&batch(&second)).unwrap();
    assert_eq!(got, vec![Appended::New(4), Appended::New(5)]);
    assert_eq!(store.last_seq(), 5);
    assert_eq!(store.first_seq(), Some(1));
    drop(store);

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.last_seq(), 5);
    assert_eq!(store.first_seq(), Some(1));
    assert_eq!(store.len().unwrap(), 5);
    let all = store.read_from(1, 100).unwrap();
    assert_eq!(seqs(&all), vec![1, 2, 3, 4, 5]);
    assert_eq!(ids(&all), vec!["a0", "a1", "a2", "b0", "b1"]);
    for (r, m) in all.iter().zip(first.iter().chain(second.iter())) {
        assert_eq!(&*r.json, m.json);
        assert_eq!(r.topic, m.topic);
        assert_eq!(r.timestamp, m.timestamp);
    }
    let third = [msg("c0", 300)];
    assert_eq!(
        store.append(&batch(&third)).unwrap(),
        vec![Appended::New(6)]
    );
}

#[test]
fn duplicates_are_not_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let msgs = [msg("x", 1), msg("y", 2)];
    store.append(&batch(&msgs)).unwrap();

    // A retry of the whole batch: nothing new.
    let got = store.append(&batch(&msgs)).unwrap();
    assert_eq!(got, vec![Appended::Duplicate(1), Appended::Duplicate(2)]);
    assert_eq!(store.last_seq(), 2);

    // Mixed, and a msg_id twice in one batch.
    let mixed = [msg("z", 3), msg("x", 1), msg("w", 4), msg("z", 3)];
    let got = store.append(&batch(&mixed)).unwrap();
    assert_eq!(
        got,
        vec![
            Appended::New(3),
            Appended::Duplicate(1),
            Appended::New(4),
            Appended::Duplicate(3)
        ]
    );
    assert_eq!(got[3].seq(), 3);
    assert_eq!(store.len().unwrap(), 4);
    assert_eq!(store.last_seq(), 4);
    drop(store);

    // Still known after a restart.
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let got = store.append(&batch(&[msg("w", 4), msg("v", 5)])).unwrap();
    assert_eq!(got, vec![Appended::Duplicate(4), Appended::New(5)]);
}

#[test]
fn reads_by_seq_msg_id_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    // Timestamps deliberately not in seq order.
    let msgs = [
        msg("m1", 50),
        msg("m2", 10),
        msg("m3", 30),
        msg("m4", 30),
        msg("m5", 70),
    ];
    store.append(&batch(&msgs)).unwrap();

    let r = store.get(3).unwrap().unwrap();
    assert_eq!((r.seq, r.msg_id.as_str(), r.timestamp), (3, "m3", 30));
    assert_eq!(&*r.json, msgs[2].json);
    assert_eq!(store.get(0).unwrap(), None);
    assert_eq!(store.get(6).unwrap(), None);

    assert_eq!(store.get_by_msg_id("m4").unwrap().unwrap().seq, 4);
    assert_eq!(store.get_by_msg_id("nope").unwrap(), None);

    assert_eq!(seqs(&store.read_from(2, 2).unwrap()), vec![2, 3]);
    assert_eq!(seqs(&store.read_from(4, 100).unwrap()), vec![4, 5]);
    assert_eq!(seqs(&store.read_from(0, 1).unwrap()), vec![1]);
    assert!(store.read_from(6, 10).unwrap().is_empty());
    assert!(store.read_from(1, 0).unwrap().is_empty());

    // Both ends included; time order, then seq.
    assert_eq!(
        seqs(&store.range_by_time(10.0, 50.0, 100).unwrap()),
        vec![2, 3, 4, 1]
    );
    assert_eq!(
        seqs(&store.range_by_time(30.0, 30.0, 100).unwrap()),
        vec![3, 4]
    );
    assert_eq!(
        seqs(&store.range_by_time(10.5, 49.9, 100).unwrap()),
        vec![3, 4]
    );
    assert_eq!(
        seqs(&store.range_by_time(29.1, 29.9, 100).unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(&store.range_by_time(60.0, 10.0, 100).unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(
            &store
                .range_by_time(f64::NEG_INFINITY, f64::INFINITY, 3)
                .unwrap()
        ),
        vec![2, 3, 4]
    );
    assert!(matches!(
        store.range_by_time(f64::NAN, 1.0, 10),
        Err(StoreError::BadTimeRange { .. })
    ));
}

#[test]
fn retention_by_age_removes_records_and_their_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        retention: Some(Duration::from_secs(100)),
        max_messages: None,
    };
    let store = Store::open(dir.path(), opts).unwrap();
    // seq 1..=4 at 1000, 1050, 900, 1200
    let msgs = [
        msg("a", 1000),
        msg("b", 1050),
        msg("c", 900),
        msg("d", 1200),
    ];
    store.append(&batch(&msgs)).unwrap();

    // now = 1120: cutoff 1020; a (1000) and c (900) are older.
    assert_eq!(store.prune(1120).unwrap(), 2);
    assert_eq!(seqs(&store.read_from(0, 10).unwrap()), vec![2, 4]);
    assert_eq!(store.first_seq(), Some(2));
    assert_eq!(store.last_seq(), 4);
    assert_eq!(store.get_by_msg_id("a").unwrap(), None);
    assert_eq!(store.get_by_msg_id("c").unwrap(), None);
    assert_eq!(
        seqs(&store.range_by_time(0.0, 2000.0, 10).unwrap()),
        vec![2, 4]
    );
    // Nothing more to do at the same time.
    assert_eq!(store.prune(1120).unwrap(), 0);

    // Everything goes; seqs keep counting, also across a reopen.
    assert_eq!(store.prune(10_000).unwrap(), 2);
    assert_eq!(store.first_seq(), None);
    assert_eq!(store.last_seq(), 4);
    drop(store);
    let store = Store::open(dir.path(), opts).unwrap();
    assert_eq!(store.first_seq(), None);
    assert_eq!(store.last_seq(), 4);
    // A pruned msg_id is no longer a duplicate: it is a new message.
    let got = store
        .append(&batch(&[msg("e", 20_000), msg("a", 20_000)]))
        .unwrap();
    assert_eq!(got, vec![Appended::New(5), Appended::New(6)]);
    assert_eq!(store.first_seq(), Some(5));
}

#[test]
fn retention_by_count_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        retention: None,
        max_messages: Some(3),
    };
    let store = Store::open(dir.path(), opts).unwrap();
    let msgs: Vec<Msg> = (0..5).map(|i| msg(&format!("n{i}"), 100 - i)).collect();
    store.append(&batch(&msgs)).unwrap();
    assert_eq!(store.prune(0).unwrap(), 2);
    assert_eq!(seqs(&store.read_from(0, 10).unwrap()), vec![3, 4, 5]);
    assert_eq!(store.first_seq(), Some(3));
    assert_eq!(store.get_by_msg_id("n0").unwrap(), None);
    assert_eq!(store.get_by_msg_id("n2").unwrap().unwrap().seq, 3);
    assert_eq!(
        seqs(&store.range_by_time(0.0, 1000.0, 10).unwrap()),
        vec![5, 4, 3]
    );
    assert_eq!(store.prune(0).unwrap(), 0);

    let more: Vec<Msg> = (5..7).map(|i| msg(&format!("n{i}"), 200)).collect();
    let got = store.append(&batch(&more)).unwrap();
    assert_eq!(got, vec![Appended::New(6), Appended::New(7)]);
    assert_eq!(store.prune(0).unwrap(), 2);
    assert_eq!(seqs(&store.read_from(0, 10).unwrap()), vec![5, 6, 7]);
    assert_eq!(store.first_seq(), Some(5));
}

#[test]
fn retention_by_age_and_count_together() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        retention: Some(Duration::from_secs(10)),
        max_messages: Some(2),
    };
    let store = Store::open(dir.path(), opts).unwrap();
    let msgs = [msg("a", 1), msg("b", 95), msg("c", 96), msg("d", 97)];
    store.append(&batch(&msgs)).unwrap();
    // Age takes a (1); count then takes b.
    assert_eq!(store.prune(100).unwrap(), 2);
    assert_eq!(seqs(&store.read_from(0, 10).unwrap()), vec![3, 4]);
}

#[test]
fn a_store_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let _store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err:?}");
    assert!(err.to_string().contains("bus.redb"), "{err}");
}

#[test]
fn a_file_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bus.redb"), vec![0x5a; 8192]).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::Open { .. } | StoreError::Corrupt { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("bus.redb"), "{err}");
}

#[test]
fn a_directory_that_cannot_be_created_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&file.join("store"), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
}
