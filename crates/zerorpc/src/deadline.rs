//! Deadlines across hops.
//!
//! A request may carry the caller's remaining budget in its header
//! (`deadline_ms`: milliseconds left when it was sent; relative, so the
//! hosts' clocks need not agree). zerorpc-python and zerorpc-node ignore
//! the key. Our client sends the smaller of its call timeout and the
//! deadline it runs under; our server:
//!
//! * runs the handler under the deadline (received time + budget), so the
//!   calls the handler makes inherit what is left of it ([`current`],
//!   [`remaining`]) and fail with [`Error::DeadlineExceeded`] when it
//!   passes;
//! * when the deadline passes before the first reply, polls the handler
//!   one last time (so a handler whose own inner call just failed answers
//!   with that error), then cancels it and answers `ERR DeadlineExceeded`.
//!
//! A deadline bounds the wait for the first reply, as zerorpc's call
//! timeout does: a stream that started in time runs on.
//!
//! Code outside a handler can set one for a block of calls with [`scope`].
//! A client with a [`RetryPolicy`](crate::RetryPolicy) runs all the
//! attempts of a call under one deadline (its timeout), so retries never
//! outlive it.
//!
//! [`Error::DeadlineExceeded`]: crate::Error::DeadlineExceeded

use std::future::Future;
use std::time::{Duration, Instant};

/// The header key carrying the remaining budget, in milliseconds.
pub const HEADER_KEY: &str = "deadline_ms";

/// The name of the error a server answers when a call's deadline passes.
pub const ERROR_NAME: &str = "DeadlineExceeded";

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The deadline the current task runs under (a handler of a call that
/// carried one, or [`scope`]), if any.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// What is left of [`current`] (zero once it passed).
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// Runs `f` under the deadline `at`: the calls it makes wait at most until
/// then (an earlier deadline already in force wins).
pub async fn scope<F: Future>(at: Instant, f: F) -> F::Output {
    let at = current().map_or(at, |outer| outer.min(at));
    DEADLINE.scope(at, f).await
}

/// Runs `f` under the deadline `at`, if any, as it is, without an earlier
/// one to compare it with (a server polling its handler).
pub(crate) fn sync_scoped<R>(at: Option<Instant>, f: impl FnOnce() -> R) -> R {
    match at {
        Some(at) => DEADLINE.sync_scope(at, f),
        None => f(),
    }
}

/// The budget a header carries as a duration.
pub(crate) fn budget_of(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A duration as the header's milliseconds (rounded up, so a budget under
/// a millisecond is not sent as none left).
pub(crate) fn millis_of(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_sets_the_deadline_and_an_earlier_one_wins() {
        assert_eq!(current(), None);
        let now = Instant::now();
        let (soon, later) = (now + Duration::from_secs(1), now + Duration::from_secs(5));
        scope(soon, async move {
            assert_eq!(current(), Some(soon));
            assert!(remaining().unwrap() <= Duration::from_secs(1));
            scope(later, async move { assert_eq!(current(), Some(soon)) }).await;
        })
        .await;
        scope(later, async move {
            scope(soon, async move { assert_eq!(current(), Some(soon)) }).await;
        })
        .await;
    }

    #[test]
    fn millis_round_up() {
        assert_eq!(millis_of(Duration::from_micros(1)), 1);
        assert_eq!(millis_of(Duration::from_millis(1500)), 1500);
        assert_eq!(millis_of(Duration::from_micros(1500)), 2);
        assert_eq!(millis_of(Duration::MAX), u64::MAX);
        assert_eq!(budget_of(250), Duration::from_millis(250));
    }
}
