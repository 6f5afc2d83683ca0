//! One-way patterns: PUSH/PULL and PUB/SUB, between our own peers and with
//! zerorpc-python 0.6.3's Pusher, Puller, Publisher and Subscriber.

use zerorpc_testkit as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use zerorpc::{OneWayOptions, Publisher, Puller, Pusher, Subscriber};

#[derive(Debug)]
struct Refused;
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}
impl std::error::Error for Refused {}

/// Records what it is sent.
struct Recorder {
    seen: mpsc::UnboundedSender<String>,
}

#[zerorpc::service(name = "recorder")]
impl Recorder {
    /// Records `x`.
    pub fn record(&self, x: i64) {
        let _ = self.seen.send(format!("record {x}"));
    }

    /// Records a greeting after a pause.
    pub async fn greet(&self, name: String) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let _ = self.seen.send(format!("greet {name}"));
    }

    /// Always fails (the receiver logs it and goes on).
    pub fn fail(&self) -> Result<i64, Refused> {
        Err(Refused)
    }

    /// A stream (not sendable one way: the typed sender leaves it out).
    #[zerorpc(stream)]
    pub fn items(&self, n: u32) -> impl futures::Stream<Item = u32> + Send + 'static {
        futures::stream::iter(0..n)
    }
}

async fn publisher() -> (Arc<Publisher>, String) {
    let p = Arc::new(Publisher::new());
    let ep = p.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    (p, ep)
}

fn recorder() -> (Recorder, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Recorder { seen: tx }, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    within("a one-way event", rx.recv())
        .await
        .expect("recorder gone")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_pull_in_order_with_bad_events_dropped() {
    let (svc, mut rx) = recorder();
    let puller = Arc::new(Puller::new(svc));
    let ep = puller.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let p = puller.clone();
    tokio::spawn(async move { p.run().await });

    let pusher = Pusher::new();
    pusher.connect(&ep).await.unwrap();
    let typed = RecorderOneWay::new(pusher);
    for i in 0..100 {
        typed.record(i).await.unwrap();
        if i == 50 {
            // A failing handler, an unknown method, wrong arguments and
            // garbage: each is logged and dropped, and the next event is
            // served.
            typed.fail().await.unwrap();
            typed.sender().push("no_such_method", vec![]).await.unwrap();
            typed
                .sender()
                .push("record", vec!["not a number".into()])
                .await
                .unwrap();
            typed.greet("ann".into()).await.unwrap();
        }
    }
    let mut got = Vec::new();
    while got.len() < 101 {
        got.push(next(&mut rx).await);
    }
    let mut want: Vec<String> = (0..=50).map(|i| format!("record {i}")).collect();
    want.push("greet ann".into());
    want.extend((51..100).map(|i| format!("record {i}")));
    assert_eq!(got, want, "served one at a time, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_stop_a_puller() {
    let (svc, mut rx) = recorder();
    let puller = Arc::new(Puller::new(svc));
    let ep = puller.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let p = puller.clone();
    tokio::spawn(async move { p.run().await });
    let raw = zmtp::PushSocket::new();
    raw.connect(&ep).await.unwrap();
    raw.send(zmtp::Message::from_iter([bytes::Bytes::from_static(
        b"\xc1 not msgpack",
    )]))
    .await
    .unwrap();
    let pusher = Pusher::new();
    pusher.connect(&ep).await.unwrap();
    pusher.push("record", vec![7.into()]).await.unwrap();
    assert_eq!(next(&mut rx).await, "record 7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_alternate_between_pullers() {
    // Two pullers (each allowing 8 handlers at once), one recorder each.
    let opts = OneWayOptions {
        concurrency: 8,
        ..Default::default()
    };
    let mut eps = Vec::new();
    let mut rxs = Vec::new();
    let mut pullers = Vec::new();
    for _ in 0..2 {
        let (svc, rx) = recorder();
        let p = Arc::new(Puller::with_options(svc, opts.clone()));
        eps.push(p.bind("tcp://127.0.0.1:0").await.unwrap().to_string());
        let q = p.clone();
        tokio::spawn(async move { q.run().await });
        pullers.push(p);
        rxs.push(rx);
    }
    let pusher = Pusher::new();
    for ep in &eps {
        pusher.connect(ep).await.unwrap();
    }
    within("both pullers connected", async {
        while pusher.peers() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let typed = RecorderOneWay::new(pusher);
    for i in 0..40 {
        typed.greet(format!("g{i}")).await.unwrap();
    }
    let mut all = Vec::new();
    for rx in rxs.iter_mut() {
        let mine: Vec<String> = {
            let mut v = Vec::new();
            while v.len() < 20 {
                v.push(next(rx).await);
            }
            v
        };
        all.extend(mine);
    }
    all.sort();
    let mut want: Vec<String> = (0..40).map(|i| format!("greet g{i}")).collect();
    want.sort();
    assert_eq!(all, want, "20 each, none lost or doubled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_reaches_every_subscriber() {
    let (publisher, ep) = publisher().await;
    let mut rxs = Vec::new();
    let mut subs = Vec::new();
    for _ in 0..2 {
        let (svc, rx) = recorder();
        let s = Arc::new(Subscriber::new(svc));
        s.connect(&ep).await.unwrap();
        let t = s.clone();
        tokio::spawn(async move { t.run().await });
        subs.push(s);
        rxs.push(rx);
    }
    // PUB drops events for subscribers not yet there: publish until both
    // have seen one, then a numbered run that both must see in full.
    within("subscribers joined", async {
        let mut joined = [false, false];
        while !joined.iter().all(|j| *j) {
            publisher.publish("record", vec![(-1).into()]).unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            for (j, rx) in joined.iter_mut().zip(rxs.iter_mut()) {
                while rx.try_recv().is_ok() {
                    *j = true;
                }
            }
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for rx in rxs.iter_mut() {
        while rx.try_recv().is_ok() {}
    }
    let typed = RecorderOneWay::new(publisher.clone());
    for i in 0..20 {
        typed.record(i).await.unwrap();
    }
    for rx in rxs.iter_mut() {
        for i in 0..20 {
            assert_eq!(next(rx).await, format!("record {i}"));
        }
    }
    assert_eq!(publisher.subscribers(), 2);
    assert_eq!(publisher.dropped(), 0);
}

// ------------------------------------------------------------ with Python

const PY_PUSHER: &str = r#"
import sys, time, zerorpc
p = zerorpc.Pusher()
p.connect(sys.argv[1])
for i in range(50):
    p.record(i)
p.greet("from python")
time.sleep(2)
print("PUSHED", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_pusher_to_our_puller() {
    let (svc, mut rx) = recorder();
    let puller = Arc::new(Puller::new(svc));
    let ep = puller.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let p = puller.clone();
    tokio::spawn(async move { p.run().await });
    let _py = Proc::python(PY_PUSHER, &[&ep]);
    for i in 0..50 {
        assert_eq!(next(&mut rx).await, format!("record {i}"));
    }
    assert_eq!(next(&mut rx).await, "greet from python");
}

const PY_PULLER: &str = r#"
import sys, zerorpc
class Svc(object):
    def record(self, x):
        print("record %d" % x, flush=True)
    def greet(self, name):
        print("greet %s" % name, flush=True)
s = zerorpc.Puller(Svc())
s.bind(sys.argv[1])
print("READY", flush=True)
s.run()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_pusher_to_python_puller() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut py = Proc::python(PY_PULLER, &[&ep]);
    let mut py = tokio::task::spawn_blocking(move || {
        py.wait_line("READY");
        py
    })
    .await
    .unwrap();
    let pusher = Pusher::new();
    pusher.connect(&ep).await.unwrap();
    let typed = RecorderOneWay::new(pusher);
    for i in 0..50 {
        typed.record(i).await.unwrap();
    }
    typed.greet("from rust".into()).await.unwrap();
    within(
        "python puller served every event, in order",
        tokio::task::spawn_blocking(move || {
            for i in 0..50 {
                assert_eq!(py.wait_line("record"), format!("record {i}"));
            }
            assert_eq!(py.wait_line("greet"), "greet from rust");
        }),
    )
    .await
    .unwrap();
}

const PY_PUBLISHER: &str = r#"
import sys, time, zerorpc
p = zerorpc.Publisher()
p.bind(sys.argv[1])
i = 0
while True:
    p.record(i)
    i += 1
    time.sleep(0.02)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_publisher_to_our_subscriber() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let _py = Proc::python(PY_PUBLISHER, &[&ep]);
    let (svc, mut rx) = recorder();
    let sub = Arc::new(Subscriber::new(svc));
    sub.connect(&ep).await.unwrap();
    let s = sub.clone();
    tokio::spawn(async move { s.run().await });
    // We join late: whatever we see first, the rest follows in sequence.
    let first: i64 = next(&mut rx).await["record ".len()..].parse().unwrap();
    for i in 1..=10 {
        assert_eq!(next(&mut rx).await, format!("record {}", first + i));
    }
}

const PY_SUBSCRIBER: &str = r#"
import sys, zerorpc
class Svc(object):
    def record(self, x):
        print("record %d" % x, flush=True)
s = zerorpc.Subscriber(Svc())
s.connect(sys.argv[1])
s.run()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_publisher_to_python_subscriber() {
    let (publisher, ep) = publisher().await;
    let mut py = Proc::python(PY_SUBSCRIBER, &[&ep]);
    let p = publisher.clone();
    let ticker = tokio::spawn(async move {
        let typed = RecorderOneWay::new(p);
        for i in 0.. {
            typed.record(i).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    within(
        "python subscriber sees a run of events",
        tokio::task::spawn_blocking(move || {
            let first: i64 = py.wait_line("record")["record ".len()..].parse().unwrap();
            for i in 1..=10 {
                assert_eq!(py.wait_line("record"), format!("record {}", first + i));
            }
        }),
    )
    .await
    .unwrap();
    ticker.abort();
}
