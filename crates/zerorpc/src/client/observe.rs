//! How a client call ended, as its watch (see [`crate::observe`]) is
//! told.

use super::*;
use crate::observe::Ended;

/// How a collected call ended.
pub(super) fn ended_call(r: &Result<(Value, Option<u64>), Error>) -> Ended<'_> {
    match r {
        Ok((v, None)) => Ended::Value(v),
        Ok((v, Some(items))) => Ended::Collected(v, *items),
        Err(e) => failed(e),
    }
}

/// How a call that failed with `e` ended: a remote error (told to the
/// error hook) or a local one.
pub(super) fn failed(e: &Error) -> Ended<'_> {
    Ended::Other(match e {
        Error::Remote(e) => return Ended::Failed(e),
        Error::Timeout(_) => Outcome::Timeout,
        Error::LostRemote(_) | Error::Disconnected => Outcome::Lost,
        other => Outcome::Err {
            name: "ClientError".into(),
            message: other.to_string(),
        },
    })
}
