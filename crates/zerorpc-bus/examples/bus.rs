// The bus in one program: a daemon, a publisher that waits for each
// confirmation, a subscriber that joins late and still gets everything,
// and a hosted consumer: `cargo run -p zerorpc-bus --example bus`.
use serde_json::json;
use zerorpc_bus::consumer::{consume, ConsumerOptions, Verdict};
use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Event, Filters, Since, Subscription};
use zerorpc_bus::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // `zerorpc bus serve` does this with fedmsg's ports; here the system
    // chooses them, and the log goes to a temporary directory.
    let store = std::env::temp_dir().join(format!("bus-example-{}", std::process::id()));
    let daemon = Daemon::start(DaemonOptions::ephemeral(&store)).await?;
    let bus = daemon.ingest_endpoint().to_owned();

    // Publish: each call returns once the message is in the daemon's log.
    let mut opts = PublisherOptions::new(&bus);
    opts.modname = "bodhi".into();
    let publisher = Publisher::connect(opts).await?;
    for alias in ["FEDORA-2026-1", "FEDORA-2026-2"] {
        let c = publisher
            .publish(
                "update.comment",
                json!({"alias": alias, "text": "works for me"}),
            )
            .await?;
        println!("published {} as seq {:?}", c.msg_id, c.seq());
    }

    // Subscribe after the fact: the log fills the gap, in order.
    let patterns = vec!["org.fedoraproject.*.bodhi.update.*".to_owned()];
    let filters = Filters {
        patterns,
        ..Filters::default()
    };
    let mut sub = Subscription::bus(&bus, Since::Start, filters.clone()).await?;
    for _ in 0..2 {
        if let Some(Event::Message(d)) = sub.recv().await {
            println!("got seq {:?}: {} {}", d.seq, d.message.topic, d.message.msg);
        }
    }

    // A hosted consumer: the callback says what to do with each message.
    let sub = Subscription::bus(&bus, Since::Start, filters).await?;
    let report = consume(sub, ConsumerOptions::default(), |d| async move {
        match d.message.msg["alias"].as_str() {
            Some("FEDORA-2026-2") => Verdict::Halt,
            _ => Verdict::Ack,
        }
    })
    .await?;
    println!(
        "consumer: {} acked, halted at {:?}",
        report.acked, report.halted_at
    );

    daemon.shutdown().await;
    let _ = std::fs::remove_dir_all(&store);
    Ok(())
}
