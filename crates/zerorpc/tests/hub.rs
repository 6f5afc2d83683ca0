//! The load-balancing hub: channel-aware routing, worker loss, late
//! joiners, and transparency to zerorpc-python clients and workers.

use zerorpc_testkit as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use zerorpc::demo::demo_service;
use zerorpc::hub::{Hub, HubOptions};
use zerorpc::{ChannelConfig, Client, ClientOptions, Error, Server, ServerOptions, Value};

const HB: Duration = Duration::from_millis(500);

fn channel_with(heartbeat: Duration) -> ChannelConfig {
    ChannelConfig {
        heartbeat,
        first_reply_timeout: Some(Duration::from_secs(20)),
        ..Default::default()
    }
}

struct TestHub {
    hub: Arc<Hub>,
    input: String,
    output: String,
}

async fn hub_on(input: &str) -> TestHub {
    let hub = Arc::new(Hub::new(HubOptions {
        heartbeat: HB,
        ..Default::default()
    }));
    let input = hub.bind_in(input).await.unwrap().to_string();
    let output = hub.bind_out("tcp://127.0.0.1:0").await.unwrap().to_string();
    let h = hub.clone();
    tokio::spawn(async move { h.run().await });
    TestHub { hub, input, output }
}

async fn hub() -> TestHub {
    hub_on("tcp://127.0.0.1:0").await
}

/// A worker: our demo server connected to the hub's out side.
async fn worker(out: &str) -> Arc<Server> {
    worker_with(out, HB).await
}

async fn worker_with(out: &str, heartbeat: Duration) -> Arc<Server> {
    let s = Arc::new(Server::with_options(
        demo_service(),
        ServerOptions {
            channel: ChannelConfig {
                first_reply_timeout: None,
                ..channel_with(heartbeat)
            },
            ..Default::default()
        },
    ));
    s.connect(out).await.unwrap();
    let r = s.clone();
    tokio::spawn(async move { r.run().await });
    s
}

async fn client(ep: &str) -> Client {
    client_with(ep, HB).await
}

async fn client_with(ep: &str, heartbeat: Duration) -> Client {
    Client::connect_with(
        &[ep],
        ClientOptions {
            channel: channel_with(heartbeat),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn wait_workers(h: &Hub, n: usize) {
    within("workers joined the hub", async {
        while h.stats().workers.iter().filter(|w| w.3).count() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_streams_and_introspection_through_the_hub() {
    let h = hub().await;
    let _w1 = worker(&h.output).await;
    let _w2 = worker(&h.output).await;
    wait_workers(&h.hub, 2).await;
    let c = client(&h.input).await;
    for i in 0..20i64 {
        let v = c.call("add", vec![i.into(), 1.into()]).await.unwrap();
        assert_eq!(v, Value::from(i + 1));
    }
    // A stream longer than the credit window: every item, credit and
    // heartbeat of the channel stays on one worker.
    let items: Vec<_> = c
        .call_stream("range", vec![3000.into()])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 3000);
    assert_eq!(items[2999].as_ref().unwrap(), &Value::from(2999));
    // Concurrent slow calls spread over both workers (least in flight).
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.call("slow", vec![0.3.into()]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = h.hub.stats();
    assert_eq!(busy.in_flight, 4);
    assert!(
        busy.workers.iter().all(|w| w.1 == 2),
        "2 calls in flight on each worker: {busy:?}"
    );
    for s in slow {
        s.await.unwrap().unwrap();
    }
    // Introspection reaches a worker.
    let inspect = c.call("_zerorpc_inspect", vec![]).await.unwrap();
    assert!(inspect.to_string().contains("lolita"), "{inspect}");
    // Errors keep their name and message through the hub.
    match c.call("fail", vec!["boom".into()]).await {
        Err(Error::Remote(e)) => assert_eq!(e.message, "boom"),
        other => panic!("expected a remote error, got {other:?}"),
    }
    // The hub's own statistics.
    let stats = c.call("_zerorpc_hub_stats", vec![]).await.unwrap();
    let text = stats.to_string();
    assert!(text.contains("\"workers\""), "{text}");
    let st = h.hub.stats();
    assert_eq!(st.workers.len(), 2);
    assert_eq!(st.in_flight, 0);
    assert!(st.completed >= 27, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_fails_only_its_own_calls_at_once() {
    let h = hub().await;
    let w1 = worker(&h.output).await;
    let _w2 = worker(&h.output).await;
    wait_workers(&h.hub, 2).await;
    let c = client(&h.input).await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                let r = c.call("slow", vec![3.into()]).await;
                (r, std::time::Instant::now())
            })
        })
        .collect();
    within("calls spread", async {
        while h.hub.stats().in_flight < 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let killed_at = std::time::Instant::now();
    // Its socket closes: the hub sees the worker leave.
    w1.shutdown();
    drop(w1);
    let mut lost = 0;
    let mut ok = 0;
    for t in calls {
        match t.await.unwrap() {
            (Ok(_), _) => ok += 1,
            (Err(Error::Remote(e)), at) if e.name == "LostRemote" => {
                lost += 1;
                // at once, not when the 3 s call would have ended
                assert!(at - killed_at < Duration::from_secs(2));
            }
            (Err(e), _) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, lost), (3, 3), "the other worker's calls complete");
    // New calls go to the remaining worker.
    for _ in 0..10 {
        c.call("echo", vec!["x".into()]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_is_dropped_after_two_heartbeats() {
    let h = hub().await;
    // A "worker" that accepts requests and never answers anything, not
    // even the hub's pings or heartbeats (a hung process).
    let hung = zmtp::RouterSocket::new();
    hung.connect(&h.output).await.unwrap();
    wait_workers(&h.hub, 1).await;
    let c = client(&h.input).await;
    let started = std::time::Instant::now();
    match c.call("echo", vec![1.into()]).await {
        Err(Error::Remote(e)) if e.name == "LostRemote" => {}
        Err(Error::LostRemote(_)) => {}
        other => panic!("expected a lost remote, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // (the caller's own heartbeat check may have fired first)
    within("the hung worker marked dead", async {
        while h.hub.stats().workers.iter().all(|w| w.3) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // A real worker joins: calls succeed again, the hung one gets none.
    let _w = worker(&h.output).await;
    wait_workers(&h.hub, 1).await;
    for _ in 0..5 {
        c.call("echo", vec![1.into()]).await.unwrap();
    }
    drop(hung);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_started_before_the_hub_and_workers_are_served() {
    let port = free_port();
    let ep = format!("tcp://127.0.0.1:{port}");
    let c = client(&ep).await;
    let call = tokio::spawn(async move { c.call("add", vec![40.into(), 2.into()]).await });
    // Longer than the caller's loss limit: its silence counts from when the
    // request could leave, not from the start of the call.
    tokio::time::sleep(HB * 3).await;
    let h = hub_on(&ep).await;
    // No worker for three heartbeat intervals: the hub keeps the caller's
    // channel alive meanwhile.
    tokio::time::sleep(HB * 3).await;
    let _w = worker(&h.output).await;
    let v = within("the early call", call).await.unwrap().unwrap();
    assert_eq!(v, Value::from(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_hub_s_endpoints_serve_a_new_hub_at_once() {
    // Fixed ports, as a hub restarted in one process has.
    let input = format!("tcp://127.0.0.1:{}", free_port());
    let output = format!("tcp://127.0.0.1:{}", free_port());
    let c = client(&input).await;
    for round in 0..5i64 {
        let hub = Arc::new(Hub::new(HubOptions {
            heartbeat: HB,
            ..Default::default()
        }));
        hub.bind_in(&input)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {input}: {e}"));
        hub.bind_out(&output)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {output}: {e}"));
        let h = hub.clone();
        let run = tokio::spawn(async move { h.run().await });
        let w = worker(&output).await;
        wait_workers(&hub, 1).await;
        let v = within("a call", c.call("add", vec![round.into(), 1.into()]))
            .await
            .unwrap();
        assert_eq!(v, Value::from(round + 1));
        hub.close().await;
        within("the hub's task ends", run).await.unwrap().unwrap();
        // Both endpoints are free as soon as `close` returns.
        for ep in [&input, &output] {
            let port: u16 = ep.rsplit(':').next().unwrap().parse().unwrap();
            if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                panic!("round {round}: {ep} still taken after close: {e}");
            }
        }
        w.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_calls_over_four_workers_with_one_restarted() {
    let h = hub().await;
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(worker(&h.output).await);
    }
    wait_workers(&h.hub, 4).await;
    let c = client(&h.input).await;
    let calls: Vec<_> = (0..1000)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                // some quick, some that last a while
                let secs = if i % 4 == 0 { 0.4 } else { 0.01 };
                c.call("slow", vec![secs.into()]).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    workers.remove(0).shutdown();
    tokio::time::sleep(Duration::from_millis(150)).await;
    workers.push(worker(&h.output).await);
    let (mut ok, mut lost) = (0, 0);
    for t in calls {
        match within("every call ends", t).await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Remote(e)) if e.name == "LostRemote" => lost += 1,
            Err(e) => panic!("unclear error: {e}"),
        }
    }
    let st = h.hub.stats();
    eprintln!("1000 calls: {ok} ok, {lost} lost with the killed worker; per worker (id, in flight, served, alive): {:?}", st.workers);
    assert_eq!(ok + lost, 1000);
    assert!(ok >= 700, "most calls succeed: {ok}");
    assert!(lost > 0, "the killed worker had calls in flight");
    assert_eq!(st.in_flight, 0);
}

async fn hub_with(opts: HubOptions) -> TestHub {
    let hub = Arc::new(Hub::new(opts));
    let input = hub.bind_in("tcp://127.0.0.1:0").await.unwrap().to_string();
    let output = hub.bind_out("tcp://127.0.0.1:0").await.unwrap().to_string();
    let h = hub.clone();
    tokio::spawn(async move { h.run().await });
    TestHub { hub, input, output }
}

async fn wait_pending(h: &Hub, n: usize) {
    within("calls waiting in the hub", async {
        while h.stats().pending < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_calls_queued_before_a_worker_joins_are_all_answered() {
    // More calls than a worker's send queue holds (1000 messages).
    const N: i64 = 3000;
    // A longer heartbeat than the other tests: this one is about every
    // call being dispatched, and 3,000 calls in a debug build on a loaded
    // machine must not be mistaken for lost callers.
    let hb = HB * 4;
    let h = hub_with(HubOptions {
        heartbeat: hb,
        ..Default::default()
    })
    .await;
    let c = client_with(&h.input, hb).await;
    let calls: Vec<_> = (0..N)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.call("add", vec![i.into(), 1.into()]).await })
        })
        .collect();
    wait_pending(&h.hub, N as usize).await;
    let _w = worker_with(&h.output, hb).await;
    for (i, t) in calls.into_iter().enumerate() {
        let v = within("every queued call is answered", t)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(v, Value::from(i as i64 + 1));
    }
    let st = h.hub.stats();
    eprintln!("{N} queued calls: {st:?}");
    assert_eq!(st.completed, N as u64);
    assert_eq!((st.in_flight, st.pending, st.failed), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_call_whose_caller_went_silent_expires_and_never_reaches_a_worker() {
    let h = hub().await;
    // A raw client: sends one request, then never heart-beats nor reads.
    let raw = zmtp::DealerSocket::new();
    raw.connect(&h.input).await.unwrap();
    let req = zerorpc::Event::new("echo", Value::Array(vec!["ghost".into()]));
    raw.send(zmtp::Message::from_iter([
        bytes::Bytes::new(),
        req.encode(),
    ]))
    .await
    .unwrap();
    wait_pending(&h.hub, 1).await;
    within("the silent caller's call expires", async {
        while h.hub.stats().expired < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(h.hub.stats().pending, 0);
    // A worker joins later: it never gets that call, and serves others.
    let _w = worker(&h.output).await;
    wait_workers(&h.hub, 1).await;
    let c = client(&h.input).await;
    assert_eq!(
        c.call("echo", vec!["live".into()]).await.unwrap(),
        Value::from("live")
    );
    let st = h.hub.stats();
    assert_eq!(
        (st.completed, st.in_flight, st.pending),
        (1, 0, 0),
        "{st:?}"
    );
    assert_eq!(st.workers[0].2, 1, "the worker served only the live call");
    drop(raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_client_s_queued_calls_are_forgotten() {
    let h = hub().await;
    let c = client(&h.input).await;
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.call("echo", vec![1.into()]).await })
        })
        .collect();
    wait_pending(&h.hub, 5).await;
    for t in calls {
        t.abort();
    }
    drop(c);
    within("the dropped client's calls leave the line", async {
        while h.hub.stats().pending > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let _w = worker(&h.output).await;
    wait_workers(&h.hub, 1).await;
    let st = h.hub.stats();
    assert_eq!((st.in_flight, st.completed), (0, 0), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_max_pending_are_refused_with_hub_overloaded_and_counted() {
    let h = hub_with(HubOptions {
        heartbeat: HB,
        max_pending: 5,
        ..Default::default()
    })
    .await;
    let c = client(&h.input).await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.call("echo", vec![1.into()]).await })
        })
        .collect();
    wait_pending(&h.hub, 5).await;
    within("three refusals", async {
        while h.hub.stats().overloaded < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let stats = c.call("_zerorpc_hub_stats", vec![]).await.unwrap();
    assert!(stats.to_string().contains("\"overloaded\": 3"), "{stats}");
    let _w = worker(&h.output).await;
    let (mut ok, mut overloaded) = (0, 0);
    for t in calls {
        match within("every call ends", t).await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Remote(e)) if e.name == "HubOverloaded" => overloaded += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, overloaded), (5, 3));
}

// ------------------------------------------------------------ with Python

const PY_WORKER: &str = r#"
import sys, zerorpc
class Svc(object):
    def whoami(self):
        return "python"
    def add(self, a, b):
        return a + b
s = zerorpc.Server(Svc(), heartbeat=1)
s.connect(sys.argv[1])
print("READY", flush=True)
s.run()
"#;

const PY_CLIENT: &str = r#"
import sys, zerorpc
c = zerorpc.Client(timeout=10, heartbeat=1)
c.connect(sys.argv[1])
seen = set()
for i in range(40):
    seen.add(c.whoami())
for i in range(10):
    assert c.add(i, 1) == i + 1
print("SEEN", ",".join(sorted(seen)), flush=True)
print("ALL DONE", flush=True)
"#;

/// Our worker with a `whoami` too, so the Python client can tell them apart.
struct RustWorker;

#[zerorpc::service]
impl RustWorker {
    /// Which implementation answered.
    pub fn whoami(&self) -> String {
        "rust".into()
    }

    /// a + b
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_through_the_hub_to_python_and_rust_workers() {
    let h = hub().await;
    let mut py = Proc::python(PY_WORKER, &[&h.output]);
    let py_ready = tokio::task::spawn_blocking(move || {
        py.wait_line("READY");
        py
    });
    let rust = Arc::new(Server::new(RustWorker));
    rust.connect(&h.output).await.unwrap();
    let r = rust.clone();
    tokio::spawn(async move { r.run().await });
    let _py = py_ready.await.unwrap();
    wait_workers(&h.hub, 2).await;
    let mut pc = Proc::python(PY_CLIENT, &[&h.input]);
    let seen = within(
        "python client through the hub",
        tokio::task::spawn_blocking(move || pc.wait_line("SEEN")),
    )
    .await
    .unwrap();
    assert_eq!(
        seen, "SEEN python,rust",
        "both workers served the Python client"
    );
    // And our client reaches the Python worker too.
    let c = client(&h.input).await;
    let mut who = std::collections::BTreeSet::new();
    for _ in 0..10 {
        who.insert(c.call("whoami", vec![]).await.unwrap().to_string());
    }
    assert_eq!(who.len(), 2, "{who:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_queue_is_full_gets_no_new_calls_until_it_has_room() {
    use zerorpc::{DecodeLimits, Event};
    // Room for two of the calls below toward a worker (and for thousands
    // of their small replies toward the client); a heartbeat long enough
    // that the raw worker below, which sends none, is not declared lost.
    let hb = Duration::from_secs(10);
    let h = hub_with(HubOptions {
        heartbeat: hb,
        socket: zmtp::SocketOptions {
            send_hwm_bytes: 600 * 1024,
            ..HubOptions::default().socket
        },
        ..Default::default()
    })
    .await;
    // A worker that reads nothing at first: with its own receive queue
    // this small, the TCP buffers and then the hub's queue toward it fill.
    let slow = zmtp::RouterSocket::with_options(zmtp::SocketOptions {
        recv_hwm: 1,
        recv_hwm_bytes: 1,
        ..Default::default()
    });
    slow.connect(&h.output).await.unwrap();
    wait_workers(&h.hub, 1).await;
    let big = Value::Binary(vec![7; 256 * 1024]);
    let c = client_with(&h.input, hb).await;
    // Calls, eight at a time, until one waits in the hub and stays there:
    // how many the kernel's buffers take first depends on the machine, and
    // a call may wait a moment while the hub's writer moves the queue
    // into them (then it goes on to the worker, rightly). (At most 400:
    // 100 MiB.)
    let mut calls = Vec::new();
    within("a call waiting in the hub", async {
        loop {
            let st = h.hub.stats();
            if st.pending > 0 && st.in_flight + st.pending >= calls.len() {
                // every call sent has reached the hub: still waiting after
                // a while means the worker's queue and the kernel's are full
                tokio::time::sleep(Duration::from_millis(300)).await;
                if h.hub.stats().pending > 0 {
                    break;
                }
            }
            assert!(calls.len() < 400, "no call waited: {:?}", h.hub.stats());
            for _ in 0..8 {
                let (c, arg, i) = (c.clone(), big.clone(), calls.len());
                calls.push(tokio::spawn(async move {
                    c.call("echo", vec![arg, i.into()]).await
                }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let n = calls.len();
    // Every call reached the hub; those after the refused one wait there.
    within("every call at the hub", async {
        while h.hub.stats().in_flight + h.hub.stats().pending < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let st = h.hub.stats();
    eprintln!("{n} calls sent, one waits: {st:?}");
    assert!(
        st.workers[0].1 >= 1,
        "calls went to the worker first: {st:?}"
    );
    assert!(st.pending >= 1, "the full worker got no more: {st:?}");
    // The worker now reads and answers: the hub sees room in its queue
    // and hands it the waiting calls, until every call is answered.
    let serving = tokio::spawn(async move {
        loop {
            let m = slow.recv().await.unwrap();
            let frames = m.frames();
            let payload = frames.last().unwrap();
            let ev = Event::decode(payload, DecodeLimits::default()).unwrap();
            if ev.name != "echo" {
                continue; // (the hub's ping, a client's heartbeat)
            }
            // (`OK` carries `[result]`: the call's number)
            let result = Value::Array(vec![ev.args[1].clone()]);
            let reply = Event::on_channel(&ev.header.message_id, "OK", result).encode();
            let mut out: zmtp::Message = frames[..frames.len() - 1].iter().cloned().collect();
            out.push_back(reply);
            slow.send(out).await.unwrap();
        }
    });
    for (i, t) in calls.into_iter().enumerate() {
        let v = within("every call is answered once the worker has room", t)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(v, Value::from(i));
    }
    let st = h.hub.stats();
    assert_eq!(st.completed, n as u64, "{st:?}");
    assert_eq!(
        (st.in_flight, st.pending, st.failed, st.dropped),
        (0, 0, 0, 0)
    );
    serving.abort();
}
