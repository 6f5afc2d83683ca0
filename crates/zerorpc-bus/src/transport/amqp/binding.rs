//! Topic globs (fnmatch-style, see [`crate::glob`]) as AMQP topic-exchange
//! binding keys: a superset of what each glob matches (its literal dotted
//! words up to the first word with a wildcard, then `#`), so the broker
//! sends at least every matching message; the consumer then filters
//! exactly with [`TopicFilter`](crate::glob::TopicFilter).

/// The binding keys that let every topic matching one of `patterns`
/// through (`["#"]` when there are none, or one starts with a wildcard).
pub(crate) fn binding_keys<S: AsRef<str>>(patterns: &[S]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for p in patterns {
        let key = binding_key(p.as_ref());
        if key == "#" {
            return vec!["#".to_owned()];
        }
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        keys.push("#".to_owned());
    }
    keys
}

/// One glob's key. A glob without wildcards matches its topic and the
/// topics it is a dotted prefix of: `a.b` → `a.b.#` (`#` also matches no
/// word at all). `a.*.c` → `a.#`; `a.b*` → `a.#`; `*` → `#`.
fn binding_key(pattern: &str) -> String {
    if pattern.is_empty() {
        return "#".to_owned();
    }
    let literal: Vec<&str> = pattern
        .split('.')
        .take_while(|w| !w.contains(['*', '?']))
        .collect();
    // A routing key is at most 255 bytes: a longer literal prefix is cut
    // at a word (still a superset).
    let mut key = String::new();
    for w in literal {
        if key.len() + w.len() + 3 > 255 {
            break;
        }
        key.push_str(w);
        key.push('.');
    }
    key.push('#');
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_supersets() {
        let none: [&str; 0] = [];
        assert_eq!(binding_keys(&none), ["#"]);
        assert_eq!(binding_keys(&["*"]), ["#"]);
        assert_eq!(binding_keys(&["a.b", "*.x"]), ["#"]);
        assert_eq!(
            binding_keys(&["org.example.dev.thing"]),
            ["org.example.dev.thing.#"]
        );
        assert_eq!(
            binding_keys(&["org.example.*.thing", "org.example.pr?d.x", "org.fedora*"]),
            ["org.example.#", "org.#"]
        );
        assert_eq!(binding_keys(&["a.b.*", "a.b.c*"]), ["a.b.#"]);
        let long = format!("{}.x", "w".repeat(300));
        assert_eq!(binding_keys(&[long]), ["#"]);
    }
}
