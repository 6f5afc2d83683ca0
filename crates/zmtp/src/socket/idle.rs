//! [`IdleTimer`]: when a connection that stays silent is closed, with one
//! timer for the connection's life.
//!
//! A timer armed around each read (`tokio::time::timeout`) registers and
//! removes a timer-wheel entry per read: about 340 instructions per call
//! on a server. Here a read only notes when it started; the timer fires
//! at the earliest moment the connection could have been silent for its
//! limit, and when it finds a later read started since, it moves to that
//! read's deadline instead of closing the connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Closes a connection silent for `limit` (see the module's doc).
pub(crate) struct IdleTimer {
    limit: Duration,
    /// When the current wait for the connection started.
    since: Instant,
    /// Due `limit` after the start of this or an earlier wait: at or
    /// before `since + limit`.
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimer {
    pub(crate) fn new(limit: Duration) -> Self {
        let since = Instant::now();
        IdleTimer {
            limit,
            since,
            sleep: Box::pin(tokio::time::sleep_until(since + limit)),
        }
    }

    /// A wait for the connection starts now: its silence counts from here
    /// (a read starts, after the last one's data was handed on).
    pub(crate) fn restart(&mut self) {
        self.since = Instant::now();
    }

    /// `Ready(limit)` once the current wait has lasted the limit.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Duration> {
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            let due = self.since + self.limit;
            if due <= Instant::now() {
                return Poll::Ready(self.limit);
            }
            self.sleep.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    /// Polls `t` once (a paused clock: no time passes here).
    fn expired(t: &mut IdleTimer) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        t.poll_expired(&mut cx).is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_expires_at_its_limit() {
        let mut t = IdleTimer::new(LIMIT);
        tokio::time::advance(LIMIT - Duration::from_millis(1)).await;
        assert!(!expired(&mut t));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(expired(&mut t));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_wait_moves_the_deadline_to_the_limit_after_it() {
        let mut t = IdleTimer::new(LIMIT);
        tokio::time::advance(Duration::from_secs(7)).await;
        t.restart();
        // The first deadline passes: the timer moves, it does not expire.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!expired(&mut t));
        t.restart();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!expired(&mut t));
        // 10 s after the last wait started.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(expired(&mut t));
    }

    #[tokio::test(start_paused = true)]
    async fn it_expires_as_a_future_would_under_a_runtime() {
        let mut t = IdleTimer::new(LIMIT);
        let start = Instant::now();
        tokio::time::advance(Duration::from_secs(4)).await;
        t.restart();
        let limit = std::future::poll_fn(|cx| t.poll_expired(cx)).await;
        assert_eq!(limit, LIMIT);
        assert_eq!(Instant::now() - start, Duration::from_secs(14));
    }
}
