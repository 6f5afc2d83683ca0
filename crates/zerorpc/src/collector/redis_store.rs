//! [`RedisStore`]: records, counters and histograms in Redis (the `redis`
//! feature).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::now_us;
use crate::error::Error;
use crate::record::{
    rows, side_label, slot_of, Histogram, MethodKeys, MethodRow, MethodStats, Record, TraceSink,
    TraceStore, SLOTS_KEPT, SLOT_SECS,
};

/// Records in Redis:
/// - `PREFIX:trace:ID`: a list of msgpack records, expiring `ttl` after
///   its last record;
/// - `PREFIX:calls`: a hash counting calls per `side|service|method|OUTCOME`;
/// - `PREFIX:latency`: a hash with `side|service|method|count`, `...|sum_us`
///   and a latency histogram (`...|b17`: calls in bucket 17, see
///   [`Histogram`]);
/// - `PREFIX:slot:N`: the same counts and histogram buckets for the calls
///   that ended in 10-second slot N (Unix time / 10), expiring after ten
///   minutes, for rates and quantiles over recent windows.
#[derive(Clone)]
pub struct RedisStore {
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
    ttl: Duration,
    /// The statistics' keys this collector writes, within the default
    /// [`KeyLimits`](crate::record::KeyLimits).
    keys: Arc<std::sync::Mutex<MethodKeys>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn redis_err(e: redis::RedisError) -> Error {
    Error::Store(format!("redis: {e}"))
}

/// Adds a `side|service|method|FIELD` hash to a stats table: an outcome
/// count, a histogram bucket (`bN`), or the latency `count`/`sum_us`.
fn parse_field(table: &mut BTreeMap<(String, String, String), MethodStats>, f: &str, n: u64) {
    // (service names may hold '|', side and method do not)
    let Some((side, rest)) = f.split_once('|') else {
        return;
    };
    let Some((rest, field)) = rest.rsplit_once('|') else {
        return;
    };
    let Some((service, method)) = rest.rsplit_once('|') else {
        return;
    };
    let m = table
        .entry((side.to_owned(), service.to_owned(), method.to_owned()))
        .or_default();
    match field {
        "count" => {}
        "sum_us" => m.latency.sum_us = n,
        f => match f.strip_prefix('b').map(str::parse::<u16>) {
            Some(Ok(b)) => m.latency.add_n(b, n),
            Some(Err(_)) => {}
            None => *m.outcomes.entry(f.to_owned()).or_default() += n,
        },
    }
}

impl RedisStore {
    /// Connects to Redis at `url` (`redis://127.0.0.1/`); keys start with
    /// `prefix` (`zerorpc` by convention).
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(redis_err)?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(redis_err)?;
        Ok(RedisStore {
            conn,
            keys: Arc::default(),
            prefix: prefix.to_owned(),
            ttl,
        })
    }

    fn trace_key(&self, id: &str) -> String {
        format!("{}:trace:{id}", self.prefix)
    }

    /// The records of a trace (none once expired), by start time.
    pub async fn trace(&self, id: &str) -> Result<Vec<Record>, Error> {
        let mut conn = self.conn.clone();
        let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.trace_key(id))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        let mut out = Vec::with_capacity(raw.len());
        for r in raw {
            match rmp_serde::from_slice::<Record>(&r) {
                Ok(rec) => out.push(rec),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable record in redis"),
            }
        }
        out.sort_by_key(|r| r.start_us);
        Ok(out)
    }

    /// Calls counted for `side|service|method|OUTCOME`.
    pub async fn calls(
        &self,
        side_: crate::record::Side,
        service: &str,
        method: &str,
        outcome: &str,
    ) -> Result<u64, Error> {
        let mut conn = self.conn.clone();
        let n: Option<u64> = redis::cmd("HGET")
            .arg(format!("{}:calls", self.prefix))
            .arg(format!(
                "{}|{service}|{method}|{outcome}",
                side_label(side_)
            ))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(n.unwrap_or(0))
    }

    /// Deletes the counters and slots (traces expire by themselves).
    pub async fn clear_counters(&self) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:slot:*", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        keys.push(format!("{}:calls", self.prefix));
        keys.push(format!("{}:latency", self.prefix));
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)
    }

    /// Seconds left before a trace expires (`None`: no such trace).
    pub async fn ttl_of(&self, id: &str) -> Result<Option<u64>, Error> {
        let mut conn = self.conn.clone();
        let t: i64 = redis::cmd("TTL")
            .arg(self.trace_key(id))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(u64::try_from(t).ok())
    }

    /// Per-method stats over the slots from `since_us` on, or since the
    /// counters were created.
    pub async fn stats(&self, since_us: Option<u64>) -> Result<Vec<MethodRow>, Error> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = match since_us {
            None => vec![
                format!("{}:calls", self.prefix),
                format!("{}:latency", self.prefix),
            ],
            Some(since) => {
                let slot_us = SLOT_SECS * 1_000_000;
                let last = now_us() / slot_us;
                let first = (since / slot_us).max(last.saturating_sub(SLOTS_KEPT));
                (first..=last)
                    .map(|n| format!("{}:slot:{n}", self.prefix))
                    .collect()
            }
        };
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("HGETALL").arg(k);
        }
        let hashes: Vec<Vec<(String, u64)>> =
            pipe.query_async(&mut conn).await.map_err(redis_err)?;
        let mut table = BTreeMap::new();
        for (f, n) in hashes.iter().flatten() {
            parse_field(&mut table, f, *n);
        }
        Ok(rows(table))
    }
}

impl TraceSink for RedisStore {
    fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
        let mut conn = self.conn.clone();
        let prefix = self.prefix.clone();
        let ttl = self.ttl.as_secs().max(1);
        let slot_ttl = (SLOTS_KEPT + 1) * SLOT_SECS;
        let keys = self.keys.clone();
        Box::pin(async move {
            let mut pipe = redis::pipe();
            let calls = format!("{prefix}:calls");
            let latency = format!("{prefix}:latency");
            for r in &batch {
                let bytes = rmp_serde::to_vec_named(r).map_err(|e| e.to_string())?;
                let key = format!("{prefix}:trace:{}", r.trace_id);
                pipe.cmd("RPUSH").arg(&key).arg(bytes).ignore();
                pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
                let (side, service, method) =
                    keys.lock().unwrap_or_else(|p| p.into_inner()).key_for(r);
                let what = format!("{side}|{service}|{method}");
                let outcome = format!("{what}|{}", r.outcome.label());
                let bucket = format!("{what}|b{}", Histogram::bucket_of(r.duration_us));
                let slot = format!("{prefix}:slot:{}", slot_of(r));
                for (hash, field, n) in [
                    (&calls, &outcome, 1),
                    (&latency, &format!("{what}|count"), 1),
                    (&latency, &format!("{what}|sum_us"), r.duration_us),
                    (&latency, &bucket, 1),
                    (&slot, &outcome, 1),
                    (&slot, &bucket, 1),
                ] {
                    pipe.cmd("HINCRBY").arg(hash).arg(field).arg(n).ignore();
                }
                pipe.cmd("EXPIRE").arg(&slot).arg(slot_ttl).ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| format!("redis: {e}"))
        })
    }
}

impl TraceStore for RedisStore {
    fn trace(&self, trace_id: &str) -> BoxFuture<'static, Result<Vec<Record>, String>> {
        let this = self.clone();
        let id = trace_id.to_owned();
        Box::pin(async move {
            RedisStore::trace(&this, &id)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn stats(&self, since_us: Option<u64>) -> BoxFuture<'static, Result<Vec<MethodRow>, String>> {
        let this = self.clone();
        Box::pin(async move {
            RedisStore::stats(&this, since_us)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_fields_parse_into_stats() {
        let mut t = BTreeMap::new();
        for (f, n) in [
            ("server|demo|echo|OK", 3),
            ("server|demo|echo|ERR", 1),
            ("server|demo|echo|b20", 4),
            ("server|demo|echo|sum_us", 99),
            ("server|demo|echo|count", 4),
            ("client|tcp://h:1|x|y|echo|OK", 2),
            ("garbage", 5),
            ("server|demo|echo|bogus", 0),
            ("server|demo|echo|bxx", 7),
        ] {
            parse_field(&mut t, f, n);
        }
        let m = &t[&("server".into(), "demo".into(), "echo".into())];
        assert_eq!((m.calls(), m.failures(), m.latency.count), (4, 1, 4));
        assert_eq!(m.latency.sum_us, 99);
        assert_eq!(
            t[&("client".into(), "tcp://h:1|x|y".into(), "echo".into())].calls(),
            2
        );
    }
}
