//! `idle-heap [N]`: what an idle open call holds on the heap, client and
//! server together, counted by this binary's allocator (live bytes and
//! allocations, by size), so the figure is exact and the same on every
//! run, unlike a process's RSS (`zerorpc-bench idle ours N`, which also
//! counts the allocator's own overhead and fragmentation).
//!
//! `idle-heap store [N] [--one-sided]`: what an `EmbeddedStore` holds per
//! record, for `N` records of `N / 2` calls recorded on both sides (with
//! `--one-sided`: `N` calls recorded by the server only, as a server
//! called by clients that do not record, such as zerorpc-python's), stored
//! in the recorder's batches (live bytes and the peak while storing).
//!
//! Its own binary: the counting allocator would tax every other benchmark.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zerorpc::{Client, Server};

/// The system allocator, counting what is live.
struct Counting;

/// Live allocations in 16-byte size classes up to 4 KiB (the last class
/// holds everything bigger): count and bytes.
const CLASSES: usize = 257;
static COUNT: [AtomicIsize; CLASSES] = [const { AtomicIsize::new(0) }; CLASSES];
static BYTES: [AtomicIsize; CLASSES] = [const { AtomicIsize::new(0) }; CLASSES];
/// Live bytes over all classes, and the most they reached.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn note(size: usize, sign: isize) {
    let c = (size / 16).min(CLASSES - 1);
    COUNT[c].fetch_add(sign, Ordering::Relaxed);
    BYTES[c].fetch_add(sign * size as isize, Ordering::Relaxed);
    let live = LIVE.fetch_add(sign * size as isize, Ordering::Relaxed) + sign * size as isize;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is passed to `System` as it came; the counters
// allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size(), 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) };
        note(layout.size(), -1);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn snapshot() -> Vec<(isize, isize)> {
    COUNT
        .iter()
        .zip(&BYTES)
        .map(|(c, b)| (c.load(Ordering::SeqCst), b.load(Ordering::SeqCst)))
        .collect()
}

/// Live bytes per record of a store holding `n` records (see the doc).
fn store_heap(n: usize, one_sided: bool) {
    use zerorpc::record::{EmbeddedStore, Outcome, Record, Side};
    let store = EmbeddedStore::new(Duration::from_secs(600)).max_records(n);
    let shared = |s: &str| -> Arc<str> { s.into() };
    let (service, peer) = (shared("demo"), shared("tcp://127.0.0.1:4242"));
    let (process, host) = (shared("server[4242]"), shared("host"));
    let live_before = LIVE.load(Ordering::SeqCst);
    PEAK.store(live_before, Ordering::SeqCst);
    let now = std::time::Instant::now();
    let record = |call: usize, side: Side| Record {
        trace_id: format!("{:032x}", call + 1),
        span_id: format!("{:016x}", 2 * call + 1 + usize::from(side == Side::Server)),
        parent_id: (side == Side::Server).then(|| format!("{:016x}", 2 * call + 1)),
        side,
        service: service.clone(),
        method: "echo".into(),
        peer: peer.clone(),
        process: process.clone(),
        host: host.clone(),
        start_us: 1_700_000_000_000_000 + call as u64,
        duration_us: 9,
        outcome: Outcome::Ok,
        user: None,
        payload: None,
        traceback: None,
    };
    let mut batch = Vec::with_capacity(4096);
    let calls = if one_sided { n } else { n / 2 };
    for call in 0..calls {
        if !one_sided {
            batch.push(record(call, Side::Client));
        }
        batch.push(record(call, Side::Server));
        if batch.len() >= 4096 {
            store.insert_at(std::mem::replace(&mut batch, Vec::with_capacity(4096)), now);
        }
    }
    store.insert_at(batch, now);
    let live = LIVE.load(Ordering::SeqCst) - live_before;
    let peak = PEAK.load(Ordering::SeqCst) - live_before;
    println!(
        "embedded store holding {} records ({}): {:.0} bytes per record live, peak {:.0} while storing",
        store.record_count(),
        if one_sided {
            "one per trace"
        } else {
            "two per trace"
        },
        live as f64 / n as f64,
        peak as f64 / n as f64
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("store") {
        let n = std::env::args().nth(2).and_then(|a| a.parse().ok());
        let one_sided = std::env::args().any(|a| a == "--one-sided");
        store_heap(n.unwrap_or(200_000), one_sided);
        return;
    }
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let server = Arc::new(Server::new(zerorpc::demo::Demo));
        let ep = server.bind("tcp://127.0.0.1:0").await.expect("bind").to_string();
        let s = server.clone();
        tokio::spawn(async move { s.run().await });
        let c = Client::connect(&ep).await.expect("connect");
        // Warm up: the connection and its buffers; the channel tables grow
        // to `n` in the measured round and are counted (they are part of
        // what an open call costs).
        c.call("echo", vec![1.into()]).await.expect("echo");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let call_future = std::mem::size_of_val(&c.call("slow", vec![3600.into()]));
        let before = snapshot();
        let live_before = LIVE.load(Ordering::SeqCst);
        let rss_before = zerorpc_testkit::rss_kib();
        PEAK.store(live_before, Ordering::SeqCst);
        let calls: Vec<_> = (0..n)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.call("slow", vec![3600.into()]).await })
            })
            .collect();
        // (the classes at the highest live heap seen while they open: what
        // a transient peak is made of)
        let mut highest = (LIVE.load(Ordering::SeqCst), snapshot());
        while server.active_calls() < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let live = LIVE.load(Ordering::SeqCst);
            if live > highest.0 {
                highest = (live, snapshot());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = snapshot();
        let rss_after = zerorpc_testkit::rss_kib();
        let per = |x: isize| x as f64 / n as f64;
        let (mut count, mut bytes) = (0, 0);
        let mut rows = Vec::new();
        for (i, ((c0, b0), (c1, b1))) in before.iter().zip(&after).enumerate() {
            let (dc, db) = (c1 - c0, b1 - b0);
            count += dc;
            bytes += db;
            if db.unsigned_abs() as f64 >= n as f64 * 8.0 {
                let size = if i == CLASSES - 1 {
                    "4096+".to_string()
                } else {
                    format!("{}-{}", i * 16, i * 16 + 15)
                };
                rows.push(format!(
                    "| {size} | {:.2} | {:.0} |",
                    per(dc),
                    per(db)
                ));
            }
        }
        println!(
            "heap per idle open call ({n} open; client and server; the caller's spawned task included): {:.0} bytes in {:.2} allocations",
            per(bytes),
            per(count)
        );
        println!("(a `Client::call` future is {call_future} bytes)");
        println!(
            "RSS growth with the system allocator: {:.0} bytes per call",
            per((rss_after.saturating_sub(rss_before) * 1024) as isize)
        );
        println!(
            "peak while the calls were opened: {:.0} bytes per call above the start",
            per(PEAK.load(Ordering::SeqCst) - live_before)
        );
        println!("\n| size class (bytes) | allocations per call | bytes per call |\n|---|---:|---:|");
        for r in rows {
            println!("{r}");
        }
        println!(
            "\nat the highest live heap seen while opening ({:.0} bytes per call above the start), by class, above the final:\n| size class (bytes) | allocations per call | bytes per call |\n|---|---:|---:|",
            per(highest.0 - live_before)
        );
        for (i, ((c0, b0), (c1, b1))) in after.iter().zip(&highest.1).enumerate() {
            let (dc, db) = (c1 - c0, b1 - b0);
            if db.unsigned_abs() as f64 >= n as f64 * 8.0 {
                println!("| {}-{} | {:.2} | {:.0} |", i * 16, i * 16 + 15, per(dc), per(db));
            }
        }
        for t in calls {
            t.abort();
        }
    });
    // The open calls would sleep for an hour: leave now.
    std::process::exit(0);
}
