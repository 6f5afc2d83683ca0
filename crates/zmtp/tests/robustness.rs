//! Bad input of every kind closes only the offending connection; queues and
//! messages stay bounded.
//!
//! One file over 600 lines on purpose: each file under `tests/` is a test
//! binary of its own, linked on its own, so a suite that shares its peers
//! and fixtures stays one binary (split, it would link once per part).

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zmtp::{
    Command, DealerSocket, Greeting, Handshake, Limits, Message, NullMechanism, PubSocket,
    PullSocket, PushSocket, RouterSocket, SocketEvent, SocketOptions, SocketType, ZmtpError,
};

fn addr(ep: &zmtp::Endpoint) -> String {
    ep.to_string().trim_start_matches("tcp://").to_owned()
}

/// A raw TCP connection that completed a NULL handshake as `kind`.
async fn raw_handshake(ep: &zmtp::Endpoint, kind: SocketType) -> (TcpStream, BytesMut) {
    let mut s = TcpStream::connect(addr(ep)).await.unwrap();
    let hs = Handshake::new(kind, Bytes::new(), Box::new(NullMechanism::new()));
    let mut input = BytesMut::new();
    let (mut r, mut w) = s.split();
    within(
        "raw handshake",
        hs.run(&mut r, &mut w, &mut input, zmtp::Limits::default()),
    )
    .await
    .expect("handshake");
    (s, input)
}

/// Reads until the server closes the connection.
async fn expect_closed(s: &mut TcpStream, what: &str) {
    within(&format!("server to close the connection: {what}"), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
}

/// Waits for the connection's failure event (`HandshakeFailed`, or
/// `Disconnected` once past the handshake) and checks its reason.
async fn expect_reason(
    events: &mut tokio::sync::broadcast::Receiver<SocketEvent>,
    what: &str,
    after_handshake: bool,
    reason: &str,
) {
    let ev = wait_event(events, what, |e| match e {
        SocketEvent::Disconnected { .. } => after_handshake,
        SocketEvent::HandshakeFailed { .. } => !after_handshake,
        _ => false,
    })
    .await;
    let got = match ev {
        SocketEvent::Disconnected { reason, .. } | SocketEvent::HandshakeFailed { reason, .. } => {
            reason
        }
        other => panic!("{what}: unexpected {other:?}"),
    };
    assert!(
        got.contains(reason),
        "{what}: reason {got:?} should mention {reason:?}"
    );
}

async fn assert_still_serves(router: &RouterSocket, good: &DealerSocket, n: u8) {
    good.send(msg(&[b"", b"still there?", &[n]])).await.unwrap();
    let m = within("router serves the good peer", router.recv())
        .await
        .unwrap();
    assert_eq!(&m.frames()[2][..], b"still there?");
    router
        .send(msg(&[&m.frames()[0], b"", b"yes"]))
        .await
        .unwrap();
    let r = within("good peer gets its reply", good.recv())
        .await
        .unwrap();
    assert_eq!(&r.frames()[1][..], b"yes");
}

fn greeting_with(f: impl FnOnce(&mut [u8; 64])) -> Vec<u8> {
    let mut g = Greeting::new("NULL", false).encode();
    f(&mut g);
    g.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_greetings_and_handshakes_close_only_the_offender() {
    init_tracing();
    let router = RouterSocket::with_options(SocketOptions {
        handshake_timeout: Duration::from_millis(500),
        ..Default::default()
    });
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut events = router.monitor();
    let good = DealerSocket::new();
    good.connect(&ep.to_string()).await.unwrap();
    assert_still_serves(&router, &good, 0).await;

    let mut ready_from_push = BytesMut::new();
    Command::Ready(zmtp::Metadata::for_socket(SocketType::Push, b"")).encode(&mut ready_from_push);
    let mut ready_unknown_type = BytesMut::new();
    let mut md = zmtp::Metadata::new();
    md.insert("Socket-Type", Bytes::from_static(b"TOASTER"));
    Command::Ready(md).encode(&mut ready_unknown_type);
    let mut ping_first = BytesMut::new();
    Command::Ping {
        ttl: 0,
        context: Bytes::new(),
    }
    .encode(&mut ping_first);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "http request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "invalid greeting",
        ),
        (
            "zmtp 1.0 signature",
            greeting_with(|g| g[9] = 0),
            "invalid greeting",
        ),
        (
            "zmtp 2.0",
            greeting_with(|g| g[10] = 1),
            "unsupported ZMTP version",
        ),
        (
            "unknown mechanism",
            greeting_with(|g| g[12..16].copy_from_slice(b"ABCD")),
            "mechanism mismatch",
        ),
        (
            "bad as-server byte",
            greeting_with(|g| g[32] = 9),
            "invalid greeting",
        ),
        (
            "data before READY",
            [greeting_with(|_| {}), vec![0, 2, b'h', b'i']].concat(),
            "protocol violation",
        ),
        (
            "PING before READY",
            [greeting_with(|_| {}), ping_first.to_vec()].concat(),
            "protocol violation",
        ),
        (
            "PUSH talking to ROUTER",
            [greeting_with(|_| {}), ready_from_push.to_vec()].concat(),
            "cannot talk",
        ),
        (
            "unknown socket type",
            [greeting_with(|_| {}), ready_unknown_type.to_vec()].concat(),
            "unknown socket type",
        ),
        (
            "truncated command",
            [greeting_with(|_| {}), vec![4, 40, 5, b'R']].concat(),
            "timed out",
        ),
        ("silence", vec![], "timed out"),
    ];
    for (i, (what, bytes, reason)) in cases.into_iter().enumerate() {
        let mut s = TcpStream::connect(addr(&ep)).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        expect_closed(&mut s, what).await;
        expect_reason(&mut events, what, false, reason).await;
        assert_still_serves(&router, &good, i as u8 + 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_traffic_after_handshake_closes_only_the_offender() {
    init_tracing();
    let router = RouterSocket::with_options(SocketOptions {
        limits: Limits {
            max_message_size: 1024 * 1024,
            max_frames: 64,
        },
        ..Default::default()
    });
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut events = router.monitor();
    let good = DealerSocket::new();
    good.connect(&ep.to_string()).await.unwrap();
    assert_still_serves(&router, &good, 0).await;

    let mut absurd = vec![0x02u8];
    absurd.extend_from_slice(&(1u64 << 62).to_be_bytes());
    let mut just_over = vec![0x02u8];
    just_over.extend_from_slice(&(1024u64 * 1024 + 1).to_be_bytes());
    let mut ready_again = BytesMut::new();
    Command::Ready(zmtp::Metadata::for_socket(SocketType::Dealer, b"")).encode(&mut ready_again);
    let too_many_frames: Vec<u8> = std::iter::repeat_n([1u8, 0u8], 65).flatten().collect();
    let mut command_mid_message = vec![1u8, 1, b'x'];
    Command::Ping {
        ttl: 0,
        context: Bytes::new(),
    }
    .encode_into_vec(&mut command_mid_message);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("absurd frame size", absurd, "exceeds the maximum"),
        (
            "frame just over the limit",
            just_over,
            "exceeds the maximum",
        ),
        (
            "READY after handshake",
            ready_again.to_vec(),
            "READY after the handshake",
        ),
        ("too many frames", too_many_frames, "more than 64 frames"),
        (
            "command inside a multipart message",
            command_mid_message,
            "middle of a multipart",
        ),
        (
            "malformed command",
            vec![4, 3, 0, b'A', b'B'],
            "truncated command name",
        ),
        (
            "peer ERROR",
            {
                let mut b = BytesMut::new();
                Command::Error("bye".into()).encode(&mut b);
                b.to_vec()
            },
            "bye",
        ),
        (
            "truncated frame then EOF",
            vec![0x00, 200, 1, 2, 3],
            "closed by peer",
        ),
    ];
    for (i, (what, bytes, reason)) in cases.into_iter().enumerate() {
        let (mut s, _) = raw_handshake(&ep, SocketType::Dealer).await;
        wait_event(&mut events, what, |e| {
            matches!(e, SocketEvent::Connected { .. })
        })
        .await;
        s.write_all(&bytes).await.unwrap();
        if what.contains("EOF") {
            s.shutdown().await.unwrap();
        }
        expect_closed(&mut s, what).await;
        expect_reason(&mut events, what, true, reason).await;
        assert_still_serves(&router, &good, i as u8 + 1).await;
    }
}

trait EncodeIntoVec {
    fn encode_into_vec(&self, v: &mut Vec<u8>);
}
impl EncodeIntoVec for Command {
    fn encode_into_vec(&self, v: &mut Vec<u8>) {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        v.extend_from_slice(&b);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_with_pong() {
    init_tracing();
    let router = RouterSocket::new();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let (mut s, mut input) = raw_handshake(&ep, SocketType::Dealer).await;
    let mut b = BytesMut::new();
    Command::Ping {
        ttl: 100,
        context: Bytes::from_static(b"ctx-42"),
    }
    .encode(&mut b);
    s.write_all(&b).await.unwrap();
    let mut dec = zmtp::Decoder::new(Limits::default(), None);
    let got = within("pong", async {
        loop {
            if let Some(item) = dec.decode(&mut input).unwrap() {
                return item;
            }
            assert!(s.read_buf(&mut input).await.unwrap() > 0);
        }
    })
    .await;
    assert_eq!(
        got,
        zmtp::Incoming::Pong {
            context: Bytes::from_static(b"ctx-42")
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_from_libzmq_drops_that_peer_only() {
    init_tracing();
    let router = RouterSocket::with_options(SocketOptions {
        limits: Limits {
            max_message_size: 64 * 1024,
            max_frames: 16,
        },
        ..Default::default()
    });
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut events = router.monitor();
    let good = DealerSocket::new();
    good.connect(&ep).await.unwrap();
    let ep2 = ep.clone();
    let zmq_side = tokio::spawn(blocking(move || {
        let d = zsock(zmq::DEALER);
        d.set_reconnect_ivl(60_000).unwrap();
        d.connect(&ep2).unwrap();
        d.send_multipart([vec![], vec![0u8; 100 * 1024]], 0)
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }));
    let ev = wait_event(
        &mut events,
        "oversized peer dropped",
        |e| matches!(e, SocketEvent::Disconnected { reason, .. } if reason.contains("exceeds")),
    )
    .await;
    drop(ev);
    zmq_side.await.unwrap();
    assert_still_serves(&router, &good, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_send_to_unknown_or_vanished_identity_is_an_error() {
    init_tracing();
    let router = RouterSocket::new();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut events = router.monitor();
    match router.send(msg(&[b"nobody", b"", b"x"])).await {
        Err(ZmtpError::HostUnreachable(id)) => assert_eq!(&id[..], b"nobody"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        router.send(Message::new()).await,
        Err(ZmtpError::EmptyMessage)
    ));
    let dealer = DealerSocket::with_options(SocketOptions {
        identity: Some(Bytes::from_static(b"short-lived")),
        ..Default::default()
    });
    dealer.connect(&ep.to_string()).await.unwrap();
    wait_event(&mut events, "connected", |e| {
        matches!(e, SocketEvent::Connected { .. })
    })
    .await;
    router
        .send(msg(&[b"short-lived", b"", b"hi"]))
        .await
        .unwrap();
    drop(dealer);
    wait_event(&mut events, "disconnected", |e| {
        matches!(e, SocketEvent::Disconnected { .. })
    })
    .await;
    assert!(matches!(
        router.send(msg(&[b"short-lived", b"", b"hi"])).await,
        Err(ZmtpError::HostUnreachable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_identity_is_refused_without_harming_the_first() {
    init_tracing();
    let router = RouterSocket::new();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut events = router.monitor();
    let opts = || SocketOptions {
        identity: Some(Bytes::from_static(b"twin")),
        ..Default::default()
    };
    let first = DealerSocket::with_options(opts());
    first.connect(&ep).await.unwrap();
    wait_event(&mut events, "first", |e| {
        matches!(e, SocketEvent::Connected { .. })
    })
    .await;
    let second = DealerSocket::with_options(opts());
    second.connect(&ep).await.unwrap();
    wait_event(&mut events, "second refused", |e| {
        matches!(e, SocketEvent::HandshakeFailed { reason, .. } if reason.contains("already connected"))
    })
    .await;
    router
        .send(msg(&[b"twin", b"", b"for the first"]))
        .await
        .unwrap();
    let r = within("first gets it", first.recv()).await.unwrap();
    assert_eq!(&r.frames()[1][..], b"for the first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_backpressure_is_bounded_and_resumes() {
    init_tracing();
    const BODY: usize = 16 * 1024;
    let push = PushSocket::with_options(SocketOptions {
        send_hwm: 8,
        ..Default::default()
    });
    let ep = push.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<usize>();
    let zmq_side = tokio::spawn(blocking(move || {
        let pull = zsock(zmq::PULL);
        pull.set_rcvhwm(8).unwrap();
        pull.connect(&ep).unwrap();
        // Don't read until told how many were sent.
        let expected = go_rx.recv_timeout(WEDGE).unwrap();
        for i in 0..expected {
            let m = pull.recv_bytes(0).unwrap();
            assert_eq!(&m[..8], &(i as u64).to_be_bytes());
        }
        expected
    }));
    let mut events = push.monitor();
    wait_event(&mut events, "connected", |e| {
        matches!(e, SocketEvent::Connected { .. })
    })
    .await;
    // Fill everything: our queue, kernel buffers, libzmq's queue.
    let mut sent = 0u64;
    let mut would_block = 0;
    while would_block < 50 {
        let mut body = vec![0u8; BODY];
        body[..8].copy_from_slice(&sent.to_be_bytes());
        match push.try_send(Message::from(body)) {
            Ok(()) => {
                sent += 1;
                would_block = 0;
            }
            Err(ZmtpError::WouldBlock) => {
                would_block += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(
            sent < 20_000,
            "no backpressure after {sent} messages of {BODY} bytes"
        );
    }
    // Bounded: our 8 + libzmq's 8 + socket buffers (a few MiB at most).
    assert!(sent as usize * BODY < 64 * 1024 * 1024, "sent {sent}");
    // Once the consumer reads, an awaited send completes again.
    go_tx.send(sent as usize + 1).unwrap();
    let mut body = vec![0u8; BODY];
    body[..8].copy_from_slice(&sent.to_be_bytes());
    within("send resumes", push.send(Message::from(body)))
        .await
        .unwrap();
    assert_eq!(zmq_side.await.unwrap(), sent as usize + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_drops_for_a_slow_subscriber_and_never_blocks() {
    init_tracing();
    let publisher = PubSocket::with_options(SocketOptions {
        send_hwm: 16,
        ..Default::default()
    });
    let ep = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let mut events = publisher.monitor();
    let (sub_ready_tx, sub_ready_rx) = std::sync::mpsc::channel::<()>();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let zmq_side = tokio::spawn(blocking(move || {
        let sub = zsock(zmq::SUB);
        sub.set_rcvhwm(16).unwrap();
        sub.set_subscribe(b"").unwrap();
        sub.connect(&ep).unwrap();
        sub_ready_tx.send(()).unwrap();
        // Never read until the publisher is done.
        stop_rx.recv_timeout(WEDGE).unwrap();
        let mut n = 0;
        while sub.recv_bytes(zmq::DONTWAIT).is_ok() {
            n += 1;
        }
        n
    }));
    sub_ready_rx.recv_timeout(WEDGE).unwrap();
    wait_event(&mut events, "subscriber", |e| {
        matches!(e, SocketEvent::Connected { .. })
    })
    .await;
    // Flood until the subscriber's queue overflows (its subscription
    // travels asynchronously, so the first messages may match nobody).
    let body = Bytes::from(vec![1u8; 4096]);
    let mut sent = 0u64;
    within("publisher starts dropping", async {
        while publisher.dropped() == 0 {
            for _ in 0..1000 {
                publisher.send(Message::from(body.clone())).unwrap();
            }
            sent += 1000;
            tokio::task::yield_now().await;
        }
    })
    .await;
    for _ in 0..10_000 {
        publisher.send(Message::from(body.clone())).unwrap();
    }
    sent += 10_000;
    assert!(
        publisher.dropped() > 1000,
        "a subscriber that never reads must miss messages"
    );
    stop_tx.send(()).unwrap();
    let received = zmq_side.await.unwrap();
    assert!((received as u64) < sent, "received {received} of {sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_hwm_stops_reading_from_a_fast_sender() {
    init_tracing();
    const BODY: usize = 16 * 1024;
    let pull = PullSocket::with_options(SocketOptions {
        recv_hwm: 8,
        ..Default::default()
    });
    let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let zmq_side = tokio::spawn(blocking(move || {
        let push = zsock(zmq::PUSH);
        push.set_sndhwm(8).unwrap();
        push.connect(&ep).unwrap();
        let body = vec![3u8; BODY];
        let mut sent = 0usize;
        let mut eagain = 0;
        // Push until libzmq itself reports the pipe full for a while.
        while eagain < 100 && sent < 20_000 {
            match push.send(&body, zmq::DONTWAIT) {
                Ok(()) => {
                    sent += 1;
                    eagain = 0;
                }
                Err(zmq::Error::EAGAIN) => {
                    eagain += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        }
        (sent, push)
    }));
    let (sent, push) = zmq_side.await.unwrap();
    assert!(sent < 20_000, "our PULL never pushed back");
    // We buffer at most recv_hwm messages plus one read buffer's worth.
    assert!(sent * BODY < 64 * 1024 * 1024);
    for _ in 0..sent {
        within("drain", pull.recv()).await.unwrap();
    }
    drop(push);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_queues_are_bounded_by_bytes_for_every_socket_type() {
    init_tracing();
    const MIB: usize = 1024 * 1024;
    const LIMIT: usize = 4 * MIB;
    // PUB (drops) and ROUTER (waits) toward libzmq peers that never read;
    // the message limit alone (1000) would let each hold 1 GiB.
    let opts = || SocketOptions {
        send_hwm_bytes: LIMIT,
        ..Default::default()
    };
    let publisher = PubSocket::with_options(opts());
    let pub_ep = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let router = RouterSocket::with_options(opts());
    let router_ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut pub_events = publisher.monitor();
    let mut router_events = router.monitor();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let zmq_side = tokio::spawn(blocking(move || {
        let sub = zsock(zmq::SUB);
        sub.set_rcvhwm(1).unwrap();
        sub.set_rcvbuf(64 * 1024).unwrap();
        sub.set_subscribe(b"").unwrap();
        sub.connect(&pub_ep).unwrap();
        let dealer = zsock(zmq::DEALER);
        dealer.set_rcvhwm(1).unwrap();
        dealer.set_rcvbuf(64 * 1024).unwrap();
        dealer.set_identity(b"slow").unwrap();
        dealer.connect(&router_ep).unwrap();
        // Never read until told.
        stop_rx.recv_timeout(WEDGE).unwrap();
    }));
    wait_event(&mut pub_events, "subscriber", |e| {
        matches!(e, SocketEvent::Connected { .. })
    })
    .await;
    wait_event(&mut router_events, "dealer", |e| {
        matches!(e, SocketEvent::Connected { .. })
    })
    .await;
    let body = Bytes::from(vec![7u8; MIB]);
    // PUB: keeps publishing, the slow subscriber misses what is over.
    within("publisher drops by bytes", async {
        while publisher.dropped() == 0 {
            publisher.send(Message::from(body.clone())).unwrap();
            tokio::task::yield_now().await;
        }
    })
    .await;
    // ROUTER: a send waits once the peer's queue holds its bytes.
    let mut queued = 0;
    within("router send blocks by bytes", async {
        loop {
            let msg: Message = vec![Bytes::from_static(b"slow"), body.clone()]
                .into_iter()
                .collect();
            match router.try_send(msg) {
                Ok(()) => queued += 1,
                Err(ZmtpError::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let held = router.queued_outbound_bytes() + publisher.queued_outbound_bytes();
    eprintln!("PUB dropped {}, ROUTER queued {queued} MiB before blocking, {held} bytes held in send queues", publisher.dropped());
    assert!(
        queued < 100,
        "the ROUTER took {queued} MiB for a peer that does not read"
    );
    assert!(
        router.queued_outbound_bytes() <= LIMIT + MIB + 1024
            && publisher.queued_outbound_bytes() <= LIMIT + MIB + 1024,
        "{held} bytes queued"
    );
    stop_tx.send(()).unwrap();
    zmq_side.await.unwrap();
}
