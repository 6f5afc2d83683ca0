//! The tuples a bolt subprocess holds unanswered, by the ids the runner
//! gave them (sequential numbers).
//!
//! Answers come back nearly in the order the tuples went out, so a ring
//! indexed by `id - base` finds them without hashing (a hash map's probe
//! was a cache miss per ack in the profile). A tuple held much longer
//! than the rest (a batching bolt, one never answered) would stretch the
//! ring without bound: once the ring spans more than its window, its
//! oldest entries move to a hash map, so memory follows the number held,
//! not the spread of their ids.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

use crate::router::FnvHasher;

pub(crate) struct InFlight<T> {
    /// The id of `ring[0]`.
    base: i64,
    ring: VecDeque<Option<T>>,
    /// Entries older than the ring's window.
    old: HashMap<i64, T, BuildHasherDefault<FnvHasher>>,
    len: usize,
    window: usize,
}

impl<T> InFlight<T> {
    /// A ring spanning at most `window` ids (at least 1).
    pub(crate) fn new(window: usize) -> InFlight<T> {
        InFlight {
            base: 0,
            ring: VecDeque::new(),
            old: HashMap::default(),
            len: 0,
            window: window.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds an entry; ids are expected to come in increasing order (any
    /// other goes to the map, which is correct, only slower).
    pub(crate) fn insert(&mut self, id: i64, value: T) {
        if self.ring.is_empty() {
            self.base = id;
        }
        let next = self.base.saturating_add(self.ring.len() as i64);
        if id == next {
            self.ring.push_back(Some(value));
        } else if let Some(slot) = self.slot_mut(id) {
            if slot.replace(value).is_some() {
                self.len -= 1;
            }
        } else if self.old.insert(id, value).is_some() {
            self.len -= 1;
        }
        self.len += 1;
        while self.ring.len() > self.window {
            if let Some(Some(v)) = self.ring.pop_front() {
                self.old.insert(self.base, v);
            }
            self.base += 1;
        }
    }

    fn index(&self, id: i64) -> Option<usize> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        (i < self.ring.len()).then_some(i)
    }

    fn slot_mut(&mut self, id: i64) -> Option<&mut Option<T>> {
        let i = self.index(id)?;
        self.ring.get_mut(i)
    }

    pub(crate) fn get(&self, id: i64) -> Option<&T> {
        match self.index(id) {
            Some(i) => self.ring.get(i)?.as_ref(),
            None => self.old.get(&id),
        }
    }

    pub(crate) fn remove(&mut self, id: i64) -> Option<T> {
        let v = match self.slot_mut(id) {
            Some(slot) => slot.take(),
            None => self.old.remove(&id),
        }?;
        self.len -= 1;
        while matches!(self.ring.front(), Some(None)) {
            self.ring.pop_front();
            self.base += 1;
        }
        Some(v)
    }

    /// Takes every entry out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.len = 0;
        self.ring
            .drain(..)
            .flatten()
            .chain(self.old.drain().map(|(_, v)| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_any_order_find_their_entries() {
        let mut f = InFlight::new(100);
        for id in 1..=10 {
            f.insert(id, id * 10);
        }
        assert_eq!(f.len(), 10);
        assert_eq!(f.remove(3), Some(30));
        assert_eq!(f.remove(3), None);
        assert_eq!(f.get(1), Some(&10));
        assert_eq!(f.remove(1), Some(10));
        assert_eq!(f.remove(2), Some(20));
        // The ring's front moved past the answered ones.
        assert_eq!(f.base, 4);
        assert_eq!(f.get(11), None);
        assert_eq!(f.get(-5), None);
        assert_eq!(f.len(), 7);
        let mut rest: Vec<i64> = f.drain().collect();
        rest.sort();
        assert_eq!(rest, vec![40, 50, 60, 70, 80, 90, 100]);
        assert!(f.is_empty());
        // Empty again: the next id starts a new ring.
        f.insert(500, 1);
        assert_eq!(f.get(500), Some(&1));
        assert_eq!(f.remove(500), Some(1));
        assert!(f.is_empty());
    }

    #[test]
    fn a_tuple_held_long_does_not_stretch_the_ring() {
        let mut f = InFlight::new(8);
        f.insert(1, "held");
        for id in 2..10_000 {
            f.insert(id, "quick");
            assert_eq!(f.remove(id), Some("quick"));
            assert!(f.ring.len() <= 8);
        }
        assert_eq!(f.len(), 1);
        assert_eq!(f.get(1), Some(&"held"));
        assert_eq!(f.remove(1), Some("held"));
        assert!(f.is_empty());
        assert!(f.old.is_empty());
    }

    #[test]
    fn ids_out_of_order_still_count_once() {
        let mut f = InFlight::new(4);
        f.insert(10, 'a');
        f.insert(12, 'c');
        f.insert(11, 'b');
        f.insert(11, 'B');
        assert_eq!(f.len(), 3);
        assert_eq!(f.remove(11), Some('B'));
        assert_eq!(f.remove(12), Some('c'));
        assert_eq!(f.remove(10), Some('a'));
        assert!(f.is_empty());
    }
}
