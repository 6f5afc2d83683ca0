//! Rust components as multi-lang programs: the example programs
//! (`multilang_split`, `multilang_count`, `multilang_sentences`) driven by
//! the runner, JSON and msgpack, with and without task ids; and
//! `serve_bolt` fed protocol bytes directly.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{example, LastCount};
use serde_json::{json, Value};
use zerorpc_stream::multilang::{encode, serve_bolt, Decoder, Frame, Serializer};
use zerorpc_stream::runner::{run, RunOptions};
use zerorpc_stream::{
    Bolt, BoltCollector, BoxError, Outputs, Registry, Spout, SpoutCollector, TopologyBuilder, Tuple,
};

struct Sentences {
    next: u64,
    total: u64,
}

fn sentence(i: u64) -> String {
    format!("w{} w{} common", i % 7, i % 3)
}

impl Spout for Sentences {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["sentence"])
    }
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        if self.next < self.total {
            out.emit(vec![json!(sentence(self.next))], json!(self.next))?;
            self.next += 1;
        }
        Ok(())
    }
}

fn expected(n: u64) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        for w in sentence(i).split(' ') {
            *m.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    m
}

async fn word_count_through_our_programs(serializer: Option<&str>) {
    let n = 500;
    let split = example("multilang_split").display().to_string();
    let count = example("multilang_count").display().to_string();
    let last = Arc::new(Mutex::new(HashMap::new()));
    let l = last.clone();
    let mut b = TopologyBuilder::new("ml")
        .spout("sentences", 1, move || Sentences { next: 0, total: n })
        .shell_bolt("split", 2, &[&split], Outputs::fields(["word"]))
        .shuffle("sentences")
        .shell_bolt("count", 2, &[&count], Outputs::fields(["word", "count"]))
        .fields("split", ["word"])
        .bolt("last", 1, move || LastCount { last: l.clone() })
        .shuffle("count");
    if let Some(s) = serializer {
        b = b.config("topology.multilang.serializer", s);
    }
    let logs = tempfile::tempdir().unwrap();
    let stats = run(
        b.build(),
        &Registry::new(),
        RunOptions {
            stop_when_idle: Some(Duration::from_secs(1)),
            duration: Some(Duration::from_secs(120)),
            log_dir: Some(logs.path().to_path_buf()),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (stats.trees.started, stats.trees.acked),
        (n, n),
        "{stats:#?}"
    );
    assert_eq!(stats.trees.failed + stats.trees.timed_out, 0);
    let got: BTreeMap<String, u64> = last.lock().unwrap().clone().into_iter().collect();
    assert_eq!(got, expected(n));
    assert_eq!(stats.components["split"].errors, 0);
    assert_eq!(stats.components["count"].errors, 0);
    // multilang_count's println! went to stderr, so to the log, and did
    // not break the protocol.
    let log = std::fs::read_to_string(logs.path().join("count.log")).unwrap();
    assert!(log.contains("stderr: first sight of \"common\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_drives_our_multilang_bolts_json() {
    word_count_through_our_programs(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_drives_our_multilang_bolts_msgpack() {
    word_count_through_our_programs(Some("org.apache.storm.multilang.MsgpackSerializer")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_drives_our_multilang_spout() {
    let spout = example("multilang_sentences").display().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    struct Record(Arc<Mutex<Vec<String>>>);
    impl Bolt for Record {
        fn outputs(&self) -> Outputs {
            Outputs::none()
        }
        fn process(&mut self, t: &Tuple, _out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
            self.0
                .lock()
                .unwrap()
                .push(t.values[0].as_str().unwrap_or_default().to_string());
            Ok(())
        }
    }
    let topology = TopologyBuilder::new("ml-spout")
        .config("sentences.count", 50)
        .shell_spout("sentences", 1, &[&spout], Outputs::fields(["sentence"]))
        .bolt("record", 1, move || Record(s.clone()))
        .shuffle("sentences")
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
    assert_eq!((stats.trees.started, stats.trees.acked), (50, 50));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 50);
    assert!(seen.contains(&"moon 5".to_string()), "{seen:?}");
}

/// Frames of a byte stream in a serializer.
fn frames(bytes: &[u8], s: Serializer) -> Vec<Value> {
    let mut d = Decoder::new(s);
    d.feed(bytes);
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        match f {
            Frame::Message(v) => out.push(v),
            Frame::Stray(l) => panic!("stray {l}"),
        }
    }
    out
}

struct Echo;

impl Bolt for Echo {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["x"])
    }
    fn process(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        if t.get("x") == Some(&json!("bad")) {
            return Err("bad input".into());
        }
        out.emit(&[t], vec![t.values[0].clone()])?;
        Ok(())
    }
}

#[test]
fn serve_bolt_answers_heartbeats_acks_fails_and_reads_fields_from_the_context() {
    let dir = tempfile::tempdir().unwrap();
    for s in [Serializer::Json, Serializer::Msgpack] {
        let mut input = Vec::new();
        let handshake = json!({
            "conf": {"topology.name": "t"},
            "pidDir": dir.path(),
            "context": {"taskid": 3, "componentid": "echo", "task->component": {"3": "echo", "4": "echo"},
                        "source->stream->fields": {"src": {"default": ["x"]}}},
        });
        encode(&handshake, s, &mut input);
        let tuple = |id: &str, x: &str| json!({"id": id, "comp": "src", "stream": "default", "task": 9, "tuple": [x]});
        encode(&tuple("a1", "hello"), s, &mut input);
        // the task ids of the emit, read back before the next tuple
        encode(&json!([4]), s, &mut input);
        encode(
            &json!({"id": "-1", "comp": "__system", "stream": "__heartbeat", "task": -1, "tuple": []}),
            s,
            &mut input,
        );
        encode(&tuple("a2", "bad"), s, &mut input);
        let mut output = Vec::new();
        serve_bolt(Echo, input.as_slice(), &mut output).unwrap();
        let out = frames(&output, s);
        let pid = std::process::id();
        assert_eq!(out[0], json!({"pid": pid}));
        assert!(dir.path().join(pid.to_string()).exists());
        assert_eq!(
            out[1],
            json!({"command": "emit", "anchors": ["a1"], "need_task_ids": true, "tuple": ["hello"]})
        );
        assert_eq!(out[2], json!({"command": "ack", "id": "a1"}));
        assert_eq!(out[3], json!({"command": "sync"}));
        assert_eq!(out[4], json!({"command": "error", "msg": "bad input"}));
        assert_eq!(out[5], json!({"command": "fail", "id": "a2"}));
        assert_eq!(out.len(), 6);
    }
}

#[test]
fn serve_bolt_rejects_garbage_with_an_error() {
    let e = serve_bolt(Echo, &b"not the protocol\nend\n"[..], Vec::new()).unwrap_err();
    assert!(e.to_string().contains("not protocol"), "{e}");
    let e = serve_bolt(Echo, &b""[..], Vec::new()).unwrap_err();
    assert!(e.to_string().contains("handshake"), "{e}");
}
