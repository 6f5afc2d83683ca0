//! `zerorpc-bench gateway`: `POST /echo` through the HTTP gateway against
//! direct calls, and the helpers that start a hub or a gateway (the soak
//! uses them too).

use crate::*;

/// Requests (or calls) per second and per-request latency at one
/// concurrency.
pub(crate) struct Load {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Runs `per` requests on each of `workers` (one per concurrent client),
/// one at a time on each (`f` takes the worker and gives it back):
/// requests/s and latency.
pub(crate) async fn load<W, F, Fut>(workers: Vec<W>, per: usize, f: F) -> Load
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

pub(crate) type HttpSender =
    hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// `n` connections, made one after the other by `connect`.
async fn connect_n<W, Fut: std::future::Future<Output = W>>(
    n: usize,
    connect: impl Fn() -> Fut,
) -> Vec<W> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(connect().await);
    }
    conns
}

/// One HTTP/1.1 keep-alive connection to the gateway.
pub(crate) async fn http_conn(addr: std::net::SocketAddr) -> HttpSender {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    sender
}

/// `POST /echo` with `[1]`, checked.
pub(crate) async fn http_echo(mut sender: HttpSender) -> HttpSender {
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

/// One HTTP/1.1 keep-alive connection driven by hand, as a load generator
/// such as wrk drives one: the request's bytes made once, each response
/// parsed (`httparse`) and checked. hyper's client costs about as much per
/// request as the server it measures (builds the request and its headers,
/// hands it to the connection's task, collects the body), and on this
/// two-core machine it runs beside that server: a gateway's clients are
/// elsewhere.
pub(crate) struct RawHttp {
    tcp: tokio::net::TcpStream,
    buf: bytes::BytesMut,
}

/// `POST /echo` with `[1]`, as [`http_echo`] sends it.
const ECHO_REQUEST: &[u8] = b"POST /echo HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: 3\r\n\r\n[1]";

pub(crate) async fn raw_http_conn(addr: std::net::SocketAddr) -> RawHttp {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    RawHttp {
        tcp,
        buf: bytes::BytesMut::with_capacity(4096),
    }
}

/// `POST /echo` with `[1]`, checked: status 200 and body `1` (with a
/// `content-length`).
pub(crate) async fn raw_http_echo(mut c: RawHttp) -> RawHttp {
    use bytes::Buf;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    c.tcp.write_all(ECHO_REQUEST).await.expect("write request");
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = resp.parse(&c.buf).expect("an HTTP response") {
            assert_eq!(resp.code, Some(200), "status");
            let len: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .expect("a content-length");
            if c.buf.len() >= head + len {
                assert_eq!(&c.buf[head..head + len], b"1", "body");
                c.buf.advance(head + len);
                return c;
            }
        }
        let n = c.tcp.read_buf(&mut c.buf).await.expect("read response");
        assert!(n > 0, "the server closed the connection");
    }
}

/// A hub (default options) on free local ports with `n` demo servers as
/// its workers, running once the hub has heard from all of them: the hub,
/// the endpoint its clients connect to, the workers.
pub(crate) async fn start_hub(n: usize) -> (Arc<zerorpc::hub::Hub>, String, Vec<Arc<Server>>) {
    let hub = Arc::new(zerorpc::hub::Hub::new(zerorpc::hub::HubOptions::default()));
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
pub(crate) async fn gateway_bench(quick: bool) {
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
    let mut lean = Vec::new();
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
        let g = load(connect_n(conc, || http_conn(addr)).await, per, http_echo).await;
        let f = load(
            connect_n(conc, || http_conn(floor_addr)).await,
            per,
            http_echo,
        )
        .await;
        // The same two with a load generator that costs little (RawHttp).
        let rg = load(
            connect_n(conc, || raw_http_conn(addr)).await,
            per,
            raw_http_echo,
        )
        .await;
        let rf = load(
            connect_n(conc, || raw_http_conn(floor_addr)).await,
            per,
            raw_http_echo,
        )
        .await;
        eprintln!(
            "{conc} in flight: direct {:.0} calls/s, gateway {:.0} req/s, HTTP floor {:.0} req/s; by a lean client: gateway {:.0}, floor {:.0}",
            d.rate, g.rate, f.rate, rg.rate, rf.rate
        );
        rows.push((conc, d, g, f));
        lean.push((conc, rg, rf));
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
        "\n(HTTP floor: the same requests to an axum handler answering 1 without a call; all in one process; the HTTP requests sent by hyper's client)"
    );
    println!(
        "\nThe same HTTP requests sent by a lean load generator (`RawHttp`: prebuilt request, httparse), against the same direct calls:\n\n| in flight | gateway req/s | gateway / direct | HTTP floor req/s | floor / direct | p50 µs: gateway | floor |\n|---:|---:|---:|---:|---:|---:|---:|"
    );
    for ((conc, d, _, _), (_, g, f)) in rows.iter().zip(&lean) {
        println!(
            "| {conc} | {:.0} | {:.2}× | {:.0} | {:.2}× | {:.0} | {:.0} |",
            g.rate,
            g.rate / d.rate,
            f.rate,
            f.rate / d.rate,
            g.p50_us,
            f.p50_us
        );
    }
}
