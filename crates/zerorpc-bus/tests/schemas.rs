//! Schemas end to end, with a daemon in process: a schema directory
//! written here, checked by a publisher (nothing invalid leaves it), by the
//! daemon (an invalid envelope is rejected, counted, not stored) and by a
//! subscriber (an invalid stored message is quarantined), summaries of
//! delivered messages, and a Rust message type's derived schema.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zerorpc_bus::daemon::{BusServiceClient, Daemon, DaemonOptions};
use zerorpc_bus::protocol::{REJECTED, STORED};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::schema::{Checked, SchemaError, SchemaRegistry};
use zerorpc_bus::subscriber::{Delivery, Event, Filters, Since, Subscription};
use zerorpc_bus::Error;
use zerorpc_testkit::{scratch_dir, within};

const COMMENT_TOPIC: &str = "org.fedoraproject.dev.bodhi.update.comment";
const BUILD_TOPIC: &str = "org.fedoraproject.dev.koji.build.state.change";

/// A schema directory as a deployment would have it: one JSON file, one
/// YAML file, and a file that is not a schema.
fn write_schema_dir(dir: &Path) -> PathBuf {
    let schemas = dir.join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    let comment = json!({
        "$id": "https://example.org/schemas/bodhi.update.comment/1",
        "x-topic": "org.fedoraproject.*.bodhi.update.comment",
        "x-summary": "{agent} commented on {comment.update.alias}",
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
    std::fs::write(
        schemas.join("bodhi.update.comment.json"),
        serde_json::to_string_pretty(&comment).unwrap(),
    )
    .unwrap();
    std::fs::write(
        schemas.join("koji.build.yaml"),
        "x-topic: org.fedoraproject.dev.koji.build.state.change\n\
         x-summary: \"{owner}'s {name} is {new}\"\n\
         type: object\n\
         required: [owner, name, new]\n\
         properties:\n  \
           owner: {type: string}\n  \
           name: {type: string}\n  \
           new: {enum: [building, complete, failed]}\n",
    )
    .unwrap();
    std::fs::write(schemas.join("README.txt"), "not a schema\n").unwrap();
    schemas
}

fn registry(dir: &Path) -> Arc<SchemaRegistry> {
    let r = SchemaRegistry::load_dir(&write_schema_dir(dir)).unwrap();
    assert_eq!(r.len(), 2);
    Arc::new(r)
}

fn good_comment(k: u64) -> Value {
    json!({
        "agent": "alice",
        "comment": {"text": format!("works #{k}"), "karma": 1,
                    "update": {"alias": format!("FEDORA-2026-{k:04}")}}
    })
}

/// Fails only at `/comment/update/alias` (a number).
fn bad_alias() -> Value {
    json!({"agent": "alice", "comment": {"text": "x", "update": {"alias": 42}}})
}

/// Fails only at `/agent` (missing).
fn no_agent() -> Value {
    json!({"comment": {"text": "x", "update": {"alias": "FEDORA-2026-9"}}})
}

async fn start(dir: &Path, schemas: Option<Arc<SchemaRegistry>>) -> Daemon {
    let mut o = DaemonOptions::ephemeral(dir.join("store"));
    o.schemas = schemas;
    Daemon::start(o).await.unwrap()
}

async fn publisher(
    daemon: &Daemon,
    modname: &str,
    schemas: Option<Arc<SchemaRegistry>>,
) -> Publisher {
    let mut o = PublisherOptions::new(daemon.ingest_endpoint());
    o.modname = modname.into();
    o.schemas = schemas;
    Publisher::connect(o).await.unwrap()
}

fn rejected(daemon: &Daemon, reason: &str) -> u64 {
    daemon
        .info()
        .rejected
        .iter()
        .find(|r| r.0 == reason)
        .map(|r| r.1)
        .unwrap_or_else(|| panic!("no {reason:?} counter in {:?}", daemon.info()))
}

/// The violations of a schema error, checking it is one.
fn violations(e: &Error) -> Vec<String> {
    match e {
        Error::Schema(SchemaError::Invalid { violations, .. }) => {
            violations.iter().map(|v| v.path.clone()).collect()
        }
        other => panic!("expected a schema violation, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_with_schemas_sends_nothing_invalid() {
    let dir = scratch_dir("schemas-publisher");
    let daemon = start(&dir, None).await;
    let p = publisher(&daemon, "bodhi", Some(registry(&dir))).await;

    let e = p.publish("update.comment", bad_alias()).await.unwrap_err();
    assert_eq!(violations(&e), ["/comment/update/alias"]);
    let text = e.to_string();
    assert!(text.contains("/comment/update/alias"), "{text}");
    assert!(text.contains(COMMENT_TOPIC), "{text}");

    let e = p.publish("update.comment", no_agent()).await.unwrap_err();
    assert_eq!(violations(&e), ["/agent"]);
    assert!(e.to_string().contains("/agent"), "{e}");

    // Karma out of range and a wrong alias pattern: both named.
    let both = json!({"agent": "alice",
                      "comment": {"text": "x", "karma": 5, "update": {"alias": "EPEL-1"}}});
    let mut paths = violations(&p.publish("update.comment", both).await.unwrap_err());
    paths.sort();
    assert_eq!(paths, ["/comment/karma", "/comment/update/alias"]);

    // Not sent either way.
    let e = p
        .publish_nowait("update.comment", bad_alias())
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["/comment/update/alias"]);
    p.flush().await;
    let info = daemon.info();
    assert_eq!(
        (info.last_seq, info.stored),
        (0, 0),
        "nothing reached the bus"
    );
    assert_eq!(rejected(&daemon, "schema"), 0);

    // Valid ones and topics without a schema go through.
    let c = within("valid", p.publish("update.comment", good_comment(1)))
        .await
        .unwrap();
    assert_eq!(c.seq().expect("a seq from the daemon"), 1);
    let c = within("no schema", p.publish("update.request", json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(c.seq().expect("a seq from the daemon"), 2);
    assert_eq!(daemon.info().last_seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_with_schemas_rejects_invalid_envelopes_and_stores_valid_ones() {
    let dir = scratch_dir("schemas-daemon");
    let daemon = start(&dir, Some(registry(&dir))).await;
    // This publisher checks nothing itself.
    let p = publisher(&daemon, "bodhi", None).await;

    let bad = p
        .envelope("update.comment", bad_alias())
        .unwrap()
        .to_canonical_json();
    let good = p
        .envelope("update.comment", good_comment(1))
        .unwrap()
        .to_canonical_json();
    let client = BusServiceClient::new(
        zerorpc::Client::connect(daemon.ingest_endpoint())
            .await
            .unwrap(),
    );
    let outcomes = within("raw publish", client.publish(vec![bad, good]))
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].1, REJECTED, "{outcomes:?}");
    assert!(
        outcomes[0].2.contains("/comment/update/alias"),
        "the reason names the field: {:?}",
        outcomes[0].2
    );
    assert_eq!((outcomes[1].0, outcomes[1].1), (1, STORED));

    // Through the publisher: a typed rejection naming the field.
    match within("publish", p.publish("update.comment", no_agent())).await {
        Err(Error::Rejected { reason, .. }) => assert!(reason.contains("/agent"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    // A body on a topic whose schema is YAML.
    let k = publisher(&daemon, "koji", None).await;
    let e = within(
        "publish",
        k.publish(
            "build.state.change",
            json!({"owner": "bob", "name": "pkg", "new": "exploded"}),
        ),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("/new"), "{e}");
    let c = within(
        "publish",
        k.publish(
            "build.state.change",
            json!({"owner": "bob", "name": "pkg", "new": "complete"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(c.seq().expect("a seq from the daemon"), 2);

    let info = daemon.info();
    assert_eq!((info.last_seq, info.stored), (2, 2));
    assert_eq!(rejected(&daemon, "schema"), 3);
    assert_eq!(rejected(&daemon, "malformed"), 0);

    // Only the valid ones are in the log.
    let mut sub = Subscription::bus(daemon.ingest_endpoint(), Since::Start, Filters::default())
        .await
        .unwrap();
    let first = next_message(&mut sub).await;
    assert_eq!(
        (first.seq, first.message.topic.as_str()),
        (Some(1), COMMENT_TOPIC)
    );
    assert_eq!(first.message.msg, good_comment(1));
    let second = next_message(&mut sub).await;
    assert_eq!(
        (second.seq, second.message.topic.as_str()),
        (Some(2), BUILD_TOPIC)
    );
}

async fn next_event(sub: &mut Subscription) -> Event {
    within("next event", sub.next())
        .await
        .expect("the subscription ended")
}

async fn next_message(sub: &mut Subscription) -> Delivery {
    match next_event(sub).await {
        Event::Message(d) => d,
        Event::Quarantined { reason, .. } => panic!("quarantined: {reason}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_with_schemas_quarantines_what_a_permissive_daemon_stored() {
    let dir = scratch_dir("schemas-subscriber");
    let schemas = registry(&dir);
    let daemon = start(&dir, None).await;
    let p = publisher(&daemon, "bodhi", None).await;
    let k = publisher(&daemon, "koji", None).await;
    for (publisher, topic, body) in [
        (&p, "update.comment", good_comment(1)),
        (&p, "update.comment", bad_alias()),
        (
            &k,
            "build.state.change",
            json!({"owner": "bob", "name": "pkg", "new": "failed"}),
        ),
        (&p, "update.comment", no_agent()),
        (&p, "update.request", json!({"free": "form"})),
    ] {
        within("publish", publisher.publish(topic, body))
            .await
            .unwrap();
    }
    assert_eq!(daemon.info().last_seq, 5);

    let filters = Filters {
        schemas: Some(schemas.clone()),
        ..Filters::default()
    };
    let mut sub = Subscription::bus(daemon.ingest_endpoint(), Since::Start, filters)
        .await
        .unwrap();

    let d = next_message(&mut sub).await;
    assert_eq!(d.seq, Some(1));
    assert_eq!(
        schemas.summary(&d.message.topic, &d.message.msg).as_deref(),
        Some("alice commented on FEDORA-2026-0001")
    );
    match next_event(&mut sub).await {
        Event::Quarantined { seq, reason, raw } => {
            assert_eq!(seq, Some(2));
            assert!(reason.contains("/comment/update/alias"), "{reason}");
            let raw: Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(raw["msg"], bad_alias(), "the message as stored");
        }
        Event::Message(d) => panic!("an invalid message was delivered: {d:?}"),
    }
    let d = next_message(&mut sub).await;
    assert_eq!(d.seq, Some(3));
    assert_eq!(
        schemas.summary(&d.message.topic, &d.message.msg).as_deref(),
        Some("bob's pkg is failed")
    );
    match next_event(&mut sub).await {
        Event::Quarantined { seq, reason, .. } => {
            assert_eq!(seq, Some(4));
            assert!(reason.contains("/agent"), "{reason}");
        }
        Event::Message(d) => panic!("an invalid message was delivered: {d:?}"),
    }
    // No schema for this topic: passed on, and no summary.
    let d = next_message(&mut sub).await;
    assert_eq!(d.seq, Some(5));
    assert_eq!(schemas.summary(&d.message.topic, &d.message.msg), None);

    let stats = sub.stats();
    assert_eq!(stats.quarantined.load(Ordering::Relaxed), 2);
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 3);
    assert_eq!(sub.next_seq(), 6, "quarantined messages are past, too");

    // Without schemas the same log is delivered whole.
    let mut plain = Subscription::bus(daemon.ingest_endpoint(), Since::Start, Filters::default())
        .await
        .unwrap();
    for seq in 1..=5 {
        assert_eq!(next_message(&mut plain).await.seq, Some(seq));
    }
}

/// A message type, its schema derived from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct BuildDone {
    nvr: String,
    owner: String,
    build_id: u64,
    tags: Vec<String>,
}

/// The same type after someone renamed a field on the wire.
#[derive(Debug, Clone, Serialize)]
struct BuildDoneRenamed {
    #[serde(rename = "name")]
    nvr: String,
    owner: String,
    build_id: u64,
    tags: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_message_is_checked_against_the_schema_derived_from_its_type() {
    const TOPIC: &str = "org.fedoraproject.dev.koji.build.done";
    let dir = scratch_dir("schemas-typed");
    let mut r = SchemaRegistry::empty();
    r.add_type::<BuildDone>(TOPIC).unwrap();
    let schemas = Arc::new(r);
    let daemon = start(&dir, None).await;
    let p = publisher(&daemon, "koji", Some(schemas.clone())).await;

    let done = BuildDone {
        nvr: "pkg-1.0-1.fc44".into(),
        owner: "bob".into(),
        build_id: 4242,
        tags: vec!["f44".into(), "f44-updates".into()],
    };
    let c = within("typed", p.publish_typed("build.done", &done))
        .await
        .unwrap();
    assert_eq!(c.seq().expect("a seq from the daemon"), 1);

    let renamed = BuildDoneRenamed {
        nvr: done.nvr.clone(),
        owner: done.owner.clone(),
        build_id: done.build_id,
        tags: done.tags.clone(),
    };
    let e = p.publish_typed("build.done", &renamed).await.unwrap_err();
    assert_eq!(violations(&e), ["/nvr"], "{e}");
    assert!(e.to_string().contains("/nvr"), "{e}");
    // A value of the wrong type is named too.
    let mut wrong = serde_json::to_value(&done).unwrap();
    wrong["build_id"] = json!("4242");
    let e = p.publish("build.done", wrong).await.unwrap_err();
    assert_eq!(violations(&e), ["/build_id"], "{e}");
    assert_eq!(daemon.info().last_seq, 1, "nothing invalid was sent");

    // A consumer with the same registry gets it back as the type it was.
    let filters = Filters {
        schemas: Some(schemas.clone()),
        ..Filters::default()
    };
    let mut sub = Subscription::bus(daemon.ingest_endpoint(), Since::Start, filters)
        .await
        .unwrap();
    let d = next_message(&mut sub).await;
    assert_eq!(d.message.topic, TOPIC);
    assert_eq!(
        schemas.check(&d.message.topic, &d.message.msg).unwrap(),
        Checked::Valid {
            schema_id: TOPIC.into()
        }
    );
    let back: BuildDone = serde_json::from_value(d.message.msg).unwrap();
    assert_eq!(back, done);
}
