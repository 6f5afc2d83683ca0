//! CURVE against libzmq (pyzmq's bundled libzmq 4.3.5, built with CURVE:
//! the `zmq` crate's libzmq is built without it), both ways; refused keys,
//! wrong server keys, what the wire shows, and pyzmq's certificate files.

use zerorpc_testkit as common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{python, within, Proc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zmtp::curve::{load_public_key, z85_encode, AllowAny, AllowList, CurveKeyPair};
use zmtp::{
    DealerSocket, HandshakeFailure, Message, RouterSocket, Security, SocketEvent, SocketOptions,
};

const PY_SERVER: &str = r#"
import sys, os, tempfile, zmq, zmq.auth
from zmq.auth.thread import ThreadAuthenticator
ctx = zmq.Context.instance()
auth = ThreadAuthenticator(ctx)
auth.start()
allowed = sys.argv[3]
if allowed == "*":
    auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
else:
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "client.key"), "w") as f:
        f.write('metadata\ncurve\n    public-key = "%s"\n' % allowed)
    auth.configure_curve(domain="*", location=d)
s = ctx.socket(zmq.ROUTER)
s.curve_secretkey = sys.argv[1].encode()
s.curve_publickey = sys.argv[2].encode()
s.curve_server = True
port = s.bind_to_random_port("tcp://127.0.0.1")
print("READY", port, flush=True)
while True:
    frames = s.recv_multipart(copy=False)
    print("USER", frames[-1].get("User-Id"), flush=True)
    s.send_multipart([frames[0].bytes] + [b"echo:" + f.bytes for f in frames[1:]])
"#;

const PY_CLIENT: &str = r#"
import sys, zmq
ctx = zmq.Context()
d = ctx.socket(zmq.DEALER)
d.curve_serverkey = sys.argv[2].encode()
d.curve_publickey = sys.argv[3].encode()
d.curve_secretkey = sys.argv[4].encode()
d.rcvtimeo = int(sys.argv[5])
d.linger = 0
d.connect(sys.argv[1])
d.send_multipart([b"a", b"b" * 3000])
try:
    r = d.recv_multipart()
    print("GOT", len(r), r[0].decode(), len(r[1]), flush=True)
except zmq.Again:
    print("TIMEOUT", flush=True)
"#;

fn opts(security: Security) -> SocketOptions {
    SocketOptions {
        security,
        ..Default::default()
    }
}

async fn py_line(mut p: Proc, prefix: &'static str) -> (Proc, String) {
    tokio::task::spawn_blocking(move || {
        let l = p.wait_line(prefix);
        (p, l)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libzmq_client_to_our_curve_server_with_an_allow_list() {
    let server_keys = CurveKeyPair::generate();
    let alice = CurveKeyPair::generate();
    let mut allow = AllowList::default();
    allow.allow(alice.public, "alice");
    let router =
        RouterSocket::with_options(opts(Security::curve_server(server_keys.clone(), allow)));
    let mut events = router.monitor();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let client = Proc::python(
        PY_CLIENT,
        &[
            &ep,
            &server_keys.public_z85(),
            &alice.public_z85(),
            &alice.secret_z85(),
            "20000",
        ],
    );
    let msg = within("a message from libzmq", router.recv())
        .await
        .unwrap();
    let frames = msg.frames();
    assert_eq!(frames.len(), 3);
    assert_eq!((&frames[1][..], frames[2].len()), (&b"a"[..], 3000));
    assert_eq!(router.user_id(&frames[0]), Some(Bytes::from("alice")));
    let user = within("the connected event", async {
        loop {
            if let Ok(SocketEvent::Connected { user_id, .. }) = events.recv().await {
                return user_id;
            }
        }
    })
    .await;
    assert_eq!(user, Some(Bytes::from("alice")));
    router
        .send(Message::from_iter([
            frames[0].clone(),
            Bytes::from("ok"),
            Bytes::from(vec![9u8; 5000]),
        ]))
        .await
        .unwrap();
    let (_client, got) = py_line(client, "GOT").await;
    assert_eq!(got, "GOT 2 ok 5000");
    assert_eq!(router.handshake_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_curve_client_to_a_libzmq_server() {
    let server_keys = CurveKeyPair::generate();
    let ours = CurveKeyPair::generate();
    let server = Proc::python(
        PY_SERVER,
        &[
            &server_keys.secret_z85(),
            &server_keys.public_z85(),
            &ours.public_z85(),
        ],
    );
    let (server, ready) = py_line(server, "READY").await;
    let port = ready.split_whitespace().nth(1).unwrap().to_owned();
    let dealer = DealerSocket::with_options(opts(Security::curve_client(
        ours.clone(),
        server_keys.public,
    )));
    dealer
        .connect(&format!("tcp://127.0.0.1:{port}"))
        .await
        .unwrap();
    for i in 0..20u32 {
        let body = Bytes::from(vec![b'x'; (i as usize) * 300]);
        dealer
            .send(Message::from_iter([
                Bytes::from(format!("m{i}")),
                body.clone(),
            ]))
            .await
            .unwrap();
        let r = within("libzmq's echo", dealer.recv()).await.unwrap();
        assert_eq!(r.frames()[0], Bytes::from(format!("echo:m{i}")));
        assert_eq!(r.frames()[1].len(), body.len() + 5);
    }
    // A frame sent in pieces is sealed as one frame.
    let mut m = Message::from(Bytes::from_static(b"pieces"));
    let big = Bytes::from(vec![b'y'; 40_000]);
    m.push_back_pieces([Bytes::from_static(b"<"), big, Bytes::from_static(b">")]);
    dealer.send(m).await.unwrap();
    let r = within("libzmq's echo", dealer.recv()).await.unwrap();
    assert_eq!(r.len(), 2);
    let mut expected = b"echo:<".to_vec();
    expected.extend_from_slice(&[b'y'; 40_000]);
    expected.push(b'>');
    assert_eq!(r.frames()[1], expected);
    // libzmq's ZAP handler knew us by our key (it names us in Z85).
    let (_server, user) = py_line(server, "USER").await;
    assert_eq!(user, format!("USER {}", ours.public_z85()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_are_refused_and_others_are_not_harmed() {
    let server_keys = CurveKeyPair::generate();
    let alice = CurveKeyPair::generate();
    let mallory = CurveKeyPair::generate();
    let mut allow = AllowList::default();
    allow.allow(alice.public, "alice");
    let router =
        RouterSocket::with_options(opts(Security::curve_server(server_keys.clone(), allow)));
    let mut events = router.monitor();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    // libzmq with a key we do not know: no reply.
    let stranger = Proc::python(
        PY_CLIENT,
        &[
            &ep,
            &server_keys.public_z85(),
            &mallory.public_z85(),
            &mallory.secret_z85(),
            "1500",
        ],
    );
    let reason = within("a refused handshake", async {
        loop {
            if let Ok(SocketEvent::HandshakeFailed { reason, .. }) = events.recv().await {
                return reason;
            }
        }
    })
    .await;
    assert!(reason.contains("authentication failed"), "{reason}");
    assert!(router.handshake_failures() >= 1);
    // Meanwhile alice (our client) is served.
    let dealer =
        DealerSocket::with_options(opts(Security::curve_client(alice, server_keys.public)));
    dealer.connect(&ep).await.unwrap();
    dealer
        .send(Message::from_iter([Bytes::from("hi")]))
        .await
        .unwrap();
    let m = within("alice's message", router.recv()).await.unwrap();
    assert_eq!(router.user_id(&m.frames()[0]), Some(Bytes::from("alice")));
    let (_s, line) = py_line(stranger, "TIMEOUT").await;
    assert_eq!(line, "TIMEOUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_the_wrong_server_key_cannot_connect() {
    let server_keys = CurveKeyPair::generate();
    let ours = CurveKeyPair::generate();
    // libzmq cannot open our HELLO, and drops the connection.
    let server = Proc::python(
        PY_SERVER,
        &[&server_keys.secret_z85(), &server_keys.public_z85(), "*"],
    );
    let (_server, ready) = py_line(server, "READY").await;
    let port = ready.split_whitespace().nth(1).unwrap().to_owned();
    let wrong = CurveKeyPair::generate().public;
    let dealer = DealerSocket::with_options(opts(Security::curve_client(ours.clone(), wrong)));
    let mut events = dealer.monitor();
    dealer
        .connect(&format!("tcp://127.0.0.1:{port}"))
        .await
        .unwrap();
    // It says nothing; after the second such close in a row the client
    // calls it what it is.
    let reason = within("libzmq's silent refusal, classified", async {
        loop {
            if let Ok(SocketEvent::HandshakeFailed { reason, kind, .. }) = events.recv().await {
                if kind == HandshakeFailure::Authentication {
                    return reason;
                }
            }
        }
    })
    .await;
    assert!(reason.contains("wrong server key"), "{reason}");
    assert_eq!(dealer.peer_count(), 0);
    // Our own server refuses it too; the client learns why.
    let router =
        RouterSocket::with_options(opts(Security::curve_server(server_keys.clone(), AllowAny)));
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let dealer = DealerSocket::with_options(opts(Security::curve_client(ours, wrong)));
    let mut events = dealer.monitor();
    dealer.connect(&ep).await.unwrap();
    let (reason, kind) = within("the client's failed handshake", async {
        loop {
            if let Ok(SocketEvent::HandshakeFailed { reason, kind, .. }) = events.recv().await {
                return (reason, kind);
            }
        }
    })
    .await;
    assert!(reason.contains("HELLO did not open"), "{reason}");
    // (our server says why at once: the first failure is classified)
    assert_eq!(kind, HandshakeFailure::Authentication);
    // (the server counts it once it has sent the client its ERROR)
    within("the server's count", async {
        while router.handshake_failures() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// The first handshake failure a dealer with `security` reports when it
/// connects to `ep`, with its kind.
async fn first_failure(security: Security, ep: &str) -> (String, HandshakeFailure) {
    let dealer = DealerSocket::with_options(opts(security));
    let mut events = dealer.monitor();
    dealer.connect(ep).await.unwrap();
    within("the client's failed handshake", async {
        loop {
            if let Ok(SocketEvent::HandshakeFailed { reason, kind, .. }) = events.recv().await {
                return (reason, kind);
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_learns_that_its_key_was_refused_by_libzmq_and_by_us() {
    let server_keys = CurveKeyPair::generate();
    let alice = CurveKeyPair::generate();
    let mallory = CurveKeyPair::generate();
    // libzmq's ZAP handler (pyzmq's authenticator) knows only alice: it
    // answers mallory's INITIATE with ERROR "400".
    let server = Proc::python(
        PY_SERVER,
        &[
            &server_keys.secret_z85(),
            &server_keys.public_z85(),
            &alice.public_z85(),
        ],
    );
    let (_server, ready) = py_line(server, "READY").await;
    let port = ready.split_whitespace().nth(1).unwrap().to_owned();
    let (reason, kind) = first_failure(
        Security::curve_client(mallory.clone(), server_keys.public),
        &format!("tcp://127.0.0.1:{port}"),
    )
    .await;
    assert_eq!(kind, HandshakeFailure::Authentication, "{reason}");
    assert!(
        reason.contains("refused") && reason.contains("400"),
        "{reason}"
    );
    // Our server says so in words.
    let mut allow = AllowList::default();
    allow.allow(alice.public, "alice");
    let router =
        RouterSocket::with_options(opts(Security::curve_server(server_keys.clone(), allow)));
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let (reason, kind) =
        first_failure(Security::curve_client(mallory, server_keys.public), &ep).await;
    assert_eq!(kind, HandshakeFailure::Authentication, "{reason}");
    assert!(reason.contains("authentication failed"), "{reason}");
    // A client without CURVE (a missing key) at a CURVE server.
    let (reason, kind) = first_failure(Security::Null, &ep).await;
    assert_eq!(kind, HandshakeFailure::Authentication, "{reason}");
    assert!(reason.contains("mechanism mismatch"), "{reason}");
}

/// Relays TCP connections to `to`, keeping a copy of every byte.
async fn tap(to: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("tcp://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) =
                tokio::net::TcpStream::connect(to.trim_start_matches("tcp://")).await
            else {
                continue;
            };
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            tokio::spawn(copy(ir, ow, s.clone()));
            tokio::spawn(copy(or, iw, s.clone()));
        }
    });
    (addr, seen)
}

async fn copy(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        seen.lock().unwrap().extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_curve_traffic_is_not_plaintext() {
    const SECRET: &[u8] = b"the-launch-codes-are-0000";
    for curve in [false, true] {
        let server_keys = CurveKeyPair::generate();
        let (server_sec, client_sec) = if curve {
            (
                Security::curve_server(server_keys.clone(), AllowAny),
                Security::curve_client(CurveKeyPair::generate(), server_keys.public),
            )
        } else {
            (Security::Null, Security::Null)
        };
        let router = RouterSocket::with_options(opts(server_sec));
        let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let (relay, seen) = tap(ep).await;
        let dealer = DealerSocket::with_options(opts(client_sec));
        dealer.connect(&relay).await.unwrap();
        dealer
            .send(Message::from_iter([Bytes::from_static(SECRET)]))
            .await
            .unwrap();
        let m = within("the message through the tap", router.recv())
            .await
            .unwrap();
        assert_eq!(&m.frames()[1][..], SECRET);
        router
            .send(Message::from_iter([
                m.frames()[0].clone(),
                Bytes::from_static(SECRET),
            ]))
            .await
            .unwrap();
        within("the reply", dealer.recv()).await.unwrap();
        let wire = seen.lock().unwrap().clone();
        let visible = wire.windows(SECRET.len()).filter(|w| *w == SECRET).count();
        if curve {
            assert_eq!(visible, 0, "CURVE traffic shows the plaintext");
            assert!(
                wire.windows(5).any(|w| w == b"CURVE"),
                "not a CURVE greeting"
            );
        } else {
            // (the control: the tap does see a NULL connection's payload)
            assert_eq!(visible, 2);
        }
    }
}

const PY_CERTS: &str = r#"
import sys, zmq.auth
d = sys.argv[1]
if sys.argv[2] == "make":
    pub, sec = zmq.auth.create_certificates(d, "bob")
    p, s = zmq.auth.load_certificate(sec)
    print("BOB", p.decode(), s.decode(), flush=True)
else:
    p, s = zmq.auth.load_certificate(d + "/carol.key_secret")
    q, _ = zmq.auth.load_certificate(d + "/carol.key")
    print("CAROL", p.decode(), s.decode(), q.decode(), flush=True)
"#;

#[test]
fn certificate_files_are_pyzmqs() {
    let _ = python();
    let dir = std::env::temp_dir().join(format!("zmtp-curve-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_string_lossy().into_owned();
    // pyzmq writes, we read.
    let mut p = Proc::python(PY_CERTS, &[&d, "make"]);
    let line = p.wait_line("BOB");
    let parts: Vec<&str> = line.split_whitespace().collect();
    let bob = CurveKeyPair::load(&dir.join("bob.key_secret")).unwrap();
    assert_eq!(
        (bob.public_z85().as_str(), bob.secret_z85().as_str()),
        (parts[1], parts[2])
    );
    assert_eq!(
        z85_encode(&load_public_key(&dir.join("bob.key")).unwrap()),
        parts[1]
    );
    // We write, pyzmq reads.
    let carol = CurveKeyPair::generate();
    carol.save(&dir, "carol").unwrap();
    let mut p = Proc::python(PY_CERTS, &[&d, "read"]);
    let line = p.wait_line("CAROL");
    assert_eq!(
        line,
        format!(
            "CAROL {} {} {}",
            carol.public_z85(),
            carol.secret_z85(),
            carol.public_z85()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}
