//! Ids as the protocol carries them, read without allocating in the
//! common case.
//!
//! Tuple ids are strings. Every id our runner sends is a string of decimal
//! digits, and so is every id Storm's ShellBolt sends (a random `long`,
//! possibly negative): such a string is held as the number it spells and
//! written back digit for digit. Any other string is kept as text.

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::tuple::Value;

/// A tuple's id in the multi-lang protocol (what a bolt acks, fails and
/// anchors to).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TupleId(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// A string that is the canonical decimal text of this number.
    Num(i64),
    Text(Arc<str>),
}

impl TupleId {
    /// The id a string names.
    pub fn new(text: &str) -> TupleId {
        match canonical_number(text) {
            Some(n) => TupleId(Repr::Num(n)),
            None => TupleId(Repr::Text(text.into())),
        }
    }

    /// The number the id spells, when it is a canonical decimal string.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            Repr::Num(n) => Some(n),
            Repr::Text(_) => None,
        }
    }
}

impl From<i64> for TupleId {
    fn from(n: i64) -> TupleId {
        TupleId(Repr::Num(n))
    }
}

impl From<&str> for TupleId {
    fn from(text: &str) -> TupleId {
        TupleId::new(text)
    }
}

impl fmt::Display for TupleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Num(n) => write!(f, "{n}"),
            Repr::Text(t) => f.write_str(t),
        }
    }
}

impl fmt::Debug for TupleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl PartialEq<str> for TupleId {
    fn eq(&self, other: &str) -> bool {
        match &self.0 {
            Repr::Num(n) => canonical_number(other) == Some(*n),
            Repr::Text(t) => &**t == other,
        }
    }
}

impl PartialEq<&str> for TupleId {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

/// The number a string spells when the string is exactly that number's
/// decimal text (so writing the number gives the string back): digits with
/// an optional `-`, no leading zero, no `-0`, within `i64`.
fn canonical_number(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let ok = match digits {
        [] => false,
        [b'0'] => digits.len() == b.len(),
        [b'0', ..] => false,
        _ => digits.iter().all(u8::is_ascii_digit),
    };
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

impl Serialize for TupleId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Num(n) => {
                let mut buf = [0u8; 20];
                // Only ASCII digits and '-' are written.
                let text = std::str::from_utf8(super::json_out::decimal(*n, &mut buf));
                s.serialize_str(text.unwrap_or("0"))
            }
            Repr::Text(t) => s.serialize_str(t),
        }
    }
}

/// An `id` (or an anchor) as a peer sent it: a string (held as a
/// [`TupleId`]), an integer, or any other JSON value (spouts' message ids
/// may be anything). Reading one allocates only for text that is not a
/// number, and for values that are not strings or integers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WireId {
    Str(TupleId),
    Int(i64),
    Other(Value),
}

impl WireId {
    /// As a tuple id: strings as they are, integers as their decimal text
    /// (what Storm's workers would read), anything else is not one.
    pub(crate) fn tuple_id(&self) -> Option<TupleId> {
        match self {
            WireId::Str(t) => Some(t.clone()),
            WireId::Int(n) => Some(TupleId::from(*n)),
            WireId::Other(_) => None,
        }
    }

    /// As the JSON value the peer sent.
    pub(crate) fn into_value(self) -> Value {
        match self {
            WireId::Str(t) => Value::String(t.to_string()),
            WireId::Int(n) => Value::from(n),
            WireId::Other(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireId, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an id")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<WireId, E> {
                Ok(WireId::Str(TupleId::new(s)))
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<WireId, E> {
                match std::str::from_utf8(b) {
                    Ok(s) => self.visit_str(s),
                    Err(_) => Ok(WireId::Other(Value::Array(
                        b.iter().map(|x| Value::from(*x)).collect(),
                    ))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<WireId, E> {
                Ok(WireId::Int(n))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<WireId, E> {
                Ok(match i64::try_from(n) {
                    Ok(n) => WireId::Int(n),
                    Err(_) => WireId::Other(Value::from(n)),
                })
            }
            fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<WireId, E> {
                Ok(WireId::Other(
                    serde_json::Number::from_f64(f)
                        .map(Value::Number)
                        .unwrap_or(Value::Null),
                ))
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<WireId, E> {
                Ok(WireId::Other(Value::Bool(b)))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<WireId, E> {
                Ok(WireId::Other(Value::Null))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<WireId, E> {
                Ok(WireId::Other(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<WireId, D::Error> {
                WireId::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, a: A) -> Result<WireId, A::Error> {
                Value::deserialize(serde::de::value::SeqAccessDeserializer::new(a))
                    .map(WireId::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<WireId, A::Error> {
                Value::deserialize(serde::de::value::MapAccessDeserializer::new(a))
                    .map(WireId::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_are_numbers_and_round_trip() {
        for s in [
            "0",
            "7",
            "-3",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            let id = TupleId::new(s);
            assert!(id.as_i64().is_some(), "{s}");
            assert_eq!(id.to_string(), s);
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{s}\""));
            assert!(id == s);
        }
        for s in [
            "",
            "-",
            "-0",
            "007",
            "+5",
            "1e3",
            " 1",
            "9223372036854775808",
            "abc",
        ] {
            let id = TupleId::new(s);
            assert_eq!(id.as_i64(), None, "{s:?}");
            assert_eq!(id.to_string(), s);
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("{s:?}"));
        }
        assert_ne!(TupleId::new("7"), TupleId::new("07"));
    }

    #[test]
    fn wire_ids_keep_what_was_sent() {
        let read = |j: &str| serde_json::from_str::<WireId>(j).unwrap();
        assert_eq!(read("\"12\"").tuple_id(), Some(TupleId::from(12)));
        assert_eq!(read("\"12\"").into_value(), Value::from("12"));
        assert_eq!(read("12").into_value(), Value::from(12));
        assert_eq!(read("12").tuple_id(), Some(TupleId::new("12")));
        assert_eq!(read("\"x-1\"").into_value(), Value::from("x-1"));
        assert_eq!(read("[1,{\"a\":2}]").tuple_id(), None);
        assert_eq!(
            read("[1,{\"a\":2}]").into_value(),
            serde_json::json!([1, {"a": 2}])
        );
        assert_eq!(read("null").into_value(), Value::Null);
        assert_eq!(read("1.5").into_value(), Value::from(1.5));
        assert_eq!(
            read("18446744073709551615").into_value(),
            Value::from(u64::MAX)
        );
    }
}
