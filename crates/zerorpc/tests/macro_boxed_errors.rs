//! `#[zerorpc::service]` methods may fail with a boxed error
//! (`Box<dyn Error + Send + Sync>`, `Box<dyn Error>`, or anything `?` turns
//! into one, like a `String`): the caller gets `ERR` with the error's type
//! name and message, as for a concrete error type.

use zerorpc_testkit as common;

use std::error::Error as StdError;
use std::sync::Arc;

use common::*;
use futures::StreamExt;
use zerorpc::{CallError, Client, Error, Server, Value};

type BoxError = Box<dyn StdError + Send + Sync>;

#[derive(Debug)]
struct TooBig(u32);
impl std::fmt::Display for TooBig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is too big", self.0)
    }
}
impl StdError for TooBig {}

struct Parser;

#[zerorpc::service]
impl Parser {
    /// Parses an integer (`?` boxes the `ParseIntError`).
    pub fn parse(&self, s: String) -> Result<i64, Box<dyn StdError + Send + Sync>> {
        Ok(s.parse::<i64>()?)
    }

    /// The same after an await, through a type alias.
    pub async fn parse_later(&self, s: String) -> Result<i64, BoxError> {
        tokio::task::yield_now().await;
        Ok(s.parse::<i64>()?)
    }

    /// A boxed error that is not `Send`.
    pub fn small(&self, n: u32) -> Result<u32, Box<dyn StdError>> {
        if n > 10 {
            return Err(Box::new(TooBig(n)));
        }
        Ok(n)
    }

    /// An `anyhow::Result`, with context.
    pub fn checked(&self, s: String) -> anyhow::Result<i64> {
        use anyhow::Context;
        s.parse::<i64>().context("not a number")
    }

    /// A plain message as the error.
    pub fn message(&self, s: String) -> Result<String, String> {
        Err(format!("refused: {s}"))
    }

    /// Counts up to `n`, failing at the first item above 3.
    #[zerorpc(stream)]
    pub fn upto(
        &self,
        n: u32,
    ) -> impl futures::Stream<Item = Result<u32, BoxError>> + Send + 'static {
        futures::stream::iter((1..=n).map(|i| {
            if i > 3 {
                Err(BoxError::from(TooBig(i)))
            } else {
                Ok(i)
            }
        }))
    }
}

async fn start() -> (Arc<Server>, String) {
    let server = Arc::new(Server::new(Parser));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    (server, ep)
}

fn remote(r: Result<Value, Error>) -> CallError {
    match r {
        Err(Error::Remote(e)) => e,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxed_errors_reach_the_caller_with_their_type_name() {
    let (_server, ep) = start().await;
    let c = Client::connect(&ep).await.unwrap();
    assert_eq!(
        c.call("parse", vec!["42".into()]).await.unwrap(),
        Value::from(42)
    );
    let e = remote(c.call("parse", vec!["x".into()]).await);
    assert_eq!(
        (e.name.as_str(), e.message.as_str()),
        ("ParseIntError", "invalid digit found in string")
    );
    let e = remote(c.call("parse_later", vec!["".into()]).await);
    assert_eq!(
        (e.name.as_str(), e.message.as_str()),
        ("ParseIntError", "cannot parse integer from empty string")
    );
    let e = remote(c.call("small", vec![11.into()]).await);
    assert_eq!(
        (e.name.as_str(), e.message.as_str()),
        ("TooBig", "11 is too big")
    );
    // anyhow: the context is the message, its causes the traceback.
    let e = remote(c.call("checked", vec!["x".into()]).await);
    assert_eq!(
        (e.name.as_str(), e.message.as_str(), e.traceback.as_str()),
        (
            "Error",
            "not a number",
            "caused by: invalid digit found in string"
        )
    );
    let e = remote(c.call("message", vec!["no".into()]).await);
    assert_eq!(
        (e.name.as_str(), e.message.as_str()),
        ("Error", "refused: no")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_boxed_results_ends_with_the_error() {
    let (_server, ep) = start().await;
    let p = ParserClient::connect(&ep).await.unwrap();
    let got: Vec<Result<u32, Error>> = p.upto(5).await.unwrap().collect().await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(
        got[..3]
            .iter()
            .map(|r| *r.as_ref().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    match &got[3] {
        Err(Error::Remote(e)) => {
            assert_eq!(
                (e.name.as_str(), e.message.as_str()),
                ("TooBig", "4 is too big")
            )
        }
        other => panic!("{other:?}"),
    }
}

const PYTHON_CLIENT: &str = r#"
import sys, zerorpc
c = zerorpc.Client(timeout=20, heartbeat=1)
c.connect(sys.argv[1])
try:
    c.parse(u"x")
    raise AssertionError("parse('x') did not raise")
except zerorpc.RemoteError as e:
    assert (e.name, e.msg) == (u"ParseIntError", u"invalid digit found in string"), (e.name, e.msg)
    print("OK", e.name, flush=True)
print("ALL DONE", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_sees_a_boxed_errors_name_and_message() {
    let (_server, ep) = start().await;
    run_python_script("python client", PYTHON_CLIENT, vec![ep]).await;
}
