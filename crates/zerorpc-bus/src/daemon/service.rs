//! The ingest endpoint's ZeroRPC service (see [`crate::protocol`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::Stream;
use zerorpc::{CallError, ServerOptions};

use super::writer::{Prepared, Shared, Subscription};
use crate::glob::TopicFilter;
use crate::message::Message;
use crate::protocol::{Batch, BusInfo, Outcome, DUPLICATE, REJECTED, STORED, UNAVAILABLE};
use crate::store::{Appended, Record};

/// Most messages in one subscription batch.
const BATCH: usize = 512;

/// The server's limits: a publish batch is many envelopes.
pub(crate) fn server_options(max_message_bytes: usize) -> ServerOptions {
    let mut opts = ServerOptions::default();
    // A batch of up to 4,096 envelopes plus framing.
    let most = (max_message_bytes as u64).saturating_mul(8).max(64 << 20);
    opts.socket.limits.max_message_size = most;
    opts
}

/// The bus daemon's ingest service.
pub struct BusService {
    shared: Arc<Shared>,
    publish: String,
    replay: Option<String>,
}

impl BusService {
    pub(crate) fn new(shared: Arc<Shared>, publish: String, replay: Option<String>) -> Self {
        BusService {
            shared,
            publish,
            replay,
        }
    }

    /// Checks one envelope; `Err` says why it is rejected.
    fn prepare(&self, json: &str) -> Result<Prepared, String> {
        let s = &self.shared;
        if json.len() > s.max_message_bytes {
            s.rejected.too_large.fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "message of {} bytes is larger than the bus accepts ({} bytes)",
                json.len(),
                s.max_message_bytes
            ));
        }
        let msg = Message::from_json(json).map_err(|e| {
            s.rejected.malformed.fetch_add(1, Ordering::Relaxed);
            format!("malformed envelope: {e}")
        })?;
        if msg.topic.is_empty() {
            s.rejected.malformed.fetch_add(1, Ordering::Relaxed);
            return Err("malformed envelope: empty topic".into());
        }
        if let Some(schemas) = &s.schemas {
            let _valid = schemas.check(&msg.topic, &msg.msg).map_err(|e| {
                s.rejected.schema.fetch_add(1, Ordering::Relaxed);
                e.to_string()
            })?;
        }
        if let Some(v) = &s.validator {
            v.validate(&msg).map_err(|e| {
                s.rejected.signature.fetch_add(1, Ordering::Relaxed);
                format!("signature rejected: {e}")
            })?;
        }
        Ok(Prepared {
            json: msg.to_canonical_json(),
            signed: msg.is_signed(),
            topic: msg.topic,
            msg_id: msg.msg_id,
            timestamp: msg.timestamp,
        })
    }
}

#[zerorpc::service]
impl BusService {
    /// Publish fedmsg envelopes (canonical JSON): one [seq, status, detail]
    /// each once durable; status 0 stored, 1 already stored (seq of the
    /// earlier copy), 2 rejected (detail says why). A BusUnavailable error
    /// (shutting down, the log failing) means nothing was stored: send
    /// them again.
    pub async fn publish(&self, envelopes: Vec<String>) -> Result<Vec<Outcome>, CallError> {
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(envelopes.len());
        let mut accepted = Vec::with_capacity(envelopes.len());
        let mut slots = Vec::with_capacity(envelopes.len());
        for (i, json) in envelopes.iter().enumerate() {
            match self.prepare(json) {
                Ok(p) => {
                    accepted.push(p);
                    slots.push(i);
                    outcomes.push((0, STORED, String::new()));
                }
                Err(why) => outcomes.push((0, REJECTED, why)),
            }
        }
        match self.shared.append(accepted).await {
            Ok(appended) => {
                for (slot, a) in slots.into_iter().zip(appended) {
                    outcomes[slot] = match a {
                        Appended::New(seq) => (seq, STORED, String::new()),
                        Appended::Duplicate(seq) => (seq, DUPLICATE, String::new()),
                    };
                }
            }
            Err(why) => return Err(CallError::new(UNAVAILABLE, why)),
        }
        Ok(outcomes)
    }

    /// Follow the log from sequence number since (0: from the next message
    /// on), keeping topics matching any of patterns (none: all): a stream
    /// of [upto, [[seq, envelope], ...]].
    #[zerorpc(stream)]
    pub fn subscribe(
        &self,
        since: u64,
        patterns: Vec<String>,
    ) -> impl Stream<Item = Batch> + Send + 'static {
        let shared = self.shared.clone();
        let cursor = if since == 0 {
            shared.last_seq() + 1
        } else {
            since
        };
        shared.subscribers.fetch_add(1, Ordering::Relaxed);
        let id = shared.next_subscription.fetch_add(1, Ordering::Relaxed);
        let me = Arc::new(Subscription {
            patterns: patterns.clone(),
            position: std::sync::atomic::AtomicU64::new(cursor),
        });
        shared
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, me.clone());
        let state = Follow {
            _guard: SubscriberGuard(shared.clone(), id),
            watch: shared.watch_last(),
            shared,
            cursor,
            me,
            filter: TopicFilter::new(patterns),
            primed: false,
        };
        futures::stream::unfold(state, |mut st| async move {
            if !st.primed {
                // An answer at once, so the caller knows it is following
                // even when nothing is published for a while.
                st.primed = true;
                return Some(((st.cursor - 1, Vec::new()), st));
            }
            loop {
                let last = *st.watch.borrow_and_update();
                if st.cursor > last {
                    st.watch.changed().await.ok()?;
                    continue;
                }
                let records = match st.shared.read(st.cursor, BATCH).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("bus subscription: reading the log: {e}");
                        return None;
                    }
                };
                let Some(upto) = records.last().map(|r| r.seq) else {
                    // Nothing there (pruned under us): wait for more.
                    st.watch.changed().await.ok()?;
                    continue;
                };
                st.cursor = upto + 1;
                st.me.position.store(st.cursor, Ordering::Relaxed);
                return Some(((upto, matching(&records, &st.filter)), st));
            }
        })
    }

    /// Read up to limit messages from sequence number from, keeping topics
    /// matching patterns: [upto, [[seq, envelope], ...]] (upto 0: nothing
    /// at or after from yet). BusUnavailable: the log could not be read.
    pub async fn read(
        &self,
        from: u64,
        patterns: Vec<String>,
        limit: u64,
    ) -> Result<Batch, CallError> {
        let filter = TopicFilter::new(patterns);
        let limit = (limit as usize).clamp(1, 10_000);
        match self.shared.read(from.max(1), limit).await {
            Ok(records) => {
                let upto = records.last().map(|r| r.seq).unwrap_or(0);
                Ok((upto, matching(&records, &filter)))
            }
            Err(e) => {
                tracing::warn!("bus read: {e}");
                Err(CallError::new(UNAVAILABLE, e.to_string()))
            }
        }
    }

    /// The first sequence number stored at or after unix time since (the
    /// next one when none is).
    pub async fn seek_time(&self, since: f64) -> u64 {
        let next = self.shared.last_seq() + 1;
        let Ok(store) = self.shared.store() else {
            return next;
        };
        tokio::task::spawn_blocking(move || store.range_by_time(since, f64::MAX, 1))
            .await
            .ok()
            .and_then(|r| r.ok())
            .and_then(|records| records.first().map(|r| r.seq))
            .unwrap_or(next)
    }

    /// The daemon's endpoints, positions and counters.
    pub fn info(&self) -> BusInfo {
        self.shared
            .info(&self.publish, self.replay.as_deref().unwrap_or(""))
    }
}

/// The records whose topic passes `filter`, as a batch carries them.
fn matching(records: &[Arc<Record>], filter: &TopicFilter) -> Vec<(u64, String)> {
    records
        .iter()
        .filter(|r| filter.matches(&r.topic))
        .map(|r| (r.seq, r.json.to_string()))
        .collect()
}

struct Follow {
    shared: Arc<Shared>,
    watch: tokio::sync::watch::Receiver<u64>,
    cursor: u64,
    /// Its entry in the daemon's table (the position, for `info`).
    me: Arc<Subscription>,
    filter: TopicFilter,
    primed: bool,
    /// Held for the stream's life.
    _guard: SubscriberGuard,
}

/// Counts a live subscription (and keeps its entry) until its stream is
/// dropped.
struct SubscriberGuard(Arc<Shared>, u64);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::Relaxed);
        let mut subs = self
            .0
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        subs.remove(&self.1);
    }
}
