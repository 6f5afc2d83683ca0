//! The queue's tests: bounds, batches, kicks, the budget, and its
//! direct taker.

use super::*;
use std::sync::Arc;

/// A test item weighing its value in bytes.
#[derive(Debug, PartialEq)]
struct W(usize);
impl Weigh for W {
    fn weight(&self) -> usize {
        self.0
    }
}

fn q(items: usize, bytes: usize) -> Queue<W> {
    Queue::new(Bounds { items, bytes }, None)
}

fn ws(v: &[usize]) -> Vec<W> {
    v.iter().map(|&n| W(n)).collect()
}

/// A taker that records what it took, and does what `then` says with
/// each (given the queue, as another sender meanwhile would).
struct Taker {
    took: Mutex<Vec<usize>>,
    queue: OnceLock<std::sync::Weak<Queue<W>>>,
    then: fn(&Taker, &Queue<W>, W) -> Taken<W>,
}

impl Direct<W> for Taker {
    fn take(&self, item: W) -> Taken<W> {
        let q = self.queue.get().and_then(|q| q.upgrade()).unwrap();
        (self.then)(self, &q, item)
    }
}

fn with_taker(then: fn(&Taker, &Queue<W>, W) -> Taken<W>) -> (Arc<Queue<W>>, Arc<Taker>) {
    let q = Arc::new(q(4, usize::MAX));
    let t = Arc::new(Taker {
        took: Mutex::new(Vec::new()),
        queue: OnceLock::new(),
        then,
    });
    let _ = t.queue.set(Arc::downgrade(&q));
    q.set_direct(t.clone());
    (q, t)
}

fn took(t: &Taker, _: &Queue<W>, item: W) -> Taken<W> {
    t.took.lock().unwrap().push(item.0);
    Taken::Done { wake: false }
}

#[tokio::test(flavor = "current_thread")]
async fn an_item_pushed_while_the_reader_is_parked_goes_to_the_taker() {
    let (q, t) = with_taker(took);
    let mut out = Vec::new();
    // Not parked yet: queued, as always.
    q.try_push(W(1)).ok().unwrap();
    assert!(q.pop_batch(&mut out, 8, usize::MAX).await);
    assert_eq!(out, ws(&[1]));
    out.clear();
    let open = {
        let mut wait = std::pin::pin!(q.pop_batch(&mut out, 8, usize::MAX));
        assert!(futures_poll(wait.as_mut()).is_pending());
        // Parked on an empty queue: taken on this task, the reader
        // not woken.
        q.try_push(W(2)).ok().unwrap();
        assert!(futures_poll(wait.as_mut()).is_pending());
        assert_eq!(*t.took.lock().unwrap(), vec![2]);
        assert_eq!(q.len(), 0);
        // A kick (the reader has something else to do) stops that.
        q.kick();
        q.try_push(W(3)).ok().unwrap();
        assert_eq!(*t.took.lock().unwrap(), vec![2]);
        wait.await
    };
    assert!(open);
    assert_eq!(out, ws(&[3]));
}

#[tokio::test(flavor = "current_thread")]
async fn what_is_pushed_during_a_take_waits_for_it_then_wakes_the_reader() {
    // The taker, mid-write, sees another push: it is queued, and the
    // reader does not get it before the take ends.
    let (q, t) = with_taker(|t, q, item| {
        q.try_push(W(item.0 + 1)).ok().unwrap();
        let mut out = Vec::new();
        let mut early = std::pin::pin!(q.pop_batch(&mut out, 8, usize::MAX));
        assert!(
            futures_poll(early.as_mut()).is_pending(),
            "not during the take"
        );
        took(t, q, item)
    });
    let mut out = Vec::new();
    let open = {
        let mut wait = std::pin::pin!(q.pop_batch(&mut out, 8, usize::MAX));
        assert!(futures_poll(wait.as_mut()).is_pending());
        q.try_push(W(10)).ok().unwrap();
        assert_eq!(*t.took.lock().unwrap(), vec![10]);
        wait.await
    };
    assert!(open, "woken for what was queued during the take");
    assert_eq!(out, ws(&[11]));
}

#[tokio::test(flavor = "current_thread")]
async fn a_declined_item_is_queued_and_a_take_with_work_left_wakes_the_reader() {
    let (q, _) = with_taker(|_, _, item| Taken::Declined(item));
    let mut out = Vec::new();
    let open = {
        let mut wait = std::pin::pin!(q.pop_batch(&mut out, 8, usize::MAX));
        assert!(futures_poll(wait.as_mut()).is_pending());
        let mut slot = Some(W(5));
        let r = q.poll_push(&mut Context::from_waker(Waker::noop()), &mut slot);
        assert!(matches!(r, Poll::Ready(Ok(()))));
        wait.await
    };
    assert!(open);
    assert_eq!(out, ws(&[5]));

    let (q, _) = with_taker(|_, _, _| Taken::Done { wake: true });
    let mut out = Vec::new();
    let open = {
        let mut wait = std::pin::pin!(q.pop_batch(&mut out, 8, usize::MAX));
        assert!(futures_poll(wait.as_mut()).is_pending());
        q.try_push(W(6)).ok().unwrap();
        wait.await
    };
    assert!(open, "kicked: the reader finishes the take's work");
    assert!(out.is_empty());
    assert_eq!(q.len(), 0);
}

fn futures_poll<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(std::task::Waker::noop()))
}

#[tokio::test]
async fn a_kick_ends_a_batch_wait_with_nothing_once() {
    let q = Arc::new(q(4, usize::MAX));
    let mut out = Vec::new();
    // (a kick before the wait is kept for it)
    q.kick();
    assert!(q.pop_batch(&mut out, 8, usize::MAX).await);
    assert!(out.is_empty());
    // (a kick during the wait ends it)
    let q2 = q.clone();
    let waiting = tokio::spawn(async move {
        let mut out = Vec::new();
        let open = q2.pop_batch(&mut out, 8, usize::MAX).await;
        (open, out)
    });
    tokio::task::yield_now().await;
    assert!(
        !waiting.is_finished(),
        "an empty queue, not kicked since: it waits"
    );
    q.kick();
    assert_eq!(waiting.await.unwrap(), (true, vec![]));
    // (a kick served by a batch that took items is spent)
    q.kick();
    q.try_push(W(1)).ok().unwrap();
    assert!(q.pop_batch(&mut out, 8, usize::MAX).await);
    assert_eq!(out, ws(&[1]));
    out.clear();
    use std::future::Future;
    let mut again = std::pin::pin!(q.pop_batch(&mut out, 8, usize::MAX));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(again.as_mut().poll(&mut cx).is_pending());
}

#[tokio::test]
async fn bounded_fifo_with_backpressure() {
    let q = Arc::new(q(2, usize::MAX));
    assert!(q.try_push(W(1)).is_ok());
    assert!(q.try_push(W(2)).is_ok());
    assert!(matches!(q.try_push(W(3)), Err(PushError::Full(W(3)))));
    let q2 = q.clone();
    let pusher = tokio::spawn(async move { q2.push(W(3)).await });
    tokio::task::yield_now().await;
    assert_eq!(q.pop().await, Some(W(1)));
    pusher.await.unwrap().ok().unwrap();
    let mut out = Vec::new();
    assert!(q.pop_batch(&mut out, 10, usize::MAX).await);
    assert_eq!(out, ws(&[2, 3]));
    let mut batch: VecDeque<_> = (10..15).map(W).collect();
    let q3 = q.clone();
    let batcher = tokio::spawn(async move {
        q3.push_all(&mut batch).await.unwrap();
        batch.len()
    });
    let mut got = Vec::new();
    while got.len() < 5 {
        got.push(q.pop().await.unwrap());
    }
    assert_eq!(got, ws(&[10, 11, 12, 13, 14]));
    assert_eq!(batcher.await.unwrap(), 0);
    q.try_push(W(99)).ok().unwrap();
    q.close();
    assert!(matches!(q.try_push(W(1)), Err(PushError::Closed(W(1)))));
    assert_eq!(q.try_pop(), Some(W(99)));
    assert_eq!(q.pop().await, None);
}

#[test]
fn bytes_bound_the_queue_but_an_empty_queue_takes_any_message() {
    let q = q(1000, 100);
    // A message bigger than the whole bound enters an empty queue...
    assert!(q.try_push(W(500)).is_ok());
    // ...and nothing enters behind it until it has gone.
    assert!(matches!(q.try_push(W(1)), Err(PushError::Full(_))));
    assert_eq!(q.try_pop(), Some(W(500)));
    assert!(q.try_push(W(60)).is_ok());
    assert!(q.try_push(W(40)).is_ok());
    assert!(matches!(q.try_push(W(1)), Err(PushError::Full(_))));
    assert_eq!(q.try_pop(), Some(W(60)));
    assert!(q.try_push(W(60)).is_ok());
}

#[tokio::test]
async fn pop_batch_stops_at_its_byte_limit() {
    let q = q(1000, usize::MAX);
    for n in [10, 10, 10, 10] {
        q.try_push(W(n)).ok().unwrap();
    }
    let mut out = Vec::new();
    assert!(q.pop_batch(&mut out, 100, 15).await);
    assert_eq!(out, ws(&[10, 10]), "stops once past the limit");
    out.clear();
    assert!(q.pop_batch(&mut out, 1, 1000).await);
    assert_eq!(out.len(), 1, "and at the count");
}

#[tokio::test]
async fn a_spent_budget_holds_back_backed_up_queues_only() {
    let budget = Budget::new(100);
    let slow = Arc::new(Queue::new(
        Bounds {
            items: 1000,
            bytes: 1000,
        },
        Some(budget.clone()),
    ));
    let fast = Queue::new(
        Bounds {
            items: 1000,
            bytes: 1000,
        },
        Some(budget.clone()),
    );
    slow.try_push(W(60)).ok().unwrap();
    slow.try_push(W(40)).ok().unwrap();
    assert_eq!(budget.used(), 100);
    // The backed-up queue waits for the budget...
    assert!(matches!(slow.try_push(W(1)), Err(PushError::Full(_))));
    // ...an empty one still takes a message (its peer reads)...
    fast.try_push(W(30)).ok().unwrap();
    // ...but not a second while the budget is spent.
    assert!(matches!(fast.try_push(W(1)), Err(PushError::Full(_))));
    // A waiting push goes through once the budget has room again.
    let s2 = slow.clone();
    let waiter = tokio::spawn(async move { s2.push(W(5)).await.is_ok() });
    tokio::task::yield_now().await;
    assert_eq!(fast.try_pop(), Some(W(30)));
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "still over budget: 100 bytes queued");
    assert_eq!(slow.try_pop(), Some(W(60)));
    assert!(waiter.await.unwrap(), "woken by the budget's release");
    assert_eq!(budget.used(), 45);
    // Dropping a queue gives its bytes back.
    drop(slow);
    assert_eq!(budget.used(), 0);
}
