//! Topic patterns: a literal topic or an fnmatch-style glob, and the rule
//! that says which of several matching patterns is the most specific.

use std::cmp::Ordering;

/// A topic or topic glob a schema applies to.
///
/// Only two characters are special: `*` matches any run of characters
/// (dots included, possibly empty) and `?` matches exactly one character.
/// Everything else, `[` included, matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicPattern {
    text: String,
    chars: Vec<char>,
}

impl TopicPattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("the topic pattern is empty".to_owned());
        }
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the topic pattern {text:?} contains {c:?}; topics have no spaces or control characters"
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            chars: text.chars().collect(),
        })
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has no wildcard: it matches one topic only.
    pub(crate) fn is_literal(&self) -> bool {
        !self.chars.iter().any(|&c| c == '*' || c == '?')
    }

    /// Whether `topic` matches the pattern (the whole topic, not a prefix).
    pub(crate) fn matches(&self, topic: &str) -> bool {
        zerorpc::auth::glob(&self.text, topic)
    }

    /// Orders patterns by specificity, most specific greatest: a literal
    /// beats any glob; then the longer pattern wins; then the one with fewer
    /// `*`; a remaining tie goes to the alphabetically smaller pattern, so
    /// the choice never depends on loading order.
    pub(crate) fn specificity_cmp(&self, other: &Self) -> Ordering {
        let stars = |p: &Self| p.chars.iter().filter(|&&c| c == '*').count();
        self.is_literal()
            .cmp(&other.is_literal())
            .then(self.chars.len().cmp(&other.chars.len()))
            .then(stars(other).cmp(&stars(self)))
            .then(other.text.cmp(&self.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> TopicPattern {
        TopicPattern::parse(s).expect("valid test pattern")
    }

    #[test]
    fn literal_matches_only_itself() {
        let p = pat("org.fedoraproject.prod.bodhi.update.comment");
        assert!(p.is_literal());
        assert!(p.matches("org.fedoraproject.prod.bodhi.update.comment"));
        assert!(!p.matches("org.fedoraproject.prod.bodhi.update.comment.v2"));
        assert!(!p.matches("org.fedoraproject.prod.bodhi.update"));
    }

    #[test]
    fn star_spans_dots_and_may_be_empty() {
        let p = pat("org.fedoraproject.*.bodhi.*");
        assert!(!p.is_literal());
        assert!(p.matches("org.fedoraproject.prod.bodhi.update.comment"));
        assert!(p.matches("org.fedoraproject.stg.bodhi."));
        assert!(!p.matches("org.fedoraproject.prod.koji.build"));
        assert!(pat("*").matches(""));
        assert!(pat("a*b*c").matches("abc"));
        assert!(pat("a*b*c").matches("axxbyyc"));
        assert!(!pat("a*b*c").matches("axxbyy"));
        assert!(pat("*comment").matches("x.comment"));
        assert!(!pat("*comment").matches("x.comment.v2"));
    }

    #[test]
    fn question_mark_is_exactly_one_char() {
        let p = pat("a.?.c");
        assert!(p.matches("a.b.c"));
        assert!(p.matches("a.é.c"));
        assert!(!p.matches("a..c"));
        assert!(!p.matches("a.bb.c"));
    }

    #[test]
    fn brackets_are_literal() {
        assert!(pat("a[b]").matches("a[b]"));
        assert!(!pat("a[b]").matches("ab"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(TopicPattern::parse("").is_err());
        assert!(TopicPattern::parse("a b").is_err());
        assert!(TopicPattern::parse("a\nb").is_err());
    }

    #[test]
    fn specificity_order() {
        let literal = pat("org.x.prod.bodhi.update");
        let long_glob = pat("org.x.*.bodhi.update");
        let short_glob = pat("org.x.*");
        assert_eq!(literal.specificity_cmp(&long_glob), Ordering::Greater);
        // A short literal still beats a long glob.
        assert_eq!(pat("a").specificity_cmp(&long_glob), Ordering::Greater);
        assert_eq!(long_glob.specificity_cmp(&short_glob), Ordering::Greater);
        // Same length: fewer stars wins.
        assert_eq!(
            pat("a.?.c").specificity_cmp(&pat("a.*.c")),
            Ordering::Greater
        );
        // Full tie: alphabetical, and the order is antisymmetric.
        assert_eq!(pat("a.*").specificity_cmp(&pat("b.*")), Ordering::Greater);
        assert_eq!(pat("b.*").specificity_cmp(&pat("a.*")), Ordering::Less);
    }
}
