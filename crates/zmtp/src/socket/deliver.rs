//! Delivery on the connection's own task: a layer above (an RPC server,
//! a client routing replies to calls) takes each connection's messages
//! where they are decoded, instead of from the socket's shared inbound
//! queue. That saves a task hand-off per message and lets connections be
//! served in parallel, each by its own reader (tarpc's per-connection
//! dispatch, on a ZeroMQ socket).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::Context;

use super::Shared;
use crate::message::Message;

/// Takes a socket's incoming messages on the reader task of the
/// connection they arrived on (see [`Delivery`]).
pub trait Deliver: Send + Sync + 'static {
    /// The messages one read of one connection decoded, in order (a
    /// ROUTER's with the routing id as their first frame, as `recv` gives
    /// them). Runs on that connection's reader task, which reads nothing
    /// more until it returns: it must not block, and work that waits
    /// belongs in a task of its own. `cx` is the reader's context (a
    /// future polled once here wakes the reader, harmlessly, until it is
    /// moved to a task of its own). What it leaves in `batch` goes to the
    /// socket's inbound queue, for `recv`.
    fn deliver(&self, batch: &mut VecDeque<Message>, cx: &mut Context<'_>);
}

/// While this lives, the socket's connections hand what they receive to
/// its [`Deliver`]; dropping it sends messages to the inbound queue
/// (`recv`) again. Messages already queued stay there.
#[must_use = "delivery stops when the Delivery is dropped"]
pub struct Delivery {
    shared: Arc<Shared>,
    id: u64,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("id", &self.id).finish()
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let mut slot = self.shared.delivery.write();
        // (a later Delivery replaced this one: leave it)
        if slot.as_ref().is_some_and(|(id, _)| *id == self.id) {
            *slot = None;
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The socket's current [`Deliver`], if any.
#[derive(Default)]
pub(crate) struct Slot(RwLock<Option<(u64, Arc<dyn Deliver>)>>);

impl Slot {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<(u64, Arc<dyn Deliver>)>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The current one (a reader takes it once per read).
    pub(crate) fn current(&self) -> Option<Arc<dyn Deliver>> {
        let slot = self.0.read().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|(_, d)| d.clone())
    }
}

/// Installs `d` as the socket's delivery (replacing any other).
pub(super) fn install(shared: &Arc<Shared>, d: Arc<dyn Deliver>) -> Delivery {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    *shared.delivery.write() = Some((id, d));
    Delivery {
        shared: shared.clone(),
        id,
    }
}
