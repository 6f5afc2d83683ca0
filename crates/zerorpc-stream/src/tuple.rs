//! Tuples and the identifiers that travel with them.

use std::cell::Cell;
use std::sync::Arc;

use smallvec::SmallVec;

/// A tuple's value: anything JSON (and msgpack, by conversion) can carry.
pub type Value = serde_json::Value;

/// A spout's message id, given back to it by `ack`/`fail`. Storm allows any
/// JSON value; use a number for speed.
pub type MsgId = Value;

/// A task's id: unique across the topology, as Storm numbers them (from 1;
/// Storm's system task is -1).
pub type TaskId = i32;

/// The stream a component emits on when it names none.
pub const DEFAULT_STREAM: &str = "default";

/// One (spout tree root, edge id) pair: the tuple belongs to the tree `root`
/// and is the edge `edge` of it. A tuple anchored to several trees has one
/// per tree.
pub(crate) type Anchor = (u64, u64);

/// A tuple as a bolt receives it: values with the fields of the stream it
/// came on, and where it came from.
#[derive(Debug, Clone)]
pub struct Tuple {
    /// Storm's `ackVal`: the XOR of the edge ids of the tuples emitted
    /// anchored to this one, sent to the acker with its own edge when it is
    /// acked. A clone carries its own copy: anchor to and ack the same
    /// value.
    pub(crate) ack_val: Cell<u64>,
    /// Set once the tuple is acked or failed (a second ack is an error the
    /// runner reports, not a corruption of the tree).
    pub(crate) done: Cell<bool>,
    /// The tuple's id over multi-lang (Storm's), when it came that way.
    pub(crate) ml_id: Option<crate::multilang::TupleId>,
    /// Trees this tuple belongs to.
    pub(crate) anchors: SmallVec<[Anchor; 1]>,
    pub(crate) component: Arc<str>,
    pub(crate) stream: Arc<str>,
    pub(crate) task: TaskId,
    pub(crate) fields: Arc<[String]>,
    /// The values, in the order of the stream's declared fields.
    pub values: Vec<Value>,
}

impl Tuple {
    /// Builds a tuple that belongs to no tree (for tests of components, and
    /// for tuples that arrive over multi-lang, whose trees Storm tracks).
    pub fn new(
        component: &str,
        stream: &str,
        task: TaskId,
        fields: &[&str],
        values: Vec<Value>,
    ) -> Tuple {
        Tuple {
            ack_val: Cell::new(0),
            done: Cell::new(false),
            ml_id: None,
            anchors: SmallVec::new(),
            component: component.into(),
            stream: stream.into(),
            task,
            fields: fields.iter().map(|f| f.to_string()).collect(),
            values,
        }
    }

    /// The component that emitted it (`__system` for ticks).
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The stream it came on.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The task that emitted it.
    pub fn source_task(&self) -> TaskId {
        self.task
    }

    /// The stream's declared field names.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The value of a field by name.
    pub fn get(&self, field: &str) -> Option<&Value> {
        let i = self.fields.iter().position(|f| f == field)?;
        self.values.get(i)
    }

    /// A tick tuple (stream `__tick` from `__system`).
    pub fn is_tick(&self) -> bool {
        &*self.component == "__system" && &*self.stream == "__tick"
    }

    /// A multi-lang heartbeat tuple (stream `__heartbeat`, task -1).
    pub fn is_heartbeat(&self) -> bool {
        self.task == -1 && &*self.stream == "__heartbeat"
    }
}
