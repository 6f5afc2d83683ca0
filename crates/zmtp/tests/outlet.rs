//! A connection's write side (`Outlet`): an idle connection written by
//! its sender, a delivery's replies leaving together from the reader, and
//! a busy connection still going through its writer task.

mod common;

use common::*;
use zmtp::{DealerSocket, RouterSocket, SocketEvent};

/// A message sent on an idle connection is written on the sending task:
/// nothing waits in the queue for the connection's writer task. What the
/// stream does not take at once (a 16 MiB message) the writer task
/// finishes, before what was sent after it. libzmq receives them all, in
/// order.
#[tokio::test(flavor = "current_thread")]
async fn an_idle_connection_is_written_on_the_senders_task_in_order() {
    init_tracing();
    let router = RouterSocket::new();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let d = zsock(zmq::DEALER);
        d.connect(&ep).unwrap();
        d.send("hello", 0).unwrap();
        (0..4)
            .map(|_| {
                let parts = d.recv_multipart(0).unwrap();
                let last = parts.last().unwrap();
                (parts.len(), last.len(), last[0])
            })
            .collect::<Vec<_>>()
    });
    let hello = within("hello", router.recv()).await.unwrap();
    let id = hello.frames()[0].clone();
    // (the connection's writer task has nothing to do: it waits)
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    router.try_send(msg(&[&id, b"\x01"])).unwrap();
    assert_eq!(router.queued_outbound(), 0, "written, not queued");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let big = vec![2u8; 16 << 20];
    router.try_send(msg(&[&id, &big])).unwrap();
    router.try_send(msg(&[&id, b"\x03"])).unwrap();
    router.try_send(msg(&[&id, b"\x04"])).unwrap();
    let got = within(
        "libzmq received all",
        blocking(move || peer.join().unwrap()),
    )
    .await;
    assert_eq!(got, vec![(1, 1, 1), (1, 16 << 20, 2), (1, 1, 3), (1, 1, 4)]);
}

/// Answers each request at once on the router, and notes how many
/// messages wait in the router's send queues after each answer.
struct AnswerAndCountQueued {
    router: std::sync::Mutex<std::sync::Weak<RouterSocket>>,
    queued: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
    /// Bytes after the reply's first.
    padding: usize,
}

impl zmtp::Deliver for AnswerAndCountQueued {
    fn deliver(
        &self,
        batch: &mut std::collections::VecDeque<zmtp::Message>,
        _: &mut std::task::Context<'_>,
    ) {
        let Some(router) = self.router.lock().unwrap().upgrade() else {
            return;
        };
        for m in batch.drain(..) {
            let frames = m.frames();
            let mut reply = vec![frames[frames.len() - 1][0]];
            reply.resize(1 + self.padding, 0);
            router
                .try_send(msg(&[&frames[0][..], b"", &reply]))
                .unwrap();
            self.queued.lock().unwrap().push(router.queued_outbound());
        }
    }
}

/// Sixteen requests sent at once, each answered on the router's reader
/// with `padding` bytes more than one; returns the router's queued
/// messages after each answer.
async fn sixteen_answered_in_one_delivery(padding: usize) -> Vec<usize> {
    let router = std::sync::Arc::new(RouterSocket::new());
    let mut events = router.monitor();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let queued = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _served = router.deliver_to(std::sync::Arc::new(AnswerAndCountQueued {
        router: std::sync::Mutex::new(std::sync::Arc::downgrade(&router)),
        queued: queued.clone(),
        padding,
    }));
    let dealer = DealerSocket::new();
    dealer.connect(&ep.to_string()).await.unwrap();
    wait_event(&mut events, "connected", |e| {
        matches!(e, SocketEvent::Connected { .. })
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Queued without a pause, so the dealer's writer sends them together.
    for n in 0..16u8 {
        dealer.try_send(msg(&[b"", &[n]])).unwrap();
    }
    for n in 0..16u8 {
        let r = within("reply", dealer.recv()).await.unwrap();
        assert_eq!(r.frames()[1].len(), 1 + padding);
        assert_eq!(r.frames()[1][0], n, "in order");
    }
    let q = queued.lock().unwrap().clone();
    q
}

/// The replies a delivery sends on its own connection wait in the
/// connection's buffer, not in its queue, and leave together once the
/// delivery is done, written by the reader (the connection's writer task
/// was idle): none of sixteen requests read at once left a reply queued.
#[tokio::test(flavor = "current_thread")]
async fn the_replies_of_a_delivery_leave_together_from_the_reader() {
    init_tracing();
    assert_eq!(sixteen_answered_in_one_delivery(0).await, vec![0; 16]);
}

/// A delivery holds at most 256 KiB of what it sends: of 100 KiB replies
/// it holds three, and queues the rest (under the queue's limits); all
/// arrive in order. (How the requests are split between reads varies, so
/// only that some replies were queued is asserted: held whole, none is.)
#[tokio::test(flavor = "current_thread")]
async fn a_delivery_holds_a_bounded_amount() {
    init_tracing();
    let queued = sixteen_answered_in_one_delivery(100 * 1024).await;
    assert_eq!(queued[0], 0, "{queued:?}");
    assert!(queued.iter().any(|&q| q > 0), "none queued: {queued:?}");
}

/// Answers a request `[n]` with `n` replies at once, on the router.
struct AnswerN(std::sync::Mutex<std::sync::Weak<RouterSocket>>);

impl zmtp::Deliver for AnswerN {
    fn deliver(
        &self,
        batch: &mut std::collections::VecDeque<zmtp::Message>,
        _: &mut std::task::Context<'_>,
    ) {
        let Some(router) = self.0.lock().unwrap().upgrade() else {
            return;
        };
        for m in batch.drain(..) {
            let frames = m.frames();
            for _ in 0..frames[frames.len() - 1][0] {
                router.try_send(msg(&[&frames[0][..], b"", b"r"])).unwrap();
            }
        }
    }
}

/// Counts what it is given.
struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl zmtp::Deliver for Count {
    fn deliver(
        &self,
        batch: &mut std::collections::VecDeque<zmtp::Message>,
        _: &mut std::task::Context<'_>,
    ) {
        let n = batch.drain(..).count();
        self.0.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }
}

/// After a delivery of several messages, what is sent next goes through
/// the connection's writer task (the tasks the delivery woke are about to
/// send one after another, and should leave together); after a delivery
/// of one, the sender writes it itself.
#[tokio::test(flavor = "current_thread")]
async fn after_a_delivery_of_several_messages_sends_wait_for_the_writer() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    init_tracing();
    let router = std::sync::Arc::new(RouterSocket::new());
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let _served = router.deliver_to(std::sync::Arc::new(AnswerN(std::sync::Mutex::new(
        std::sync::Arc::downgrade(&router),
    ))));
    let got = std::sync::Arc::new(AtomicUsize::new(0));
    let dealer = DealerSocket::new();
    let _replies = dealer.deliver_to(std::sync::Arc::new(Count(got.clone())));
    dealer.connect(&ep.to_string()).await.unwrap();
    let wait_for = |n: usize| {
        let got = got.clone();
        within("replies", async move {
            while got.load(Ordering::SeqCst) < n {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
    };
    dealer.send(msg(&[b"", &[2]])).await.unwrap();
    // (two replies in one write: one read, one delivery of two)
    wait_for(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    dealer.try_send(msg(&[b"", &[1]])).unwrap();
    assert_eq!(dealer.queued_outbound(), 1, "queued for the writer");
    wait_for(3).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    dealer.try_send(msg(&[b"", &[1]])).unwrap();
    assert_eq!(dealer.queued_outbound(), 0, "written by the sender");
    wait_for(4).await;
}
