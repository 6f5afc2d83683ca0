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
fn load_dir_reads_json_and_yaml_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "comment.json",
        &serde_json::to_string(&comment_schema()).unwrap(),
    );
    write(
        dir.path(),
        "koji.yaml",
        "x-topic: org.fedoraproject.*.buildsys.build.state.change\n\
         x-summary: \"{owner}'s {name} is now {new}\"\n\
         type: object\n\
         required: [owner, name, new]\n\
         properties:\n  new: {type: integer}\n",
    );
    write(
        dir.path(),
        "other.yml",
        "x-topic: org.fedoraproject.prod.git.receive\n",
    );
    write(dir.path(), "README.txt", "not a schema {");
    write(dir.path(), ".hidden.json", "not json either");
    std::fs::create_dir(dir.path().join("sub.json")).unwrap();

    let reg = SchemaRegistry::load_dir(dir.path()).unwrap();
    assert_eq!(reg.len(), 3);
    assert_eq!(
        reg.topics(),
        vec![
            "org.fedoraproject.*.bodhi.update.comment",
            "org.fedoraproject.*.buildsys.build.state.change",
            "org.fedoraproject.prod.git.receive",
        ]
    );
    assert_eq!(
        reg.schema_ids(),
        vec![
            "https://example.org/schemas/bodhi.update.comment/1",
            "org.fedoraproject.*.buildsys.build.state.change",
            "org.fedoraproject.prod.git.receive",
        ]
    );
    let koji = "org.fedoraproject.prod.buildsys.build.state.change";
    let ok = json!({"owner": "ralph", "name": "pkg", "new": 1});
    assert_eq!(
        reg.check(koji, &ok).unwrap(),
        Checked::Valid {
            schema_id: "org.fedoraproject.*.buildsys.build.state.change".into()
        }
    );
    let (_, v, _) =
        invalid_violations(reg.check(koji, &json!({"owner": "r", "name": "p", "new": "x"})));
    assert_eq!(paths(&v), vec!["/new"]);
    assert_eq!(
        reg.summary(koji, &ok).as_deref(),
        Some("ralph's pkg is now 1")
    );
    assert_eq!(
        reg.schema("org.fedoraproject.prod.git.receive"),
        Some(&json!({"x-topic": "org.fedoraproject.prod.git.receive"}))
    );
}

fn load_err(files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    match SchemaRegistry::load_dir(dir.path()) {
        Ok(reg) => panic!("expected an error, loaded {reg:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn load_dir_bad_files_are_errors_naming_the_file() {
    let e = load_err(&[("broken.json", "{\"x-topic\": ")]);
    assert!(
        e.contains("broken.json") && e.contains("not valid JSON"),
        "{e}"
    );

    let e = load_err(&[("broken.yaml", "x-topic: [unclosed\n")]);
    assert!(
        e.contains("broken.yaml") && e.contains("not valid YAML"),
        "{e}"
    );

    let e = load_err(&[("notopic.json", r#"{"type": "object"}"#)]);
    assert!(e.contains("notopic.json") && e.contains("x-topic"), "{e}");

    let e = load_err(&[("numtopic.json", r#"{"x-topic": 3}"#)]);
    assert!(
        e.contains("numtopic.json") && e.contains("must be a string"),
        "{e}"
    );

    let e = load_err(&[("space.json", r#"{"x-topic": "a b"}"#)]);
    assert!(e.contains("space.json") && e.contains("a b"), "{e}");

    let e = load_err(&[("array.json", r#"["x-topic"]"#)]);
    assert!(
        e.contains("array.json") && e.contains("must be a JSON object"),
        "{e}"
    );

    let e = load_err(&[("badtype.json", r#"{"x-topic": "a", "type": 12}"#)]);
    assert!(
        e.contains("badtype.json") && e.contains("not a usable JSON Schema"),
        "{e}"
    );

    let e = load_err(&[("summary.json", r#"{"x-topic": "a", "x-summary": ["x"]}"#)]);
    assert!(e.contains("summary.json") && e.contains("x-summary"), "{e}");

    let e = load_err(&[("id.json", r#"{"x-topic": "a", "$id": 7}"#)]);
    assert!(e.contains("id.json") && e.contains("$id"), "{e}");

    let e = load_err(&[(
        "meta.json",
        r#"{"x-topic": "a", "$schema": "http://example.org/unknown"}"#,
    )]);
    assert!(e.contains("meta.json") && e.contains("meta-schema"), "{e}");

    // External references are never fetched: an error, not a network call.
    let e = load_err(&[(
        "remote.json",
        r#"{"x-topic": "a", "$ref": "https://example.org/schemas/other.json"}"#,
    )]);
    assert!(
        e.contains("remote.json") && e.contains("not a usable JSON Schema"),
        "{e}"
    );
}

#[test]
fn load_dir_duplicates_are_errors_naming_both_files() {
    let e = load_err(&[
        ("a.json", r#"{"x-topic": "org.x.a", "$id": "urn:s/1"}"#),
        ("b.json", r#"{"x-topic": "org.x.b", "$id": "urn:s/1"}"#),
    ]);
    assert!(
        e.contains("urn:s/1")
            && e.contains("a.json")
            && e.contains("b.json")
            && e.contains("twice"),
        "{e}"
    );
    // No $id: the topic is the id, so one topic twice is a duplicate.
    let e = load_err(&[
        ("a.json", r#"{"x-topic": "org.x.a"}"#),
        ("b.yaml", "x-topic: org.x.a\n"),
    ]);
    assert!(
        e.contains("org.x.a") && e.contains("a.json") && e.contains("b.yaml"),
        "{e}"
    );
}

#[test]
fn load_dir_missing_dir_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = SchemaRegistry::load_dir(&missing).unwrap_err();
    assert!(matches!(e, SchemaError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn add_refuses_a_conflicting_x_topic() {
    let mut reg = SchemaRegistry::empty();
    let e = reg
        .add("org.x.a", json!({"x-topic": "org.x.b"}))
        .unwrap_err();
    assert!(e.to_string().contains("org.x.b"), "{e}");
    reg.add("org.x.a", json!({"x-topic": "org.x.a"})).unwrap();
    let e = reg.add("org.x.a", json!({"type": "object"})).unwrap_err();
    assert!(matches!(e, SchemaError::Duplicate { .. }), "{e:?}");
    assert_eq!(reg.len(), 1);
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

mod derived {
    use super::*;
    use serde::{Deserialize, Serialize};

    /// A bodhi comment, as a Rust publisher would declare it.
    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    struct Comment {
        agent: String,
        update: Update,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        karma: Option<i32>,
    }

    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    struct Update {
        alias: String,
        builds: Vec<Build>,
    }

    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    struct Build {
        nvr: String,
    }

    fn sample() -> Comment {
        Comment {
            agent: "bowlofeggs".into(),
            update: Update {
                alias: "FEDORA-2018-1".into(),
                builds: vec![
                    Build {
                        nvr: "a-1-1".into(),
                    },
                    Build {
                        nvr: "b-2-1".into(),
                    },
                ],
            },
            karma: Some(-1),
        }
    }

    #[test]
    fn schema_for_is_a_2020_12_object_schema() {
        let schema = schema_for::<Comment>();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["agent", "update"]));
    }

    #[test]
    fn derived_schema_accepts_the_type_and_names_bad_fields() {
        let mut reg = SchemaRegistry::empty();
        reg.add_type::<Comment>(COMMENT).unwrap();
        let mut value = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            reg.check(COMMENT, &value).unwrap(),
            Checked::Valid {
                schema_id: COMMENT.into()
            }
        );
        let without_karma = serde_json::to_value(Comment {
            karma: None,
            ..sample()
        })
        .unwrap();
        assert!(matches!(
            reg.check(COMMENT, &without_karma),
            Ok(Checked::Valid { .. })
        ));

        // Renamed field (a publisher that drifted): alias → update_alias.
        let update = value["update"].as_object_mut().unwrap();
        let alias = update.remove("alias").unwrap();
        update.insert("update_alias".into(), alias);
        let (_, v, text) = invalid_violations(reg.check(COMMENT, &value));
        assert_eq!(paths(&v), vec!["/update/alias"]);
        assert!(text.contains("/update/alias"), "{text}");

        // Missing field.
        let mut value = serde_json::to_value(sample()).unwrap();
        value.as_object_mut().unwrap().remove("agent");
        let (_, v, _) = invalid_violations(reg.check(COMMENT, &value));
        assert_eq!(paths(&v), vec!["/agent"]);

        // Ill-typed fields, one inside an array item.
        let mut value = serde_json::to_value(sample()).unwrap();
        value["karma"] = json!("minus one");
        value["update"]["builds"][1]["nvr"] = json!(42);
        let (_, v, _) = invalid_violations(reg.check(COMMENT, &value));
        let mut got = paths(&v);
        got.sort_unstable();
        assert_eq!(got, vec!["/karma", "/update/builds/1/nvr"]);
    }

    #[test]
    fn write_schema_file_round_trips_through_load_dir() {
        let dir = tempfile::tempdir().unwrap();
        let schemas = dir.path().join("schemas");
        let path = write_schema_file::<Comment>(
            &schemas,
            "org.fedoraproject.*.bodhi.update.comment",
            Some("{agent} commented on {update.alias}"),
        )
        .unwrap();
        assert_eq!(
            path,
            schemas.join("org.fedoraproject._.bodhi.update.comment.json")
        );
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            written[TOPIC_KEY],
            "org.fedoraproject.*.bodhi.update.comment"
        );

        let reg = SchemaRegistry::load_dir(&schemas).unwrap();
        assert_eq!(reg.len(), 1);
        let value = serde_json::to_value(sample()).unwrap();
        assert!(matches!(
            reg.check(COMMENT, &value),
            Ok(Checked::Valid { .. })
        ));
        assert_eq!(
            reg.summary(COMMENT, &value).as_deref(),
            Some("bowlofeggs commented on FEDORA-2018-1")
        );
        let (_, v, _) = invalid_violations(reg.check(COMMENT, &json!({"agent": "x"})));
        assert_eq!(paths(&v), vec!["/update"]);

        // Writing again replaces the file (no duplicate appears).
        write_schema_file::<Comment>(&schemas, "org.fedoraproject.*.bodhi.update.comment", None)
            .unwrap();
        let reg = SchemaRegistry::load_dir(&schemas).unwrap();
        assert_eq!(reg.len(), 1);
        assert_eq!(reg.summary(COMMENT, &value), None);

        let e = write_schema_file::<Comment>(&schemas, "", None).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
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
