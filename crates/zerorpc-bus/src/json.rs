//! fedmsg's canonical JSON, byte for byte.
//!
//! fedmsg serialises every message with `fedmsg.encoding.dumps`, which is
//! Python's `json.dumps(obj, sort_keys=True, separators=(',', ':'))` with the
//! default `ensure_ascii=True` (its custom encoder only changes how
//! non-JSON Python objects — datetimes, sets, SQLAlchemy rows — become JSON,
//! which cannot occur in a [`serde_json::Value`]). Signatures are computed
//! over that text, so it must be reproduced exactly:
//!
//! * object keys sorted by Unicode code point (Python compares `str` by
//!   code point; Rust compares `String` by UTF-8 bytes, and UTF-8 byte
//!   order *is* code point order, so a plain `str` comparison is exact);
//! * every character outside printable ASCII (`' '..='~'`) escaped as
//!   `\uXXXX` with lowercase hex, astral characters as a surrogate pair,
//!   with Python's short forms `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`;
//! * integers in decimal; floats as Python's `float.__repr__` (the shortest
//!   digits that round-trip, in exponent form when the decimal exponent is
//!   below -4 or at least 16: `1e+20`, `1e-07`, `1.5e+16`, `100.0`, `-0.0`).
//!
//! A [`serde_json::Value`] cannot hold NaN or infinities (Python would
//! print `NaN`/`Infinity`), integers beyond `i64`/`u64` (Python prints them
//! exactly; serde_json parses them as floats), or lone surrogates (serde_json
//! rejects them): messages carrying those cannot be represented here.

use serde_json::{Map, Number, Value};
use std::fmt::Write as _;

/// The canonical text of `value`: `fedmsg.encoding.dumps(value)`.
pub fn to_canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Appends the canonical text of `value` (see [`to_canonical`]) to `out`.
pub fn write_canonical(value: &Value, out: &mut String) {
    write_value(value, out, Style::Canonical);
}

/// Python's plain `json.dumps(value)`: separators `", "` and `": "`, ASCII
/// escapes, keys in the order the object holds them. Note that the order
/// is whatever [`serde_json::Map`] iterates in: sorted by key, unless some
/// crate in the build enables serde_json's `preserve_order` feature (then
/// insertion order, which is what Python would print).
pub fn to_python_default(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out, Style::PythonDefault);
    out
}

/// Python's `repr(x)` of a finite float (`x.__repr__()`), which is also how
/// `json.dumps` prints floats.
pub fn python_float_repr(x: f64) -> String {
    let mut out = String::new();
    write_float(x, &mut out);
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `sort_keys=True, separators=(',', ':')`.
    Canonical,
    /// Defaults: `separators=(', ', ': ')`, map order.
    PythonDefault,
}

fn write_value(value: &Value, out: &mut String, style: Style) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_separator(style));
                }
                write_value(item, out, style);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, out, style),
    }
}

fn item_separator(style: Style) -> &'static str {
    match style {
        Style::Canonical => ",",
        Style::PythonDefault => ", ",
    }
}

fn write_object(map: &Map<String, Value>, out: &mut String, style: Style) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    if style == Style::Canonical {
        // serde_json's default map is already sorted, but a build that
        // enables `preserve_order` would not be: sort explicitly.
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    let key_separator = match style {
        Style::Canonical => ":",
        Style::PythonDefault => ": ",
    };
    out.push('{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(item_separator(style));
        }
        write_string(key, out);
        out.push_str(key_separator);
        write_value(item, out, style);
    }
    out.push('}');
}

fn write_number(n: &Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        write_float(f, out);
    } else {
        // Only reachable with serde_json's `arbitrary_precision`, where a
        // number keeps its source text.
        out.push_str(&n.to_string());
    }
}

/// Python's `float.__repr__`, for finite `x` (what a `Value` can hold).
fn write_float(x: f64, out: &mut String) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if x.is_sign_negative() {
        out.push('-');
    }
    // Rust's `{:e}` prints the shortest digits that round-trip (the same
    // digits as Python's repr, which also picks the closest of the shortest).
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let n = digits.len();
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if n <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - n));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    }
}

/// A JSON string literal with Python's `ensure_ascii=True` escapes.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        to_canonical(&serde_json::from_str(text).expect("test vector is JSON"))
    }

    #[test]
    fn floats_print_as_python_repr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.00012345, "0.00012345"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (1.0 / 3.0, "0.3333333333333333"),
            (123456.789, "123456.789"),
            (1e100, "1e+100"),
            (1.23e-100, "1.23e-100"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float_repr(*x), *want, "repr of {x:?}");
            assert_eq!(to_canonical(&json!(x)), *want, "canonical of {x:?}");
        }
    }

    #[test]
    fn integers_print_in_full() {
        assert_eq!(canon("0"), "0");
        assert_eq!(canon("-1"), "-1");
        assert_eq!(canon("9223372036854775807"), "9223372036854775807");
        assert_eq!(canon("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(canon("18446744073709551615"), "18446744073709551615");
    }

    #[test]
    fn strings_use_python_escapes() {
        assert_eq!(to_canonical(&json!("a\"b\\c")), r#""a\"b\\c""#);
        assert_eq!(to_canonical(&json!("\n\r\t\u{8}\u{c}")), r#""\n\r\t\b\f""#);
        assert_eq!(
            to_canonical(&json!("\u{0}\u{1f}\u{7f}")),
            r#""\u0000\u001f\u007f""#
        );
        assert_eq!(to_canonical(&json!("/ ~")), r#""/ ~""#);
        assert_eq!(to_canonical(&json!("é€")), r#""\u00e9\u20ac""#);
        assert_eq!(to_canonical(&json!("\u{FFFF}")), r#""\uffff""#);
        assert_eq!(to_canonical(&json!("😀")), r#""\ud83d\ude00""#);
        assert_eq!(to_canonical(&json!("\u{10FFFF}")), r#""\udbff\udfff""#);
    }

    #[test]
    fn keys_sort_by_code_point() {
        // 'Z' < 'a' < 'é' (U+00E9) < '€' (U+20AC) < U+FFFF < '😀' (U+1F600):
        // UTF-16 order would put the astral key before U+FFFF.
        let v = json!({"😀": 1, "\u{FFFF}": 2, "€": 3, "é": 4, "a": 5, "Z": 6, "": 7, "aa": 8});
        assert_eq!(
            to_canonical(&v),
            r#"{"":7,"Z":6,"a":5,"aa":8,"\u00e9":4,"\u20ac":3,"\uffff":2,"\ud83d\ude00":1}"#
        );
    }

    #[test]
    fn nesting_and_empty_containers() {
        assert_eq!(canon("{}"), "{}");
        assert_eq!(canon("[]"), "[]");
        assert_eq!(canon("[null, true, false]"), "[null,true,false]");
        assert_eq!(
            canon(r#"{"b": [1, {"y": [], "x": {}}], "a": {"d": null, "c": 1.5}}"#),
            r#"{"a":{"c":1.5,"d":null},"b":[1,{"x":{},"y":[]}]}"#
        );
    }

    #[test]
    fn python_default_separators() {
        let v = json!({"a": [1, 2.0, "é"], "b": {}});
        assert_eq!(
            to_python_default(&v),
            r#"{"a": [1, 2.0, "\u00e9"], "b": {}}"#
        );
        assert_eq!(to_python_default(&json!([])), "[]");
    }
}
