//! Throughput of [`Store::append`]: batches of 1,000 ~300-byte envelopes,
//! each batch one durable (fsynced) transaction, as the daemon's group
//! commit writes them.
//!
//! `cargo run --release -p zerorpc-bus --example store_append [BATCHES] [BATCH_SIZE] [DIR]`
//!
//! DIR defaults to a fresh directory under the system's temp dir (use a
//! directory on the disk the daemon will use: a tmpfs makes fsync free).

use std::time::Instant;

use zerorpc_bus::store::{Appended, NewRecord, Store, StoreOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let batches: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let batch_size: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("store-append-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, StoreOptions::default())?;

    // Pseudo-random msg_ids (like fedmsg's uuid4s: the index is written at
    // random places, not appended at its end).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next_id = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let a = state;
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        format!("2026-{a:016x}-{state:016x}")
    };
    let filler = "x".repeat(120);
    let mut total = 0usize;
    let t = Instant::now();
    for b in 0..batches {
        let owned: Vec<(String, String, String)> = (0..batch_size)
            .map(|i| {
                let id = next_id();
                let topic = format!("org.fedoraproject.prod.bench.event{}", i % 7);
                let json = format!(
                    r#"{{"i":{i},"msg":{{"batch":{b},"pad":"{filler}"}},"msg_id":"{id}","timestamp":1700000000,"topic":"{topic}","username":"bench"}}"#
                );
                (id, topic, json)
            })
            .collect();
        let batch: Vec<NewRecord<'_>> = owned
            .iter()
            .map(|(id, topic, json)| NewRecord {
                topic,
                msg_id: id,
                timestamp: 1_700_000_000 + b as i64,
                json,
            })
            .collect();
        let done = store.append(&batch)?;
        total += done
            .iter()
            .filter(|a| matches!(a, Appended::New(_)))
            .count();
    }
    let secs = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(store.path())?.len();
    println!(
        "{total} messages in {batches} batches of {batch_size}: {secs:.2} s, {:.0} msgs/s, {:.1} ms/batch (file {} MiB)",
        total as f64 / secs,
        secs * 1000.0 / batches as f64,
        size >> 20
    );
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
