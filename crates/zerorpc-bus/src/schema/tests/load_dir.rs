//! Loading schema directories and adding schemas: the files read, and the
//! errors for bad, duplicate and conflicting ones.

use super::*;

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
