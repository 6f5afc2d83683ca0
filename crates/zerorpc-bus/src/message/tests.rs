//! Unit tests of the envelope: round trips, odd shapes, errors, property
//! tests over any JSON, topics and the user name.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn envelope() -> Value {
    json!({
        "topic": "org.fedoraproject.dev.test.x",
        "msg": {"b": 1, "a": "é"},
        "timestamp": 1700000000,
        "msg_id": "2024-8d7c2a3f-0000-4000-8000-000000000000",
        "i": 3,
        "username": "alice",
    })
}

#[test]
fn round_trip_is_canonical_and_exact() {
    let text = r#"{"username": "alice", "i": 3, "timestamp": 1700000000,
            "msg_id": "2024-x", "msg": {"z": [1, 2.5, null], "a": "\u00e9"},
            "topic": "t", "seq_id": 42, "crypto": "x509",
            "signature": "c2ln\n", "certificate": "Y2VydA==\n"}"#;
    let m = Message::from_json(text).unwrap();
    assert_eq!(m.extra.get("seq_id"), Some(&json!(42)));
    assert!(m.is_signed());
    let canonical = m.to_canonical_json();
    assert_eq!(
        canonical,
        r#"{"certificate":"Y2VydA==\n","crypto":"x509","i":3,"msg":{"a":"\u00e9","z":[1,2.5,null]},"msg_id":"2024-x","seq_id":42,"signature":"c2ln\n","timestamp":1700000000,"topic":"t","username":"alice"}"#
    );
    assert_eq!(Message::from_json(&canonical).unwrap(), m);
    assert_eq!(
        m.signed_payload(),
        r#"{"crypto":"x509","i":3,"msg":{"a":"\u00e9","z":[1,2.5,null]},"msg_id":"2024-x","seq_id":42,"timestamp":1700000000,"topic":"t","username":"alice"}"#
    );
}

#[test]
fn odd_shapes_are_kept_verbatim() {
    let mut v = envelope();
    v["timestamp"] = json!(1700000000.75);
    v["i"] = json!(-1);
    v["signature"] = Value::Null;
    let m = Message::from_value(v.clone()).unwrap();
    assert_eq!(m.timestamp, 1700000000);
    assert_eq!(m.i, 0);
    assert_eq!(m.signature, None);
    assert!(!m.is_signed());
    assert_eq!(m.to_value(), v);
    assert!(m
        .to_canonical_json()
        .contains(r#""timestamp":1700000000.75"#));
    assert!(m.to_canonical_json().contains(r#""signature":null"#));
    assert!(!m.signed_payload().contains("signature"));
}

#[test]
fn errors_name_the_problem() {
    assert!(matches!(
        Message::from_json("{"),
        Err(MessageError::NotJson(_))
    ));
    assert!(matches!(
        Message::from_json(r#"{"timestamp": NaN}"#),
        Err(MessageError::NotJson(_))
    ));
    assert!(matches!(
        Message::from_json("[1]"),
        Err(MessageError::NotAnObject { found: "an array" })
    ));
    for field in ["topic", "msg", "timestamp", "msg_id", "i", "username"] {
        let mut v = envelope();
        v.as_object_mut().unwrap().remove(field);
        match Message::from_value(v) {
            Err(MessageError::MissingField { field: f }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let mut v = envelope();
    v["topic"] = json!(5);
    let err = Message::from_value(v).unwrap_err();
    assert!(matches!(
        err,
        MessageError::FieldType {
            field: "topic",
            expected: "a string",
            found: "a number"
        }
    ));
    assert_eq!(
        err.to_string(),
        "the message's `topic` is a number, not a string"
    );
    let mut v = envelope();
    v["timestamp"] = json!("yesterday");
    assert!(matches!(
        Message::from_value(v),
        Err(MessageError::FieldType {
            field: "timestamp",
            ..
        })
    ));
}

#[test]
fn inexact_integers_are_refused() {
    let base = r#"{"topic":"t","msg":{"n":NUM,"s":"-0 99999999999999999999"},"timestamp":1,"msg_id":"x","i":1,"username":"u"}"#;
    for bad in [
        "-0",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
    ] {
        match Message::from_json(&base.replace("NUM", bad)) {
            Err(MessageError::UnrepresentableNumber { literal }) => assert_eq!(literal, bad),
            other => panic!("{bad}: {other:?}"),
        }
    }
    for good in [
        "0",
        "-1",
        "18446744073709551615",
        "-9223372036854775808",
        "1e400000",
        "-0.0",
        "1.5",
    ] {
        let r = Message::from_json(&base.replace("NUM", good));
        // 1e400000 is out of f64's range: serde_json refuses it.
        if good == "1e400000" {
            assert!(matches!(r, Err(MessageError::NotJson(_))), "{good}");
        } else {
            assert!(r.is_ok(), "{good}: {r:?}");
        }
    }
}

#[test]
fn new_messages_look_like_fedmsg_ones() {
    let m = Message::new("org.fedoraproject.dev.a.b", json!({"k": 1}), 7, "bob");
    let year = time::OffsetDateTime::now_utc().year();
    let (y, uuid) = m.msg_id.split_once('-').unwrap();
    assert_eq!(y, year.to_string());
    let uuid = uuid::Uuid::parse_str(uuid).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
    assert!(m.timestamp > 1_600_000_000);
    assert_eq!((m.i, m.username.as_str()), (7, "bob"));
    assert!(!m.is_signed());
    let v = m.to_value();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        ["i", "msg", "msg_id", "timestamp", "topic", "username"]
    );
    assert_eq!(Message::new("t", Value::Null, 1, "u").msg, json!({}));
    assert_eq!(Message::new("t", json!(0), 1, "u").msg, json!({}));
    assert_eq!(Message::new("t", json!([0]), 1, "u").msg, json!([0]));
}

fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
        Just(json!([1, {"a": null}])),
        Just(json!({"k": "v"})),
    ]
}

/// Mostly the expected shape (`typed`), sometimes anything, rarely absent.
fn any_field(
    typed: impl Strategy<Value = Value> + 'static,
) -> impl Strategy<Value = Option<Value>> {
    proptest::option::weighted(
        0.95,
        prop_oneof![4 => typed.boxed(), 1 => any_json().boxed()],
    )
}

fn any_string() -> impl Strategy<Value = Value> {
    ".{0,8}".prop_map(Value::String)
}

fn any_number() -> impl Strategy<Value = Value> {
    any_json().prop_filter("number", Value::is_number)
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(2000))]
    /// Whatever the fields hold, a message either parses and writes
    /// back the very same object, or is refused naming a required field.
    #[test]
    fn any_envelope_round_trips_or_is_refused(
        fields in (
            (any_field(any_string()), any_field(any_json()), any_field(any_number())),
            (any_field(any_string()), any_field(any_number()), any_field(any_string())),
            (any_field(any_string()), any_field(any_string()), any_field(any_string())),
            any_field(any_json()),
        ),
        extra in proptest::option::of(any_json()),
    ) {
        let ((topic, msg, timestamp), (msg_id, i, username), (crypto, sig, cert), seq) = fields;
        let named = [
            ("topic", topic), ("msg", msg), ("timestamp", timestamp),
            ("msg_id", msg_id), ("i", i), ("username", username),
            ("crypto", crypto), ("signature", sig), ("certificate", cert),
            ("seq_id", seq), ("source_name", extra),
        ];
        let mut map = Map::new();
        for (name, value) in named {
            if let Some(v) = value {
                map.insert(name.to_string(), v);
            }
        }
        let original = Value::Object(map);
        match Message::from_value(original.clone()) {
            Ok(m) => {
                prop_assert_eq!(m.to_value(), original.clone());
                prop_assert_eq!(m.to_canonical_json(), json::to_canonical(&original));
            }
            Err(MessageError::MissingField { field }) => {
                prop_assert!(original.get(field).is_none());
            }
            Err(MessageError::FieldType { field, .. }) => {
                prop_assert!(original.get(field).is_some());
            }
            Err(other) => prop_assert!(false, "{}", other),
        }
    }
}

#[test]
fn serde_goes_through_the_envelope() {
    let m = Message::from_value(envelope()).unwrap();
    let text = serde_json::to_string(&m).unwrap();
    let back: Message = serde_json::from_str(&text).unwrap();
    assert_eq!(back, m);
    assert!(serde_json::from_str::<Message>("[]").is_err());
}

#[test]
fn topics_follow_fedmsg() {
    let rules = TopicRules::default();
    assert_eq!(
        rules.full_topic("mymod", "a.b"),
        "org.fedoraproject.dev.mymod.a.b"
    );
    assert_eq!(
        rules.full_topic("mymod", ""),
        "org.fedoraproject.dev.mymod.unspecified"
    );
    // Already prefixed (fedmsg tests `modname.topic` against the prefix).
    assert_eq!(
        rules.full_topic("org.fedoraproject.prod.x", "y"),
        "org.fedoraproject.prod.x.y"
    );
    // A plain string prefix test, like fedmsg's slice comparison.
    assert_eq!(
        rules.full_topic("org.fedoraprojectfoo", "y"),
        "org.fedoraprojectfoo.y"
    );
    let stg = TopicRules {
        prefix: "com.example".into(),
        environment: "stg".into(),
    };
    assert_eq!(stg.full_topic("m", "t"), "com.example.stg.m.t");
}

#[test]
fn username_is_found() {
    let name = current_username();
    assert!(!name.is_empty());
    // With the environment variables set, the first one wins; we cannot
    // clear them safely in a threaded test, so compare with what is set.
    let expected = ["LOGNAME", "USER", "LNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    match expected {
        Some(e) => assert_eq!(name, e),
        None => assert_eq!(Some(name), uid_name().or(Some("unknown".into()))),
    }
}
