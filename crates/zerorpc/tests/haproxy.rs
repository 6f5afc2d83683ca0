//! High availability behind HAProxy in TCP mode: two of our servers behind
//! a real haproxy (installed from apt when missing); one is killed while
//! calls run on both.

use zerorpc_testkit as common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerorpc::demo::demo_service;
use zerorpc::{ChannelConfig, Client, ClientOptions, Error, Server, ServerOptions, Value};

const HB: Duration = Duration::from_millis(500);

/// The haproxy binary, installed from apt if missing; `None` (after a loud
/// message) only when apt cannot reach its repository.
fn haproxy() -> Option<String> {
    apt_tool("haproxy", "haproxy", "the HAProxy high-availability test")
}

async fn server(port: u16) -> Arc<Server> {
    let s = Arc::new(Server::with_options(
        demo_service(),
        ServerOptions {
            channel: ChannelConfig {
                heartbeat: HB,
                first_reply_timeout: None,
                ..Default::default()
            },
            ..Default::default()
        },
    ));
    s.bind(&format!("tcp://127.0.0.1:{port}")).await.unwrap();
    let r = s.clone();
    tokio::spawn(async move { r.run().await });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_survive_a_backend_killed_behind_haproxy() {
    let Some(bin) = haproxy() else { return };
    let (front, pa, pb) = (free_port(), free_port(), free_port());
    let a = server(pa).await;
    let b = server(pb).await;
    let dir = std::env::temp_dir().join(format!("zerorpc-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("haproxy.cfg");
    // TCP mode; the idle timeouts are far above the heartbeat interval
    // (an open call exchanges heartbeats every interval; an idle
    // connection that haproxy closes is simply re-opened by the client).
    std::fs::write(
        &cfg,
        format!(
            "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n  retries 3\n  option redispatch\n\
             listen zerorpc\n  bind 127.0.0.1:{front}\n  balance roundrobin\n\
             \x20 server a 127.0.0.1:{pa} check inter 200ms fall 1 rise 2\n\
             \x20 server b 127.0.0.1:{pb} check inter 200ms fall 1 rise 2\n"
        ),
    )
    .unwrap();
    let mut proxy = std::process::Command::new(&bin)
        .args(["-db", "-f", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    let front_ep = format!("tcp://127.0.0.1:{front}");
    let opts = ClientOptions {
        channel: ChannelConfig {
            heartbeat: HB,
            first_reply_timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        },
        ..Default::default()
    };
    // Eight clients, each one connection through haproxy: round robin
    // spreads them over both servers.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let c = Client::connect_with(&[&front_ep], opts.clone())
            .await
            .unwrap();
        within(
            "a first call through haproxy",
            c.call("echo", vec![1.into()]),
        )
        .await
        .unwrap();
        clients.push(c);
    }
    assert!(a.active_calls() == 0 && b.active_calls() == 0);
    let calls: Vec<_> = clients
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move { c.call("slow", vec![1.5.into()]).await })
        })
        .collect();
    within("calls on both servers", async {
        while a.active_calls() + b.active_calls() < 8 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let on_a = a.active_calls();
    assert!(
        on_a > 0 && on_a < 8,
        "haproxy spread the connections: {on_a} of 8 on a"
    );
    a.shutdown();
    drop(a);
    let (mut ok, mut lost) = (0, 0);
    for t in calls {
        match within("every call ends", t).await.unwrap() {
            Ok(v) => {
                assert_eq!(v, Value::from(1.5));
                ok += 1
            }
            // haproxy closes the client's side when its server's goes.
            Err(Error::Disconnected | Error::LostRemote(_)) => lost += 1,
            Err(e) => panic!("unclear error: {e}"),
        }
    }
    assert_eq!(
        (ok, lost),
        (8 - on_a, on_a),
        "the calls on the killed server failed, the others did not"
    );
    // New calls all succeed: reconnections go to the live server.
    for c in &clients {
        for i in 0..3 {
            let v = within("a call after the failover", c.call("echo", vec![i.into()]))
                .await
                .unwrap();
            assert_eq!(v, Value::from(i));
        }
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
}
