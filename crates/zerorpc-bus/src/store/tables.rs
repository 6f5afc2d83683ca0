//! The store's tables (its on-disk layout) and the conversion of a stored
//! row into a [`Record`].

use std::sync::Arc;

use redb::{ReadableTable, TableDefinition};

use super::Record;

/// The layout version this build writes; a file with another is refused
/// rather than misread.
pub(super) const LAYOUT_VERSION: u64 = 1;

/// seq → (timestamp, topic, msg_id, envelope JSON): the log itself.
pub(super) const RECORDS: TableDefinition<u64, (i64, &str, &str, &str)> =
    TableDefinition::new("records");

/// msg_id → seq: duplicate detection and `get_by_msg_id`.
pub(super) const BY_MSG_ID: TableDefinition<&str, u64> = TableDefinition::new("by_msg_id");

/// (timestamp, seq) → (): the time index (`range_by_time`, retention by age).
pub(super) const BY_TIME: TableDefinition<(i64, u64), ()> = TableDefinition::new("by_time");

/// Counters that must survive deletes and restarts.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// META key: the next sequence number to assign (1 in a new store). Kept
/// apart from the records so that a seq is never reused, even when
/// retention has deleted every record.
pub(super) const NEXT_SEQ: &str = "next_seq";

/// META key: [`LAYOUT_VERSION`] of the file.
pub(super) const LAYOUT: &str = "layout_version";

/// The record stored under `seq` in an open `RECORDS` table.
pub(super) fn record_at<T>(table: &T, seq: u64) -> Result<Option<Record>, redb::StorageError>
where
    T: ReadableTable<u64, (i64, &'static str, &'static str, &'static str)>,
{
    Ok(table.get(seq)?.map(|guard| to_record(seq, guard.value())))
}

/// A stored row as a [`Record`].
pub(super) fn to_record(
    seq: u64,
    (timestamp, topic, msg_id, json): (i64, &str, &str, &str),
) -> Record {
    Record {
        seq,
        topic: topic.to_owned(),
        msg_id: msg_id.to_owned(),
        timestamp,
        json: Arc::from(json),
    }
}
