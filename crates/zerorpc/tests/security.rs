//! ZeroRPC over CURVE: authenticated users, per-method authorization, a
//! refused key that harms nobody, and zerorpc-python as a CURVE client.

use zerorpc_testkit as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerorpc::auth::{current_user, Authorization, Rule};
use zerorpc::zmtp::curve::CurveKeyPair;
use zerorpc::zmtp::{AllowList, Security, SocketOptions};
use zerorpc::{
    CallError, Client, ClientOptions, EmbeddedStore, Error, Recorder, Server, ServerOptions,
    TraceContext,
};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_is_refused_and_harms_no_one() {
    let k = keys();
    let (server, ep) = vault(&k, None).await;
    let alice = client(&ep, &k.alice, k.server.public, Duration::from_secs(30)).await;
    // A stranger's calls never get through (their handshakes are refused),
    // and are counted; alice is served all along.
    let stranger = client(
        &ep,
        &CurveKeyPair::generate(),
        k.server.public,
        Duration::from_secs(2),
    )
    .await;
    let (theirs, ours) = tokio::join!(stranger.call("get_public", vec![]), async {
        let mut n = 0;
        for _ in 0..50 {
            alice.call("get_public", vec![]).await.unwrap();
            n += 1;
        }
        n
    });
    assert!(matches!(theirs, Err(Error::Timeout(_))), "{theirs:?}");
    assert_eq!(ours, 50);
    assert!(server.refused_connections() >= 1);
    // So does a client that has the wrong server key.
    let wrong = client(
        &ep,
        &k.alice,
        CurveKeyPair::generate().public,
        Duration::from_secs(2),
    )
    .await;
    assert!(matches!(
        wrong.call("get_public", vec![]).await,
        Err(Error::Timeout(_))
    ));
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
