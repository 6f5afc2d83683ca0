//! [`Coalesce`]: when a connection's writer waits a moment before writing,
//! so that messages about to be queued leave in the same write.
//!
//! Under load a writer woken by each message writes one or two per
//! system call: the task that queued a message wakes the writer, which
//! runtime runs next on that worker, before the tasks that are about to
//! queue more. Letting those run first (one trip to the back of the run
//! queue) turns those writes into one: at 256 calls in flight on one
//! connection, `ours --quick` went from 257–301 k to 346–405 k calls/s
//! (about 0.9 write system calls per call before). An idle connection must
//! not wait: there the trip wakes another worker, which on this machine
//! took the sequential round trip from 9 to 39 µs. So the writer waits
//! only when the signs say more is coming: it took several messages at
//! once, messages arrived while it last wrote, or it was woken again
//! sooner than its last write took (writes back to back). A sequential
//! caller's writer, woken once per round trip, never waits.
//! (`bench-results/2026-12-05-coalesce.md`.)

use std::time::{Duration, Instant};

/// A writer's recent past, for [`Coalesce::should_wait`].
#[derive(Debug, Default)]
pub(crate) struct Coalesce {
    /// The last write took several messages, or left some queued.
    busy: bool,
    /// When the last write ended, and how long it took.
    last: Option<(Instant, Duration)>,
}

/// A writer that takes this many messages at once writes without waiting.
const ENOUGH: usize = 8;

impl Coalesce {
    /// Whether a writer woken at `now` with `taken` messages should let
    /// other tasks run before writing them.
    pub(crate) fn should_wait(&self, taken: usize, now: Instant) -> bool {
        if taken == 0 || taken >= ENOUGH {
            return false;
        }
        let back_to_back = self
            .last
            .is_some_and(|(end, took)| now.saturating_duration_since(end) < took);
        taken > 1 || self.busy || back_to_back
    }

    /// A write of `taken` messages ran from `start` to `end`; `queued`:
    /// more messages were waiting when it ended.
    pub(crate) fn wrote(&mut self, taken: usize, queued: bool, start: Instant, end: Instant) {
        self.busy = taken > 1 || queued;
        self.last = Some((end, end.saturating_duration_since(start)));
    }
}

/// Lets the tasks queued on this worker run, then goes on: the task wakes
/// itself, which sends it to the back of the run queue (tokio's
/// `yield_now` would wait for the next I/O poll instead).
pub(crate) async fn yield_to_queued() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn a_writer_woken_once_per_round_trip_never_waits() {
        let mut c = Coalesce::default();
        let mut now = Instant::now();
        assert!(!c.should_wait(1, now), "the first message");
        for _ in 0..100 {
            // one message, written in 2 µs, the next 9 µs later
            c.wrote(1, false, now, now + 2 * US);
            now += 11 * US;
            assert!(!c.should_wait(1, now));
        }
    }

    #[test]
    fn a_writer_woken_back_to_back_or_with_several_messages_waits() {
        let mut c = Coalesce::default();
        let t = Instant::now();
        c.wrote(1, false, t, t + 3 * US);
        assert!(
            c.should_wait(1, t + 4 * US),
            "woken 1 µs after a 3 µs write"
        );
        assert!(!c.should_wait(1, t + 7 * US), "woken 4 µs after it");
        assert!(c.should_wait(2, t + 100 * US), "two messages at once");
        c.wrote(1, true, t, t + US);
        assert!(
            c.should_wait(1, t + 100 * US),
            "messages waited behind the last write"
        );
        c.wrote(3, false, t, t + US);
        assert!(
            c.should_wait(1, t + 100 * US),
            "the last write took several"
        );
        assert!(
            !c.should_wait(ENOUGH, t + 2 * US),
            "enough for one write already"
        );
        assert!(!c.should_wait(0, t + 2 * US), "nothing to write");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn yielding_lets_the_queued_tasks_run_first() {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran.clone();
        tokio::spawn(async move { r.store(true, std::sync::atomic::Ordering::SeqCst) });
        yield_to_queued().await;
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
    }
}
