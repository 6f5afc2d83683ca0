//! Storm Flux topology files (YAML): `name`, `config`, `spouts`, `bolts`,
//! `streams`, with shell components (`FluxShellSpout`/`FluxShellBolt`) and
//! Rust components named by class.
//!
//! What is read, as Flux reads it:
//! - `name` (required), `config` (any map: Storm's keys),
//! - `spouts`/`bolts`: `id`, `className`, `parallelism` (default 1),
//!   `numTasks` (when set, the number of instances: every Storm task is an
//!   instance), `constructorArgs`, `config` (component configuration),
//!   `configMethods`; `onHeapMemoryLoad`/`offHeapMemoryLoad`/`cpuLoad` are
//!   accepted and ignored (scheduling hints),
//! - shell components: `className`
//!   `org.apache.storm.flux.wrappers.spouts.FluxShellSpout` or
//!   `org.apache.storm.flux.wrappers.bolts.FluxShellBolt`, `constructorArgs:
//!   [[command, args...], [fields...]]` (the fields are optional), and the
//!   wrappers' configuration methods `setDefaultStream([fields])`,
//!   `setNamedStream(name, [fields])` and `addComponentConfig(key, value)`,
//! - any other `className`: a Rust component looked up in the
//!   [`crate::Registry`], made with the `constructorArgs`,
//! - `streams`: `name`, `from`, `to`, `grouping: {type, args, streamId}`
//!   with the types `SHUFFLE`, `FIELDS` (args: the fields), `ALL`, `GLOBAL`,
//!   `LOCAL_OR_SHUFFLE`, `DIRECT`, `NONE`,
//! - `includes` of files (`resource: false`), merged as Flux merges them
//!   (`override`), not recursively (as Flux); a relative `file` is looked
//!   up next to the including file, then in the current directory,
//! - `${ENV-NAME}` is replaced by the environment variable `NAME` (Flux does
//!   this with `--env-filter`; here always); other `${...}` (Flux's
//!   `--filter` properties) are left as they are, with a warning, as Flux
//!   leaves what it cannot replace.
//!
//! Rejected with an error naming the key: keys Flux does not know (Flux's
//! YAML loader refuses them too), `components` and `ref`/`reflist`
//! arguments (Java beans), `properties` (JavaBean setters), configuration
//! methods other than the shell wrappers', `CUSTOM` groupings,
//! `topologySource`, `workerHooks`, classpath `resource` includes.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::component::Outputs;
use crate::error::Error;
use crate::topology::{ComponentDef, ComponentKind, Grouping, StreamDef, Topology};
use crate::tuple::{Value, DEFAULT_STREAM};

/// Flux's shell spout wrapper.
pub const SHELL_SPOUT: &str = "org.apache.storm.flux.wrappers.spouts.FluxShellSpout";
/// Flux's shell bolt wrapper.
pub const SHELL_BOLT: &str = "org.apache.storm.flux.wrappers.bolts.FluxShellBolt";

type Map = serde_json::Map<String, Value>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FluxFile {
    name: Option<String>,
    config: Option<Map>,
    components: Option<Vec<serde_norway::Value>>,
    includes: Option<Vec<IncludeDef>>,
    topology_source: Option<serde_norway::Value>,
    spouts: Option<Vec<VertexDef>>,
    bolts: Option<Vec<VertexDef>>,
    streams: Option<Vec<RawStream>>,
    worker_hooks: Option<Vec<serde_norway::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IncludeDef {
    #[serde(default)]
    resource: bool,
    file: String,
    #[serde(default)]
    r#override: bool,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VertexDef {
    id: String,
    class_name: String,
    constructor_args: Option<Vec<Value>>,
    properties: Option<Vec<Value>>,
    config_methods: Option<Vec<ConfigMethod>>,
    parallelism: Option<i64>,
    num_tasks: Option<i64>,
    #[allow(dead_code)]
    on_heap_memory_load: Option<f64>,
    #[allow(dead_code)]
    off_heap_memory_load: Option<f64>,
    #[allow(dead_code)]
    cpu_load: Option<f64>,
    config: Option<Map>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ConfigMethod {
    name: String,
    args: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    name: Option<String>,
    from: String,
    to: String,
    grouping: RawGrouping,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawGrouping {
    r#type: GroupingType,
    stream_id: Option<String>,
    args: Option<Vec<String>>,
    custom_class: Option<serde_norway::Value>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum GroupingType {
    All,
    Custom,
    Direct,
    Shuffle,
    LocalOrShuffle,
    Fields,
    Global,
    None,
}

/// Parses a Flux file's text; `path` names it in errors and is the base of
/// relative shell commands' working directory (and of relative includes).
pub fn parse(text: &str, path: &Path) -> Result<Topology, Error> {
    let err = |message: String| Error::Flux {
        path: path.to_path_buf(),
        message,
    };
    let mut file = read_yaml(text, path)?;
    if let Some(includes) = file.includes.take() {
        for inc in includes {
            if inc.resource {
                return Err(err(format!(
                    "includes: {:?} is a classpath resource (resource: true), which only a JVM \
                     has; include it as a file",
                    inc.file
                )));
            }
            let inc_path = include_path(path, &inc.file);
            let inc_text = std::fs::read_to_string(&inc_path)
                .map_err(|e| err(format!("includes: cannot read {}: {e}", inc_path.display())))?;
            let mut included = read_yaml(&inc_text, &inc_path)?;
            if included.includes.take().is_some_and(|i| !i.is_empty()) {
                tracing::warn!(
                    "{}: its includes are ignored (Flux's includes are not recursive)",
                    inc_path.display()
                );
            }
            merge(&mut file, included, inc.r#override);
        }
    }
    build(file, path)
}

/// Reads and parses a Flux file.
pub fn load(path: &Path) -> Result<Topology, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Flux {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(&text, path)
}

fn read_yaml(text: &str, path: &Path) -> Result<FluxFile, Error> {
    let text = substitute_env(text, |name| std::env::var(name).ok());
    if text.trim().is_empty() {
        return Err(Error::Flux {
            path: path.to_path_buf(),
            message: "the file is empty".into(),
        });
    }
    serde_norway::from_str::<FluxFile>(&text).map_err(|e| Error::Flux {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Replaces every `${ENV-NAME}` whose variable is set; leaves the others
/// (and Flux's `${property}`s) as they are, with a warning.
fn substitute_env(text: &str, env: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        // (a variable never spans lines)
        let end = after.find(['}', '\n']);
        match end {
            Some(end) if after[end..].starts_with('}') => {
                let var = &after[..end];
                let value = var.strip_prefix("ENV-").and_then(&env);
                match value {
                    Some(v) => out.push_str(&v),
                    None => {
                        tracing::warn!("flux: no value for ${{{var}}}: left as it is");
                        out.push_str(&rest[start..start + 2 + end + 1]);
                    }
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn include_path(including: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let beside = including
        .parent()
        .map(|d| d.join(p))
        .unwrap_or_else(|| p.to_path_buf());
    if beside.exists() || !p.exists() {
        beside
    } else {
        p.to_path_buf()
    }
}

/// Merges an included file into `file` as Flux does: with `override` the
/// included values win, else the including file's.
fn merge(file: &mut FluxFile, inc: FluxFile, override_: bool) {
    if let Some(name) = inc.name {
        if file.name.is_none() || override_ {
            file.name = Some(name);
        }
    }
    if let Some(conf) = inc.config {
        let mine = file.config.get_or_insert_with(Map::new);
        for (k, v) in conf {
            if override_ || !mine.contains_key(&k) {
                mine.insert(k, v);
            } else {
                tracing::warn!("flux include: config {k:?} is already set (override: false)");
            }
        }
    }
    let merge_vertices = |mine: &mut Option<Vec<VertexDef>>, theirs: Option<Vec<VertexDef>>| {
        let mine = mine.get_or_insert_with(Vec::new);
        for v in theirs.into_iter().flatten() {
            match mine.iter_mut().find(|m| m.id == v.id) {
                Some(m) if override_ => *m = v,
                Some(_) => {
                    tracing::warn!(
                        "flux include: {:?} is already defined (override: false)",
                        v.id
                    )
                }
                None => mine.push(v),
            }
        }
    };
    merge_vertices(&mut file.spouts, inc.spouts);
    merge_vertices(&mut file.bolts, inc.bolts);
    if let Some(streams) = inc.streams {
        file.streams.get_or_insert_with(Vec::new).extend(streams);
    }
    if let Some(c) = inc.components {
        file.components.get_or_insert_with(Vec::new).extend(c);
    }
    if let Some(h) = inc.worker_hooks {
        file.worker_hooks.get_or_insert_with(Vec::new).extend(h);
    }
    if inc.topology_source.is_some() && (file.topology_source.is_none() || override_) {
        file.topology_source = inc.topology_source;
    }
}

fn build(file: FluxFile, path: &Path) -> Result<Topology, Error> {
    let err = |message: String| Error::Flux {
        path: path.to_path_buf(),
        message,
    };
    if file.topology_source.is_some() {
        return Err(err(
            "topologySource: a JVM class that builds the topology cannot run \
                        here; describe it with spouts, bolts and streams"
                .into(),
        ));
    }
    if file.components.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(err(
            "components: Java beans (components, referenced with ref/reflist) \
                        are not supported; pass values in constructorArgs"
                .into(),
        ));
    }
    if file.worker_hooks.as_ref().is_some_and(|h| !h.is_empty()) {
        return Err(err(
            "workerHooks: worker hooks are JVM classes and are not supported".into(),
        ));
    }
    let name = match file.name {
        Some(n) if !n.trim().is_empty() => n,
        _ => return Err(err("no topology `name`".into())),
    };
    let spouts = file
        .spouts
        .unwrap_or_default()
        .into_iter()
        .map(|v| component(v, true).map_err(err))
        .collect::<Result<Vec<_>, _>>()?;
    let bolts = file
        .bolts
        .unwrap_or_default()
        .into_iter()
        .map(|v| component(v, false).map_err(err))
        .collect::<Result<Vec<_>, _>>()?;
    let streams = file
        .streams
        .unwrap_or_default()
        .into_iter()
        .map(|s| stream(s).map_err(err))
        .collect::<Result<Vec<_>, _>>()?;
    let base_dir = path
        .parent()
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d.to_path_buf()
            }
        })
        .map(|d| std::fs::canonicalize(&d).unwrap_or(d));
    let topology = Topology {
        name,
        config: file.config.unwrap_or_default(),
        spouts,
        bolts,
        streams,
        base_dir,
    };
    topology.validate().map_err(|e| match e {
        Error::Topology(m) => err(m),
        other => other,
    })?;
    Ok(topology)
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("{what}: expected a list of strings, found {v}"))?;
    list.iter()
        .map(|s| match s {
            Value::String(s) => Ok(s.clone()),
            // (Flux coerces scalars to String[] elements)
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!("{what}: expected strings, found {other}")),
        })
        .collect()
}

fn component(v: VertexDef, spout: bool) -> Result<ComponentDef, String> {
    let id = v.id.clone();
    let section = if spout { "spouts" } else { "bolts" };
    let at = |m: String| format!("{section}: {id}: {m}");
    let count = match (v.num_tasks, v.parallelism) {
        (Some(n), _) if n > 0 => n,
        (_, Some(p)) => p,
        (_, None) => 1,
    };
    let parallelism = u32::try_from(count)
        .map_err(|_| at(format!("parallelism {count} is not a number of instances")))?;
    let mut config = v.config.clone().unwrap_or_default();
    if v.properties.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(at(
            "properties (JavaBean setters) are not supported; use constructorArgs or config".into(),
        ));
    }
    let args = v.constructor_args.clone().unwrap_or_default();
    for a in &args {
        if let Value::Object(m) = a {
            if m.len() == 1 && (m.contains_key("ref") || m.contains_key("reflist")) {
                return Err(at(
                    "constructorArgs: ref/reflist (references to components) are not supported"
                        .into(),
                ));
            }
        }
    }
    let shell = match (v.class_name.as_str(), spout) {
        (SHELL_SPOUT, true) | (SHELL_BOLT, false) => true,
        (SHELL_SPOUT, false) => return Err(at(format!("{SHELL_SPOUT} is a spout, among bolts"))),
        (SHELL_BOLT, true) => return Err(at(format!("{SHELL_BOLT} is a bolt, among spouts"))),
        _ => false,
    };
    let methods = v.config_methods.clone().unwrap_or_default();
    let kind = if shell {
        let (command, fields) = match args.as_slice() {
            [c] => (c, None),
            [c, f] => (c, Some(f)),
            _ => {
                return Err(at(format!(
                    "constructorArgs: a shell component takes [[command, args...]] or \
                     [[command, args...], [fields...]], found {} arguments",
                    args.len()
                )))
            }
        };
        let command = strings(command, "constructorArgs: the command").map_err(at)?;
        if command.is_empty() {
            return Err(at("constructorArgs: the command is empty".into()));
        }
        let mut outputs = match fields {
            Some(f) => {
                Outputs::fields(strings(f, "constructorArgs: the output fields").map_err(at)?)
            }
            None => Outputs::none(),
        };
        for m in &methods {
            let margs = m.args.clone().unwrap_or_default();
            match (m.name.as_str(), margs.as_slice()) {
                ("setDefaultStream", [f]) => {
                    outputs =
                        outputs.stream(DEFAULT_STREAM, strings(f, "setDefaultStream").map_err(at)?);
                }
                ("setNamedStream", [Value::String(name), f]) => {
                    outputs = outputs.stream(name, strings(f, "setNamedStream").map_err(at)?);
                }
                ("addComponentConfig", [Value::String(k), value]) => {
                    config.insert(k.clone(), value.clone());
                }
                (name, _) => {
                    return Err(at(format!(
                        "configMethods: {name}({}) is not one of the shell wrapper's \
                         setDefaultStream([fields]), setNamedStream(name, [fields]), \
                         addComponentConfig(key, value)",
                        margs
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
        ComponentKind::Shell { command, outputs }
    } else {
        if let Some(m) = methods.first() {
            return Err(at(format!(
                "configMethods ({}) cannot be called on a Rust component ({}); pass values in \
                 constructorArgs or config",
                m.name, v.class_name
            )));
        }
        ComponentKind::Registered {
            class: v.class_name.clone(),
            args,
        }
    };
    Ok(ComponentDef {
        id: v.id,
        kind,
        parallelism,
        config,
    })
}

fn stream(s: RawStream) -> Result<StreamDef, String> {
    let at = |m: String| format!("streams: {} -> {}: {m}", s.from, s.to);
    let g = &s.grouping;
    let args = || g.args.clone().unwrap_or_default();
    let grouping = match g.r#type {
        GroupingType::Shuffle => Grouping::Shuffle,
        GroupingType::Fields => {
            let fields = args();
            if fields.is_empty() {
                return Err(at("a FIELDS grouping needs the fields in `args`".into()));
            }
            Grouping::Fields(fields)
        }
        GroupingType::All => Grouping::All,
        GroupingType::Global => Grouping::Global,
        GroupingType::LocalOrShuffle => Grouping::LocalOrShuffle,
        GroupingType::Direct => Grouping::Direct,
        GroupingType::None => Grouping::None,
        GroupingType::Custom => {
            return Err(at(
                "CUSTOM groupings (a JVM class) are not supported; use SHUFFLE, FIELDS, ALL, \
                 GLOBAL, LOCAL_OR_SHUFFLE, DIRECT or NONE"
                    .into(),
            ))
        }
    };
    if g.custom_class.is_some() && g.r#type != GroupingType::Custom {
        return Err(at("customClass is only for a CUSTOM grouping".into()));
    }
    Ok(StreamDef {
        name: s.name.clone(),
        from: s.from.clone(),
        to: s.to.clone(),
        stream: g
            .stream_id
            .clone()
            .unwrap_or_else(|| DEFAULT_STREAM.to_string()),
        grouping,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
