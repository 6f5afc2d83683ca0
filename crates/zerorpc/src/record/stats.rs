//! Per-method aggregates: latency [`Histogram`]s, [`MethodStats`] and
//! [`MethodRow`]s, ten-second slots, and the bounded set of keys a store
//! keeps ([`MethodKeys`]).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{Record, Side};

/// Latency distribution: counts in log-linear buckets (8 per power of
/// two, so a quantile read from it is within about 6% of the truth),
/// mergeable, and small enough to keep per method and per time slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bucket index → count.
    pub buckets: BTreeMap<u16, u64>,
    /// Values added.
    pub count: u64,
    /// Their sum (microseconds).
    pub sum_us: u64,
}

impl Histogram {
    /// The bucket a duration (µs) falls in: exact below 8, then 8
    /// sub-buckets per power of two.
    pub fn bucket_of(us: u64) -> u16 {
        if us < 8 {
            return us as u16;
        }
        let e = 63 - us.leading_zeros() as u64; // >= 3
        let sub = (us >> (e - 3)) & 7;
        (8 + (e - 3) * 8 + sub) as u16
    }

    /// The value a bucket stands for: the middle of its range.
    pub fn bucket_value(b: u16) -> u64 {
        if b < 8 {
            return u64::from(b);
        }
        let i = u64::from(b) - 8;
        let (e, sub) = (i / 8 + 3, i % 8);
        if e > 63 {
            return u64::MAX;
        }
        let low = (8 + sub) << (e - 3);
        low.saturating_add((1u64 << (e - 3)) / 2)
    }

    /// Adds one duration.
    pub fn add(&mut self, us: u64) {
        self.add_n(Self::bucket_of(us), 1);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Adds `n` values of bucket `b` (their sum is not known).
    pub fn add_n(&mut self, b: u16, n: u64) {
        *self.buckets.entry(b).or_default() += n;
        self.count += n;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// The q-quantile (0..=1), in microseconds; `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64 * q.clamp(0.0, 1.0)).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(Self::bucket_value(*b));
            }
        }
        self.buckets
            .keys()
            .next_back()
            .map(|b| Self::bucket_value(*b))
    }
}

/// Aggregates of one method, seen from one side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodStats {
    /// Calls by outcome label.
    pub outcomes: BTreeMap<String, u64>,
    /// Their durations.
    pub latency: Histogram,
}

impl MethodStats {
    /// Adds a call that ended with the outcome labelled `label` (see
    /// [`Outcome::label`](super::Outcome::label)) after `duration_us`.
    /// (The store counts a batch's calls in arrays first: its `Tally`.)
    #[cfg(test)]
    pub(super) fn add(&mut self, label: &str, duration_us: u64) {
        self.count_outcome(label, 1);
        self.latency.add(duration_us);
    }

    /// Adds `n` calls ending with `label` (the label copied only when
    /// it is new here).
    fn count_outcome(&mut self, label: &str, n: u64) {
        match self.outcomes.get_mut(label) {
            Some(c) => *c += n,
            None => {
                self.outcomes.insert(label.to_owned(), n);
            }
        }
    }

    /// Adds another's counts.
    pub fn merge(&mut self, other: &MethodStats) {
        for (o, n) in &other.outcomes {
            self.count_outcome(o, *n);
        }
        self.latency.merge(&other.latency);
    }

    /// Calls counted.
    pub fn calls(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// Calls that did not succeed (anything but `OK` and `STREAM`).
    pub fn failures(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| !matches!(o.as_str(), "OK" | "STREAM"))
            .map(|(_, n)| n)
            .sum()
    }

    /// The q-quantile (0..=1) of the durations, in microseconds.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        self.latency.quantile_us(q)
    }
}

/// One row of a statistics table: a method seen from one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodRow {
    /// `client` or `server`.
    pub side: String,
    /// The service (or, client side, the endpoint).
    pub service: String,
    /// The method.
    pub method: String,
    /// Its aggregates.
    pub stats: MethodStats,
}

/// Seconds per statistics slot: stores keep per-method aggregates per
/// slot (by when each call ended) so rates and quantiles can be read over
/// recent windows.
pub const SLOT_SECS: u64 = 10;

/// Slots kept (ten minutes).
pub const SLOTS_KEPT: u64 = 60;

/// The slot a record's call ended in.
pub fn slot_of(r: &Record) -> u64 {
    slot_at(r.start_us, r.duration_us)
}

/// The slot of a call that started at `start_us` and took `duration_us`.
pub(super) fn slot_at(start_us: u64, duration_us: u64) -> u64 {
    start_us.saturating_add(duration_us) / (SLOT_SECS * 1_000_000)
}

/// `client` or `server`.
pub fn side_label(s: Side) -> &'static str {
    match s {
        Side::Client => "client",
        Side::Server => "server",
    }
}

pub(super) type MethodKey = (String, String, String);

/// The method a server records (span, metrics labels) for a call to a
/// method it does not have: one label however many names clients try.
pub const UNKNOWN_METHOD: &str = "<unknown>";

/// Where statistics go once a service has too many distinct methods (as
/// the method), or the store too many keys (as the service and method).
pub const OTHER: &str = "<other>";

/// How many distinct (side, service, method) keys a store aggregates.
/// Records beyond are counted under [`OTHER`] rather than growing the
/// store: servers already fold unknown methods into [`UNKNOWN_METHOD`],
/// but records reach a collector from anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    /// Distinct methods per (side, service). Default 512: more methods
    /// than real services have, while one service's keys stay small.
    pub max_methods_per_service: usize,
    /// Distinct keys over all services. Default 8,192: with the slots
    /// kept (one table per 10 s for ten minutes), a few MiB at most.
    pub max_keys: usize,
}

impl Default for KeyLimits {
    fn default() -> Self {
        KeyLimits {
            max_methods_per_service: 512,
            max_keys: 8192,
        }
    }
}

/// The keys a store aggregates, within [`KeyLimits`]: known keys stay; a
/// new method of a service at its limit goes to `(side, service,
/// <other>)`; a new key once the store is at its limit goes to the
/// service's `<other>` when the service has keys, else to `(side,
/// <other>, <other>)`. So at most `2 × max_keys + 2` keys ever exist.
#[derive(Debug, Default)]
pub struct MethodKeys {
    limits: KeyLimits,
    keys: std::collections::HashSet<MethodKey>,
    per_service: HashMap<(String, String), usize>,
    folded: u64,
}

impl MethodKeys {
    /// Keys within these limits.
    pub fn new(limits: KeyLimits) -> Self {
        MethodKeys {
            limits,
            ..MethodKeys::default()
        }
    }

    /// The key `r`'s statistics go to.
    pub fn key_for(&mut self, r: &Record) -> MethodKey {
        self.key_for_many(r.side, &r.service, &r.method, 1)
    }

    /// The key the statistics of `n` records of this side, service and
    /// method go to: the same as `n` calls of [`Self::key_for`] (a key
    /// refused once is refused for good, as keys are never removed).
    pub(super) fn key_for_many(
        &mut self,
        side: Side,
        service: &str,
        method: &str,
        n: u64,
    ) -> MethodKey {
        let key = (
            side_label(side).to_owned(),
            service.to_owned(),
            method.to_owned(),
        );
        if self.keys.contains(&key) {
            return key;
        }
        let service = (key.0, key.1);
        let held = self.per_service.get(&service).copied().unwrap_or(0);
        if held < self.limits.max_methods_per_service && self.keys.len() < self.limits.max_keys {
            self.keys
                .insert((service.0.clone(), service.1.clone(), key.2));
            *self.per_service.entry(service.clone()).or_default() += 1;
            return (service.0, service.1, method.to_owned());
        }
        let before = self.folded;
        self.folded += n;
        if reached_power_of_two(before, self.folded) {
            tracing::warn!(
                folded = self.folded,
                service = %service.1,
                "too many distinct methods: statistics counted under <other>"
            );
        }
        if held > 0 {
            (service.0, service.1, OTHER.to_owned())
        } else {
            (service.0, OTHER.to_owned(), OTHER.to_owned())
        }
    }

    /// Records counted under [`OTHER`] because of the limits.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// Distinct keys admitted (not counting the `<other>` ones).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none was admitted yet.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Whether a count that went from `before` to `after` reached a power of
/// two it had not reached (when the stores' drop counters warn: a log
/// line per doubling, however the count grows).
pub(super) fn reached_power_of_two(before: u64, after: u64) -> bool {
    after > before && (before == 0 || after.ilog2() != before.ilog2())
}

/// A table's rows, in key order.
pub fn rows(table: BTreeMap<MethodKey, MethodStats>) -> Vec<MethodRow> {
    table
        .into_iter()
        .map(|((side, service, method), stats)| MethodRow {
            side,
            service,
            method,
            stats,
        })
        .collect()
}
