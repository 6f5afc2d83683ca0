//! Live counters of a run: one set per task, written with relaxed atomics
//! on the hot path and summed per component when a snapshot is taken.

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::stats::{ComponentStats, RunStats, TreeStats};

/// Latencies in log-spaced buckets: bucket `2k` holds [2^k, 1.5·2^k) ns and
/// `2k+1` holds [1.5·2^k, 2^(k+1)) ns, so a quantile is within 25%.
pub(crate) struct Histogram {
    buckets: [AtomicU64; 128],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        let k = 63 - ns.leading_zeros() as usize;
        let half = if k > 0 { (ns >> (k - 1)) & 1 } else { 0 } as usize;
        let i = (2 * k + half).min(127);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// (count, sum in ns, buckets) for merging several tasks.
    fn read(&self, into: &mut [u64; 128]) -> (u64, u64) {
        for (i, b) in self.buckets.iter().enumerate() {
            into[i] += b.load(Relaxed);
        }
        (self.count.load(Relaxed), self.sum_ns.load(Relaxed))
    }
}

/// The upper bound (ms) of the bucket holding quantile `q` of `buckets`.
fn quantile_ms(buckets: &[u64; 128], count: u64, q: f64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    let target = ((count as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= target {
            let k = (i / 2) as i32;
            let upper = if i % 2 == 0 {
                1.5 * 2f64.powi(k)
            } else {
                2f64.powi(k + 1)
            };
            return upper / 1e6;
        }
    }
    0.0
}

/// One task's counters.
#[derive(Default)]
pub(crate) struct TaskCounters {
    pub(crate) emitted: AtomicU64,
    pub(crate) executed: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) restarts: AtomicU64,
    /// Spouts: trees in flight; bolts: tuples queued for the task.
    pub(crate) pending: AtomicI64,
    pub(crate) latency: Histogram,
    /// Nanoseconds spent inside the task's polls (see [`Timed`]).
    pub(crate) busy_ns: AtomicU64,
}

/// The acker's counters (one acker per run).
#[derive(Default)]
pub(crate) struct TreeCounters {
    pub(crate) started: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) pending: AtomicU64,
    /// The acker task's time inside its polls.
    pub(crate) acker_busy_ns: AtomicU64,
}

/// Every counter of a run, by component.
pub(crate) struct RunCounters {
    pub(crate) topology: String,
    /// (component id, `spout`/`bolt`, its tasks' counters)
    pub(crate) components: Vec<(String, &'static str, Vec<Arc<TaskCounters>>)>,
    pub(crate) trees: Arc<TreeCounters>,
}

impl RunCounters {
    /// Everything that moved so far (to detect an idle topology).
    pub(crate) fn activity(&self) -> u64 {
        self.components
            .iter()
            .flat_map(|(_, _, tasks)| tasks)
            .map(|t| {
                t.emitted.load(Relaxed)
                    + t.executed.load(Relaxed)
                    + t.acked.load(Relaxed)
                    + t.failed.load(Relaxed)
            })
            .sum()
    }

    pub(crate) fn snapshot(&self, elapsed: Duration) -> RunStats {
        let share = |ns: u64| ns as f64 / 1e9 / elapsed.as_secs_f64().max(1e-9);
        let mut stats = RunStats {
            topology: self.topology.clone(),
            elapsed_secs: elapsed.as_secs_f64(),
            ..RunStats::default()
        };
        for (id, kind, tasks) in &self.components {
            let mut c = ComponentStats {
                kind: kind.to_string(),
                tasks: tasks.len() as u32,
                ..ComponentStats::default()
            };
            let mut buckets = [0u64; 128];
            let (mut count, mut sum) = (0, 0);
            for t in tasks {
                c.emitted += t.emitted.load(Relaxed);
                c.executed += t.executed.load(Relaxed);
                c.acked += t.acked.load(Relaxed);
                c.failed += t.failed.load(Relaxed);
                c.errors += t.errors.load(Relaxed);
                c.restarts += t.restarts.load(Relaxed);
                c.pending += t.pending.load(Relaxed).max(0) as u64;
                c.capacity = c.capacity.max(share(t.busy_ns.load(Relaxed)));
                let (n, s) = t.latency.read(&mut buckets);
                count += n;
                sum += s;
            }
            if count > 0 {
                c.latency_ms = sum as f64 / count as f64 / 1e6;
                c.latency_p99_ms = quantile_ms(&buckets, count, 0.99);
            }
            stats.components.insert(id.clone(), c);
        }
        let t = &self.trees;
        stats.trees = TreeStats {
            started: t.started.load(Relaxed),
            acked: t.acked.load(Relaxed),
            failed: t.failed.load(Relaxed),
            timed_out: t.timed_out.load(Relaxed),
            pending: t.pending.load(Relaxed),
            acker_capacity: share(t.acker_busy_ns.load(Relaxed)),
        };
        stats
    }
}

/// Where a task's time inside its polls is added (see [`Timed`]).
pub(crate) trait Busy: Send + Sync + 'static {
    fn busy_ns(&self) -> &AtomicU64;
}

impl Busy for TaskCounters {
    fn busy_ns(&self) -> &AtomicU64 {
        &self.busy_ns
    }
}

/// The acker's.
impl Busy for TreeCounters {
    fn busy_ns(&self) -> &AtomicU64 {
        &self.acker_busy_ns
    }
}

/// A task's future, adding the time spent inside each of its polls to its
/// counter: what a task costs, apart from what it waits for (two clock
/// reads per poll; a poll handles a batch).
pub(crate) struct Timed<F, C> {
    inner: std::pin::Pin<Box<F>>,
    counters: Arc<C>,
}

impl<F: Future, C: Busy> Timed<F, C> {
    pub(crate) fn new(fut: F, counters: Arc<C>) -> Timed<F, C> {
        Timed {
            inner: Box::pin(fut),
            counters,
        }
    }
}

impl<F: Future, C: Busy> Future for Timed<F, C> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let t0 = std::time::Instant::now();
        let r = self.inner.as_mut().poll(cx);
        let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.busy_ns().fetch_add(ns, Relaxed);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_land_in_the_right_bucket() {
        let h = Histogram::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(10));
        }
        h.record(Duration::from_millis(5));
        h.record(Duration::from_millis(5));
        let mut b = [0; 128];
        let (n, sum) = h.read(&mut b);
        assert_eq!(n, 100);
        assert_eq!(sum, 98 * 10_000 + 2 * 5_000_000);
        let p50 = quantile_ms(&b, n, 0.5);
        assert!((0.010..=0.0125).contains(&p50), "{p50}");
        let p99 = quantile_ms(&b, n, 0.99);
        assert!((5.0..=6.3).contains(&p99), "{p99}");
    }
}
