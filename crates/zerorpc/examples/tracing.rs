// Tracing: a call that goes through two services, both sides of each hop
// recorded, then the trace printed as a call tree. In one program:
// `cargo run -p zerorpc --example tracing`.
use std::sync::Arc;
use std::time::Duration;

use zerorpc::record::render_tree;
use zerorpc::record::{EmbeddedStore, Recorder};
use zerorpc::{Client, ClientOptions, Error, Server, ServerOptions, TraceContext};

pub struct Stock;

#[zerorpc::service]
impl Stock {
    /// Reserve one item.
    pub fn reserve(&self, item: String) -> bool {
        item != "unicorn"
    }
}

pub struct Shop {
    stock: StockClient,
}

#[zerorpc::service]
impl Shop {
    /// Buy an item: asks the stock service (a child span of this one).
    pub async fn buy(&self, item: String) -> Result<bool, Error> {
        self.stock.reserve(item).await
    }
}

/// Serves `service` on a free port with `opts`; returns its endpoint.
async fn serve(service: impl zerorpc::IntoService, opts: ServerOptions) -> Result<String, Error> {
    let server = Arc::new(Server::with_options(service, opts));
    let endpoint = server.bind("tcp://127.0.0.1:0").await?.to_string();
    tokio::spawn(async move { server.run().await });
    Ok(endpoint)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Where records go: an in-memory store here. To send them to
    // `zerorpc trace-collector` instead (and read them with `zerorpc
    // trace tail/show/top`):
    // Recorder::new(zerorpc::collector::PushSink::connect("tcp://127.0.0.1:5555").await?, 65_536)
    let store = EmbeddedStore::new(Duration::from_secs(600));
    let recorder = Recorder::new(store.clone(), 65_536);
    let recording = || ServerOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let client_options = || ClientOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };

    let stock_endpoint = serve(Stock, recording()).await?;
    let stock = StockClient::new(Client::connect_with(&[&stock_endpoint], client_options()).await?);
    let shop_endpoint = serve(Shop { stock }, recording()).await?;
    let shop = ShopClient::new(Client::connect_with(&[&shop_endpoint], client_options()).await?);

    // A call made inside a trace context carries it (W3C traceparent);
    // without one, the client starts a new trace (sampled: it records).
    let trace = TraceContext::new_root();
    let trace_id = trace.trace_id_hex();
    let bought = trace.scope(shop.buy("kiwi".to_string())).await?;
    assert!(bought);

    // Records are shipped in the background (a server records a call
    // just after answering it); wait for them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    recorder.flush(Duration::from_secs(5)).await;
    let records = store.trace(&trace_id);
    assert!(records.iter().any(|r| r.method == "reserve"));
    println!("trace {trace_id}:\n{}", render_tree(&records));
    Ok(())
}
