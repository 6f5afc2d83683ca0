//! Parsing fedmsg's replay query: one JSON object with one key.

use serde_json::Value;

use super::ReplayError;

/// The most ids a `seq_ids` or `msg_ids` query may list.
pub const MAX_LIST_LEN: usize = 10_000;

/// The widest `seq_id_range` (its upper bound minus its lower bound).
pub const MAX_SEQ_RANGE: u64 = 1_000_000;

/// A replay query, as fedmsg's `get_replay` sends it (one key; fedmsg's
/// own store would OR several keys together, but its client never sends
/// more than one, so more is refused).
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayQuery {
    /// `{"seq_id": n}`: the message with this seq.
    SeqId(u64),
    /// `{"seq_ids": [n, ...]}`: the messages with these seqs.
    SeqIds(Vec<u64>),
    /// `{"seq_id_range": [a, b]}`: the messages with a < seq ≤ b. fedmsg's
    /// client sends (last seen, current) and appends the current message
    /// itself only when the answer does not end with it, so the lower end
    /// must be excluded (it was seen) and the upper end included (then the
    /// answer ends with it and nothing is doubled).
    SeqIdRange(u64, u64),
    /// `{"msg_id": "..."}`: the message with this msg_id.
    MsgId(String),
    /// `{"msg_ids": ["...", ...]}`: the messages with these msg_ids.
    MsgIds(Vec<String>),
    /// `{"time": [from, to]}`: the messages with from ≤ timestamp ≤ to
    /// (seconds since the Unix epoch).
    Time(f64, f64),
}

impl ReplayQuery {
    /// Parses one request frame: UTF-8 JSON, an object with exactly one of
    /// the keys above, of the right type.
    pub fn parse(bytes: &[u8]) -> Result<ReplayQuery, ReplayError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ReplayError::NotUtf8)?;
        let value: Value = serde_json::from_str(text).map_err(ReplayError::NotJson)?;
        let Value::Object(map) = value else {
            return Err(ReplayError::NotAnObject);
        };
        let mut entries = map.into_iter();
        let (key, value) = entries.next().ok_or(ReplayError::NoKey)?;
        if entries.next().is_some() {
            return Err(ReplayError::SeveralKeys);
        }
        let wrong = |expected: &'static str| ReplayError::WrongType {
            key: key.clone(),
            expected,
        };
        match key.as_str() {
            "seq_id" => Ok(ReplayQuery::SeqId(
                seq(&value).ok_or_else(|| wrong("a non-negative integer"))?,
            )),
            "seq_ids" => {
                let items = list(&key, &value, "a list of non-negative integers")?;
                let seqs = items
                    .iter()
                    .map(seq)
                    .collect::<Option<Vec<u64>>>()
                    .ok_or_else(|| wrong("a list of non-negative integers"))?;
                Ok(ReplayQuery::SeqIds(seqs))
            }
            "seq_id_range" => {
                let [a, b] =
                    pair(&value).ok_or_else(|| wrong("a pair of non-negative integers"))?;
                let (a, b) = seq(a)
                    .zip(seq(b))
                    .ok_or_else(|| wrong("a pair of non-negative integers"))?;
                if a > b {
                    return Err(ReplayError::Reversed {
                        key,
                        from: a.to_string(),
                        to: b.to_string(),
                    });
                }
                if b - a > MAX_SEQ_RANGE {
                    return Err(ReplayError::TooWide {
                        width: b - a,
                        max: MAX_SEQ_RANGE,
                    });
                }
                Ok(ReplayQuery::SeqIdRange(a, b))
            }
            "msg_id" => Ok(ReplayQuery::MsgId(
                value.as_str().ok_or_else(|| wrong("a string"))?.to_owned(),
            )),
            "msg_ids" => {
                let items = list(&key, &value, "a list of strings")?;
                let ids = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| wrong("a list of strings"))?;
                Ok(ReplayQuery::MsgIds(ids))
            }
            "time" => {
                let [a, b] = pair(&value).ok_or_else(|| wrong("a pair of numbers"))?;
                let (a, b) = a
                    .as_f64()
                    .zip(b.as_f64())
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .ok_or_else(|| wrong("a pair of numbers"))?;
                if a > b {
                    return Err(ReplayError::Reversed {
                        key,
                        from: a.to_string(),
                        to: b.to_string(),
                    });
                }
                Ok(ReplayQuery::Time(a, b))
            }
            _ => Err(ReplayError::UnknownKey(key)),
        }
    }
}

/// A non-negative integer (not a float, not a bool).
fn seq(v: &Value) -> Option<u64> {
    v.as_u64()
}

fn pair(v: &Value) -> Option<&[Value; 2]> {
    v.as_array()?.as_slice().try_into().ok()
}

fn list<'v>(key: &str, v: &'v Value, expected: &'static str) -> Result<&'v [Value], ReplayError> {
    let items = v.as_array().ok_or_else(|| ReplayError::WrongType {
        key: key.to_owned(),
        expected,
    })?;
    if items.is_empty() {
        return Err(ReplayError::EmptyList(key.to_owned()));
    }
    if items.len() > MAX_LIST_LEN {
        return Err(ReplayError::ListTooLong {
            key: key.to_owned(),
            len: items.len(),
            max: MAX_LIST_LEN,
        });
    }
    Ok(items)
}
