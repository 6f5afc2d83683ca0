//! Interop: our client against a real zerorpc-python 0.6.3 server.

use zerorpc_testkit as common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use zerorpc::{Client, ClientOptions, Error, Value};

const SERVER: &str = common::PY_DEMO_SERVER;

fn start(hb: f64) -> (Proc, String) {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut p = Proc::python(SERVER, &[&ep, &hb.to_string()]);
    p.wait_line("READY");
    (p, ep)
}

fn opts(hb_ms: u64) -> ClientOptions {
    ClientOptions::default().heartbeat(Duration::from_millis(hb_ms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_values_errors_and_introspection() {
    let (_py, ep) = start(1.0);
    let c = Client::connect_with(&[&ep], opts(1000)).await.unwrap();
    for v in [
        Value::from("héllo"),
        Value::Binary(vec![0, 1, 255]),
        Value::from(12345678901_i64),
        Value::from(-3),
        Value::from(0.25),
        Value::Nil,
        Value::Array(vec![Value::from(1), Value::from("x"), Value::Nil]),
        Value::Map(vec![(Value::from("k"), Value::from(1))]),
        // long strings and binaries leave in pieces of their own
        Value::Binary(vec![9; 100_000]),
        Value::from("é".repeat(20_000)),
        Value::Array(vec![
            Value::Binary(vec![1; 70_000]),
            Value::from(7),
            Value::Map(vec![(Value::from("k"), Value::from("x".repeat(30_000)))]),
        ]),
    ] {
        assert_eq!(
            within("echo", c.call("echo", vec![v.clone()]))
                .await
                .unwrap(),
            v,
            "{v}"
        );
    }
    assert_eq!(
        c.call("add", vec![2.into(), 40.into()]).await.unwrap(),
        Value::from(42)
    );
    // Python's own value types come back as the right msgpack types.
    let t = c.call("types", vec![]).await.unwrap();
    let get = |k: &str| {
        t.as_map()
            .unwrap()
            .iter()
            .find(|(kk, _)| kk.as_str() == Some(k))
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(get("str"), Value::from("PyDemo"));
    assert_eq!(get("bytes"), Value::Binary(vec![0, 255]));
    assert_eq!(get("float"), Value::from(2.5));
    assert_eq!(get("nil"), Value::Nil);

    match c.call("fail", vec!["boom".into()]).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.name, "ValueError");
            assert_eq!(e.message, "boom");
            assert!(e.traceback.contains("Traceback"), "{}", e.traceback);
            assert!(e.traceback.contains("in fail"), "{}", e.traceback);
        }
        other => panic!("{other:?}"),
    }
    match c.call("no_such_method", vec![]).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.name, "NameError");
            assert_eq!(e.message, "no_such_method");
        }
        other => panic!("{other:?}"),
    }
    // Introspection. zerorpc 0.6.3 on Python >= 3.11 fails _zerorpc_args
    // and _zerorpc_inspect (inspect.getargspec is gone): our client must
    // surface that as a clean remote error.
    assert_eq!(
        c.call("_zerorpc_ping", vec![]).await.unwrap(),
        Value::Array(vec!["pong".into(), "PyDemo".into()])
    );
    assert_eq!(
        c.call("_zerorpc_name", vec![]).await.unwrap(),
        Value::from("PyDemo")
    );
    let list = c.call("_zerorpc_list", vec![]).await.unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names, ["add", "echo", "fail", "range", "slow", "types"]);
    assert_eq!(
        c.call("_zerorpc_help", vec!["add".into()]).await.unwrap(),
        Value::from("Add a and b.")
    );
    for m in ["_zerorpc_args", "_zerorpc_inspect"] {
        let args = if m == "_zerorpc_args" {
            vec!["add".into()]
        } else {
            vec![]
        };
        match c.call(m, args).await {
            Ok(v) => assert!(matches!(v, Value::Array(_) | Value::Map(_)), "{m}: {v}"),
            Err(Error::Remote(e)) => assert_eq!(e.name, "AttributeError", "{m}: {e:?}"),
            Err(e) => panic!("{m}: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_stream_with_flow_control_and_concurrency() {
    let (_py, ep) = start(1.0);
    let c = Client::connect_with(&[&ep], opts(1000)).await.unwrap();
    let mut s = Box::pin(c.call_stream("range", vec![10_000.into()]).await.unwrap());
    let mut n = 0u64;
    while let Some(item) = within("python stream", s.next()).await {
        assert_eq!(item.unwrap(), Value::from(n));
        n += 1;
        if n.is_multiple_of(1000) {
            // A slow consumer: the server must wait for credit, not overflow.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(n, 10_000);
    let calls = (0..150).map(|i| {
        let c = c.clone();
        async move { c.call("echo", vec![Value::from(i)]).await }
    });
    for (i, r) in within("150 concurrent", futures::future::join_all(calls))
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(r.unwrap(), Value::from(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_timeouts_and_a_killed_server() {
    let (mut py, ep) = start(1.0);
    let c = Client::connect_with(&[&ep], opts(1000)).await.unwrap();
    // Longer than two heartbeat intervals, still fine.
    assert_eq!(
        within("slow", c.call("slow", vec![2.5.into()]))
            .await
            .unwrap(),
        Value::from(2.5)
    );
    // First-reply timeout.
    let quick = Client::connect_with(&[&ep], opts(1000).timeout(Duration::from_millis(700)))
        .await
        .unwrap();
    assert!(matches!(
        quick.call("slow", vec![5.into()]).await,
        Err(Error::Timeout(_))
    ));
    // Kill the server mid-call: its connection drops, and the call fails
    // at once (not after two silent heartbeat intervals), no hang.
    let call = tokio::spawn({
        let c = c.clone();
        async move { c.call("slow", vec![60.into()]).await }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    py.kill();
    match within("lost call", call).await.unwrap() {
        Err(Error::Disconnected) => {}
        other => panic!("{other:?}"),
    }
}

/// A server speaking like zerorpc-node 0.9.8 (emulated with pyzmq: the
/// Node package's native zeromq module cannot be built here): string
/// message ids, `STREAM_DONE []`, absolute credit, ERR with a JS stack,
/// `_zerorpc_ping` answering `["pong", ""]`.
const NODE_LIKE_SERVER: &str = r#"
import sys, uuid, zmq, msgpack
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
s.bind(sys.argv[1])
print("READY", flush=True)
def send(ident, rt, name, args):
    hdr = {"message_id": str(uuid.uuid4()), "v": 3, "response_to": rt}
    s.send_multipart([ident, b"", msgpack.packb([hdr, name, args], use_bin_type=True)])
streams = {}   # channel -> [next item, end, credit]
while True:
    frames = s.recv_multipart()
    ident, payload = frames[0], frames[-1]
    assert frames[1] == b"", "Node requires the empty delimiter frame"
    hdr, name, args = msgpack.unpackb(payload, raw=False)
    rt = hdr.get("response_to")
    if rt is None:
        mid = hdr["message_id"]
        if name == "range":
            streams[mid] = [0, args[0], 1]
        elif name == "fail":
            send(ident, mid, "ERR", ["Error", args[0], "Error: " + args[0] + "\n    at Object.fail (server.js:1:1)"])
        elif name == "_zerorpc_ping":
            send(ident, mid, "OK", [["pong", ""]])
        else:
            send(ident, mid, "OK", [args[0] if args else None])
        chan = mid
    else:
        chan = rt
        if name == "_zpc_more" and chan in streams:
            streams[chan][2] = args[0]   # absolute, like Node
    st = streams.get(chan)
    if st is not None:
        while st[2] > 0 and st[0] < st[1]:
            send(ident, chan, "STREAM", st[0])
            st[0] += 1
            st[2] -= 1
        if st[0] >= st[1]:
            send(ident, chan, "STREAM_DONE", [])
            del streams[chan]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_like_server() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut p = Proc::python(NODE_LIKE_SERVER, &[&ep]);
    p.wait_line("READY");
    let c = Client::connect(&ep).await.unwrap();
    assert_eq!(
        c.call("echo", vec!["x".into()]).await.unwrap(),
        Value::from("x")
    );
    assert_eq!(
        c.call("_zerorpc_ping", vec![]).await.unwrap(),
        Value::Array(vec!["pong".into(), "".into()])
    );
    match c.call("fail", vec!["nope".into()]).await {
        Err(Error::Remote(e)) => {
            assert_eq!((e.name.as_str(), e.message.as_str()), ("Error", "nope"));
            assert!(e.traceback.contains("server.js"));
        }
        other => panic!("{other:?}"),
    }
    // Absolute credit from a server that honours only what we grant.
    let mut s = Box::pin(c.call_stream("range", vec![5000.into()]).await.unwrap());
    let mut n = 0u64;
    while let Some(item) = within("node-like stream", s.next()).await {
        assert_eq!(item.unwrap(), Value::from(n));
        n += 1;
    }
    assert_eq!(n, 5000);
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

/// The Rust side of the Python `Shapes` service below (what a Rust user
/// writes to get a typed client for it).
struct Shapes;

#[zerorpc::service(name = "Shapes")]
impl Shapes {
    /// The type of what was received, and the value itself.
    pub fn describe(&self, p: Point) -> (String, Point) {
        ("Point".into(), p)
    }
}

const SHAPES: &str = r#"
import sys, zerorpc
class Shapes(object):
    def describe(self, p):
        return [type(p).__name__, p]
s = zerorpc.Server(Shapes(), heartbeat=1)
s.bind(sys.argv[1])
print("READY", flush=True)
s.run()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_client_sends_a_struct_that_python_receives_as_a_dict() {
    for (label, py) in pythons() {
        let ep = format!("tcp://127.0.0.1:{}", free_port());
        let mut server = Proc::python_with(py, SHAPES, &[&ep]);
        tokio::task::block_in_place(|| server.wait_line("READY"));
        let c = ShapesClient::connect(&ep).await.unwrap();
        let p = Point { x: 1.5, y: -2.0 };
        let (kind, back) = within("describe", c.describe(p.clone())).await.unwrap();
        assert_eq!((kind.as_str(), &back), ("dict", &p), "under {label}");
        // and its raw form: a map with the field names
        let raw = within(
            "describe (raw)",
            c.client()
                .call("describe", vec![zerorpc::to_value(&p).unwrap()]),
        )
        .await
        .unwrap();
        assert_eq!(
            raw.as_array().unwrap()[1],
            Value::Map(vec![
                (Value::from("x"), Value::from(1.5)),
                (Value::from("y"), Value::from(-2.0)),
            ]),
            "under {label}"
        );
    }
    // The same typed client against the Rust implementation.
    let server = std::sync::Arc::new(zerorpc::Server::new(Shapes));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    let c = ShapesClient::connect(&ep).await.unwrap();
    let p = Point { x: 3.0, y: 4.0 };
    let got = within("describe (rust)", c.describe(p.clone()))
        .await
        .unwrap();
    assert_eq!(got, ("Point".to_string(), p));
}
