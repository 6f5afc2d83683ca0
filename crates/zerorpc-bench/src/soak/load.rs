//! The soak's mixed load, each kind on its own paced task (see [`RATES`]).
//! Well-behaved traffic counts successes and errors per kind; hostile
//! traffic counts how the server treated each connection.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use zerorpc::zmtp::{Handshake, Limits, NullMechanism, SocketType};
use zerorpc::{Client, Value};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Event, Filters, Since, Subscription};

use super::{Endpoints, Tally};

/// What runs, for the report: (kind, rate). Keep in step with [`start`].
pub(super) const RATES: &[(&str, &str)] = &[
    ("call echo", "8 clients × 500/s = 4,000 calls/s (latency recorded)"),
    ("stream range(500)", "10/s, read to the end (5,000 items/s)"),
    ("call slow(0.2)", "5/s, overlapping"),
    ("abandoned: client dropped", "2/s: a fresh client calls slow(0.5), dropped after 50 ms"),
    ("abandoned: call timed out", "2/s: slow(1.0) with a 100 ms timeout on a kept client"),
    ("abandoned: stream dropped", "2/s: range(1,000,000), 50 items read, dropped"),
    ("reconnect", "2/s: a fresh client connects, calls echo, closes"),
    ("hub echo", "200/s through the hub (2 workers)"),
    ("hub stream range(20)", "5/s through the hub"),
    ("hub reconnect", "every 2 s: a fresh client through the hub"),
    ("gateway POST /echo", "200/s on one keep-alive connection"),
    ("gateway fresh connection", "2/s: connect, POST /echo, close"),
    ("bus publish", "50/s, each confirmed; one subscriber follows"),
    ("topology", "1,000 trees/s (spout → split → count, acked; 7,000 tuples/s) in the server"),
    ("hostile", "2/s, rotating: garbage bytes (rpc, hub, bus, HTTP); ZMTP handshake then an oversized frame, or non-msgpack and hostile msgpack events (rpc, hub, bus); half a greeting"),
    ("hostile: silent", "every 10 s: connects, sends nothing, held up to 45 s (the server's handshake timeout is 30 s)"),
];

fn text(e: impl Display) -> String {
    e.to_string()
}

/// Runs `f(ctx, n)` every `period_ms` for n = 1, 2, … (a late tick delays
/// the next: no bursts).
fn every<C, F, Fut>(period_ms: u64, ctx: C, f: F) -> JoinHandle<()>
where
    C: Clone + Send + 'static,
    F: Fn(C, u64) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(period_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 1.. {
            tick.tick().await;
            f(ctx.clone(), n).await;
        }
    })
}

/// `echo(n)`'s answer, checked.
fn echoed(r: Result<Value, zerorpc::Error>, n: u64) -> Result<(), String> {
    match r.map_err(text)? {
        v if v.as_u64() == Some(n) => Ok(()),
        v => Err(format!("wrong answer {v}")),
    }
}

/// Starts every kind of load; returns the tasks to abort at the end.
pub(super) async fn start(ep: &Endpoints, tally: &Arc<Tally>) -> Vec<JoinHandle<()>> {
    let client = |ep: &str| {
        let (ep, t) = (ep.to_owned(), tally.clone());
        async move { (Client::connect(&ep).await.expect("connect"), t) }
    };
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(every(2, client(&ep.rpc).await, |(c, t), n| async move {
            let start = Instant::now();
            let r = echoed(c.call("echo", vec![n.into()]).await, n);
            if r.is_ok() {
                t.latency(start.elapsed());
            }
            t.outcome("call echo", r);
        }));
    }
    tasks.push(every(100, client(&ep.rpc).await, |(c, t), _| {
        stream(c, t, "stream range(500)", 500)
    }));
    tasks.push(every(200, client(&ep.rpc).await, |(c, t), _| async move {
        tokio::spawn(
            async move { t.outcome("call slow(0.2)", c.call("slow", vec![0.2.into()]).await) },
        );
    }));

    // Abandoned calls and streams.
    tasks.push(every(
        500,
        (ep.rpc.clone(), tally.clone()),
        |(rpc, t), _| async move {
            let r = async {
                let c = Client::connect(&rpc).await?;
                let _ = timeout(Duration::from_millis(50), c.call("slow", vec![0.5.into()])).await;
                Ok::<_, zerorpc::Error>(())
            };
            t.outcome("abandoned: client dropped", r.await);
        },
    ));
    let (c, t) = client(&ep.rpc).await;
    let c = c.with_timeout(Duration::from_millis(100));
    tasks.push(every(500, (c, t), |(c, t), _| async move {
        let r = match c.call("slow", vec![1.0.into()]).await {
            Err(zerorpc::Error::Timeout(_)) => Ok(()),
            Ok(_) => Err("answered within 100 ms".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        t.outcome("abandoned: call timed out", r);
    }));
    tasks.push(every(500, client(&ep.rpc).await, |(c, t), _| async move {
        let r = async {
            let s = c
                .call_stream("range", vec![1_000_000.into()])
                .await
                .map_err(text)?;
            match s
                .take(50)
                .filter(|r| futures::future::ready(r.is_ok()))
                .count()
                .await
            {
                50 => Ok(()),
                n => Err(format!("{n} of 50 items")),
            }
        };
        t.outcome("abandoned: stream dropped", r.await);
    }));

    // Reconnects.
    for (kind, ep, period) in [
        ("reconnect", &ep.rpc, 500),
        ("hub reconnect", &ep.hub, 2_000),
    ] {
        tasks.push(every(
            period,
            (ep.clone(), tally.clone()),
            move |(ep, t), n| async move {
                let r = match Client::connect(&ep).await {
                    Ok(c) => echoed(c.call("echo", vec![n.into()]).await, n),
                    Err(e) => Err(e.to_string()),
                };
                t.outcome(kind, r);
            },
        ));
    }

    // The hub.
    tasks.push(every(5, client(&ep.hub).await, |(c, t), n| async move {
        t.outcome("hub echo", echoed(c.call("echo", vec![n.into()]).await, n));
    }));
    tasks.push(every(200, client(&ep.hub).await, |(c, t), _| {
        stream(c, t, "hub stream range(20)", 20)
    }));

    // The gateway.
    let kept = Arc::new(tokio::sync::Mutex::new(None::<HttpSender>));
    let ctx = (ep.http.clone(), kept, tally.clone());
    tasks.push(every(5, ctx, |(addr, kept, t), _| async move {
        let mut kept = kept.lock().await;
        let r = async {
            let mut s = match kept.take() {
                Some(s) => s,
                None => http_connect(&addr).await?,
            };
            http_echo(&mut s).await?;
            *kept = Some(s);
            Ok::<_, String>(())
        };
        t.outcome("gateway POST /echo", r.await);
    }));
    tasks.push(every(
        500,
        (ep.http.clone(), tally.clone()),
        |(addr, t), _| async move {
            let r = async { http_echo(&mut http_connect(&addr).await?).await };
            t.outcome("gateway fresh connection", r.await);
        },
    ));

    // The bus: a follower, then a publisher.
    let mut sub = Subscription::bus(&ep.bus, Since::Next, Filters::default())
        .await
        .expect("subscribe");
    let t = tally.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(ev) = sub.next().await {
            match ev {
                Event::Message(_) => t.ok("bus delivered"),
                Event::Quarantined { reason, .. } => t.err("bus delivered", reason),
            }
        }
        t.err("bus delivered", "the subscription ended");
    }));
    let p = Publisher::connect(PublisherOptions::new(&ep.bus))
        .await
        .expect("publisher");
    tasks.push(every(20, (p, tally.clone()), |(p, t), n| async move {
        let body = json!({"n": n, "text": "x".repeat(100)});
        t.outcome("bus publish", p.publish("soak", body).await);
    }));

    // Hostile clients.
    tasks.push(every(
        500,
        (ep.clone(), tally.clone()),
        |(ep, t), n| async move {
            tokio::spawn(hostile(ep, t, n));
        },
    ));
    tasks.push(every(
        10_000,
        (ep.rpc.clone(), tally.clone()),
        |(rpc, t), _| async move {
            tokio::spawn(async move {
                match TcpStream::connect(addr(&rpc)).await {
                    Ok(s) => t.hostile("hostile: silent", Some(closed_within(s, 45).await)),
                    Err(e) => t.err("hostile: silent", e),
                }
            });
        },
    ));
    tasks
}

/// A stream read to its end, checked for `n` items.
async fn stream(c: Client, t: Arc<Tally>, kind: &'static str, n: u64) {
    let r = async {
        let items: Vec<_> = c
            .call_stream("range", vec![n.into()])
            .await
            .map_err(text)?
            .collect()
            .await;
        match items.iter().find_map(|r| r.as_ref().err()) {
            Some(e) => Err(e.to_string()),
            None if items.len() as u64 == n => Ok(()),
            None => Err(format!("{} of {n} items", items.len())),
        }
    };
    t.outcome(kind, r.await);
}

type HttpSender = hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>;

async fn http_connect(addr: &str) -> Result<HttpSender, String> {
    let tcp = TcpStream::connect(addr).await.map_err(text)?;
    let _ = tcp.set_nodelay(true);
    let io = hyper_util::rt::TokioIo::new(tcp);
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(text)?;
    tokio::spawn(conn);
    Ok(sender)
}

/// `POST /echo` with `[1]`, checked.
async fn http_echo(s: &mut HttpSender) -> Result<(), String> {
    s.ready().await.map_err(text)?;
    let req = http::Request::post("/echo")
        .header(http::header::HOST, "gateway")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(Bytes::from_static(b"[1]")))
        .map_err(text)?;
    let resp = s.send_request(req).await.map_err(text)?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(text)?.to_bytes();
    match (status, &body[..]) {
        (http::StatusCode::OK, b"1") => Ok(()),
        (status, body) => Err(format!("{status}: {}", String::from_utf8_lossy(body))),
    }
}

fn addr(endpoint: &str) -> &str {
    endpoint.trim_start_matches("tcp://")
}

/// Whether the server closes `s` within `secs` (what it sends meanwhile
/// is read and dropped).
async fn closed_within(mut s: TcpStream, secs: u64) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    let closed = async { while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {} };
    timeout(Duration::from_secs(secs), closed).await.is_ok()
}

/// A NULL-mechanism ZMTP handshake as a DEALER on `s`.
async fn zmtp_handshake(s: &mut TcpStream) -> Result<(), String> {
    let hs = Handshake::new(
        SocketType::Dealer,
        Bytes::new(),
        Box::new(NullMechanism::new()),
    );
    let (mut r, mut w) = s.split();
    let mut input = BytesMut::new();
    let run = hs.run(&mut r, &mut w, &mut input, Limits::default());
    match timeout(Duration::from_secs(3), run).await {
        Ok(r) => r.map(drop).map_err(text),
        Err(_) => Err("handshake timed out".into()),
    }
}

/// `[delimiter, payload]` as ZMTP frames (short form: payload < 256 bytes).
fn message(payload: &[u8]) -> Vec<u8> {
    [&[0x01, 0x00, 0x00, payload.len() as u8][..], payload].concat()
}

/// One hostile connection, of a kind and to a target chosen by `n`.
async fn hostile(ep: Endpoints, t: Arc<Tally>, n: u64) {
    let i = (n / 4) as usize;
    let zmtp = addr([&ep.rpc, &ep.hub, &ep.bus][i % 3]);
    let (kind, target, handshake, bytes) = match n % 4 {
        0 => {
            let mut x = n | 1; // (xorshift)
            let garbage = (0..512).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            });
            let target = [addr(&ep.rpc), addr(&ep.hub), addr(&ep.bus), &ep.http][i % 4];
            ("hostile: garbage bytes", target, false, garbage.collect())
        }
        // A frame claiming 1 TiB, then a little of it.
        1 => (
            "hostile: oversized frame",
            zmtp,
            true,
            [&[0x02][..], &(1u64 << 40).to_be_bytes(), &[0xAB; 64]].concat(),
        ),
        2 => {
            let events = [
                message(&[0xC1; 40]),                     // never valid msgpack
                message(&[0x93, 0x01, 0x02, 0x03]),       // [1, 2, 3]
                message(&[0xDD, 0xFF, 0xFF, 0xFF, 0xFF]), // an array of 4 G items
                message(&[0x93, 0x80, 0xA4, b'e', b'c', b'h', b'o', 0xC0]), // args nil
            ];
            ("hostile: bad events", zmtp, true, events.concat())
        }
        _ => (
            "hostile: half a greeting, then gone",
            zmtp,
            false,
            vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3],
        ),
    };
    let r = async {
        let mut s = TcpStream::connect(target).await.map_err(text)?;
        if handshake {
            zmtp_handshake(&mut s).await?;
        }
        let _ = s.write_all(&bytes).await;
        Ok::<_, String>(s)
    };
    match r.await {
        Ok(_) if n % 4 == 3 => t.hostile(kind, None),
        Ok(s) => t.hostile(kind, Some(closed_within(s, 3).await)),
        Err(e) => t.err(kind, e),
    }
}
