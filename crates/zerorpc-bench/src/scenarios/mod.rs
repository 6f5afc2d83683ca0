//! The benchmarks beside `compare`, one module each (`zerorpc-bench hub`,
//! `gateway`, `tracing`, `security`, `deadline`): each measures one
//! feature against the same calls without it, in one run; and `rows`,
//! `compare`'s Rust-side call rows taken in alternating rounds.

pub(crate) mod deadline;
pub(crate) mod gateway;
pub(crate) mod hub;
pub(crate) mod rows;
pub(crate) mod security;
pub(crate) mod tracing;
