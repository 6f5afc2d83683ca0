//! The schema registry: picking a topic's schema, versions, violations and
//! summaries.

mod derived;
mod load_dir;

use super::*;
use serde_json::json;

const COMMENT: &str = "org.fedoraproject.prod.bodhi.update.comment";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write test file");
}

fn comment_schema() -> Value {
    json!({
        "$id": "https://example.org/schemas/bodhi.update.comment/1",
        "x-topic": "org.fedoraproject.*.bodhi.update.comment",
        "x-summary": "{agent} commented on {update.alias}",
        "type": "object",
        "required": ["agent", "update"],
        "properties": {
            "agent": {"type": "string"},
            "update": {
                "type": "object",
                "required": ["alias"],
                "properties": {
                    "alias": {"type": "string"},
                    "karma": {"type": "integer"},
                    "builds": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["nvr"],
                            "properties": {"nvr": {"type": "string"}}
                        }
                    }
                }
            }
        }
    })
}

fn invalid_violations(result: Result<Checked, SchemaError>) -> (String, Vec<Violation>, String) {
    match result {
        Err(e @ SchemaError::Invalid { .. }) => {
            let text = e.to_string();
            let SchemaError::Invalid {
                schema_id,
                violations,
                ..
            } = e
            else {
                unreachable!()
            };
            (schema_id, violations, text)
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn paths(v: &[Violation]) -> Vec<&str> {
    v.iter().map(|v| v.path.as_str()).collect()
}

#[test]
fn empty_registry_checks_nothing() {
    let reg = SchemaRegistry::empty();
    assert_eq!(reg.len(), 0);
    assert!(reg.is_empty());
    assert_eq!(reg.check(COMMENT, &json!(42)).unwrap(), Checked::NoSchema);
    assert_eq!(reg.summary(COMMENT, &json!({})), None);
}

#[test]
fn versions_by_topic_suffix() {
    let mut reg = SchemaRegistry::empty();
    reg.add(
        "org.x.*.comment",
        json!({"type": "object", "required": ["text"]}),
    )
    .unwrap();
    reg.add(
        "org.x.*.comment.v2",
        json!({"type": "object", "required": ["body"], "properties": {"body": {"type": "string"}}}),
    )
    .unwrap();
    assert_eq!(
        reg.check("org.x.prod.comment", &json!({"text": "hi"}))
            .unwrap(),
        Checked::Valid {
            schema_id: "org.x.*.comment".into()
        }
    );
    assert_eq!(
        reg.check("org.x.prod.comment.v2", &json!({"body": "hi"}))
            .unwrap(),
        Checked::Valid {
            schema_id: "org.x.*.comment.v2".into()
        }
    );
    // A v1 body on the v2 topic is checked against v2 only.
    let (id, v, _) = invalid_violations(reg.check("org.x.prod.comment.v2", &json!({"text": "hi"})));
    assert_eq!(id, "org.x.*.comment.v2");
    assert_eq!(paths(&v), vec!["/body"]);
}

fn versioned_registry() -> SchemaRegistry {
    let mut reg = SchemaRegistry::empty();
    reg.add(
        "org.x.*.comment",
        json!({
            "$id": "https://example.org/schemas/comment/1",
            "x-summary": "v1: {text}",
            "type": "object", "required": ["text"],
            "properties": {"text": {"type": "string"}}
        }),
    )
    .unwrap();
    reg.add(
        "org.x.*.comment",
        json!({
            "$id": "https://example.org/schemas/comment/v2",
            "x-summary": "v2: {comment.text}",
            "type": "object", "required": ["comment"],
            "properties": {"comment": {
                "type": "object", "required": ["text"],
                "properties": {"text": {"type": "string"}}
            }}
        }),
    )
    .unwrap();
    reg
}

#[test]
fn versions_by_id_newest_first_then_older() {
    let reg = versioned_registry();
    assert_eq!(reg.len(), 2);
    assert_eq!(reg.topics(), vec!["org.x.*.comment"]);
    let topic = "org.x.prod.comment";
    let v2 = json!({"comment": {"text": "hi"}});
    let v1 = json!({"text": "hi"});
    assert_eq!(
        reg.check(topic, &v2).unwrap(),
        Checked::Valid {
            schema_id: "https://example.org/schemas/comment/v2".into()
        }
    );
    assert_eq!(
        reg.check(topic, &v1).unwrap(),
        Checked::Valid {
            schema_id: "https://example.org/schemas/comment/1".into()
        }
    );
    // Neither: the newest version's violations are reported.
    let (id, v, text) = invalid_violations(reg.check(topic, &json!({"comment": {"txt": "hi"}})));
    assert_eq!(id, "https://example.org/schemas/comment/v2");
    assert_eq!(paths(&v), vec!["/comment/text"]);
    assert!(text.contains("/comment/text"), "{text}");

    assert_eq!(reg.summary(topic, &v1).as_deref(), Some("v1: hi"));
    assert_eq!(reg.summary(topic, &v2).as_deref(), Some("v2: hi"));
    // Matches no version: the newest template, with `?` for what is missing.
    assert_eq!(reg.summary(topic, &json!({})).as_deref(), Some("v2: ?"));
}

#[test]
fn explicit_schema_reference() {
    let reg = versioned_registry();
    let topic = "org.x.prod.comment";
    let v2 = json!({"comment": {"text": "hi"}});
    let v1_id = "https://example.org/schemas/comment/1";
    // Pinned to v1, a v2 body fails even though v2 would accept it.
    let (id, v, _) = invalid_violations(reg.check_with(topic, &v2, Some(v1_id)));
    assert_eq!(id, v1_id);
    assert_eq!(paths(&v), vec!["/text"]);
    assert_eq!(
        reg.check_with(topic, &json!({"text": "x"}), Some(&format!("{v1_id}#")))
            .unwrap(),
        Checked::Valid {
            schema_id: v1_id.into()
        }
    );
    let e = reg
        .check_with(topic, &v2, Some("https://example.org/schemas/comment/3"))
        .unwrap_err();
    assert!(matches!(e, SchemaError::UnknownSchema { .. }), "{e:?}");
    assert!(e.to_string().contains("comment/3"), "{e}");
    let e = reg
        .check_with("org.x.prod.other", &v2, Some(v1_id))
        .unwrap_err();
    assert!(matches!(e, SchemaError::WrongTopic { .. }), "{e:?}");
    assert!(e.to_string().contains("org.x.prod.other"), "{e}");
}

#[test]
fn the_most_specific_pattern_wins() {
    let mut reg = SchemaRegistry::empty();
    let must_have = |key: &str| json!({"type": "object", "required": [key]});
    reg.add("org.x.*", must_have("short")).unwrap();
    reg.add("org.x.*.bodhi.*", must_have("long")).unwrap();
    reg.add("org.x.prod.bodhi.update", must_have("literal"))
        .unwrap();
    reg.add("org.x.?????.bodhi.*", must_have("fewer_stars"))
        .unwrap();

    let id_for = |topic: &str, key: &str| match reg.check(topic, &json!({ key: 1 })) {
        Ok(Checked::Valid { schema_id }) => schema_id,
        other => panic!("{topic}: {other:?}"),
    };
    assert_eq!(
        id_for("org.x.prod.bodhi.update", "literal"),
        "org.x.prod.bodhi.update"
    );
    assert_eq!(id_for("org.x.prod.bodhi.other", "long"), "org.x.*.bodhi.*");
    // Three globs match: the longest wins.
    assert_eq!(
        id_for("org.x.stage.bodhi.update", "fewer_stars"),
        "org.x.?????.bodhi.*"
    );
    assert_eq!(id_for("org.x.prod.koji.build", "short"), "org.x.*");
    assert_eq!(
        reg.check("org.y.prod", &json!(null)).unwrap(),
        Checked::NoSchema
    );
    // The more specific schema is the only one checked.
    let (id, _, _) = invalid_violations(reg.check("org.x.prod.bodhi.update", &json!({"short": 1})));
    assert_eq!(id, "org.x.prod.bodhi.update");
}

#[test]
fn violations_name_json_pointers() {
    let mut reg = SchemaRegistry::empty();
    reg.add("org.fedoraproject.*.bodhi.update.comment", comment_schema())
        .unwrap();
    let good = json!({
        "agent": "bowlofeggs",
        "update": {"alias": "FEDORA-1", "karma": 1, "builds": [{"nvr": "a-1-1"}]}
    });
    assert!(matches!(
        reg.check(COMMENT, &good),
        Ok(Checked::Valid { .. })
    ));

    let bad = json!({
        "agent": 7,
        "update": {"karma": "lots", "builds": [{"nvr": "a-1-1"}, {"nvr": 3}, {}]}
    });
    let (id, v, text) = invalid_violations(reg.check(COMMENT, &bad));
    assert_eq!(id, "https://example.org/schemas/bodhi.update.comment/1");
    let mut got = paths(&v);
    got.sort_unstable();
    assert_eq!(
        got,
        vec![
            "/agent",
            "/update/alias",
            "/update/builds/1/nvr",
            "/update/builds/2/nvr",
            "/update/karma"
        ]
    );
    let missing = v.iter().find(|v| v.path == "/update/alias").unwrap();
    assert_eq!(missing.message, "required field is missing");
    let typed = v.iter().find(|v| v.path == "/update/karma").unwrap();
    assert!(typed.message.contains("integer"), "{typed:?}");
    for p in &got {
        assert!(text.contains(p), "{p} not in {text}");
    }
    assert!(text.contains(COMMENT), "{text}");

    // The body itself has the wrong type: the root pointer is "".
    let (_, v, text) = invalid_violations(reg.check(COMMENT, &json!([1])));
    assert_eq!(paths(&v), vec![""]);
    assert!(text.contains("(body)"), "{text}");
}

#[test]
fn unexpected_fields_and_escaped_pointers() {
    let mut reg = SchemaRegistry::empty();
    reg.add(
        "t",
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["a/b"],
            "properties": {"a/b": {"type": "string"}, "ok": {}}
        }),
    )
    .unwrap();
    let (_, v, _) = invalid_violations(reg.check("t", &json!({"ok": 1, "x~y": 2})));
    let mut got = paths(&v);
    got.sort_unstable();
    assert_eq!(got, vec!["/a~1b", "/x~0y"]);
}

#[test]
fn draft7_and_draft_2020_12_are_both_understood() {
    let mut reg = SchemaRegistry::empty();
    // Draft 7 tuple validation: `items` as an array.
    reg.add(
        "d7",
        json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "array",
            "items": [{"type": "string"}, {"type": "integer"}],
            "definitions": {"x": {"type": "string"}}
        }),
    )
    .unwrap();
    // Draft 2020-12: `prefixItems` and `$defs`.
    reg.add(
        "d2020",
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "array",
            "prefixItems": [{"type": "string"}, {"$ref": "#/$defs/n"}],
            "$defs": {"n": {"type": "integer"}}
        }),
    )
    .unwrap();
    for topic in ["d7", "d2020"] {
        assert!(matches!(
            reg.check(topic, &json!(["a", 1])),
            Ok(Checked::Valid { .. })
        ));
        let (_, v, _) = invalid_violations(reg.check(topic, &json!(["a", "b"])));
        assert_eq!(paths(&v), vec!["/1"], "{topic}");
    }
}

#[test]
fn summaries_through_the_registry() {
    let mut reg = SchemaRegistry::empty();
    reg.add("org.fedoraproject.*.bodhi.update.comment", comment_schema())
        .unwrap();
    reg.add("org.x.plain", json!({"type": "object"})).unwrap();
    let body = json!({"agent": "bowlofeggs", "update": {"alias": "FEDORA-2018-1", "karma": 1}});
    assert_eq!(
        reg.summary(COMMENT, &body).as_deref(),
        Some("bowlofeggs commented on FEDORA-2018-1")
    );
    // An invalid body still gets a summary; missing fields render as `?`.
    assert_eq!(
        reg.summary(COMMENT, &json!({"update": 5})).as_deref(),
        Some("? commented on ?")
    );
    // A non-string value renders as its JSON text.
    assert_eq!(
        reg.summary(COMMENT, &json!({"agent": 12, "update": {"alias": true}}))
            .as_deref(),
        Some("12 commented on true")
    );
    assert_eq!(reg.summary("org.x.plain", &json!({})), None);
    assert_eq!(reg.summary("org.x.none", &json!({})), None);
}
#[test]
fn the_registry_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<SchemaRegistry>();
    shareable::<SchemaError>();
    let mut reg = SchemaRegistry::empty();
    reg.add("t", json!({"type": "string"})).unwrap();
    let reg = std::sync::Arc::new(reg);
    let other = std::sync::Arc::clone(&reg);
    let outcome = std::thread::spawn(move || other.check("t", &json!(1)).is_err())
        .join()
        .unwrap();
    assert!(outcome);
}

#[test]
fn fedora_messaging_class_names_map_both_ways() {
    let mut reg = SchemaRegistry::empty();
    reg.add(
        "org.x.*.thing",
        json!({"$id": "https://x/thing/1", "x-fedora-messaging-schema": "x.thing.v1", "type": "object"}),
    )
    .unwrap();
    reg.add("org.x.*.other", json!({"type": "object"})).unwrap();
    assert!(reg.names_fedora_messaging_classes());
    assert_eq!(
        reg.fedora_messaging_name("https://x/thing/1"),
        Some("x.thing.v1")
    );
    assert_eq!(reg.fedora_messaging_name("org.x.*.other"), None);
    assert_eq!(
        reg.schema_id_for_fedora_messaging("x.thing.v1"),
        Some("https://x/thing/1")
    );
    assert_eq!(reg.schema_id_for_fedora_messaging("nope"), None);
    // Not a string: an error naming the key.
    let e = reg
        .add("org.y", json!({"x-fedora-messaging-schema": 3}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x-fedora-messaging-schema"), "{e}");
    let mut plain = SchemaRegistry::empty();
    plain.add("org.z", json!({})).unwrap();
    assert!(!plain.names_fedora_messaging_classes());
}
