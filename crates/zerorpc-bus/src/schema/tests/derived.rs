//! Schemas derived from Rust types: `schema_for`, `add_type` and
//! `write_schema_file`.

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
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
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
