//! What a connection may hold, seen from raw TCP sockets: slow head and
//! body senders, idle keep-alive connections, clients that stop reading,
//! and the cap on open connections. The timeouts are short; the tests
//! assert that the close happens, not how soon.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zerorpc::{Client, DynamicService, Server, Value};
use zerorpc_gateway::{Gateway, GatewayOptions};

/// A guard against wedging, not a measure of speed.
const WEDGE: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WEDGE, f)
        .await
        .unwrap_or_else(|_| panic!("wedged: {what}"))
}

fn service() -> DynamicService {
    DynamicService::new("conns")
        .method("echo", "Return x.", &["x"], |mut a| async move {
            Ok(if a.is_empty() {
                Value::Nil
            } else {
                a.swap_remove(0)
            })
        })
        .stream_method("blobs", "64 KiB strings, forever.", &[], |_| {
            let blob = Value::from("x".repeat(64 * 1024));
            Ok(futures::stream::repeat_with(move || Ok(blob.clone())))
        })
}

/// A gateway with `opts` in front of our server; its address.
async fn gateway(opts: GatewayOptions) -> (String, Arc<Server>) {
    let server = Arc::new(Server::new(service()));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    let client = Client::connect(&ep).await.unwrap();
    let g = within("gateway start", Gateway::new(client, opts))
        .await
        .expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(g.serve(listener));
    (addr, server)
}

/// Short deadlines for the tests, the one under test aside.
fn short() -> GatewayOptions {
    GatewayOptions::default()
        .header_timeout(Duration::from_millis(500))
        .body_timeout(Duration::from_millis(500))
        .idle_timeout(Duration::from_millis(500))
        .write_timeout(Duration::from_millis(500))
}

/// Reads until the gateway closes the connection (EOF or reset); what
/// came before.
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response with a Content-Length body; the head and body.
async fn read_response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("a Content-Length");
            let mut body = data[end + 4..].to_vec();
            while body.len() < len {
                let n = s.read(&mut buf).await.expect("read");
                assert!(n > 0, "closed mid-body");
                body.extend_from_slice(&buf[..n]);
            }
            return (head, body);
        }
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before a response: {data:?}");
        data.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_head_is_disconnected() {
    let (addr, _server) = gateway(short().idle_timeout(Duration::from_secs(3600))).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: gw\r\nContent-Le")
        .await
        .unwrap();
    let got = within("the gateway to close a stalled head", read_to_close(&mut s)).await;
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // A client that connects and sends nothing at all, too.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    within(
        "the gateway to close a silent connection",
        read_to_close(&mut s),
    )
    .await;
    // A kept-alive connection whose next head stalls, too.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = within("a response", read_response(&mut s)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    within(
        "the gateway to close a stalled second head",
        read_to_close(&mut s),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_body_gets_408_and_is_disconnected() {
    let (addr, _server) = gateway(short()).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n[\"abc")
        .await
        .unwrap();
    let got = within(
        "the gateway to answer a stalled body",
        read_to_close(&mut s),
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"RequestTimeout\""), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, _server) = gateway(short().header_timeout(Duration::from_secs(3600))).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    // Two calls on the connection: it is kept alive...
    for _ in 0..2 {
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\n[\"a\"]")
            .await
            .unwrap();
        let (head, body) = within("a response", read_response(&mut s)).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"\"a\"");
    }
    // ...then closed once idle.
    let rest = within(
        "the gateway to close an idle connection",
        read_to_close(&mut s),
    )
    .await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_stream_is_disconnected() {
    let (addr, _server) = gateway(short()).await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr.parse().unwrap()).await.unwrap();
    s.write_all(
        b"POST /blobs HTTP/1.1\r\nHost: gw\r\nAccept: application/x-ndjson\r\nContent-Length: 2\r\n\r\n[]",
    )
    .await
    .unwrap();
    // Not reading: the gateway's writes stall, and it gives up. Reading
    // after that drains what the kernels buffered, then the close; were
    // the connection still up, the endless stream would wedge the read.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = within(
        "the gateway to drop a stalled stream",
        read_to_close(&mut s),
    )
    .await;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(
        got.len() < 256 << 20,
        "{} bytes: the stream went on",
        got.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_slot() {
    let opts = GatewayOptions::default()
        .max_connections(1)
        .header_timeout(Duration::from_secs(3600));
    let (addr, _server) = gateway(opts).await;
    let first = TcpStream::connect(&addr).await.unwrap();
    // (the first connection is accepted: it holds the one slot)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/echo");
    let mut second = Box::pin(http.post(&url).body("[7]").send());
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut second)
            .await
            .is_err(),
        "answered while the only slot was taken"
    );
    drop(first);
    let r = within("the second connection, once a slot is free", second)
        .await
        .expect("http");
    assert_eq!(r.status(), 200);
    assert_eq!(within("body", r.text()).await.unwrap(), "7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_memory_budget_wait_for_room() {
    // Room for one 64 KiB body at a time.
    let opts = GatewayOptions::default()
        .max_body_memory(64 * 1024)
        .body_timeout(Duration::from_secs(3600));
    let (addr, _server) = gateway(opts).await;
    // A body that takes all the room, and stalls.
    let mut first = TcpStream::connect(&addr).await.unwrap();
    first
        .write_all(b"POST /echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 65536\r\n\r\n[")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/echo");
    let body = format!("[\"{}\"]", "y".repeat(1000));
    let mut second = Box::pin(http.post(&url).body(body).send());
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut second)
            .await
            .is_err(),
        "read while the room was taken"
    );
    // The first gives up: its room goes to the second.
    drop(first);
    let r = within("the second body, once there is room", second)
        .await
        .expect("http");
    assert_eq!(r.status(), 200);
    assert_eq!(within("body", r.text()).await.unwrap().len(), 1002);
}
