//! Configuration errors: unknown keys, bad values, unreadable files, and the
//! checks on transport and broker values.

use super::*;

#[test]
fn unknown_keys_in_the_file_are_errors_listing_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "ingset = \"tcp://127.0.0.1:1\"\n");
    let e = load_err(Some(&path), &[]);
    match &e {
        ConfigError::UnknownKey {
            key,
            origin,
            suggestion,
            valid,
        } => {
            assert_eq!(key, "ingset");
            assert_eq!(origin, &Source::File(path.clone()));
            assert_eq!(suggestion.as_deref(), Some("ingest"));
            assert_eq!(valid.len(), KEYS.len());
        }
        other => panic!("{other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("\"ingset\"") && text.contains("did you mean \"ingest\""),
        "{text}"
    );
    for key in KEYS {
        assert!(text.contains(key), "{key} missing from {text}");
    }
    // Nothing close: no suggestion.
    let path = write_file(dir.path(), "[loggers]\nx = 1\n");
    let e = load_err(Some(&path), &[]);
    assert!(
        matches!(
            &e,
            ConfigError::UnknownKey {
                suggestion: None,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn unknown_env_variables_are_errors_listing_valid_ones() {
    let e = load_err(None, &[("ZERORPC_BUS_RETENTOIN", "1d")]);
    match &e {
        ConfigError::UnknownKey {
            key,
            origin,
            suggestion,
            valid,
        } => {
            assert_eq!(key, "ZERORPC_BUS_RETENTOIN");
            assert_eq!(origin, &Source::Env("ZERORPC_BUS_RETENTOIN".into()));
            assert_eq!(suggestion.as_deref(), Some("ZERORPC_BUS_RETENTION"));
            assert!(valid.contains(&"ZERORPC_BUS_MAX_MESSAGE_BYTES".to_owned()));
            assert!(valid.contains(&CONFIG_ENV.to_owned()));
            assert_eq!(valid.len(), KEYS.len() + 1);
        }
        other => panic!("{other:?}"),
    }
    // Lower-case spellings are not our names either.
    let e = load_err(None, &[("ZERORPC_BUS_ingest", "tcp://a:1")]);
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e:?}");
}

#[test]
fn unknown_flags_are_errors() {
    let (mut c, mut prov) = BusConfig::load(None, Vec::new()).unwrap();
    let before = c.clone();
    let e = c.set_flag(&mut prov, "max-mesage-bytes", "1").unwrap_err();
    match &e {
        ConfigError::UnknownKey {
            key, suggestion, ..
        } => {
            assert_eq!(key, "--max-mesage-bytes");
            assert_eq!(suggestion.as_deref(), Some("--max-message-bytes"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c, before);
}

#[test]
fn bad_values_name_the_key_the_source_and_the_form() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("ingest = \"localhost:9941\"", "ingest", "ZeroMQ endpoint"),
        ("publish = 9940", "publish", "ZeroMQ endpoint"),
        ("retention = \"7 days\"", "retention", "duration"),
        ("retention = 7", "retention", "duration"),
        (
            "max_message_bytes = 0",
            "max_message_bytes",
            "positive number of bytes",
        ),
        (
            "max_message_bytes = -5",
            "max_message_bytes",
            "positive number of bytes",
        ),
        (
            "max_message_bytes = \"1MB\"",
            "max_message_bytes",
            "positive number of bytes",
        ),
        ("validate = \"yes\"", "validate", "boolean"),
        ("environment = \"prod.x\"", "environment", "topic segment"),
        ("topic_prefix = \"org.\"", "topic_prefix", "topic prefix"),
        ("modname = 3", "modname", "a string"),
        ("sign_cert = [\"a\"]", "sign_cert", "a path"),
        ("store = \"\"", "store", "directory path"),
        (
            "endpoints = \"tcp://a:1\"",
            "endpoints",
            "list of ZeroMQ endpoints",
        ),
        (
            "endpoints = [\"tcp://a:1\", 2]",
            "endpoints",
            "list of ZeroMQ endpoints",
        ),
        (
            "endpoints = [\"nope\"]",
            "endpoints",
            "list of ZeroMQ endpoints",
        ),
        (
            "routing_policy = [\"a\"]",
            "routing_policy",
            "table of topic",
        ),
        (
            "routing_policy = { \"a\" = \"b\" }",
            "routing_policy",
            "table of topic",
        ),
        (
            "routing_policy = { \"a\" = [1] }",
            "routing_policy",
            "table of topic",
        ),
    ];
    for (line, key, form) in cases {
        let path = write_file(dir.path(), line);
        let e = load_err(Some(&path), &[]);
        let ConfigError::BadValue { key: k, origin, .. } = &e else {
            panic!("{line}: {e:?}")
        };
        assert_eq!(k, key, "{line}");
        assert_eq!(origin, &Source::File(path.clone()), "{line}");
        let text = e.to_string();
        assert!(text.contains(key) && text.contains(form), "{line}: {text}");
        assert!(text.contains(&path.display().to_string()), "{line}: {text}");
    }

    let env_cases: &[(&str, &str, &str, &str)] = &[
        ("ZERORPC_BUS_REPLAY", "tcp://x", "replay", "ZeroMQ endpoint"),
        ("ZERORPC_BUS_VALIDATE", "maybe", "validate", "boolean"),
        ("ZERORPC_BUS_RETENTION", "0d", "retention", "duration"),
        (
            "ZERORPC_BUS_MAX_MESSAGE_BYTES",
            "lots",
            "max_message_bytes",
            "bytes",
        ),
        (
            "ZERORPC_BUS_ENDPOINTS",
            "[1, 2]",
            "endpoints",
            "list of ZeroMQ endpoints",
        ),
        (
            "ZERORPC_BUS_ENDPOINTS",
            "tcp://a:1,oops",
            "endpoints",
            "list of ZeroMQ endpoints",
        ),
        (
            "ZERORPC_BUS_ROUTING_POLICY",
            "a=b",
            "routing_policy",
            "table of topic",
        ),
        ("ZERORPC_BUS_INGEST", "", "ingest", "ZeroMQ endpoint"),
    ];
    for (var, value, key, form) in env_cases {
        let e = load_err(None, &[(var, value)]);
        let ConfigError::BadValue {
            key: k,
            origin,
            got,
            ..
        } = &e
        else {
            panic!("{var}: {e:?}")
        };
        assert_eq!(k, key);
        assert_eq!(origin, &Source::Env(var.to_string()));
        assert_eq!(got, &format!("{value:?}"));
        let text = e.to_string();
        assert!(text.contains(var) && text.contains(form), "{text}");
    }

    let (mut c, mut prov) = BusConfig::load(None, Vec::new()).unwrap();
    let e = c.set_flag(&mut prov, "--retention", "forever").unwrap_err();
    assert!(
        matches!(&e, ConfigError::BadValue { origin: Source::Flag(f), .. } if f == "--retention"),
        "{e:?}"
    );
    assert!(e.to_string().contains("flag --retention"), "{e}");
    assert_eq!(prov.source("retention"), Some(&Source::Default));
}

#[test]
fn unreadable_and_malformed_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let e = load_err(Some(&missing), &[]);
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("missing.toml") && text.contains("flag --config"),
        "{text}"
    );

    let e = load_err(None, &[(CONFIG_ENV, missing.to_str().unwrap())]);
    assert!(e.to_string().contains("env ZERORPC_BUS_CONFIG"), "{e}");

    let path = write_file(dir.path(), "ingest = \"unterminated\n");
    let e = load_err(Some(&path), &[]);
    assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("bus.toml") && text.contains("line 1"),
        "{text}"
    );

    // A key given twice is a TOML error, not a silent override.
    let path = write_file(dir.path(), "environment = \"a\"\nenvironment = \"b\"\n");
    assert!(matches!(
        load_err(Some(&path), &[]),
        ConfigError::Parse { .. }
    ));
}

#[test]
fn transports_and_broker_values_are_checked() {
    let (mut c, mut prov) = BusConfig::load(None, Vec::new()).unwrap();
    assert_eq!(c.transports, vec![TransportKind::Zmq]);
    c.set_flag(&mut prov, "transports", "nats, AMQP, nats")
        .unwrap();
    assert_eq!(c.transports, vec![TransportKind::Nats, TransportKind::Amqp]);
    for (key, bad) in [
        ("transports", "zmq,kafka"),
        ("transports", ""),
        ("amqp_url", "http://rabbit"),
        ("amqp_url", "amqp://"),
        ("nats_url", "nats ://x"),
        ("prefetch", "0"),
        ("prefetch", "70000"),
        ("nats_stream_depth", "0"),
        ("amqp_exchange", "amq topic"),
    ] {
        match c.set_flag(&mut prov, key, bad) {
            Err(ConfigError::BadValue { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key} = {bad:?}: {other:?}"),
        }
    }
    // Rendered and loaded back, the same (the relative default store is
    // then relative to the file).
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), &c.render(&prov));
    let back = BusConfig::load(Some(&path), Vec::new()).unwrap().0;
    assert_eq!(back.store, dir.path().join(&c.store));
    assert_eq!(
        BusConfig {
            store: c.store.clone(),
            ..back
        },
        c
    );
}
