// A service with a method of each kind, served and called by its typed
// client, in one program: `cargo run -p zerorpc --example calc`.
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use zerorpc::{CallError, Error, Server};

pub struct Calc;

/// Arguments and results are anything serde handles.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub total: f64,
}

#[zerorpc::service]
impl Calc {
    /// Add two numbers.
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// Divide a by b.
    pub async fn div(&self, a: f64, b: f64) -> Result<f64, CallError> {
        if b == 0.0 {
            return Err(CallError::new("ZeroDivisionError", "division by zero"));
        }
        Ok(a / b)
    }

    /// Count and add up values.
    pub fn summary(&self, values: Vec<f64>) -> Summary {
        Summary {
            count: values.len(),
            total: values.iter().sum(),
        }
    }

    /// Count to n.
    #[zerorpc(stream)]
    pub fn count(&self, n: u32) -> impl futures::Stream<Item = u32> + Send + 'static {
        futures::stream::iter(0..n)
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The server ("tcp://0.0.0.0:4242" to serve other machines; port 0
    // lets the system choose).
    let server = Arc::new(Server::new(Calc));
    let endpoint = server.bind("tcp://127.0.0.1:0").await?.to_string();
    let running = server.clone();
    tokio::spawn(async move { running.run().await });

    // The typed client, generated from the same impl block (any ZeroRPC
    // client can call it too: `zerorpc tcp://127.0.0.1:PORT add 2 3`).
    let calc = CalcClient::connect(&endpoint).await?;
    assert_eq!(calc.add(2, 3).await?, 5);
    let summary = calc.summary(vec![1.5, 2.5]).await?;
    assert_eq!((summary.count, summary.total), (2, 4.0));
    match calc.div(1.0, 0.0).await {
        Err(Error::Remote(e)) => println!("div(1, 0): {}: {}", e.name, e.message),
        other => panic!("expected a ZeroDivisionError, got {other:?}"),
    }
    let counted: Vec<u32> = calc
        .count(3)
        .await?
        .map(|item| item.unwrap_or_default())
        .collect()
        .await;
    assert_eq!(counted, [0, 1, 2]);
    println!("add(2, 3) = 5, count(3) = {counted:?}");
    Ok(())
}
