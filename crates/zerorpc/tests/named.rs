//! Named arguments without a wire change (`Client::call_named`): placed
//! by introspection, against our server (cached, refreshed on a miss),
//! zerorpc-python on Python 3.9 (its introspection works) and on the
//! venv's Python ≥ 3.11 (it does not: a clear error).

use zerorpc_testkit as common;

use std::sync::{Arc, Mutex};

use common::*;
use futures::FutureExt;
use zerorpc::{
    ArgInfo, CallContext, Client, Error, HandlerFuture, MethodInfo, Response, Server, Service,
    Value,
};

/// A service whose methods the test changes while it runs: each method
/// answers its arguments, as a list.
struct Changing(Arc<Mutex<Vec<MethodInfo>>>);

impl Service for Changing {
    fn name(&self) -> &str {
        "changing"
    }

    fn methods(&self) -> Vec<MethodInfo> {
        self.0.lock().unwrap().clone()
    }

    fn call(&self, method: &str, args: Vec<Value>, _: CallContext) -> Option<HandlerFuture> {
        self.has_method(method)
            .then(|| async move { Ok(Response::Value(Value::Array(args))) }.boxed())
    }
}

fn method(name: &str, args: &[(&str, Option<i64>)]) -> MethodInfo {
    let mut m = MethodInfo::new(name, "", &[]);
    m.args = args
        .iter()
        .map(|(n, d)| ArgInfo {
            name: (*n).into(),
            default: d.map(Value::from),
        })
        .collect();
    m
}

fn named(entries: &[(&str, Value)]) -> Vec<(String, Value)> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_arguments_take_their_places_and_a_stale_description_is_refreshed() {
    let methods = Arc::new(Mutex::new(vec![method(
        "greet",
        &[("name", None), ("greeting", Some(1)), ("punct", None)],
    )]));
    let server = Arc::new(Server::new(Changing(methods.clone())));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    tokio::spawn(async move { server.run().await });
    let c = Client::connect(&ep).await.unwrap();
    // In any order; a gap before the last one named takes its default;
    // what follows it is left out.
    let v = within(
        "greet",
        c.call_named(
            "greet",
            named(&[("punct", "!".into()), ("name", "ann".into())]),
        ),
    )
    .await
    .unwrap();
    assert_eq!(v, Value::Array(vec!["ann".into(), 1.into(), "!".into()]));
    let v = c
        .call_named("greet", named(&[("name", "bo".into())]))
        .await
        .unwrap();
    assert_eq!(v, Value::Array(vec!["bo".into()]));
    // Clear errors, without a call.
    for (args, says) in [
        (
            named(&[("nam", 1.into())]),
            "unexpected keyword argument 'nam'",
        ),
        (named(&[("punct", "?".into())]), "missing argument 'name'"),
    ] {
        match c.call_named("greet", args).await {
            Err(Error::NamedArguments(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("{says}: {other:?}"),
        }
    }
    // The service gains a method and an argument: the cached description
    // does not know them, so it is asked again once.
    *methods.lock().unwrap() = vec![
        method(
            "greet",
            &[
                ("name", None),
                ("greeting", Some(1)),
                ("punct", None),
                ("times", Some(1)),
            ],
        ),
        method("part", &[("who", None)]),
    ];
    let v = c
        .call_named(
            "greet",
            named(&[
                ("times", 2.into()),
                ("name", "cy".into()),
                ("punct", ".".into()),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        v,
        Value::Array(vec!["cy".into(), 1.into(), ".".into(), 2.into()])
    );
    let v = c
        .call_named("part", named(&[("who", "di".into())]))
        .await
        .unwrap();
    assert_eq!(v, Value::Array(vec!["di".into()]));
    match c.call_named("nope", named(&[])).await {
        Err(Error::NamedArguments(m)) => assert!(m.contains("no method `nope`"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The description is shared by handles on the same connections.
    let info = c.with_timeout(None).describe().await.unwrap();
    assert_eq!(info.name, "changing");
    assert_eq!(info.methods.len(), 2);
}

fn python_server(py: &std::path::Path) -> (Proc, String) {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut p = Proc::python_with(py, PY_DEMO_SERVER, &[&ep, "5.0"]);
    p.wait_line("READY");
    (p, ep)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_arguments_against_zerorpc_python_3_9() {
    let Some(py) = python39() else {
        // (python39() said why on stderr; the test has nothing to run)
        return;
    };
    let (_p, ep) = tokio::task::spawn_blocking(move || python_server(py))
        .await
        .unwrap();
    let c = Client::connect(&ep).await.unwrap();
    let v = within(
        "add by name",
        c.call_named("add", named(&[("b", 40.into()), ("a", 2.into())])),
    )
    .await
    .unwrap();
    assert_eq!(v, Value::from(42));
    // Python's `self` is not an argument a caller names.
    match c.call_named("add", named(&[("self", 1.into())])).await {
        Err(Error::NamedArguments(m)) => assert!(m.contains("'self'"), "{m}"),
        other => panic!("{other:?}"),
    }
    let info = c.describe().await.unwrap();
    let add = info.method("add").unwrap();
    let names: Vec<&str> = add
        .args
        .as_deref()
        .unwrap()
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_server_whose_introspection_fails_gets_a_clear_error() {
    // zerorpc-python 0.6.3 on the venv's Python (3.11 here), as it is:
    // `inspect.getargspec` is gone, so `_zerorpc_inspect` fails.
    let (_p, ep) = tokio::task::spawn_blocking(|| python_server(python()))
        .await
        .unwrap();
    let c = Client::connect(&ep).await.unwrap();
    match within(
        "add by name",
        c.call_named("add", named(&[("a", 2.into()), ("b", 40.into())])),
    )
    .await
    {
        Err(Error::NamedArguments(m)) => {
            assert!(m.contains("argument names of `add`"), "{m}");
            assert!(m.contains("Python 3.11"), "{m}");
        }
        Ok(v) => {
            // (a venv Python older than 3.11 still has getargspec)
            assert_eq!(v, Value::from(42));
            let ver = std::process::Command::new(python())
                .args(["-c", "import sys; print(sys.version_info[:2] < (3, 11))"])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&ver.stdout).trim(), "True");
        }
        Err(e) => panic!("{e:?}"),
    }
    // By position it works as always.
    let v = c.call("add", vec![2.into(), 40.into()]).await.unwrap();
    assert_eq!(v, Value::from(42));
}
