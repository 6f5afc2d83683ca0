//! ZeroRPC over CURVE: authenticated users, per-method authorization, a
//! refused key that harms nobody, and zerorpc-python as a CURVE client.

use zerorpc_testkit as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerorpc::auth::{current_user, Authorization, Rule};
use zerorpc::record::{EmbeddedStore, Recorder};
use zerorpc::zmtp::curve::CurveKeyPair;
use zerorpc::zmtp::{AllowList, Security, SocketOptions};
use zerorpc::{CallError, Client, ClientOptions, Error, Server, ServerOptions, TraceContext};

struct Vault;

#[zerorpc::service(name = "vault")]
impl Vault {
    /// Anyone may read this.
    pub fn get_public(&self) -> String {
        "public".into()
    }

    /// Only some may read this.
    pub fn get_secret(&self) -> String {
        "secret".into()
    }

    /// Changes something.
    pub fn set_value(&self, v: i64) -> i64 {
        v
    }

    /// The caller, as authenticated.
    pub fn whoami(&self) -> Result<String, CallError> {
        current_user()
            .map(|u| u.to_string())
            .ok_or_else(|| CallError::new("Anonymous", "no user"))
    }
}

struct Keys {
    server: CurveKeyPair,
    alice: CurveKeyPair,
    bob: CurveKeyPair,
}

fn keys() -> Keys {
    Keys {
        server: CurveKeyPair::generate(),
        alice: CurveKeyPair::generate(),
        bob: CurveKeyPair::generate(),
    }
}

async fn vault(k: &Keys, recorder: Option<Recorder>) -> (Arc<Server>, String) {
    let mut allow = AllowList::default();
    allow.allow(k.alice.public, "alice");
    allow.allow(k.bob.public, "bob");
    let rules = Authorization::new(vec![
        Rule {
            user: "alice".into(),
            allow: vec!["*".into()],
            deny: vec![],
        },
        Rule {
            user: "b*".into(),
            allow: vec!["get_*".into(), "whoami".into(), "_zerorpc_*".into()],
            deny: vec!["get_secret".into()],
        },
    ]);
    let s = Arc::new(Server::with_options(
        Vault,
        ServerOptions {
            socket: SocketOptions {
                security: Security::curve_server(k.server.clone(), allow),
                ..Default::default()
            },
            authorize: Some(Arc::new(rules)),
            recorder,
            ..Default::default()
        },
    ));
    let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let run = s.clone();
    tokio::spawn(async move { run.run().await });
    (s, ep)
}

async fn client(ep: &str, me: &CurveKeyPair, server_key: [u8; 32], timeout: Duration) -> Client {
    Client::connect_with(
        &[ep],
        ClientOptions {
            socket: SocketOptions {
                security: Security::curve_client(me.clone(), server_key),
                ..Default::default()
            },
            recorder: None,
            ..ClientOptions::default().timeout(timeout)
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_matrix_holds_per_user_and_method() {
    let k = keys();
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let (_s, ep) = vault(&k, Some(Recorder::new(store.clone(), 1000))).await;
    let alice = client(&ep, &k.alice, k.server.public, Duration::from_secs(30)).await;
    let bob = client(&ep, &k.bob, k.server.public, Duration::from_secs(30)).await;
    let matrix = [
        ("alice", "get_public", true),
        ("alice", "get_secret", true),
        ("alice", "set_value", true),
        ("alice", "_zerorpc_list", true),
        ("bob", "get_public", true),
        ("bob", "get_secret", false),
        ("bob", "set_value", false),
        ("bob", "_zerorpc_list", true),
    ];
    for (who, method, allowed) in matrix {
        let c = if who == "alice" { &alice } else { &bob };
        let args = if method == "set_value" {
            vec![7.into()]
        } else {
            vec![]
        };
        match c.call(method, args).await {
            Ok(_) => assert!(allowed, "{who} could call {method}"),
            Err(Error::Remote(e)) => {
                assert!(!allowed, "{who} was refused {method}: {e}");
                assert_eq!(e.name, "PermissionDenied");
                assert_eq!(e.message, format!("{who} may not call {method}"));
            }
            Err(e) => panic!("{who} {method}: {e}"),
        }
    }
    // Handlers know who calls.
    for (c, who) in [(&alice, "alice"), (&bob, "bob")] {
        assert_eq!(c.call("whoami", vec![]).await.unwrap().as_str(), Some(who));
    }
    // The server's records name the user.
    let root = TraceContext::new_root();
    let id = root.trace_id_hex();
    root.scope(alice.call("get_public", vec![])).await.unwrap();
    let recs = within("the record", async {
        loop {
            let r = store.trace(&id);
            if !r.is_empty() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(recs[0].user.as_deref(), Some("alice"));
}

/// Longer than any test's wedge guard: a call that ends before it did not
/// end by timing out.
const NEVER: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_is_refused_and_harms_no_one() {
    let k = keys();
    let (server, ep) = vault(&k, None).await;
    let alice = client(&ep, &k.alice, k.server.public, Duration::from_secs(30)).await;
    // A stranger's calls never get through (their handshakes are refused,
    // and they learn it at once), and are counted; alice is served all
    // along.
    let stranger = client(&ep, &CurveKeyPair::generate(), k.server.public, NEVER).await;
    let (theirs, ours) = tokio::join!(
        within("the stranger's call", stranger.call("get_public", vec![])),
        async {
            let mut n = 0;
            for _ in 0..50 {
                alice.call("get_public", vec![]).await.unwrap();
                n += 1;
            }
            n
        }
    );
    assert!(
        matches!(&theirs, Err(Error::Authentication { reason }) if reason.contains("authentication failed")),
        "{theirs:?}"
    );
    assert_eq!(ours, 50);
    assert!(server.refused_connections() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_the_call_at_once_not_at_the_timeout() {
    let k = keys();
    let (_server, ep) = vault(&k, None).await;
    let stranger = client(&ep, &CurveKeyPair::generate(), k.server.public, NEVER).await;
    // Every call, the first and the later ones, and streams too.
    for _ in 0..3 {
        let r = within("a refused call", stranger.call("get_public", vec![])).await;
        match r {
            Err(Error::Authentication { reason }) => {
                assert!(
                    reason.contains("not allowed") || reason.contains("authentication failed"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    let r = within(
        "a refused stream",
        stranger.call_stream("get_public", vec![]),
    )
    .await;
    assert!(matches!(r, Err(Error::Authentication { .. })));
    assert!(!Error::Authentication {
        reason: String::new()
    }
    .is_lost());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_server_key_fails_the_call_at_once_not_at_the_timeout() {
    let k = keys();
    let (_server, ep) = vault(&k, None).await;
    let wrong = client(&ep, &k.alice, CurveKeyPair::generate().public, NEVER).await;
    let r = within(
        "a call with the wrong server key",
        wrong.call("get_public", vec![]),
    )
    .await;
    assert!(
        matches!(&r, Err(Error::Authentication { reason }) if reason.contains("wrong server key")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_curve_at_a_curve_server_fails_at_once() {
    let k = keys();
    let (_server, ep) = vault(&k, None).await;
    let plain = Client::connect_with(&[&ep], ClientOptions::default().timeout(NEVER))
        .await
        .unwrap();
    let r = within("a NULL client's call", plain.call("get_public", vec![])).await;
    assert!(
        matches!(&r, Err(Error::Authentication { reason }) if reason.contains("CURVE")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_not_up_yet_is_still_waited_for() {
    // Connection refused is not a refusal by security: the call waits for
    // the server, which appears, and is answered.
    let k = keys();
    let port = free_port();
    let ep = format!("tcp://127.0.0.1:{port}");
    let alice = client(&ep, &k.alice, k.server.public, NEVER).await;
    let call = tokio::spawn(async move { alice.call("get_public", vec![]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!call.is_finished());
    let mut allow = AllowList::default();
    allow.allow(k.alice.public, "alice");
    let s = Arc::new(Server::with_options(
        Vault,
        ServerOptions {
            socket: SocketOptions {
                security: Security::curve_server(k.server.clone(), allow),
                ..Default::default()
            },
            ..Default::default()
        },
    ));
    s.bind(&ep).await.unwrap();
    let run = s.clone();
    tokio::spawn(async move { run.run().await });
    let r = within("the late server's answer", call).await.unwrap();
    assert_eq!(r.unwrap().as_str(), Some("public"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_endpoint_does_not_fail_calls_that_another_can_serve() {
    let k = keys();
    let (_good, good_ep) = vault(&k, None).await;
    // a second server with another key: alice's idea of the server key
    // is wrong there
    let other = keys();
    let (_bad, bad_ep) = vault(&other, None).await;
    let c = Client::connect_with(
        &[&bad_ep, &good_ep],
        ClientOptions {
            socket: SocketOptions {
                security: Security::curve_client(k.alice.clone(), k.server.public),
                ..Default::default()
            },
            ..ClientOptions::default().timeout(NEVER)
        },
    )
    .await
    .unwrap();
    for _ in 0..10 {
        let r = within(
            "a call with one good endpoint",
            c.call("get_public", vec![]),
        )
        .await;
        assert_eq!(r.unwrap().as_str(), Some("public"));
    }
}

const PY_CURVE_CLIENT: &str = r#"
import sys, zerorpc
c = zerorpc.Client(timeout=10)
sock = c._events._socket
sock.curve_serverkey = sys.argv[2].encode()
sock.curve_publickey = sys.argv[3].encode()
sock.curve_secretkey = sys.argv[4].encode()
c.connect(sys.argv[1])
print("WHO", c.whoami(), flush=True)
try:
    c.get_secret()
    print("SECRET", flush=True)
except zerorpc.RemoteError as e:
    print("DENIED", e.name, flush=True)
"#;

/// zerorpc-python serving over CURVE: libzmq's CURVE server, with pyzmq's
/// ZAP authenticator (on the same libzmq context) allowing one key.
const PY_CURVE_SERVER: &str = r#"
import sys, os, tempfile, zmq, zmq.auth, zerorpc
from zmq.auth.thread import ThreadAuthenticator
class Vault(object):
    def get_public(self):
        return "public"
srv = zerorpc.Server(Vault())
# (a plain context over zerorpc's own: ZAP is per libzmq context)
auth = ThreadAuthenticator(zmq.Context.shadow(srv._context.underlying))
auth.start()
d = tempfile.mkdtemp()
with open(os.path.join(d, "client.key"), "w") as f:
    f.write('metadata\ncurve\n    public-key = "%s"\n' % sys.argv[3])
auth.configure_curve(domain="*", location=d)
sock = srv._events._socket
sock.curve_secretkey = sys.argv[1].encode()
sock.curve_publickey = sys.argv[2].encode()
sock.curve_server = True
port = sock.bind_to_random_port("tcp://127.0.0.1")
print("READY", port, flush=True)
srv.run()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_zerorpc_python_curve_server_fail_at_once_when_refused() {
    let k = keys();
    let mut py = Proc::python(
        PY_CURVE_SERVER,
        &[
            &k.server.secret_z85(),
            &k.server.public_z85(),
            &k.alice.public_z85(),
        ],
    );
    let (py, ready) = within(
        "the python server",
        tokio::task::spawn_blocking(move || {
            let l = py.wait_line("READY");
            (py, l)
        }),
    )
    .await
    .unwrap();
    let ep = format!(
        "tcp://127.0.0.1:{}",
        ready.split_whitespace().nth(1).unwrap()
    );
    // alice is served (the setup works) ...
    let alice = client(&ep, &k.alice, k.server.public, Duration::from_secs(30)).await;
    let r = within("alice's call", alice.call("get_public", vec![])).await;
    assert_eq!(r.unwrap().as_str(), Some("public"));
    // ... bob's key is refused (libzmq's ERROR "400") ...
    let bob = client(&ep, &k.bob, k.server.public, NEVER).await;
    let r = within("bob's call", bob.call("get_public", vec![])).await;
    assert!(
        matches!(&r, Err(Error::Authentication { reason }) if reason.contains("400")),
        "{r:?}"
    );
    // ... and with the wrong server key libzmq closes without a word.
    let wrong = client(&ep, &k.alice, CurveKeyPair::generate().public, NEVER).await;
    let r = within(
        "a call with the wrong server key",
        wrong.call("get_public", vec![]),
    )
    .await;
    assert!(
        matches!(&r, Err(Error::Authentication { reason }) if reason.contains("wrong server key")),
        "{r:?}"
    );
    drop(py);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zerorpc_python_calls_over_curve() {
    let k = keys();
    let (_s, ep) = vault(&k, None).await;
    let mut py = Proc::python(
        PY_CURVE_CLIENT,
        &[
            &ep,
            &k.server.public_z85(),
            &k.bob.public_z85(),
            &k.bob.secret_z85(),
        ],
    );
    let lines = within(
        "the python client",
        tokio::task::spawn_blocking(move || (py.wait_line("WHO"), py.wait_line("DENIED"))),
    )
    .await
    .unwrap();
    assert_eq!(
        lines,
        ("WHO bob".to_owned(), "DENIED PermissionDenied".to_owned())
    );
}
