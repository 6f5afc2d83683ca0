//! Statistics of a run: per component and for the spout trees, as the
//! terminal shows them and `--stats-json` writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One component's counters, summed over its tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentStats {
    /// `spout` or `bolt`.
    pub kind: String,
    /// Its tasks.
    pub tasks: u32,
    /// Tuples it emitted (one per emit, whatever the number of receivers).
    pub emitted: u64,
    /// Tuples delivered to it (bolts) .
    pub executed: u64,
    /// Tuples it acked (bolts) or trees acked back to it (spouts).
    pub acked: u64,
    /// Tuples it failed (bolts) or trees failed back to it, timeouts
    /// included (spouts).
    pub failed: u64,
    /// Trees in flight (spouts) or tuples queued and unacked (bolts).
    pub pending: u64,
    /// Mean process latency, ms (bolts: `process` call; spouts: complete
    /// latency of acked trees).
    pub latency_ms: f64,
    /// 99th percentile of the same.
    pub latency_p99_ms: f64,
    /// Errors reported (by the component or about it).
    pub errors: u64,
    /// Subprocess restarts (shell components).
    pub restarts: u64,
    /// The share of the run its busiest task spent working (Storm's
    /// "capacity"): the time inside the task's polls over the elapsed
    /// time. Near 1, that task is the topology's bottleneck; a shell
    /// component's subprocess works apart from it (not counted).
    #[serde(default)]
    pub capacity: f64,
}

/// What happened to spout trees.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TreeStats {
    /// Trees started (tracked spout emits).
    pub started: u64,
    /// Trees fully acked.
    pub acked: u64,
    /// Trees failed by a bolt.
    pub failed: u64,
    /// Trees that passed `topology.message.timeout.secs`.
    pub timed_out: u64,
    /// Trees in flight now.
    pub pending: u64,
    /// The acker task's capacity (see [`ComponentStats::capacity`]).
    #[serde(default)]
    pub acker_capacity: f64,
}

/// A snapshot of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    /// The topology's name.
    pub topology: String,
    /// Seconds since the start.
    pub elapsed_secs: f64,
    /// Per component id.
    pub components: BTreeMap<String, ComponentStats>,
    /// Spout trees.
    pub trees: TreeStats,
}

/// The statistics as a text table (the runner's terminal output and
/// `zerorpc stream stats`).
pub fn render_table(stats: &RunStats) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let secs = stats.elapsed_secs.max(1e-9);
    let _ = writeln!(
        s,
        "topology {}  {:.1}s  trees: {} started, {} acked, {} failed, {} timed out, {} pending  acker capacity {:.2}",
        stats.topology,
        stats.elapsed_secs,
        stats.trees.started,
        stats.trees.acked,
        stats.trees.failed,
        stats.trees.timed_out,
        stats.trees.pending,
        stats.trees.acker_capacity
    );
    let _ = writeln!(
        s,
        "{:<16} {:>5} {:>5} {:>11} {:>11} {:>11} {:>8} {:>8} {:>10} {:>9} {:>6} {:>8} {:>8}",
        "component",
        "kind",
        "tasks",
        "emitted",
        "executed",
        "acked",
        "failed",
        "pending",
        "rate/s",
        "lat ms",
        "p99",
        "errors",
        "capacity"
    );
    for (id, c) in &stats.components {
        let moved = if c.kind == "spout" {
            c.emitted
        } else {
            c.executed
        };
        let _ = writeln!(
            s,
            "{:<16} {:>5} {:>5} {:>11} {:>11} {:>11} {:>8} {:>8} {:>10.0} {:>9.3} {:>6.2} {:>8} {:>8.2}",
            id,
            c.kind,
            c.tasks,
            c.emitted,
            c.executed,
            c.acked,
            c.failed,
            c.pending,
            moved as f64 / secs,
            c.latency_ms,
            c.latency_p99_ms,
            if c.restarts > 0 {
                format!("{}/{}r", c.errors, c.restarts)
            } else {
                c.errors.to_string()
            },
            c.capacity
        );
    }
    s
}
