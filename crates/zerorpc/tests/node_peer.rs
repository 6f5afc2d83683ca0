//! Interop with a real zerorpc-node 0.9.8 peer, both ways (provisioned
//! under the target dir on first use: `zerorpc_testkit::node_zerorpc`).

use zerorpc_testkit as common;

use std::process::Command;

use common::*;
use futures::StreamExt;
use zerorpc::{Client, Error, Server, Value};

const NODE_SERVER: &str = r#"
var zerorpc = require("zerorpc");
var server = new zerorpc.Server({
    add: function(a, b, reply) { reply(null, a + b); },
    boom: function(reply) { reply(new Error("kaboom")); },
    count: function(n, reply) {
        for (var i = 0; i < n; i++) reply(null, i, true);
        reply();
    },
});
server.bind(process.argv[1]);
console.log("READY");
"#;

const NODE_CLIENT: &str = r#"
var zerorpc = require("zerorpc");
var c = new zerorpc.Client({ timeout: 20 });
c.connect(process.argv[1]);
c.invoke("echo", "héllo", function(err, res) {
    console.log("ECHO " + JSON.stringify([err && err.message, res]));
    c.invoke("nope", function(err) {
        console.log("NOPE " + JSON.stringify([err && err.name, err && err.message]));
        var items = [];
        c.invoke("range", 1500, function(err, item, more) {
            if (err) { console.log("RANGE error " + err.message); c.close(); return; }
            if (item !== undefined) items.push(item);
            if (!more) {
                var inOrder = items.every(function(v, i) { return v === i; });
                console.log("RANGE " + items.length + " " + inOrder);
                c.close();
            }
        });
    });
});
"#;

fn node(script: &str, args: &[&str]) -> Proc {
    let (node, dir) = node_zerorpc();
    let mut cmd = Command::new(node);
    cmd.arg("-e")
        .arg(script)
        .arg("--")
        .args(args)
        .current_dir(dir);
    Proc::spawn(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_calls_a_node_server() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut srv = tokio::task::spawn_blocking({
        let ep = ep.clone();
        move || {
            let mut p = node(NODE_SERVER, &[&ep]);
            p.wait_line("READY");
            p
        }
    })
    .await
    .unwrap();
    let c = Client::connect(&ep).await.unwrap();
    let sum = within("add", c.call("add", vec![2.into(), 40.into()])).await;
    assert_eq!(sum.unwrap(), Value::from(42));
    // long strings leave in pieces of their own; Node reads them whole
    let (a, b) = ("x".repeat(30_000), "y".repeat(40_000));
    let joined = within(
        "add",
        c.call("add", vec![a.clone().into(), b.clone().into()]),
    )
    .await;
    assert_eq!(joined.unwrap(), Value::from(a + &b));
    match within("boom", c.call("boom", vec![])).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.message, "kaboom", "{e:?}");
            // (Node's stack: the error, then its frames)
            assert!(e.traceback.starts_with("Error: kaboom"), "{e:?}");
            assert!(e.traceback.contains("\n    at "), "{e:?}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    // A stream longer than the window: Node grants credit as an absolute
    // count, and items must arrive all and in order.
    let mut s = Box::pin(c.call_stream("count", vec![1500.into()]).await.unwrap());
    let mut n = 0u64;
    while let Some(item) = within("count", s.next()).await {
        assert_eq!(item.unwrap(), Value::from(n));
        n += 1;
    }
    assert_eq!(n, 1500);
    let inspect = within("inspect", c.call("_zerorpc_inspect", vec![])).await;
    let text = inspect.unwrap().to_string();
    assert!(text.contains("add") && text.contains("count"), "{text}");
    srv.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_client_calls_our_server() {
    let server = std::sync::Arc::new(Server::new(zerorpc::demo::Demo));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    let lines = tokio::task::spawn_blocking(move || {
        let mut p = node(NODE_CLIENT, &[&ep]);
        ["ECHO", "NOPE", "RANGE"].map(|l| p.wait_line(l))
    })
    .await
    .unwrap();
    assert_eq!(lines[0], r#"ECHO [null,"héllo"]"#);
    assert_eq!(lines[1], r#"NOPE ["NameError","nope"]"#);
    assert_eq!(lines[2], "RANGE 1500 true");
}
