//! Adding `seq_id` to a stored envelope's canonical JSON without
//! re-serialising it: the other bytes stay exactly as stored (numbers in
//! Python's spelling included), and the result is what Python's
//! `json.dumps(sort_keys=True, separators=(',', ':'))` gives for the
//! envelope with the key added.

/// Why [`with_seq_id`] could not add the key.
#[derive(Debug, thiserror::Error)]
pub enum SeqIdError {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// The JSON is not an object.
    #[error("not a JSON object")]
    NotAnObject,
}

/// `json` (a JSON object, normally canonical) with `"seq_id":seq` added at
/// its sorted place among the top-level keys (Python sorts keys by code
/// point, which is also UTF-8 byte order), or its value replaced when the
/// object already has a `seq_id`. Nothing else changes; compact input
/// gives compact output.
pub fn with_seq_id(json: &str, seq: u64) -> Result<String, SeqIdError> {
    // Validate first: the scan below then only meets well-formed JSON
    // (it still never panics if it does not).
    serde_json::from_str::<serde::de::IgnoredAny>(json)?;
    let b = json.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err(SeqIdError::NotAnObject);
    }
    i += 1;
    let field = format!("\"seq_id\":{seq}");
    let mut members = 0;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b'}') => {
                let sep = if members > 0 { "," } else { "" };
                return Ok(format!("{}{sep}{field}{}", &json[..i], &json[i..]));
            }
            Some(b'"') => {
                let key_start = i;
                let key_end = end_of_string(b, i).ok_or(SeqIdError::NotAnObject)?;
                let key: String = serde_json::from_str(&json[key_start..key_end])?;
                i = skip_ws(b, key_end);
                if b.get(i) != Some(&b':') {
                    return Err(SeqIdError::NotAnObject);
                }
                let value_start = skip_ws(b, i + 1);
                let value_end = end_of_value(b, value_start).ok_or(SeqIdError::NotAnObject)?;
                match key.as_str().cmp("seq_id") {
                    std::cmp::Ordering::Equal => {
                        return Ok(format!(
                            "{}{seq}{}",
                            &json[..value_start],
                            &json[value_end..]
                        ));
                    }
                    std::cmp::Ordering::Greater => {
                        return Ok(format!(
                            "{}{field},{}",
                            &json[..key_start],
                            &json[key_start..]
                        ));
                    }
                    std::cmp::Ordering::Less => {}
                }
                members += 1;
                i = skip_ws(b, value_end);
                match b.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => {}
                    _ => return Err(SeqIdError::NotAnObject),
                }
            }
            _ => return Err(SeqIdError::NotAnObject),
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index just past the string starting with the quote at `i`.
fn end_of_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The index just past the value starting at `i`.
fn end_of_value(b: &[u8], mut i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => end_of_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b.get(i)? {
                    b'"' => {
                        i = end_of_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while !matches!(
                b.get(i),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_at_the_sorted_place() {
        assert_eq!(with_seq_id("{}", 7).unwrap(), r#"{"seq_id":7}"#);
        assert_eq!(
            with_seq_id(r#"{"a":1,"z":[1,{"q":"}"}]}"#, 3).unwrap(),
            r#"{"a":1,"seq_id":3,"z":[1,{"q":"}"}]}"#
        );
        assert_eq!(
            with_seq_id(r#"{"msg":{"seq_id":1},"seq":"\"}"}"#, 12).unwrap(),
            r#"{"msg":{"seq_id":1},"seq":"\"}","seq_id":12}"#
        );
        assert_eq!(
            with_seq_id(r#"{"seq_ic":null,"seq_id_":true}"#, 1).unwrap(),
            r#"{"seq_ic":null,"seq_id":1,"seq_id_":true}"#
        );
        // An escaped key compares by what it decodes to: "\u0073" is "s".
        assert_eq!(
            with_seq_id(r#"{"\u0073":1,"\u00e9":2}"#, 5).unwrap(),
            r#"{"\u0073":1,"seq_id":5,"\u00e9":2}"#
        );
        assert_eq!(
            with_seq_id(r#"{"a":-1.5e+16,"b":1.0}"#, 9).unwrap(),
            r#"{"a":-1.5e+16,"b":1.0,"seq_id":9}"#
        );
    }

    #[test]
    fn replaces_an_existing_seq_id() {
        assert_eq!(
            with_seq_id(r#"{"a":1,"seq_id":{"x":[2]},"z":0}"#, 4).unwrap(),
            r#"{"a":1,"seq_id":4,"z":0}"#
        );
        assert_eq!(
            with_seq_id(r#"{"seq_id":99}"#, 4).unwrap(),
            r#"{"seq_id":4}"#
        );
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        assert!(matches!(
            with_seq_id("[1]", 1),
            Err(SeqIdError::NotAnObject)
        ));
        assert!(matches!(
            with_seq_id("\"{}\"", 1),
            Err(SeqIdError::NotAnObject)
        ));
        assert!(matches!(with_seq_id("{", 1), Err(SeqIdError::NotJson(_))));
        assert!(matches!(
            with_seq_id("{} x", 1),
            Err(SeqIdError::NotJson(_))
        ));
        assert!(matches!(with_seq_id("", 1), Err(SeqIdError::NotJson(_))));
    }
}
