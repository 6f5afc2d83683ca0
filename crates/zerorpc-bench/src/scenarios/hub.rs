//! `zerorpc-bench hub`: calls through a hub with 2 and 4 workers against
//! direct calls to one server.

use crate::*;

/// Calls/s and latency through a hub with `workers` of our servers behind
/// it, against the same client calling one server directly, in this
/// process; prints a markdown table with the ratios.
pub(crate) async fn hub_bench(quick: bool) {
    let (seq, conc) = if quick {
        (2_000, 20_000)
    } else {
        (10_000, 100_000)
    };
    // (on a worker thread, as in `compare`: the block_on thread is not one)
    let row = |name: &'static str, ep: String| async move {
        tokio::spawn(async move { rust_client(name, &ep, seq, conc, 1).await })
            .await
            .expect("bench task")
    };
    let (_direct_server, direct_ep) = demo_server(Default::default()).await;
    eprintln!("direct: one server");
    let direct = row("direct (one server)", direct_ep).await;
    let mut rows = vec![direct];
    for workers in [2usize, 4] {
        let (hub, input, _servers) = start_hub(workers).await;
        eprintln!("through the hub: {workers} workers");
        let name = if workers == 2 {
            "through the hub, 2 workers"
        } else {
            "through the hub, 4 workers"
        };
        rows.push(row(name, input).await);
        hub.shutdown();
    }
    let base = &rows[0];
    println!("| path | p50 µs | p99 µs | calls/s @16 | calls/s @256 | 64 KiB calls/s @16 |\n|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!("| {} | {} |", r.name, r.call_cells(base));
    }
    let ratio = |r: &Row| {
        r.rate16
            .zip(base.rate16)
            .map(|(a, b)| a / b)
            .unwrap_or(f64::NAN)
    };
    println!(
        "\ncalls/s through the hub vs direct at 16 in flight: {:.2}x with 2 workers, {:.2}x with 4 (target >= 0.7x)",
        ratio(&rows[1]),
        ratio(&rows[2])
    );
}
