//! [`TraceStore`] and the in-memory [`EmbeddedStore`].

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};
use futures::future::BoxFuture;

use super::arena::{Arena, CellId};
use super::kept::{Ending, Kept, Names, TraceKey};
use super::stats::{reached_power_of_two, Histogram, MethodKey};
use super::{
    rows, Clocks, Finished, KeyLimits, MethodKeys, MethodRow, MethodStats, Record, Side, TraceSink,
    SLOTS_KEPT, SLOT_SECS,
};

/// A store that can be queried as well as written: what a
/// [`Collector`](crate::collector::Collector) serves to `zerorpc trace`.
pub trait TraceStore: TraceSink {
    /// The records of a trace (none once expired), by start time.
    fn trace(&self, trace_id: &str) -> BoxFuture<'static, Result<Vec<Record>, String>>;

    /// Per-method aggregates of the calls that ended at or after
    /// `since_us` (µs since the Unix epoch, at slot granularity; slots
    /// are kept ten minutes), or of every call recorded with `None`.
    fn stats(&self, since_us: Option<u64>) -> BoxFuture<'static, Result<Vec<MethodRow>, String>>;
}

/// A trace: the cells of its first and last records, and when it
/// expires.
struct Trace {
    first: CellId,
    last: CellId,
    expires: Instant,
}

struct StoreInner {
    traces: HashMap<TraceKey, Trace>,
    /// The traces' records.
    kept: Arena,
    /// (expiry, trace) in insertion order: expiry without scanning every
    /// trace (an entry is stale when its trace got a later record).
    expiries: VecDeque<(Instant, TraceKey)>,
    /// (side, service, method) → stats, since the store started.
    methods: BTreeMap<MethodKey, MethodStats>,
    /// The same per slot, oldest first.
    slots: VecDeque<(u64, BTreeMap<MethodKey, MethodStats>)>,
    /// Which keys `methods` and `slots` may hold.
    keys: MethodKeys,
    /// Records held in `traces`, and the most it may hold.
    records: usize,
    max_records: usize,
    /// Records dropped (with their traces) to stay within `max_records`.
    evicted: u64,
}

/// An in-memory trace store: per-trace record lists that expire `ttl`
/// after their last record, per-method counters and latency histograms
/// (since the start, and per 10-second slot for the last ten minutes).
/// A [`TraceSink`] and a [`TraceStore`].
///
/// It holds at most [`EmbeddedStore::DEFAULT_MAX_RECORDS`] records (set
/// with [`EmbeddedStore::max_records`]): past that, the traces that would
/// expire first go first, whole ([`EmbeddedStore::evicted`] counts their
/// records). The statistics count every record. The room its records
/// take grows to the most it held at once and is kept: records dropped
/// leave their room to the next ones, not to the allocator.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Mutex<StoreInner>>,
    ttl: Duration,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl StoreInner {
    fn new(limits: KeyLimits, max_records: usize) -> Self {
        StoreInner {
            traces: HashMap::new(),
            kept: Arena::new(),
            expiries: VecDeque::new(),
            methods: BTreeMap::new(),
            slots: VecDeque::new(),
            keys: MethodKeys::new(limits),
            records: 0,
            max_records,
            evicted: 0,
        }
    }

    /// Drops the traces whose last record is older than the TTL.
    fn expire(&mut self, now: Instant) {
        while self.expiries.front().is_some_and(|(at, _)| *at <= now) {
            self.drop_first();
        }
    }

    /// Drops traces, those that expire first first, until at most
    /// `max_records` are held.
    fn evict(&mut self) {
        let before = self.evicted;
        while self.records > self.max_records && !self.expiries.is_empty() {
            self.evicted += self.drop_first() as u64;
        }
        if reached_power_of_two(before, self.evicted) {
            tracing::warn!(
                evicted = self.evicted,
                max_records = self.max_records,
                "trace store full: the oldest traces were dropped before their TTL"
            );
        }
    }

    /// Takes the first entry of the expiry queue and drops its trace if
    /// the entry is its latest (a trace that got a later record has a
    /// later entry); returns the records dropped.
    fn drop_first(&mut self) -> usize {
        let Some((at, id)) = self.expiries.pop_front() else {
            return 0;
        };
        // (one lookup: the table is large, and each is a cache miss)
        let Entry::Occupied(e) = self.traces.entry(id) else {
            return 0;
        };
        if e.get().expires > at {
            return 0;
        }
        let dropped = self.kept.remove_from(e.remove().first);
        self.records -= dropped;
        dropped
    }

    /// The slot table a record goes to (records arrive mostly in order,
    /// so the search starts from the newest slot); `None` for a record
    /// older than the slots kept.
    fn slot_mut(&mut self, slot: u64) -> Option<&mut BTreeMap<MethodKey, MethodStats>> {
        let newest = self.slots.back().map_or(slot, |(s, _)| *s).max(slot);
        if slot + SLOTS_KEPT <= newest {
            return None;
        }
        while self
            .slots
            .front()
            .is_some_and(|(s, _)| *s + SLOTS_KEPT <= newest)
        {
            self.slots.pop_front();
        }
        let at = self
            .slots
            .iter()
            .rposition(|(s, _)| *s <= slot)
            .map_or(0, |i| i + 1);
        if at == 0 || self.slots[at - 1].0 != slot {
            self.slots.insert(at, (slot, BTreeMap::new()));
            return Some(&mut self.slots[at].1);
        }
        Some(&mut self.slots[at - 1].1)
    }
}

/// A batch's records of one (side, service, method, slot), and their
/// statistics.
struct Group {
    side: Side,
    service: Arc<str>,
    method: Arc<str>,
    slot: u64,
    tally: Tally,
}

/// A group's key in its batch: its side, its names' addresses, its slot.
type GroupKey = (Side, *const u8, *const u8, u64);

impl Group {
    fn key(&self) -> GroupKey {
        (
            self.side,
            self.service.as_ptr(),
            self.method.as_ptr(),
            self.slot,
        )
    }
}

/// How many of a batch's groups are looked at before its index.
const RECENT_GROUPS: usize = 4;

/// A group's calls as its records go in: counts by ending and by
/// latency bucket in arrays, no map looked up per record; made
/// [`MethodStats`] once per group.
#[derive(Default)]
struct Tally {
    /// By [`Ending::index`].
    endings: [u64; Ending::ALL.len()],
    /// By [`Histogram::bucket_of`], as far as the largest seen.
    buckets: Vec<u64>,
    sum_us: u64,
}

impl Tally {
    fn add(&mut self, ending: Ending, us: u64) {
        self.endings[ending.index()] += 1;
        let b = usize::from(Histogram::bucket_of(us));
        if b >= self.buckets.len() {
            self.buckets.resize(b + 1, 0);
        }
        self.buckets[b] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// As statistics: what adding each call to a [`MethodStats`] would
    /// have made.
    fn stats(&self) -> MethodStats {
        let mut stats = MethodStats::default();
        for (ending, &n) in Ending::ALL.iter().zip(&self.endings) {
            if n > 0 {
                stats.outcomes.insert(ending.label().to_owned(), n);
            }
        }
        for (b, &n) in self.buckets.iter().enumerate() {
            if n > 0 {
                // (a bucket index is a `u16`: see `Histogram::bucket_of`)
                stats.latency.add_n(b as u16, n);
            }
        }
        stats.latency.sum_us = self.sum_us;
        stats
    }
}

/// Adds `stats` to `key`'s entry of `table` (the key copied only when the
/// entry is new).
fn merge_into(table: &mut BTreeMap<MethodKey, MethodStats>, key: &MethodKey, stats: &MethodStats) {
    match table.get_mut(key) {
        Some(m) => m.merge(stats),
        None => {
            table.insert(key.clone(), stats.clone());
        }
    }
}

impl EmbeddedStore {
    /// A store whose traces expire `ttl` after their last record, with the
    /// default [`KeyLimits`].
    pub fn new(ttl: Duration) -> Self {
        EmbeddedStore::with_limits(ttl, KeyLimits::default())
    }

    /// A store whose traces expire `ttl` after their last record, and
    /// whose statistics keep at most `limits` keys.
    pub fn with_limits(ttl: Duration, limits: KeyLimits) -> Self {
        EmbeddedStore {
            inner: Arc::new(Mutex::new(StoreInner::new(
                limits,
                Self::DEFAULT_MAX_RECORDS,
            ))),
            ttl,
        }
    }

    /// Records a store holds at most unless told otherwise: 262,144, some
    /// 33 MiB of typical records (about 131 bytes each as the store keeps
    /// calls recorded on both sides, 189 for traces of one record:
    /// `idle-heap store`). A store that receives more within its TTL drops
    /// its oldest traces.
    pub const DEFAULT_MAX_RECORDS: usize = 1 << 18;

    /// The same store holding at most `n` records (a batch is stored
    /// whole, then the oldest traces go).
    pub fn max_records(self, n: usize) -> Self {
        {
            let mut st = self.lock();
            st.max_records = n;
            st.evict();
        }
        self
    }

    /// Records held now.
    pub fn record_count(&self) -> usize {
        self.lock().records
    }

    /// Room for records the store holds now, taken or not.
    #[cfg(test)]
    pub(super) fn record_room(&self) -> usize {
        self.lock().kept.room()
    }

    /// Records dropped, with their traces, before their TTL to stay
    /// within [`EmbeddedStore::max_records`].
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// Distinct (side, service, method) keys of the statistics.
    pub fn key_count(&self) -> usize {
        self.lock().methods.len()
    }

    /// Records whose statistics went under `<other>` (key limits).
    pub fn folded(&self) -> u64 {
        self.lock().keys.folded()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores records received at `now`.
    pub fn insert_at(&self, batch: Vec<Record>, now: Instant) {
        let mut names = Names::default();
        self.insert_kept(
            batch
                .into_iter()
                .map(|r| (TraceKey::of(&r.trace_id), Kept::new(r, &mut names))),
            now,
        );
    }

    /// Stores the recorder's finished spans, received at `now`, without
    /// making records of them first (see [`Kept::finished`]).
    pub(super) fn insert_finished(
        &self,
        spans: impl Iterator<Item = Box<Finished>>,
        process: &Arc<str>,
        host: &Arc<str>,
        clocks: Clocks,
        now: Instant,
    ) {
        let mut names = Names::default();
        self.insert_kept(
            spans.map(|f| Kept::finished(f, process, host, clocks, &mut names)),
            now,
        );
    }

    /// Stores kept records received at `now`, in one pass: each is made
    /// and moved into its trace (a pass that gathered them first would
    /// copy each twice more).
    fn insert_kept(&self, batch: impl Iterator<Item = (TraceKey, Kept)>, now: Instant) {
        // A batch's statistics are summed per (side, service, method,
        // slot) as its records go in, then merged into the tables in the
        // order each group first appeared: the tables are looked up (and
        // keys copied) once per group rather than once per record, and
        // keys are admitted in arrival order.
        // (A group is found by its names' pointers: a batch's records of
        // one method share one name; the group holds them, so a pointer
        // cannot be reused while it is looked up.)
        let mut index: HashMap<GroupKey, usize> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut st = self.lock();
        st.expire(now);
        let expires = now + self.ttl;
        for (key, kept) in batch {
            let slot = kept.slot();
            let (service, method) = (kept.service(), kept.method());
            let at = (kept.side(), service.as_ptr(), method.as_ptr(), slot);
            // (a batch's records come in runs of few groups: the last few
            // made are looked at before the index)
            let mut recent = groups.iter().rev().take(RECENT_GROUPS);
            let g = match recent.position(|g| g.key() == at) {
                Some(back) => groups.len() - 1 - back,
                None => *index.entry(at).or_insert_with(|| {
                    groups.push(Group {
                        side: kept.side(),
                        service: service.clone(),
                        method: method.clone(),
                        slot,
                        tally: Tally::default(),
                    });
                    groups.len() - 1
                }),
            };
            groups[g].tally.add(kept.ending(), kept.duration_us());
            let st = &mut *st;
            let Some(cell) = st.kept.insert(kept) else {
                // (a table of four billion records: this one goes)
                st.evicted += 1;
                continue;
            };
            st.records += 1;
            // (one lookup, as in `drop_first`)
            match st.traces.entry(key) {
                Entry::Occupied(mut e) => {
                    let t = e.get_mut();
                    st.kept.link(t.last, cell);
                    t.last = cell;
                    if std::mem::replace(&mut t.expires, expires) != expires {
                        st.expiries.push_back((expires, e.key().clone()));
                    }
                }
                Entry::Vacant(e) => {
                    st.expiries.push_back((expires, e.key().clone()));
                    e.insert(Trace {
                        first: cell,
                        last: cell,
                        expires,
                    });
                }
            }
        }
        drop(index);
        for g in &groups {
            let stats = g.tally.stats();
            let key = st
                .keys
                .key_for_many(g.side, &g.service, &g.method, stats.calls());
            if let Some(table) = st.slot_mut(g.slot) {
                merge_into(table, &key, &stats);
            }
            merge_into(&mut st.methods, &key, &stats);
        }
        st.evict();
    }

    /// The records of a trace as of `now` (none once expired), by start
    /// time.
    pub fn trace_at(&self, trace_id: &str, now: Instant) -> Vec<Record> {
        let key = TraceKey::of(trace_id);
        let st = self.lock();
        let mut v: Vec<Record> = match st.traces.get(&key) {
            Some(t) if t.expires > now => st.kept.from(t.first).map(|k| k.record(&key)).collect(),
            _ => Vec::new(),
        };
        drop(st);
        v.sort_by_key(|r| r.start_us);
        v
    }

    /// The records of a trace now.
    pub fn trace(&self, trace_id: &str) -> Vec<Record> {
        self.trace_at(trace_id, Instant::now())
    }

    /// Per (side, service, method) statistics since the store started.
    pub fn methods(&self) -> BTreeMap<(String, String, String), MethodStats> {
        self.lock().methods.clone()
    }

    /// Per-method statistics of the calls that ended at or after
    /// `since_us` (slot granularity), or of all calls with `None`.
    pub fn stats_since(&self, since_us: Option<u64>) -> Vec<MethodRow> {
        let st = self.lock();
        let Some(since) = since_us else {
            return rows(st.methods.clone());
        };
        let first = since / (SLOT_SECS * 1_000_000);
        let mut table: BTreeMap<MethodKey, MethodStats> = BTreeMap::new();
        for (_, t) in st.slots.iter().filter(|(s, _)| *s >= first) {
            for (k, m) in t {
                table.entry(k.clone()).or_default().merge(m);
            }
        }
        rows(table)
    }
}

impl TraceStore for EmbeddedStore {
    fn trace(&self, trace_id: &str) -> BoxFuture<'static, Result<Vec<Record>, String>> {
        let v = EmbeddedStore::trace(self, trace_id);
        Box::pin(std::future::ready(Ok(v)))
    }

    fn stats(&self, since_us: Option<u64>) -> BoxFuture<'static, Result<Vec<MethodRow>, String>> {
        let v = self.stats_since(since_us);
        Box::pin(std::future::ready(Ok(v)))
    }
}

impl TraceSink for EmbeddedStore {
    fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
        self.insert_at(batch, Instant::now());
        Box::pin(std::future::ready(Ok(())))
    }
}
