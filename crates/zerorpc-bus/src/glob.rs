//! Topic patterns: shell-style globs over whole topics (`*` any run of
//! characters, dots included; `?` exactly one character), as `fnmatch`
//! would read them. `org.fedoraproject.*.bodhi.*` matches
//! `org.fedoraproject.prod.bodhi.update.comment`. A pattern without
//! wildcards matches that topic and, like a ZeroMQ subscription, every
//! topic it is a dotted prefix of (`org.fedoraproject.prod` matches
//! `org.fedoraproject.prod.bodhi.update`).

/// One compiled topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicGlob {
    pattern: String,
    literal: bool,
}

impl TopicGlob {
    /// Compiles `pattern` (any string is a valid pattern).
    pub fn new(pattern: &str) -> TopicGlob {
        TopicGlob {
            pattern: pattern.to_owned(),
            literal: !pattern.contains(['*', '?']),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        if self.literal {
            return self.pattern.is_empty()
                || topic == self.pattern
                || topic
                    .strip_prefix(self.pattern.as_str())
                    .is_some_and(|rest| rest.starts_with('.'));
        }
        zerorpc::auth::glob(&self.pattern, topic)
    }

    /// The longest literal prefix: what a ZeroMQ SUB socket can subscribe
    /// to so that the publisher filters before sending.
    pub fn zmq_prefix(&self) -> &str {
        let end = self.pattern.find(['*', '?']).unwrap_or(self.pattern.len());
        &self.pattern[..end]
    }
}

/// A set of patterns; an empty set matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicFilter {
    globs: Vec<TopicGlob>,
}

impl TopicFilter {
    /// A filter matching any of `patterns` (everything when there are none).
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> TopicFilter {
        TopicFilter {
            globs: patterns
                .into_iter()
                .map(|p| TopicGlob::new(p.as_ref()))
                .collect(),
        }
    }

    /// Whether `topic` passes.
    pub fn matches(&self, topic: &str) -> bool {
        self.globs.is_empty() || self.globs.iter().any(|g| g.matches(topic))
    }

    /// The patterns as written.
    pub fn patterns(&self) -> Vec<String> {
        self.globs.iter().map(|g| g.as_str().to_owned()).collect()
    }

    /// The ZeroMQ subscription prefixes that let every match through
    /// (`[""]` when any pattern starts with a wildcard or there is none).
    pub fn zmq_prefixes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .globs
            .iter()
            .map(|g| g.zmq_prefix().to_owned())
            .collect();
        if out.is_empty() || out.iter().any(String::is_empty) {
            return vec![String::new()];
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = TopicGlob::new("org.fedoraproject.*.bodhi.*");
        assert!(g.matches("org.fedoraproject.prod.bodhi.update.comment"));
        assert!(!g.matches("org.fedoraproject.prod.koji.build"));
        assert!(TopicGlob::new("*.comment").matches("a.b.comment"));
        assert!(!TopicGlob::new("*.comment").matches("a.b.comments"));
        assert!(TopicGlob::new("a.?.c").matches("a.é.c"));
        assert!(!TopicGlob::new("a.?.c").matches("a.bb.c"));
        assert!(TopicGlob::new("*").matches(""));
        assert!(TopicGlob::new("a**b").matches("ab"));
        assert!(!TopicGlob::new("a*b").matches("a"));
    }

    #[test]
    fn literals_are_dotted_prefixes() {
        let g = TopicGlob::new("org.fedoraproject.prod");
        assert!(g.matches("org.fedoraproject.prod"));
        assert!(g.matches("org.fedoraproject.prod.bodhi"));
        assert!(!g.matches("org.fedoraproject.production"));
        assert!(TopicGlob::new("").matches("anything"));
    }

    #[test]
    fn filters_and_prefixes() {
        let f = TopicFilter::new(["org.a.*", "org.b.x"]);
        assert!(f.matches("org.a.q") && f.matches("org.b.x.y") && !f.matches("org.c"));
        assert_eq!(f.zmq_prefixes(), ["org.a.", "org.b.x"]);
        assert_eq!(TopicFilter::new(["*.x", "a"]).zmq_prefixes(), [""]);
        assert!(TopicFilter::default().matches("x"));
    }

    #[test]
    fn no_blowup_on_many_stars() {
        let p = "*a".repeat(30) + "b";
        let t = "a".repeat(5000);
        assert!(!TopicGlob::new(&p).matches(&t));
    }
}
