//! [`CancelWatch`]: a connection's cancellation, checked on each of its
//! tasks' wake-ups for the price of a flag.
//!
//! A connection's reader and writer wait for their next read or write
//! and for the connection's cancellation at once, so each wake-up polled
//! the cancellation's future: a lock to read the token's flag, and another
//! to renew the waiter's waker in its list (about 170 instructions, four
//! times per call between a client and a server). The waiter stays
//! registered between polls; while the task's waker is the one it holds,
//! a cancellation wakes the task, and reading the flag is enough.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A cancellation token's future, polled only when the token was cancelled
/// or the task's waker changed (see the module's doc).
pub(crate) struct CancelWatch {
    token: CancellationToken,
    /// (boxed once per connection: it holds a waiter in place)
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker the waiter holds, since the last poll that was pending.
    registered: Option<Waker>,
}

impl CancelWatch {
    pub(crate) fn new(token: CancellationToken) -> Self {
        CancelWatch {
            cancelled: Box::pin(token.clone().cancelled_owned()),
            token,
            registered: None,
        }
    }

    /// `Ready` once the token is cancelled.
    pub(crate) fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let same_waker = self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        if same_waker && !self.token.is_cancelled() {
            return Poll::Pending;
        }
        let r = self.cancelled.as_mut().poll(cx);
        self.registered = r.is_pending().then(|| cx.waker().clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn a_cancellation_wakes_the_task_that_polled_and_is_then_seen() {
        let token = CancellationToken::new();
        let mut w = CancelWatch::new(token.clone());
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..3 {
            assert!(w.poll_cancelled(&mut cx).is_pending());
        }
        token.cancel();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
        assert!(w.poll_cancelled(&mut cx).is_ready());
        assert!(w.poll_cancelled(&mut cx).is_ready(), "and stays cancelled");
    }

    #[test]
    fn a_new_waker_is_registered_in_place_of_the_old() {
        let parent = CancellationToken::new();
        let mut w = CancelWatch::new(parent.child_token());
        let (old, old_waker) = counting();
        assert!(w
            .poll_cancelled(&mut Context::from_waker(&old_waker))
            .is_pending());
        let (new, new_waker) = counting();
        let mut cx = Context::from_waker(&new_waker);
        assert!(w.poll_cancelled(&mut cx).is_pending());
        // (cancelled through its parent, as a socket's close does)
        parent.cancel();
        assert_eq!(new.0.load(Ordering::SeqCst), 1, "the new waker is woken");
        assert_eq!(old.0.load(Ordering::SeqCst), 0, "the old one is not");
        assert!(w.poll_cancelled(&mut cx).is_ready());
    }
}
