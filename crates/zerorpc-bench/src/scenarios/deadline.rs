//! `zerorpc-bench deadline`: what a deadline costs a call.

use crate::*;

/// Calls with a budget (`deadline_ms` in every request, the server running
/// the handler under it: the default, from the 30 s timeout) or without
/// (`with_timeout(None)`: no header, no deadline).
pub(crate) async fn deadline_row(on: bool, quick: bool) -> Row {
    let (seq, conc) = if quick {
        (2_000, 20_000)
    } else {
        (10_000, 100_000)
    };
    let (server, ep) = demo_server(zerorpc::ServerOptions::default()).await;
    let name = if on { "deadline" } else { "no deadline" };
    let row = tokio::spawn(async move {
        let c = Client::connect(&ep).await.expect("connect");
        let c = if on { c } else { c.with_timeout(None) };
        call_workloads(name, seq, conc, c, echo_call).await
    })
    .await
    .expect("bench task");
    server.shutdown();
    row
}

/// `row(true)` against `row(false)`, alternating three times; prints every
/// run and the median ratios.
pub(crate) async fn alternate<F, Fut>(on: &str, off: &str, row: F)
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Row>,
{
    let mut runs: Vec<(bool, Row)> = Vec::new();
    for round in 1..=3 {
        for mode in [false, true] {
            eprintln!("[round {round}] {}", if mode { on } else { off });
            let mut r = row(mode).await;
            r.name = format!("{} ({round})", r.name);
            runs.push((mode, r));
        }
    }
    let median = print_runs(&runs);
    println!(
        "median calls/s with {on} vs {off}: {:.2}x at 16 in flight, {:.2}x at 256, {:.2}x for 64 KiB calls; p50 {:.0} vs {:.0} µs",
        median(true, |r| r.rate16) / median(false, |r| r.rate16),
        median(true, |r| r.rate256) / median(false, |r| r.rate256),
        median(true, |r| r.rate64k) / median(false, |r| r.rate64k),
        median(true, |r| r.p50_us),
        median(false, |r| r.p50_us),
    );
}
