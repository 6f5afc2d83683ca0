//! Storm's XOR acker, sans-IO: every tracked spout tuple starts a tree
//! whose value is the XOR of the edge ids of the tuples in flight in it;
//! every bolt ack XORs in the acked tuple's edge id and the edge ids of the
//! tuples it emitted anchored to it. The tree is complete when the value is
//! 0 again. A fail, or `topology.message.timeout.secs` passing, ends the
//! tree early and tells its spout.
//!
//! Ordering: the runner sends a tree's `init` to the acker before the
//! tree's first tuple leaves the spout, over one FIFO queue, so an ack for
//! a root the acker does not know belongs to a tree that already ended
//! (failed or timed out) and is dropped. Nothing is created for it, so late
//! acks cannot grow the table.
//!
//! Timeouts are constant per topology, so trees expire in the order they
//! started: a queue of (deadline, root) checked from its front, O(1) per
//! tree.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// Roots are random 64-bit numbers: they hash as themselves.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by random u64 ids.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// An update to the acker, as tasks send them (in batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckerOp {
    /// A spout task started the tree `root`; `xor` is the XOR of the edge
    /// ids of the tuples it emitted (0 when they went nowhere: the tree is
    /// complete at once).
    Init { root: u64, xor: u64, spout: usize },
    /// A bolt acked a tuple of the tree: its edge id XOR the edge ids of
    /// what it emitted anchored to it.
    Ack { root: u64, xor: u64 },
    /// A bolt failed a tuple of the tree.
    Fail { root: u64 },
}

/// How a tree ended, for its spout task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TreeEnd {
    Acked,
    Failed,
    TimedOut,
}

/// What the acker tells a spout task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) spout: usize,
    pub(crate) root: u64,
    pub(crate) end: TreeEnd,
}

struct Entry {
    xor: u64,
    spout: usize,
}

/// The acker's state.
pub(crate) struct Acker {
    timeout: Duration,
    trees: IdMap<Entry>,
    deadlines: VecDeque<(Instant, u64)>,
    /// Counters for the statistics.
    pub(crate) started: u64,
    pub(crate) acked: u64,
    pub(crate) failed: u64,
    pub(crate) timed_out: u64,
}

impl Acker {
    /// An acker whose trees time out after `timeout`.
    pub(crate) fn new(timeout: Duration) -> Acker {
        Acker {
            timeout,
            trees: IdMap::default(),
            deadlines: VecDeque::new(),
            started: 0,
            acked: 0,
            failed: 0,
            timed_out: 0,
        }
    }

    /// Trees in flight.
    pub(crate) fn pending(&self) -> usize {
        self.trees.len()
    }

    /// Applies one update at `now`; a tree that ends is pushed to `out`.
    pub(crate) fn apply(&mut self, op: AckerOp, now: Instant, out: &mut Vec<Outcome>) {
        match op {
            AckerOp::Init { root, xor, spout } => {
                self.started += 1;
                if xor == 0 {
                    self.acked += 1;
                    out.push(Outcome {
                        spout,
                        root,
                        end: TreeEnd::Acked,
                    });
                    return;
                }
                self.trees.insert(root, Entry { xor, spout });
                self.deadlines.push_back((now + self.timeout, root));
            }
            AckerOp::Ack { root, xor } => {
                let Some(entry) = self.trees.get_mut(&root) else {
                    return;
                };
                entry.xor ^= xor;
                if entry.xor == 0 {
                    let spout = entry.spout;
                    self.trees.remove(&root);
                    self.acked += 1;
                    out.push(Outcome {
                        spout,
                        root,
                        end: TreeEnd::Acked,
                    });
                }
            }
            AckerOp::Fail { root } => {
                if let Some(entry) = self.trees.remove(&root) {
                    self.failed += 1;
                    out.push(Outcome {
                        spout: entry.spout,
                        root,
                        end: TreeEnd::Failed,
                    });
                }
            }
        }
    }

    /// Ends the trees whose deadline passed by `now`.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Outcome>) {
        while let Some(&(deadline, root)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(entry) = self.trees.remove(&root) {
                self.timed_out += 1;
                out.push(Outcome {
                    spout: entry.spout,
                    root,
                    end: TreeEnd::TimedOut,
                });
            }
        }
        // Ended trees leave their deadline behind; drop those in bulk once
        // they dominate, so the queue stays proportional to live trees.
        if self.deadlines.len() > 1024 && self.deadlines.len() > 4 * self.trees.len() {
            let trees = &self.trees;
            self.deadlines.retain(|(_, root)| trees.contains_key(root));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(acker: &mut Acker, ops: &[AckerOp], now: Instant) -> Vec<Outcome> {
        let mut out = Vec::new();
        for op in ops {
            acker.apply(*op, now, &mut out);
        }
        out
    }

    #[test]
    fn a_tree_completes_when_every_edge_is_acked() {
        let now = Instant::now();
        let mut a = Acker::new(Duration::from_secs(30));
        // spout emits to two bolts: edges 5 and 9
        let out = run(
            &mut a,
            &[AckerOp::Init {
                root: 1,
                xor: 5 ^ 9,
                spout: 3,
            }],
            now,
        );
        assert!(out.is_empty());
        // bolt acks edge 5 having emitted edge 7 anchored to it
        let out = run(
            &mut a,
            &[AckerOp::Ack {
                root: 1,
                xor: 5 ^ 7,
            }],
            now,
        );
        assert!(out.is_empty());
        let out = run(&mut a, &[AckerOp::Ack { root: 1, xor: 9 }], now);
        assert!(out.is_empty());
        assert_eq!(a.pending(), 1);
        let out = run(&mut a, &[AckerOp::Ack { root: 1, xor: 7 }], now);
        assert_eq!(
            out,
            vec![Outcome {
                spout: 3,
                root: 1,
                end: TreeEnd::Acked
            }]
        );
        assert_eq!((a.pending(), a.started, a.acked), (0, 1, 1));
    }

    #[test]
    fn a_tree_with_no_tuples_is_acked_at_once() {
        let mut a = Acker::new(Duration::from_secs(30));
        let out = run(
            &mut a,
            &[AckerOp::Init {
                root: 4,
                xor: 0,
                spout: 0,
            }],
            Instant::now(),
        );
        assert_eq!(out[0].end, TreeEnd::Acked);
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn fail_ends_the_tree_and_late_acks_are_dropped() {
        let now = Instant::now();
        let mut a = Acker::new(Duration::from_secs(30));
        let out = run(
            &mut a,
            &[
                AckerOp::Init {
                    root: 2,
                    xor: 11,
                    spout: 1,
                },
                AckerOp::Fail { root: 2 },
                AckerOp::Ack { root: 2, xor: 11 },
                AckerOp::Fail { root: 2 },
            ],
            now,
        );
        assert_eq!(
            out,
            vec![Outcome {
                spout: 1,
                root: 2,
                end: TreeEnd::Failed
            }]
        );
        assert_eq!((a.pending(), a.failed, a.acked), (0, 1, 0));
    }

    #[test]
    fn trees_time_out_in_order_with_an_explicit_now() {
        let t0 = Instant::now();
        let mut a = Acker::new(Duration::from_secs(10));
        run(
            &mut a,
            &[AckerOp::Init {
                root: 1,
                xor: 3,
                spout: 0,
            }],
            t0,
        );
        run(
            &mut a,
            &[AckerOp::Init {
                root: 2,
                xor: 3,
                spout: 0,
            }],
            t0 + Duration::from_secs(5),
        );
        run(&mut a, &[AckerOp::Ack { root: 2, xor: 3 }], t0);
        let mut out = Vec::new();
        a.expire(t0 + Duration::from_secs(9), &mut out);
        assert!(out.is_empty());
        a.expire(t0 + Duration::from_secs(10), &mut out);
        assert_eq!(
            out,
            vec![Outcome {
                spout: 0,
                root: 1,
                end: TreeEnd::TimedOut
            }]
        );
        // root 2 was acked: its deadline passes silently
        out.clear();
        a.expire(t0 + Duration::from_secs(60), &mut out);
        assert!(out.is_empty());
        assert!(a.deadlines.is_empty());
        assert_eq!((a.timed_out, a.acked), (1, 1));
    }

    #[test]
    fn the_deadline_queue_stays_proportional_to_live_trees() {
        let t0 = Instant::now();
        let mut a = Acker::new(Duration::from_secs(3600));
        let mut out = Vec::new();
        for root in 1..=10_000u64 {
            a.apply(
                AckerOp::Init {
                    root,
                    xor: root,
                    spout: 0,
                },
                t0,
                &mut out,
            );
            a.apply(AckerOp::Ack { root, xor: root }, t0, &mut out);
        }
        a.expire(t0, &mut out);
        assert_eq!(out.len(), 10_000);
        assert!(a.deadlines.len() <= 1024, "{}", a.deadlines.len());
    }
}
