//! Deadlines across hops (`zerorpc::deadline`): A → B → C with C slow, a
//! raw request carrying a budget, retries bounded by the deadline, and a
//! zerorpc-python hop in the middle.

use zerorpc_testkit as common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tokio::sync::mpsc;
use zerorpc::zmtp::{DealerSocket, Message, RouterSocket};
use zerorpc::{
    CallError, Client, ClientOptions, DecodeLimits, DynamicService, Error, Event, RetryPolicy,
    Server, Value,
};

/// How late past a budget a failure may arrive on a shared, noisy machine
/// (what is asserted is that it comes with the budget, not after the slow
/// work: that takes 10 s).
const MARGIN: Duration = Duration::from_millis(1500);

/// Sends the time when dropped unless disarmed: a handler cancelled
/// before it finished.
struct Cancelled(Option<mpsc::UnboundedSender<Instant>>);

impl Cancelled {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(Instant::now());
        }
    }
}

/// C: `slow(secs)` sleeps, reporting a cancellation; `echo(x)`.
async fn serve_c() -> (String, mpsc::UnboundedReceiver<Instant>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let svc = DynamicService::new("c")
        .method("slow", "sleeps secs", &["secs"], move |a| {
            let mut guard = Cancelled(Some(tx.clone()));
            async move {
                let secs = a.first().and_then(Value::as_f64).unwrap_or(10.0);
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                guard.disarm();
                Ok(Value::from(secs))
            }
        })
        .method("echo", "returns x", &["x"], |a| async move {
            Ok(a.into_iter().next().unwrap_or(Value::Nil))
        })
        .stream_method("late_stream", "its first item after 2 s", &[], |_| {
            Ok(futures::stream::once(async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(Value::from(1))
            }))
        });
    (serve(svc).await, rx)
}

async fn serve(svc: DynamicService) -> String {
    let s = Arc::new(Server::new(svc));
    let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    tokio::spawn(async move { s.run().await });
    ep
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_runs_out_across_three_hops_and_cancels_the_slow_end() {
    let (c_ep, mut c_cancelled) = serve_c().await;
    let to_c = Client::connect(&c_ep).await.unwrap();
    // B relays to C with its default (30 s) timeout: what bounds its call
    // is the deadline it inherits from A's request.
    let (b_tx, mut b_errors) = mpsc::unbounded_channel();
    let b = DynamicService::new("b").method("relay", "asks C", &[], move |_| {
        let (to_c, b_tx) = (to_c.clone(), b_tx.clone());
        async move {
            let left = zerorpc::deadline::remaining();
            let r = to_c.call("slow", vec![10.into()]).await;
            let _ = b_tx.send((left, r.as_ref().err().map(|e| format!("{e:?}"))));
            Ok(r?)
        }
    });
    let b_ep = serve(b).await;
    let a = Client::connect(&b_ep).await.unwrap();
    let budget = Duration::from_secs(1);
    let t0 = Instant::now();
    let r = within("A's call", a.with_timeout(budget).call("relay", vec![])).await;
    let took = t0.elapsed();
    // (its own timeout: whether its timer or B's answer came first)
    match &r {
        Err(Error::Timeout(t)) => assert_eq!(*t, budget),
        other => panic!("A's caller gets the budget's end: {other:?}"),
    }
    assert!(took < budget + MARGIN, "A failed after {took:?}");
    // B ran under what was left of A's budget and its call to C failed
    // with DeadlineExceeded (not a lost remote, not its own 30 s timeout).
    let (left, b_err) = within("B's inner call", b_errors.recv()).await.unwrap();
    let left = left.expect("B's handler runs under a deadline");
    assert!(left <= budget && left > Duration::ZERO, "{left:?}");
    let b_err = b_err.expect("B's call to C failed");
    assert!(b_err.starts_with("DeadlineExceeded("), "{b_err}");
    // C's handler was cancelled when the budget ran out, not after 10 s.
    let at = within("C cancelled", c_cancelled.recv()).await.unwrap();
    let after = at.duration_since(t0);
    assert!(after < budget + MARGIN, "C cancelled after {after:?}");
}

/// The next event other than a heartbeat.
async fn next_reply(dealer: &DealerSocket) -> Event {
    loop {
        let m = dealer.recv().await.unwrap();
        let ev = Event::decode(m.last().unwrap(), DecodeLimits::default()).unwrap();
        if ev.name != "_zpc_hb" {
            return ev;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answers_a_request_whose_budget_passed_with_deadline_exceeded() {
    let (c_ep, mut c_cancelled) = serve_c().await;
    let dealer = DealerSocket::new();
    dealer.connect(&c_ep).await.unwrap();
    let mut req = Event::new("slow", Value::Array(vec![10.into()]));
    req.header.deadline_ms = Some(300);
    let t0 = Instant::now();
    dealer
        .send(Message::from_iter([bytes::Bytes::new(), req.encode()]))
        .await
        .unwrap();
    let reply = within("the ERR", next_reply(&dealer)).await;
    let took = t0.elapsed();
    assert_eq!(reply.name, "ERR");
    let args = reply.args.as_array().unwrap();
    assert_eq!(args[0].as_str(), Some("DeadlineExceeded"));
    assert!(
        args[1].as_str().unwrap().contains("deadline passed"),
        "{args:?}"
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_millis(300) + MARGIN, "{took:?}");
    within("C cancelled", c_cancelled.recv()).await.unwrap();
    // A stream whose first item would come after the budget: cancelled
    // the same way (and the server does not spin on the passed deadline).
    let mut req = Event::new("late_stream", Value::Array(vec![]));
    req.header.deadline_ms = Some(200);
    dealer
        .send(Message::from_iter([bytes::Bytes::new(), req.encode()]))
        .await
        .unwrap();
    let late = within("the stream's ERR", next_reply(&dealer)).await;
    assert_eq!(late.name, "ERR");
    assert_eq!(
        late.args.as_array().unwrap()[0].as_str(),
        Some("DeadlineExceeded")
    );
    // A budget that is not a number is no deadline: the call completes.
    let raw = Value::Array(vec![
        Value::Map(vec![
            (Value::from("message_id"), Value::from("m1")),
            (Value::from("v"), Value::from(3)),
            (Value::from("deadline_ms"), Value::from("soon")),
        ]),
        Value::from("slow"),
        Value::Array(vec![0.2.into()]),
    ]);
    let mut b = Vec::new();
    rmpv::encode::write_value(&mut b, &raw).unwrap();
    dealer
        .send(Message::from_iter([bytes::Bytes::new(), b.into()]))
        .await
        .unwrap();
    let ok = within("the OK", next_reply(&dealer)).await;
    assert_eq!(ok.name, "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_never_outlive_the_deadline() {
    // A server that takes requests and never answers nor heart-beats:
    // each attempt is lost after two heartbeats (100 ms), and retried.
    let hung = Arc::new(RouterSocket::new());
    let ep = hung.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let asked = Arc::new(Mutex::new(0usize));
    let (h, n) = (hung.clone(), asked.clone());
    tokio::spawn(async move {
        while h.recv().await.is_ok() {
            *n.lock().unwrap() += 1;
        }
    });
    let mut retry = RetryPolicy::idempotent(["echo"]);
    retry.max_retries = 1000;
    retry.min_delay = Duration::from_millis(10);
    retry.max_delay = Duration::from_millis(20);
    let opts = ClientOptions {
        retry: Some(retry),
        ..ClientOptions::default()
            .heartbeat(Duration::from_millis(100))
            .timeout(Duration::from_secs(1))
    };
    let c = Client::connect_with(&[&ep], opts).await.unwrap();
    let t0 = Instant::now();
    let r = within("the retried call", c.call("echo", vec![1.into()])).await;
    let took = t0.elapsed();
    assert!(
        matches!(r, Err(Error::DeadlineExceeded(_) | Error::LostRemote(_))),
        "{r:?}"
    );
    assert!(took < Duration::from_secs(1) + MARGIN, "{took:?}");
    let attempts = *asked.lock().unwrap();
    assert!(attempts >= 2, "it was retried ({attempts} attempts)");
    // Inside a scope, the same: the scope's deadline bounds every attempt.
    let t0 = Instant::now();
    let at = t0 + Duration::from_millis(400);
    let r = zerorpc::deadline::scope(at, c.call("echo", vec![1.into()])).await;
    assert!(
        matches!(r, Err(Error::DeadlineExceeded(_) | Error::LostRemote(_))),
        "{r:?}"
    );
    assert!(t0.elapsed() < Duration::from_millis(400) + MARGIN);
}

/// B in zerorpc-python 0.6.3: relays to C with its own client.
const PY_RELAY: &str = r#"
import sys, zerorpc
c_ep = sys.argv[2]
class B(object):
    def relay(self, method, arg):
        c = zerorpc.Client(timeout=30, heartbeat=1)
        c.connect(c_ep)
        try:
            return getattr(c, method)(arg)
        finally:
            c.close()
s = zerorpc.Server(B(), heartbeat=1)
s.bind(sys.argv[1])
print("READY", flush=True)
s.run()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_hop_ignores_the_deadline_without_error() {
    let (c_ep, _c_cancelled) = serve_c().await;
    let b_ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut py = Proc::python(PY_RELAY, &[&b_ep, &c_ep]);
    py.wait_line("READY");
    let a = Client::connect_with(
        &[&b_ep],
        ClientOptions::default().heartbeat(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    // Our request carries deadline_ms (the 5 s timeout); Python serves it.
    let v = within(
        "through Python",
        a.with_timeout(Duration::from_secs(5))
            .call("relay", vec!["echo".into(), "hi".into()]),
    )
    .await
    .unwrap();
    assert_eq!(v, Value::from("hi"));
    // With C slow, A's budget still bounds A's call...
    let budget = Duration::from_secs(1);
    let t0 = Instant::now();
    let r = within(
        "a slow relay",
        a.with_timeout(budget)
            .call("relay", vec!["slow".into(), 3.into()]),
    )
    .await;
    assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
    assert!(t0.elapsed() < budget + MARGIN, "{:?}", t0.elapsed());
    // ...and the Python server carries on.
    let v = within(
        "Python still serves",
        a.with_timeout(Duration::from_secs(10))
            .call("relay", vec!["echo".into(), 2.into()]),
    )
    .await
    .unwrap();
    assert_eq!(v, Value::from(2));
}

/// A handler's error when its own inner call ran out of deadline is
/// `DeadlineExceeded`, not `UpstreamError`.
#[test]
fn a_passed_deadline_converts_to_its_own_call_error() {
    let e = CallError::from(Error::DeadlineExceeded(Duration::from_millis(5)));
    assert_eq!(e.name, "DeadlineExceeded");
    let e = CallError::from(Error::LostRemote(Duration::from_millis(5)));
    assert_eq!(e.name, "UpstreamError");
}
