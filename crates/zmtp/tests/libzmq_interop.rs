//! Conformance: every socket type of ours against its libzmq counterpart,
//! in both directions (ours binds / libzmq connects, and the reverse).
//!
//! One file over 600 lines on purpose: each file under `tests/` is a test
//! binary of its own, linked on its own, so a suite that shares its peers
//! and fixtures stays one binary (split, it would link once per part).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use zmtp::{DealerSocket, PubSocket, PullSocket, PushSocket, RouterSocket, SocketEvent, SubSocket};

// ---------------------------------------------------------------- DEALER

async fn dealer_vs_libzmq_router(ours_binds: bool) {
    init_tracing();
    let dealer = DealerSocket::new();
    let (ep_tx, ep_rx) = std::sync::mpsc::channel::<String>();
    let ours_ep = if ours_binds {
        Some(dealer.bind("tcp://127.0.0.1:0").await.unwrap().to_string())
    } else {
        None
    };
    let zmq_side = tokio::spawn(blocking(move || {
        let router = zsock(zmq::ROUTER);
        match ours_ep {
            Some(ep) => router.connect(&ep).unwrap(),
            None => ep_tx.send(zbind(&router)).unwrap(),
        }
        // Echo four messages back, adding a marker frame.
        let mut seen = Vec::new();
        for _ in 0..4 {
            let mut m = router.recv_multipart(0).unwrap();
            seen.push(m.clone());
            m.push(b"echo".to_vec());
            router.send_multipart(m, 0).unwrap();
        }
        seen
    }));
    if !ours_binds {
        let ep = ep_rx.recv_timeout(WEDGE).unwrap();
        dealer.connect(&ep).await.unwrap();
    }
    for i in 0..3u8 {
        within("dealer send", dealer.send(msg(&[b"", b"hello", &[i]])))
            .await
            .unwrap();
        let reply = within("dealer recv", dealer.recv()).await.unwrap();
        assert_eq!(
            frames(&reply),
            vec![b"".to_vec(), b"hello".to_vec(), vec![i], b"echo".to_vec()]
        );
    }
    // A last frame sent in pieces (the large one written uncopied) is one
    // frame to libzmq.
    let mut pieced = msg(&[b""]);
    let big = bytes::Bytes::from(vec![b'p'; 50_000]);
    pieced.push_back_pieces([
        bytes::Bytes::from_static(b"<"),
        big,
        bytes::Bytes::from_static(b">"),
    ]);
    let mut joined = b"<".to_vec();
    joined.extend_from_slice(&[b'p'; 50_000]);
    joined.push(b'>');
    within("dealer send", dealer.send(pieced)).await.unwrap();
    let reply = within("dealer recv", dealer.recv()).await.unwrap();
    assert_eq!(
        frames(&reply),
        vec![b"".to_vec(), joined.clone(), b"echo".to_vec()]
    );
    let seen = zmq_side.await.unwrap();
    for m in &seen[..3] {
        // libzmq's ROUTER saw [generated identity, "", "hello", i]
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].len(), 5, "libzmq-generated routing id");
        assert_eq!(m[0][0], 0);
        assert_eq!(m[2], b"hello");
    }
    assert_eq!(seen[3].len(), 3);
    assert_eq!(seen[3][2], joined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dealer_binds_libzmq_router_connects() {
    dealer_vs_libzmq_router(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dealer_connects_libzmq_router_binds() {
    dealer_vs_libzmq_router(false).await;
}

// ---------------------------------------------------------------- ROUTER

async fn router_vs_libzmq_dealer(ours_binds: bool, identity: Option<&'static [u8]>) {
    init_tracing();
    let router = RouterSocket::new();
    let (ep_tx, ep_rx) = std::sync::mpsc::channel::<String>();
    let ours_ep = if ours_binds {
        Some(router.bind("tcp://127.0.0.1:0").await.unwrap().to_string())
    } else {
        None
    };
    let zmq_side = tokio::spawn(blocking(move || {
        let dealer = zsock(zmq::DEALER);
        if let Some(id) = identity {
            dealer.set_identity(id).unwrap();
        }
        match ours_ep {
            Some(ep) => dealer.connect(&ep).unwrap(),
            None => ep_tx.send(zbind(&dealer)).unwrap(),
        }
        dealer
            .send_multipart([&b""[..], b"ping", b"payload"], 0)
            .unwrap();
        dealer.recv_multipart(0).unwrap()
    }));
    if !ours_binds {
        router
            .connect(&ep_rx.recv_timeout(WEDGE).unwrap())
            .await
            .unwrap();
    }
    let m = within("router recv", router.recv()).await.unwrap();
    let f = frames(&m);
    assert_eq!(
        &f[1..],
        &[b"".to_vec(), b"ping".to_vec(), b"payload".to_vec()]
    );
    match identity {
        Some(id) => assert_eq!(f[0], id),
        None => {
            assert_eq!(f[0].len(), 5);
            assert_eq!(
                f[0][0], 0,
                "generated ids start with a zero byte, like libzmq"
            );
        }
    }
    within("router send", router.send(msg(&[&f[0], b"", b"pong"])))
        .await
        .unwrap();
    let reply = zmq_side.await.unwrap();
    assert_eq!(reply, vec![b"".to_vec(), b"pong".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_binds_libzmq_dealer_connects() {
    router_vs_libzmq_dealer(true, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_binds_libzmq_dealer_with_identity() {
    router_vs_libzmq_dealer(true, Some(b"worker-7")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_connects_libzmq_dealer_binds() {
    router_vs_libzmq_dealer(false, Some(b"bound-dealer")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_serves_libzmq_req() {
    init_tracing();
    let router = RouterSocket::new();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let zmq_side = tokio::spawn(blocking(move || {
        let req = zsock(zmq::REQ);
        req.connect(&ep).unwrap();
        req.send("question", 0).unwrap();
        req.recv_multipart(0).unwrap()
    }));
    let m = within("router recv", router.recv()).await.unwrap();
    let f = frames(&m);
    assert_eq!(&f[1..], &[b"".to_vec(), b"question".to_vec()]);
    router.send(msg(&[&f[0], b"", b"answer"])).await.unwrap();
    assert_eq!(zmq_side.await.unwrap(), vec![b"answer".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_with_many_libzmq_peers() {
    init_tracing();
    const PEERS: usize = 120;
    let router = RouterSocket::new();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let zmq_side = tokio::spawn(blocking(move || {
        let dealers: Vec<_> = (0..PEERS)
            .map(|i| {
                let d = zsock(zmq::DEALER);
                if i % 2 == 0 {
                    d.set_identity(format!("peer-{i}").as_bytes()).unwrap();
                }
                d.connect(&ep).unwrap();
                d
            })
            .collect();
        for (i, d) in dealers.iter().enumerate() {
            d.send_multipart([b"".to_vec(), i.to_string().into_bytes()], 0)
                .unwrap();
        }
        // Each dealer must get exactly its own answer.
        for (i, d) in dealers.iter().enumerate() {
            let r = d.recv_multipart(0).unwrap();
            assert_eq!(r, vec![b"".to_vec(), format!("answer-{i}").into_bytes()]);
        }
    }));
    let mut ids = std::collections::HashSet::new();
    let mut requests = Vec::new();
    for _ in 0..PEERS {
        let m = within("router recv", router.recv()).await.unwrap();
        let f = frames(&m);
        let i: usize = String::from_utf8(f[2].clone()).unwrap().parse().unwrap();
        if i.is_multiple_of(2) {
            assert_eq!(f[0], format!("peer-{i}").into_bytes());
        }
        assert!(ids.insert(f[0].clone()), "routing ids are unique");
        requests.push((f[0].clone(), i));
    }
    // Every peer has sent its request and none has its answer yet, so all
    // are connected.
    assert_eq!(router.peer_count(), PEERS);
    for (id, i) in requests {
        router
            .send(msg(&[&id, b"", format!("answer-{i}").as_bytes()]))
            .await
            .unwrap();
    }
    zmq_side.await.unwrap();
}

// ---------------------------------------------------------------- PUSH / PULL

async fn push_vs_libzmq_pull(ours_binds: bool) {
    init_tracing();
    let push = PushSocket::new();
    let (ep_tx, ep_rx) = std::sync::mpsc::channel::<String>();
    let ours_ep = if ours_binds {
        Some(push.bind("tcp://127.0.0.1:0").await.unwrap().to_string())
    } else {
        None
    };
    let zmq_side = tokio::spawn(blocking(move || {
        let pull = zsock(zmq::PULL);
        match ours_ep {
            Some(ep) => pull.connect(&ep).unwrap(),
            None => ep_tx.send(zbind(&pull)).unwrap(),
        }
        (0..1000)
            .map(|_| pull.recv_multipart(0).unwrap())
            .collect::<Vec<_>>()
    }));
    if !ours_binds {
        push.connect(&ep_rx.recv_timeout(WEDGE).unwrap())
            .await
            .unwrap();
    }
    for i in 0..1000u32 {
        within("push send", push.send(msg(&[b"task", &i.to_be_bytes()])))
            .await
            .unwrap();
    }
    let got = zmq_side.await.unwrap();
    for (i, m) in got.iter().enumerate() {
        assert_eq!(
            m,
            &vec![b"task".to_vec(), (i as u32).to_be_bytes().to_vec()]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_binds_libzmq_pull_connects() {
    push_vs_libzmq_pull(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_connects_libzmq_pull_binds() {
    push_vs_libzmq_pull(false).await;
}

async fn pull_vs_libzmq_push(ours_binds: bool) {
    init_tracing();
    let pull = PullSocket::new();
    let (ep_tx, ep_rx) = std::sync::mpsc::channel::<String>();
    let ours_ep = if ours_binds {
        Some(pull.bind("tcp://127.0.0.1:0").await.unwrap().to_string())
    } else {
        None
    };
    let zmq_side = tokio::spawn(blocking(move || {
        let push = zsock(zmq::PUSH);
        match ours_ep {
            Some(ep) => push.connect(&ep).unwrap(),
            None => ep_tx.send(zbind(&push)).unwrap(),
        }
        for i in 0..1000u32 {
            push.send_multipart([b"job".to_vec(), i.to_be_bytes().to_vec()], 0)
                .unwrap();
        }
        push
    }));
    if !ours_binds {
        pull.connect(&ep_rx.recv_timeout(WEDGE).unwrap())
            .await
            .unwrap();
    }
    for i in 0..1000u32 {
        let m = within("pull recv", pull.recv()).await.unwrap();
        assert_eq!(frames(&m), vec![b"job".to_vec(), i.to_be_bytes().to_vec()]);
    }
    drop(zmq_side.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_binds_libzmq_push_connects() {
    pull_vs_libzmq_push(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_connects_libzmq_push_binds() {
    pull_vs_libzmq_push(false).await;
}

// ---------------------------------------------------------------- PUB / SUB

async fn pub_vs_libzmq_sub(ours_binds: bool) {
    init_tracing();
    let publisher = PubSocket::new();
    let (ep_tx, ep_rx) = std::sync::mpsc::channel::<String>();
    let ours_ep = if ours_binds {
        Some(
            publisher
                .bind("tcp://127.0.0.1:0")
                .await
                .unwrap()
                .to_string(),
        )
    } else {
        None
    };
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let zmq_side = tokio::spawn(blocking(move || {
        let sub = zsock(zmq::SUB);
        sub.set_subscribe(b"weather.").unwrap();
        sub.set_subscribe(b"news").unwrap();
        match ours_ep {
            Some(ep) => sub.connect(&ep).unwrap(),
            None => ep_tx.send(zbind(&sub)).unwrap(),
        }
        let got: Vec<_> = (0..20).map(|_| sub.recv_multipart(0).unwrap()).collect();
        // Now drop "news": once the cancel reaches the publisher, only
        // weather comes through. Messages already in flight may still be
        // news, so look for a long run of weather within a bounded window
        // (without the cancel, every third message would be news).
        sub.set_unsubscribe(b"news").unwrap();
        let mut run = 0;
        let mut after = Vec::new();
        for _ in 0..5000 {
            let m = sub.recv_multipart(0).unwrap();
            run = if m[0] == b"weather.paris" { run + 1 } else { 0 };
            after.push(m);
            if run == 50 {
                break;
            }
        }
        done2.store(true, Ordering::SeqCst);
        (got, (run == 50, after))
    }));
    if !ours_binds {
        publisher
            .connect(&ep_rx.recv_timeout(WEDGE).unwrap())
            .await
            .unwrap();
    }
    // Publish until the subscriber has what it needs (slow joiner).
    let mut i = 0u32;
    while !done.load(Ordering::SeqCst) {
        for topic in [&b"weather.paris"[..], b"sports", b"news"] {
            publisher.send(msg(&[topic, &i.to_be_bytes()])).unwrap();
        }
        i += 1;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        assert!(i < 20_000, "subscriber never finished");
    }
    let (got, after) = zmq_side.await.unwrap();
    assert!(got
        .iter()
        .all(|m| m[0] == b"weather.paris" || m[0] == b"news"));
    assert!(got.iter().any(|m| m[0] == b"news"));
    let (cancelled, after) = after;
    assert!(
        cancelled,
        "cancel not honoured: {} messages without a run of weather",
        after.len()
    );
    assert!(after.iter().all(|m| m[0] != b"sports"), "never subscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_binds_libzmq_sub_connects() {
    pub_vs_libzmq_sub(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_connects_libzmq_sub_binds() {
    pub_vs_libzmq_sub(false).await;
}

async fn sub_vs_libzmq_pub(ours_binds: bool) {
    init_tracing();
    let sub = SubSocket::new();
    sub.subscribe(&b"a."[..]).await.unwrap();
    let (ep_tx, ep_rx) = std::sync::mpsc::channel::<String>();
    let ours_ep = if ours_binds {
        Some(sub.bind("tcp://127.0.0.1:0").await.unwrap().to_string())
    } else {
        None
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let zmq_side = tokio::spawn(blocking(move || {
        let publisher = zsock(zmq::XPUB);
        match ours_ep {
            Some(ep) => publisher.connect(&ep).unwrap(),
            None => ep_tx.send(zbind(&publisher)).unwrap(),
        }
        // XPUB shows the subscriptions that reach libzmq: 0x01 + "a."
        let first_sub = publisher.recv_bytes(0).unwrap();
        let mut i = 0u32;
        while !stop2.load(Ordering::SeqCst) {
            for topic in [&b"a.x"[..], b"b.y", b"c.z"] {
                publisher
                    .send_multipart([topic.to_vec(), i.to_be_bytes().to_vec()], 0)
                    .unwrap();
            }
            i += 1;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut later_subs = Vec::new();
        while let Ok(m) = publisher.recv_bytes(zmq::DONTWAIT) {
            later_subs.push(m);
        }
        (first_sub, later_subs)
    }));
    if !ours_binds {
        sub.connect(&ep_rx.recv_timeout(WEDGE).unwrap())
            .await
            .unwrap();
    }
    for _ in 0..20 {
        let m = within("sub recv", sub.recv()).await.unwrap();
        assert_eq!(&m.frames()[0][..], b"a.x");
    }
    sub.subscribe(&b"c"[..]).await.unwrap();
    sub.unsubscribe(&b"a."[..]).await.unwrap();
    // After the change only c.z arrives (a.x may still be in flight).
    let mut c_seen = 0;
    while c_seen < 10 {
        let m = within("sub recv", sub.recv()).await.unwrap();
        assert_ne!(&m.frames()[0][..], b"b.y", "never subscribed to b");
        if &m.frames()[0][..] == b"c.z" {
            c_seen += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (first_sub, later_subs) = zmq_side.await.unwrap();
    assert_eq!(first_sub, b"\x01a.");
    assert_eq!(later_subs, vec![b"\x01c".to_vec(), b"\x00a.".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_connects_libzmq_pub_binds() {
    sub_vs_libzmq_pub(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_binds_libzmq_pub_connects() {
    sub_vs_libzmq_pub(true).await;
}

// ---------------------------------------------------------------- sizes, ipc, reconnect

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_multipart_messages_both_ways() {
    init_tracing();
    let dealer = DealerSocket::new();
    let ep = dealer.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let zmq_side = tokio::spawn(blocking(move || {
        let router = zsock(zmq::ROUTER);
        router.connect(&ep).unwrap();
        let m = router.recv_multipart(0).unwrap();
        let sizes: Vec<usize> = m.iter().map(Vec::len).collect();
        // echo back with the body reversed, so content is checked too
        let mut back = m.clone();
        back[2].reverse();
        router.send_multipart(back, 0).unwrap();
        sizes
    }));
    let big: Vec<u8> = (0..(16 * 1024 * 1024 + 3))
        .map(|i| (i % 251) as u8)
        .collect();
    let mid = vec![7u8; 300];
    dealer.send(msg(&[b"", &big, &mid, b"tail"])).await.unwrap();
    let reply = within("big reply", dealer.recv()).await.unwrap();
    let sizes = zmq_side.await.unwrap();
    assert_eq!(sizes[1..], [0, big.len(), 300, 4]);
    let mut expect = big.clone();
    expect.reverse();
    assert_eq!(reply.frames()[1].as_ref(), &expect[..]);
    assert_eq!(reply.frames()[2].as_ref(), &mid[..]);
    assert_eq!(reply.frames()[3].as_ref(), b"tail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipc_router_with_libzmq_dealer() {
    init_tracing();
    let dir = std::env::temp_dir().join(format!("zmtp-ipc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ep = format!("ipc://{}/router.sock", dir.display());
    let router = RouterSocket::new();
    router.bind(&ep).await.unwrap();
    let ep2 = ep.clone();
    let zmq_side = tokio::spawn(blocking(move || {
        let dealer = zsock(zmq::DEALER);
        dealer.connect(&ep2).unwrap();
        dealer.send_multipart([&b""[..], b"over ipc"], 0).unwrap();
        dealer.recv_multipart(0).unwrap()
    }));
    let m = within("ipc recv", router.recv()).await.unwrap();
    assert_eq!(&m.frames()[2][..], b"over ipc");
    let id = m.frames()[0].clone();
    router.send(msg(&[&id, b"", b"ack"])).await.unwrap();
    assert_eq!(zmq_side.await.unwrap(), vec![b"".to_vec(), b"ack".to_vec()]);

    // And the reverse: libzmq binds ipc, our dealer connects.
    let ep3 = format!("ipc://{}/zmq.sock", dir.display());
    let ep4 = ep3.clone();
    let zmq_side = tokio::spawn(blocking(move || {
        let router = zsock(zmq::ROUTER);
        router.bind(&ep4).unwrap();
        let mut m = router.recv_multipart(0).unwrap();
        m[2] = b"pong".to_vec();
        router.send_multipart(m, 0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }));
    let dealer = DealerSocket::new();
    dealer.connect(&ep3).await.unwrap();
    dealer.send(msg(&[b"", b"ping"])).await.unwrap();
    let r = within("ipc dealer recv", dealer.recv()).await.unwrap();
    assert_eq!(frames(&r), vec![b"".to_vec(), b"pong".to_vec()]);
    zmq_side.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dealer_reconnects_after_libzmq_router_restarts() {
    init_tracing();
    // Find a port, then run a libzmq ROUTER echo on it twice.
    let probe = zsock(zmq::ROUTER);
    let ep = zbind(&probe);
    drop(probe);
    let dealer = DealerSocket::new();
    let mut events = dealer.monitor();
    dealer.connect(&ep).await.unwrap();
    for round in 0..2u8 {
        let ep2 = ep.clone();
        let server = tokio::spawn(blocking(move || {
            let router = zsock(zmq::ROUTER);
            router.set_linger(0).unwrap();
            // The port may take a moment to become free again.
            let mut tries = 0;
            while router.bind(&ep2).is_err() {
                tries += 1;
                assert!(tries < 200, "cannot rebind {ep2}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            // Echo until told to stop (the client may resend).
            router.set_rcvtimeo(200).unwrap();
            let mut served = 0;
            for _ in 0..150 {
                if let Ok(mut m) = router.recv_multipart(0) {
                    m.push(vec![round]);
                    router.send_multipart(m, 0).unwrap();
                    served += 1;
                } else if served > 0 {
                    break;
                }
            }
            assert!(
                served > 0,
                "round {round}: nothing reached the restarted router"
            );
        }));
        wait_event(&mut events, "connected", |e| {
            matches!(e, SocketEvent::Connected { .. })
        })
        .await;
        // A message sent just as a peer dies is lost (ZeroMQ is at most
        // once); an application resends, and so do we until the restarted
        // router answers.
        let r = within("reply from the restarted router", async {
            loop {
                dealer.send(msg(&[b"", b"hi"])).await.unwrap();
                let wait = std::time::Duration::from_millis(500);
                while let Ok(r) = tokio::time::timeout(wait, dealer.recv()).await {
                    let r = r.unwrap();
                    // (a late answer to an earlier round's resend is skipped)
                    if r.last().map(|b| &b[..]) == Some(&[round][..]) {
                        return r;
                    }
                }
            }
        })
        .await;
        assert_eq!(frames(&r), vec![b"".to_vec(), b"hi".to_vec(), vec![round]]);
        server.await.unwrap();
        wait_event(&mut events, "disconnected", |e| {
            matches!(e, SocketEvent::Disconnected { .. })
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libzmq_dealer_reconnects_after_our_router_restarts() {
    init_tracing();
    let router = RouterSocket::new();
    let bound = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = bound.to_string();
    let (to_zmq, from_test) = std::sync::mpsc::channel::<()>();
    let ep2 = ep.clone();
    let zmq_side = tokio::spawn(blocking(move || {
        let dealer = zsock(zmq::DEALER);
        dealer.set_identity(b"steady").unwrap();
        dealer.set_reconnect_ivl(50).unwrap();
        dealer.connect(&ep2).unwrap();
        dealer.set_rcvtimeo(1000).unwrap();
        let mut replies = Vec::new();
        for _ in 0..2 {
            // Resend until answered: a message sent while the old
            // connection was dying is lost, as ZeroMQ allows.
            let reply = (0..20)
                .find_map(|_| {
                    dealer.send_multipart([&b""[..], b"hello"], 0).unwrap();
                    dealer.recv_multipart(0).ok()
                })
                .expect("no reply after 20 tries");
            replies.push(reply);
            from_test.recv_timeout(WEDGE).unwrap();
        }
        replies
    }));
    let m = within("first", router.recv()).await.unwrap();
    router
        .send(msg(&[&m.frames()[0], b"", b"one"]))
        .await
        .unwrap();
    // Restart our side on the same port.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drop(router);
    let router = RouterSocket::new();
    let mut tries = 0;
    while router.bind(&ep).await.is_err() {
        tries += 1;
        assert!(tries < 200, "cannot rebind");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    to_zmq.send(()).unwrap();
    let m = within("second", router.recv()).await.unwrap();
    assert_eq!(&m.frames()[0][..], b"steady");
    router.send(msg(&[b"steady", b"", b"two"])).await.unwrap();
    to_zmq.send(()).unwrap();
    // Answer any resends until the libzmq side is done.
    let replies = within("libzmq side", async {
        let mut zmq_side = zmq_side;
        loop {
            tokio::select! {
                r = &mut zmq_side => return r.unwrap(),
                m = router.recv() => {
                    let m = m.unwrap();
                    router.send(msg(&[&m.frames()[0], b"", b"two"])).await.unwrap();
                }
            }
        }
    })
    .await;
    assert_eq!(replies[0][1], b"one");
    assert_eq!(replies[1][1], b"two");
}
