//! What our publishers and consumers say to the bus daemon: a ZeroRPC
//! service on the daemon's ingest endpoint (so any ZeroRPC client, Python's
//! included, can publish to it and read from it).
//!
//! | method | arguments | answer |
//! |---|---|---|
//! | `publish` | envelopes (canonical JSON strings) | one `[seq, status, detail]` per envelope, once durable |
//! | `subscribe` | `since` (first seq wanted, 0: the next one), topic patterns | a stream of `[upto, [[seq, envelope], ...]]` |
//! | `read` | `from`, topic patterns, `limit` | one `[upto, [[seq, envelope], ...]]` |
//! | `seek_time` | unix time | the first seq at or after it |
//! | `info` | | [`BusInfo`] |
//!
//! `upto` is the last sequence number the daemon looked at for that batch:
//! a consumer resumes from `upto + 1` even when its patterns filtered
//! everything out.

use serde::{Deserialize, Serialize};

/// `status` of a stored envelope.
pub const STORED: u8 = 0;
/// `status` of an envelope whose `msg_id` was already in the log: `seq` is
/// the earlier copy's (a publisher's retry is idempotent).
pub const DUPLICATE: u8 = 1;
/// `status` of a rejected envelope: `detail` says why; nothing was stored.
pub const REJECTED: u8 = 2;

/// The name of the error `publish` answers when it stored nothing for a
/// reason that is not the envelopes' (the daemon is shutting down, its log
/// failed): publishers send the batch again.
pub const UNAVAILABLE: &str = "BusUnavailable";

/// The answer for one published envelope: `(seq, status, detail)`.
pub type Outcome = (u64, u8, String);

/// A batch of a subscription: `(upto, [(seq, envelope json)])`.
pub type Batch = (u64, Vec<(u64, String)>);

/// What the daemon says about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BusInfo {
    /// The fedmsg-wire PUB endpoint, as bound.
    pub publish: String,
    /// fedmsg's REQ/REP replay endpoint, as bound (empty: none).
    pub replay: String,
    /// The last sequence number stored (0: none yet).
    pub last_seq: u64,
    /// The oldest sequence number still in the log (0: empty).
    pub first_seq: u64,
    /// Envelopes stored since the daemon started.
    pub stored: u64,
    /// Envelopes answered as duplicates.
    pub duplicates: u64,
    /// Envelopes rejected, by reason (`malformed`, `too_large`, `schema`,
    /// `signature`, `store`).
    pub rejected: Vec<(String, u64)>,
    /// Live subscriptions.
    pub subscribers: u64,
    /// Messages the PUB endpoint dropped for slow fedmsg subscribers (our
    /// own subscribers are flow-controlled and read the log instead).
    pub pub_dropped: u64,
    /// Our live subscriptions, each with how far behind the log it is.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionInfo>,
}

/// One live subscription, as the daemon sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    /// Its topic patterns (none: all).
    pub patterns: Vec<String>,
    /// The next sequence number it will be sent (it took everything
    /// before; flow control holds the rest back until it asks).
    pub position: u64,
    /// Messages stored that it has not been sent yet (its lag).
    pub lag: u64,
}
