//! The runtime side of a channel, shared by every call's driver (a client
//! call, a client stream, a server call): its deadline kept in its slot of
//! the connection's [`Timers`], the remote's events fed in at the time
//! they arrive, and what the channel queued flushed to its connection
//! through an [`Outlet`].
//!
//! What differs between the sides (what a client does with a reply, how a
//! server runs its handler) stays with them; the timing, timeouts and
//! flushing are here, once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};

use tokio::time::Instant;

use super::timers::{Timers, FIRED, NO_DEADLINE};
use super::{Channel, ChannelError};
use crate::event::{Event, Received};

/// Where a channel's events go: its connection's send queue, with room for
/// one event to wait outside it.
pub(crate) trait Outlet {
    type Error;
    /// `Ready(Ok)` once no event waits for room; `Pending` while one does.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>>;
    /// Queues `ch`'s next event (written into its message by
    /// [`Channel::transmit_into`]), or keeps it to wait for room (see
    /// `poll_ready`). Called only while `ch` has one.
    fn start_send(&mut self, ch: &mut Channel) -> Result<(), Self::Error>;
}

/// A [`Channel`], driven.
pub(crate) struct Driver {
    pub(crate) ch: Channel,
}

impl Driver {
    pub(crate) fn new(ch: Channel) -> Self {
        Driver { ch }
    }

    /// Feeds an event the remote sent: the application's event, if it is
    /// one (control events are the channel's own).
    pub(crate) fn on_event(&mut self, ev: Event) -> Result<Option<Event>, ChannelError> {
        self.ch.on_event(ev, Instant::now().into_std())
    }

    /// [`Driver::on_event`] for a reply our client decoded as such.
    pub(crate) fn on_received(&mut self, r: Received) -> Result<Option<Received>, ChannelError> {
        self.ch.on_received(r, Instant::now().into_std())
    }

    /// `Ready` when the channel's deadline (a heartbeat, the loss limit, the
    /// first-reply timeout or the call's deadline) came and the channel
    /// handled it: `Err` when the call fails of it. Otherwise keeps the
    /// deadline in `slot` (its mailbox's) for `timers`, which wake the
    /// task through the mailbox's waker when it comes: the caller polls
    /// its mailbox in the same poll, before this. A server call answered
    /// in its first poll never comes here, and its slot stays unset.
    pub(crate) fn poll_timer(
        &mut self,
        slot: &AtomicU64,
        timers: &Timers,
    ) -> Poll<Result<(), ChannelError>> {
        let held = slot.load(Ordering::SeqCst);
        let next = self.ch.timeout();
        // A call under a deadline reads the clock itself. Its deadline is
        // the one the call it runs in has (a server call's handler calling
        // on): that server call's timer, on another loop, may come first,
        // and it polls its handler once more before cancelling it for the
        // deadline (see `ServerCall::poll`). In that poll the inner call
        // must see the deadline gone too, so the handler hears of it.
        let read =
            (held != FIRED && self.ch.deadline().is_some()).then(|| Instant::now().into_std());
        let due = held == FIRED || matches!((next, read), (Some(t), Some(now)) if t <= now);
        if due {
            let now = read.unwrap_or_else(|| Instant::now().into_std());
            let r = self.ch.handle_timeout(now);
            // (the next deadline stored before anything else can move
            // it: the mark is not seen twice)
            timers.set(slot, self.slot_time(timers));
            return Poll::Ready(r);
        }
        let at = next.map_or(NO_DEADLINE, |t| timers.slot_time(t));
        if at != held {
            timers.set(slot, at);
        }
        Poll::Pending
    }

    /// The channel's next deadline as a slot's value.
    fn slot_time(&self, timers: &Timers) -> u64 {
        self.ch
            .timeout()
            .map_or(NO_DEADLINE, |t| timers.slot_time(t))
    }

    /// Sends what the channel queued, in order: `Pending` while an event
    /// waits for room (at most one waits outside the connection's queue).
    pub(crate) fn poll_flush<O: Outlet>(
        &mut self,
        out: &mut O,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), O::Error>> {
        loop {
            ready!(out.poll_ready(cx))?;
            if !self.ch.has_output() {
                return Poll::Ready(Ok(()));
            }
            out.start_send(&mut self.ch)?;
        }
    }
}
