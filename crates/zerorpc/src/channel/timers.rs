//! One timer for many channels: a client connection's, or a server's.
//!
//! Each open channel has a deadline (its next heartbeat, the loss limit,
//! the first-reply timeout or the call's deadline). A tokio `Sleep` per
//! channel costs an allocation of 112 bytes and a registration in the
//! runtime's timer wheel, under its lock, for every call that does not
//! answer at once (on the client, every call). Here a channel's deadline
//! is one atomic word beside its mailbox (see [`crate::mailbox`]), and the
//! loop that already watches the connection (the client's receive loop,
//! the server's `run`) sleeps until the earliest one:
//!
//! - a driver stores its channel's deadline in the slot when it moves,
//!   and nudges the loop only when the new one is earlier than the time
//!   the loop sleeps to ([`Timers::set`]); with calls coming and going
//!   that is rare, since a new call's deadline is later than those of the
//!   calls before it;
//! - the loop, woken, looks at every channel of its table
//!   ([`Timers::fire`]): it marks the slots whose deadline came
//!   ([`FIRED`]) and wakes their tasks with the waker their mailbox holds;
//!   then it sleeps until the earliest deadline left;
//! - the driver, polled, sees its slot marked and lets its channel handle
//!   the time ([`super::Driver::poll_timer`]).
//!
//! The loop looks at every channel when it wakes: once per earliest
//! deadline, which with the default 5 s heartbeat is about once per 5 s
//! per connection when calls are short, and as often as long calls'
//! heartbeats fall due when they are not. So that many long calls, whose
//! heartbeats fall due at scattered times, do not make it look all the
//! time, it looks at most once per [`SPACING_PER_CHANNEL`] times the
//! channels it saw the last time (5 ms with 1,000 open, 50 ms with 10,000;
//! at most [`MAX_SPACING`]): a deadline comes at most that late, and
//! looking stays near 1% of a core. Slots change without a lock (one
//! driver writes its own; the loop marks a slot only if it still holds
//! what it read), so a driver never waits for a loop that is looking.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::mailbox::MailSender;

/// A slot with no deadline.
pub(crate) const NO_DEADLINE: u64 = u64::MAX;

/// A slot whose deadline came: the loop marked it and woke the channel's
/// task; its driver handles the time and stores the next deadline.
pub(crate) const FIRED: u64 = u64::MAX - 1;

/// The least time between two looks, per channel looked at (see the
/// module doc): a look costs well under this per channel.
pub(crate) const SPACING_PER_CHANNEL: Duration = Duration::from_micros(5);

/// The most time between two looks.
pub(crate) const MAX_SPACING: Duration = Duration::from_millis(250);

/// The shared timer of the channels in one table (see the module doc).
pub(crate) struct Timers {
    /// Deadlines count nanoseconds from here: an hour before the timers
    /// were made, so that a channel opened just before (a call started,
    /// then given a connection made since) counts from after it.
    epoch: Instant,
    /// The deadline the loop sleeps to; [`NO_DEADLINE`] when it sleeps
    /// until nudged, and while it looks (a deadline set meanwhile nudges
    /// it, so none is missed).
    armed: AtomicU64,
    /// Wakes the loop for a deadline earlier than `armed` (a permit is
    /// kept if the loop is not waiting).
    nudge: Notify,
    /// The loop's next look is not before this (see the module doc).
    not_before: AtomicU64,
}

impl Default for Timers {
    fn default() -> Self {
        let now = tokio::time::Instant::now().into_std();
        Timers {
            epoch: now.checked_sub(Duration::from_secs(3600)).unwrap_or(now),
            armed: AtomicU64::new(NO_DEADLINE),
            nudge: Notify::new(),
            not_before: AtomicU64::new(0),
        }
    }
}

impl Timers {
    /// `t` as a slot's value (below [`FIRED`]).
    pub(crate) fn slot_time(&self, t: Instant) -> u64 {
        let n = t.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(n).map_or(FIRED - 1, |n| n.min(FIRED - 1))
    }

    /// The time a slot's value stands for.
    fn time_of(&self, at: u64) -> Instant {
        self.epoch + Duration::from_nanos(at)
    }

    /// Now, by tokio's clock (which tests may pause), as a slot's value.
    fn now(&self) -> u64 {
        self.slot_time(tokio::time::Instant::now().into_std())
    }

    /// Stores a channel's deadline (`at`, from [`Timers::slot_time`], or
    /// [`NO_DEADLINE`]) and nudges the loop if it would look too late.
    pub(crate) fn set(&self, slot: &AtomicU64, at: u64) {
        slot.store(at, Ordering::SeqCst);
        // (SeqCst, both: if the loop read the slot before this store, it
        // stores `armed` after, so this load sees the loop's `NO_DEADLINE`
        // or the deadline it found; either way an earlier `at` nudges)
        if at < self.armed.load(Ordering::SeqCst) {
            self.nudge.notify_one();
        }
    }

    /// Resolves when the earliest deadline the loop knows of comes, or a
    /// channel set an earlier one, and not before the spacing after the
    /// last look. Cancel-safe: the loop selects on it with its other work.
    pub(crate) async fn due(&self) {
        // (first: dropped while it waits, it has consumed nothing)
        let not_before = self.not_before.load(Ordering::Relaxed);
        if self.now() < not_before {
            tokio::time::sleep_until(self.time_of(not_before).into()).await;
        }
        let armed = self.armed.load(Ordering::SeqCst);
        if armed == NO_DEADLINE {
            return self.nudge.notified().await;
        }
        tokio::select! {
            () = tokio::time::sleep_until(self.time_of(armed).into()) => {}
            () = self.nudge.notified() => {}
        }
    }

    /// Looks at the channels of a table (the loop holds its lock): marks
    /// those whose deadline came and returns their tasks' wakers, to be
    /// woken once the lock is released; the loop then sleeps until the
    /// earliest deadline left.
    pub(crate) fn fire<'a, T: 'a>(
        &self,
        channels: impl Iterator<Item = &'a MailSender<T>>,
    ) -> Vec<Waker> {
        self.armed.store(NO_DEADLINE, Ordering::SeqCst);
        let now = self.now();
        let mut next = NO_DEADLINE;
        let mut woken = Vec::new();
        let mut seen = 0u32;
        for tx in channels {
            seen = seen.saturating_add(1);
            let slot = tx.timer();
            let at = slot.load(Ordering::SeqCst);
            if at >= FIRED {
                continue;
            }
            if at > now {
                next = next.min(at);
                continue;
            }
            // (a driver that moved it meanwhile saw `armed` unset, and
            // nudged: the next look finds it)
            if slot
                .compare_exchange(at, FIRED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                // (none: its task runs now, and sees the mark when it
                // comes to its timer)
                woken.extend(tx.take_waker());
            }
        }
        self.armed.store(next, Ordering::SeqCst);
        let spacing = (SPACING_PER_CHANNEL * seen).min(MAX_SPACING);
        let spacing = u64::try_from(spacing.as_nanos()).unwrap_or(u64::MAX);
        self.not_before
            .store(now.saturating_add(spacing), Ordering::Relaxed);
        woken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::mailbox;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake};

    struct Count(AtomicU64);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_marks_and_wakes_only_the_channels_whose_deadline_came() {
        let timers = Timers::default();
        let count = Arc::new(Count(AtomicU64::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let (txs, mut rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mailbox::<u8>(4, usize::MAX)).unzip();
        for rx in &mut rxs {
            assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        }
        let now = tokio::time::Instant::now().into_std();
        let at = |ms| timers.slot_time(now + Duration::from_millis(ms));
        timers.set(rxs[0].timer(), at(10));
        timers.set(rxs[1].timer(), at(30));
        // (the third has none)

        // A first deadline nudges the loop, which finds nothing due yet
        // and sleeps to the earliest.
        tokio::time::timeout(Duration::from_millis(1), timers.due())
            .await
            .expect("nudged");
        assert!(timers.fire(txs.iter()).is_empty());
        assert_eq!(timers.armed.load(Ordering::SeqCst), at(10));

        // A later deadline does not nudge it: it wakes at 10 ms.
        timers.set(rxs[2].timer(), at(50));
        let t0 = tokio::time::Instant::now();
        timers.due().await;
        assert_eq!(t0.elapsed(), Duration::from_millis(10));
        for w in timers.fire(txs.iter()) {
            w.wake();
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "only the first woken");
        assert_eq!(rxs[0].timer().load(Ordering::SeqCst), FIRED);
        assert_eq!(rxs[1].timer().load(Ordering::SeqCst), at(30));
        assert_eq!(timers.armed.load(Ordering::SeqCst), at(30));

        // An earlier one nudges it at once.
        timers.set(rxs[2].timer(), at(15));
        tokio::time::timeout(Duration::from_millis(1), timers.due())
            .await
            .expect("nudged");
    }

    #[test]
    fn a_marked_slot_waits_for_its_driver_and_a_moved_one_counts_anew() {
        let timers = Timers::default();
        let (tx, rx) = mailbox::<u8>(4, usize::MAX);
        let now = Instant::now();
        timers.set(rx.timer(), timers.slot_time(now));
        assert!(
            timers.fire(std::iter::once(&tx)).is_empty(),
            "no waker held"
        );
        assert_eq!(rx.timer().load(Ordering::SeqCst), FIRED);
        // marked: not looked at again until its driver moves it
        timers.fire(std::iter::once(&tx));
        assert_eq!(rx.timer().load(Ordering::SeqCst), FIRED);
        assert_eq!(timers.armed.load(Ordering::SeqCst), NO_DEADLINE);
        let later = timers.slot_time(now + Duration::from_secs(60));
        timers.set(rx.timer(), later);
        timers.fire(std::iter::once(&tx));
        assert_eq!(rx.timer().load(Ordering::SeqCst), later);
        assert_eq!(timers.armed.load(Ordering::SeqCst), later);
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_over_many_channels_looks_at_most_once_per_its_spacing() {
        let timers = Timers::default();
        let boxes: Vec<_> = (0..1000).map(|_| mailbox::<u8>(1, usize::MAX)).collect();
        let senders = || boxes.iter().map(|(tx, _)| tx);
        timers.fire(senders());
        // due at once, and nudging: but the last look saw 1,000 channels
        let slot = boxes[0].1.timer();
        timers.set(slot, timers.now());
        let t0 = tokio::time::Instant::now();
        timers.due().await;
        assert_eq!(t0.elapsed(), SPACING_PER_CHANNEL * 1000);
        timers.fire(senders());
        assert_eq!(slot.load(Ordering::SeqCst), FIRED);
    }
}
