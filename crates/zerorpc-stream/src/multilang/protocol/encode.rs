//! Writing the protocol's messages in a serializer's framing: the messages
//! sent per tuple in JSON by hand, the others through serde.

use serde::Serialize;
use serde_json::Map;

use super::super::codec::Serializer;
use super::super::id::TupleId;
use super::super::json_out;
use super::{FromComponent, ToComponent};
use crate::tuple::{TaskId, Value};

impl ToComponent {
    /// Writes the message in a serializer's framing.
    pub fn encode(&self, serializer: Serializer, out: &mut Vec<u8>) {
        #[derive(Serialize)]
        struct Shake<'a> {
            conf: &'a Map<String, Value>,
            #[serde(rename = "pidDir")]
            pid_dir: &'a str,
            context: &'a Map<String, Value>,
        }
        #[derive(Serialize)]
        struct Command<'a> {
            command: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a Value>,
        }
        let cmd = |command, id| Command { command, id };
        match self {
            ToComponent::Handshake(h) => write(
                &Shake {
                    conf: &h.conf,
                    pid_dir: &h.pid_dir,
                    context: &h.context,
                },
                serializer,
                out,
            ),
            ToComponent::Next => write(&cmd("next", None), serializer, out),
            ToComponent::Ack(id) => write(&cmd("ack", Some(id)), serializer, out),
            ToComponent::Fail(id) => write(&cmd("fail", Some(id)), serializer, out),
            ToComponent::Activate => write(&cmd("activate", None), serializer, out),
            ToComponent::Deactivate => write(&cmd("deactivate", None), serializer, out),
            ToComponent::Tuple(t) => TupleOut {
                id: &t.id,
                comp: &t.comp,
                stream: &t.stream,
                task: t.task,
                tuple: &t.tuple,
            }
            .write(serializer, out),
            ToComponent::TaskIds(ids) => write(ids, serializer, out),
        }
    }

    /// As the protocol's JSON value.
    pub fn to_value(&self) -> Value {
        let mut bytes = Vec::new();
        self.encode(Serializer::Json, &mut bytes);
        serde_json::from_slice(&bytes[..bytes.len() - 5]).unwrap_or(Value::Null)
    }
}

/// A tuple to a bolt, borrowed (what the runner writes per tuple).
#[derive(Serialize)]
pub(crate) struct TupleOut<'a> {
    pub(crate) id: &'a TupleId,
    pub(crate) comp: &'a str,
    pub(crate) stream: &'a str,
    pub(crate) task: TaskId,
    pub(crate) tuple: &'a [Value],
}

impl TupleOut<'_> {
    /// Writes it in a serializer's framing (JSON by hand: see
    /// [`crate::multilang::json_out`]).
    pub(crate) fn write(&self, serializer: Serializer, out: &mut Vec<u8>) {
        if serializer != Serializer::Json {
            return write(self, serializer, out);
        }
        out.extend_from_slice(b"{\"id\":");
        json_out::id(out, self.id);
        out.extend_from_slice(b",\"comp\":");
        json_out::string(out, self.comp);
        out.extend_from_slice(b",\"stream\":");
        json_out::string(out, self.stream);
        out.extend_from_slice(b",\"task\":");
        json_out::task(out, self.task);
        out.extend_from_slice(b",\"tuple\":");
        json_out::values(out, self.tuple);
        out.push(b'}');
        json_out::end(out);
    }
}

/// Writes any serializable message in a serializer's framing (msgpack
/// structs as maps with their field names, as pystorm expects).
pub(crate) fn write<T: Serialize + ?Sized>(msg: &T, serializer: Serializer, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail; our messages always serialize.
    match serializer {
        Serializer::Json => {
            let _ = serde_json::to_writer(&mut *out, msg);
            out.extend_from_slice(b"\nend\n");
        }
        Serializer::Msgpack => {
            let _ = rmp_serde::encode::write_named(out, msg);
        }
    }
}

impl FromComponent {
    /// The messages sent per tuple, in JSON, by hand (see
    /// [`crate::multilang::json_out`]); `false` for the others.
    fn encode_json_fast(&self, out: &mut Vec<u8>) -> bool {
        match self {
            FromComponent::Emit(e) => {
                out.extend_from_slice(b"{\"command\":\"emit\"");
                if let Some(stream) = &e.stream {
                    out.extend_from_slice(b",\"stream\":");
                    json_out::string(out, stream);
                }
                if !e.anchors.is_empty() {
                    out.extend_from_slice(b",\"anchors\":[");
                    for (i, a) in e.anchors.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        json_out::id(out, a);
                    }
                    out.push(b']');
                }
                if let Some(id) = &e.id {
                    out.extend_from_slice(b",\"id\":");
                    json_out::value(out, id);
                }
                if let Some(task) = e.task {
                    out.extend_from_slice(b",\"task\":");
                    json_out::task(out, task);
                }
                out.extend_from_slice(if e.need_task_ids {
                    b",\"need_task_ids\":true,\"tuple\":"
                } else {
                    b",\"need_task_ids\":false,\"tuple\":"
                });
                json_out::values(out, &e.tuple);
                out.push(b'}');
            }
            FromComponent::Ack(id) | FromComponent::Fail(id) => {
                out.extend_from_slice(if matches!(self, FromComponent::Ack(_)) {
                    b"{\"command\":\"ack\",\"id\":"
                } else {
                    b"{\"command\":\"fail\",\"id\":"
                });
                json_out::id(out, id);
                out.push(b'}');
            }
            FromComponent::Sync => out.extend_from_slice(b"{\"command\":\"sync\"}"),
            _ => return false,
        }
        json_out::end(out);
        true
    }

    /// Writes the message in a serializer's framing.
    pub fn encode(&self, serializer: Serializer, out: &mut Vec<u8>) {
        if serializer == Serializer::Json && self.encode_json_fast(out) {
            return;
        }
        self.encode_serde(serializer, out)
    }

    /// [`FromComponent::encode`] through serde, for every message.
    pub(in crate::multilang) fn encode_serde(&self, serializer: Serializer, out: &mut Vec<u8>) {
        #[derive(Serialize)]
        struct EmitOut<'a> {
            command: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            stream: Option<&'a str>,
            #[serde(skip_serializing_if = "<[TupleId]>::is_empty")]
            anchors: &'a [TupleId],
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            task: Option<TaskId>,
            need_task_ids: bool,
            tuple: &'a [Value],
        }
        #[derive(Serialize)]
        struct WithId<'a> {
            command: &'a str,
            id: &'a TupleId,
        }
        #[derive(Serialize)]
        struct Command<'a> {
            command: &'a str,
        }
        #[derive(Serialize)]
        struct Pid {
            pid: u32,
        }
        #[derive(Serialize)]
        struct Log<'a> {
            command: &'a str,
            msg: &'a str,
            level: u8,
        }
        #[derive(Serialize)]
        struct Msg<'a> {
            command: &'a str,
            msg: &'a str,
        }
        #[derive(Serialize)]
        struct Metrics<'a> {
            command: &'a str,
            name: &'a str,
            params: &'a Value,
        }
        match self {
            FromComponent::Pid(pid) => write(&Pid { pid: *pid }, serializer, out),
            FromComponent::Emit(e) => write(
                &EmitOut {
                    command: "emit",
                    stream: e.stream.as_deref(),
                    anchors: &e.anchors,
                    id: e.id.as_ref(),
                    task: e.task,
                    need_task_ids: e.need_task_ids,
                    tuple: &e.tuple,
                },
                serializer,
                out,
            ),
            FromComponent::Ack(id) => write(&WithId { command: "ack", id }, serializer, out),
            FromComponent::Fail(id) => write(
                &WithId {
                    command: "fail",
                    id,
                },
                serializer,
                out,
            ),
            FromComponent::Sync => write(&Command { command: "sync" }, serializer, out),
            FromComponent::Log { msg, level } => write(
                &Log {
                    command: "log",
                    msg,
                    level: *level,
                },
                serializer,
                out,
            ),
            FromComponent::Error(msg) => write(
                &Msg {
                    command: "error",
                    msg,
                },
                serializer,
                out,
            ),
            FromComponent::Metrics { name, params } => write(
                &Metrics {
                    command: "metrics",
                    name,
                    params,
                },
                serializer,
                out,
            ),
        }
    }

    /// As the protocol's JSON value.
    pub fn to_value(&self) -> Value {
        let mut bytes = Vec::new();
        self.encode(Serializer::Json, &mut bytes);
        serde_json::from_slice(&bytes[..bytes.len() - 5]).unwrap_or(Value::Null)
    }
}
