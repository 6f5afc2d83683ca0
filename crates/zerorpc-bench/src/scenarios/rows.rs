//! `zerorpc-bench rows [ROUNDS] [--quick]`: issue 18's call rows, each a
//! ratio of ours to its baseline measured in the same round.
//!
//! `compare` runs every system once, one after the other: ours first,
//! tarpc about two minutes later. On a shared machine whose speed drifts
//! by a third within minutes, a ratio of two such runs says as much about
//! the drift as about the systems. Here the four Rust-side systems (ours,
//! tarpc, raw libzmq, plain TCP) run in turn, round after round, each
//! round starting with a different one, and every ratio is taken within a
//! round; the report gives each round's ratios and their median and range.
//! Same workloads and sizes as `compare`'s.

use crate::*;

/// One round's figures for each system.
struct Round {
    ours: Row,
    tarpc: Row,
    libzmq: Row,
    tcp: Row,
}

/// A row of the report: what is asked, and each round's value.
struct Ratio {
    what: &'static str,
    asked: &'static str,
    of: fn(&Round) -> Option<f64>,
}

const RATIOS: [Ratio; 6] = [
    Ratio {
        what: "calls/s @16 vs tarpc",
        asked: "≥ 1.0×",
        of: |r| Some(r.ours.rate16? / r.tarpc.rate16?),
    },
    Ratio {
        what: "calls/s @256 vs tarpc",
        asked: "≥ 1.0×",
        of: |r| Some(r.ours.rate256? / r.tarpc.rate256?),
    },
    Ratio {
        what: "64 KiB calls/s vs raw libzmq",
        asked: "≥ 1.0×",
        of: |r| Some(r.ours.rate64k? / r.libzmq.rate64k?),
    },
    Ratio {
        what: "64 KiB calls/s vs plain TCP",
        asked: "≥ 0.5×",
        of: |r| Some(r.ours.rate64k? / r.tcp.rate64k?),
    },
    Ratio {
        what: "sequential p50 vs plain TCP",
        asked: "≤ 1.5×",
        of: |r| Some(r.ours.p50_us? / r.tcp.p50_us?),
    },
    Ratio {
        what: "stream items/s (millions)",
        asked: "≥ 1.0",
        of: |r| Some(r.ours.items? / 1e6),
    },
];

/// The median and the range of `v` (NaN when empty).
fn median_range(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(&lo), Some(&mid), Some(&hi)) => {
            // (an even count: the mean of the middle two)
            let mid = if v.len().is_multiple_of(2) {
                (v[v.len() / 2 - 1] + mid) / 2.0
            } else {
                mid
            };
            (mid, lo, hi)
        }
        _ => (f64::NAN, f64::NAN, f64::NAN),
    }
}

/// Runs `rounds` rounds and prints (and writes to
/// `bench-results/latest-rows.md`) the report.
pub(crate) fn rows_bench(rounds: usize, quick: bool) {
    let s = Size::of(quick);
    let rt = runtime();
    let ctx = zmq::Context::new();
    let (_server, ep) = rt.block_on(demo_server(Default::default()));
    let started = Instant::now();
    let mut done = Vec::new();
    for round in 0..rounds {
        let (mut ours, mut tarpc, mut libzmq, mut tcp) = (None, None, None, None);
        for k in 0..4 {
            let which = (round + k) % 4;
            eprintln!(
                "[round {}/{rounds}, {:>5.1}s] {}",
                round + 1,
                started.elapsed().as_secs_f64(),
                ["ours", "tarpc", "raw libzmq", "plain TCP"][which]
            );
            match which {
                0 => {
                    let ep = ep.clone();
                    ours = Some(rt.block_on(async move {
                        tokio::spawn(async move {
                            rust_client("ours", &ep, s.seq, s.conc, s.stream).await
                        })
                        .await
                        .expect("task")
                    }));
                }
                1 => {
                    tarpc = Some(rt.block_on(async move {
                        tokio::spawn(tarpc_bench(s.seq, s.conc))
                            .await
                            .expect("task")
                    }))
                }
                2 => libzmq = Some(zmq_client(&ctx, s.seq, s.conc)),
                _ => {
                    tcp = Some(rt.block_on(async move {
                        tokio::spawn(tcp_echo(s.seq, s.conc)).await.expect("task")
                    }))
                }
            }
        }
        if let (Some(ours), Some(tarpc), Some(libzmq), Some(tcp)) = (ours, tarpc, libzmq, tcp) {
            done.push(Round {
                ours,
                tarpc,
                libzmq,
                tcp,
            });
        }
    }
    let md = report(&done, quick, started.elapsed());
    println!("{md}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-results");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("latest-rows.md"), &md);
        eprintln!("wrote {}/latest-rows.md", dir.display());
    }
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn report(rounds: &[Round], quick: bool, took: Duration) -> String {
    let mut md = format!(
        "## zerorpc-bench rows ({} rounds, {}, {:.0} s)\n\nEach round runs ours, tarpc, raw libzmq and plain TCP in turn (starting with a different one each round); each ratio is ours to its baseline within one round.\n\n| row | asked |",
        rounds.len(),
        if quick { "quick" } else { "full" },
        took.as_secs_f64()
    );
    for i in 1..=rounds.len() {
        md.push_str(&format!(" round {i} |"));
    }
    md.push_str(" median | range |\n|---|---|");
    md.push_str(&"---:|".repeat(rounds.len() + 2));
    md.push('\n');
    for ratio in &RATIOS {
        let values: Vec<f64> = rounds.iter().filter_map(ratio.of).collect();
        let (mid, lo, hi) = median_range(values.clone());
        md.push_str(&format!("| {} | {} |", ratio.what, ratio.asked));
        for r in rounds {
            md.push_str(&match (ratio.of)(r) {
                Some(v) => format!(" {v:.2} |"),
                None => " – |".into(),
            });
        }
        md.push_str(&format!(" **{mid:.2}** | {lo:.2}–{hi:.2} |\n"));
    }
    md.push_str("\nThe figures behind them (calls/s; p50 in µs):\n\n| round | system | p50 | @16 | @256 | 64 KiB @16 | items/s |\n|---|---|---:|---:|---:|---:|---:|\n");
    let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
    for (i, r) in rounds.iter().enumerate() {
        for (name, row) in [
            ("ours", &r.ours),
            ("tarpc", &r.tarpc),
            ("raw libzmq", &r.libzmq),
            ("plain TCP", &r.tcp),
        ] {
            md.push_str(&format!(
                "| {} | {name} | {:.1} | {} | {} | {} | {} |\n",
                i + 1,
                row.p50_us.unwrap_or(f64::NAN),
                f(row.rate16),
                f(row.rate256),
                f(row.rate64k),
                f(row.items)
            ));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::median_range;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median_range(vec![3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(median_range(vec![4.0, 1.0, 3.0, 2.0]), (2.5, 1.0, 4.0));
        let (mid, lo, hi) = median_range(Vec::new());
        assert!(mid.is_nan() && lo.is_nan() && hi.is_nan());
    }
}
