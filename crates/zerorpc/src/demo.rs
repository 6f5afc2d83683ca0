//! The built-in demo service: used by the README demo, the CLI's
//! `--server ... demo`, and the interop tests.

use std::time::Duration;

use futures::stream;
use rmpv::Value;

use crate::service::{arg, parse_args, CallError, DynamicService};

/// Largest `range(n)` / `bytes(n)` the demo serves (keeps it safe to expose).
pub const DEMO_MAX_N: u64 = 100_000_000;

/// Builds the demo service.
pub fn demo_service() -> DynamicService {
    DynamicService::new("demo")
        .method("echo", "Return x unchanged.", &["x"], |args| async move {
            let (x,): (Value,) = parse_args("echo", &["x"], args)?;
            Ok(x)
        })
        .method(
            "add",
            "Add a and b (numbers, strings or lists).",
            &["a", "b"],
            |args| async move {
                let (a, b): (Value, Value) = parse_args("add", &["a", "b"], args)?;
                add(a, b)
            },
        )
        .method("lolita", "Return 42.", &[], |args| async move {
            let () = parse_args("lolita", &[], args)?;
            Ok(Value::from(42))
        })
        .stream_method(
            "range",
            "Stream the integers 0 to n-1.",
            &["n"],
            |mut args| {
                if args.len() != 1 {
                    return Err(CallError::bad_args(format!(
                        "range() takes 1 positional argument (n) but {} were given",
                        args.len()
                    )));
                }
                let n: u64 = arg("range", "n", args.remove(0))?;
                if n > DEMO_MAX_N {
                    return Err(CallError::new(
                        "ValueError",
                        format!("n must be at most {DEMO_MAX_N}"),
                    ));
                }
                Ok(stream::iter((0..n).map(|i| Ok(Value::from(i)))))
            },
        )
        .method(
            "slow",
            "Sleep for the given seconds, then return them.",
            &["seconds"],
            |mut args| async move {
                if args.len() != 1 {
                    return Err(CallError::bad_args(
                        "slow() takes 1 positional argument (seconds)",
                    ));
                }
                let v = args.remove(0);
                let secs: f64 = arg("slow", "seconds", v.clone())?;
                if !(0.0..=86_400.0).contains(&secs) {
                    return Err(CallError::new(
                        "ValueError",
                        "seconds must be between 0 and 86400",
                    ));
                }
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                Ok(v)
            },
        )
        .method(
            "fail",
            "Raise DemoError with the given message.",
            &["message"],
            |args| async move {
                let (message,): (String,) = parse_args("fail", &["message"], args)?;
                Err(CallError::new("DemoError", message)
                    .with_traceback("  in demo.fail (zerorpc-rs demo service)\nDemoError"))
            },
        )
        .method(
            "bytes",
            "Return n bytes (msgpack bin).",
            &["n"],
            |mut args| async move {
                if args.len() != 1 {
                    return Err(CallError::bad_args(
                        "bytes() takes 1 positional argument (n)",
                    ));
                }
                let n: u64 = arg("bytes", "n", args.remove(0))?;
                if n > DEMO_MAX_N {
                    return Err(CallError::new(
                        "ValueError",
                        format!("n must be at most {DEMO_MAX_N}"),
                    ));
                }
                Ok(Value::Binary((0..n).map(|i| (i % 251) as u8).collect()))
            },
        )
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
        (a, b) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Value::from(x + y),
            _ => {
                return Err(CallError::bad_args(format!(
                    "unsupported operand type(s) for +: '{}' and '{}'",
                    crate::service::type_name_of(&a),
                    crate::service::type_name_of(&b)
                )))
            }
        },
    })
}
