//! The built-in demo service: used by the README demo, the CLI's
//! `--server ... demo`, and the interop tests. Written with
//! `#[zerorpc::service]`, so its doc comments are what introspection shows.

use std::time::Duration;

use futures::Stream;
use rmpv::Value;

use crate::error::CallError;
use crate::service::type_name_of;

/// Largest `bytes(n)` the demo serves: well under the default 64 MiB
/// message limit, so a large request gets an error rather than a reply the
/// client's transport would refuse.
pub const DEMO_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// The demo service (`demo`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Demo;

#[crate::service(name = "demo")]
impl Demo {
    /// Return x unchanged.
    pub fn echo(&self, x: Value) -> Value {
        x
    }

    /// Add a and b (numbers, strings or lists).
    pub fn add(&self, a: Value, b: Value) -> Result<Value, CallError> {
        add(a, b)
    }

    /// Return 42.
    pub fn lolita(&self) -> i64 {
        42
    }

    /// Stream the integers 0 to n-1.
    #[zerorpc(stream)]
    pub fn range(&self, n: u64) -> impl Stream<Item = u64> + Send + 'static {
        futures::stream::iter(0..n)
    }

    /// Sleep for the given seconds, then return them.
    pub async fn slow(&self, seconds: f64) -> Result<f64, CallError> {
        if !(0.0..=86_400.0).contains(&seconds) {
            return Err(CallError::new(
                "ValueError",
                "seconds must be between 0 and 86400",
            ));
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        Ok(seconds)
    }

    /// Raise DemoError with the given message.
    pub fn fail(&self, message: String) -> Result<(), CallError> {
        // Ends with `Name: message` like a Python traceback: Python
        // clients show the traceback in place of the message.
        let traceback = format!("  in demo.fail (zerorpc-rs demo service)\nDemoError: {message}");
        Err(CallError::new("DemoError", message).with_traceback(traceback))
    }

    /// Return n bytes (msgpack bin).
    pub fn bytes(&self, n: u64) -> Result<Value, CallError> {
        if n > DEMO_MAX_BYTES {
            return Err(CallError::new(
                "ValueError",
                format!("n must be at most {DEMO_MAX_BYTES}"),
            ));
        }
        Ok(Value::Binary((0..n).map(|i| (i % 251) as u8).collect()))
    }

    /// Return a record {name, value}: a struct, which peers receive as a map.
    pub fn record(&self, name: String, value: f64) -> Reading {
        Reading { name, value }
    }
}

/// What `record` returns: a plain `#[derive(Serialize)]` struct, sent as
/// the map `{"name": ..., "value": ...}` (a Python `dict`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reading {
    /// The name given.
    pub name: String,
    /// The value given.
    pub value: f64,
}

/// The demo service, ready to serve.
pub fn demo_service() -> crate::DynamicService {
    crate::IntoService::into_service(Demo)
}

fn add(a: Value, b: Value) -> Result<Value, CallError> {
    Ok(match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => match x.checked_add(y) {
                Some(s) => Value::from(s),
                None => Value::from(x as f64 + y as f64),
            },
            _ => Value::from(x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0)),
        },
        (Value::String(x), Value::String(y)) => Value::from(format!(
            "{}{}",
            x.as_str().unwrap_or(""),
            y.as_str().unwrap_or("")
        )),
        (Value::Array(mut x), Value::Array(y)) => {
            x.extend(y);
            Value::Array(x)
        }
        (a, b) => match (number(&a), number(&b)) {
            (Some(x), Some(y)) => Value::from(x + y),
            _ => {
                return Err(CallError::bad_args(format!(
                    "unsupported operand type(s) for +: '{}' and '{}'",
                    type_name_of(&a),
                    type_name_of(&b)
                )))
            }
        },
    })
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => i.as_f64(),
        Value::F32(f) => Some(f64::from(*f)),
        Value::F64(f) => Some(*f),
        _ => None,
    }
}
