//! The protocol's messages, as values (no framing here).

mod encode;

use super::id::{TupleId, WireId};
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
    pub id: TupleId,
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
    pub anchors: Vec<TupleId>,
    /// Spout: the message id that makes it tracked.
    pub id: Option<Value>,
    /// Direct emit: the target task.
    pub task: Option<TaskId>,
    /// Whether the component waits for the receiving task ids (Storm's
    /// default is true when the key is absent; never answered for a direct
    /// emit).
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
    Ack(TupleId),
    /// Bolt: `{"command": "fail", "id": "..."}`.
    Fail(TupleId),
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

use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Map;
use smallvec::SmallVec;

use super::codec::{Serializer, Wire};
use crate::error::Error;

pub(crate) use encode::{write, TupleOut};

/// Every key a protocol message may carry, in either direction: messages
/// are decoded into this (no map of values is built) and then checked.
/// The keys of the messages sent per tuple (command, ids, anchors) are
/// read without allocating.
#[derive(Deserialize, Default, Debug, PartialEq)]
#[serde(default)]
pub(crate) struct RawMessage {
    pub(super) command: Option<Command>,
    pub(super) id: Option<WireId>,
    pid: Option<u64>,
    pub(super) stream: Option<String>,
    pub(super) anchors: Option<SmallVec<[WireId; 2]>>,
    pub(super) task: Option<i64>,
    pub(super) need_task_ids: Option<bool>,
    pub(super) tuple: Option<Vec<Value>>,
    msg: Option<Value>,
    level: Option<Value>,
    name: Option<String>,
    params: Option<Value>,
    pub(super) comp: Option<String>,
    conf: Option<Map<String, Value>>,
    #[serde(rename = "pidDir")]
    pid_dir: Option<String>,
    context: Option<Map<String, Value>>,
}

/// A message's `command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    Next,
    Ack,
    Fail,
    Activate,
    Deactivate,
    Emit,
    Sync,
    Log,
    Error,
    Metrics,
    Unknown(String),
}

impl Command {
    pub(super) fn from_name(name: &str) -> Command {
        match name {
            "next" => Command::Next,
            "ack" => Command::Ack,
            "fail" => Command::Fail,
            "activate" => Command::Activate,
            "deactivate" => Command::Deactivate,
            "emit" => Command::Emit,
            "sync" => Command::Sync,
            "log" => Command::Log,
            "error" => Command::Error,
            "metrics" => Command::Metrics,
            other => Command::Unknown(other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Command, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command name")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Command, E> {
                Ok(Command::from_name(s))
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Command, E> {
                self.visit_str(std::str::from_utf8(b).unwrap_or(""))
            }
        }
        d.deserialize_str(V)
    }
}

/// What a worker sends: a message, or a bare list (task ids).
#[derive(Debug, PartialEq)]
pub(crate) enum WorkerWire {
    Ids(Vec<i64>),
    Message(Box<RawMessage>),
}

impl Wire for WorkerWire {
    fn scan(bytes: &[u8], serializer: Serializer) -> Option<WorkerWire> {
        match serializer {
            Serializer::Json => super::scan::json(bytes),
            Serializer::Msgpack => super::scan::msgpack(bytes),
        }
    }
}

impl<'de> Deserialize<'de> for WorkerWire {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WorkerWire, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WorkerWire;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a protocol message (a map) or a list of task ids")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WorkerWire, A::Error> {
                Vec::<i64>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(WorkerWire::Ids)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WorkerWire, A::Error> {
                RawMessage::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|m| WorkerWire::Message(Box::new(m)))
            }
        }
        d.deserialize_any(V)
    }
}

fn bad(what: &str, v: &dyn fmt::Debug) -> Error {
    let mut text = format!("{v:?}");
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

fn text_of(v: Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn task_id(t: i64) -> Result<TaskId, Error> {
    TaskId::try_from(t).map_err(|_| bad("a task id out of range", &t))
}

impl ToComponent {
    pub(crate) fn from_wire(w: WorkerWire) -> Result<ToComponent, Error> {
        let m = match w {
            WorkerWire::Ids(ids) => {
                return ids
                    .into_iter()
                    .map(task_id)
                    .collect::<Result<Vec<_>, _>>()
                    .map(ToComponent::TaskIds)
            }
            WorkerWire::Message(m) => *m,
        };
        if let Some(pid_dir) = m.pid_dir {
            return Ok(ToComponent::Handshake(Handshake {
                conf: m.conf.unwrap_or_default(),
                pid_dir,
                context: m.context.unwrap_or_default(),
            }));
        }
        if let Some(cmd) = m.command {
            let id = m.id.map(WireId::into_value).unwrap_or(Value::Null);
            return match cmd {
                Command::Next => Ok(ToComponent::Next),
                Command::Ack => Ok(ToComponent::Ack(id)),
                Command::Fail => Ok(ToComponent::Fail(id)),
                Command::Activate => Ok(ToComponent::Activate),
                Command::Deactivate => Ok(ToComponent::Deactivate),
                Command::Unknown(other) => Err(bad("an unknown command", &other)),
                other => Err(bad("a command a component sends, to a component", &other)),
            };
        }
        if let Some(tuple) = m.tuple {
            let (Some(id), Some(stream), Some(task)) =
                (m.id.as_ref().and_then(WireId::tuple_id), m.stream, m.task)
            else {
                return Err(Error::Protocol("a tuple without id, stream or task".into()));
            };
            return Ok(ToComponent::Tuple(InputTuple {
                id,
                // Storm's heartbeat tuples carry a null component.
                comp: m.comp.unwrap_or_default(),
                stream,
                task: task_id(task)?,
                tuple,
            }));
        }
        Err(Error::Protocol(
            "a message that is no handshake, command or tuple".into(),
        ))
    }

    /// Reads a message a worker sent, as a JSON value.
    pub fn from_value(v: Value) -> Result<ToComponent, Error> {
        let w = serde_json::from_value::<WorkerWire>(v)
            .map_err(|e| Error::Protocol(format!("a malformed message: {e}")))?;
        ToComponent::from_wire(w)
    }
}

impl FromComponent {
    pub(crate) fn from_wire(w: WorkerWire) -> Result<FromComponent, Error> {
        let m = match w {
            WorkerWire::Message(m) => *m,
            WorkerWire::Ids(ids) => return Err(bad("a list from a component", &ids)),
        };
        let Some(cmd) = m.command else {
            if let Some(pid) = m.pid {
                let pid = u32::try_from(pid).map_err(|_| bad("a pid out of range", &pid))?;
                return Ok(FromComponent::Pid(pid));
            }
            return Err(Error::Protocol("a message without a command".into()));
        };
        match cmd {
            Command::Emit => {
                let tuple = m
                    .tuple
                    .ok_or_else(|| Error::Protocol("an emit without a tuple".into()))?;
                let anchors = m
                    .anchors
                    .unwrap_or_default()
                    .iter()
                    .map(|a| {
                        a.tuple_id()
                            .ok_or_else(|| bad("an anchor that is not an id", a))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(FromComponent::Emit(Emit {
                    stream: m.stream,
                    tuple,
                    anchors,
                    id: m.id.map(WireId::into_value).filter(|v| !v.is_null()),
                    task: m.task.map(task_id).transpose()?,
                    need_task_ids: m.need_task_ids.unwrap_or(true),
                }))
            }
            Command::Ack | Command::Fail => {
                let id =
                    m.id.as_ref().and_then(WireId::tuple_id).ok_or_else(|| {
                        Error::Protocol("an ack or fail without a tuple id".into())
                    })?;
                Ok(if cmd == Command::Ack {
                    FromComponent::Ack(id)
                } else {
                    FromComponent::Fail(id)
                })
            }
            Command::Sync => Ok(FromComponent::Sync),
            Command::Log => {
                let level = match &m.level {
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
                    msg: text_of(m.msg),
                    level,
                })
            }
            Command::Error => Ok(FromComponent::Error(text_of(m.msg))),
            Command::Metrics => Ok(FromComponent::Metrics {
                name: m.name.unwrap_or_default(),
                params: m.params.unwrap_or(Value::Null),
            }),
            Command::Unknown(other) => Err(bad("an unknown command", &other)),
            other => Err(bad("a command a worker sends, from a component", &other)),
        }
    }

    /// Reads a message a component sent, as a JSON value.
    pub fn from_value(v: Value) -> Result<FromComponent, Error> {
        let w = serde_json::from_value::<WorkerWire>(v)
            .map_err(|e| Error::Protocol(format!("a malformed message: {e}")))?;
        FromComponent::from_wire(w)
    }
}
