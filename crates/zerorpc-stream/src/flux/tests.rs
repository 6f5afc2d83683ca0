//! Unit tests of the Flux reader: the streamparse shape, groupings, errors,
//! shell components, environment substitution and includes.

use super::*;
use crate::component::Outputs;
use crate::topology::{ComponentKind, Grouping, StreamDef};

fn p(text: &str) -> Result<Topology, Error> {
    parse(text, Path::new("/tmp/flux-test/topology.yaml"))
}

fn msg(r: Result<Topology, Error>) -> String {
    match r {
        Ok(_) => panic!("parsed"),
        Err(e) => e.to_string(),
    }
}

const WORDCOUNT: &str = r#"
name: "wordcount"
config:
  topology.message.timeout.secs: 10
  topology.max.spout.pending: 500
spouts:
  - id: "word-spout"
    className: "org.apache.storm.flux.wrappers.spouts.FluxShellSpout"
    constructorArgs:
      - ["streamparse_run", "spouts.words.WordSpout"]
      - ["word"]
bolts:
  - id: "count-bolt"
    className: "org.apache.storm.flux.wrappers.bolts.FluxShellBolt"
    constructorArgs:
      - ["streamparse_run", "bolts.wordcount.WordCountBolt"]
      - ["word", "count"]
    parallelism: 2
  - id: "sink"
    className: "my.Sink"
    constructorArgs: [3, "x", {"k": [1]}]
    config:
      topology.tick.tuple.freq.secs: 1
streams:
  - name: "spout -> count"
    from: "word-spout"
    to: "count-bolt"
    grouping:
      type: FIELDS
      args: ["word"]
  - from: "count-bolt"
    to: "sink"
    grouping:
      type: SHUFFLE
"#;

#[test]
fn streamparse_word_count_shape() {
    let t = p(WORDCOUNT).unwrap();
    assert_eq!(t.name, "wordcount");
    assert_eq!(t.config["topology.message.timeout.secs"], 10);
    assert_eq!(t.config["topology.max.spout.pending"], 500);
    assert_eq!(t.base_dir.as_deref(), Some(Path::new("/tmp/flux-test")));
    assert_eq!(t.spouts.len(), 1);
    let s = &t.spouts[0];
    assert_eq!((s.id.as_str(), s.parallelism), ("word-spout", 1));
    match &s.kind {
        ComponentKind::Shell { command, outputs } => {
            assert_eq!(command, &["streamparse_run", "spouts.words.WordSpout"]);
            assert_eq!(outputs, &Outputs::fields(["word"]));
        }
        _ => panic!("not a shell spout"),
    }
    let c = &t.bolts[0];
    assert_eq!((c.id.as_str(), c.parallelism), ("count-bolt", 2));
    match &c.kind {
        ComponentKind::Shell { outputs, .. } => {
            assert_eq!(outputs, &Outputs::fields(["word", "count"]))
        }
        _ => panic!("not a shell bolt"),
    }
    let sink = &t.bolts[1];
    match &sink.kind {
        ComponentKind::Registered { class, args } => {
            assert_eq!(class, "my.Sink");
            assert_eq!(
                args,
                &vec![
                    serde_json::json!(3),
                    "x".into(),
                    serde_json::json!({"k": [1]})
                ]
            );
        }
        _ => panic!("not registered"),
    }
    assert_eq!(sink.config["topology.tick.tuple.freq.secs"], 1);
    assert_eq!(
        t.streams,
        vec![
            StreamDef {
                name: Some("spout -> count".into()),
                from: "word-spout".into(),
                to: "count-bolt".into(),
                stream: "default".into(),
                grouping: Grouping::Fields(vec!["word".into()]),
            },
            StreamDef {
                name: None,
                from: "count-bolt".into(),
                to: "sink".into(),
                stream: "default".into(),
                grouping: Grouping::Shuffle,
            },
        ]
    );
}

fn with_grouping(grouping: &str) -> Result<Topology, Error> {
    p(&format!(
        "name: g\nspouts:\n  - id: s\n    className: S\nbolts:\n  - id: b\n    className: B\nstreams:\n  - from: s\n    to: b\n    grouping:\n{grouping}\n"
    ))
}

#[test]
fn every_grouping() {
    let cases = [
        ("      type: SHUFFLE", Grouping::Shuffle, "default"),
        (
            "      type: FIELDS\n      args: [a, b]",
            Grouping::Fields(vec!["a".into(), "b".into()]),
            "default",
        ),
        ("      type: ALL", Grouping::All, "default"),
        ("      type: GLOBAL", Grouping::Global, "default"),
        (
            "      type: LOCAL_OR_SHUFFLE",
            Grouping::LocalOrShuffle,
            "default",
        ),
        (
            "      type: DIRECT\n      streamId: direct-out",
            Grouping::Direct,
            "direct-out",
        ),
        (
            "      type: NONE\n      streamId: other",
            Grouping::None,
            "other",
        ),
    ];
    for (yaml, grouping, stream) in cases {
        let t = with_grouping(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        assert_eq!(t.streams[0].grouping, grouping, "{yaml}");
        assert_eq!(t.streams[0].stream, stream, "{yaml}");
    }
}

#[test]
fn grouping_errors() {
    let m = msg(with_grouping("      type: shuffle"));
    assert!(m.contains("unknown variant `shuffle`"), "{m}");
    assert!(m.contains("line 12"), "{m}");
    let m = msg(with_grouping("      type: FIELDS"));
    assert!(m.contains("FIELDS grouping needs the fields"), "{m}");
    let m = msg(with_grouping(
        "      type: CUSTOM\n      customClass:\n        className: x.Y",
    ));
    assert!(m.contains("CUSTOM groupings"), "{m}");
    let m = msg(with_grouping("      type: SHUFFLE\n      fields: [a]"));
    assert!(m.contains("unknown field `fields`"), "{m}");
}

#[test]
fn structural_errors() {
    let m = msg(p("name: x\nspouts:\n  - className: S\n"));
    assert!(m.contains("missing field `id`"), "{m}");
    assert!(
        m.starts_with("topology /tmp/flux-test/topology.yaml:"),
        "{m}"
    );
    let m = msg(p(
        "name: x\nspouts:\n  - id: s\n    className: S\nbolts:\n  - id: b\n    className: B\nstreams:\n  - from: nope\n    to: b\n    grouping: {type: SHUFFLE}\n",
    ));
    assert!(m.contains("no component \"nope\""), "{m}");
    let m = msg(p(
        "name: x\nspouts:\n  - id: s\n    className: S\nstreams:\n  - from: s\n    to: s\n    grouping: {type: SHUFFLE}\n",
    ));
    assert!(m.contains("is not a bolt"), "{m}");
    let m = msg(p("name: x\nspout:\n  - id: s\n    className: S\n"));
    assert!(m.contains("unknown field `spout`"), "{m}");
    let m = msg(p("spouts:\n  - id: s\n    className: S\n"));
    assert!(m.contains("no topology `name`"), "{m}");
    let m = msg(p("name: x\nspouts: [\n"));
    assert!(m.contains("line"), "{m}");
    let m = msg(p(""));
    assert!(m.contains("empty"), "{m}");
    let m = msg(p(
        "name: x\nspouts:\n  - id: s\n    className: S\n    parallelism: -1\n",
    ));
    assert!(m.contains("parallelism -1"), "{m}");
    let m = msg(p(
        "name: x\nspouts:\n  - id: s\n    className: S\n    parallelism: 0\n",
    ));
    assert!(m.contains("parallelism 0"), "{m}");
    let m = msg(p("name: x\ncomponents:\n  - id: c\n    className: C\n"));
    assert!(m.contains("components:"), "{m}");
    let m = msg(p("name: x\ntopologySource:\n  className: C\n"));
    assert!(m.contains("topologySource"), "{m}");
    let m = msg(p(
        "name: x\nspouts:\n  - id: s\n    className: S\n    constructorArgs:\n      - ref: c\n",
    ));
    assert!(m.contains("ref/reflist"), "{m}");
    let m = msg(p(&format!(
        "name: x\nbolts:\n  - id: b\n    className: {SHELL_BOLT}\n    constructorArgs: [python3, x.py]\n"
    )));
    assert!(m.contains("expected a list of strings"), "{m}");
    let m = msg(p(&format!(
        "name: x\nbolts:\n  - id: b\n    className: {SHELL_SPOUT}\n    constructorArgs: [[x]]\n"
    )));
    assert!(m.contains("is a spout, among bolts"), "{m}");
    let m = msg(p(
        "name: x\nspouts:\n  - id: s\n    className: S\n    configMethods:\n      - name: withFoo\n",
    ));
    assert!(m.contains("configMethods (withFoo)"), "{m}");
}

#[test]
fn shell_named_streams_and_component_config() {
    let t = p(&format!(
        r#"
name: streams
spouts:
  - id: s
    className: {SHELL_SPOUT}
    constructorArgs:
      - [node, spout.js]
    configMethods:
      - name: setDefaultStream
        args: [[word]]
      - name: setNamedStream
        args: [errors, [message, code]]
      - name: addComponentConfig
        args: [topology.tick.tuple.freq.secs, 5]
    numTasks: 3
    parallelism: 1
    cpuLoad: 50
"#
    ))
    .unwrap();
    let s = &t.spouts[0];
    assert_eq!(s.parallelism, 3);
    assert_eq!(s.config["topology.tick.tuple.freq.secs"], 5);
    match &s.kind {
        ComponentKind::Shell { command, outputs } => {
            assert_eq!(command, &["node", "spout.js"]);
            assert_eq!(
                outputs,
                &Outputs::fields(["word"]).stream("errors", ["message", "code"])
            );
        }
        _ => panic!("not shell"),
    }
    let m = msg(p(&format!(
        "name: x\nspouts:\n  - id: s\n    className: {SHELL_SPOUT}\n    constructorArgs: [[x]]\n    configMethods:\n      - name: setNamedStream\n        args: [[a]]\n"
    )));
    assert!(m.contains("setNamedStream([\"a\"]) is not one of"), "{m}");
}

#[test]
fn env_substitution_as_flux() {
    let env = |n: &str| (n == "ZK").then(|| "zk:2181".to_string());
    assert_eq!(
        substitute_env(
            "a: ${ENV-ZK} ${ENV-ZK}/x\nb: ${prop} ${ENV-NOPE} ${ unclosed\n",
            env
        ),
        "a: zk:2181 zk:2181/x\nb: ${prop} ${ENV-NOPE} ${ unclosed\n"
    );
    // Through the parser, with a real variable.
    std::env::set_var("ZEROSTREAM_FLUX_TEST_PAR", "4");
    let t = p("name: e\nspouts:\n  - id: s\n    className: S\n    parallelism: ${ENV-ZEROSTREAM_FLUX_TEST_PAR}\n").unwrap();
    assert_eq!(t.spouts[0].parallelism, 4);
}

#[test]
fn includes_merge_as_flux() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.yaml"),
        "name: base\nconfig:\n  a: 1\n  b: 1\nspouts:\n  - id: s\n    className: Base\nbolts:\n  - id: b\n    className: B\nstreams:\n  - from: s\n    to: b\n    grouping: {type: SHUFFLE}\n",
    )
    .unwrap();
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        "name: main\nincludes:\n  - file: base.yaml\nconfig:\n  a: 2\nspouts:\n  - id: s\n    className: Mine\n",
    )
    .unwrap();
    let t = load(&main).unwrap();
    assert_eq!(t.name, "main");
    assert_eq!(t.config["a"], 2);
    assert_eq!(t.config["b"], 1);
    assert_eq!(t.spouts.len(), 1);
    assert!(
        matches!(&t.spouts[0].kind, ComponentKind::Registered { class, .. } if class == "Mine")
    );
    assert_eq!(t.bolts.len(), 1);
    assert_eq!(t.streams.len(), 1);

    std::fs::write(
        &main,
        "name: main\nincludes:\n  - file: base.yaml\n    override: true\nconfig:\n  a: 2\nspouts:\n  - id: s\n    className: Mine\n",
    )
    .unwrap();
    let t = load(&main).unwrap();
    assert_eq!(t.name, "base");
    assert_eq!(t.config["a"], 1);
    assert!(
        matches!(&t.spouts[0].kind, ComponentKind::Registered { class, .. } if class == "Base")
    );

    std::fs::write(&main, "name: m\nincludes:\n  - file: missing.yaml\n").unwrap();
    let m = msg(load(&main));
    assert!(
        m.contains("includes: cannot read") && m.contains("missing.yaml"),
        "{m}"
    );
    std::fs::write(
        &main,
        "name: m\nincludes:\n  - file: x.yaml\n    resource: true\n",
    )
    .unwrap();
    let m = msg(load(&main));
    assert!(m.contains("classpath resource"), "{m}");
}
