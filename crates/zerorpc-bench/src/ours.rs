//! `zerorpc-bench ours [--quick] [--rounds N] [--with tcp|tarpc|libzmq]`:
//! our row of `compare` alone (full sizes; `--quick`: compare's quick
//! ones), `--rounds N` times, for A/B runs of two builds; `--with`: that
//! contender's row after each of ours, so their ratio can be had without
//! the Python rows.

use crate::*;

pub(crate) fn main(args: &[String]) {
    let quick = args.iter().any(|a| a == "--quick");
    let with = args
        .iter()
        .position(|a| a == "--with")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let Size {
        seq, conc, stream, ..
    } = Size::of(quick);
    let rt = runtime();
    rt.block_on(async {
        let (_server, ep) = demo_server(Default::default()).await;
        println!("| p50 µs | p99 µs | calls/s @16 | calls/s @256 | 64 KiB calls/s @16 | stream items/s |");
        for _ in 0..rounds {
            let ep = ep.clone();
            let row = tokio::spawn(async move {
                rust_client("ours", &ep, seq, conc, stream).await
            })
            .await
            .expect("task");
            println!("{}", row.brief());
            let other = match with.as_deref() {
                None => continue,
                Some("tcp") => tokio::spawn(tcp_echo(seq, conc)).await.expect("task"),
                Some("tarpc") => tokio::spawn(tarpc_bench(seq, conc)).await.expect("task"),
                Some("libzmq") => tokio::task::spawn_blocking(move || {
                    zmq_client(&zmq::Context::new(), seq, conc)
                })
                .await
                .expect("task"),
                Some(other) => {
                    eprintln!("ours --with: tcp, tarpc or libzmq, not {other}");
                    std::process::exit(2);
                }
            };
            println!("{} ({})", other.brief(), other.name);
        }
    });
}
