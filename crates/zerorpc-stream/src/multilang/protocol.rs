//! The protocol's messages, as values (no framing here).

use crate::tuple::{TaskId, Value};

/// The first message to a component.
#[derive(Debug, Clone, PartialEq)]
pub struct Handshake {
    /// The topology configuration.
    pub conf: serde_json::Map<String, Value>,
    /// Where the component writes an empty file named after its pid.
    pub pid_dir: String,
    /// Storm's topology context: `taskid`, `componentid`,
    /// `task->component`, and whatever else the worker sends.
    pub context: serde_json::Map<String, Value>,
}

/// A tuple to a bolt.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTuple {
    /// Storm's tuple id (a string; "-1" for heartbeats).
    pub id: String,
    /// Emitting component (`__system` for ticks and heartbeats).
    pub comp: String,
    /// Stream (`__tick`, `__heartbeat`, or a declared stream).
    pub stream: String,
    /// Emitting task (-1 for heartbeats).
    pub task: TaskId,
    /// Values.
    pub tuple: Vec<Value>,
}

/// Worker → component.
#[derive(Debug, Clone, PartialEq)]
pub enum ToComponent {
    /// `{conf, pidDir, context}`.
    Handshake(Handshake),
    /// Spout: `{"command": "next"}`.
    Next,
    /// Spout: `{"command": "ack", "id": ...}`.
    Ack(Value),
    /// Spout: `{"command": "fail", "id": ...}`.
    Fail(Value),
    /// Spout: `{"command": "activate"}`.
    Activate,
    /// Spout: `{"command": "deactivate"}`.
    Deactivate,
    /// Bolt: a tuple (ticks and heartbeats included).
    Tuple(InputTuple),
    /// The answer to an emit with `need_task_ids`: a bare list.
    TaskIds(Vec<TaskId>),
}

/// An emit from a component.
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    /// Stream (`None`: default).
    pub stream: Option<String>,
    /// Values.
    pub tuple: Vec<Value>,
    /// Bolt: ids of the input tuples it is anchored to.
    pub anchors: Vec<String>,
    /// Spout: the message id that makes it tracked.
    pub id: Option<Value>,
    /// Direct emit: the target task.
    pub task: Option<TaskId>,
    /// Whether the component waits for the receiving task ids (Storm's
    /// default is true when the key is absent).
    pub need_task_ids: bool,
}

/// Component → worker.
#[derive(Debug, Clone, PartialEq)]
pub enum FromComponent {
    /// Handshake answer `{"pid": N}`.
    Pid(u32),
    /// `{"command": "emit", ...}`.
    Emit(Emit),
    /// Bolt: `{"command": "ack", "id": "..."}`.
    Ack(String),
    /// Bolt: `{"command": "fail", "id": "..."}`.
    Fail(String),
    /// `{"command": "sync"}`: a spout finished answering, or a bolt
    /// answered a heartbeat.
    Sync,
    /// `{"command": "log", "msg": ..., "level": 0..4}` (level 2, info,
    /// when absent).
    Log { msg: String, level: u8 },
    /// `{"command": "error", "msg": ...}`.
    Error(String),
    /// `{"command": "metrics", "name": ..., "params": ...}`.
    Metrics { name: String, params: Value },
}

use serde_json::{json, Map};

use crate::error::Error;

fn bad(what: &str, v: &Value) -> Error {
    let mut text = v.to_string();
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    Error::Protocol(format!("{what}: {text}"))
}

/// A tuple or message id as the protocol carries it: Storm's are strings;
/// numbers are taken as their decimal text.
fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn task_of(v: Option<&Value>) -> Option<TaskId> {
    v.and_then(Value::as_i64)
        .and_then(|t| TaskId::try_from(t).ok())
}

impl ToComponent {
    /// As the protocol's JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            ToComponent::Handshake(h) => json!({
                "conf": h.conf,
                "pidDir": h.pid_dir,
                "context": h.context,
            }),
            ToComponent::Next => json!({"command": "next"}),
            ToComponent::Ack(id) => json!({"command": "ack", "id": id}),
            ToComponent::Fail(id) => json!({"command": "fail", "id": id}),
            ToComponent::Activate => json!({"command": "activate"}),
            ToComponent::Deactivate => json!({"command": "deactivate"}),
            ToComponent::Tuple(t) => json!({
                "id": t.id,
                "comp": t.comp,
                "stream": t.stream,
                "task": t.task,
                "tuple": t.tuple,
            }),
            ToComponent::TaskIds(ids) => json!(ids),
        }
    }

    /// Reads a message a worker sent.
    pub fn from_value(v: Value) -> Result<ToComponent, Error> {
        if let Value::Array(ids) = &v {
            return ids
                .iter()
                .map(|t| task_of(Some(t)))
                .collect::<Option<Vec<_>>>()
                .map(ToComponent::TaskIds)
                .ok_or_else(|| bad("task ids that are not all integers", &v));
        }
        let Value::Object(mut m) = v else {
            return Err(bad("a message that is neither an object nor a list", &v));
        };
        if m.contains_key("pidDir") {
            let pid_dir = match m.remove("pidDir") {
                Some(Value::String(s)) => s,
                other => return Err(bad("pidDir is not a string", &other.unwrap_or_default())),
            };
            let obj = |v: Option<Value>| match v {
                Some(Value::Object(o)) => o,
                _ => Map::new(),
            };
            return Ok(ToComponent::Handshake(Handshake {
                conf: obj(m.remove("conf")),
                pid_dir,
                context: obj(m.remove("context")),
            }));
        }
        if let Some(cmd) = m.get("command").and_then(Value::as_str) {
            let id = || m.get("id").cloned().unwrap_or(Value::Null);
            return match cmd {
                "next" => Ok(ToComponent::Next),
                "ack" => Ok(ToComponent::Ack(id())),
                "fail" => Ok(ToComponent::Fail(id())),
                "activate" => Ok(ToComponent::Activate),
                "deactivate" => Ok(ToComponent::Deactivate),
                _ => Err(bad("an unknown command", &Value::Object(m))),
            };
        }
        if m.contains_key("tuple") {
            let (Some(id), Some(comp), Some(stream), Some(task)) = (
                id_text(m.get("id")),
                m.get("comp").and_then(Value::as_str).map(str::to_string),
                m.get("stream").and_then(Value::as_str).map(str::to_string),
                task_of(m.get("task")),
            ) else {
                return Err(bad(
                    "a tuple without id, comp, stream or task",
                    &Value::Object(m),
                ));
            };
            let tuple = match m.remove("tuple") {
                Some(Value::Array(a)) => a,
                other => {
                    return Err(bad(
                        "a tuple whose values are not a list",
                        &other.unwrap_or_default(),
                    ))
                }
            };
            return Ok(ToComponent::Tuple(InputTuple {
                id,
                comp,
                stream,
                task,
                tuple,
            }));
        }
        Err(bad("an unknown message", &Value::Object(m)))
    }
}

impl FromComponent {
    /// As the protocol's JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            FromComponent::Pid(pid) => json!({"pid": pid}),
            FromComponent::Emit(e) => {
                let mut m = Map::new();
                m.insert("command".into(), json!("emit"));
                if let Some(s) = &e.stream {
                    m.insert("stream".into(), json!(s));
                }
                if !e.anchors.is_empty() {
                    m.insert("anchors".into(), json!(e.anchors));
                }
                if let Some(id) = &e.id {
                    m.insert("id".into(), id.clone());
                }
                if let Some(t) = e.task {
                    m.insert("task".into(), json!(t));
                }
                m.insert("need_task_ids".into(), json!(e.need_task_ids));
                m.insert("tuple".into(), Value::Array(e.tuple.clone()));
                Value::Object(m)
            }
            FromComponent::Ack(id) => json!({"command": "ack", "id": id}),
            FromComponent::Fail(id) => json!({"command": "fail", "id": id}),
            FromComponent::Sync => json!({"command": "sync"}),
            FromComponent::Log { msg, level } => {
                json!({"command": "log", "msg": msg, "level": level})
            }
            FromComponent::Error(msg) => json!({"command": "error", "msg": msg}),
            FromComponent::Metrics { name, params } => {
                json!({"command": "metrics", "name": name, "params": params})
            }
        }
    }

    /// Reads a message a component sent.
    pub fn from_value(v: Value) -> Result<FromComponent, Error> {
        let Value::Object(mut m) = v else {
            return Err(bad("a message that is not an object", &v));
        };
        let Some(cmd) = m.get("command").and_then(Value::as_str).map(str::to_string) else {
            if let Some(pid) = m.get("pid").and_then(Value::as_u64) {
                let pid = u32::try_from(pid).map_err(|_| bad("a pid out of range", &json!(pid)))?;
                return Ok(FromComponent::Pid(pid));
            }
            return Err(bad("a message without a command", &Value::Object(m)));
        };
        let text = |m: &Map<String, Value>, k: &str| match m.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        match cmd.as_str() {
            "emit" => {
                let tuple = match m.remove("tuple") {
                    Some(Value::Array(a)) => a,
                    other => {
                        return Err(bad(
                            "an emit whose tuple is not a list",
                            &other.unwrap_or_default(),
                        ))
                    }
                };
                let anchors = match m.get("anchors") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|x| id_text(Some(x)))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| bad("anchors that are not ids", &Value::Array(a.clone())))?,
                    Some(other) => return Err(bad("anchors that are not a list", other)),
                };
                let task = match m.get("task") {
                    None | Some(Value::Null) => None,
                    t => Some(task_of(t).ok_or_else(|| {
                        bad("a task that is not an integer", t.unwrap_or(&Value::Null))
                    })?),
                };
                Ok(FromComponent::Emit(Emit {
                    stream: m.get("stream").and_then(Value::as_str).map(str::to_string),
                    tuple,
                    anchors,
                    id: m.remove("id").filter(|v| !v.is_null()),
                    task,
                    need_task_ids: m
                        .get("need_task_ids")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                }))
            }
            "ack" | "fail" => {
                let id = id_text(m.get("id")).ok_or_else(|| {
                    bad(
                        "an ack or fail without a tuple id",
                        &Value::Object(m.clone()),
                    )
                })?;
                Ok(if cmd == "ack" {
                    FromComponent::Ack(id)
                } else {
                    FromComponent::Fail(id)
                })
            }
            "sync" => Ok(FromComponent::Sync),
            "log" => {
                let level = match m.get("level") {
                    Some(Value::Number(n)) => n.as_u64().unwrap_or(2).min(4) as u8,
                    Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                        "trace" => 0,
                        "debug" => 1,
                        "warn" | "warning" => 3,
                        "error" | "critical" => 4,
                        _ => 2,
                    },
                    _ => 2,
                };
                Ok(FromComponent::Log {
                    msg: text(&m, "msg"),
                    level,
                })
            }
            "error" => Ok(FromComponent::Error(text(&m, "msg"))),
            "metrics" => Ok(FromComponent::Metrics {
                name: text(&m, "name"),
                params: m.remove("params").unwrap_or(Value::Null),
            }),
            _ => Err(bad("an unknown command", &Value::Object(m))),
        }
    }
}
