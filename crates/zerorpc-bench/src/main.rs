//! # zerorpc-bench — one run, every contender, ratios to ours
//!
//! `cargo run --release -p zerorpc-bench -- compare [--quick]`
//!
//! Measures the same workloads, in one run on one machine, on: our Rust
//! client and server; zerorpc-python 0.6.3 (client and server, from the
//! venv the test harness provisions under `target/`); both cross pairings;
//! raw libzmq DEALER↔ROUTER with a msgpack event round trip (the floor for
//! any ZeroMQ RPC); plain tokio TCP echo (the physical floor); tarpc
//! (bincode over TCP); tonic (gRPC, HTTP/2). Writes a
//! markdown table with ratios to ours and a JSON file under
//! `bench-results/`.
//!
//! Also draws the latency distributions (`bench-results/*.svg`).
//!
//! Idle-channel memory is measured for ours, tarpc and tonic, each in a
//! fresh child process (`zerorpc-bench idle SYSTEM N`); not yet for Python.

use zerorpc_testkit as common;

mod brokers;
mod bus;
mod soak;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zerorpc::{Client, Server, Value};

#[derive(Clone, Copy)]
struct Size {
    seq: usize,
    conc: usize,
    stream: u64,
    py_seq: usize,
    py_conc: usize,
    py_stream: u64,
}

#[derive(Default, Clone)]
struct Row {
    name: String,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    rate16: Option<f64>,
    rate256: Option<f64>,
    rate64k: Option<f64>,
    items: Option<f64>,
    /// Sequential latency (µs) at each of [`QUANTILES`].
    pcts: Vec<f64>,
    /// RSS bytes per idle open channel (client and server in one process).
    idle: Option<f64>,
}

impl Row {
    /// A request/reply contender's figures: sequential latency from `h`,
    /// and calls/s at 16, 256 and with 64 KiB payloads.
    fn calls(name: &str, h: &Histogram<u64>, rate16: f64, rate256: f64, rate64k: f64) -> Row {
        Row {
            name: name.into(),
            p50_us: Some(h.value_at_quantile(0.5) as f64 / 1e3),
            p99_us: Some(h.value_at_quantile(0.99) as f64 / 1e3),
            rate16: Some(rate16),
            rate256: Some(rate256),
            rate64k: Some(rate64k),
            items: None,
            pcts: pcts(h),
            idle: None,
        }
    }
}

/// Quantiles plotted for the latency distributions.
const QUANTILES: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999];

fn pcts(h: &Histogram<u64>) -> Vec<f64> {
    QUANTILES
        .iter()
        .map(|q| h.value_at_quantile(*q) as f64 / 1e3)
        .collect()
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

const BIG: usize = 64 * 1024;

// ------------------------------------------------------------ Rust client

/// Our echo call: a small integer, or 64 KiB of bytes.
/// An echo call in a new trace, without recording (the cost of carrying
/// the context alone).
fn echo_call(c: Client, big: bool) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        let arg = if big {
            Value::Binary(vec![7u8; BIG])
        } else {
            Value::from(1)
        };
        c.call("echo", vec![arg]).await.expect("call");
    })
}

async fn rust_client(name: &str, ep: &str, seq: usize, conc: usize, stream: u64) -> Row {
    let c = Client::connect(ep).await.expect("connect");
    let mut row = call_workloads(name, seq, conc, c.clone(), echo_call).await;
    let t = Instant::now();
    let items = c
        .call("range", vec![Value::from(stream)])
        .await
        .expect("stream");
    let n = items.as_array().map(Vec::len).unwrap_or(0);
    row.items = Some(n as f64 / t.elapsed().as_secs_f64());
    row
}

// ------------------------------------------------------------ Python

const PY_CLIENT: &str = r#"
import sys, time, json, zerorpc
from gevent.pool import Pool
ep, n_seq, n_conc, n_stream = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c = zerorpc.Client(timeout=120)
c.connect(ep)
for _ in range(200):
    c.echo(1)
lat = []
for _ in range(n_seq):
    t = time.perf_counter(); c.echo(1); lat.append(time.perf_counter() - t)
lat.sort()
def rate(k, n, payload):
    t = time.perf_counter()
    Pool(k).map(lambda i: c.echo(payload), range(n))
    return n / (time.perf_counter() - t)
r16 = rate(16, n_conc, 1)
r256 = rate(256, n_conc, 1)
r64k = rate(16, max(n_conc // 10, 1), b"\x07" * 65536)
t = time.perf_counter()
n = sum(1 for _ in c.range(n_stream))
items = n / (time.perf_counter() - t)
qs = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999]
pcts = [lat[min(int(len(lat) * q), len(lat) - 1)] * 1e6 for q in qs]
print("RESULT", json.dumps({"p50_us": lat[len(lat)//2] * 1e6, "p99_us": lat[int(len(lat) * 0.99)] * 1e6,
      "rate16": r16, "rate256": r256, "rate64k": r64k, "items": items, "pcts": pcts}), flush=True)
"#;

fn python_client(name: &str, ep: &str, s: Size) -> Row {
    let mut p = common::Proc::python(
        PY_CLIENT,
        &[
            ep,
            &s.py_seq.to_string(),
            &s.py_conc.to_string(),
            &s.py_stream.to_string(),
        ],
    );
    let line = p.wait_line("RESULT");
    let j: serde_json::Value =
        serde_json::from_str(line.trim_start_matches("RESULT").trim()).expect("python result json");
    let f = |k: &str| j[k].as_f64();
    Row {
        name: name.into(),
        p50_us: f("p50_us"),
        p99_us: f("p99_us"),
        rate16: f("rate16"),
        rate256: f("rate256"),
        rate64k: f("rate64k"),
        items: f("items"),
        pcts: j["pcts"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default(),
        idle: None,
    }
}

// ------------------------------------------------------------ raw libzmq

/// A libzmq ROUTER that decodes each msgpack event and answers `OK [arg]`,
/// the least a ZeroRPC server must do per call.
fn zmq_server(ctx: &zmq::Context) -> (String, std::thread::JoinHandle<()>) {
    let router = ctx.socket(zmq::ROUTER).expect("socket");
    router.bind("tcp://127.0.0.1:*").expect("bind");
    router.set_rcvtimeo(2000).expect("opt");
    let ep = router.get_last_endpoint().expect("ep").expect("utf8");
    let h = std::thread::spawn(move || {
        while let Ok(mut m) = router.recv_multipart(0) {
            let Some(payload) = m.pop() else { continue };
            let Ok(ev) = zerorpc::Event::decode(&payload, Default::default()) else {
                continue;
            };
            let arg = match ev.args {
                Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
                _ => Value::Nil,
            };
            let reply =
                zerorpc::Event::on_channel(&ev.header.message_id, "OK", Value::Array(vec![arg]));
            m.push(reply.encode().to_vec());
            if router.send_multipart(m, 0).is_err() {
                break;
            }
        }
    });
    (ep, h)
}

fn zmq_client(ctx: &zmq::Context, seq: usize, conc: usize) -> Row {
    let (ep, server) = zmq_server(ctx);
    let d = ctx.socket(zmq::DEALER).expect("socket");
    d.connect(&ep).expect("connect");
    let call = |d: &zmq::Socket, arg: Value| {
        let ev = zerorpc::Event::new("echo", Value::Array(vec![arg]));
        d.send_multipart([Vec::new(), ev.encode().to_vec()], 0)
            .expect("send");
    };
    let recv = |d: &zmq::Socket| {
        let m = d.recv_multipart(0).expect("recv");
        zerorpc::Event::decode(m.last().expect("payload"), Default::default()).expect("event")
    };
    for _ in 0..200 {
        call(&d, 1.into());
        recv(&d);
    }
    let mut h = hist();
    for _ in 0..seq {
        let t = Instant::now();
        call(&d, 1.into());
        recv(&d);
        h.record(t.elapsed().as_nanos() as u64).ok();
    }
    // k calls in flight from one socket (libzmq's blocking API has no tasks).
    let rate = |k: usize, n: usize, arg: Value| {
        let t = Instant::now();
        for _ in 0..k.min(n) {
            call(&d, arg.clone());
        }
        for i in 0..n {
            recv(&d);
            if i + k < n {
                call(&d, arg.clone());
            }
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let r16 = rate(16, conc, 1.into());
    let r256 = rate(256, conc, 1.into());
    let r64k = rate(16, conc / 10, Value::Binary(vec![7u8; BIG]));
    drop(d);
    server.join().ok();
    Row::calls("raw libzmq DEALER↔ROUTER + msgpack", &h, r16, r256, r64k)
}

// ------------------------------------------------------------ plain TCP

async fn tcp_echo(seq: usize, conc: usize) -> Row {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            s.set_nodelay(true).ok();
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let mut buf = vec![0u8; 256 * 1024];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    // One connection per in-flight call: each echoes a length-prefixed message.
    async fn roundtrip(s: &mut tokio::net::TcpStream, msg: &[u8], back: &mut [u8]) {
        s.write_all(msg).await.expect("write");
        s.read_exact(back).await.expect("read");
    }
    let small = {
        let mut m = vec![0u8, 0, 0, 32];
        m.extend_from_slice(&[1u8; 32]);
        m
    };
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).ok();
    let mut back = vec![0u8; small.len()];
    let mut h = hist();
    for i in 0..seq + 200 {
        let t = Instant::now();
        roundtrip(&mut s, &small, &mut back).await;
        if i >= 200 {
            h.record(t.elapsed().as_nanos() as u64).ok();
        }
    }
    let rate = |k: usize, n: usize, len: usize| async move {
        let mut msg = (len as u32).to_be_bytes().to_vec();
        msg.extend(std::iter::repeat_n(7u8, len));
        let msg = Arc::new(msg);
        let t = Instant::now();
        let per = (n / k).max(1);
        let tasks: Vec<_> = (0..k)
            .map(|_| {
                let msg = msg.clone();
                tokio::spawn(async move {
                    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                    s.set_nodelay(true).ok();
                    let mut back = vec![0u8; msg.len()];
                    for _ in 0..per {
                        roundtrip(&mut s, &msg, &mut back).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        (per * k) as f64 / t.elapsed().as_secs_f64()
    };
    let r16 = rate(16, conc, 32).await;
    let r256 = rate(256, conc, 32).await;
    let r64k = rate(16, conc / 10, BIG).await;
    server.abort();
    Row::calls("plain tokio TCP echo", &h, r16, r256, r64k)
}

// ------------------------------------------------------------ idle channels

/// Opens `n` calls that stay open (the server sleeps), and measures this
/// process's RSS growth per open channel: client and server side together,
/// since both live in this process.
async fn idle_channels(ep: &str, server: &Server, n: usize) -> f64 {
    let c = Client::connect(ep).await.expect("connect");
    c.call("echo", vec![1.into()]).await.expect("warm up");
    let before = common::rss_kib();
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.call("slow", vec![3600.into()]).await })
        })
        .collect();
    while server.active_calls() < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = common::rss_kib();
    for t in calls {
        t.abort();
    }
    (after.saturating_sub(before) * 1024) as f64 / n as f64
}

/// A tarpc server on loopback and a client connected to it. `limit`
/// raises both sides' in-flight limits (for the idle-channel run).
async fn tarpc_pair(limit: Option<usize>) -> (TarpcBenchClient, tokio::task::JoinHandle<()>) {
    use futures::StreamExt;
    use tarpc::server::{BaseChannel, Channel};
    use tarpc::tokio_serde::formats::Bincode;
    let mut incoming = tarpc::serde_transport::tcp::listen("127.0.0.1:0", Bincode::default)
        .await
        .expect("tarpc listen");
    let addr = incoming.local_addr();
    let server = tokio::spawn(async move {
        while let Some(Ok(transport)) = incoming.next().await {
            match limit {
                None => {
                    tokio::spawn(
                        BaseChannel::with_defaults(transport)
                            .execute(TarpcServer.serve())
                            .for_each(|f| async move {
                                tokio::spawn(f);
                            }),
                    );
                }
                Some(n) => {
                    let config = tarpc::server::Config {
                        pending_response_buffer: n + 16,
                    };
                    tokio::spawn(
                        BaseChannel::new(config, transport)
                            .max_concurrent_requests(n + 16)
                            .execute(TarpcServer.serve())
                            .for_each(|f| async move {
                                tokio::spawn(f);
                            }),
                    );
                }
            }
        }
    });
    let transport = tarpc::serde_transport::tcp::connect(addr, Bincode::default)
        .await
        .expect("tarpc connect");
    // (non-exhaustive: set the field on a default value)
    #[allow(clippy::field_reassign_with_default)]
    let config = {
        let mut c = tarpc::client::Config::default();
        if let Some(n) = limit {
            c.max_in_flight_requests = n + 16;
        }
        c
    };
    (TarpcBenchClient::new(config, transport).spawn(), server)
}

/// A tonic server on loopback and a channel connected to it.
async fn tonic_pair() -> (tonic::transport::Channel, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(grpc::BenchService)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("tonic connect");
    (channel, server)
}

static TARPC_SLEEPING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static TONIC_SLEEPING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Opens `n` calls that stay open, via `start_call`, once `sleeping()`
/// reports them all in the server; returns RSS bytes per open call.
async fn idle_common(
    n: usize,
    start_call: impl Fn() -> tokio::task::JoinHandle<()>,
    sleeping: impl Fn() -> usize,
) -> f64 {
    let before = common::rss_kib();
    let calls: Vec<_> = (0..n).map(|_| start_call()).collect();
    // A system may cap concurrent calls below n: measure what it holds open
    // after a while rather than wait forever.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sleeping() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = sleeping();
    let after = common::rss_kib();
    drop(calls);
    if open < n {
        // Queued calls cost memory without being open channels: no figure.
        eprintln!("only {open} of {n} calls reached the server within 30 s: no per-channel figure");
        return f64::NAN;
    }
    (after.saturating_sub(before) * 1024) as f64 / n as f64
}

/// A demo server in this process, serving in the background; returns it
/// and its endpoint.
pub(crate) async fn demo_server(opts: zerorpc::ServerOptions) -> (Arc<Server>, String) {
    let server = Arc::new(Server::with_options(zerorpc::demo::Demo, opts));
    let ep = server
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind")
        .to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    (server, ep)
}

async fn idle_ours(n: usize) -> f64 {
    let (server, ep) = demo_server(Default::default()).await;
    idle_channels(&ep, &server, n).await
}

async fn idle_tarpc(n: usize) -> f64 {
    let (client, _server) = tarpc_pair(Some(n)).await;
    client
        .echo(tarpc::context::current(), 1)
        .await
        .expect("warm up");
    idle_common(
        n,
        || {
            let c = client.clone();
            tokio::spawn(async move {
                let _ = c.sleep(tarpc::context::current(), 3_600_000).await;
            })
        },
        || TARPC_SLEEPING.load(std::sync::atomic::Ordering::SeqCst),
    )
    .await
}

async fn idle_tonic(n: usize) -> f64 {
    use grpc::Num;
    use tonic_prost::ProstCodec;
    let (channel, _server) = tonic_pair().await;
    idle_common(
        n,
        || {
            let ch = channel.clone();
            tokio::spawn(async move {
                let mut g = tonic::client::Grpc::new(ch);
                if g.ready().await.is_ok() {
                    let _: Result<tonic::Response<Num>, _> = g
                        .unary(
                            tonic::Request::new(Num { x: 3_600_000 }),
                            http::uri::PathAndQuery::from_static("/bench.Bench/Sleep"),
                            ProstCodec::<Num, Num>::default(),
                        )
                        .await;
                }
            })
        },
        || TONIC_SLEEPING.load(std::sync::atomic::Ordering::SeqCst),
    )
    .await
}

/// Measures idle-channel memory of one system in a fresh child process
/// (a heap that earlier workloads grew would hide the growth).
fn idle_in_child(system: &str, n: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("timeout")
        .arg("120")
        .arg(exe)
        .args(["idle", system, &n.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("IDLE "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

// ------------------------------------------------------------ shared call workloads

/// One call of a contender: `big` selects the 64 KiB payload.
type CallFn<C> = fn(C, bool) -> futures::future::BoxFuture<'static, ()>;

/// Sequential latency, then 16 and 256 calls in flight (one task each),
/// then 64 KiB calls at 16: the workloads every request/reply contender
/// runs the same way.
async fn call_workloads<C: Clone + Send + 'static>(
    name: &str,
    seq: usize,
    conc: usize,
    client: C,
    call: CallFn<C>,
) -> Row {
    for _ in 0..200 {
        call(client.clone(), false).await;
    }
    let mut h = hist();
    for _ in 0..seq {
        let t = Instant::now();
        call(client.clone(), false).await;
        h.record(t.elapsed().as_nanos() as u64).ok();
    }
    let rate = |k: usize, n: usize, big: bool| {
        let client = client.clone();
        async move {
            let t = Instant::now();
            let per = (n / k).max(1);
            let tasks: Vec<_> = (0..k)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move {
                        for _ in 0..per {
                            call(c.clone(), big).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            (per * k) as f64 / t.elapsed().as_secs_f64()
        }
    };
    let r16 = rate(16, conc, false).await;
    let r256 = rate(256, conc, false).await;
    let r64k = rate(16, conc / 10, true).await;
    Row::calls(name, &h, r16, r256, r64k)
}

// ------------------------------------------------------------ tarpc

#[tarpc::service]
trait TarpcBench {
    async fn echo(x: i64) -> i64;
    async fn blob(b: Vec<u8>) -> Vec<u8>;
    async fn sleep(ms: u64) -> u64;
}

#[derive(Clone)]
struct TarpcServer;

impl TarpcBench for TarpcServer {
    async fn echo(self, _: tarpc::context::Context, x: i64) -> i64 {
        x
    }
    async fn blob(self, _: tarpc::context::Context, b: Vec<u8>) -> Vec<u8> {
        b
    }
    async fn sleep(self, _: tarpc::context::Context, ms: u64) -> u64 {
        TARPC_SLEEPING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
}

async fn tarpc_bench(seq: usize, conc: usize) -> Row {
    let (client, server) = tarpc_pair(None).await;
    let row = call_workloads("tarpc (bincode over TCP)", seq, conc, client, |c, big| {
        Box::pin(async move {
            if big {
                c.blob(tarpc::context::current(), vec![7u8; BIG])
                    .await
                    .expect("call");
            } else {
                c.echo(tarpc::context::current(), 1).await.expect("call");
            }
        })
    })
    .await;
    server.abort();
    row
}

// ------------------------------------------------------------ tonic

/// A gRPC echo service for tonic, written without code generation (so no
/// `protoc` is needed): prost messages and the routing tonic's generated
/// code would contain.
mod grpc {
    use std::convert::Infallible;
    use std::task::{Context, Poll};

    use futures::future::BoxFuture;
    use tonic::server::{Grpc, NamedService, UnaryService};
    use tonic::{Request, Response, Status};
    use tonic_prost::ProstCodec;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Num {
        #[prost(int64, tag = "1")]
        pub x: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Blob {
        #[prost(bytes = "vec", tag = "1")]
        pub b: Vec<u8>,
    }

    #[derive(Clone)]
    pub struct BenchService;

    impl NamedService for BenchService {
        const NAME: &'static str = "bench.Bench";
    }

    struct Echo;
    impl UnaryService<Num> for Echo {
        type Response = Num;
        type Future = BoxFuture<'static, Result<Response<Num>, Status>>;
        fn call(&mut self, req: Request<Num>) -> Self::Future {
            Box::pin(async move { Ok(Response::new(req.into_inner())) })
        }
    }

    struct Sleep;
    impl UnaryService<Num> for Sleep {
        type Response = Num;
        type Future = BoxFuture<'static, Result<Response<Num>, Status>>;
        fn call(&mut self, req: Request<Num>) -> Self::Future {
            super::TONIC_SLEEPING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                let n = req.into_inner();
                tokio::time::sleep(std::time::Duration::from_millis(n.x.max(0) as u64)).await;
                Ok(Response::new(n))
            })
        }
    }

    struct EchoBlob;
    impl UnaryService<Blob> for EchoBlob {
        type Response = Blob;
        type Future = BoxFuture<'static, Result<Response<Blob>, Status>>;
        fn call(&mut self, req: Request<Blob>) -> Self::Future {
            Box::pin(async move { Ok(Response::new(req.into_inner())) })
        }
    }

    impl tower_service::Service<http::Request<tonic::body::Body>> for BenchService {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
            match req.uri().path() {
                "/bench.Bench/Echo" => Box::pin(async move {
                    Ok(Grpc::new(ProstCodec::<Num, Num>::default())
                        .unary(Echo, req)
                        .await)
                }),
                "/bench.Bench/Sleep" => Box::pin(async move {
                    Ok(Grpc::new(ProstCodec::<Num, Num>::default())
                        .unary(Sleep, req)
                        .await)
                }),
                "/bench.Bench/Blob" => Box::pin(async move {
                    Ok(Grpc::new(ProstCodec::<Blob, Blob>::default())
                        .unary(EchoBlob, req)
                        .await)
                }),
                _ => {
                    Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) })
                }
            }
        }
    }
}

async fn tonic_bench(seq: usize, conc: usize) -> Row {
    use grpc::{Blob, Num};
    use http::uri::PathAndQuery;
    use tonic_prost::ProstCodec;
    let (channel, server) = tonic_pair().await;
    async fn echo(ch: &tonic::transport::Channel, x: i64) {
        let mut g = tonic::client::Grpc::new(ch.clone());
        g.ready().await.expect("ready");
        let _: tonic::Response<Num> = g
            .unary(
                tonic::Request::new(Num { x }),
                PathAndQuery::from_static("/bench.Bench/Echo"),
                ProstCodec::<Num, Num>::default(),
            )
            .await
            .expect("call");
    }
    async fn blob(ch: &tonic::transport::Channel) {
        let mut g = tonic::client::Grpc::new(ch.clone());
        g.ready().await.expect("ready");
        let _: tonic::Response<Blob> = g
            .unary(
                tonic::Request::new(Blob { b: vec![7u8; BIG] }),
                PathAndQuery::from_static("/bench.Bench/Blob"),
                ProstCodec::<Blob, Blob>::default(),
            )
            .await
            .expect("call");
    }
    let row = call_workloads("tonic (gRPC over HTTP/2)", seq, conc, channel, |ch, big| {
        Box::pin(async move {
            if big {
                blob(&ch).await;
            } else {
                echo(&ch, 1).await;
            }
        })
    })
    .await;
    server.abort();
    row
}

// ------------------------------------------------------------ report

/// Writes an SVG of each system's sequential latency distribution.
fn plot(rows: &[Row], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = rows
        .iter()
        .flat_map(|r| r.pcts.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Sequential call latency by percentile (µs, log scale)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0usize..QUANTILES.len() - 1, (1.0f64..max).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(QUANTILES.len())
        .x_label_formatter(&|i| format!("p{}", QUANTILES.get(*i).map(|q| q * 100.0).unwrap_or(0.0)))
        .y_desc("µs")
        .draw()?;
    for (i, r) in rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.pcts.len() == QUANTILES.len())
    {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                r.pcts.iter().enumerate().map(|(x, y)| (x, y.max(1.0))),
                color.stroke_width(2),
            ))?
            .label(r.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

impl Row {
    /// The request/reply columns (p50, p99, @16, @256, 64 KiB), each with
    /// its ratio to `base`.
    fn call_cells(&self, base: &Row) -> String {
        [
            cell(self.p50_us, base.p50_us),
            cell(self.p99_us, base.p99_us),
            cell(self.rate16, base.rate16),
            cell(self.rate256, base.rate256),
            cell(self.rate64k, base.rate64k),
        ]
        .join(" | ")
    }
}

fn cell(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => {
            let ratio = v / b;
            format!("{v:.0} ({ratio:.2}×)")
        }
        (Some(v), _) => format!("{v:.0}"),
        (None, _) => "–".into(),
    }
}

// ------------------------------------------------------------ the hub

/// Calls/s and latency through a hub with `workers` of our servers behind
/// it, against the same client calling one server directly, in this
/// process; prints a markdown table with the ratios.
async fn hub_bench(quick: bool) {
    let (seq, conc) = if quick {
        (2_000, 20_000)
    } else {
        (10_000, 100_000)
    };
    // (on a worker thread, as in `compare`: the block_on thread is not one)
    let row = |name: &'static str, ep: String| async move {
        tokio::spawn(async move { rust_client(name, &ep, seq, conc, 1).await })
            .await
            .expect("bench task")
    };
    let (_direct_server, direct_ep) = demo_server(Default::default()).await;
    eprintln!("direct: one server");
    let direct = row("direct (one server)", direct_ep).await;
    let mut rows = vec![direct];
    for workers in [2usize, 4] {
        let (hub, input, _servers) = start_hub(workers).await;
        eprintln!("through the hub: {workers} workers");
        let name = if workers == 2 {
            "through the hub, 2 workers"
        } else {
            "through the hub, 4 workers"
        };
        rows.push(row(name, input).await);
        hub.shutdown();
    }
    let base = &rows[0];
    println!("| path | p50 µs | p99 µs | calls/s @16 | calls/s @256 | 64 KiB calls/s @16 |\n|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!("| {} | {} |", r.name, r.call_cells(base));
    }
    let ratio = |r: &Row| {
        r.rate16
            .zip(base.rate16)
            .map(|(a, b)| a / b)
            .unwrap_or(f64::NAN)
    };
    println!(
        "\ncalls/s through the hub vs direct at 16 in flight: {:.2}x with 2 workers, {:.2}x with 4 (target >= 0.7x)",
        ratio(&rows[1]),
        ratio(&rows[2])
    );
}

// ------------------------------------------------------------ the gateway

/// Requests (or calls) per second and per-request latency at one
/// concurrency.
struct Load {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Runs `per` requests on each of `workers` (one per concurrent client),
/// one at a time on each (`f` takes the worker and gives it back):
/// requests/s and latency.
async fn load<W, F, Fut>(workers: Vec<W>, per: usize, f: F) -> Load
where
    W: Send + 'static,
    F: Fn(W) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = W> + Send,
{
    let t = Instant::now();
    let n = workers.len();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let mut h = hist();
                for _ in 0..per {
                    let t = Instant::now();
                    w = f(w).await;
                    h.record(t.elapsed().as_nanos() as u64).ok();
                }
                h
            })
        })
        .collect();
    let mut all = hist();
    for t in tasks {
        all.add(t.await.expect("load task")).ok();
    }
    Load {
        rate: (per * n) as f64 / t.elapsed().as_secs_f64(),
        p50_us: all.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: all.value_at_quantile(0.99) as f64 / 1e3,
    }
}

type HttpSender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// One HTTP/1.1 keep-alive connection to the gateway.
async fn http_conn(addr: std::net::SocketAddr) -> HttpSender {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    sender
}

/// `POST /echo` with `[1]`, checked.
async fn http_echo(mut sender: HttpSender) -> HttpSender {
    use http_body_util::BodyExt;
    sender.ready().await.expect("connection ready");
    let req = http::Request::post("/echo")
        .header(http::header::HOST, "gateway")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"[1]")))
        .expect("request");
    let resp = sender.send_request(req).await.expect("HTTP request");
    assert_eq!(resp.status(), http::StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"1");
    sender
}

/// A hub (default options) on free local ports with `n` demo servers as
/// its workers, running once the hub has heard from all of them: the hub,
/// the endpoint its clients connect to, the workers.
pub(crate) async fn start_hub(n: usize) -> (Arc<zerorpc::Hub>, String, Vec<Arc<Server>>) {
    let hub = Arc::new(zerorpc::Hub::new(zerorpc::HubOptions::default()));
    let input = hub.bind_in("tcp://127.0.0.1:0").await.expect("bind in");
    let output = hub.bind_out("tcp://127.0.0.1:0").await.expect("bind out");
    let h = hub.clone();
    tokio::spawn(async move { h.run().await });
    let mut servers = Vec::new();
    for _ in 0..n {
        let s = Arc::new(Server::new(zerorpc::demo::Demo));
        s.connect(&output.to_string())
            .await
            .expect("connect worker");
        let r = s.clone();
        tokio::spawn(async move { r.run().await });
        servers.push(s);
    }
    while hub.stats().workers.len() < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (hub, input.to_string(), servers)
}

/// An HTTP gateway (default options) in front of the service at `ep`,
/// served on a free local port: its address.
pub(crate) async fn start_gateway(ep: &str) -> std::net::SocketAddr {
    let gateway = zerorpc_gateway::Gateway::new(
        Client::connect(ep).await.expect("connect"),
        zerorpc_gateway::GatewayOptions::default(),
    )
    .await
    .expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(gateway.serve(listener));
    addr
}

/// `echo(1)` requests/s through the HTTP gateway (HTTP/1.1 keep-alive, one
/// connection per concurrent client) against direct zerorpc calls to the
/// same demo server at the same concurrency; all in this process.
async fn gateway_bench(quick: bool) {
    let total = if quick { 20_000 } else { 100_000 };
    let (_server, ep) = demo_server(Default::default()).await;
    let direct = Client::connect(&ep).await.expect("connect");
    let addr = start_gateway(&ep).await;
    // The HTTP floor: the same request to an axum handler that answers
    // `1` without calling anything.
    let floor = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let floor_addr = floor.local_addr().expect("address");
    let floor_app = axum::Router::new().route(
        "/echo",
        axum::routing::post(|_body: bytes::Bytes| async {
            ([(http::header::CONTENT_TYPE, "application/json")], "1")
        }),
    );
    tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let floor = floor.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(floor, floor_app).await
    });

    async fn zerorpc_echo(c: Client) -> Client {
        c.call("echo", vec![Value::from(1)]).await.expect("call");
        c
    }
    let mut rows = Vec::new();
    for conc in [1usize, 16, 64] {
        let per = if conc == 1 { total / 10 } else { total / conc };
        // (warm-up: connections made, caches filled)
        let warm: Vec<Client> = (0..conc).map(|_| direct.clone()).collect();
        load(warm, 200 / conc + 1, zerorpc_echo).await;
        let d = load(
            (0..conc).map(|_| direct.clone()).collect(),
            per,
            zerorpc_echo,
        )
        .await;
        let mut conns = Vec::new();
        for _ in 0..conc {
            conns.push(http_conn(addr).await);
        }
        let g = load(conns, per, http_echo).await;
        let mut conns = Vec::new();
        for _ in 0..conc {
            conns.push(http_conn(floor_addr).await);
        }
        let f = load(conns, per, http_echo).await;
        eprintln!(
            "{conc} in flight: direct {:.0} calls/s, gateway {:.0} req/s, HTTP floor {:.0} req/s",
            d.rate, g.rate, f.rate
        );
        rows.push((conc, d, g, f));
    }
    println!(
        "| in flight | direct zerorpc calls/s | gateway req/s | gateway / direct | HTTP floor req/s | gateway / floor | p50 / p99 µs: direct | gateway | floor |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (conc, d, g, f) in &rows {
        println!(
            "| {conc} | {:.0} | {:.0} | {:.2}× | {:.0} | {:.2}× | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} |",
            d.rate,
            g.rate,
            g.rate / d.rate,
            f.rate,
            g.rate / f.rate,
            d.p50_us,
            d.p99_us,
            g.p50_us,
            g.p99_us,
            f.p50_us,
            f.p99_us
        );
    }
    println!(
        "\n(HTTP floor: the same requests to an axum handler answering 1 without a call; all in one process)"
    );
}

// ------------------------------------------------------------ tracing

/// One tracing mode in this (fresh) process: 0 off, 1 recording into an
/// embedded store, 2 recording into a sink that discards (the cost of
/// recording alone), 3 every call in a trace but nothing recorded (the
/// cost of carrying the context). Client and server both record.
async fn tracing_child(mode: u8, quick: bool) -> Row {
    let (seq, conc) = if quick {
        (2_000, 20_000)
    } else {
        (10_000, 100_000)
    };
    let recorder = match mode {
        1 => Some(zerorpc::Recorder::new(
            zerorpc::EmbeddedStore::new(Duration::from_secs(60)),
            100_000,
        )),
        2 => Some(zerorpc::Recorder::new(Discard, 100_000)),
        _ => None,
    };
    let (_server, ep) = demo_server(zerorpc::ServerOptions {
        recorder: recorder.clone(),
        ..Default::default()
    })
    .await;
    // (a trace context on every root call is the default: off only here)
    let opts = zerorpc::ClientOptions {
        recorder: recorder.clone(),
        trace_roots: mode != 0,
        ..Default::default()
    };
    let call: CallFn<Client> = echo_call;
    let row = tokio::spawn(async move {
        let c = Client::connect_with(&[&ep], opts).await.expect("connect");
        call_workloads("", seq, conc, c, call).await
    })
    .await
    .expect("bench task");
    if let Some(r) = &recorder {
        eprintln!("  records written {}, dropped {}", r.written(), r.dropped());
    }
    row
}

/// Tracing off vs on, each run in a fresh child process, alternating
/// (off, on with an embedded store, on with a discarding sink) three
/// times; prints every run and the median ratios.
fn tracing_bench(quick: bool) {
    let names = [
        "tracing off",
        "on, embedded store",
        "on, discarding sink",
        "context on every call (default), no recording",
    ];
    let mut runs: Vec<(usize, Row)> = Vec::new();
    for round in 1..=3 {
        for (mode, name) in names.iter().enumerate() {
            eprintln!("[round {round}] {name}");
            let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
            cmd.args(["tracing-child", &mode.to_string()]);
            if quick {
                cmd.arg("--quick");
            }
            let out = cmd.output().expect("run tracing child");
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix("ROW "))
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            else {
                eprintln!(
                    "tracing child failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::process::exit(1);
            };
            let f = |k: &str| v[k].as_f64();
            runs.push((
                mode,
                Row {
                    name: format!("{name} ({round})"),
                    p50_us: f("p50"),
                    p99_us: f("p99"),
                    rate16: f("r16"),
                    rate256: f("r256"),
                    rate64k: f("r64k"),
                    ..Row::default()
                },
            ));
        }
    }
    let median = print_runs(&runs);
    for (mode, label) in [
        (1, "embedded store"),
        (2, "discarding sink"),
        (3, "context on every call, the default"),
    ] {
        println!(
            "median calls/s with tracing on ({label}) vs off: {:.2}x at 16 in flight, {:.2}x at 256; p50 {:.0} vs {:.0} µs (target >= 0.9x)",
            median(mode, |r| r.rate16) / median(0, |r| r.rate16),
            median(mode, |r| r.rate256) / median(0, |r| r.rate256),
            median(mode, |r| r.p50_us),
            median(0, |r| r.p50_us),
        );
    }
}

/// Prints runs as a table (ratios against the first run) and returns the
/// median of `f` over the runs of `mode`.
fn print_runs<M: PartialEq + Copy>(
    runs: &[(M, Row)],
) -> impl Fn(M, fn(&Row) -> Option<f64>) -> f64 + '_ {
    let base = runs[0].1.clone();
    println!();
    println!("| run | p50 µs | p99 µs | calls/s @16 | calls/s @256 | 64 KiB calls/s @16 |\n|---|---:|---:|---:|---:|---:|");
    for (_, r) in runs {
        println!("| {} | {} |", r.name, r.call_cells(&base));
    }
    move |mode: M, f: fn(&Row) -> Option<f64>| {
        let mut v: Vec<f64> = runs
            .iter()
            .filter(|(m, _)| *m == mode)
            .filter_map(|(_, r)| f(r))
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// A sink that drops every batch (measures the cost of recording alone).
struct Discard;

impl zerorpc::TraceSink for Discard {
    fn write(
        &self,
        _: Vec<zerorpc::Record>,
    ) -> futures::future::BoxFuture<'static, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

// ------------------------------------------------------------ security

/// Calls over a fresh server and client, with CURVE or without.
async fn security_row(curve: bool, quick: bool) -> Row {
    use zerorpc::zmtp::curve::CurveKeyPair;
    use zerorpc::zmtp::{AllowAny, Security, SocketOptions};
    let (seq, conc) = if quick {
        (2_000, 20_000)
    } else {
        (10_000, 100_000)
    };
    let server_keys = CurveKeyPair::generate();
    let (server_sec, client_sec) = if curve {
        (
            Security::curve_server(server_keys.clone(), AllowAny),
            Security::curve_client(CurveKeyPair::generate(), server_keys.public),
        )
    } else {
        (Security::Null, Security::Null)
    };
    let (server, ep) = demo_server(zerorpc::ServerOptions {
        socket: SocketOptions {
            security: server_sec,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let opts = zerorpc::ClientOptions {
        socket: SocketOptions {
            security: client_sec,
            ..Default::default()
        },
        ..Default::default()
    };
    let name = if curve { "CURVE" } else { "NULL" };
    let row = tokio::spawn(async move {
        let c = Client::connect_with(&[&ep], opts).await.expect("connect");
        call_workloads(name, seq, conc, c, echo_call).await
    })
    .await
    .expect("bench task");
    server.shutdown();
    row
}

/// NULL vs CURVE, alternating three times; prints every run and the
/// median ratios.
async fn security_bench(quick: bool) {
    alternate("CURVE", "NULL", |curve| security_row(curve, quick)).await;
}

// ------------------------------------------------------------ deadline

/// Calls with a budget (`deadline_ms` in every request, the server running
/// the handler under it: the default, from the 30 s timeout) or without
/// (`with_timeout(None)`: no header, no deadline).
async fn deadline_row(on: bool, quick: bool) -> Row {
    let (seq, conc) = if quick {
        (2_000, 20_000)
    } else {
        (10_000, 100_000)
    };
    let (server, ep) = demo_server(zerorpc::ServerOptions::default()).await;
    let name = if on { "deadline" } else { "no deadline" };
    let row = tokio::spawn(async move {
        let c = Client::connect(&ep).await.expect("connect");
        let c = if on { c } else { c.with_timeout(None) };
        call_workloads(name, seq, conc, c, echo_call).await
    })
    .await
    .expect("bench task");
    server.shutdown();
    row
}

/// `row(true)` against `row(false)`, alternating three times; prints every
/// run and the median ratios.
async fn alternate<F, Fut>(on: &str, off: &str, row: F)
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Row>,
{
    let mut runs: Vec<(bool, Row)> = Vec::new();
    for round in 1..=3 {
        for mode in [false, true] {
            eprintln!("[round {round}] {}", if mode { on } else { off });
            let mut r = row(mode).await;
            r.name = format!("{} ({round})", r.name);
            runs.push((mode, r));
        }
    }
    let median = print_runs(&runs);
    println!(
        "median calls/s with {on} vs {off}: {:.2}x at 16 in flight, {:.2}x at 256, {:.2}x for 64 KiB calls; p50 {:.0} vs {:.0} µs",
        median(true, |r| r.rate16) / median(false, |r| r.rate16),
        median(true, |r| r.rate256) / median(false, |r| r.rate256),
        median(true, |r| r.rate64k) / median(false, |r| r.rate64k),
        median(true, |r| r.p50_us),
        median(false, |r| r.p50_us),
    );
}

/// The runtime every measurement runs on: two workers, like the machine.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The workload `callgrind.sh` counts instructions of: `calls` makes `n`
/// sequential `echo` calls, `stream` takes one `range(n)` stream. One
/// thread (a current-thread runtime), so that the count repeats from run to
/// run; the script runs it at two sizes and divides the difference, so
/// start-up and connection set-up cancel out.
fn instructions_workload(kind: &str, n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (_server, ep) = demo_server(Default::default()).await;
        // `calls`: the default (a trace context on every root call);
        // `untraced`: without it, what that context costs.
        let opts = zerorpc::ClientOptions {
            trace_roots: kind != "untraced",
            ..Default::default()
        };
        let c = Client::connect_with(&[&ep], opts).await.expect("connect");
        // One call first: the connection is up before the counted part.
        c.call("echo", vec![Value::from(0)]).await.expect("call");
        match kind {
            "calls" | "untraced" => {
                for i in 0..n {
                    c.call("echo", vec![Value::from(i)]).await.expect("call");
                }
            }
            "stream" => {
                let items = c.call("range", vec![Value::from(n)]).await.expect("stream");
                assert_eq!(items.as_array().map(Vec::len), Some(n as usize));
            }
            other => panic!("instructions: calls, untraced or stream, not {other}"),
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("tracing") {
        tracing_bench(args.iter().any(|a| a == "--quick"));
        return;
    }
    if args.get(1).map(String::as_str) == Some("tracing-child") {
        let mode: u8 = args.get(2).and_then(|m| m.parse().ok()).unwrap_or(0);
        let rt = runtime();
        let r = rt.block_on(tracing_child(mode, args.iter().any(|a| a == "--quick")));
        println!(
            "ROW {}",
            json!({"p50": r.p50_us, "p99": r.p99_us, "r16": r.rate16, "r256": r.rate256, "r64k": r.rate64k})
        );
        std::process::exit(0);
    }
    if args.get(1).map(String::as_str) == Some("brokers") {
        let rt = runtime();
        rt.block_on(brokers::brokers_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("bus") {
        let rt = runtime();
        rt.block_on(bus::bus_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("stream") {
        let rt = runtime();
        rt.block_on(stream::stream_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("soak") {
        soak::main(&args[2..]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("soak-server") {
        soak::server_main(&args[2..]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("security") {
        let rt = runtime();
        rt.block_on(security_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("deadline") {
        let rt = runtime();
        rt.block_on(alternate("deadline", "no deadline", |on| {
            deadline_row(on, args.iter().any(|a| a == "--quick"))
        }));
        return;
    }
    if args.get(1).map(String::as_str) == Some("hub") {
        let rt = runtime();
        rt.block_on(hub_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("gateway") {
        let rt = runtime();
        rt.block_on(gateway_bench(args.iter().any(|a| a == "--quick")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("instructions") {
        // Child mode (see `callgrind.sh`): N sequential calls or one
        // stream of N items, client and server in this process.
        let n: u64 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1000);
        instructions_workload(args.get(2).map(String::as_str).unwrap_or("calls"), n);
        return;
    }
    if args.get(1).map(String::as_str) == Some("idle") {
        // Child mode (see `idle_in_child`): one system, a fresh heap.
        let n: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1000);
        let rt = runtime();
        let bytes = rt.block_on(async {
            match args.get(2).map(String::as_str) {
                Some("ours") => idle_ours(n).await,
                Some("tarpc") => idle_tarpc(n).await,
                Some("tonic") => idle_tonic(n).await,
                _ => f64::NAN,
            }
        });
        println!("IDLE {bytes}");
        // The open calls would sleep for an hour: leave now.
        std::process::exit(0);
    }
    if args.get(1).map(String::as_str) != Some("compare") {
        eprintln!("usage: zerorpc-bench compare|hub|tracing|gateway|security|deadline|bus|stream [--quick]");
        std::process::exit(2);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let s = if quick {
        Size {
            seq: 2_000,
            conc: 20_000,
            stream: 200_000,
            py_seq: 500,
            py_conc: 2_000,
            py_stream: 20_000,
        }
    } else {
        Size {
            seq: 10_000,
            conc: 200_000,
            stream: 1_000_000,
            py_seq: 2_000,
            py_conc: 10_000,
            py_stream: 100_000,
        }
    };
    let rt = runtime();
    let started = Instant::now();
    let step = |i: usize, what: &str| {
        eprintln!("[{i}/8 {:>5.1}s] {what}", started.elapsed().as_secs_f64())
    };

    step(0, "provisioning the Python venv (first run only)");
    common::python();
    let (_server, rust_ep) = rt.block_on(demo_server(Default::default()));
    let py_ep = format!("tcp://127.0.0.1:{}", common::free_port());
    let py_server_script = common::PY_DEMO_SERVER;
    let mut py_server = common::Proc::python(py_server_script, &[&py_ep, "5"]);
    py_server.wait_line("READY");

    // Idle-channel memory, each system in a fresh child process.
    let idle_n = if quick { 2_000 } else { 10_000 };
    eprintln!(
        "[+ {:>5.1}s] {idle_n} idle open channels (ours, tarpc, tonic; each in a fresh process)",
        started.elapsed().as_secs_f64()
    );
    let idle_ours = idle_in_child("ours", idle_n);
    let idle_tarpc = idle_in_child("tarpc", idle_n);
    let idle_tonic = idle_in_child("tonic", idle_n);
    let per_channel = idle_ours.unwrap_or(f64::NAN);

    let mut rows = Vec::new();
    step(1, "ours: Rust client -> Rust server");
    let ep = rust_ep.clone();
    rows.push(rt.block_on(async move {
        tokio::spawn(async move {
            rust_client("ours: Rust → Rust", &ep, s.seq, s.conc, s.stream).await
        })
        .await
        .expect("task")
    }));
    step(2, "zerorpc-python: Python client -> Python server");
    rows.push(python_client("zerorpc-python: Python → Python", &py_ep, s));
    step(3, "cross: Rust client -> Python server");
    let ep = py_ep.clone();
    rows.push(rt.block_on(async move {
        tokio::spawn(async move {
            rust_client(
                "cross: Rust → Python",
                &ep,
                s.py_seq,
                s.py_conc,
                s.py_stream,
            )
            .await
        })
        .await
        .expect("task")
    }));
    step(4, "cross: Python client -> Rust server");
    rows.push(python_client("cross: Python → Rust", &rust_ep, s));
    step(5, "raw libzmq DEALER<->ROUTER with msgpack");
    let ctx = zmq::Context::new();
    rows.push(zmq_client(&ctx, s.seq, s.conc));
    step(6, "plain tokio TCP echo");
    rows.push(
        rt.block_on(async move { tokio::spawn(tcp_echo(s.seq, s.conc)).await.expect("task") }),
    );
    drop(py_server);
    step(7, "tarpc");
    rows.push(rt.block_on(async move {
        tokio::spawn(tarpc_bench(s.seq, s.conc))
            .await
            .expect("task")
    }));
    step(8, "tonic");
    rows.push(rt.block_on(async move {
        tokio::spawn(tonic_bench(s.seq, s.conc))
            .await
            .expect("task")
    }));

    for r in rows.iter_mut() {
        if r.name.starts_with("ours") {
            r.idle = idle_ours;
        } else if r.name.starts_with("tarpc") {
            r.idle = idle_tarpc;
        } else if r.name.starts_with("tonic") {
            r.idle = idle_tonic;
        }
    }
    let base = rows[0].clone();
    let mut md = String::new();
    md.push_str(&format!(
        "## zerorpc-bench compare ({}, {})\n\nEach cell: the figure (ratio to ours). Latency in µs (lower is better), rates per second (higher is better).\n\n",
        if quick { "quick" } else { "full" },
        "2 tokio workers, loopback"
    ));
    md.push_str("| system | p50 µs | p99 µs | calls/s @16 | calls/s @256 | 64 KiB calls/s @16 | stream items/s | bytes per idle channel |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.name,
            r.call_cells(&base),
            cell(r.items, base.items),
            cell(r.idle, base.idle),
        ));
    }
    // Targets (issue 6), reported as measured.
    let find = |prefix: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(prefix))
            .cloned()
            .unwrap_or_default()
    };
    let (tcp, py) = (find("plain"), find("zerorpc-python"));
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b).unwrap_or(f64::NAN);
    let checks = [
        (
            "sequential p50 ≤ 1.5× plain TCP RTT",
            ratio(base.p50_us, tcp.p50_us),
            ratio(base.p50_us, tcp.p50_us) <= 1.5,
        ),
        (
            "≥ 25× zerorpc-python sequential (p50 ratio)",
            ratio(py.p50_us, base.p50_us),
            ratio(py.p50_us, base.p50_us) >= 25.0,
        ),
        (
            "≥ 100× zerorpc-python concurrent calls/s (@16)",
            ratio(base.rate16, py.rate16),
            ratio(base.rate16, py.rate16) >= 100.0,
        ),
        (
            "≥ 1 M streamed items/s",
            base.items.unwrap_or(0.0) / 1e6,
            base.items.unwrap_or(0.0) >= 1e6,
        ),
    ];
    md.push_str("\n| target | measured | met |\n|---|---:|---|\n");
    for (what, v, ok) in &checks {
        md.push_str(&format!(
            "| {what} | {v:.2} | {} |\n",
            if *ok { "yes" } else { "no" }
        ));
    }
    md.push_str(&format!(
        "| ≤ 2 KiB per idle channel ({idle_n} open; client + server in one process) | {:.0} bytes | {} |\n",
        per_channel,
        if per_channel <= 2048.0 { "yes" } else { "no" }
    ));
    let tonic = find("tonic");
    let (t16, t256) = (
        ratio(base.rate16, tonic.rate16),
        ratio(base.rate256, tonic.rate256),
    );
    md.push_str(&format!(
        "| ≥ 3× tonic concurrent calls/s (at 16 / at 256 in flight) | {t16:.2} / {t256:.2} | {} |\n",
        if t16 >= 3.0 && t256 >= 3.0 { "yes" } else { "no" }
    ));
    println!("{md}");
    let json = json!({
        "mode": if quick { "quick" } else { "full" },
        "seconds": started.elapsed().as_secs_f64(),
        "idle_channels": {"open": idle_n, "bytes_per_channel_client_and_server": per_channel},
        "rows": rows.iter().map(|r| json!({
            "system": r.name, "p50_us": r.p50_us, "p99_us": r.p99_us, "calls_per_sec_16": r.rate16,
            "calls_per_sec_256": r.rate256, "calls_per_sec_64k_16": r.rate64k, "stream_items_per_sec": r.items,
            "idle_channel_bytes": r.idle,
            "latency_us_by_quantile": QUANTILES.iter().zip(r.pcts.iter()).map(|(q, v)| json!([q, v])).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-results");
    if std::fs::create_dir_all(&dir).is_ok() {
        let stem = if quick { "latest-quick" } else { "latest-full" };
        let _ = std::fs::write(dir.join(format!("{stem}.md")), &md);
        let _ = std::fs::write(
            dir.join(format!("{stem}.json")),
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        );
        if let Err(e) = plot(&rows, &dir.join(format!("{stem}.svg"))) {
            eprintln!("plot failed: {e}");
        }
        eprintln!(
            "wrote {}/{stem}.md, .json and .svg ({:.0}s)",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    rt.shutdown_timeout(Duration::from_secs(1));
}
