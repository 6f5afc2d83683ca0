//! JSON ↔ msgpack, the gateway's conventions.
//!
//! | msgpack (zerorpc) | JSON |
//! |---|---|
//! | nil, bool | `null`, `true`/`false` |
//! | int | number (i64 or u64 range) |
//! | float32/64 | number; NaN and ±inf become `null` (JSON has none) |
//! | str | string (invalid UTF-8 replaced by U+FFFD) |
//! | bin, valid UTF-8 | string (Python 3 sends `bytes` as bin, often text) |
//! | bin, not UTF-8 | `{"$base64": "<standard base64, padded>"}` |
//! | array | array |
//! | map | object; a key that is not a string is written as its JSON text (`1` → `"1"`) |
//! | ext | `{"$ext": type, "$base64": "<data>"}` |
//!
//! From JSON: integers become msgpack ints (i64, else u64), other numbers
//! floats, strings str; an object whose only key is `"$base64"` (with a
//! valid base64 string) becomes bin, so a caller can send bytes.

use std::cell::Cell;

use base64::Engine as _;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use zerorpc::Value;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The key marking bytes in JSON.
pub const BASE64_KEY: &str = "$base64";

/// A JSON value as the msgpack value sent to the service.
pub fn from_json(j: serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::from(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s),
        serde_json::Value::Array(a) => Value::Array(a.into_iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            if o.len() == 1 {
                if let Some(serde_json::Value::String(b)) = o.get(BASE64_KEY) {
                    if let Ok(bytes) = B64.decode(b) {
                        return Value::Binary(bytes);
                    }
                }
            }
            Value::Map(
                o.into_iter()
                    .map(|(k, v)| (Value::from(k), from_json(v)))
                    .collect(),
            )
        }
    }
}

/// The deepest nesting serde_json reads.
const SERDE_JSON_MAX_DEPTH: usize = 127;

/// Bounds on what a request body may hold, checked while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most values (msgpack nodes, as [`zerorpc::DecodeLimits`] counts
    /// them: a map entry is two) in all the arguments together.
    pub max_values: usize,
    /// Deepest nesting of arrays and objects, the body's own array or
    /// object being level 1.
    pub max_depth: usize,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON, or not an array, object or `null`.
    #[error("{0}")]
    Malformed(String),
    /// More values than [`Limits::max_values`].
    #[error("the arguments hold more than {0} values")]
    TooManyValues(usize),
    /// Nested deeper than [`Limits::max_depth`].
    #[error("the body nests arrays and objects deeper than {0} levels")]
    TooDeep(usize),
}

/// A request body's arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyArgs {
    /// A JSON array (or `null`, or nothing): positional arguments.
    Positional(Vec<Value>),
    /// A JSON object: arguments by name.
    Named(std::collections::BTreeMap<String, Value>),
}

/// Reads a request body straight into msgpack values (by the module's
/// table, as [`from_json`] does), without building a JSON tree first, and
/// stops as soon as it exceeds `limits`: what it holds is then at most
/// `limits.max_values` values, whatever the body.
pub fn args_from_slice(body: &[u8], limits: Limits) -> Result<BodyArgs, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(BodyArgs::Positional(Vec::new()));
    }
    let budget = Budget {
        limits,
        values: Cell::new(0),
        exceeded: Cell::new(None),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let r = serde::Deserializer::deserialize_any(&mut de, Top(&budget)).and_then(|a| {
        de.end()?;
        Ok(a)
    });
    match (r, budget.exceeded.take()) {
        (_, Some(e)) => Err(e),
        (Ok(Some(a)), None) => Ok(a),
        (Ok(None), None) => Err(BodyError::Malformed(
            "the body must be a JSON array (positional arguments), an object (named arguments), null or empty".into(),
        )),
        // (serde_json's own bound on nesting: 127 levels)
        (Err(e), None) if e.to_string().starts_with("recursion limit exceeded") => {
            Err(BodyError::TooDeep(limits.max_depth.min(SERDE_JSON_MAX_DEPTH)))
        }
        (Err(e), None) => Err(BodyError::Malformed(format!("malformed JSON: {e}"))),
    }
}

struct Budget {
    limits: Limits,
    values: Cell<usize>,
    exceeded: Cell<Option<BodyError>>,
}

impl Budget {
    /// Counts `n` more values.
    fn take<E: serde::de::Error>(&self, n: usize) -> Result<(), E> {
        let v = self.values.get() + n;
        self.values.set(v);
        if v > self.limits.max_values {
            return Err(self.fail(BodyError::TooManyValues(self.limits.max_values)));
        }
        Ok(())
    }

    /// Enters a container at `depth`.
    fn enter<E: serde::de::Error>(&self, depth: usize) -> Result<(), E> {
        if depth > self.limits.max_depth {
            return Err(self.fail(BodyError::TooDeep(self.limits.max_depth)));
        }
        Ok(())
    }

    fn fail<E: serde::de::Error>(&self, e: BodyError) -> E {
        let msg = e.to_string();
        self.exceeded.set(Some(e));
        E::custom(msg)
    }
}

/// The body: an array, an object or `null` (`None`: anything else).
struct Top<'a>(&'a Budget);

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Option<BodyArgs>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array, object or null")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(BodyArgs::Positional(Vec::new())))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.0.enter(1)?;
        let mut args = Vec::new();
        while let Some(v) = seq.next_element_seed(Seed(self.0, 1))? {
            args.push(v);
        }
        Ok(Some(BodyArgs::Positional(args)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.0.enter(1)?;
        let mut args = std::collections::BTreeMap::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Seed(self.0, 1))?;
            args.insert(k, v);
        }
        Ok(Some(BodyArgs::Named(args)))
    }
}

/// One value inside a container at depth `.1`.
#[derive(Clone, Copy)]
struct Seed<'a>(&'a Budget, usize);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.0.take(1)?;
        Ok(Value::Nil)
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        self.0.take(1)?;
        Ok(Value::from(b))
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Value, E> {
        self.0.take(1)?;
        Ok(Value::from(i))
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Value, E> {
        self.0.take(1)?;
        Ok(match i64::try_from(u) {
            Ok(i) => Value::from(i),
            Err(_) => Value::from(u),
        })
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Value, E> {
        self.0.take(1)?;
        Ok(Value::from(f))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        self.0.take(1)?;
        Ok(Value::from(s))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Value, E> {
        self.0.take(1)?;
        Ok(Value::from(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.1 + 1;
        self.0.enter(depth)?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Seed(self.0, depth))? {
            items.push(v);
        }
        // (the array itself, counted last: until then the count is short
        // by at most one per open level)
        self.0.take(1)?;
        // (a Vec grown by pushes keeps room for 4 values at least: give it
        // back, many small arrays would cost twice their due)
        items.shrink_to_fit();
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.1 + 1;
        self.0.enter(depth)?;
        let mut entries: Vec<(Value, Value)> = Vec::new();
        // A first key `$base64` with a string is not counted until it is
        // known not to be bytes (one value in all).
        let mut deferred = 0;
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Seed(self.0, depth))?;
            self.0.take(deferred)?;
            deferred = 0;
            if entries.is_empty() && k == BASE64_KEY && v.is_str() {
                deferred = 1;
            } else {
                self.0.take(1)?;
            }
            entries.push((Value::from(k), v));
        }
        if let [(_, Value::String(b))] = entries.as_slice() {
            if deferred == 1 {
                if let Some(bytes) = b.as_str().and_then(|b| B64.decode(b).ok()) {
                    return Ok(Value::Binary(bytes));
                }
            }
        }
        self.0.take(deferred + 1)?;
        entries.shrink_to_fit();
        Ok(Value::Map(entries))
    }
}

/// A msgpack value as JSON (see the module's table).
pub fn to_json(v: &Value) -> serde_json::Value {
    // (through the serializer, so both paths agree; it cannot fail: every
    // key is written as a string)
    serde_json::to_value(Json(v)).unwrap_or(serde_json::Value::Null)
}

/// A msgpack value as JSON text.
pub fn to_json_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_json(&mut out, v);
    out
}

/// Appends a msgpack value's JSON text to `out`.
pub fn write_json(out: &mut Vec<u8>, v: &Value) {
    if serde_json::to_writer(&mut *out, &Json(v)).is_err() {
        // (unreachable: writing to a Vec with string keys only)
        out.extend_from_slice(b"null");
    }
}

/// Serializes a msgpack value as JSON (see the module's table).
#[derive(Debug, Clone, Copy)]
pub struct Json<'a>(pub &'a Value);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Nil => s.serialize_unit(),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Integer(i) => {
                if let Some(x) = i.as_i64() {
                    s.serialize_i64(x)
                } else if let Some(x) = i.as_u64() {
                    s.serialize_u64(x)
                } else {
                    s.serialize_unit()
                }
            }
            Value::F32(f) => float(s, f64::from(*f)),
            Value::F64(f) => float(s, *f),
            Value::String(st) => match st.as_str() {
                Some(t) => s.serialize_str(t),
                None => s.serialize_str(&String::from_utf8_lossy(st.as_bytes())),
            },
            Value::Binary(b) => match std::str::from_utf8(b) {
                Ok(t) => s.serialize_str(t),
                Err(_) => {
                    let mut m = s.serialize_map(Some(1))?;
                    m.serialize_entry(BASE64_KEY, &B64.encode(b))?;
                    m.end()
                }
            },
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for x in a {
                    seq.serialize_element(&Json(x))?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, x) in entries {
                    m.serialize_entry(&key(k), &Json(x))?;
                }
                m.end()
            }
            Value::Ext(t, d) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("$ext", t)?;
                m.serialize_entry(BASE64_KEY, &B64.encode(d))?;
                m.end()
            }
        }
    }
}

fn float<S: Serializer>(s: S, f: f64) -> Result<S::Ok, S::Error> {
    if f.is_finite() {
        s.serialize_f64(f)
    } else {
        s.serialize_unit()
    }
}

/// A map key as a JSON object key.
fn key(k: &Value) -> std::borrow::Cow<'_, str> {
    match k {
        Value::String(s) => match s.as_str() {
            Some(t) => t.into(),
            None => String::from_utf8_lossy(s.as_bytes()).into_owned().into(),
        },
        Value::Binary(b) => match std::str::from_utf8(b) {
            Ok(t) => t.into(),
            Err(_) => String::from_utf8_lossy(&to_json_bytes(k))
                .into_owned()
                .into(),
        },
        other => String::from_utf8_lossy(&to_json_bytes(other))
            .into_owned()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_to_json_by_the_table() {
        let v = Value::Map(vec![
            (Value::from("s"), Value::from("héllo")),
            (Value::from(1), Value::from(-7)),
            (Value::from("u"), Value::from(u64::MAX)),
            (Value::from("f"), Value::from(2.5)),
            (Value::from("nan"), Value::from(f64::NAN)),
            (Value::from("text"), Value::Binary(b"abc".to_vec())),
            (Value::from("bin"), Value::Binary(vec![0, 255])),
            (Value::Binary(vec![b'k']), Value::Nil),
            (
                Value::from("l"),
                Value::Array(vec![true.into(), Value::Nil]),
            ),
            (Value::from("x"), Value::Ext(5, vec![1, 2])),
        ]);
        assert_eq!(
            to_json(&v),
            json!({
                "s": "héllo", "1": -7, "u": u64::MAX, "f": 2.5, "nan": null,
                "text": "abc", "bin": {"$base64": "AP8="}, "k": null,
                "l": [true, null], "x": {"$ext": 5, "$base64": "AQI="}
            })
        );
        assert_eq!(to_json_bytes(&Value::from("a\nb")), b"\"a\\nb\"");
    }

    #[test]
    fn json_to_values_and_bytes_back() {
        assert_eq!(
            from_json(json!([1, -2, 1.5, "x", null, {"$base64": "AP8="}, {"a": [true]}])),
            Value::Array(vec![
                1.into(),
                (-2).into(),
                1.5.into(),
                "x".into(),
                Value::Nil,
                Value::Binary(vec![0, 255]),
                Value::Map(vec![("a".into(), Value::Array(vec![true.into()]))]),
            ])
        );
        assert_eq!(from_json(json!(u64::MAX)), Value::from(u64::MAX));
        // not base64: an ordinary object
        assert_eq!(
            from_json(json!({"$base64": "!"})),
            Value::Map(vec![("$base64".into(), "!".into())])
        );
        let bytes = Value::Binary(vec![0, 1, 2, 254]);
        assert_eq!(from_json(to_json(&bytes)), bytes);
    }
}
