//! Topics as NATS subjects: which topics are valid subjects, which stream
//! (prefix, name, subjects) holds a topic, and which single
//! `filter_subject` (NATS 2.9 has one per consumer) lets every topic of a
//! set of fnmatch-style patterns through. Pure functions, no I/O.

/// Why a topic cannot be a NATS subject (`None`: it can).
pub(crate) fn subject_problem(topic: &str) -> Option<String> {
    if topic.is_empty() {
        return Some("the topic is empty".into());
    }
    for token in topic.split('.') {
        if token.is_empty() {
            return Some(format!("topic {topic:?} has an empty segment"));
        }
        if token.chars().any(char::is_whitespace) {
            return Some(format!("topic {topic:?} has white space"));
        }
        if token == "*" || token == ">" {
            return Some(format!(
                "topic {topic:?} has a {token:?} segment (a NATS wildcard)"
            ));
        }
    }
    None
}

/// The stream prefix of `topic`: its first `depth` segments. `Err`: why
/// there is none (too few segments: the stream's subjects are
/// `<prefix>.>`, so a topic needs more than `depth` segments).
pub(crate) fn topic_prefix(topic: &str, depth: usize) -> Result<String, String> {
    let depth = depth.max(1);
    let tokens: Vec<&str> = topic.split('.').collect();
    if tokens.len() <= depth {
        return Err(format!(
            "topic {topic:?} has {} segment(s); with stream_depth {depth} a topic needs more \
             than {depth} (the stream's subjects are <first {depth}>.>)",
            tokens.len()
        ));
    }
    Ok(tokens[..depth].join("."))
}

/// The stream's name for `prefix`: upper case, every character a stream
/// name may not have (`.`, wildcards, white space, path separators,
/// anything but ASCII letters, digits, `-` and `_`) as `_`
/// (`org.fedoraproject` → `ORG_FEDORAPROJECT`).
pub(crate) fn stream_name(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The subjects a stream for `prefix` holds.
pub(crate) fn stream_subjects(prefix: &str) -> String {
    format!("{prefix}.>")
}

/// The leading segments of a glob with no wildcard in them (a literal
/// pattern: all its segments).
fn literal_tokens(pattern: &str) -> (Vec<&str>, bool) {
    let mut out = Vec::new();
    for token in pattern.split('.') {
        if token.contains(['*', '?']) {
            return (out, false);
        }
        out.push(token);
    }
    (out, true)
}

/// The stream prefix the patterns give: the first `depth` segments, when
/// every pattern starts with the same `depth` literal segments.
pub(crate) fn patterns_prefix(patterns: &[String], depth: usize) -> Result<String, String> {
    let depth = depth.max(1);
    let mut found: Option<String> = None;
    if patterns.is_empty() {
        return Err(format!(
            "no topic pattern and no prefix: name the stream's prefix (its first {depth} \
             topic segments)"
        ));
    }
    for p in patterns {
        let (lit, _) = literal_tokens(p);
        if lit.len() < depth || lit[..depth].iter().any(|t| t.is_empty()) {
            return Err(format!(
                "pattern {p:?} does not start with {depth} literal segment(s), so it names no \
                 stream: give the prefix"
            ));
        }
        let prefix = lit[..depth].join(".");
        match &found {
            Some(f) if *f != prefix => {
                return Err(format!(
                    "patterns span streams {f:?} and {prefix:?}: subscribe to each apart"
                ))
            }
            _ => found = Some(prefix),
        }
    }
    found.ok_or_else(|| "no pattern".into())
}

/// A `filter_subject` that every topic matching one of `patterns` passes
/// (a superset: exact filtering happens on receipt), inside the stream of
/// `prefix`. fnmatch's `*` matches dots too, so no wildcard segment maps
/// to NATS's `*`: the filter is the patterns' common literal segments
/// followed by `>` (a literal pattern also matches the topics it is a
/// dotted prefix of, and itself, so its last segment goes too), never
/// shorter than `<prefix>.>`.
pub(crate) fn filter_subject(patterns: &[String], prefix: &str) -> String {
    let whole = stream_subjects(prefix);
    let prefix_len = prefix.split('.').count();
    let mut common: Option<Vec<&str>> = None;
    for p in patterns {
        let (mut lit, literal) = literal_tokens(p);
        if literal {
            lit.pop();
        }
        common = Some(match common {
            None => lit,
            Some(c) => c
                .iter()
                .zip(&lit)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| *a)
                .collect(),
        });
    }
    let Some(tokens) = common else {
        return whole;
    };
    let within =
        tokens.len() > prefix_len && tokens[..prefix_len].iter().copied().eq(prefix.split('.'));
    let joined = tokens.join(".");
    if !within || subject_problem(&joined).is_some() {
        return whole;
    }
    format!("{joined}.>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::TopicFilter;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subjects() {
        assert!(subject_problem("org.fedoraproject.dev.x").is_none());
        assert!(subject_problem("").is_some());
        assert!(subject_problem("a..b").is_some());
        assert!(subject_problem(".a").is_some());
        assert!(subject_problem("a.b.").is_some());
        assert!(subject_problem("a.b c").is_some());
        assert!(subject_problem("a.*.c").is_some());
        assert!(subject_problem("a.>").is_some());
        // Wildcard characters inside a segment are plain characters.
        assert!(subject_problem("a.b*c").is_none());
    }

    #[test]
    fn streams() {
        assert_eq!(
            topic_prefix("org.fedoraproject.dev.x", 2).unwrap(),
            "org.fedoraproject"
        );
        assert!(topic_prefix("org.fedoraproject", 2).is_err());
        assert_eq!(stream_name("org.fedoraproject"), "ORG_FEDORAPROJECT");
        assert_eq!(stream_name("ztest9f.bus"), "ZTEST9F_BUS");
        assert_eq!(stream_name("a/b\\c d*e>f"), "A_B_C_D_E_F");
        assert_eq!(stream_subjects("org.fedoraproject"), "org.fedoraproject.>");
    }

    #[test]
    fn prefixes_from_patterns() {
        assert_eq!(
            patterns_prefix(&pats(&["org.fp.*.bodhi.*", "org.fp.prod"]), 2).unwrap(),
            "org.fp"
        );
        assert!(patterns_prefix(&pats(&["org.*"]), 2).is_err());
        assert!(patterns_prefix(&pats(&["org.a.x", "org.b.x"]), 2).is_err());
        assert!(patterns_prefix(&[], 2).is_err());
        assert!(patterns_prefix(&pats(&["org"]), 2).is_err());
    }

    #[test]
    fn filters_are_supersets() {
        let f = |p: &[&str]| filter_subject(&pats(p), "org.fp");
        assert_eq!(f(&["org.fp.prod.bodhi.*"]), "org.fp.prod.bodhi.>");
        assert_eq!(f(&["org.fp.prod.bodhi"]), "org.fp.prod.>");
        assert_eq!(f(&["org.fp.prod"]), "org.fp.>");
        assert_eq!(f(&["org.fp.*.bodhi"]), "org.fp.>");
        assert_eq!(f(&["org.fp.pr*"]), "org.fp.>");
        assert_eq!(f(&["org.fp.prod.a.*", "org.fp.prod.b.*"]), "org.fp.prod.>");
        assert_eq!(f(&["org.fp.prod.a.*", "org.fp.stg.b"]), "org.fp.>");
        assert_eq!(f(&[]), "org.fp.>");
        assert_eq!(f(&["org.fp.x y.z.*"]), "org.fp.>");
        // Whatever the filter, every topic the patterns match passes it.
        let nats_match = |filter: &str, topic: &str| {
            let base = filter.trim_end_matches('>');
            topic.starts_with(base) && topic.len() > base.len()
        };
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["org.fp.prod.bodhi.*"],
                &["org.fp.prod.bodhi.a", "org.fp.prod.bodhi.a.b.c"],
            ),
            (
                &["org.fp.prod.bodhi"],
                &["org.fp.prod.bodhi", "org.fp.prod.bodhi.update"],
            ),
            (&["org.fp.*.bodhi"], &["org.fp.x.y.bodhi"]),
        ];
        for (p, topics) in cases {
            let filter = f(p);
            let exact = TopicFilter::new(p.iter());
            for t in *topics {
                assert!(exact.matches(t), "{t} vs {p:?}");
                assert!(nats_match(&filter, t), "{t} does not pass {filter}");
            }
        }
    }
}
