//! Log lines a remote peer can trigger at will, rate-limited per cause.
//!
//! A hostile or broken peer can fail handshakes or send garbage as fast as
//! it likes; logging every occurrence would flood the logs and, with a
//! slow log sink, slow the server down. A [`RateLimitedLog`] lets the
//! first occurrence of each cause through, then at most one per period,
//! and says how many were suppressed in between.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rate limiter for log lines, keyed by a static cause.
///
/// ```
/// use std::time::Duration;
/// static LOG: zmtp::RateLimitedLog = zmtp::RateLimitedLog::new(Duration::from_secs(10));
/// if let Some(suppressed) = LOG.admit("bad greeting") {
///     tracing::warn!(suppressed, "bad greeting");
/// }
/// ```
#[derive(Debug)]
pub struct RateLimitedLog {
    every: Duration,
    causes: Mutex<Vec<(&'static str, Slot)>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    last: Option<Instant>,
    suppressed: u64,
    total: u64,
}

impl RateLimitedLog {
    /// At most one line per cause per `every`.
    pub const fn new(every: Duration) -> Self {
        RateLimitedLog {
            every,
            causes: Mutex::new(Vec::new()),
        }
    }

    /// Counts one occurrence of `cause`; `Some(n)` when it should be logged
    /// (`n` occurrences were suppressed since the last line), `None` when
    /// it should not.
    pub fn admit(&self, cause: &'static str) -> Option<u64> {
        self.admit_at(cause, Instant::now())
    }

    /// [`RateLimitedLog::admit`] at an explicit time.
    pub fn admit_at(&self, cause: &'static str, now: Instant) -> Option<u64> {
        let mut causes = self.causes.lock().unwrap_or_else(|p| p.into_inner());
        let i = match causes.iter().position(|(c, _)| *c == cause) {
            Some(i) => i,
            None => {
                causes.push((cause, Slot::default()));
                causes.len() - 1
            }
        };
        let slot = &mut causes[i].1;
        slot.total += 1;
        let due = slot
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.every);
        if due {
            slot.last = Some(now);
            Some(std::mem::take(&mut slot.suppressed))
        } else {
            slot.suppressed += 1;
            None
        }
    }

    /// Occurrences of `cause` so far, logged or not.
    pub fn total(&self, cause: &str) -> u64 {
        let causes = self.causes.lock().unwrap_or_else(|p| p.into_inner());
        causes
            .iter()
            .find(|(c, _)| *c == cause)
            .map_or(0, |(_, s)| s.total)
    }
}

/// This crate's limiter for connection-level warnings.
#[cfg(feature = "tokio")]
pub(crate) static CONNECTION_LOG: RateLimitedLog = RateLimitedLog::new(Duration::from_secs(10));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_one_per_period_per_cause_with_counts() {
        let log = RateLimitedLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.admit_at("a", t0), Some(0));
        for i in 1..=5 {
            assert_eq!(log.admit_at("a", t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(log.admit_at("b", t0), Some(0), "causes are independent");
        assert_eq!(
            log.admit_at("a", t0 + Duration::from_secs(10)),
            Some(5),
            "the next line says how many were suppressed"
        );
        assert_eq!(log.admit_at("a", t0 + Duration::from_secs(11)), None);
        assert_eq!(log.total("a"), 8);
        assert_eq!(log.total("c"), 0);
    }
}
