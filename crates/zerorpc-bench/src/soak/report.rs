//! The soak's figures: markdown, CSV of the samples, and the plot.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{is_hostile, load::RATES, server, Run, Sample};

/// (name, a sample's value, unit)
type Figure = (&'static str, fn(&Sample) -> f64, &'static str);

/// Least-squares slope of `y` against `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den > 0.0 {
        num / den
    } else {
        f64::NAN
    }
}

/// Today as `YYYY-MM-DD` (UTC; Howard Hinnant's civil_from_days).
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Minutes treated as warm-up: 3, or half of a shorter run.
/// Warm-up: 3 minutes, or until the bus log has first been pruned (its
/// retention and the daemon's one-minute pruning tick), at most half the
/// run.
fn warm_up(run: &Run) -> f64 {
    let fill = run.bus_retention_min.map_or(0.0, |r| r + 1.0);
    (run.minutes / 2.0).min(fill.max(3.0))
}

/// Writes `soak-<date>.md`, `.csv` and `.svg` under `dir`.
pub(super) fn write(run: &Run, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let stem = dir.join(format!("soak-{}", today()));
    let (md, csv, svg) = (
        stem.with_extension("md"),
        stem.with_extension("csv"),
        stem.with_extension("svg"),
    );
    let mut c = String::from("t_s,rss_kib,fds,tasks,server_cpu_pct,load_cpu_pct,calls,p50_us,p99_us,max_us,errors,hostile_conns,trees_acked,trees_failed,bus_log_kib\n");
    for s in &run.samples {
        let _ = writeln!(
            c,
            "{:.1},{},{},{},{:.1},{:.1},{},{},{},{},{},{},{},{},{}",
            s.t_min * 60.0,
            s.rss_kib,
            s.fds,
            s.tasks,
            s.server_cpu,
            s.load_cpu,
            s.calls,
            s.p50_us,
            s.p99_us,
            s.max_us,
            s.errors,
            s.hostile,
            s.trees_acked,
            s.trees_failed,
            s.bus_log_kib
        );
    }
    std::fs::write(&csv, c)?;
    std::fs::write(&md, markdown(run, &svg))?;
    plot(run, &svg).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(vec![md, svg, csv])
}

fn markdown(run: &Run, svg: &Path) -> String {
    let warm = warm_up(run);
    let post: Vec<&Sample> = run.samples.iter().filter(|s| s.t_min >= warm).collect();
    let fit =
        |f: fn(&Sample) -> f64| slope(&post.iter().map(|s| (s.t_min, f(s))).collect::<Vec<_>>());
    let mean =
        |f: fn(&Sample) -> f64| post.iter().map(|s| f(s)).sum::<f64>() / post.len().max(1) as f64;
    // The second half alone: whether what grew after warm-up levelled.
    let half = (run.minutes / 2.0).max(warm);
    let late: Vec<&Sample> = post.iter().copied().filter(|s| s.t_min >= half).collect();
    let fit_late =
        |f: fn(&Sample) -> f64| slope(&late.iter().map(|s| (s.t_min, f(s))).collect::<Vec<_>>());
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# Soak: {} min of mixed load against one server process ({})\n",
        run.minutes,
        today()
    );
    let retention = match run.bus_retention_min {
        Some(r) => format!("{r} min"),
        None => "7 days".into(),
    };
    let _ = writeln!(m, "`zerorpc-bench soak --minutes {} --bus-retention {}`. One `soak-server` process hosts the demo service, a hub with 2 workers, the HTTP gateway, a bus daemon (recent-message cache {} messages, {retention} of retention, pruned once a minute) and a topology; the load runs in the parent process. Samples every {} s. Plot: [{}]({}); samples: `.csv` beside it.\n", run.minutes, run.bus_retention_min.unwrap_or(0.0), server::BUS_RECENT, server::EVERY.as_secs(), svg.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(), svg.file_name().map(|f| f.to_string_lossy()).unwrap_or_default());
    if let Some(e) = &run.ended_early {
        let _ = writeln!(m, "**The run ended early: {e}.**\n");
    }
    let _ = writeln!(m, "## Flat?\n\nSlopes are least-squares fits against time over the samples after a {warm} min warm-up ({} samples). \"Flat\" here: the fitted growth over an hour is under 5% of the mean (judged on 10 minutes or more after warm-up).\n", post.len());
    let _ = writeln!(m, "| figure | mean after warm-up | slope per minute | over an hour | slope per minute, minutes {half:.0}–{} | reads as |\n|---|---:|---:|---:|---:|---|", run.minutes);
    let rows: [Figure; 4] = [
        ("server RSS (KiB)", |s| s.rss_kib as f64, "KiB"),
        ("server open fds", |s| s.fds as f64, "fds"),
        ("server tokio tasks", |s| s.tasks as f64, "tasks"),
        (
            "bus log file on disk (KiB)",
            |s| s.bus_log_kib as f64,
            "KiB",
        ),
    ];
    for (name, f, unit) in rows {
        let (mu, k, k_late) = (mean(f), fit(f), fit_late(f));
        let flat = |k: f64| (k * 60.0).abs() < 0.05 * mu;
        let verdict = if !k.is_finite() {
            "–"
        } else if run.minutes - warm < 10.0 {
            "too short to tell"
        } else if flat(k) {
            "flat"
        } else if run.minutes - half >= 10.0 && flat(k_late) {
            "levelled (flat in the second half)"
        } else if k > 0.0 {
            "growing"
        } else {
            "shrinking"
        };
        let _ = writeln!(
            m,
            "| {name} | {mu:.1} | {k:+.2} {unit} | {:+.1} {unit} | {k_late:+.2} {unit} | {verdict} |",
            k * 60.0
        );
    }
    let _ = writeln!(m, "\nThe bus log is shown beside RSS because the daemon's store (redb) caches its pages (8 MiB since 2026-12-04: redb did not keep a 32 MiB cache to its size once pruning reused pages, see `crates/zerorpc-bus/examples/store_churn.rs`); with {retention} of retention the log stops growing once pruning keeps pace with publishing.");
    let p99 = |i: usize| {
        run.per_minute
            .get(i)
            .filter(|(h, _)| !h.is_empty())
            .map(|(h, _)| h.value_at_quantile(0.99) as f64)
    };
    let first = warm.floor() as usize;
    let last = run.per_minute.len().saturating_sub(1);
    let show = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0} µs"));
    let _ = writeln!(m, "\nQuick-call (`echo`) p99: minute 1 {}, minute {} (first after warm-up) {}, minute {} (last) {}.\n", show(p99(0)), first + 1, show(p99(first)), last + 1, show(p99(last)));
    let _ = writeln!(m, "CPU, mean after warm-up (% of one core; the machine has {} cores): server {:.0}%, load generator {:.0}%.\n", std::thread::available_parallelism().map_or(0, |n| n.get()), mean(|s| s.server_cpu), mean(|s| s.load_cpu));

    let _ = writeln!(m, "## Per minute\n\n| minute | RSS MiB (end) | bus log MiB (end) | fds (min–max) | tasks (min–max) | server CPU % | echo calls | p50 µs | p99 µs | max µs | errors | hostile conns |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (h, errors)) in run.per_minute.iter().enumerate() {
        let ss: Vec<&Sample> = run.samples.iter().filter(|s| s.minute == i).collect();
        let (Some(end), false) = (ss.last(), h.is_empty()) else {
            continue;
        };
        let range = |f: fn(&Sample) -> u64| {
            let (lo, hi) = ss
                .iter()
                .fold((u64::MAX, 0), |(lo, hi), s| (lo.min(f(s)), hi.max(f(s))));
            format!("{lo}–{hi}")
        };
        let cpu = ss
            .iter()
            .map(|s| s.server_cpu)
            .filter(|c| c.is_finite())
            .sum::<f64>()
            / ss.len() as f64;
        let _ = writeln!(
            m,
            "| {} | {:.1} | {:.1} | {} | {} | {cpu:.0} | {} | {} | {} | {} | {errors} | {} |",
            i + 1,
            end.rss_kib as f64 / 1024.0,
            end.bus_log_kib as f64 / 1024.0,
            range(|s| s.fds),
            range(|s| s.tasks),
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max(),
            ss.iter().map(|s| s.hostile).sum::<u64>()
        );
    }

    let _ = writeln!(m, "\n## The load\n\n| kind | rate |\n|---|---|");
    for (k, r) in RATES {
        let _ = writeln!(m, "| {k} | {r} |");
    }
    let _ = writeln!(m, "\n### Well-behaved traffic\n\nAn abandoned call or stream counts as ok when it was abandoned as planned.\n\n| kind | ok | errors | first error |\n|---|---:|---:|---|");
    for (k, v) in run.kinds.iter().filter(|(k, _)| !is_hostile(k)) {
        let _ = writeln!(
            m,
            "| {k} | {} | {} | {} |",
            v.ok,
            v.err,
            v.first_err.as_deref().unwrap_or("").replace('|', "\\|")
        );
    }
    let publ = run.kinds.get("bus publish").map_or(0, |k| k.ok);
    let got = run.kinds.get("bus delivered").map_or(0, |k| k.ok);
    let _ = writeln!(m, "\nBus: {publ} publishes confirmed, {got} delivered to the subscriber (a few in flight at the end are not a loss).");
    if let Some(s) = run.samples.last() {
        let _ = writeln!(
            m,
            "Topology: {} trees acked ({:.0}/s), {} failed or timed out.",
            s.trees_acked,
            s.trees_acked as f64 / (s.t_min * 60.0).max(1.0),
            s.trees_failed
        );
    }
    let _ = writeln!(m, "\n### Hostile traffic (expected to fail; nothing here is an error of the server)\n\n| kind | connections | closed by the server | still open when we hung up | we hung up at once | could not connect / handshake | first failure |\n|---|---:|---:|---:|---:|---:|---|");
    for (k, v) in run.kinds.iter().filter(|(k, _)| is_hostile(k)) {
        let _ = writeln!(
            m,
            "| {k} | {} | {} | {} | {} | {} | {} |",
            v.closed + v.open + v.gone + v.err,
            v.closed,
            v.open,
            v.gone,
            v.err,
            v.first_err.as_deref().unwrap_or("")
        );
    }
    m
}

/// RSS, fds, tasks and latency against time, in stacked panels.
fn plot(run: &Run, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    type Series = (&'static str, RGBColor, fn(&Sample) -> f64); // (name, colour, value)
    let panels: [(&str, &[Series]); 4] = [
        (
            "server RSS (MiB), blue; the bus log file on disk (MiB), grey",
            &[
                ("RSS", BLUE, |s| s.rss_kib as f64 / 1024.0),
                ("bus log", RGBColor(150, 150, 150), |s| {
                    s.bus_log_kib as f64 / 1024.0
                }),
            ],
        ),
        (
            "server open fds",
            &[("fds", RGBColor(0, 130, 0), |s| s.fds as f64)],
        ),
        (
            "server tokio tasks (alive)",
            &[("tasks", RGBColor(150, 0, 150), |s| s.tasks as f64)],
        ),
        (
            "echo latency per window (µs): p50 black, p99 red",
            &[("p50", BLACK, |s| s.p50_us), ("p99", RED, |s| s.p99_us)],
        ),
    ];
    let root = SVGBackend::new(path, (960, 4 * 220 + 40)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.titled(
        &format!(
            "zerorpc soak: {} min of mixed load, one server process (dashed: end of warm-up)",
            run.minutes
        ),
        ("sans-serif", 18),
    )?;
    let x_max = run.minutes.max(run.samples.last().map_or(0.0, |s| s.t_min));
    let warm = warm_up(run);
    for (area, (name, series)) in body.split_evenly((4, 1)).iter().zip(panels) {
        let y_max = run
            .samples
            .iter()
            .flat_map(|s| series.iter().map(move |(_, _, f)| f(s)))
            .filter(|v| v.is_finite())
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 15))
            .margin(8)
            .margin_right(24)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .x_labels(12)
            .y_labels(5)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        chart.draw_series(DashedLineSeries::new(
            [(warm, 0.0), (warm, y_max)],
            4,
            4,
            BLACK.mix(0.5).stroke_width(1),
        ))?;
        for &(_, color, f) in series {
            let pts = run
                .samples
                .iter()
                .map(|s| (s.t_min, f(s)))
                .filter(|p| p.1.is_finite());
            chart.draw_series(LineSeries::new(pts, color.stroke_width(2)))?;
        }
    }
    root.present()?;
    Ok(())
}
