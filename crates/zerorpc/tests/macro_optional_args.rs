//! `#[zerorpc::service]`: trailing `Option` arguments may be omitted by the
//! caller (they are `None`), as Python callers expect of defaults, and
//! introspection shows them with a default of nil.

use zerorpc_testkit as common;

use std::sync::Arc;

use common::*;
use zerorpc::{Client, Error, Server, Value};

struct Greeter;

#[zerorpc::service]
impl Greeter {
    /// Greets `name`; `greeting` and `punctuation` may be omitted.
    pub fn greet(
        &self,
        name: String,
        greeting: Option<String>,
        punctuation: Option<String>,
    ) -> String {
        format!(
            "{}, {name}{}",
            greeting.as_deref().unwrap_or("hello"),
            punctuation.as_deref().unwrap_or(".")
        )
    }

    /// An `Option` before a required argument is required too.
    pub async fn pair(&self, first: Option<i64>, second: i64) -> (Option<i64>, i64) {
        (first, second)
    }

    /// Every argument may be omitted.
    pub fn or_zero(&self, n: Option<i64>) -> i64 {
        n.unwrap_or(0)
    }
}

async fn start() -> (Arc<Server>, String) {
    let server = Arc::new(Server::new(Greeter));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    (server, ep)
}

fn type_error(r: Result<Value, Error>) -> String {
    match r {
        Err(Error::Remote(e)) if e.name == "TypeError" => e.message,
        other => panic!("expected a TypeError, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omitted_trailing_option_arguments_are_none() {
    let (_server, ep) = start().await;
    let c = Client::connect(&ep).await.unwrap();
    let greet = |args: Vec<Value>| {
        let c = c.clone();
        async move { c.call("greet", args).await }
    };
    assert_eq!(
        greet(vec!["bob".into()]).await.unwrap(),
        Value::from("hello, bob.")
    );
    assert_eq!(
        greet(vec!["bob".into(), "hi".into()]).await.unwrap(),
        Value::from("hi, bob.")
    );
    assert_eq!(
        greet(vec!["bob".into(), Value::Nil, "!".into()])
            .await
            .unwrap(),
        Value::from("hello, bob!")
    );
    assert_eq!(
        c.call("or_zero", vec![]).await.unwrap(),
        Value::from(0),
        "a method whose only argument is optional takes none"
    );
    // Too few (the required one missing) or too many: a TypeError that
    // says what the method takes.
    let msg = type_error(greet(vec![]).await);
    assert!(
        msg.contains("greet() takes from 1 to 3 positional arguments (name, greeting=None, punctuation=None) but 0 were given"),
        "{msg}"
    );
    let msg = type_error(greet(vec!["a".into(), "b".into(), "c".into(), "d".into()]).await);
    assert!(msg.contains("but 4 were given"), "{msg}");
    // An omitted argument is not a wrongly typed one.
    let msg = type_error(greet(vec!["bob".into(), 3.into()]).await);
    assert!(msg.contains("argument 'greeting'"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_option_before_a_required_argument_is_required() {
    let (_server, ep) = start().await;
    let c = Client::connect(&ep).await.unwrap();
    let msg = type_error(c.call("pair", vec![1.into()]).await);
    assert!(
        msg.contains("pair() takes 2 positional argument(s) (first, second) but 1 were given"),
        "{msg}"
    );
    assert_eq!(
        c.call("pair", vec![Value::Nil, 2.into()]).await.unwrap(),
        Value::Array(vec![Value::Nil, 2.into()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_shows_omittable_arguments_with_a_nil_default() {
    let (_server, ep) = start().await;
    let c = Client::connect(&ep).await.unwrap();
    // Python's `[args, varargs, keywords, defaults]`: the defaults of the
    // last arguments.
    assert_eq!(
        c.call("_zerorpc_args", vec!["greet".into()]).await.unwrap(),
        Value::Array(vec![
            Value::Array(vec!["name".into(), "greeting".into(), "punctuation".into()]),
            Value::Nil,
            Value::Nil,
            Value::Array(vec![Value::Nil, Value::Nil]),
        ])
    );
    assert_eq!(
        c.call("_zerorpc_args", vec!["pair".into()]).await.unwrap(),
        Value::Array(vec![
            Value::Array(vec!["first".into(), "second".into()]),
            Value::Nil,
            Value::Nil,
            Value::Nil,
        ])
    );
    let inspect = c.call("_zerorpc_inspect", vec![]).await.unwrap();
    let methods = map_get(&inspect, "methods");
    let greet_args = map_get(map_get(methods, "greet"), "args");
    let name = |n: &str| (Value::from("name"), Value::from(n));
    let nil_default = (Value::from("default"), Value::Nil);
    assert_eq!(
        greet_args,
        &Value::Array(vec![
            Value::Map(vec![name("name")]),
            Value::Map(vec![name("greeting"), nil_default.clone()]),
            Value::Map(vec![name("punctuation"), nil_default]),
        ])
    );
}

fn map_get<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(key)))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key:?} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_client_passes_none_for_omitted_options() {
    let (_server, ep) = start().await;
    let g = GreeterClient::connect(&ep).await.unwrap();
    assert_eq!(
        g.greet("ann".into(), None, None).await.unwrap(),
        "hello, ann."
    );
    assert_eq!(
        g.greet("ann".into(), Some("hey".into()), Some("?".into()))
            .await
            .unwrap(),
        "hey, ann?"
    );
    assert_eq!(g.or_zero(None).await.unwrap(), 0);
}

const PYTHON_CLIENT: &str = r#"
import sys, zerorpc
c = zerorpc.Client(timeout=20, heartbeat=1)
c.connect(sys.argv[1])
def check(name, got, want):
    assert got == want, "%s: got %r, want %r" % (name, got, want)
    print("OK", name, flush=True)
check("one argument", c.greet(u"bob"), u"hello, bob.")
check("two arguments", c.greet(u"bob", u"hi"), u"hi, bob.")
check("three arguments", c.greet(u"bob", None, u"!"), u"hello, bob!")
check("no argument", c.or_zero(), 0)
try:
    c.greet()
    raise AssertionError("greet() did not raise")
except zerorpc.RemoteError as e:
    check("missing required", e.name, u"TypeError")
    assert "takes from 1 to 3" in e.msg, e.msg
insp = c._zerorpc_inspect()
check("inspect greet", insp[u"methods"][u"greet"][u"args"],
      [{u"name": u"name"}, {u"name": u"greeting", u"default": None},
       {u"name": u"punctuation", u"default": None}])
check("args greet", c._zerorpc_args(u"greet"),
      [[u"name", u"greeting", u"punctuation"], None, None, [None, None]])
print("ALL DONE", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_may_omit_trailing_optional_arguments() {
    let (_server, ep) = start().await;
    run_python_script("python client", PYTHON_CLIENT, vec![ep]).await;
}
