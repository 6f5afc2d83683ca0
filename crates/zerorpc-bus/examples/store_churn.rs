//! Memory of a [`Store`] whose retention keeps pace with publishing: a
//! steady stream of ~300-byte envelopes (RATE a simulated second, in
//! commits of 5), pruned once a simulated minute with a retention of
//! RETENTION simulated minutes, as the daemon does; hours of a daemon's
//! life in a few minutes (the clock is the `now` given to `prune`). Prints
//! the process's RSS and the file's size every simulated 30 minutes.
//!
//! `cargo run --release -p zerorpc-bus --example store_churn [HOURS] [RATE] [RETENTION] [DIR]`
//!
//! Defaults: 6 hours, 50 messages/s, 5 minutes (the soak benchmark's
//! bus), a fresh directory under the system's temp dir.

use std::time::{Duration, Instant};

use zerorpc_bus::store::{NewRecord, Store, StoreOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let hours: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(6);
    let rate: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(50);
    let retention: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("store-churn-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(
        &dir,
        StoreOptions {
            retention: Some(Duration::from_secs(retention * 60)),
            max_messages: None,
        },
    )?;
    let start = 1_700_000_000i64;
    let filler = "x".repeat(120);
    let t = Instant::now();
    let mut n = 0u64;
    println!("simulated minute | RSS MiB | file MiB | records pruned so far");
    let mut pruned = 0;
    for sec in 0..hours * 3600 {
        let now = start + sec as i64;
        for _ in 0..rate.div_ceil(5) {
            let owned: Vec<(String, String)> = (0..5)
                .map(|i| {
                    n += 1;
                    let id = format!("2026-{:032x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    let json = format!(
                        r#"{{"i":{i},"msg":{{"n":{n},"pad":"{filler}"}},"msg_id":"{id}","timestamp":{now},"topic":"org.fedoraproject.prod.churn","username":"bench"}}"#
                    );
                    (id, json)
                })
                .collect();
            let batch: Vec<NewRecord<'_>> = owned
                .iter()
                .map(|(id, json)| NewRecord {
                    topic: "org.fedoraproject.prod.churn",
                    msg_id: id,
                    timestamp: now,
                    json,
                })
                .collect();
            store.append(&batch)?;
        }
        if sec % 60 == 59 {
            pruned += store.prune(now)?;
        }
        if sec % 1800 == 1799 {
            let size = std::fs::metadata(store.path())?.len();
            println!(
                "{} | {:.1} | {:.1} | {pruned}",
                (sec + 1) / 60,
                zerorpc_testkit::rss_kib() as f64 / 1024.0,
                size as f64 / (1 << 20) as f64
            );
        }
    }
    println!("{n} messages in {:.1} s", t.elapsed().as_secs_f64());
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
