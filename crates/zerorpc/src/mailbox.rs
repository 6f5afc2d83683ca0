//! A small bounded single-consumer queue: the events a socket's receive
//! loop routes to one channel.
//!
//! Every open channel has one, so it is built to be small while idle: one
//! allocation of 96 bytes (a mutex over an empty `VecDeque`, the waiting
//! task's waker and the counts, and the channel's timer slot: see
//! [`crate::channel::Timers`]), versus a tokio mpsc's shared block of
//! slots and semaphore. The waker sits under the mutex the queue needs
//! anyway: a receiver takes an item or registers in one lock. The receive
//! loop never waits on it: a full mailbox is a misbehaving peer, and the
//! caller decides what to drop. It is bounded by item count and by bytes
//! (the sender gives each item's size: its event's encoded length), so a
//! peer that sends large events faster than its call takes them pins at
//! most the byte bound per channel (an item always enters an empty
//! mailbox). Byte counts are kept in 32 bits: a bound above 4 GiB is
//! 4 GiB, and an item above it counts as 4 GiB.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The channel's next deadline, for its connection's timer (see
    /// [`crate::channel::Timers`]): beside the queue, so that the timer
    /// finds it in the table of senders, and wakes the receiver's task
    /// with the waker the queue holds.
    timer: AtomicU64,
}

struct State<T> {
    /// Items and their sizes.
    queue: VecDeque<(T, u32)>,
    /// The receiver's task, while it waits for an item.
    waker: Option<Waker>,
    /// (u32s, beside `closed`: every open channel has a mailbox)
    cap: u32,
    /// Bytes queued (saturating), and the most that may be
    /// ([`UNBOUNDED`]: no bound).
    bytes: u32,
    max_bytes: u32,
    closed: bool,
}

impl<T> State<T> {
    fn pop(&mut self) -> Option<T> {
        let (item, bytes) = self.queue.pop_front()?;
        self.bytes = self.bytes.saturating_sub(bytes);
        Some(item)
    }
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A `max_bytes` of this or more is no bound in bytes (the count alone
/// bounds the mailbox).
const UNBOUNDED: u32 = u32::MAX;

/// A mailbox holding at most `cap` items and `max_bytes` bytes (or one
/// item of any size).
pub(crate) fn mailbox<T>(cap: usize, max_bytes: usize) -> (MailSender<T>, MailReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            waker: None,
            cap: u32::try_from(cap).unwrap_or(u32::MAX).max(1),
            bytes: 0,
            max_bytes: u32::try_from(max_bytes).unwrap_or(u32::MAX),
            closed: false,
        }),
        timer: AtomicU64::new(crate::channel::NO_DEADLINE),
    });
    (
        MailSender(shared.clone()),
        MailReceiver {
            shared,
            taken: 0,
            closed: false,
        },
    )
}

/// The sending side; dropping it closes the mailbox (the receiver sees
/// `None` once the queued items are taken). Not `Clone`: one owner, the
/// routing table.
pub(crate) struct MailSender<T>(Arc<Shared<T>>);

/// Why an item was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MailError {
    /// `cap` items, or `max_bytes` bytes, are waiting already.
    Full,
    /// The receiver is gone.
    Closed,
}

impl<T> MailSender<T> {
    /// Queues `item` (of `bytes` bytes) and wakes the receiver.
    pub(crate) fn try_send(&self, item: T, bytes: usize) -> Result<(), MailError> {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let waker = {
            let mut st = self.0.state();
            if st.closed {
                return Err(MailError::Closed);
            }
            // (an empty mailbox holds no bytes: its one item always fits)
            let over = st.max_bytes != UNBOUNDED
                && st.bytes.checked_add(bytes).is_none_or(|b| b > st.max_bytes);
            if st.queue.len() >= st.cap as usize || (over && !st.queue.is_empty()) {
                return Err(MailError::Full);
            }
            st.bytes = st.bytes.saturating_add(bytes);
            st.queue.push_back((item, bytes));
            st.waker.take()
        };
        // (woken after the lock, so the receiver does not wait for it)
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// The channel's timer slot.
    pub(crate) fn timer(&self) -> &AtomicU64 {
        &self.0.timer
    }

    /// Takes the waiting receiver's waker (its deadline came: see
    /// [`crate::channel::Timers::fire`]).
    pub(crate) fn take_waker(&self) -> Option<Waker> {
        self.0.state().waker.take()
    }
}

impl<T> Drop for MailSender<T> {
    fn drop(&mut self) {
        // (a receiver that closed first took its waker: no one to wake)
        let waker = {
            let mut st = self.0.state();
            st.closed = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The receiving side.
pub(crate) struct MailReceiver<T> {
    shared: Arc<Shared<T>>,
    /// Items taken since it last went to sleep.
    taken: u32,
    /// Whether [`MailReceiver::close`] ran (a drop then has nothing to do).
    closed: bool,
}

impl<T> MailReceiver<T> {
    /// The next item; `None` once the sender is dropped and the queue empty.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut st = self.shared.state();
        if let Some(item) = st.pop() {
            self.taken = self.taken.saturating_add(1);
            return Poll::Ready(Some(item));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        // Going to sleep on an empty queue after taking one item at most
        // (an idle channel's heartbeat; a busy one takes bursts): its
        // buffer (room for a few events, a kilobyte) is freed, so an idle
        // channel does not keep it.
        if self.taken <= 1 && st.queue.capacity() > 0 {
            st.queue = VecDeque::new();
        }
        self.taken = 0;
        // Registered under the lock a sender queues under: no item is
        // missed.
        let old = match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => None,
            _ => st.waker.replace(cx.waker().clone()),
        };
        // (the replaced waker dropped after the lock)
        drop(st);
        drop(old);
        Poll::Pending
    }

    /// The channel's timer slot.
    pub(crate) fn timer(&self) -> &AtomicU64 {
        &self.shared.timer
    }

    /// Closes the mailbox from this end, dropping what is queued, and
    /// forgets the task it would wake: the sender's drop then wakes no one.
    /// For a call that ends: it closes its mailbox before its channel
    /// leaves the routing table, as otherwise that removal would wake the
    /// task that is ending it. That task may be a connection's reader
    /// which polled the call inline, and a task woken in its own poll is
    /// queued again and wakes another worker (with the reader polling
    /// each new call inline, this was 3 futex calls per sequential call
    /// instead of 0.6).
    pub(crate) fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let waker = {
            let mut st = self.shared.state();
            st.closed = true;
            st.queue.clear();
            st.bytes = 0;
            st.waker.take()
        };
        drop(waker);
    }
}

impl<T> Drop for MailReceiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker;

    #[test]
    fn a_mailbox_is_one_allocation_of_96_bytes() {
        // (its `Arc`'s two counts, then this)
        assert_eq!(std::mem::size_of::<Shared<[u8; 256]>>(), 80);
    }

    #[test]
    fn bounded_fifo_and_close() {
        let (tx, mut rx) = mailbox(2, usize::MAX);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.try_send(1, 1).unwrap();
        tx.try_send(2, 1).unwrap();
        assert_eq!(tx.try_send(3, 1), Err(MailError::Full));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
        tx.try_send(3, 1).unwrap();
        drop(tx);
        // Queued items are still delivered after the sender is gone.
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(3)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn a_receiver_that_took_one_item_sleeps_without_a_buffer() {
        let (tx, mut rx) = mailbox(8, usize::MAX);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        tx.try_send([0u8; 256], 1).unwrap();
        assert!(rx.shared.state().queue.capacity() > 0);
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(Some(_))));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        assert_eq!(rx.shared.state().queue.capacity(), 0);
        // and it still works afterwards
        tx.try_send([1u8; 256], 1).unwrap();
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some([1u8; 256])));
        // a burst (a busy stream) keeps it, for the next burst
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.try_send([2u8; 256], 1).unwrap();
        tx.try_send([3u8; 256], 1).unwrap();
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(Some(_))));
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(Some(_))));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        assert!(rx.shared.state().queue.capacity() > 0);
    }

    #[test]
    fn a_mailbox_bounded_by_count_alone_takes_items_past_four_gib() {
        let (tx, mut rx) = mailbox(4, usize::MAX);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let three_gib = 3 << 30;
        for i in 0..4 {
            tx.try_send(i, three_gib).unwrap();
        }
        assert_eq!(tx.try_send(4, 1), Err(MailError::Full), "four items held");
        for i in 0..4 {
            assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(i)));
        }
        tx.try_send(5, three_gib).unwrap();
        tx.try_send(6, three_gib).unwrap();
    }

    #[test]
    fn bytes_bound_the_queue_but_an_item_always_enters_an_empty_one() {
        let (tx, mut rx) = mailbox(100, 1000);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        tx.try_send(1, 600).unwrap();
        tx.try_send(2, 400).unwrap();
        assert_eq!(tx.try_send(3, 1), Err(MailError::Full), "1,000 bytes held");
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
        tx.try_send(3, 600).unwrap();
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(3)));
        // Empty: one item larger than the bound still gets in, alone.
        tx.try_send(4, 5000).unwrap();
        assert_eq!(tx.try_send(5, 1), Err(MailError::Full));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(4)));
        tx.try_send(5, 1).unwrap();
    }

    #[test]
    fn receiver_gone_refuses_items() {
        let (tx, rx) = mailbox::<u8>(4, usize::MAX);
        drop(rx);
        assert_eq!(tx.try_send(1, 1), Err(MailError::Closed));
    }

    /// A waker that counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_sender_dropped_wakes_its_receiver_unless_the_receiver_closed_first() {
        let count = Arc::new(Count(Default::default()));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let wakes = || count.0.load(std::sync::atomic::Ordering::SeqCst);

        let (tx, mut rx) = mailbox::<u8>(4, usize::MAX);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        drop(tx);
        assert_eq!(wakes(), 1, "a waiting receiver hears of the close");
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));

        let (tx, mut rx) = mailbox::<u8>(4, usize::MAX);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.try_send(1, 1).unwrap();
        assert_eq!(wakes(), 2);
        rx.close();
        drop(tx);
        assert_eq!(wakes(), 2, "a closed receiver's task is not woken");
        assert_eq!(
            rx.poll_recv(&mut cx),
            Poll::Ready(None),
            "its items dropped"
        );
    }

    #[tokio::test]
    async fn wakes_a_waiting_receiver() {
        let (tx, mut rx) = mailbox(4, usize::MAX);
        let waiter = tokio::spawn(async move { std::future::poll_fn(|cx| rx.poll_recv(cx)).await });
        tokio::task::yield_now().await;
        tx.try_send(7u32, 1).unwrap();
        assert_eq!(waiter.await.unwrap(), Some(7));
    }
}
