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
