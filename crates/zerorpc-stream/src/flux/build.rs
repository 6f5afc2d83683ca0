//! Building a [`Topology`] from a read Flux file: its components (shell or
//! Rust), their configuration methods, and its streams' groupings.

use std::path::{Path, PathBuf};

use crate::component::Outputs;
use crate::error::Error;
use crate::topology::{ComponentDef, ComponentKind, Grouping, StreamDef, Topology};
use crate::tuple::{Value, DEFAULT_STREAM};

use super::{FluxFile, GroupingType, RawStream, VertexDef, SHELL_BOLT, SHELL_SPOUT};

pub(super) fn build(file: FluxFile, path: &Path) -> Result<Topology, Error> {
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
