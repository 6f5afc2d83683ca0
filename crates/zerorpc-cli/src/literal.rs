//! Command-line arguments as values: Python/JSON literals (numbers,
//! strings, lists, tuples, dicts, `True`/`False`/`None`, `true`/`false`/
//! `null`, `b'bytes'`), anything else as a plain string; or strict JSON
//! with `-j`.

use zerorpc::Value;

/// Parses one argument the default way: a literal if it is one, else the
/// text itself.
pub fn parse_arg(s: &str) -> Value {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    match p.value() {
        Some(v) if p.skip_ws() == s.len() => v,
        _ => Value::from(s),
    }
}

/// Parses one argument as JSON (`-j`).
pub fn parse_json_arg(s: &str) -> Result<Value, String> {
    let j: serde_json::Value =
        serde_json::from_str(s).map_err(|e| format!("{s:?} is not JSON: {e}"))?;
    // (the gateway's reading: `{"$base64": "..."}` is bytes)
    Ok(zerorpc_gateway::json::from_json(j))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) -> usize {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
        self.i
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_ws();
        match self.peek()? {
            b'[' => self.seq(b']').map(Value::Array),
            b'(' => self.seq(b')').map(Value::Array),
            b'{' => self.dict(),
            b'\'' | b'"' => self
                .string()
                .map(|b| Value::from(String::from_utf8_lossy(&b).into_owned())),
            b'b' if matches!(self.s.get(self.i + 1), Some(b'\'' | b'"')) => {
                self.i += 1;
                self.string().map(Value::Binary)
            }
            b'-' | b'+' | b'.' | b'0'..=b'9' => self.number(),
            _ => self.word(),
        }
    }

    fn word(&mut self) -> Option<Value> {
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_alphabetic() {
            self.i += 1;
        }
        match &self.s[start..self.i] {
            b"True" | b"true" => Some(Value::from(true)),
            b"False" | b"false" => Some(Value::from(false)),
            b"None" | b"null" => Some(Value::Nil),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.i += 1;
        }
        let mut float = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' | b'_' => {}
                b'.' | b'e' | b'E' => float = true,
                b'-' | b'+' if matches!(self.s[self.i - 1], b'e' | b'E') => {}
                _ => break,
            }
            self.i += 1;
        }
        let text: String = std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .replace('_', "");
        if !float {
            if let Ok(i) = text.parse::<i64>() {
                return Some(Value::from(i));
            }
            if let Ok(u) = text.trim_start_matches('+').parse::<u64>() {
                return Some(Value::from(u));
            }
        }
        text.parse::<f64>().ok().map(Value::from)
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        let q = self.peek()?;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                c if c == q => return Some(out),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'0' => out.push(0),
                        b'x' => {
                            let h = std::str::from_utf8(self.s.get(self.i..self.i + 2)?).ok()?;
                            out.push(u8::from_str_radix(h, 16).ok()?);
                            self.i += 2;
                        }
                        b'u' => {
                            let h = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
                            let ch = char::from_u32(u32::from_str_radix(h, 16).ok()?)?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            self.i += 4;
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn seq(&mut self, close: u8) -> Option<Vec<Value>> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.value()?);
            if !self.eat(b',') {
                return self.eat(close).then_some(items);
            }
        }
    }

    fn dict(&mut self) -> Option<Value> {
        self.i += 1;
        let mut entries = Vec::new();
        loop {
            if self.eat(b'}') {
                return Some(Value::Map(entries));
            }
            let k = self.value()?;
            if !self.eat(b':') {
                return None;
            }
            let v = self.value()?;
            entries.push((k, v));
            if !self.eat(b',') {
                return self.eat(b'}').then_some(Value::Map(entries));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(parse_arg("42"), Value::from(42));
        assert_eq!(parse_arg("-7"), Value::from(-7));
        assert_eq!(parse_arg("18446744073709551615"), Value::from(u64::MAX));
        assert_eq!(parse_arg("2.5"), Value::from(2.5));
        assert_eq!(parse_arg("1e3"), Value::from(1000.0));
        assert_eq!(parse_arg("'hi there'"), Value::from("hi there"));
        assert_eq!(parse_arg("\"q\\\"uote\""), Value::from("q\"uote"));
        assert_eq!(parse_arg("b'\\x00\\xff'"), Value::Binary(vec![0, 255]));
        assert_eq!(parse_arg("True"), Value::from(true));
        assert_eq!(parse_arg("null"), Value::Nil);
        assert_eq!(parse_arg("None"), Value::Nil);
        assert_eq!(
            parse_arg("[1, 'a', [None]]"),
            Value::Array(vec![1.into(), "a".into(), Value::Array(vec![Value::Nil])])
        );
        assert_eq!(parse_arg("(1,)"), Value::Array(vec![1.into()]));
        assert_eq!(
            parse_arg("{'k': 1, \"j\": [true]}"),
            Value::Map(vec![
                ("k".into(), 1.into()),
                ("j".into(), Value::Array(vec![true.into()]))
            ])
        );
    }

    #[test]
    fn everything_else_is_a_string() {
        for s in [
            "hello",
            "hello world",
            "12abc",
            "[1, 2",
            "Truely",
            "tcp://x:1",
            "",
        ] {
            assert_eq!(parse_arg(s), Value::from(s), "{s}");
        }
    }

    #[test]
    fn json_mode_is_strict() {
        assert_eq!(
            parse_json_arg("[1, {\"a\": null}]").unwrap(),
            Value::Array(vec![1.into(), Value::Map(vec![("a".into(), Value::Nil)])])
        );
        assert!(parse_json_arg("hello").is_err());
        assert!(parse_json_arg("'single'").is_err());
    }
}
