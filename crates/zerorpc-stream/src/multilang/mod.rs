//! Storm's multi-lang protocol: messages between a worker (ShellSpout,
//! ShellBolt, or our runner) and a component subprocess, their framing in
//! both serializers, and [`run`], which serves a Rust spout or bolt as a
//! multi-lang program.
//!
//! Framing: JSON messages are followed by a line `end`; msgpack messages
//! are bare msgpack objects back to back.

pub(crate) mod codec;
mod component;
pub(crate) mod id;
mod json_out;
pub(crate) mod protocol;
mod scan;

pub use codec::{encode, Decoder, Frame, Serializer, DEFAULT_MAX_MESSAGE};
pub use component::{run, run_bolt, run_spout, serve_bolt, serve_spout, RunError};
pub use id::TupleId;
pub use protocol::{Emit, FromComponent, Handshake, InputTuple, ToComponent};
#[doc(hidden)]
pub use scan::check_shortcut;
