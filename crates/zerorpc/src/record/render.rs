//! Text renderings for `zerorpc trace`: a call tree, one line per record,
//! a "top" table.

use std::collections::HashMap;

use super::{MethodRow, Record, Side};

/// Renders a trace as an indented call tree: one line per record,
/// children under their parent span (client side, then the server side
/// it reached, then the calls that handler made).
pub fn render_tree(records: &[Record]) -> String {
    let mut children: HashMap<Option<&str>, Vec<&Record>> = HashMap::new();
    let spans: std::collections::HashSet<&str> =
        records.iter().map(|r| r.span_id.as_str()).collect();
    for r in records {
        // A parent not in this trace's records (a hop we have no record
        // of) hangs the span at the top.
        let parent = r.parent_id.as_deref().filter(|p| spans.contains(p));
        children.entry(parent).or_default().push(r);
    }
    let mut out = String::new();
    fn walk<'a>(
        out: &mut String,
        children: &HashMap<Option<&'a str>, Vec<&'a Record>>,
        key: Option<&'a str>,
        depth: usize,
    ) {
        let Some(list) = children.get(&key) else {
            return;
        };
        let mut list = list.clone();
        list.sort_by_key(|r| r.start_us);
        for r in list {
            let side = match r.side {
                Side::Client => "call",
                Side::Server => "serve",
            };
            out.push_str(&format!(
                "{}{side} {} {} {:.3} ms {}\n",
                "  ".repeat(depth),
                r.service,
                r.method,
                r.duration_us as f64 / 1000.0,
                r.outcome
            ));
            walk(out, children, Some(r.span_id.as_str()), depth + 1);
        }
    }
    walk(&mut out, &children, None, 0);
    out
}

/// One line for a live record: its end time (UTC), trace id, side,
/// service, method, duration and outcome.
pub fn render_line(r: &Record) -> String {
    let end = r.start_us.saturating_add(r.duration_us);
    let secs = end / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:03} {} {} {} {} {:.3} ms {}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        end / 1000 % 1000,
        r.trace_id,
        match r.side {
            Side::Client => "call ",
            Side::Server => "serve",
        },
        r.service,
        r.method,
        r.duration_us as f64 / 1000.0,
        r.outcome
    )
}

/// A `top`-style table of per-method statistics over `secs` seconds:
/// calls per second, the share that failed, p50 and p99, busiest first.
pub fn render_top(rows: &[MethodRow], secs: f64) -> String {
    let mut rows: Vec<&MethodRow> = rows.iter().filter(|r| r.stats.calls() > 0).collect();
    rows.sort_by(|a, b| {
        b.stats
            .calls()
            .cmp(&a.stats.calls())
            .then_with(|| (&a.service, &a.method, &a.side).cmp(&(&b.service, &b.method, &b.side)))
    });
    let ms = |us: Option<u64>| us.map_or("-".to_owned(), |u| format!("{:.3}", u as f64 / 1000.0));
    let mut out = format!(
        "{:<6} {:<28} {:<20} {:>9} {:>7} {:>10} {:>10}\n",
        "SIDE", "SERVICE", "METHOD", "CALLS/S", "FAIL%", "P50 ms", "P99 ms"
    );
    for r in rows {
        let calls = r.stats.calls();
        out.push_str(&format!(
            "{:<6} {:<28} {:<20} {:>9.2} {:>7.1} {:>10} {:>10}\n",
            r.side,
            r.service,
            r.method,
            calls as f64 / secs.max(0.001),
            100.0 * r.stats.failures() as f64 / calls as f64,
            ms(r.stats.quantile_us(0.5)),
            ms(r.stats.quantile_us(0.99)),
        ));
    }
    out
}
