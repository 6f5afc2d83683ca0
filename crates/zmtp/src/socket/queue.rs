//! A bounded async queue with batch operations.
//!
//! The socket's inbound queue and every peer's outbound queue are these.
//! Compared with a channel it lets a reader hand over everything one read
//! decoded under one lock and one wake-up, and a writer take everything
//! queued at once, which is where ZeroMQ-style throughput comes from. It
//! counts messages, so the high-water marks are exact.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

pub(crate) struct Queue<T> {
    cap: usize,
    state: Mutex<State<T>>,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    /// Tasks waiting for an item.
    readers: Vec<Waker>,
    /// Tasks waiting for room.
    writers: Vec<Waker>,
}

/// Why a non-blocking push failed; the item is handed back.
pub(crate) enum PushError<T> {
    Full(T),
    Closed(T),
}

fn register(list: &mut Vec<Waker>, w: &Waker) {
    if !list.iter().any(|x| x.will_wake(w)) {
        list.push(w.clone());
    }
}

fn wake_all(list: Vec<Waker>) {
    for w in list {
        w.wake();
    }
}

impl<T> Queue<T> {
    pub fn new(cap: usize) -> Self {
        Queue {
            cap: cap.max(1),
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                readers: Vec::new(),
                writers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
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

    pub fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        let readers = {
            let mut s = self.lock();
            if s.closed {
                return Err(PushError::Closed(item));
            }
            if s.items.len() >= self.cap {
                return Err(PushError::Full(item));
            }
            s.items.push_back(item);
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
            if s.items.len() >= self.cap {
                *item = Some(it);
                register(&mut s.writers, cx.waker());
                return Poll::Pending;
            }
            s.items.push_back(it);
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
                let room = self.cap.saturating_sub(s.items.len());
                let n = room.min(batch.len());
                s.items.extend(batch.drain(..n));
                let readers = if n > 0 {
                    std::mem::take(&mut s.readers)
                } else {
                    Vec::new()
                };
                if !batch.is_empty() {
                    register(&mut s.writers, cx.waker());
                }
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

    /// Takes up to `max` items into `out`, waiting while the queue is empty.
    /// Returns false once the queue is closed and drained.
    pub async fn pop_batch(&self, out: &mut Vec<T>, max: usize) -> bool {
        poll_fn(|cx| {
            let writers = {
                let mut s = self.lock();
                if s.items.is_empty() {
                    if s.closed {
                        return Poll::Ready(false);
                    }
                    register(&mut s.readers, cx.waker());
                    return Poll::Pending;
                }
                let n = max.min(s.items.len());
                out.extend(s.items.drain(..n));
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
                match s.items.pop_front() {
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
            let item = s.items.pop_front()?;
            (item, std::mem::take(&mut s.writers))
        };
        wake_all(writers);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn bounded_fifo_with_backpressure() {
        let q = Arc::new(Queue::new(2));
        assert!(q.try_push(1).is_ok());
        assert!(q.try_push(2).is_ok());
        assert!(matches!(q.try_push(3), Err(PushError::Full(3))));
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push(3).await });
        tokio::task::yield_now().await;
        assert_eq!(q.pop().await, Some(1));
        pusher.await.unwrap().ok().unwrap();
        let mut out = Vec::new();
        assert!(q.pop_batch(&mut out, 10).await);
        assert_eq!(out, vec![2, 3]);
        let mut batch: VecDeque<_> = (10..15).collect();
        let q3 = q.clone();
        let batcher = tokio::spawn(async move {
            q3.push_all(&mut batch).await.unwrap();
            batch.len()
        });
        let mut got = Vec::new();
        while got.len() < 5 {
            got.push(q.pop().await.unwrap());
        }
        assert_eq!(got, vec![10, 11, 12, 13, 14]);
        assert_eq!(batcher.await.unwrap(), 0);
        q.try_push(99).ok().unwrap();
        q.close();
        assert!(matches!(q.try_push(1), Err(PushError::Closed(1))));
        assert_eq!(q.try_pop(), Some(99));
        assert_eq!(q.pop().await, None);
    }
}
