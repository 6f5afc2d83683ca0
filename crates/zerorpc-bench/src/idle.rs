//! Idle-channel memory: RSS growth per open call, measured in this process
//! or in a fresh child process per system.

use std::time::{Duration, Instant};

use zerorpc::{Client, Server};

use crate::{common, demo_server};

/// Opens `n` calls that stay open (the server sleeps), and measures this
/// process's RSS growth per open channel: client and server side together,
/// since both live in this process.
async fn idle_channels(ep: &str, server: &Server, n: usize, settle: Duration) -> f64 {
    let c = Client::connect(ep).await.expect("connect");
    c.call("echo", vec![1.into()]).await.expect("warm up");
    let before = common::rss_kib();
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.call("slow", vec![3600.into()]).await })
        })
        .collect();
    while server.active_calls() < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(settle).await;
    let after = common::rss_kib();
    for t in calls {
        t.abort();
    }
    (after.saturating_sub(before) * 1024) as f64 / n as f64
}

/// Opens `n` calls that stay open, via `start_call`, once `sleeping()`
/// reports them all in the server; returns RSS bytes per open call.
pub(crate) async fn idle_common(
    n: usize,
    start_call: impl Fn() -> tokio::task::JoinHandle<()>,
    sleeping: impl Fn() -> usize,
) -> f64 {
    let before = common::rss_kib();
    let calls: Vec<_> = (0..n).map(|_| start_call()).collect();
    // A system may cap concurrent calls below n: measure what it holds open
    // after a while rather than wait forever.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sleeping() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = sleeping();
    let after = common::rss_kib();
    drop(calls);
    if open < n {
        // Queued calls cost memory without being open channels: no figure.
        eprintln!("only {open} of {n} calls reached the server within 30 s: no per-channel figure");
        return f64::NAN;
    }
    (after.saturating_sub(before) * 1024) as f64 / n as f64
}

pub(crate) async fn idle_ours(n: usize, settle: Duration) -> f64 {
    let (server, ep) = demo_server(Default::default()).await;
    idle_channels(&ep, &server, n, settle).await
}

/// Measures idle-channel memory of one system in a fresh child process
/// (a heap that earlier workloads grew would hide the growth).
///
/// The child's allocator (this binary's: mimalloc) commits only what it
/// touches: no transparent huge pages, no eager commit of its arenas.
/// With its defaults RSS also counts whole 2 MiB pages and arenas it
/// committed ahead, which is its policy, not what a channel holds (see
/// `bench-results/2026-12-06-idle-allocator.md`). Every system is
/// measured so.
pub(crate) fn idle_in_child(system: &str, n: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("timeout")
        .arg("120")
        .arg(exe)
        .args(["idle", system, &n.to_string()])
        .env("MIMALLOC_ALLOW_THP", "0")
        .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("IDLE "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
}
