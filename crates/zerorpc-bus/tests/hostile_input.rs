//! Input that is not what it should be, from the network: a fedmsg PUB
//! endpoint sending wrong frame counts and non-envelopes, and a replay
//! client sending garbage or oversized queries. Each is quarantined or
//! answered with an error (or the offending connection dropped), and the
//! next good message or query is served.

use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;
use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_bus::message::Message;
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Event, Filters, Subscription};
use zerorpc_testkit::{scratch_dir, within};
use zmtp::{DealerSocket, Message as Frames, PubSocket};

fn envelope(topic: &str, k: u64) -> String {
    Message::new(topic, json!({"k": k}), k, "tester").to_canonical_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fedmsg_endpoint_sending_garbage_gets_it_quarantined_and_good_messages_still_arrive() {
    let publisher = PubSocket::new();
    let ep = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let mut sub = Subscription::fedmsg(&[ep], Filters::default())
        .await
        .unwrap();
    // PUB drops what is sent before the subscription has arrived.
    let warm = async {
        let mut k = 0;
        loop {
            k += 1;
            let frames =
                Frames::from_iter([Bytes::from("t.warm"), Bytes::from(envelope("t.warm", k))]);
            publisher.send(frames).unwrap();
            if let Ok(Some(Event::Message(_))) =
                tokio::time::timeout(std::time::Duration::from_millis(100), sub.next()).await
            {
                return;
            }
        }
    };
    within("the subscription to arrive", warm).await;
    let bad: Vec<Frames> = vec![
        Frames::from_iter([
            Bytes::from("t.x"),
            Bytes::from(envelope("t.x", 1)),
            Bytes::from("extra"),
        ]),
        Frames::from_iter([Bytes::from("t.x")]),
        Frames::from_iter([Bytes::from("t.x"), Bytes::from(&b"\xff\xfe not utf-8"[..])]),
        Frames::from_iter([Bytes::from("t.x"), Bytes::from("{not json")]),
        Frames::from_iter([Bytes::from("t.x"), Bytes::from(r#"{"topic": "t.x"}"#)]),
        Frames::from_iter([Bytes::from("t.x"), Bytes::from("[1, 2, 3]")]),
    ];
    let n_bad = bad.len();
    for frames in bad {
        publisher.send(frames).unwrap();
    }
    publisher
        .send(Frames::from_iter([
            Bytes::from("t.good"),
            Bytes::from(envelope("t.good", 7)),
        ]))
        .unwrap();
    let mut reasons = Vec::new();
    let good = within("the good message after the bad ones", async {
        loop {
            match sub.next().await.expect("subscription ended") {
                Event::Quarantined { reason, .. } => reasons.push(reason),
                Event::Message(d) if d.message.topic == "t.good" => return d,
                Event::Message(_) => {}
            }
        }
    })
    .await;
    assert_eq!(good.message.msg, json!({"k": 7}));
    assert_eq!(reasons.len(), n_bad, "{reasons:#?}");
    assert!(reasons[0].contains("3 frames"), "{reasons:?}");
    assert!(reasons[1].contains("1 frames"), "{reasons:?}");
    assert!(reasons[2].contains("UTF-8"), "{reasons:?}");
    for r in &reasons[3..] {
        assert!(r.contains("not a fedmsg envelope"), "{r}");
    }
    assert_eq!(
        sub.stats()
            .quarantined
            .load(std::sync::atomic::Ordering::Relaxed),
        n_bad as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_queries_that_are_garbage_or_oversized_harm_nobody() {
    let dir = scratch_dir("bus-hostile-replay");
    let daemon = Daemon::start(DaemonOptions::ephemeral(&dir)).await.unwrap();
    let p = Publisher::connect(PublisherOptions::new(daemon.ingest_endpoint()))
        .await
        .unwrap();
    p.publish("one", json!({})).await.unwrap();
    let replay = daemon.replay_endpoint().unwrap().to_owned();
    let ask = |query: Bytes| {
        let replay = replay.clone();
        async move {
            let req = DealerSocket::new();
            req.connect(&replay).await.unwrap();
            req.send(Frames::from_iter([Bytes::new(), query]))
                .await
                .unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(5), req.recv())
                .await
                .ok()
                .map(|m| m.unwrap())
        }
    };
    let garbage = within("garbage", ask(Bytes::from(&b"\xff\x00garbage"[..])))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(garbage.frames().last().unwrap()).into_owned();
    assert!(text.starts_with("error: '"), "{text}");
    // Bigger than a query may be: the connection is dropped, no answer.
    let huge = Bytes::from(vec![b'{'; 1 << 20]);
    assert!(within("huge", ask(huge)).await.is_none());
    // Everyone else is still served.
    let fine = within("a good query", ask(Bytes::from(r#"{"seq_id": 1}"#)))
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(fine.frames().last().unwrap()).unwrap();
    assert_eq!(answer["seq_id"], 1);
    assert_eq!(p.publish("two", json!({})).await.unwrap().seq(), Some(2));
}
