//! `zerorpc-bench load SYSTEM IN_FLIGHT SECONDS [--sides] [--big]`: echo calls at a fixed
//! number in flight for a while, one system (`ours`, `tarpc`, `hub`:
//! ours through a hub with two workers, or `tcp`: the plain TCP echo of
//! `compare`, a connection per call in flight), client and server in this
//! process on the two-worker runtime. Prints calls/s
//! and the process's CPU time per call (user and system, from
//! `/proc/self/stat`): CPU per call is steadier than calls/s on a shared
//! machine, and it is what a profiler (`perf record`) of this mode shows.
//! `--big`: each call carries `compare`'s 64 KiB payload.

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

async fn run<C: Clone + Send + 'static>(
    k: usize,
    secs: f64,
    big: bool,
    client: C,
    call: CallFn<C>,
) {
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
                    call(c.clone(), big).await;
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
    // `--sides`: the server on a one-thread runtime of its own thread, the
    // client on another (as two processes would be, one core each),
    // instead of both on one two-worker runtime.
    let sides = args.iter().any(|a| a == "--sides");
    let big = args.iter().any(|a| a == "--big");
    // `--record store|discard`: client and server record every call (as
    // in `zerorpc-bench tracing`), into an embedded store or a sink that
    // drops the records.
    let record = args
        .iter()
        .position(|a| a == "--record")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let rt = if sides {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    } else {
        runtime()
    };
    let recorder = rt.block_on(async {
        match record {
            None => None,
            Some("store") => Some(zerorpc::record::Recorder::new(
                zerorpc::record::EmbeddedStore::new(Duration::from_secs(60)),
                100_000,
            )),
            Some("discard") => Some(zerorpc::record::Recorder::new(
                crate::scenarios::tracing::Discard,
                100_000,
            )),
            Some(other) => {
                eprintln!("load: --record store or discard, not {other}");
                std::process::exit(2);
            }
        }
    });
    match system {
        "ours" => {
            let opts = zerorpc::ServerOptions {
                recorder: recorder.clone(),
                ..Default::default()
            };
            let ep = if sides {
                on_own_thread(|| async {
                    let (server, ep) = demo_server(opts).await;
                    (ep, Box::new(server) as Box<dyn std::any::Any>)
                })
            } else {
                rt.block_on(async { demo_server(opts).await.1 })
            };
            rt.block_on(async move {
                let opts = zerorpc::ClientOptions {
                    recorder,
                    ..Default::default()
                };
                let c = Client::connect_with(&[&ep], opts).await.expect("connect");
                run(k, secs, big, c, echo_call).await;
            });
        }
        "hub" => rt.block_on(async move {
            // (its workers are the bench's plain demo servers, on this
            // runtime: neither option would reach them)
            if sides || record.is_some() {
                eprintln!("load hub: --sides and --record are for ours and tarpc");
                std::process::exit(2);
            }
            let (_hub, input, _workers) = start_hub(2).await;
            let c = Client::connect(&input).await.expect("connect");
            run(k, secs, big, c, echo_call).await;
        }),
        "tarpc" => rt.block_on(async move {
            let client = if sides {
                let addr = on_own_thread(|| async {
                    let (addr, server) = tarpc_server(None).await;
                    (addr, Box::new(server) as Box<dyn std::any::Any>)
                });
                tarpc_client(addr, None).await
            } else {
                tarpc_pair(None).await.0
            };
            run(k, secs, big, client, tarpc_call).await;
        }),
        "tcp" => rt.block_on(async move {
            let (addr, _server) = tcp_echo_server().await;
            run(k, secs, big, TcpPool::new(addr), tcp_call).await;
        }),
        other => eprintln!("load: ours, tarpc, hub or tcp, not {other}"),
    }
}

/// Starts a server on a one-thread runtime in a thread of its own (kept
/// until the process exits) and returns where it listens.
fn on_own_thread<T, F, Fut>(start: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = (T, Box<dyn std::any::Any>)>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (addr, _keep) = start().await;
            let _ = tx.send(addr);
            std::future::pending::<()>().await
        })
    });
    rx.recv().expect("server thread")
}
