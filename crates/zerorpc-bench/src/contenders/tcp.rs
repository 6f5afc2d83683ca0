//! Plain tokio TCP echo: the physical floor.

use crate::*;

/// An echo server on a free port: returns its address and its task.
pub(crate) async fn tcp_echo_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
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
    (addr, server)
}

/// `load tcp`'s client: connections to an echo server, each call taking
/// one (or opening one) for its round trip, so there are as many as calls
/// in flight, as in `tcp_echo`.
#[derive(Clone)]
pub(crate) struct TcpPool {
    addr: std::net::SocketAddr,
    idle: Arc<std::sync::Mutex<Vec<tokio::net::TcpStream>>>,
}

impl TcpPool {
    pub(crate) fn new(addr: std::net::SocketAddr) -> TcpPool {
        TcpPool {
            addr,
            idle: Default::default(),
        }
    }
}

/// One echo round trip of 32 bytes, or 64 KiB, on a pooled connection.
pub(crate) fn tcp_call(pool: TcpPool, big: bool) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        let taken = pool.idle.lock().expect("pool").pop();
        let mut s = match taken {
            Some(s) => s,
            None => {
                let s = tokio::net::TcpStream::connect(pool.addr)
                    .await
                    .expect("connect");
                s.set_nodelay(true).ok();
                s
            }
        };
        let len = if big { BIG } else { 32 };
        let mut msg = (len as u32).to_be_bytes().to_vec();
        msg.resize(4 + len, 7);
        let mut back = vec![0u8; msg.len()];
        roundtrip(&mut s, &msg, &mut back).await;
        pool.idle.lock().expect("pool").push(s);
    })
}

async fn roundtrip(s: &mut tokio::net::TcpStream, msg: &[u8], back: &mut [u8]) {
    s.write_all(msg).await.expect("write");
    s.read_exact(back).await.expect("read");
}

pub(crate) async fn tcp_echo(seq: usize, conc: usize) -> Row {
    let (addr, server) = tcp_echo_server().await;
    // One connection per in-flight call: each echoes a length-prefixed message.
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
