//! A reference for fedmsg's canonical JSON (Python's `json.dumps` with
//! `sort_keys=True`, `separators=(',', ':')`, `ensure_ascii=True`), for the
//! `canonical_json` target, made differently from `zerorpc_bus::json`:
//! strings and integers are serde_json's own output with non-ASCII
//! characters escaped afterwards, keys are sorted by comparing characters
//! (Python's order), and floats are Python's `repr` rebuilt from Rust's
//! positional shortest-digits `Display` (the library starts from `{:e}`).

use serde_json::Value;
use std::fmt::Write as _;

/// `json.dumps(value, sort_keys=sorted, separators=...)`; `compact` picks
/// `(',', ':')` (fedmsg's) over the default `(', ', ': ')`.
pub fn dumps(value: &Value, sorted: bool, compact: bool) -> String {
    let mut out = String::new();
    write(value, sorted, compact, &mut out);
    out
}

fn write(value: &Value, sorted: bool, compact: bool, out: &mut String) {
    let (item, key) = if compact { (",", ":") } else { (", ", ": ") };
    match value {
        Value::Number(n) if n.is_f64() => out.push_str(&float_repr(n.as_f64().unwrap_or(0.0))),
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            out.push_str(&serde_json::to_string(value).unwrap_or_default())
        }
        Value::String(s) => out.push_str(&string(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item);
                }
                write(v, sorted, compact, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            if sorted {
                entries.sort_by(|a, b| a.0.chars().cmp(b.0.chars()));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item);
                }
                out.push_str(&string(k));
                out.push_str(key);
                write(v, sorted, compact, out);
            }
            out.push('}');
        }
    }
}

/// serde_json's string literal (it escapes `"`, `\` and control
/// characters as Python does, `\u00XX` in lower case), then every
/// character past `~` as `\uXXXX` (UTF-16 units), as `ensure_ascii` does.
fn string(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_default();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c <= '~' {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0u16; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// Python's `repr` of a finite float: the shortest digits that read back
/// (Rust's `Display` has them, positionally), in exponent form when the
/// decimal exponent is below -4 or at least 16.
pub fn float_repr(x: f64) -> String {
    let text = format!("{}", x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    // digits without leading zeros, and where the point goes
    let all: String = format!("{int}{frac}");
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all[lead..].trim_end_matches('0');
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if digits.is_empty() {
        return format!("{sign}0.0");
    }
    // value = 0.DIGITS × 10^point
    let point = int.len() as i64 - lead as i64;
    let exp = point - 1;
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{esign}{:02}", exp.abs());
    }
    if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        format!("{sign}0.{zeros}{digits}")
    } else {
        let point = point as usize;
        if digits.len() <= point {
            let zeros = "0".repeat(point - digits.len());
            format!("{sign}{digits}{zeros}.0")
        } else {
            format!("{sign}{}.{}", &digits[..point], &digits[point..])
        }
    }
}
