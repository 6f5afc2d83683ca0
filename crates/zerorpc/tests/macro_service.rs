//! `#[zerorpc::service]`: a plain impl block served, introspected and
//! called through the generated typed client.

use std::time::Duration;

use futures::StreamExt;
use zerorpc::{Client, Error, Server, Value};

#[derive(Debug)]
struct DivByZero;
impl std::fmt::Display for DivByZero {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("division by zero")
    }
}
impl std::error::Error for DivByZero {}

struct Calc {
    offset: i64,
}

#[zerorpc::service(name = "calc")]
impl Calc {
    /// Add two numbers.
    ///
    /// The offset is added too.
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b + self.offset
    }

    /// Divide a by b.
    pub async fn div(&self, a: f64, b: f64) -> Result<f64, DivByZero> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if b == 0.0 {
            Err(DivByZero)
        } else {
            Ok(a / b)
        }
    }

    /// Greet someone.
    pub fn hello(&self, name: String) -> String {
        format!("hello {name}")
    }

    /// Count from 0 to n-1.
    #[zerorpc(stream)]
    pub fn count(&self, n: u32) -> impl futures::Stream<Item = u32> + Send + 'static {
        futures::stream::iter(0..n)
    }

    pub async fn nothing(&self) {}

    /// Halves until odd: an odd input fails after the items so far.
    #[zerorpc(stream)]
    pub fn halves(
        &self,
        n: u32,
    ) -> impl futures::Stream<Item = Result<u32, DivByZero>> + Send + 'static {
        let mut items = Vec::new();
        let mut n = n;
        while n > 0 && n.is_multiple_of(2) {
            items.push(Ok(n));
            n /= 2;
        }
        items.push(Err(DivByZero));
        futures::stream::iter(items)
    }

    #[allow(dead_code)]
    fn private_helper(&self) -> i64 {
        7
    }
}

async fn start() -> (std::sync::Arc<Server>, String) {
    let server = std::sync::Arc::new(Server::new(Calc { offset: 100 }));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    (server, ep)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_client_calls_the_service() {
    let (_server, ep) = start().await;
    let calc = CalcClient::connect(&ep).await.unwrap();
    assert_eq!(calc.add(1, 2).await.unwrap(), 103);
    assert_eq!(calc.div(1.0, 4.0).await.unwrap(), 0.25);
    match calc.div(1.0, 0.0).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.name, "DivByZero");
            assert_eq!(e.message, "division by zero");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calc.hello("bob".into()).await.unwrap(), "hello bob");
    let items: Vec<u32> = calc
        .count(5)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(items, vec![0, 1, 2, 3, 4]);
    calc.nothing().await.unwrap();
    // A stream of results: the items, then the error as the last item.
    let got: Vec<Result<u32, Error>> = calc.halves(12).await.unwrap().collect().await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        (got[0].as_ref().ok(), got[1].as_ref().ok()),
        (Some(&12), Some(&6))
    );
    match &got[2] {
        Err(Error::Remote(e)) => assert_eq!(e.name, "DivByZero"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_comes_from_the_source() {
    let (_server, ep) = start().await;
    let c = Client::connect(&ep).await.unwrap();
    assert_eq!(
        c.call("_zerorpc_name", vec![]).await.unwrap(),
        Value::from("calc")
    );
    let list = c.call("_zerorpc_list", vec![]).await.unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        names,
        ["add", "div", "hello", "count", "nothing", "halves"],
        "private methods stay private"
    );
    assert_eq!(
        c.call("_zerorpc_help", vec!["add".into()]).await.unwrap(),
        Value::from("Add two numbers.\n\nThe offset is added too.")
    );
    assert_eq!(
        c.call("_zerorpc_args", vec!["div".into()]).await.unwrap(),
        Value::Array(vec![
            Value::Array(vec!["a".into(), "b".into()]),
            Value::Nil,
            Value::Nil,
            Value::Nil
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_named() {
    let (_server, ep) = start().await;
    let c = Client::connect(&ep).await.unwrap();
    match c.call("add", vec![1.into(), "two".into()]).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.name, "TypeError");
            assert!(e.message.contains("argument 'b'"), "{}", e.message);
            assert!(e.message.contains("str given"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    match c.call("hello", vec![]).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.name, "TypeError");
            assert!(e.message.contains("hello() takes 1"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    // Node sends big integers as float64: accepted when integral.
    assert_eq!(
        c.call("add", vec![Value::F64(5e9), 1.into()])
            .await
            .unwrap(),
        Value::from(5_000_000_101_i64)
    );
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

struct Geometry;

#[zerorpc::service(name = "geometry")]
impl Geometry {
    /// Scale a point.
    pub fn scale(&self, p: Point, k: f64) -> Point {
        Point {
            x: p.x * k,
            y: p.y * k,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn struct_parameter_accepts_a_map_or_an_array_and_results_are_maps() {
    let server = std::sync::Arc::new(Server::new(Geometry));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    let c = Client::connect(&ep).await.unwrap();
    let as_map = Value::Map(vec![
        (Value::from("x"), Value::from(1.0)),
        (Value::from("y"), Value::from(2)),
    ]);
    let as_array = Value::Array(vec![Value::from(1.0), Value::from(2.0)]);
    let want = Value::Map(vec![
        (Value::from("x"), Value::from(3.0)),
        (Value::from("y"), Value::from(6.0)),
    ]);
    for p in [as_map, as_array] {
        assert_eq!(
            c.call("scale", vec![p.clone(), 3.into()]).await.unwrap(),
            want,
            "from {p}"
        );
    }
    let typed = GeometryClient::connect(&ep).await.unwrap();
    assert_eq!(
        typed.scale(Point { x: 1.0, y: -1.0 }, 2.0).await.unwrap(),
        Point { x: 2.0, y: -2.0 }
    );
}

/// A type of the user's that happens to be called `Value`.
mod own {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Value {
        pub n: i64,
    }
}

struct Values;

#[zerorpc::service]
impl Values {
    /// The value itself (a `Value` result is handed over, not serialized).
    pub fn same(&self, v: Value) -> Value {
        v
    }

    /// The value, or an error for nil.
    pub fn some(&self, v: zerorpc::Value) -> Result<zerorpc::Value, DivByZero> {
        if v.is_nil() {
            Err(DivByZero)
        } else {
            Ok(v)
        }
    }

    /// The user's own `Value`: serialized like any struct.
    pub fn own(&self, n: i64) -> own::Value {
        own::Value { n }
    }

    /// The same, behind a `Result`.
    pub fn own_or_fail(&self, n: i64) -> Result<own::Value, DivByZero> {
        if n == 0 {
            Err(DivByZero)
        } else {
            Ok(own::Value { n })
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_named_value_are_handed_over_or_serialized() {
    let server = std::sync::Arc::new(Server::new(Values));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    let c = Client::connect(&ep).await.unwrap();
    let v = Value::Array(vec![
        Value::Binary(vec![7; 70_000]),
        Value::from("x"),
        Value::Map(vec![(Value::from(1), Value::Nil)]),
    ]);
    assert_eq!(c.call("same", vec![v.clone()]).await.unwrap(), v);
    assert_eq!(c.call("some", vec![v.clone()]).await.unwrap(), v);
    match c.call("some", vec![Value::Nil]).await {
        Err(Error::Remote(e)) => assert_eq!(e.name, "DivByZero"),
        other => panic!("{other:?}"),
    }
    let want = Value::Map(vec![(Value::from("n"), Value::from(5))]);
    assert_eq!(c.call("own", vec![5.into()]).await.unwrap(), want);
    assert_eq!(c.call("own_or_fail", vec![5.into()]).await.unwrap(), want);
    let typed = ValuesClient::connect(&ep).await.unwrap();
    assert_eq!(typed.own(3).await.unwrap(), own::Value { n: 3 });
    assert_eq!(typed.same(v.clone()).await.unwrap(), v);
}
