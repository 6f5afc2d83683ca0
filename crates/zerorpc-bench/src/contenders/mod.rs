//! The systems `compare` measures beside ours, one module each; every one
//! runs the same workloads (see `call_workloads` in the crate root) and
//! reports a `Row`.

pub(crate) mod libzmq;
pub(crate) mod python;
pub(crate) mod tarpc;
pub(crate) mod tcp;
pub(crate) mod tonic;
