//! What the bus targets check against: a fixed test PKI (`pki/`, made by
//! `crates/zerorpc-bus/tests/py/make_pki.py --fixed`) with its validators
//! and signers, a replay store with known records, and a schema registry.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Value};
use zerorpc_bus::crypto::{CryptoError, Signer, Validator};
use zerorpc_bus::message::Message;
use zerorpc_bus::schema::SchemaRegistry;
use zerorpc_bus::store::{NewRecord, Store, StoreOptions};

/// When the signature targets validate: 2030-01-01 (the PKI is valid
/// 2020–2100; `old` expired in 2021).
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_893_456_000)
}

pub const CA: &str = include_str!("../pki/ca.crt");
pub const CRL: &str = include_str!("../pki/crl.pem");

/// The signers, and what a validator must say of their signatures.
pub const SIGNERS: [(&str, &str, &str); 5] = [
    (
        "alice",
        include_str!("../pki/alice.crt"),
        include_str!("../pki/alice.key"),
    ),
    (
        "bob",
        include_str!("../pki/bob.crt"),
        include_str!("../pki/bob.key"),
    ),
    // revoked by the CRL
    (
        "mallory",
        include_str!("../pki/mallory.crt"),
        include_str!("../pki/mallory.key"),
    ),
    // expired
    (
        "old",
        include_str!("../pki/old.crt"),
        include_str!("../pki/old.key"),
    ),
    // another CA's "alice"
    (
        "eve",
        include_str!("../pki/eve.crt"),
        include_str!("../pki/eve.key"),
    ),
];

/// The routing policy: these topics only from these signers.
pub fn policy() -> HashMap<String, Vec<String>> {
    [
        ("org.fedoraproject.dev.fuzz.alice", &["alice"][..]),
        ("org.fedoraproject.dev.fuzz.bob", &["bob"]),
        ("org.fedoraproject.dev.fuzz.both", &["alice", "bob"]),
    ]
    .into_iter()
    .map(|(t, names)| (t.to_owned(), names.iter().map(|n| n.to_string()).collect()))
    .collect()
}

pub struct Pki {
    /// Not nitpicky, and nitpicky (topics the policy does not list refused).
    pub validators: [Validator; 2],
    pub signers: Vec<Signer>,
    /// Each signer's certificate, DER.
    pub ders: Vec<Vec<u8>>,
    /// A message alice signed, for the certificate-DER mode.
    pub signed: Message,
}

/// The DER of a PEM certificate.
pub fn der_of(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("a test certificate")
}

/// What a message's `certificate` field holds for this DER: base64 of its
/// PEM.
pub fn certificate_field(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.encode(der).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    b64.encode(pem)
}

pub static PKI: LazyLock<Pki> = LazyLock::new(|| {
    let validator = |nitpicky| {
        Validator::new(CA.as_bytes(), Some(CRL.as_bytes()), policy(), nitpicky)
            .expect("the test PKI's validator")
    };
    let signers: Vec<Signer> = SIGNERS
        .iter()
        .map(|(_, cert, key)| Signer::from_pem(cert.as_bytes(), key.as_bytes()).expect("a signer"))
        .collect();
    let mut signed = Message::new(
        "org.fedoraproject.dev.fuzz.alice",
        json!({"k": 1}),
        1,
        "fuzz",
    );
    signed.timestamp = 1_800_000_000;
    signed.msg_id = "2027-fuzz".to_owned();
    signers[0].sign(&mut signed).expect("alice signs");
    Pki {
        validators: [validator(false), validator(true)],
        ders: SIGNERS.iter().map(|(_, cert, _)| der_of(cert)).collect(),
        signers,
        signed,
    }
});

/// Whether a validator (nitpicky or not) must accept a message on `topic`
/// signed by signer `i`, and if not, whether the error is the right one.
pub fn expected(i: usize, topic: &str, nitpicky: bool, got: &Result<(), CryptoError>) -> bool {
    let name = SIGNERS[i].0;
    match name {
        "mallory" => matches!(got, Err(CryptoError::Revoked { .. })),
        "old" => matches!(got, Err(CryptoError::Expired { .. })),
        "eve" => matches!(got, Err(CryptoError::UntrustedCertificate { .. })),
        _ => {
            let allowed = match policy().get(topic) {
                Some(names) => names.iter().any(|n| n == name),
                None => !nitpicky,
            };
            if allowed {
                got.is_ok()
            } else {
                matches!(got, Err(CryptoError::RoutingPolicy { .. }))
            }
        }
    }
}

/// A signature field's base64 characters (validation ignores the rest).
pub fn b64_chars(s: Option<&String>) -> String {
    s.map(|s| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
            .collect()
    })
    .unwrap_or_default()
}

/// An accepted message is one alice or bob signed: their signature over
/// its payload (PKCS#1 v1.5 is deterministic) is the one it carries.
pub fn genuine(msg: &Message) -> bool {
    PKI.signers[..2].iter().any(|s| {
        let mut copy = msg.clone();
        s.sign(&mut copy).is_ok()
            && copy.signed_payload() == msg.signed_payload()
            && b64_chars(copy.signature.as_ref()) == b64_chars(msg.signature.as_ref())
    })
}

// ---------------------------------------------------------------- replay

/// A stored record, as the model knows it.
pub struct Rec {
    pub seq: u64,
    pub msg_id: String,
    pub timestamp: i64,
    pub json: String,
}

pub struct Replay {
    pub store: Store,
    pub records: Vec<Rec>,
}

/// The replay store: 24 messages, some with odd msg_ids and timestamps
/// (shared ones, negative, `i64::MAX`), in a store opened once per
/// process in a temporary directory (removed at once: the open file lives
/// on).
pub static REPLAY: LazyLock<Replay> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("zerorpc-fuzz-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, StoreOptions::default()).expect("a replay store");
    let mut records = Vec::new();
    for k in 1..=24u64 {
        let msg_id = match k {
            5 => String::new(),
            6 => "\u{e9}-\u{1F600}".to_owned(),
            7 => "a\"b\\c".to_owned(),
            8 => "seq_id".to_owned(),
            _ => format!("2026-{k:04}"),
        };
        let timestamp = match k {
            9 => -5,
            10 => 0,
            11 => i64::MAX,
            _ => 1_700_000_000 + ((k * 7) % 10) as i64 * 60,
        };
        let mut m = Message::new(
            format!("org.fedoraproject.dev.fuzz.t{}", k % 3),
            json!({"k": k, "text": "h\u{e9}llo", "x": 1.5e-7}),
            k,
            "fuzz",
        );
        m.msg_id = msg_id.clone();
        m.timestamp = timestamp;
        if k == 12 {
            // an envelope that already has a seq_id
            m.extra.insert("seq_id".to_owned(), json!(99));
        }
        let json = m.to_canonical_json();
        let stored = store
            .append(&[NewRecord {
                topic: &m.topic,
                msg_id: &msg_id,
                timestamp,
                json: &json,
            }])
            .expect("append");
        assert_eq!(stored[0].seq(), k);
        records.push(Rec {
            seq: k,
            msg_id,
            timestamp,
            json,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    Replay { store, records }
});

// ---------------------------------------------------------------- schema

/// Topics the schema target sends a bare JSON body on (one per schema,
/// and one without).
pub const SCHEMA_TOPICS: [&str; 6] = [
    "org.fedoraproject.prod.bodhi.update.comment",
    "org.fedoraproject.dev.koji.build.state.change",
    "org.fedoraproject.dev.fuzz.thing",
    "org.fedoraproject.dev.fuzz.legacy",
    "org.fedoraproject.dev.fuzz.v2",
    "org.fedoraproject.dev.other",
];

/// The crate ships no schemas (deployments load theirs with
/// `SchemaRegistry::load_dir`): these are the module documentation's and
/// the tests' kinds, plus two that use many JSON Schema keywords (2020-12
/// and draft 7), versions of one topic, a literal topic and globs.
pub static SCHEMAS: LazyLock<SchemaRegistry> = LazyLock::new(|| {
    let comment = |version: u32| {
        let mut s = json!({
            "$id": format!("https://example.org/schemas/bodhi.update.comment/{version}"),
            "x-summary": "{agent} commented on {comment.update.alias} ({comment.karma})",
            "type": "object",
            "required": ["agent", "comment"],
            "properties": {
                "agent": {"type": "string"},
                "comment": {
                    "type": "object",
                    "required": ["text", "update"],
                    "properties": {
                        "text": {"type": "string"},
                        "karma": {"type": "integer", "minimum": -1, "maximum": 1},
                        "update": {
                            "type": "object",
                            "required": ["alias"],
                            "properties": {"alias": {"type": "string", "pattern": "^FEDORA-"}}
                        }
                    }
                }
            }
        });
        if version == 2 {
            s["additionalProperties"] = json!(false);
            s["properties"]["builds"] = json!({
                "type": "array", "uniqueItems": true,
                "items": {"type": "object", "required": ["nvr"],
                          "properties": {"nvr": {"type": "string", "minLength": 1}}}
            });
        }
        s
    };
    let mut r = SchemaRegistry::empty();
    let glob = "org.fedoraproject.*.bodhi.update.comment";
    r.add(glob, comment(1)).expect("schema");
    r.add(glob, comment(2)).expect("schema");
    r.add(
        "org.fedoraproject.dev.koji.build.state.change",
        json!({
            "x-summary": "{owner}'s {name} is {new}",
            "x-fedora-messaging-schema": "koji.build.state.change.v1",
            "type": "object",
            "required": ["owner", "name", "new"],
            "properties": {
                "owner": {"type": "string"},
                "name": {"type": "string"},
                "new": {"enum": ["building", "complete", "failed"]}
            }
        }),
    )
    .expect("schema");
    r.add(
        "org.fedoraproject.dev.fuzz.*",
        json!({
            "$id": "https://example.org/schemas/fuzz/v3",
            "x-summary": "{who.name} did {what} to {items}",
            "$defs": {
                "name": {"type": "string", "minLength": 1, "maxLength": 16, "pattern": "^[a-z]"},
                "item": {"oneOf": [{"type": "integer", "multipleOf": 3},
                                   {"type": "string", "format": "uuid"},
                                   {"const": null}]}
            },
            "type": "object",
            "required": ["who"],
            "properties": {
                "who": {"type": "object", "properties": {"name": {"$ref": "#/$defs/name"}},
                        "required": ["name"], "additionalProperties": false},
                "what": {"enum": ["push", "pull", 1, [1], {"a": null}]},
                "items": {"type": "array", "items": {"$ref": "#/$defs/item"},
                          "minItems": 1, "maxItems": 8, "contains": {"type": "integer"}},
                "size": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e6},
                "tags": {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"},
                         "patternProperties": {"^x": {"type": "boolean"}}}
            },
            "dependentRequired": {"size": ["items"]},
            "if": {"properties": {"what": {"const": "push"}}},
            "then": {"required": ["items"]},
            "else": {"not": {"required": ["size"]}}
        }),
    )
    .expect("schema");
    r.add(
        "org.fedoraproject.dev.fuzz.legacy",
        json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"pos": {"type": "integer", "minimum": 1}},
            "type": "object",
            "properties": {
                "list": {"type": "array", "items": [{"$ref": "#/definitions/pos"}],
                         "additionalItems": {"type": "string"}},
                "a": {"type": ["string", "null"]}
            },
            "dependencies": {"a": ["list"], "b": {"required": ["a"]}},
            "anyOf": [{"required": ["list"]}, {"required": ["b"]}]
        }),
    )
    .expect("schema");
    r.add(
        "org.fedoraproject.dev.fuzz.v?",
        json!({"type": "object", "minProperties": 1}),
    )
    .expect("schema");
    r
});

/// The body of a schema check: an envelope's, or any JSON on one of
/// [`SCHEMA_TOPICS`] (by the text's length).
pub fn schema_input(text: &str) -> Option<(String, Value, Option<String>)> {
    if let Ok(m) = Message::from_json(text) {
        let template = m
            .extra
            .get("x-summary")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Some((m.topic, m.msg, template));
    }
    let body: Value = serde_json::from_str(text).ok()?;
    Some((
        SCHEMA_TOPICS[text.len() % SCHEMA_TOPICS.len()].to_owned(),
        body,
        None,
    ))
}
