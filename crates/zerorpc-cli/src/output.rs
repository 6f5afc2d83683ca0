//! Printing values: Python-style (`repr`) by default, JSON with `-pj`.

use zerorpc::Value;

/// A value as Python's `repr` would show it.
pub fn repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(v, &mut out);
    out
}

fn write_repr(v: &Value, out: &mut String) {
    match v {
        Value::Nil => out.push_str("None"),
        Value::Boolean(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::F32(f) => out.push_str(&float(f64::from(*f))),
        Value::F64(f) => out.push_str(&float(*f)),
        Value::String(s) => match s.as_str() {
            Some(s) => quote(s, out),
            None => bytes(s.as_bytes(), out),
        },
        Value::Binary(b) => bytes(b, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(x, out);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(k, out);
                out.push_str(": ");
                write_repr(x, out);
            }
            out.push('}');
        }
        Value::Ext(t, d) => out.push_str(&format!("Ext({t}, {d:?})")),
    }
}

fn float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{f:?}")
    }
}

fn quote(s: &str, out: &mut String) {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
}

fn bytes(b: &[u8], out: &mut String) {
    out.push_str("b'");
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('\'');
}

/// A value as JSON (bytes become text, lossily; non-string map keys are
/// written as their JSON text).
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil => serde_json::Value::Null,
        Value::Boolean(b) => (*b).into(),
        Value::Integer(i) => i
            .as_i64()
            .map(serde_json::Value::from)
            .or_else(|| i.as_u64().map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::Null),
        Value::F32(f) => serde_json::Value::from(f64::from(*f)),
        Value::F64(f) => serde_json::Value::from(*f),
        Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned().into(),
        Value::Binary(b) => String::from_utf8_lossy(b).into_owned().into(),
        Value::Array(a) => a.iter().map(to_json).collect::<Vec<_>>().into(),
        Value::Map(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let key = match k {
                        Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(x))
                })
                .collect(),
        ),
        Value::Ext(..) => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_like_repr() {
        assert_eq!(repr(&Value::from("it's")), "\"it's\"");
        assert_eq!(repr(&Value::from("hi")), "'hi'");
        assert_eq!(repr(&Value::Binary(vec![0, b'a', 255])), "b'\\x00a\\xff'");
        assert_eq!(repr(&Value::from(2.0)), "2.0");
        assert_eq!(
            repr(&Value::Map(vec![(
                "k".into(),
                Value::Array(vec![Value::Nil, true.into()])
            )])),
            "{'k': [None, True]}"
        );
    }

    #[test]
    fn json() {
        assert_eq!(
            to_json(&Value::Array(vec![1.into(), "a".into(), Value::Nil])).to_string(),
            "[1,\"a\",null]"
        );
    }
}
