//! A client over several endpoints: it avoids a hung server after losing a
//! call there, fails calls at once when their connection drops, and
//! retries lost calls only for methods declared idempotent.

use zerorpc_testkit as common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use zerorpc::demo::demo_service;
use zerorpc::{
    ChannelConfig, Client, ClientOptions, DecodeLimits, Error, Event, RetryPolicy, Server, Value,
};

const HB: Duration = Duration::from_millis(300);

async fn server() -> (Arc<Server>, String) {
    let s = Arc::new(Server::new(demo_service()));
    let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let r = s.clone();
    tokio::spawn(async move { r.run().await });
    (s, ep)
}

/// A server that accepts requests and never answers (a hung process);
/// records the methods it was asked for.
struct Hung {
    pub socket: Arc<zerorpc::zmtp::RouterSocket>,
    pub asked: Arc<Mutex<Vec<String>>>,
}

impl Hung {
    pub async fn start() -> (Hung, String) {
        let socket = Arc::new(zerorpc::zmtp::RouterSocket::new());
        let ep = socket.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (socket.clone(), asked.clone());
        tokio::spawn(async move {
            while let Ok(m) = s.recv().await {
                let ev = Event::decode(m.last().unwrap(), DecodeLimits::default()).unwrap();
                if ev.header.response_to.is_none() {
                    a.lock().unwrap().push(ev.name);
                }
            }
        });
        (Hung { socket, asked }, ep)
    }

    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

async fn hung() -> (Hung, String) {
    Hung::start().await
}

fn options(retry: Option<RetryPolicy>) -> ClientOptions {
    ClientOptions {
        channel: ChannelConfig {
            heartbeat: HB,
            first_reply_timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        },
        retry,
        ..Default::default()
    }
}

/// A client whose first call goes to `first` (connections are tried in
/// the order given, once all are up).
async fn client_to(first: &str, second: &str, hung: &Hung, retry: Option<RetryPolicy>) -> Client {
    let before = hung.socket.peer_count();
    let c = Client::connect_with(&[first, second], options(retry))
        .await
        .unwrap();
    within("both connections up", async {
        while hung.socket.peer_count() <= before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    })
    .await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_costs_one_call_then_is_avoided() {
    let (_a, a_ep) = server().await;
    let (b, b_ep) = hung().await;
    let c = client_to(&b_ep, &a_ep, &b, None).await;
    match c.call("echo", vec![1.into()]).await {
        Err(Error::LostRemote(_)) => {}
        other => panic!("the first call (to the hung server) is lost: {other:?}"),
    }
    for i in 0..10 {
        let v = c.call("echo", vec![i.into()]).await.unwrap();
        assert_eq!(v, Value::from(i));
    }
    assert_eq!(
        b.asked(),
        vec!["echo"],
        "nothing more went to the hung server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idempotent_methods_are_retried() {
    let (_a, a_ep) = server().await;
    let (b, b_ep) = hung().await;
    let retry = RetryPolicy::idempotent(["echo"]);
    // `add` is not declared idempotent: lost, not retried.
    let c = client_to(&b_ep, &a_ep, &b, Some(retry.clone())).await;
    match c.call("add", vec![1.into(), 2.into()]).await {
        Err(Error::LostRemote(_)) => {}
        other => panic!("add is not retried: {other:?}"),
    }
    assert_eq!(b.asked(), vec!["add"]);
    // `echo` is: its lost first attempt is retried on the healthy server.
    let c2 = client_to(&b_ep, &a_ep, &b, Some(retry)).await;
    let v = c2.call("echo", vec!["again".into()]).await.unwrap();
    assert_eq!(v, Value::from("again"));
    assert_eq!(
        b.asked(),
        vec!["add", "echo"],
        "one attempt on the hung server"
    );
    // A remote error is an answer, never retried.
    let c3 = Client::connect_with(&[&a_ep], options(Some(RetryPolicy::idempotent(["fail"]))))
        .await
        .unwrap();
    match c3.call("fail", vec!["no".into()]).await {
        Err(Error::Remote(e)) => assert_eq!(e.message, "no"),
        other => panic!("expected the remote error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_fails_its_calls_at_once() {
    let (a, a_ep) = server().await;
    // The default heartbeat (5 s): loss by silence would take 10 s and be
    // reported as LostRemote; a drop is seen at once.
    let c = Client::connect(&a_ep).await.unwrap();
    c.call("echo", vec![1.into()]).await.unwrap();
    let call = {
        let c = c.clone();
        tokio::spawn(async move { c.call("slow", vec![30.into()]).await })
    };
    within("call started", async {
        while a.active_calls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    a.shutdown();
    drop(a);
    match within("the call fails", call).await.unwrap() {
        Err(Error::Disconnected) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
}
