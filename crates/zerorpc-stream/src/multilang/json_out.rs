//! JSON for the messages written once per tuple (a tuple to a bolt; a
//! component's emit, ack, fail, sync), by hand: serde's serializer
//! machinery was a fifth of a multi-lang bolt's time in the profile.
//! Byte for byte what `serde_json` writes for the same message (the tests
//! compare); anything unusual (escapes, floats, maps) is handed to
//! `serde_json` itself.

use super::id::TupleId;
use crate::tuple::{TaskId, Value};

/// A JSON string.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        let _ = serde_json::to_writer(&mut *out, s);
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// An integer.
pub(crate) fn int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(decimal(n, &mut buf));
}

/// `n`'s decimal text, written at the end of `buf`.
pub(crate) fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Any value.
pub(crate) fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) => string(out, s),
        Value::Number(n) if n.is_i64() => int(out, n.as_i64().unwrap_or_default()),
        Value::Array(a) => values(out, a),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Null => out.extend_from_slice(b"null"),
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

/// A list of values.
pub(crate) fn values(out: &mut Vec<u8>, vs: &[Value]) {
    out.push(b'[');
    for (i, v) in vs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        value(out, v);
    }
    out.push(b']');
}

/// A tuple id (always a string on the wire).
pub(crate) fn id(out: &mut Vec<u8>, id: &TupleId) {
    match id.as_i64() {
        Some(n) => {
            out.push(b'"');
            int(out, n);
            out.push(b'"');
        }
        None => string(out, &id.to_string()),
    }
}

/// A task id (`null` for none).
pub(crate) fn task(out: &mut Vec<u8>, t: TaskId) {
    int(out, i64::from(t));
}

/// The end of a message: the line `end`.
pub(crate) fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\nend\n");
}

#[cfg(test)]
mod tests {
    use super::super::codec::Serializer;
    use super::super::protocol::{self, Emit, FromComponent, TupleOut};
    use super::*;

    /// Reproducible variety.
    struct Rng(rand::rngs::StdRng);
    impl Rng {
        fn next(&mut self) -> u64 {
            rand::RngCore::next_u64(&mut self.0)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const TEXTS: &[&str] = &[
        "",
        "word",
        "with \"quotes\"",
        "back\\slash",
        "tab\there",
        "line\nbreak",
        "\u{1}control",
        "unicode é 漢字 🦀",
        "del\u{7f}",
        "007",
        "-12",
    ];

    fn value(r: &mut Rng, depth: u32) -> Value {
        match r.below(if depth > 2 { 7 } else { 9 }) {
            0 => Value::Null,
            1 => Value::Bool(r.below(2) == 0),
            2 => Value::from(r.next() as i64),
            3 => Value::from(r.next()),
            4 => Value::from((r.next() as f64) / 7.0),
            5 | 6 => Value::from(TEXTS[r.below(TEXTS.len() as u64) as usize]),
            7 => Value::Array((0..r.below(4)).map(|_| value(r, depth + 1)).collect()),
            _ => serde_json::json!({"k": value(r, depth + 1), "a": TEXTS[1]}),
        }
    }

    fn tuple_id(r: &mut Rng) -> TupleId {
        match r.below(3) {
            0 => TupleId::from(r.next() as i64),
            1 => TupleId::from(r.below(1000) as i64 - 500),
            _ => TupleId::from(TEXTS[r.below(TEXTS.len() as u64) as usize]),
        }
    }

    #[test]
    fn hand_written_json_is_what_serde_writes() {
        let mut r = Rng(rand::SeedableRng::seed_from_u64(7));
        for _ in 0..5000 {
            let tuple: Vec<Value> = (0..r.below(5)).map(|_| value(&mut r, 0)).collect();
            let id = tuple_id(&mut r);
            let text = TEXTS[r.below(TEXTS.len() as u64) as usize];
            let out = TupleOut {
                id: &id,
                comp: text,
                stream: if r.below(2) == 0 { "default" } else { text },
                task: r.next() as i32,
                tuple: &tuple,
            };
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            out.write(Serializer::Json, &mut fast);
            protocol::write(&out, Serializer::Json, &mut slow);
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&slow)
            );

            let emit = FromComponent::Emit(Emit {
                stream: (r.below(2) == 0).then(|| text.to_string()),
                tuple: tuple.clone(),
                anchors: (0..r.below(3)).map(|_| tuple_id(&mut r)).collect(),
                id: (r.below(2) == 0).then(|| value(&mut r, 0)),
                task: (r.below(2) == 0).then(|| r.next() as i32),
                need_task_ids: r.below(2) == 0,
            });
            for m in [
                emit,
                FromComponent::Ack(id.clone()),
                FromComponent::Fail(id.clone()),
                FromComponent::Sync,
            ] {
                let (mut fast, mut slow) = (Vec::new(), Vec::new());
                m.encode(Serializer::Json, &mut fast);
                m.encode_serde(Serializer::Json, &mut slow);
                assert_eq!(
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&slow)
                );
            }
        }
    }
}
