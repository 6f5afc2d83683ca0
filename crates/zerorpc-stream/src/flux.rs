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

mod build;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;
use crate::topology::Topology;
use crate::tuple::Value;

use build::build;

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

#[cfg(test)]
mod tests;
