//! The bus daemon's durable log: every accepted message under a sequence
//! number, with indexes by `msg_id` and by timestamp, and retention.
//!
//! # Why redb
//!
//! The log is stored with [redb](https://www.redb.org) (pinned to 4.1.x,
//! the newest line that builds with the workspace's rust 1.89) rather than
//! SQLite:
//!
//! * it is pure Rust: no C library to build or link (a bundled SQLite is a
//!   long C build on the project's 2-core machines, a system one is a
//!   deployment dependency);
//! * it is crash-safe in the way a log needs: copy-on-write B-trees with
//!   checksums, and a commit with the default `Durability::Immediate` has
//!   been fsynced when it returns; a process killed at any point reopens
//!   at its last commit (this module's crash test checks that);
//! * the log needs ordered key/value tables and nothing of SQL: the
//!   indexes are two more tables written in the same transaction;
//! * readers are MVCC snapshots: replay queries and catch-up reads never
//!   block the writer, and the writer never blocks them.
//!
//! SQLite (WAL, `synchronous=FULL`) would be equally durable; nothing in
//! this workload needs what it adds, so the smaller dependency wins.
//!
//! # Layout
//!
//! One file, `bus.redb`, in the directory given to [`Store::open`]:
//! `records` (seq → timestamp, topic, msg_id, JSON), `by_msg_id`
//! (msg_id → seq), `by_time` ((timestamp, seq) → ()) and `meta` (the next
//! seq to assign, so that a seq is never reused, and the layout version).
//!
//! # Writes
//!
//! [`Store::append`] writes a whole batch in one transaction, so the
//! daemon's group commit pays one fsync for hundreds of publishes. Writes
//! are serialised; reads run concurrently with them. The API is blocking:
//! the daemon calls it from a dedicated thread.

mod error;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

pub use error::StoreError;
use tables::{BY_MSG_ID, BY_TIME, LAYOUT, LAYOUT_VERSION, META, NEXT_SEQ, RECORDS};

/// The name of the store's file inside its directory.
pub const FILE_NAME: &str = "bus.redb";

/// How many records [`Store::prune`] deletes per step (bounds its memory).
const PRUNE_CHUNK: usize = 10_000;

/// Retention settings. The default keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Delete records whose timestamp is older than this (relative to the
    /// `now` given to [`Store::prune`]).
    pub retention: Option<Duration>,
    /// Keep at most this many records (the oldest by seq go first).
    pub max_messages: Option<u64>,
}

/// One message to append: the indexed fields, which the caller has taken
/// from the envelope, and the envelope's canonical JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRecord<'a> {
    /// The envelope's `topic`.
    pub topic: &'a str,
    /// The envelope's `msg_id` (the key for duplicate detection).
    pub msg_id: &'a str,
    /// The envelope's `timestamp`, in seconds since the Unix epoch.
    pub timestamp: i64,
    /// The whole envelope, canonical JSON.
    pub json: &'a str,
}

/// What [`Store::append`] did with one [`NewRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Appended {
    /// Stored under this new seq.
    New(u64),
    /// Its msg_id was already in the log (or earlier in the same batch)
    /// under this seq; nothing was stored. This makes a publisher's retry
    /// idempotent.
    Duplicate(u64),
}

impl Appended {
    /// The seq the message is stored under, new or not.
    pub fn seq(self) -> u64 {
        match self {
            Appended::New(seq) | Appended::Duplicate(seq) => seq,
        }
    }
}

/// A stored message.
///
/// `json` is an `Arc<str>`: a record read once can be handed to many
/// subscribers (fan-out of a catch-up read) without copying the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number (from 1, consecutive in append order).
    pub seq: u64,
    /// The envelope's `topic`.
    pub topic: String,
    /// The envelope's `msg_id`.
    pub msg_id: String,
    /// The envelope's `timestamp` (seconds since the Unix epoch).
    pub timestamp: i64,
    /// The envelope, canonical JSON, as appended.
    pub json: Arc<str>,
}

/// The durable log. `Send + Sync`: reads may run on any thread while the
/// writer thread appends.
pub struct Store {
    db: Database,
    path: PathBuf,
    opts: StoreOptions,
    /// Held by `append` and `prune` for their whole transaction, so that
    /// the cached counters below are updated in commit order.
    writer: Mutex<()>,
    /// The next seq to assign (so `last_seq` is this minus one).
    next_seq: AtomicU64,
    /// The lowest stored seq; 0 when the log is empty.
    first_seq: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("opts", &self.opts)
            .field("last_seq", &self.last_seq())
            .field("first_seq", &self.first_seq())
            .finish()
    }
}

/// The store's page cache (redb's `set_cache_size`). redb's default is
/// 1 GiB, which a long-running daemon fills as its log grows. Nor does
/// redb keep its cache to the size given once pruning frees and reuses
/// pages: with 32 MiB, a log held at 20 MiB by retention took the process
/// to 154 MiB over 24 simulated hours and still growing; with 8 MiB it
/// stayed at 12.3–12.6 MiB, appending about as fast (`cargo run --release -p
/// zerorpc-bus --example store_churn 24`, see `bench-results/`). Reads of
/// recent messages hit the daemon's own cache first, and the operating
/// system caches the file.
const CACHE_BYTES: usize = 8 << 20;

impl Store {
    /// Opens (creating it and its directory if need be) the store in `dir`.
    /// After a crash, redb repairs the file on open (its progress is
    /// logged); the store then holds exactly the batches whose `append`
    /// had returned.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let shown = path.display().to_string();
        // redb also "repairs" the file it has just created: say so only
        // for a store that was there before.
        let existed = path.exists();
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_repair_callback(move |session| {
                if existed {
                    tracing::warn!(
                        store = %shown,
                        progress = session.progress(),
                        "repairing the store after an unclean shutdown"
                    );
                }
            })
            .create(&path)
            .map_err(|e| StoreError::from_open(&path, e))?;
        let store = Store {
            db,
            path,
            opts,
            writer: Mutex::new(()),
            next_seq: AtomicU64::new(1),
            first_seq: AtomicU64::new(0),
        };
        store.init()?;
        tracing::info!(
            store = %store.path.display(),
            first_seq = ?store.first_seq(),
            last_seq = store.last_seq(),
            "store opened"
        );
        Ok(store)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The retention settings it was opened with.
    pub fn options(&self) -> StoreOptions {
        self.opts
    }

    /// Creates the tables in a new file, checks the layout version of an
    /// existing one, and loads the cached counters.
    fn init(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let layout = meta
                .get(LAYOUT)
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            match layout {
                Some(found) if found != LAYOUT_VERSION => {
                    return Err(StoreError::Layout {
                        path: self.path.clone(),
                        found,
                        expected: LAYOUT_VERSION,
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert(LAYOUT, LAYOUT_VERSION)
                        .map_err(|e| self.err(e))?;
                }
            }
            let next = meta
                .get(NEXT_SEQ)
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
            txn.open_table(BY_MSG_ID).map_err(|e| self.err(e))?;
            txn.open_table(BY_TIME).map_err(|e| self.err(e))?;
            let first = records
                .first()
                .map_err(|e| self.err(e))?
                .map(|(k, _)| k.value());
            let last = records
                .last()
                .map_err(|e| self.err(e))?
                .map(|(k, _)| k.value());
            let next = next.unwrap_or(1);
            if let Some(last) = last {
                if last >= next {
                    return Err(StoreError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("record {last} is at or past the next seq {next}"),
                    });
                }
            }
            self.next_seq.store(next, Ordering::Release);
            self.first_seq.store(first.unwrap_or(0), Ordering::Release);
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::from_redb(&self.path, e)
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded state lives in the database; a panic elsewhere while
        // holding the lock leaves nothing half-updated in memory that the
        // next writer would not recompute.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a batch in one write transaction, durable (fsynced) when
    /// this returns. Each message gets the next seq, or, when its msg_id is
    /// already stored (or appears earlier in the batch), is skipped and
    /// reported as [`Appended::Duplicate`] with the existing seq. The
    /// result has one entry per input, in order. On error nothing of the
    /// batch is stored.
    pub fn append(&self, batch: &[NewRecord<'_>]) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let _writer = self.lock_writer();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(batch.len());
        let first_new;
        let next;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let mut records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
            let mut by_id = txn.open_table(BY_MSG_ID).map_err(|e| self.err(e))?;
            let mut by_time = txn.open_table(BY_TIME).map_err(|e| self.err(e))?;
            let start = meta
                .get(NEXT_SEQ)
                .map_err(|e| self.err(e))?
                .map_or(1, |v| v.value());
            let mut seq = start;
            for r in batch {
                if let Some(existing) = by_id.get(r.msg_id).map_err(|e| self.err(e))? {
                    out.push(Appended::Duplicate(existing.value()));
                    continue;
                }
                records
                    .insert(seq, (r.timestamp, r.topic, r.msg_id, r.json))
                    .map_err(|e| self.err(e))?;
                by_id.insert(r.msg_id, seq).map_err(|e| self.err(e))?;
                by_time
                    .insert((r.timestamp, seq), ())
                    .map_err(|e| self.err(e))?;
                out.push(Appended::New(seq));
                seq += 1;
            }
            first_new = start;
            next = seq;
            if next != start {
                meta.insert(NEXT_SEQ, next).map_err(|e| self.err(e))?;
            }
        }
        if next == first_new {
            // Only duplicates: nothing to write.
            txn.abort().map_err(|e| self.err(e))?;
            return Ok(out);
        }
        txn.commit().map_err(|e| self.err(e))?;
        self.next_seq.store(next, Ordering::Release);
        let _ = self
            .first_seq
            .compare_exchange(0, first_new, Ordering::AcqRel, Ordering::Acquire);
        Ok(out)
    }

    /// The highest seq ever assigned (0 if none): it does not go down when
    /// retention deletes records.
    pub fn last_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire) - 1
    }

    /// The lowest seq still stored, `None` when the log is empty (new, or
    /// everything pruned).
    pub fn first_seq(&self) -> Option<u64> {
        match self.first_seq.load(Ordering::Acquire) {
            0 => None,
            seq => Some(seq),
        }
    }

    /// Up to `limit` records with seq ≥ `from_seq`, in seq order.
    pub fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for row in records
            .range(from_seq..)
            .map_err(|e| self.err(e))?
            .take(limit)
        {
            let (k, v) = row.map_err(|e| self.err(e))?;
            out.push(tables::to_record(k.value(), v.value()));
        }
        Ok(out)
    }

    /// The record with this seq, if stored.
    pub fn get(&self, seq: u64) -> Result<Option<Record>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        tables::record_at(&records, seq).map_err(|e| self.err(e))
    }

    /// The record with this msg_id, if stored.
    pub fn get_by_msg_id(&self, msg_id: &str) -> Result<Option<Record>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let by_id = txn.open_table(BY_MSG_ID).map_err(|e| self.err(e))?;
        let Some(seq) = by_id.get(msg_id).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let record = tables::record_at(&records, seq.value()).map_err(|e| self.err(e))?;
        if record.is_none() {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("msg_id {msg_id:?} points at missing record {}", seq.value()),
            });
        }
        Ok(record)
    }

    /// Up to `limit` records with `from ≤ timestamp ≤ to` (both ends
    /// included, as fedmsg's store does), in timestamp order (then seq).
    /// Fractional bounds are fine (timestamps are whole seconds); an
    /// infinite bound is open; a NaN one is an error.
    pub fn range_by_time(
        &self,
        from: f64,
        to: f64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        if from.is_nan() || to.is_nan() {
            return Err(StoreError::BadTimeRange { from, to });
        }
        // `as` saturates: ±inf (and anything past i64) become i64::MIN/MAX.
        let lo = from.ceil() as i64;
        let hi = to.floor() as i64;
        let mut out = Vec::new();
        if lo > hi || limit == 0 {
            return Ok(out);
        }
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let by_time = txn.open_table(BY_TIME).map_err(|e| self.err(e))?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        for row in by_time
            .range((lo, 0)..=(hi, u64::MAX))
            .map_err(|e| self.err(e))?
            .take(limit)
        {
            let (key, _) = row.map_err(|e| self.err(e))?;
            let (_, seq) = key.value();
            match tables::record_at(&records, seq).map_err(|e| self.err(e))? {
                Some(r) => out.push(r),
                None => {
                    return Err(StoreError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("the time index points at missing record {seq}"),
                    })
                }
            }
        }
        Ok(out)
    }

    /// How many records are stored.
    pub fn len(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        records.len().map_err(|e| self.err(e))
    }

    /// Whether no record is stored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Applies retention: deletes the records older than
    /// [`StoreOptions::retention`] (timestamp < `now_unix` − retention),
    /// then the oldest by seq beyond [`StoreOptions::max_messages`], with
    /// their index entries, in one durable transaction. Returns how many
    /// were deleted. Seqs are never reused: the next append continues
    /// after [`Store::last_seq`].
    pub fn prune(&self, now_unix: i64) -> Result<u64, StoreError> {
        if self.opts.retention.is_none() && self.opts.max_messages.is_none() {
            return Ok(0);
        }
        let _writer = self.lock_writer();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut removed = 0u64;
        let first;
        {
            let mut records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
            let mut by_id = txn.open_table(BY_MSG_ID).map_err(|e| self.err(e))?;
            let mut by_time = txn.open_table(BY_TIME).map_err(|e| self.err(e))?;
            if let Some(retention) = self.opts.retention {
                let age = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
                let cutoff = now_unix.saturating_sub(age);
                loop {
                    let mut chunk = Vec::new();
                    for row in by_time
                        .range(..(cutoff, 0))
                        .map_err(|e| self.err(e))?
                        .take(PRUNE_CHUNK)
                    {
                        let (key, _) = row.map_err(|e| self.err(e))?;
                        chunk.push(key.value());
                    }
                    if chunk.is_empty() {
                        break;
                    }
                    for (ts, seq) in chunk {
                        by_time.remove((ts, seq)).map_err(|e| self.err(e))?;
                        let gone = records.remove(seq).map_err(|e| self.err(e))?;
                        if let Some(row) = gone {
                            let (_, _, msg_id, _) = row.value();
                            by_id.remove(msg_id).map_err(|e| self.err(e))?;
                            removed += 1;
                        }
                    }
                }
            }
            if let Some(max) = self.opts.max_messages {
                let mut len = records.len().map_err(|e| self.err(e))?;
                while len > max {
                    let Some((seq, row)) = records.pop_first().map_err(|e| self.err(e))? else {
                        break;
                    };
                    let (ts, _, msg_id, _) = row.value();
                    by_id.remove(msg_id).map_err(|e| self.err(e))?;
                    by_time.remove((ts, seq.value())).map_err(|e| self.err(e))?;
                    removed += 1;
                    len -= 1;
                }
            }
            first = records
                .first()
                .map_err(|e| self.err(e))?
                .map_or(0, |(k, _)| k.value());
        }
        if removed == 0 {
            txn.abort().map_err(|e| self.err(e))?;
            return Ok(0);
        }
        txn.commit().map_err(|e| self.err(e))?;
        self.first_seq.store(first, Ordering::Release);
        tracing::debug!(store = %self.path.display(), removed, first_seq = first, "pruned");
        Ok(removed)
    }
}
