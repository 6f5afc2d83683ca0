//! The [`EmbeddedStore`](super::EmbeddedStore)'s records, in one arena of
//! cells reused through a free list ([`Arena`]).
//!
//! A trace holds the cell of its first and of its last record; each
//! record holds the cell of the next one in its trace. A record costs no
//! allocation of its own, and a trace dropped (expired or evicted) frees
//! nothing: its cells go on the free list, and the next records take them.
//! (A `Vec` of records per trace cost an allocation per trace and a free
//! per trace dropped, and a trace of one record carried room for two:
//! 266 bytes per record held where the cells take 189. The calls/s of a
//! recording process did not change measurably:
//! `bench-results/2026-12-07-store-arena.md`.)
//!
//! The arena keeps the room its fullest moment took: at most the store's
//! `max_records` cells (and a batch), about 72 bytes each, as the store's
//! map of traces keeps its room.

use super::kept::Kept;

/// A cell's index; [`NONE`] is no cell.
pub(super) type CellId = u32;

/// No cell: the end of a trace's records, or of the free list.
pub(super) const NONE: CellId = CellId::MAX;

struct Cell {
    /// `None` while the cell is free.
    kept: Option<Kept>,
    /// The next record of the same trace, or the next free cell.
    next: CellId,
}

/// Cells per chunk (a chunk is about 288 KiB).
const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNK_BITS: u32 = 12;

/// Records in cells, linked trace by trace.
///
/// The cells are in chunks allocated once each, not in one `Vec`: one
/// that doubled would copy every record and free its old room (megabytes
/// the allocator hands back to the kernel) each time it grew.
pub(super) struct Arena {
    /// Chunks of room for [`CHUNK`] cells, all full but the last.
    chunks: Vec<Vec<Cell>>,
    /// The first free cell (freed last: its memory was touched last).
    free: CellId,
}

impl Arena {
    pub(super) fn new() -> Arena {
        Arena {
            chunks: Vec::new(),
            free: NONE,
        }
    }

    fn cell(&self, id: CellId) -> Option<&Cell> {
        let id = id as usize;
        self.chunks.get(id >> CHUNK_BITS)?.get(id & (CHUNK - 1))
    }

    fn cell_mut(&mut self, id: CellId) -> &mut Cell {
        let id = id as usize;
        &mut self.chunks[id >> CHUNK_BITS][id & (CHUNK - 1)]
    }

    /// Cells held, free or not (the arena's room in records).
    pub(super) fn room(&self) -> usize {
        self.chunks
            .last()
            .map_or(0, |last| (self.chunks.len() - 1) * CHUNK + last.len())
    }

    /// Stores `kept` as the last record of a trace (its `next` is none);
    /// `None` when the arena holds `u32::MAX` records already.
    pub(super) fn insert(&mut self, kept: Kept) -> Option<CellId> {
        if self.free != NONE {
            let id = self.free;
            let cell = self.cell_mut(id);
            let next = cell.next;
            *cell = Cell {
                kept: Some(kept),
                next: NONE,
            };
            self.free = next;
            return Some(id);
        }
        let id = CellId::try_from(self.room())
            .ok()
            .filter(|id| *id != NONE)?;
        if self.chunks.last().is_none_or(|last| last.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(Cell {
                kept: Some(kept),
                next: NONE,
            });
        }
        Some(id)
    }

    /// Makes `next` the record after `last`.
    pub(super) fn link(&mut self, last: CellId, next: CellId) {
        self.cell_mut(last).next = next;
    }

    /// Frees the records from `first` on, to the end of its trace;
    /// returns how many there were.
    pub(super) fn remove_from(&mut self, first: CellId) -> usize {
        let mut n = 0;
        let mut at = first;
        while at != NONE {
            let free = self.free;
            let cell = self.cell_mut(at);
            let next = cell.next;
            // (the record is dropped here: its names' count, its rare part)
            cell.kept = None;
            cell.next = free;
            self.free = at;
            n += 1;
            at = next;
        }
        n
    }

    /// The records from `first` on, to the end of its trace.
    pub(super) fn from(&self, first: CellId) -> impl Iterator<Item = &Kept> + '_ {
        let mut at = first;
        std::iter::from_fn(move || {
            let cell = self.cell(at)?;
            at = cell.next;
            cell.kept.as_ref()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::kept::{Names, TraceKey};
    use crate::record::tests::rec;
    use crate::record::{Outcome, Side};

    fn kept(span: u64) -> Kept {
        let (trace, span) = ("ab".repeat(16), format!("{span:016x}"));
        let r = rec(&trace, &span, None, Side::Server, "m", Outcome::Ok);
        Kept::new(r, &mut Names::default())
    }

    fn spans(s: &Arena, first: CellId) -> Vec<String> {
        let key = TraceKey::of(&"ab".repeat(16));
        s.from(first).map(|k| k.record(&key).span_id).collect()
    }

    /// Two traces of three and one records.
    fn two_traces(s: &mut Arena) -> (CellId, CellId) {
        let a = s.insert(kept(1)).expect("room");
        let b = s.insert(kept(2)).expect("room");
        let a2 = s.insert(kept(3)).expect("room");
        s.link(a, a2);
        let a3 = s.insert(kept(4)).expect("room");
        s.link(a2, a3);
        (a, b)
    }

    #[test]
    fn a_traces_records_read_back_in_the_order_they_were_linked() {
        let mut s = Arena::new();
        let (a, b) = two_traces(&mut s);
        assert_eq!(
            spans(&s, a),
            ["0000000000000001", "0000000000000003", "0000000000000004"]
        );
        assert_eq!(spans(&s, b), ["0000000000000002"]);
        assert_eq!(spans(&s, NONE), Vec::<String>::new());
    }

    #[test]
    fn a_trace_reads_back_whole_across_chunks() {
        let mut s = Arena::new();
        let n = 2 * CHUNK as u64 + 5;
        let first = s.insert(kept(0)).expect("room");
        let mut last = first;
        for i in 1..n {
            let c = s.insert(kept(i)).expect("room");
            s.link(last, c);
            last = c;
        }
        assert_eq!(s.room(), n as usize);
        let read = spans(&s, first);
        assert_eq!(read.len(), n as usize);
        assert!(read
            .iter()
            .zip(0..)
            .all(|(id, i)| *id == format!("{i:016x}")));
        assert_eq!(s.remove_from(first), n as usize);
        // all of it is taken again before the arena grows
        for i in 0..n {
            s.insert(kept(i)).expect("room");
        }
        assert_eq!(s.room(), n as usize);
    }

    #[test]
    fn a_removed_traces_cells_are_taken_again_before_the_arena_grows() {
        let mut s = Arena::new();
        let (a, b) = two_traces(&mut s);
        assert_eq!(s.remove_from(a), 3);
        assert_eq!(s.room(), 4);
        // the other trace is untouched
        assert_eq!(spans(&s, b), ["0000000000000002"]);
        // three new records take the three freed cells
        let c = s.insert(kept(5)).expect("room");
        let c2 = s.insert(kept(6)).expect("room");
        s.link(c, c2);
        let d = s.insert(kept(7)).expect("room");
        assert_eq!(s.room(), 4, "no cell added while some were free");
        assert_eq!(spans(&s, c), ["0000000000000005", "0000000000000006"]);
        assert_eq!(spans(&s, d), ["0000000000000007"]);
        // the next one grows the arena
        s.insert(kept(8)).expect("room");
        assert_eq!(s.room(), 5);
        assert_eq!(s.remove_from(b), 1);
        assert_eq!(s.remove_from(c), 2);
        assert_eq!(s.remove_from(d), 1);
    }
}
