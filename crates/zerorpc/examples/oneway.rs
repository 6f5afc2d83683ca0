// One-way calls: a Pusher sends, a Puller serves (no replies), in one
// program: `cargo run -p zerorpc --example oneway`.
use std::sync::Arc;

use tokio::sync::mpsc;
use zerorpc::{Error, Puller, Pusher};

pub struct Log {
    lines: mpsc::UnboundedSender<String>,
}

#[zerorpc::service]
impl Log {
    /// Take a line.
    pub fn write(&self, line: String) {
        let _ = self.lines.send(line);
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (lines, mut received) = mpsc::unbounded_channel();
    // In order, like Python (OneWayOptions::concurrency to change it).
    let puller = Arc::new(Puller::new(Log { lines }));
    let endpoint = puller.bind("tcp://127.0.0.1:0").await?.to_string();
    let running = puller.clone();
    tokio::spawn(async move { running.run().await });

    // Waits for a puller: nothing lost to a slow joiner.
    let pusher = Pusher::new();
    pusher.connect(&endpoint).await?;
    let log = LogOneWay::new(pusher); // typed; streaming methods are left out
    log.write("hello".to_string()).await?;
    log.write("world".to_string()).await?;

    assert_eq!(received.recv().await.as_deref(), Some("hello"));
    assert_eq!(received.recv().await.as_deref(), Some("world"));
    println!("the puller got both lines");
    Ok(())
}
