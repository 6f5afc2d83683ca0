//! Transport benchmark: ours vs libzmq vs plain tokio TCP, in one process.
//!
//! `cargo bench -p zmtp --bench transport [-- --quick]`
//!
//! * round-trip latency (p50/p99) of a small DEALER→ROUTER echo, one call at
//!   a time; the TCP floor is the same echo over a plain tokio TCP stream
//!   with the same 2-byte framing;
//! * pipelined DEALER↔ROUTER echo throughput (window of 500 in flight);
//! * PUSH→PULL messages/s.
//!
//! Numbers are printed as a markdown table with ratios, because on a
//! shared machine only ratios from one run mean anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zmtp::{DealerSocket, Message, PullSocket, PushSocket, RouterSocket};

const PAYLOAD: &[u8] = b"0123456789abcdef0123456789abcdef"; // 32 bytes
const WINDOW: usize = 500;

#[derive(Clone, Copy)]
struct Cfg {
    rtt_iters: usize,
    pipe_msgs: usize,
    push_msgs: usize,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("histogram bounds")
}

// ---------------------------------------------------------------- ours

async fn ours_echo_server() -> (String, tokio::task::JoinHandle<()>) {
    let router = RouterSocket::new();
    let ep = router
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind")
        .to_string();
    let h = tokio::spawn(async move {
        while let Ok(m) = router.recv().await {
            if router.send(m).await.is_err() {
                break;
            }
        }
    });
    (ep, h)
}

async fn ours_rtt(cfg: Cfg) -> Histogram<u64> {
    let (ep, server) = ours_echo_server().await;
    let dealer = DealerSocket::new();
    dealer.connect(&ep).await.expect("connect");
    let req: Message = [Bytes::new(), Bytes::from_static(PAYLOAD)]
        .into_iter()
        .collect();
    for _ in 0..1000 {
        dealer.send(req.clone()).await.expect("send");
        dealer.recv().await.expect("recv");
    }
    let mut h = hist();
    for _ in 0..cfg.rtt_iters {
        let t = Instant::now();
        dealer.send(req.clone()).await.expect("send");
        dealer.recv().await.expect("recv");
        h.record(t.elapsed().as_nanos() as u64).ok();
    }
    server.abort();
    h
}

async fn ours_pipelined(cfg: Cfg) -> f64 {
    let (ep, server) = ours_echo_server().await;
    let dealer = Arc::new(DealerSocket::new());
    dealer.connect(&ep).await.expect("connect");
    let req: Message = [Bytes::new(), Bytes::from_static(PAYLOAD)]
        .into_iter()
        .collect();
    dealer.send(req.clone()).await.expect("send");
    dealer.recv().await.expect("recv");
    let n = cfg.pipe_msgs;
    let t = Instant::now();
    for _ in 0..WINDOW.min(n) {
        dealer.send(req.clone()).await.expect("send");
    }
    for i in 0..n {
        dealer.recv().await.expect("recv");
        if i + WINDOW < n {
            dealer.send(req.clone()).await.expect("send");
        }
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    server.abort();
    rate
}

async fn ours_push_pull(cfg: Cfg) -> f64 {
    let pull = PullSocket::new();
    let ep = pull
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind")
        .to_string();
    let push = PushSocket::new();
    push.connect(&ep).await.expect("connect");
    push.send(Message::from(Bytes::from_static(PAYLOAD)))
        .await
        .expect("send");
    pull.recv().await.expect("recv");
    let n = cfg.push_msgs;
    let t = Instant::now();
    let sender = tokio::spawn(async move {
        let m = Message::from(Bytes::from_static(PAYLOAD));
        for _ in 0..n {
            push.send(m.clone()).await.expect("send");
        }
        push
    });
    for _ in 0..n {
        pull.recv().await.expect("recv");
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop(sender.await);
    rate
}

// ---------------------------------------------------------------- libzmq

fn zmq_echo_server(ctx: &zmq::Context) -> (String, std::thread::JoinHandle<()>) {
    let router = ctx.socket(zmq::ROUTER).expect("socket");
    router.bind("tcp://127.0.0.1:*").expect("bind");
    router.set_rcvtimeo(2000).expect("opt");
    let ep = router.get_last_endpoint().expect("ep").expect("utf8");
    let h = std::thread::spawn(move || {
        while let Ok(m) = router.recv_multipart(0) {
            if router.send_multipart(m, 0).is_err() {
                break;
            }
        }
    });
    (ep, h)
}

fn zmq_rtt(ctx: &zmq::Context, cfg: &Cfg) -> Histogram<u64> {
    let (ep, server) = zmq_echo_server(ctx);
    let dealer = ctx.socket(zmq::DEALER).expect("socket");
    dealer.connect(&ep).expect("connect");
    let mut h = hist();
    for i in 0..cfg.rtt_iters + 1000 {
        let t = Instant::now();
        dealer.send("", zmq::SNDMORE).expect("send");
        dealer.send(PAYLOAD, 0).expect("send");
        dealer.recv_multipart(0).expect("recv");
        if i >= 1000 {
            h.record(t.elapsed().as_nanos() as u64).ok();
        }
    }
    drop(dealer);
    server.join().ok();
    h
}

fn zmq_pipelined(ctx: &zmq::Context, cfg: &Cfg) -> f64 {
    let (ep, server) = zmq_echo_server(ctx);
    let dealer = ctx.socket(zmq::DEALER).expect("socket");
    dealer.connect(&ep).expect("connect");
    let send = |d: &zmq::Socket| {
        d.send("", zmq::SNDMORE).expect("send");
        d.send(PAYLOAD, 0).expect("send");
    };
    send(&dealer);
    dealer.recv_multipart(0).expect("recv");
    let n = cfg.pipe_msgs;
    let t = Instant::now();
    for _ in 0..WINDOW.min(n) {
        send(&dealer);
    }
    for i in 0..n {
        dealer.recv_multipart(0).expect("recv");
        if i + WINDOW < n {
            send(&dealer);
        }
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop(dealer);
    server.join().ok();
    rate
}

fn zmq_push_pull(ctx: &zmq::Context, cfg: &Cfg) -> f64 {
    let pull = ctx.socket(zmq::PULL).expect("socket");
    pull.bind("tcp://127.0.0.1:*").expect("bind");
    let ep = pull.get_last_endpoint().expect("ep").expect("utf8");
    let n = cfg.push_msgs;
    let push = ctx.socket(zmq::PUSH).expect("socket");
    push.connect(&ep).expect("connect");
    push.send(PAYLOAD, 0).expect("send");
    pull.recv_bytes(0).expect("recv");
    let t = Instant::now();
    let sender = std::thread::spawn(move || {
        for _ in 0..n {
            push.send(PAYLOAD, 0).expect("send");
        }
        push
    });
    for _ in 0..n {
        pull.recv_bytes(0).expect("recv");
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop(sender.join());
    rate
}

// ---------------------------------------------------------------- plain TCP

/// Echo of 2-byte-length-prefixed messages over a plain tokio TCP stream.
async fn tcp_echo_server() -> (String, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let h = tokio::spawn(async move {
        let Ok((s, _)) = l.accept().await else { return };
        s.set_nodelay(true).ok();
        let (mut r, mut w) = s.into_split();
        let mut buf = vec![0u8; 64 * 1024];
        // Echo bytes as they come: framing is preserved end to end.
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    (addr, h)
}

async fn tcp_rtt(cfg: Cfg) -> Histogram<u64> {
    let (addr, server) = tcp_echo_server().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).ok();
    let mut frame = vec![0u8, PAYLOAD.len() as u8];
    frame.extend_from_slice(PAYLOAD);
    let mut back = vec![0u8; frame.len()];
    let mut h = hist();
    for i in 0..cfg.rtt_iters + 1000 {
        let t = Instant::now();
        s.write_all(&frame).await.expect("write");
        s.read_exact(&mut back).await.expect("read");
        if i >= 1000 {
            h.record(t.elapsed().as_nanos() as u64).ok();
        }
    }
    server.abort();
    h
}

async fn tcp_pipelined(cfg: Cfg) -> f64 {
    let (addr, server) = tcp_echo_server().await;
    let s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).ok();
    let (mut r, mut w) = s.into_split();
    let mut frame = vec![0u8, PAYLOAD.len() as u8];
    frame.extend_from_slice(PAYLOAD);
    let n = cfg.pipe_msgs;
    let t = Instant::now();
    // Same window discipline as the ZeroMQ runs; the writer batches every
    // frame it is allowed to send into one write, as our transport does.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(WINDOW);
    let f2 = frame.clone();
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        let mut out = Vec::with_capacity(WINDOW * f2.len());
        while sent < n {
            if rx.recv().await.is_none() {
                break;
            }
            out.clear();
            out.extend_from_slice(&f2);
            sent += 1;
            while sent < n && rx.try_recv().is_ok() {
                out.extend_from_slice(&f2);
                sent += 1;
            }
            w.write_all(&out).await.expect("write");
        }
    });
    for _ in 0..WINDOW.min(n) {
        tx.send(()).await.ok();
    }
    let mut back = vec![0u8; frame.len()];
    for i in 0..n {
        r.read_exact(&mut back).await.expect("read");
        if i + WINDOW < n {
            tx.send(()).await.ok();
        }
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    writer.await.ok();
    server.abort();
    rate
}

/// Runs a client inside a runtime task (where real code runs), not on the
/// `block_on` thread, whose IO wake-ups would all cross threads.
fn in_task<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    rt.block_on(async move { tokio::spawn(f).await.expect("benchmark task") })
}

// ---------------------------------------------------------------- report

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let cfg = if quick {
        Cfg {
            rtt_iters: 3_000,
            pipe_msgs: 100_000,
            push_msgs: 300_000,
        }
    } else {
        Cfg {
            rtt_iters: 10_000,
            pipe_msgs: 500_000,
            push_msgs: 2_000_000,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ctx = zmq::Context::new();
    eprintln!(
        "[1/3] round-trip latency (3 x {} round trips each)",
        cfg.rtt_iters
    );
    // Three interleaved rounds, merged, so drift on a shared machine hits
    // every contender alike.
    let (mut tcp_h, mut ours_h, mut zmq_h) = (hist(), hist(), hist());
    for _ in 0..3 {
        tcp_h.add(in_task(&rt, tcp_rtt(cfg))).expect("merge");
        ours_h.add(in_task(&rt, ours_rtt(cfg))).expect("merge");
        zmq_h.add(zmq_rtt(&ctx, &cfg)).expect("merge");
    }
    eprintln!(
        "[2/3] pipelined echo ({} messages, window {WINDOW})",
        cfg.pipe_msgs
    );
    let tcp_p = in_task(&rt, tcp_pipelined(cfg));
    let ours_p = in_task(&rt, ours_pipelined(cfg));
    let zmq_p = zmq_pipelined(&ctx, &cfg);
    eprintln!("[3/3] PUSH->PULL ({} messages)", cfg.push_msgs);
    let ours_pp = in_task(&rt, ours_push_pull(cfg));
    let zmq_pp = zmq_push_pull(&ctx, &cfg);

    let p = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
    println!(
        "\n## zmtp transport benchmark ({} payload bytes, loopback)\n",
        PAYLOAD.len()
    );
    println!("| round trip | p50 µs | p99 µs | p50 vs TCP |");
    println!("|---|---:|---:|---:|");
    for (name, h) in [
        ("plain tokio TCP echo", &tcp_h),
        ("zmtp (ours) DEALER→ROUTER", &ours_h),
        ("libzmq DEALER→ROUTER", &zmq_h),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.2}× |",
            us(p(h, 0.5)),
            us(p(h, 0.99)),
            p(h, 0.5) as f64 / p(&tcp_h, 0.5) as f64
        );
    }
    println!("\n| throughput | msgs/s | vs ours |");
    println!("|---|---:|---:|");
    for (name, r, base) in [
        ("pipelined echo: plain tokio TCP", tcp_p, ours_p),
        ("pipelined echo: zmtp (ours)", ours_p, ours_p),
        ("pipelined echo: libzmq", zmq_p, ours_p),
        ("PUSH→PULL: zmtp (ours)", ours_pp, ours_pp),
        ("PUSH→PULL: libzmq", zmq_pp, ours_pp),
    ] {
        println!("| {name} | {:.0} | {:.2}× |", r, r / base);
    }
    let rtt_ratio = p(&ours_h, 0.5) as f64 / p(&tcp_h, 0.5) as f64;
    println!("\ntargets: RTT p50 ≤ 1.5× TCP: {} ({rtt_ratio:.2}×); pipelined ≥ libzmq: {} ({:.2}×); PUSH→PULL ≥ libzmq: {} ({:.2}×)",
        if rtt_ratio <= 1.5 { "met" } else { "missed" },
        if ours_p >= zmq_p { "met" } else { "missed" }, ours_p / zmq_p,
        if ours_pp >= zmq_pp { "met" } else { "missed" }, ours_pp / zmq_pp);
    rt.shutdown_timeout(Duration::from_secs(1));
}
