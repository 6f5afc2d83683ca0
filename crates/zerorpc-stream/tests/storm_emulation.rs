//! Our multi-lang example programs driven by a test-side emulation of
//! Storm's ShellBolt/ShellSpout (`storm_emulation/storm_shell.py`, written
//! from Storm's protocol document apart from the crate's code): JSON and
//! msgpack, heartbeats, both `need_task_ids` values.

mod common;

use std::path::Path;
use std::process::Command;

use common::example;
use serde_json::{json, Value};

/// Runs the emulation and returns its summary.
fn storm(mode: &str, serializer: &str, need: &str, input: &Value, program: &Path) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("input.json");
    std::fs::write(&input_path, input.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/storm_emulation/storm_shell.py");
    let out = Command::new(zerorpc_testkit::streamparse_python())
        .arg(script)
        .args([
            "--serializer",
            serializer,
            "--mode",
            mode,
            "--need-task-ids",
            need,
        ])
        .args(["--heartbeat-every", "2", "--input"])
        .arg(&input_path)
        .arg("--")
        .arg(program)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(summary["errors"], json!([]), "{summary:#}");
    assert_eq!(summary["pid_file_ok"], json!(true), "{summary:#}");
    assert_eq!(summary["exit_code"], json!(0), "{summary:#}");
    assert_eq!(
        summary["need_task_ids_seen"],
        json!([need == "yes"]),
        "{summary:#}"
    );
    summary
}

fn tuple(id: &str, values: Value) -> Value {
    json!({"id": id, "comp": "upstream", "stream": "default", "task": 7, "tuple": values})
}

fn emitted(summary: &Value) -> Vec<(Value, Value)> {
    summary["emits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["tuple"].clone(), e["anchors"].clone()))
        .collect()
}

#[test]
fn split_under_storms_shell_bolt() {
    let sentences = ["the cow jumped", "over the moon", "a b"];
    for serializer in ["json", "msgpack"] {
        for need in ["yes", "no"] {
            let input = json!({
                "conf": {"topology.name": "emulated"},
                "componentid": "split",
                "tuples": sentences.iter().enumerate()
                    .map(|(i, s)| tuple(&format!("-{}{i}", 9_000_000_000_000i64), json!([s])))
                    .collect::<Vec<_>>(),
            });
            let s = storm(
                "bolt",
                serializer,
                need,
                &input,
                &example("multilang_split"),
            );
            let mut want = Vec::new();
            for (i, sentence) in sentences.iter().enumerate() {
                let id = format!("-{}{i}", 9_000_000_000_000i64);
                for w in sentence.split(' ') {
                    want.push((json!([w]), json!([id])));
                }
            }
            assert_eq!(emitted(&s), want, "{serializer} {need}");
            let acks: Vec<String> = (0..3)
                .map(|i| format!("-{}{i}", 9_000_000_000_000i64))
                .collect();
            assert_eq!(s["acks"], json!(acks));
            assert_eq!(s["fails"], json!([]));
            let hb = s["heartbeats_sent"].as_u64().unwrap();
            assert!(hb >= 1, "{s:#}");
            assert_eq!(s["syncs_for_heartbeats"].as_u64(), Some(hb));
        }
    }
}

#[test]
fn count_under_storms_shell_bolt() {
    let words = ["a", "b", "a", "c", "a", "b"];
    for serializer in ["json", "msgpack"] {
        for need in ["yes", "no"] {
            let input = json!({
                "componentid": "count",
                "tuples": words.iter().enumerate()
                    .map(|(i, w)| tuple(&i.to_string(), json!([w])))
                    .collect::<Vec<_>>(),
            });
            let s = storm(
                "bolt",
                serializer,
                need,
                &input,
                &example("multilang_count"),
            );
            let counts: Vec<(Value, Value)> =
                [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2)]
                    .iter()
                    .enumerate()
                    .map(|(i, (w, n))| (json!([w, n]), json!([i.to_string()])))
                    .collect();
            assert_eq!(emitted(&s), counts, "{serializer} {need}");
            assert_eq!(s["acks"].as_array().unwrap().len(), words.len());
        }
    }
}

#[test]
fn sentences_under_storms_shell_spout() {
    for serializer in ["json", "msgpack"] {
        for need in ["yes", "no"] {
            let input = json!({
                "conf": {"sentences.count": 3},
                "componentid": "sentences",
                "commands": ["activate", "next", "next", {"ack": 0}, {"fail": 1}, "next", "next", "next", "deactivate"],
            });
            let s = storm(
                "spout",
                serializer,
                need,
                &input,
                &example("multilang_sentences"),
            );
            let ids: Vec<Value> = s["emits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone())
                .collect();
            // 0, 1; after the fail of 1 it comes again; then 2; then none.
            assert_eq!(ids, vec![json!(0), json!(1), json!(1), json!(2)], "{s:#}");
            assert_eq!(s["emits"][0]["tuple"], json!(["the 0"]));
            let logs = s["logs"].as_array().unwrap();
            assert!(
                logs.iter()
                    .any(|l| l["msg"] == "acked 0" && l["level"] == 1),
                "{s:#}"
            );
        }
    }
}
