//! fedmsg's replay protocol (REQ/REP), answered from the [`Store`].
//!
//! A consumer that notices a gap in `seq_id`s sends one JSON object (see
//! [`ReplayQuery`]) to the publisher's replay endpoint and gets back one
//! frame per message (the envelope with its `seq_id`, canonical JSON), or
//! one frame `error: '<text>'` ([`error_reply`]).
//!
//! Differences from fedmsg 1.1.7's own server (`fedmsg.replay` with its
//! `SqlStore`), which are fixes: its `seq_id_range` queries a misspelled
//! column and fails, and were it fixed its inclusive range would hand the
//! last-seen message back again; here the range is a < seq ≤ b, what
//! `check_for_replay` needs to see every message exactly once. Answers
//! are in seq order. An answer that would exceed the caller's `max` is an
//! error rather than a silently shortened list (a shortened answer to
//! `check_for_replay` would lose the messages left out).

mod query;
mod seq_id;

pub use query::{ReplayQuery, MAX_LIST_LEN, MAX_SEQ_RANGE};
pub use seq_id::{with_seq_id, SeqIdError};

use crate::store::{Record, Store, StoreError};

/// What a replay query fails with; its text is what [`error_reply`] sends.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The frame is not UTF-8.
    #[error("the query is not UTF-8")]
    NotUtf8,
    /// The frame is not JSON.
    #[error("the query is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The JSON is not an object.
    #[error("the query is not a JSON object")]
    NotAnObject,
    /// `{}`.
    #[error("the query has no field")]
    NoKey,
    /// More than one key.
    #[error("the query has more than one field")]
    SeveralKeys,
    /// A key fedmsg does not define.
    #[error("Unsupported field: \"{0}\"")]
    UnknownKey(String),
    /// A key whose value has the wrong type.
    #[error("Ill-format \"{key}\" field: expected {expected}")]
    WrongType {
        /// The query's key.
        key: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// An empty `seq_ids` or `msg_ids` list.
    #[error("Ill-format \"{0}\" field: the list is empty")]
    EmptyList(String),
    /// A `seq_ids` or `msg_ids` list longer than [`MAX_LIST_LEN`].
    #[error("Ill-format \"{key}\" field: {len} items, at most {max} allowed")]
    ListTooLong {
        /// The query's key.
        key: String,
        /// How many it has.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A range whose lower bound is above its upper bound.
    #[error("Ill-format \"{key}\" field: {from} is after {to}")]
    Reversed {
        /// The query's key.
        key: String,
        /// The lower bound sent.
        from: String,
        /// The upper bound sent.
        to: String,
    },
    /// A `seq_id_range` wider than [`MAX_SEQ_RANGE`].
    #[error("Ill-format \"seq_id_range\" field: {width} seqs wide, at most {max} allowed")]
    TooWide {
        /// Its width.
        width: u64,
        /// The limit.
        max: u64,
    },
    /// Nothing matched (fedmsg's own text).
    #[error("There was no match for the given query")]
    NoMatch,
    /// More matches than one reply may carry.
    #[error("more than {max} messages match the query; ask for a narrower range")]
    TooManyMatches {
        /// The limit.
        max: usize,
    },
    /// A stored message that is not a JSON object.
    #[error("stored message {seq} is not a JSON object: {source}")]
    BadStoredMessage {
        /// Its seq.
        seq: u64,
        /// Why.
        #[source]
        source: SeqIdError,
    },
    /// Reading the store failed.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// The messages matching `query`, at most `max` of them, each the stored
/// envelope with `"seq_id"` added (canonical JSON, as fedmsg's store
/// returns them), in seq order, each once. No match is
/// [`ReplayError::NoMatch`] (a REP reply cannot have zero frames, and
/// fedmsg answers the same); more than `max` is
/// [`ReplayError::TooManyMatches`].
pub fn answer(store: &Store, query: &ReplayQuery, max: usize) -> Result<Vec<String>, ReplayError> {
    let too_many = ReplayError::TooManyMatches { max };
    let mut records: Vec<Record> = match query {
        ReplayQuery::SeqId(seq) => store.get(*seq)?.into_iter().collect(),
        ReplayQuery::SeqIds(seqs) => {
            let mut seqs = seqs.clone();
            seqs.sort_unstable();
            seqs.dedup();
            let mut out = Vec::new();
            for seq in seqs {
                if let Some(r) = store.get(seq)? {
                    if out.len() == max {
                        return Err(too_many);
                    }
                    out.push(r);
                }
            }
            out
        }
        ReplayQuery::SeqIdRange(after, upto) => {
            let Some(from) = after.checked_add(1) else {
                return Err(ReplayError::NoMatch);
            };
            let want = usize::try_from(upto - after).unwrap_or(usize::MAX);
            let mut out = store.read_from(from, want.min(max.saturating_add(1)))?;
            out.retain(|r| r.seq <= *upto);
            if out.len() > max {
                return Err(too_many);
            }
            out
        }
        ReplayQuery::MsgId(id) => store.get_by_msg_id(id)?.into_iter().collect(),
        ReplayQuery::MsgIds(ids) => {
            let mut out: Vec<Record> = Vec::new();
            for id in ids {
                if let Some(r) = store.get_by_msg_id(id)? {
                    if out.iter().any(|o| o.seq == r.seq) {
                        continue;
                    }
                    if out.len() == max {
                        return Err(too_many);
                    }
                    out.push(r);
                }
            }
            out
        }
        ReplayQuery::Time(from, to) => {
            let out = store.range_by_time(*from, *to, max.saturating_add(1))?;
            if out.len() > max {
                return Err(too_many);
            }
            out
        }
    };
    if records.is_empty() {
        return Err(ReplayError::NoMatch);
    }
    records.sort_unstable_by_key(|r| r.seq);
    records
        .iter()
        .map(|r| {
            with_seq_id(&r.json, r.seq)
                .map_err(|source| ReplayError::BadStoredMessage { seq: r.seq, source })
        })
        .collect()
}

/// The single frame fedmsg's replay server sends for a failed query:
/// `error: '<text>'`. Its client raises `ValueError` with it.
pub fn error_reply(e: &ReplayError) -> String {
    format!("error: '{e}'")
}
