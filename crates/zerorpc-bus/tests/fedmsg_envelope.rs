//! The envelope against real fedmsg 1.1.7: the messages `FedMsgContext.publish`
//! builds (captured by its `pre_fire_hook`, before anything is sent) have
//! our fields, our topics and our user name, and parse and re-serialise
//! byte for byte.

use serde_json::{json, Value};
use zerorpc_bus::message::{current_username, Message, TopicRules};

/// stdin: JSON `[[topic_prefix, environment, modname, topic, msg], ...]`;
/// for each, publishes with a muted context (a fresh one, so `i` is 1) and
/// prints the captured message as `fedmsg.encoding.dumps`, one a line.
const PY_PUBLISH: &str = r#"
import copy, json, sys
import fedmsg.config, fedmsg.core, fedmsg.encoding
print("DEFAULTS %s %s" % (fedmsg.config.defaults['topic_prefix'], fedmsg.config.defaults['environment']))

class Captured(Exception):
    pass

def hook(msg):
    raise Captured(msg)

for prefix, env, modname, topic, body in json.loads(sys.stdin.read()):
    config = copy.deepcopy(fedmsg.config.defaults)
    config.update(topic_prefix=prefix, environment=env, mute=True, post_init_sleep=0,
                  name='zerorpc-test', sign_messages=False)
    ctx = fedmsg.core.FedMsgContext(**config)
    try:
        ctx.publish(topic=topic, msg=body, modname=modname, pre_fire_hook=hook)
        raise AssertionError("the hook did not run")
    except Captured as c:
        print(fedmsg.encoding.dumps(c.args[0]))
print("ALL DONE")
"#;

/// Envelopes in shapes other publishers (and fedmsg's store, datagrepper)
/// produce, printed as `fedmsg.encoding.dumps`.
const PY_ODD_ENVELOPES: &str = r#"
import fedmsg.encoding
base = dict(topic=u"org.fedoraproject.prod.x.y", msg={u"k": [1, 2.5, u"\u00e9\U0001f600"]},
            timestamp=1700000000, msg_id=u"2024-abc", i=1, username=u"u")
variants = [
    dict(),
    dict(timestamp=1700000000.0),
    dict(timestamp=1700000000.123456),
    dict(i=-3),
    dict(i=2 ** 64 - 1),
    dict(seq_id=17, source_name=u"datanommer", source_version=u"1.0", headers={}),
    dict(signature=None, certificate=None, crypto=None),
    dict(crypto=u"gpg", signature=u"abc\n"),
    dict(msg=[]),
    dict(msg=u"just a string"),
    dict(msg={u"deep": {u"er": [{}, [], None, True, False, -0.0, 1e-300, 1e300]}}),
]
for v in variants:
    m = dict(base)
    m.update(v)
    print(fedmsg.encoding.dumps(m))
print("ALL DONE")
"#;

/// The lines of `script`'s output (run with `stdin`), without `ALL DONE`.
fn python(script: &str, stdin: &str) -> Vec<String> {
    zerorpc_testkit::python_lines(zerorpc_testkit::fedmsg_python(), script, &[], stdin)
}

#[test]
fn published_messages_match_ours() {
    let cases = [
        (
            "org.fedoraproject",
            "dev",
            "mymod",
            "thing.happened",
            json!({"a": 1}),
        ),
        (
            "org.fedoraproject",
            "prod",
            "bodhi",
            "update.comment",
            json!({"é": [1.5]}),
        ),
        ("com.example", "stg", "m", "", json!({"x": null})),
        // modname.topic already carries the prefix: nothing is prepended.
        (
            "org.fedoraproject",
            "dev",
            "org.fedoraproject.prod.x",
            "y",
            json!({"k": "v"}),
        ),
        // A plain string prefix test (no dot needed).
        (
            "org.fedoraproject",
            "dev",
            "org.fedoraprojectish",
            "y",
            json!({"k": "v"}),
        ),
        // A falsy body becomes {}.
        ("org.fedoraproject", "dev", "m", "t", json!([])),
    ];
    let batch: Vec<Value> = cases
        .iter()
        .map(|(p, e, m, t, b)| json!([p, e, m, t, b]))
        .collect();
    let mut published = python(PY_PUBLISH, &Value::Array(batch).to_string());
    // fedmsg's own defaults (`fedmsg.config.defaults`, what load_config uses).
    let defaults = TopicRules::default();
    assert_eq!(
        published.remove(0),
        format!("DEFAULTS {} {}", defaults.prefix, defaults.environment)
    );
    assert_eq!(published.len(), cases.len());
    for ((prefix, env, modname, topic, body), text) in cases.iter().zip(&published) {
        let theirs = Message::from_json(text).expect("fedmsg's message parses");
        assert_eq!(&theirs.to_canonical_json(), text, "exact round trip");
        let rules = TopicRules {
            prefix: prefix.to_string(),
            environment: env.to_string(),
        };
        let full = rules.full_topic(modname, topic);
        assert_eq!(theirs.topic, full, "{prefix} {env} {modname} {topic}");
        assert_eq!(theirs.username, current_username(), "getpass.getuser()");
        assert_eq!(theirs.i, 1);
        assert!(theirs.extra.is_empty(), "no other fields: {text}");
        assert!(!theirs.is_signed());

        let ours = Message::new(full, body.clone(), 1, current_username());
        assert_eq!(ours.msg, theirs.msg, "body (falsy ones become {{}})");
        // Same fields, same shapes; only time and id differ.
        let keys = |v: Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        assert_eq!(keys(ours.to_value()), keys(theirs.to_value()));
        let (year, uuid) = theirs.msg_id.split_once('-').expect("year-uuid");
        let (our_year, our_uuid) = ours.msg_id.split_once('-').expect("year-uuid");
        assert_eq!(year.len(), our_year.len());
        assert_eq!(uuid.len(), our_uuid.len());
        assert_eq!(uuid::Uuid::parse_str(uuid).unwrap().get_version_num(), 4);
    }
}

#[test]
fn odd_envelopes_round_trip_exactly() {
    let texts = python(PY_ODD_ENVELOPES, "");
    assert_eq!(texts.len(), 11);
    for text in &texts {
        let m = Message::from_json(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&m.to_canonical_json(), text);
        let back = Message::from_json(&m.to_canonical_json()).expect("reparse");
        assert_eq!(back, m);
    }
    let float_ts = Message::from_json(&texts[2]).unwrap();
    assert_eq!(float_ts.timestamp, 1700000000);
    let nulls = Message::from_json(&texts[6]).unwrap();
    assert!(!nulls.is_signed());
    assert!(!nulls.signed_payload().contains("signature"));
    assert!(nulls.signed_payload().contains(r#""crypto":null"#));
}
