//! A bounded async queue with batch operations.
//!
//! The socket's inbound queue and every peer's outbound queue are these.
//! Compared with a channel it lets a reader hand over everything one read
//! decoded under one lock and one wake-up, and a writer take everything
//! queued at once, which is where ZeroMQ-style throughput comes from.
//!
//! It is bounded twice: by messages (the high-water mark, exact) and by
//! bytes. A message always enters an empty queue whatever its size (so any
//! message the limits allow can be sent); otherwise it waits while the
//! queue holds `max_bytes`. Outbound queues also share a socket-wide
//! [`Budget`]: once the socket's queues together hold its limit, a peer
//! whose queue is not empty waits, so the peers that read (and keep their
//! queues empty) are served while the ones that don't are held back.
//!
//! An outbound queue may also have a [`Direct`] taker (its connection's
//! write side): while the queue's reader (the connection's writer task)
//! waits on an empty queue, a pushed item goes to the taker on the
//! pushing task instead of waking the reader.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use smallvec::SmallVec;

/// What a queued item weighs, in bytes.
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for crate::message::Message {
    fn weight(&self) -> usize {
        // (a frame's header and bookkeeping: a message is never free)
        self.byte_len() + 16 * self.len()
    }
}

/// Bytes queued across a socket's outbound queues, and a limit.
pub(crate) struct Budget {
    max: usize,
    used: AtomicUsize,
    /// Whether a push waits on the budget (so releases must wake).
    contended: AtomicBool,
    waiters: Mutex<Wakers>,
}

impl Budget {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Budget {
            max: max.max(1),
            used: AtomicUsize::new(0),
            contended: AtomicBool::new(false),
            waiters: Mutex::new(Wakers::new()),
        })
    }

    /// Bytes queued now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn exceeded_by(&self, w: usize) -> bool {
        self.used().saturating_add(w) > self.max
    }

    fn take(&self, w: usize) {
        self.used.fetch_add(w, Ordering::Relaxed);
    }

    fn release(&self, w: usize) {
        if w == 0 {
            return;
        }
        self.used.fetch_sub(w, Ordering::Relaxed);
        if self.contended.swap(false, Ordering::AcqRel) {
            let waiters =
                std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|p| p.into_inner()));
            wake_all(waiters);
        }
    }

    fn wait(&self, w: &Waker) {
        let mut list = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        register(&mut list, w);
        self.contended.store(true, Ordering::Release);
    }
}

/// How much a queue may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Messages.
    pub items: usize,
    /// Bytes (a message always enters an empty queue).
    pub bytes: usize,
}

pub(crate) struct Queue<T> {
    cap: usize,
    max_bytes: usize,
    budget: Option<Arc<Budget>>,
    state: Mutex<State<T>>,
    /// Who may take an item at once, on the pushing task, while the
    /// queue's reader is parked with nothing to do (see [`Direct`]).
    direct: OnceLock<Arc<dyn Direct<T>>>,
}

/// Takes an item past the queue, on the task that pushes it: a
/// connection's writer side, which writes a message on its sender's task
/// when the connection's writer task is idle (no wake-up, no hand-off).
/// The queue calls it only while the reader it serves waits in
/// [`Queue::pop_batch`] on an empty queue, and never twice at once; the
/// reader does not take items until it returns.
pub(crate) trait Direct<T>: Send + Sync {
    fn take(&self, item: T) -> Taken<T>;
}

/// What [`Direct::take`] did with an item.
pub(crate) enum Taken<T> {
    /// Not now: the item is queued as any other.
    Declined(T),
    /// Taken; `wake`: the queue's reader has work left over (a part not
    /// written, or an error to report).
    Done { wake: bool },
}

struct State<T> {
    items: VecDeque<T>,
    bytes: usize,
    closed: bool,
    /// A [`Queue::kick`] not yet seen by a [`Queue::pop_batch`].
    kicked: bool,
    /// The reader waits in [`Queue::pop_batch`] with nothing to take.
    parked: bool,
    /// A [`Direct::take`] is under way.
    claimed: bool,
    /// Tasks waiting for an item.
    readers: Wakers,
    /// Tasks waiting for room.
    writers: Wakers,
}

/// Why a non-blocking push failed; the item is handed back.
pub(crate) enum PushError<T> {
    Full(T),
    Closed(T),
}

/// Tasks waiting on a queue: nearly always one or two, kept inline (a
/// list is taken to be woken on every push and pop, so a `Vec` would
/// allocate again on every wait).
type Wakers = SmallVec<[Waker; 2]>;

fn register(list: &mut Wakers, w: &Waker) {
    if !list.iter().any(|x| x.will_wake(w)) {
        list.push(w.clone());
    }
}

fn wake_all(list: Wakers) {
    for w in list {
        w.wake();
    }
}

/// Why there is no room.
enum NoRoom {
    /// This queue is full.
    Queue,
    /// The socket's budget is spent.
    Budget,
}

impl<T: Weigh> Queue<T> {
    pub fn new(bounds: Bounds, budget: Option<Arc<Budget>>) -> Self {
        Queue {
            cap: bounds.items.max(1),
            max_bytes: bounds.bytes.max(1),
            budget,
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
                kicked: false,
                parked: false,
                claimed: false,
                readers: Wakers::new(),
                writers: Wakers::new(),
            }),
            direct: OnceLock::new(),
        }
    }

    /// Installs the queue's [`Direct`] taker (once; later calls are
    /// ignored).
    pub fn set_direct(&self, d: Arc<dyn Direct<T>>) {
        let _ = self.direct.set(d);
    }

    /// Whether a pushed item may go to the [`Direct`] taker now: the
    /// reader is parked on an empty queue with nothing else to do (so
    /// nothing pushed before could be overtaken).
    fn claimable(&self, s: &State<T>) -> bool {
        s.parked && !s.claimed && !s.kicked && !s.closed && s.items.is_empty()
    }

    /// Gives `item` to the [`Direct`] taker (the caller set `claimed`
    /// under the lock it then released), then settles the claim: a
    /// declined item is queued.
    fn take_direct(&self, item: T) {
        let taken = match self.direct.get() {
            Some(d) => d.take(item),
            None => Taken::Declined(item),
        };
        self.settle(taken);
    }

    /// Runs `f` as a [`Direct`] taker would, if the queue's reader is
    /// parked with nothing to do and nobody else is taking; `f` returns
    /// whether the reader has work left. Returns whether `f` ran.
    pub fn claim(&self, f: impl FnOnce() -> bool) -> bool {
        {
            let mut s = self.lock();
            if !self.claimable(&s) {
                return false;
            }
            s.claimed = true;
        }
        let wake = f();
        self.settle(Taken::Done { wake });
        true
    }

    /// Ends a claim: a declined item is queued; the reader is woken if it
    /// has work (left by the taker, pushed meanwhile, or a kick that came
    /// during the claim).
    fn settle(&self, taken: Taken<T>) {
        let readers = {
            let mut s = self.lock();
            s.claimed = false;
            let mut wake = match taken {
                Taken::Declined(it) => {
                    // (the queue was empty when claimed: it has room; a
                    // queue closed since drops it, as it would have)
                    if !s.closed {
                        self.add(&mut s, it);
                    }
                    true
                }
                Taken::Done { wake } => {
                    if wake {
                        s.kicked = true;
                    }
                    wake
                }
            };
            wake |= !s.items.is_empty() || s.kicked || s.closed;
            if wake {
                std::mem::take(&mut s.readers)
            } else {
                Wakers::new()
            }
        };
        wake_all(readers);
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether an item weighing `w` may enter now.
    fn check(&self, s: &State<T>, w: usize) -> Result<(), NoRoom> {
        if s.items.is_empty() {
            return Ok(());
        }
        if s.items.len() >= self.cap || s.bytes.saturating_add(w) > self.max_bytes {
            return Err(NoRoom::Queue);
        }
        match &self.budget {
            Some(b) if b.exceeded_by(w) => Err(NoRoom::Budget),
            _ => Ok(()),
        }
    }

    /// Registers `cx` to be woken when the reason for `no` goes away.
    fn wait_for_room(&self, s: &mut State<T>, no: NoRoom, w: usize, cx: &Context<'_>) {
        register(&mut s.writers, cx.waker());
        if let (NoRoom::Budget, Some(b)) = (no, &self.budget) {
            b.wait(cx.waker());
            // A release between the check and the registration would not
            // have woken us: look again.
            if !b.exceeded_by(w) {
                cx.waker().wake_by_ref();
            }
        }
    }

    fn add(&self, s: &mut State<T>, item: T) {
        let w = item.weight();
        s.bytes += w;
        if let Some(b) = &self.budget {
            b.take(w);
        }
        s.items.push_back(item);
    }

    /// Removes the first item, accounting for it (the caller wakes writers).
    fn remove(&self, s: &mut State<T>) -> Option<T> {
        let item = s.items.pop_front()?;
        let w = item.weight();
        s.bytes = s.bytes.saturating_sub(w);
        if let Some(b) = &self.budget {
            b.release(w);
        }
        Some(item)
    }

    /// Whether a message could enter now (an empty queue always has room),
    /// registering for a wake-up otherwise. `Ready(false)`: closed.
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut s = self.lock();
        if s.closed {
            return Poll::Ready(false);
        }
        match self.check(&s, 1) {
            Ok(()) => Poll::Ready(true),
            Err(no) => {
                self.wait_for_room(&mut s, no, 1, cx);
                Poll::Pending
            }
        }
    }

    /// Makes the next [`Queue::pop_batch`] return, with nothing if the
    /// queue is empty: its caller has something else to look at (a
    /// connection's writer: a control command to send).
    pub fn kick(&self) {
        let readers = {
            let mut s = self.lock();
            s.kicked = true;
            std::mem::take(&mut s.readers)
        };
        wake_all(readers);
    }

    /// Wakes the pushes waiting for room, to look elsewhere (their socket
    /// has another peer).
    pub fn wake_writers(&self) {
        let writers = std::mem::take(&mut self.lock().writers);
        wake_all(writers);
    }

    /// Refuses further pushes; pops drain what is left, then end.
    pub fn close(&self) {
        let (r, w) = {
            let mut s = self.lock();
            s.closed = true;
            (
                std::mem::take(&mut s.readers),
                std::mem::take(&mut s.writers),
            )
        };
        wake_all(r);
        wake_all(w);
    }

    /// Closes the queue and drops what it holds (the peer is gone: nobody
    /// will take it), giving its bytes back to the budget.
    pub fn close_and_clear(&self) {
        self.close();
        let dropped: Vec<T> = {
            let mut s = self.lock();
            let mut out = Vec::with_capacity(s.items.len());
            while let Some(it) = self.remove(&mut s) {
                out.push(it);
            }
            out
        };
        drop(dropped);
    }

    pub fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        let readers = {
            let mut s = self.lock();
            if s.closed {
                return Err(PushError::Closed(item));
            }
            if self.claimable(&s) {
                s.claimed = true;
                drop(s);
                self.take_direct(item);
                return Ok(());
            }
            if self.check(&s, item.weight()).is_err() {
                return Err(PushError::Full(item));
            }
            self.add(&mut s, item);
            std::mem::take(&mut s.readers)
        };
        wake_all(readers);
        Ok(())
    }

    /// Pushes `item` if there is room; while pending the item stays in
    /// `item`, so a caller that gives up keeps it.
    pub fn poll_push(&self, cx: &mut Context<'_>, item: &mut Option<T>) -> Poll<Result<(), T>> {
        let readers = {
            let mut s = self.lock();
            let Some(it) = item.take() else {
                return Poll::Ready(Ok(()));
            };
            if s.closed {
                return Poll::Ready(Err(it));
            }
            if self.claimable(&s) {
                s.claimed = true;
                drop(s);
                self.take_direct(it);
                return Poll::Ready(Ok(()));
            }
            let w = it.weight();
            if let Err(no) = self.check(&s, w) {
                *item = Some(it);
                self.wait_for_room(&mut s, no, w, cx);
                return Poll::Pending;
            }
            self.add(&mut s, it);
            std::mem::take(&mut s.readers)
        };
        wake_all(readers);
        Poll::Ready(Ok(()))
    }

    /// Pushes, waiting for room. Gives the item back if the queue closed.
    pub async fn push(&self, item: T) -> Result<(), T> {
        let mut item = Some(item);
        poll_fn(|cx| self.poll_push(cx, &mut item)).await
    }

    /// Moves every item of `batch` into the queue, waiting for room as
    /// needed. Fails (leaving the rest in `batch`) if the queue closed.
    pub async fn push_all(&self, batch: &mut VecDeque<T>) -> Result<(), ()> {
        poll_fn(|cx| {
            let (readers, done) = {
                let mut s = self.lock();
                if s.closed {
                    return Poll::Ready(Err(()));
                }
                let mut moved = false;
                while let Some(first) = batch.front() {
                    let w = first.weight();
                    if let Err(no) = self.check(&s, w) {
                        self.wait_for_room(&mut s, no, w, cx);
                        break;
                    }
                    if let Some(it) = batch.pop_front() {
                        self.add(&mut s, it);
                        moved = true;
                    }
                }
                let readers = if moved {
                    std::mem::take(&mut s.readers)
                } else {
                    Wakers::new()
                };
                (readers, batch.is_empty())
            };
            wake_all(readers);
            if done {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Takes up to `max` items, and up to about `max_bytes` (at least one
    /// item), into `out`, waiting while the queue is empty and not kicked
    /// (see [`Queue::kick`]: then it takes nothing). Returns false once
    /// the queue is closed and drained.
    pub async fn pop_batch(&self, out: &mut Vec<T>, max: usize, max_bytes: usize) -> bool {
        poll_fn(|cx| {
            let writers = {
                let mut s = self.lock();
                if s.claimed && !s.closed {
                    // (what was pushed meanwhile waits for the taker's
                    // write: the order on the wire is the order of pushes)
                    register(&mut s.readers, cx.waker());
                    return Poll::Pending;
                }
                if s.items.is_empty() {
                    if s.closed {
                        s.parked = false;
                        return Poll::Ready(false);
                    }
                    if std::mem::take(&mut s.kicked) {
                        s.parked = false;
                        return Poll::Ready(true);
                    }
                    register(&mut s.readers, cx.waker());
                    s.parked = true;
                    return Poll::Pending;
                }
                // (this return serves the kick too)
                s.kicked = false;
                s.parked = false;
                let mut bytes = 0usize;
                while out.len() < max && bytes < max_bytes {
                    match self.remove(&mut s) {
                        Some(it) => {
                            bytes += it.weight();
                            out.push(it);
                        }
                        None => break,
                    }
                }
                std::mem::take(&mut s.writers)
            };
            wake_all(writers);
            Poll::Ready(true)
        })
        .await
    }

    /// Takes one item, waiting while the queue is empty; `None` once closed
    /// and drained.
    pub async fn pop(&self) -> Option<T> {
        poll_fn(|cx| {
            let (item, writers) = {
                let mut s = self.lock();
                match self.remove(&mut s) {
                    Some(it) => (it, std::mem::take(&mut s.writers)),
                    None if s.closed => return Poll::Ready(None),
                    None => {
                        register(&mut s.readers, cx.waker());
                        return Poll::Pending;
                    }
                }
            };
            wake_all(writers);
            Poll::Ready(Some(item))
        })
        .await
    }

    /// Takes one item if there is one.
    pub fn try_pop(&self) -> Option<T> {
        let (item, writers) = {
            let mut s = self.lock();
            let item = self.remove(&mut s)?;
            (item, std::mem::take(&mut s.writers))
        };
        wake_all(writers);
        Some(item)
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        // Whatever is still queued gives its bytes back to the budget.
        if let Some(b) = &self.budget {
            let s = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
            b.release(std::mem::take(&mut s.bytes));
        }
    }
}

#[cfg(test)]
mod tests;
