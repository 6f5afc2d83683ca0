//! A Rust spout or bolt as a multi-lang program (what Storm's ShellSpout or
//! ShellBolt runs): handshake, pid file, the command loop on stdin/stdout.

use crate::component::{Bolt, Spout};
use crate::error::Error;

/// Why a multi-lang program stopped.
pub type RunError = Error;

/// Serves a bolt on stdin/stdout until the worker closes stdin.
pub fn run_bolt<B: Bolt>(_bolt: B) -> Result<(), RunError> {
    todo!("multilang helper")
}

/// Serves a spout on stdin/stdout until the worker closes stdin.
pub fn run_spout<S: Spout>(_spout: S) -> Result<(), RunError> {
    todo!("multilang helper")
}

/// Serves a bolt (the common case): `zerorpc_stream::multilang::run(MyBolt)`.
pub fn run<B: Bolt>(bolt: B) -> Result<(), RunError> {
    run_bolt(bolt)
}
