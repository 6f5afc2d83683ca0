//! The runtime side of a channel, shared by every call's driver (a client
//! call, a client stream, a server call): one timer for the channel's
//! life, the remote's events fed in at the time they arrive, and what the
//! channel queued flushed to its connection through an [`Outlet`].
//!
//! What differs between the sides (what a client does with a reply, how a
//! server runs its handler) stays with them; the timing, timeouts and
//! flushing are here, once.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::time::{Instant, Sleep};

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

/// A [`Channel`] and its timer.
pub(crate) struct Driver {
    pub(crate) ch: Channel,
    /// Moved as the channel's next deadline moves (boxed: a `Sleep` is
    /// large, and a driver is moved into its task). Made at the first
    /// [`Driver::poll_timer`]: a server call that answers in its first
    /// poll never arms one.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Driver {
    pub(crate) fn new(ch: Channel) -> Self {
        Driver { ch, timer: None }
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
    /// handled it: `Err` when the call fails of it.
    pub(crate) fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ChannelError>> {
        let deadline = Instant::from_std(self.ch.poll_timeout());
        let timer = match &mut self.timer {
            Some(t) => {
                if t.deadline() != deadline {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(self.ch.handle_timeout(Instant::now().into_std()))
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
