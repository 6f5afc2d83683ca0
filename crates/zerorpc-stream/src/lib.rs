//! Stream processing in the Apache Storm model, compatible with Storm's
//! multi-lang protocol in both directions, with no JVM.
//!
//! What this crate owns:
//! - the component model: [`Spout`] and [`Bolt`] traits (and
//!   [`BatchingBolt`]), [`Tuple`]s with declared output fields per stream
//!   ([`Outputs`]), collectors to emit, ack and fail;
//! - topologies: Storm Flux YAML ([`flux`]) and a Rust builder
//!   ([`TopologyBuilder`]), Rust components named through a [`Registry`],
//!   shell (multi-lang) components run as subprocesses;
//! - the local runner ([`runner`]): one task per Rust component instance,
//!   one subprocess per shell instance, Storm's groupings, the XOR acker with
//!   message timeouts, `max.spout.pending` and replay, bounded queues,
//!   statistics per component;
//! - [`multilang`]: the protocol's messages and framing (JSON and msgpack),
//!   and [`multilang::run`], which makes a Rust spout or bolt a multi-lang
//!   program that Storm's ShellSpout/ShellBolt can run;
//! - durable sources (feature `bus`): spouts over the event bus.
//!
//! Sans-IO where it matters: the acker, the groupings and the multi-lang
//! state machines take an explicit `now` and bytes in, and give bytes and
//! actions out; the tokio layer in [`runner`] is thin.

pub mod app;
mod component;
mod error;
pub mod flux;
pub mod multilang;
pub mod runner;
mod stats;
mod topology;
mod tuple;

pub(crate) mod acker;
pub(crate) mod router;

#[cfg(feature = "bus")]
pub mod sources;

pub use component::{
    Batched, BatchingBolt, Bolt, BoltCollector, BoltSink, Outputs, Spout, SpoutCollector,
    SpoutSink, SpoutWaker, StreamDecl, TaskContext,
};
pub use error::{BoxError, Error};
pub use stats::{render_table, ComponentStats, RunStats, TreeStats};
pub use topology::{
    ComponentDef, ComponentKind, Grouping, Registry, StreamDef, Topology, TopologyBuilder,
};
pub use tuple::{MsgId, TaskId, Tuple, Value, DEFAULT_STREAM};
