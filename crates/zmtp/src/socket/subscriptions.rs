//! A counted set of subscription prefixes (subscribing twice needs two
//! cancels, as in libzmq).

use bytes::Bytes;

#[derive(Debug, Default, Clone)]
pub(crate) struct Subscriptions {
    entries: Vec<(Bytes, usize)>,
}

impl Subscriptions {
    pub fn add(&mut self, prefix: Bytes) {
        match self.entries.iter_mut().find(|(p, _)| *p == prefix) {
            Some((_, n)) => *n += 1,
            None => self.entries.push((prefix, 1)),
        }
    }

    /// Returns whether the prefix was subscribed.
    pub fn remove(&mut self, prefix: &[u8]) -> bool {
        match self.entries.iter().position(|(p, _)| p.as_ref() == prefix) {
            Some(i) => {
                self.entries[i].1 -= 1;
                if self.entries[i].1 == 0 {
                    self.entries.swap_remove(i);
                }
                true
            }
            None => false,
        }
    }

    pub fn matches(&self, topic: &[u8]) -> bool {
        self.entries.iter().any(|(p, _)| topic.starts_with(p))
    }

    /// Every subscription, once per count (to replay to a new peer).
    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.entries
            .iter()
            .flat_map(|(p, n)| std::iter::repeat_n(p, *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_prefixes() {
        let mut s = Subscriptions::default();
        assert!(!s.matches(b"abc"));
        s.add(Bytes::from_static(b"ab"));
        s.add(Bytes::from_static(b"ab"));
        assert!(s.matches(b"abc") && s.matches(b"ab") && !s.matches(b"a"));
        assert!(s.remove(b"ab"));
        assert!(s.matches(b"abc"));
        assert!(s.remove(b"ab"));
        assert!(!s.matches(b"abc"));
        assert!(!s.remove(b"ab"));
        s.add(Bytes::new());
        assert!(s.matches(b"") && s.matches(b"anything"));
        assert_eq!(s.iter().count(), 1);
    }
}
