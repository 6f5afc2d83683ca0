//! `zerorpc-bench load SYSTEM IN_FLIGHT SECONDS`: echo calls at a fixed
//! number in flight for a while, one system (`ours` or `tarpc`), client
//! and server in this process on the two-worker runtime. Prints calls/s
//! and the process's CPU time per call (user and system, from
//! `/proc/self/stat`): CPU per call is steadier than calls/s on a shared
//! machine, and it is what a profiler (`perf record`) of this mode shows.

use crate::*;

/// The process's user and system CPU time so far, in seconds.
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13
    // after the name.
    (get(11), get(12))
}

async fn run<C: Clone + Send + 'static>(k: usize, secs: f64, client: C, call: CallFn<C>) {
    // Warm up: connections open, buffers grown.
    for _ in 0..1000 {
        call(client.clone(), false).await;
    }
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let (u0, s0) = cpu_times();
    let t = Instant::now();
    let tasks: Vec<_> = (0..k)
        .map(|_| {
            let c = client.clone();
            let done = done.clone();
            tokio::spawn(async move {
                while Instant::now() < stop {
                    call(c.clone(), false).await;
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let el = t.elapsed().as_secs_f64();
    let (u1, s1) = cpu_times();
    let n = done.load(std::sync::atomic::Ordering::Relaxed) as f64;
    println!(
        "{:.0} calls/s, CPU per call {:.2} µs user + {:.2} µs system",
        n / el,
        (u1 - u0) * 1e6 / n,
        (s1 - s0) * 1e6 / n
    );
}

pub(crate) fn main(args: &[String]) {
    let system = args.first().map(String::as_str).unwrap_or("ours");
    let k: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(16);
    let secs: f64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(3.0);
    let rt = runtime();
    rt.block_on(async move {
        match system {
            "ours" => {
                let (_server, ep) = demo_server(Default::default()).await;
                let c = Client::connect(&ep).await.expect("connect");
                run(k, secs, c, echo_call).await;
            }
            "tarpc" => {
                let (client, server) = tarpc_pair(None).await;
                run(k, secs, client, |c, _| {
                    Box::pin(async move {
                        c.echo(tarpc::context::current(), 1).await.expect("call");
                    })
                })
                .await;
                server.abort();
            }
            other => eprintln!("load: ours or tarpc, not {other}"),
        }
    });
}
