//! `zerorpc-bench tracing`: what a trace context and recording cost a call
//! (each mode in a child process, alternated).

use crate::*;

/// One tracing mode in this (fresh) process: 0 off, 1 recording into an
/// embedded store, 2 recording into a sink that discards (the cost of
/// recording alone), 3 every call in a trace but nothing recorded (the
/// cost of carrying the context). Client and server both record.
pub(crate) async fn tracing_child(mode: u8, quick: bool) -> Row {
    let (seq, conc) = if quick {
        (2_000, 20_000)
    } else {
        (10_000, 100_000)
    };
    let recorder = match mode {
        1 => Some(zerorpc::record::Recorder::new(
            zerorpc::record::EmbeddedStore::new(Duration::from_secs(60)),
            100_000,
        )),
        2 => Some(zerorpc::record::Recorder::new(Discard, 100_000)),
        _ => None,
    };
    let (_server, ep) = demo_server(zerorpc::ServerOptions {
        recorder: recorder.clone(),
        ..Default::default()
    })
    .await;
    // (a trace context on every root call is the default: off only here)
    let opts = zerorpc::ClientOptions {
        recorder: recorder.clone(),
        trace_roots: mode != 0,
        ..Default::default()
    };
    let call: CallFn<Client> = echo_call;
    let row = tokio::spawn(async move {
        let c = Client::connect_with(&[&ep], opts).await.expect("connect");
        call_workloads("", seq, conc, c, call).await
    })
    .await
    .expect("bench task");
    if let Some(r) = &recorder {
        eprintln!("  records written {}, dropped {}", r.written(), r.dropped());
    }
    row
}

/// Tracing off vs on, each run in a fresh child process, alternating
/// (off, on with an embedded store, on with a discarding sink) three
/// times; prints every run and the median ratios.
pub(crate) fn tracing_bench(quick: bool) {
    let names = [
        "tracing off",
        "on, embedded store",
        "on, discarding sink",
        "context on every call (default), no recording",
    ];
    let mut runs: Vec<(usize, Row)> = Vec::new();
    for round in 1..=3 {
        for (mode, name) in names.iter().enumerate() {
            eprintln!("[round {round}] {name}");
            let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
            cmd.args(["tracing-child", &mode.to_string()]);
            if quick {
                cmd.arg("--quick");
            }
            let out = cmd.output().expect("run tracing child");
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix("ROW "))
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            else {
                eprintln!(
                    "tracing child failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::process::exit(1);
            };
            let f = |k: &str| v[k].as_f64();
            runs.push((
                mode,
                Row {
                    name: format!("{name} ({round})"),
                    p50_us: f("p50"),
                    p99_us: f("p99"),
                    rate16: f("r16"),
                    rate256: f("r256"),
                    rate64k: f("r64k"),
                    ..Row::default()
                },
            ));
        }
    }
    let median = print_runs(&runs);
    for (mode, label) in [
        (1, "embedded store"),
        (2, "discarding sink"),
        (3, "context on every call, the default"),
    ] {
        println!(
            "median calls/s with tracing on ({label}) vs off: {:.2}x at 16 in flight, {:.2}x at 256; p50 {:.0} vs {:.0} µs (target >= 0.9x)",
            median(mode, |r| r.rate16) / median(0, |r| r.rate16),
            median(mode, |r| r.rate256) / median(0, |r| r.rate256),
            median(mode, |r| r.p50_us),
            median(0, |r| r.p50_us),
        );
    }
}

/// Prints runs as a table (ratios against the first run) and returns the
/// median of `f` over the runs of `mode`.
pub(crate) fn print_runs<M: PartialEq + Copy>(
    runs: &[(M, Row)],
) -> impl Fn(M, fn(&Row) -> Option<f64>) -> f64 + '_ {
    let base = runs[0].1.clone();
    println!();
    println!("| run | p50 µs | p99 µs | calls/s @16 | calls/s @256 | 64 KiB calls/s @16 |\n|---|---:|---:|---:|---:|---:|");
    for (_, r) in runs {
        println!("| {} | {} |", r.name, r.call_cells(&base));
    }
    move |mode: M, f: fn(&Row) -> Option<f64>| {
        let mut v: Vec<f64> = runs
            .iter()
            .filter(|(m, _)| *m == mode)
            .filter_map(|(_, r)| f(r))
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// A sink that drops every batch (measures the cost of recording alone).
pub(crate) struct Discard;

impl zerorpc::record::TraceSink for Discard {
    fn write(
        &self,
        _: Vec<zerorpc::record::Record>,
    ) -> futures::future::BoxFuture<'static, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
