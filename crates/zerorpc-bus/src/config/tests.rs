//! Loading the configuration: defaults, the file, the environment and flags
//! in order of precedence, and rendering it back.

mod errors;

use super::*;
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("bus.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn load_err(file: Option<&Path>, pairs: &[(&str, &str)]) -> ConfigError {
    match BusConfig::load(file, env(pairs)) {
        Ok((c, _)) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn keys_and_the_setter_agree() {
    // Every key in KEYS is settable and renders; nothing else is.
    let (mut c, mut prov) = BusConfig::load(None, env(&[("HOME", "/home/u")])).unwrap();
    for &key in KEYS {
        let value = match key {
            "ingest" | "publish" | "replay" => "tcp://127.0.0.1:1",
            "retention" => "1h",
            "max_message_bytes" => "10",
            "validate" | "routing_nitpicky" => "true",
            "routing_policy" => "{a = [\"b\"]}",
            "endpoints" => "tcp://h:1",
            "transports" => "zmq,amqp",
            "amqp_url" => "amqp://h",
            "nats_url" => "nats://h:1",
            "nats_stream_depth" | "prefetch" => "3",
            _ => "x",
        };
        c.set_flag(&mut prov, key, value).unwrap();
        assert_eq!(
            prov.source(key),
            Some(&Source::Flag(format!("--{}", key.replace('_', "-"))))
        );
        assert!(c.toml_value(key).is_some(), "{key}");
    }
    assert_eq!(prov.source("nope"), None);
    // The set of fields is the set of keys: the serialized struct has exactly KEYS.
    let serialized = toml::Table::try_from(&c).unwrap();
    let mut fields: Vec<&str> = serialized.keys().map(String::as_str).collect();
    let mut keys = KEYS.to_vec();
    fields.sort_unstable();
    keys.sort_unstable();
    assert_eq!(fields, keys);
}

#[test]
fn defaults_with_nothing() {
    let (c, prov) = BusConfig::load(None, Vec::new()).unwrap();
    assert_eq!(c.ingest, "tcp://127.0.0.1:9941");
    assert_eq!(c.publish, "tcp://127.0.0.1:9940");
    assert_eq!(c.replay, "tcp://127.0.0.1:9943");
    assert_eq!(c.store, PathBuf::from("./zerorpc-bus-data"));
    assert_eq!(
        c.retention,
        Retention::Limit(Duration::from_secs(7 * 24 * 3600))
    );
    assert_eq!(c.max_message_bytes, 1024 * 1024);
    assert_eq!(c.topic_prefix, "org.fedoraproject");
    assert_eq!(c.environment, "dev");
    assert_eq!(c.modname, None);
    assert_eq!(c.username, None);
    assert_eq!((c.sign_cert.as_ref(), c.sign_key.as_ref()), (None, None));
    assert!(!c.validate);
    assert_eq!((c.ca_cert.as_ref(), c.crl.as_ref()), (None, None));
    assert!(c.routing_policy.is_empty());
    assert!(!c.routing_nitpicky);
    assert_eq!(c.schemas, None);
    assert!(c.endpoints.is_empty());
    assert_eq!(prov.file(), None);
    for &key in KEYS {
        assert_eq!(prov.source(key), Some(&Source::Default), "{key}");
    }
    // Variables that are not ours are ignored.
    let (c2, _) = BusConfig::load(None, env(&[("PATH", "/bin"), ("ZERORPC_OTHER", "1")])).unwrap();
    assert_eq!(c2, c);
}

#[test]
fn default_store_follows_xdg_then_home() {
    let store = |pairs: &[(&str, &str)]| BusConfig::load(None, env(pairs)).unwrap().0.store;
    assert_eq!(
        store(&[("HOME", "/home/u")]),
        PathBuf::from("/home/u/.local/share/zerorpc-bus")
    );
    assert_eq!(
        store(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "/data")]),
        PathBuf::from("/data/zerorpc-bus")
    );
    // Relative or empty XDG_DATA_HOME is ignored (XDG spec).
    assert_eq!(
        store(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "rel")]),
        PathBuf::from("/home/u/.local/share/zerorpc-bus")
    );
    assert_eq!(
        store(&[("HOME", ""), ("XDG_DATA_HOME", "")]),
        PathBuf::from("./zerorpc-bus-data")
    );
}

const FULL_FILE: &str = r#"
ingest = "tcp://127.0.0.1:19941"
publish = "tcp://*:19940"
replay = "ipc:///run/bus/replay"
store = "data"
retention = "12h"
max_message_bytes = 4096
topic_prefix = "org.example"
environment = "prod"
modname = "bodhi"
username = "bodhi"
sign_cert = "/etc/pki/fedmsg/bodhi.crt"
sign_key = "keys/bodhi.key"
validate = true
ca_cert = "/etc/pki/fedmsg/ca.crt"
crl = "/etc/pki/fedmsg/crl.pem"
routing_nitpicky = true
schemas = "/usr/share/bus/schemas"
endpoints = ["tcp://hub.fedoraproject.org:9940", "tcp://stg.fedoraproject.org:9940"]
transports = ["amqp", "zmq", "nats"]
amqp_url = "amqps://bus:secret@rabbit.example.org/%2fpubsub?heartbeat=10"
amqp_exchange = "amq.topic"
amqp_queue = "bodhi-consumers"
amqp_alternate_exchange = "unrouted"
amqp_stream_queue = "bus-log"
nats_url = "nats://nats.example.org:4222"
nats_durable = "bodhi"
nats_stream_depth = 3
prefetch = 16

[routing_policy]
"org.example.prod.bodhi.update.comment" = ["bodhi-bodhi01.example.org"]
"org.example.prod.koji.build" = []
"#;

#[test]
fn file_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), FULL_FILE);
    let (c, prov) = BusConfig::load(Some(&path), env(&[("HOME", "/home/u")])).unwrap();
    assert_eq!(c.ingest, "tcp://127.0.0.1:19941");
    assert_eq!(c.publish, "tcp://*:19940");
    assert_eq!(c.replay, "ipc:///run/bus/replay");
    // Relative paths in the file are relative to the file's directory.
    assert_eq!(c.store, dir.path().join("data"));
    assert_eq!(c.sign_key, Some(dir.path().join("keys/bodhi.key")));
    assert_eq!(
        c.sign_cert,
        Some(PathBuf::from("/etc/pki/fedmsg/bodhi.crt"))
    );
    assert_eq!(
        c.retention.as_duration(),
        Some(Duration::from_secs(12 * 3600))
    );
    assert_eq!(c.max_message_bytes, 4096);
    assert_eq!(c.topic_prefix, "org.example");
    assert_eq!(c.environment, "prod");
    assert_eq!(c.modname.as_deref(), Some("bodhi"));
    assert_eq!(c.username.as_deref(), Some("bodhi"));
    assert!(c.validate);
    assert_eq!(c.ca_cert, Some(PathBuf::from("/etc/pki/fedmsg/ca.crt")));
    assert_eq!(c.crl, Some(PathBuf::from("/etc/pki/fedmsg/crl.pem")));
    assert!(c.routing_nitpicky);
    assert_eq!(c.schemas, Some(PathBuf::from("/usr/share/bus/schemas")));
    assert_eq!(
        c.endpoints,
        vec![
            "tcp://hub.fedoraproject.org:9940",
            "tcp://stg.fedoraproject.org:9940"
        ]
    );
    assert_eq!(
        c.routing_policy
            .get("org.example.prod.bodhi.update.comment"),
        Some(&vec!["bodhi-bodhi01.example.org".to_owned()])
    );
    assert_eq!(
        c.routing_policy.get("org.example.prod.koji.build"),
        Some(&vec![])
    );
    assert_eq!(
        c.transports,
        vec![TransportKind::Amqp, TransportKind::Zmq, TransportKind::Nats]
    );
    assert_eq!(
        c.amqp_url,
        "amqps://bus:secret@rabbit.example.org/%2fpubsub?heartbeat=10"
    );
    assert_eq!(c.amqp_queue.as_deref(), Some("bodhi-consumers"));
    assert_eq!(c.amqp_alternate_exchange.as_deref(), Some("unrouted"));
    assert_eq!(c.amqp_stream_queue.as_deref(), Some("bus-log"));
    assert_eq!(c.nats_url, "nats://nats.example.org:4222");
    assert_eq!(c.nats_durable.as_deref(), Some("bodhi"));
    assert_eq!((c.nats_stream_depth, c.prefetch), (3, 16));
    assert_eq!(prov.file(), Some(path.as_path()));
    assert_eq!(prov.file_named_by(), Some(&Source::Flag("--config".into())));
    for &key in KEYS {
        assert_eq!(prov.source(key), Some(&Source::File(path.clone())), "{key}");
    }
}

#[test]
fn a_partial_file_keeps_other_defaults_and_max_bytes_takes_units() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "max_message_bytes = \"2MiB\"\nretention = \"none\"\n",
    );
    let (c, prov) = BusConfig::load(Some(&path), Vec::new()).unwrap();
    assert_eq!(c.max_message_bytes, 2 << 20);
    assert_eq!(c.retention, Retention::Unlimited);
    assert_eq!(c.ingest, "tcp://127.0.0.1:9941");
    assert_eq!(prov.source("ingest"), Some(&Source::Default));
    assert_eq!(prov.source("retention"), Some(&Source::File(path.clone())));
}

#[test]
fn the_file_may_be_named_by_the_environment_and_the_flag_wins() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(&a, "environment = \"stg\"\n").unwrap();
    std::fs::write(&b, "environment = \"prod\"\n").unwrap();
    let a_text = a.to_str().unwrap();
    let (c, prov) = BusConfig::load(None, env(&[(CONFIG_ENV, a_text)])).unwrap();
    assert_eq!(c.environment, "stg");
    assert_eq!(prov.file(), Some(a.as_path()));
    assert_eq!(prov.file_named_by(), Some(&Source::Env(CONFIG_ENV.into())));
    let (c, prov) = BusConfig::load(Some(&b), env(&[(CONFIG_ENV, a_text)])).unwrap();
    assert_eq!(c.environment, "prod");
    assert_eq!(prov.file(), Some(b.as_path()));
    // An empty ZERORPC_BUS_CONFIG names no file.
    let (c, prov) = BusConfig::load(None, env(&[(CONFIG_ENV, "")])).unwrap();
    assert_eq!(c.environment, "dev");
    assert_eq!(prov.file(), None);
}

#[test]
fn env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), FULL_FILE);
    let (c, prov) = BusConfig::load(
        Some(&path),
        env(&[
            ("ZERORPC_BUS_INGEST", "tcp://127.0.0.1:29941"),
            ("ZERORPC_BUS_RETENTION", "30m"),
            ("ZERORPC_BUS_MAX_MESSAGE_BYTES", "512KiB"),
            ("ZERORPC_BUS_VALIDATE", "no"),
            ("ZERORPC_BUS_MODNAME", ""),
            ("ZERORPC_BUS_STORE", "rel/store"),
            ("ZERORPC_BUS_ENDPOINTS", "tcp://a:1, tcp://b:2"),
            (
                "ZERORPC_BUS_ROUTING_POLICY",
                r#"{"org.example.prod.x" = ["c1", "c2"]}"#,
            ),
        ]),
    )
    .unwrap();
    assert_eq!(c.ingest, "tcp://127.0.0.1:29941");
    assert_eq!(c.retention.as_duration(), Some(Duration::from_secs(1800)));
    assert_eq!(c.max_message_bytes, 512 * 1024);
    assert!(!c.validate);
    assert_eq!(c.modname, None, "an empty value unsets an optional key");
    assert_eq!(
        c.store,
        PathBuf::from("rel/store"),
        "env paths are not file-relative"
    );
    assert_eq!(c.endpoints, vec!["tcp://a:1", "tcp://b:2"]);
    assert_eq!(c.routing_policy.len(), 1);
    assert_eq!(
        c.routing_policy["org.example.prod.x"],
        vec!["c1".to_owned(), "c2".to_owned()]
    );
    assert_eq!(
        prov.source("ingest"),
        Some(&Source::Env("ZERORPC_BUS_INGEST".into()))
    );
    assert_eq!(
        prov.source("max_message_bytes"),
        Some(&Source::Env("ZERORPC_BUS_MAX_MESSAGE_BYTES".into()))
    );
    // Not overridden: still from the file.
    assert_eq!(prov.source("publish"), Some(&Source::File(path.clone())));
    assert_eq!(c.publish, "tcp://*:19940");

    // A TOML array is accepted too; the last value of a repeated name wins.
    let (c, _) = BusConfig::load(
        None,
        env(&[
            ("ZERORPC_BUS_ENDPOINTS", "tcp://x:1"),
            ("ZERORPC_BUS_ENDPOINTS", r#"["tcp://a:1", "ipc:///b"]"#),
        ]),
    )
    .unwrap();
    assert_eq!(c.endpoints, vec!["tcp://a:1", "ipc:///b"]);
    let (c, _) = BusConfig::load(None, env(&[("ZERORPC_BUS_ENDPOINTS", "")])).unwrap();
    assert!(c.endpoints.is_empty());
}

#[test]
fn flag_overrides_env() {
    let (mut c, mut prov) = BusConfig::load(
        None,
        env(&[
            ("ZERORPC_BUS_PUBLISH", "tcp://127.0.0.1:1"),
            ("ZERORPC_BUS_ENVIRONMENT", "stg"),
        ]),
    )
    .unwrap();
    c.set_flag(&mut prov, "publish", "tcp://127.0.0.1:2")
        .unwrap();
    c.set_flag(&mut prov, "--routing-nitpicky", "true").unwrap();
    c.set_flag(&mut prov, "max-message-bytes", "100").unwrap();
    assert_eq!(c.publish, "tcp://127.0.0.1:2");
    assert!(c.routing_nitpicky);
    assert_eq!(c.max_message_bytes, 100);
    assert_eq!(c.environment, "stg");
    assert_eq!(
        prov.source("publish"),
        Some(&Source::Flag("--publish".into()))
    );
    assert_eq!(
        prov.source("routing_nitpicky"),
        Some(&Source::Flag("--routing-nitpicky".into()))
    );
    assert_eq!(
        prov.source("environment"),
        Some(&Source::Env("ZERORPC_BUS_ENVIRONMENT".into()))
    );
}

#[test]
fn render_shows_each_origin_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "environment = \"prod\"\n[routing_policy]\n\"org.x.y\" = [\"a\", \"b \\\"q\\\"\"]\n",
    );
    let (mut c, mut prov) = BusConfig::load(
        Some(&path),
        env(&[
            ("HOME", "/home/u"),
            ("ZERORPC_BUS_RETENTION", "36h"),
            ("ZERORPC_BUS_ENDPOINTS", "tcp://a:1,tcp://b:2"),
        ]),
    )
    .unwrap();
    c.set_flag(&mut prov, "ingest", "tcp://127.0.0.1:5555")
        .unwrap();
    let text = c.render(&prov);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "# zerorpc-bus configuration; file {} (named by flag --config)",
            path.display()
        )
    );
    assert!(
        lines.contains(&"ingest = \"tcp://127.0.0.1:5555\"  # flag --ingest"),
        "{text}"
    );
    assert!(
        lines.contains(&"publish = \"tcp://127.0.0.1:9940\"  # default"),
        "{text}"
    );
    assert!(
        lines.contains(&"retention = \"36h\"  # env ZERORPC_BUS_RETENTION"),
        "{text}"
    );
    assert!(
        lines.contains(&"endpoints = [\"tcp://a:1\", \"tcp://b:2\"]  # env ZERORPC_BUS_ENDPOINTS"),
        "{text}"
    );
    assert!(
        lines.contains(&format!("environment = \"prod\"  # file {}", path.display()).as_str()),
        "{text}"
    );
    assert!(
        lines.contains(&"max_message_bytes = 1048576  # default"),
        "{text}"
    );
    assert!(lines.contains(&"validate = false  # default"), "{text}");
    assert!(lines.contains(&"# modname is not set  # default"), "{text}");
    assert!(
        lines.contains(&"store = \"/home/u/.local/share/zerorpc-bus\"  # default"),
        "{text}"
    );
    // One line per key, plus the header.
    assert_eq!(lines.len(), KEYS.len() + 1);

    // The rendering is TOML that loads back to the same configuration.
    let again = dir.path().join("rendered.toml");
    std::fs::write(&again, &text).unwrap();
    let (c2, _) = BusConfig::load(Some(&again), Vec::new()).unwrap();
    assert_eq!(c2, c);

    // No file: said so in the header.
    let (c, prov) = BusConfig::load(None, Vec::new()).unwrap();
    assert_eq!(
        c.render(&prov).lines().next(),
        Some("# zerorpc-bus configuration; no configuration file")
    );
}

#[test]
fn serde_round_trip() {
    let (c, _) = BusConfig::load(None, env(&[("HOME", "/h")])).unwrap();
    let text = toml::to_string(&c).unwrap();
    assert!(text.contains("retention = \"7d\""), "{text}");
    let back: BusConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, c);
    let e = toml::from_str::<BusConfig>("bogus = 1").unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
}
