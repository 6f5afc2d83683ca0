//! A record as the [`EmbeddedStore`](super::EmbeddedStore) keeps it:
//! [`Kept`], under half of a [`Record`]'s memory.
//!
//! A store holds up to a quarter of a million records, so their size is
//! most of its memory and of the work of filling it (fresh pages the
//! kernel zeroes, for every record that outlives its batch). The ids are
//! kept as numbers rather than hex text, the trace id once per trace (its
//! [`TraceKey`]), the names (service, method, peer, process, host) in one
//! [`Place`] shared by the batch's records that have the same ones, and
//! the parts few records have (an error, a user, a payload, a traceback)
//! boxed. A record whose ids are not canonical lower-case hex keeps them
//! as they came: it reads back unchanged either way. A recorder's own
//! spans are kept without becoming records first ([`Kept::finished`]).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::Arc;

use super::stats::slot_at;
use super::{Clocks, Finished, Outcome, Payload, Peer, Record, Side};
use crate::hex::{hex, unhex};

/// A trace's key in the store: its id as 16 bytes when it is 32
/// lower-case hex digits (as every trace this crate starts), else as
/// text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TraceKey {
    Hex([u8; 16]),
    Text(Arc<str>),
}

impl std::hash::Hash for TraceKey {
    /// (an id as one number: the derived hash would add the variant and
    /// the array's length, and feed the hasher bytes)
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            TraceKey::Hex(b) => state.write_u128(u128::from_ne_bytes(*b)),
            TraceKey::Text(s) => {
                state.write_u8(1);
                s.hash(state);
            }
        }
    }
}

impl TraceKey {
    /// The key of the trace id `id`.
    pub(super) fn of(id: &str) -> TraceKey {
        match unhex::<16>(id.as_bytes()) {
            Some(b) => TraceKey::Hex(b),
            None => TraceKey::Text(id.into()),
        }
    }

    /// The trace id, as it came.
    fn id(&self) -> String {
        match self {
            TraceKey::Hex(b) => hex(b),
            TraceKey::Text(s) => s.to_string(),
        }
    }
}

/// How a kept call ended, without an error's text (that is in [`Rare`]).
#[derive(Clone, Copy, Debug)]
pub(super) enum Ending {
    Ok,
    Stream,
    Lost,
    Timeout,
    Cancelled,
    /// An [`Outcome::Err`], kept in [`Rare::error`].
    Err,
}

impl Ending {
    /// Every ending, in the order of their [`Ending::index`].
    pub(super) const ALL: [Ending; 6] = [
        Ending::Ok,
        Ending::Stream,
        Ending::Lost,
        Ending::Timeout,
        Ending::Cancelled,
        Ending::Err,
    ];

    /// Its place in [`Ending::ALL`].
    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The outcome it stands for, a stream's `items` long, an error's
    /// name and message left empty.
    fn shape(self, items: u64) -> Outcome {
        match self {
            Ending::Ok => Outcome::Ok,
            Ending::Stream => Outcome::Stream { items },
            Ending::Lost => Outcome::Lost,
            Ending::Timeout => Outcome::Timeout,
            Ending::Cancelled => Outcome::Cancelled,
            Ending::Err => Outcome::Err {
                name: String::new(),
                message: String::new(),
            },
        }
    }

    /// Its [`Outcome::label`].
    pub(super) fn label(self) -> &'static str {
        self.shape(0).label()
    }
}

/// What few records have.
#[derive(Debug)]
struct Rare {
    /// An error's name and message.
    error: Option<(String, String)>,
    /// The span and parent ids, when they are not 16 lower-case hex
    /// digits (or are all zero).
    text_ids: Option<(String, Option<String>)>,
    user: Option<String>,
    payload: Option<Box<Payload>>,
    traceback: Option<String>,
}

/// A [`Record`], kept (see the module's doc); its trace id is its
/// trace's key.
#[derive(Debug)]
pub(super) struct Kept {
    span_id: u64,
    parent_id: Option<NonZeroU64>,
    start_us: u64,
    duration_us: u64,
    /// A stream's items.
    items: u64,
    /// Its names, shared (one pointer, where five shared names would be
    /// five, each counted up when kept and down when dropped).
    place: Arc<Place>,
    side: Side,
    ending: Ending,
    rare: Option<Box<Rare>>,
}

/// The names of a kept record: the service, the method, the other end,
/// this process and host (see [`Record`]'s fields of those names).
#[derive(Debug)]
struct Place {
    service: Arc<str>,
    method: Arc<str>,
    peer: Arc<str>,
    process: Arc<str>,
    host: Arc<str>,
}

/// 16 lower-case hex digits, not all zero, as a number.
fn span_number(id: &str) -> Option<NonZeroU64> {
    NonZeroU64::new(u64::from_be_bytes(unhex::<8>(id.as_bytes())?))
}

/// The names a batch's records repeat, each shared by the batch's records
/// that have it: methods' names, callers' routing ids as text, and the
/// [`Place`]s made of them.
#[derive(Default)]
pub(super) struct Names {
    methods: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// (a server's records of one connection's calls share its routing id)
    callers: HashMap<bytes::Bytes, Arc<str>, foldhash::fast::RandomState>,
    /// The caller found last (a batch's records come in runs of one
    /// connection's).
    last_caller: Option<(bytes::Bytes, Arc<str>)>,
    /// By the addresses of their five names' text. (The names are this
    /// batch's or held by the places here: an address cannot be reused
    /// by other text while the batch is kept.)
    places: HashMap<[usize; 5], Arc<Place>, foldhash::fast::RandomState>,
    /// The places found last, newest last (at most [`RECENT_PLACES`]).
    recent: Vec<Arc<Place>>,
}

/// How many places [`Names`] looks at before its table.
const RECENT_PLACES: usize = 4;

impl Names {
    /// `peer` as a record shows it (see [`Peer::into_text`]), a routing
    /// id made text once per batch.
    fn peer(&mut self, peer: Peer) -> Arc<str> {
        match peer {
            Peer::RoutingId(id) => {
                if let Some((last, text)) = &self.last_caller {
                    if *last == id {
                        return text.clone();
                    }
                }
                let text = self
                    .callers
                    .entry(id.clone())
                    .or_insert_with_key(|id| Peer::RoutingId(id.clone()).into_text())
                    .clone();
                self.last_caller = Some((id, text.clone()));
                text
            }
            endpoint => endpoint.into_text(),
        }
    }

    /// The batch's place of these names (`method` as text: the batch's
    /// copy of it is used).
    fn place(
        &mut self,
        service: &Arc<str>,
        method: &str,
        peer: &Arc<str>,
        process: &Arc<str>,
        host: &Arc<str>,
    ) -> Arc<Place> {
        // (a batch has few places, and its records come in runs of them:
        // the last few found are looked at before the table, the method
        // by its text, which a span holds a copy of)
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b);
        if let Some(p) = self.recent.iter().rev().find(|p| {
            same(&p.service, service)
                && same(&p.peer, peer)
                && same(&p.process, process)
                && same(&p.host, host)
                && *p.method == *method
        }) {
            return p.clone();
        }
        let at = |s: &str| s.as_ptr() as usize;
        let m = match self.methods.get(method) {
            Some(m) => at(m),
            None => {
                let m: Arc<str> = method.into();
                let p = at(&m);
                self.methods.insert(m);
                p
            }
        };
        let key = [at(service), m, at(peer), at(process), at(host)];
        let methods = &self.methods;
        let place = self
            .places
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Place {
                    service: service.clone(),
                    // (the batch's copy, put there above)
                    method: methods
                        .get(method)
                        .cloned()
                        .unwrap_or_else(|| method.into()),
                    peer: peer.clone(),
                    process: process.clone(),
                    host: host.clone(),
                })
            })
            .clone();
        if self.recent.len() == RECENT_PLACES {
            self.recent.remove(0);
        }
        self.recent.push(place.clone());
        place
    }
}

/// `outcome` without its text: an error's name and message are
/// returned apart (they go to [`Rare`]).
fn ending(outcome: Outcome) -> (Ending, u64, Option<(String, String)>) {
    match outcome {
        Outcome::Ok => (Ending::Ok, 0, None),
        Outcome::Stream { items } => (Ending::Stream, items, None),
        Outcome::Lost => (Ending::Lost, 0, None),
        Outcome::Timeout => (Ending::Timeout, 0, None),
        Outcome::Cancelled => (Ending::Cancelled, 0, None),
        Outcome::Err { name, message } => (Ending::Err, 0, Some((name, message))),
    }
}

impl Rare {
    /// These parts boxed, unless there are none (most records: no
    /// [`Rare`] is made for them).
    fn boxed(
        error: Option<(String, String)>,
        text_ids: Option<(String, Option<String>)>,
        user: Option<String>,
        payload: Option<Box<Payload>>,
        traceback: Option<String>,
    ) -> Option<Box<Rare>> {
        let any = error.is_some()
            || text_ids.is_some()
            || user.is_some()
            || payload.is_some()
            || traceback.is_some();
        any.then(|| {
            Box::new(Rare {
                error,
                text_ids,
                user,
                payload,
                traceback,
            })
        })
    }
}

impl Kept {
    /// `r` kept, its names shared through `names`, the batch's.
    pub(super) fn new(r: Record, names: &mut Names) -> Kept {
        let span = span_number(&r.span_id);
        let parent = r.parent_id.as_deref().map(span_number);
        let (span_id, parent_id, text_ids) = match (span, parent) {
            (Some(s), None) => (s.get(), None, None),
            (Some(s), Some(Some(p))) => (s.get(), Some(p), None),
            _ => (0, None, Some((r.span_id, r.parent_id))),
        };
        let (ending, items, error) = ending(r.outcome);
        Kept {
            span_id,
            parent_id,
            start_us: r.start_us,
            duration_us: r.duration_us,
            items,
            place: names.place(&r.service, &r.method, &r.peer, &r.process, &r.host),
            side: r.side,
            ending,
            rare: Rare::boxed(error, text_ids, r.user, r.payload, r.traceback),
        }
    }

    /// A finished span kept, and its trace's key: what
    /// [`Finished::into_record`] and [`Kept::new`] make of it, without
    /// the ids' text in between; the names it repeats shared through
    /// `names`, the batch's.
    pub(super) fn finished(
        s: Box<Finished>,
        process: &Arc<str>,
        host: &Arc<str>,
        clocks: Clocks,
        names: &mut Names,
    ) -> (TraceKey, Kept) {
        let start_us = s.start_us(clocks);
        let span_id = u64::from_be_bytes(s.ctx.span_id);
        let mut text_ids = None;
        let parent_id = s.ctx.parent_id.and_then(|p| {
            let n = NonZeroU64::new(u64::from_be_bytes(p));
            if n.is_none() {
                // (an all-zero parent: kept as the text it reads as)
                text_ids = Some((hex(&s.ctx.span_id), Some(hex(&p))));
            }
            n
        });
        let (ending, items, error) = ending(s.outcome);
        let user = s.user.map(|u| u.to_string());
        let kept = Kept {
            span_id,
            parent_id,
            start_us,
            duration_us: s.duration.as_micros() as u64,
            items,
            place: {
                let peer = names.peer(s.peer);
                names.place(&s.service, &s.method, &peer, process, host)
            },
            side: s.side,
            ending,
            rare: Rare::boxed(error, text_ids, user, s.payload, s.traceback),
        };
        (TraceKey::Hex(s.ctx.trace_id), kept)
    }

    pub(super) fn side(&self) -> Side {
        self.side
    }

    pub(super) fn service(&self) -> &Arc<str> {
        &self.place.service
    }

    pub(super) fn method(&self) -> &Arc<str> {
        &self.place.method
    }

    pub(super) fn ending(&self) -> Ending {
        self.ending
    }

    pub(super) fn duration_us(&self) -> u64 {
        self.duration_us
    }

    /// The statistics' slot it ends in.
    pub(super) fn slot(&self) -> u64 {
        slot_at(self.start_us, self.duration_us)
    }

    /// How it ended, but an error's name and message left empty.
    pub(super) fn outcome_shape(&self) -> Outcome {
        self.ending.shape(self.items)
    }

    /// The record again, in the trace `trace`.
    pub(super) fn record(&self, trace: &TraceKey) -> Record {
        let rare = self.rare.as_deref();
        let (span_id, parent_id) = match rare.and_then(|r| r.text_ids.clone()) {
            Some(ids) => ids,
            None => (
                hex(&self.span_id.to_be_bytes()),
                self.parent_id.map(|p| hex(&p.get().to_be_bytes())),
            ),
        };
        let outcome = match (self.outcome_shape(), rare.and_then(|r| r.error.clone())) {
            (Outcome::Err { .. }, Some((name, message))) => Outcome::Err { name, message },
            (shape, _) => shape,
        };
        Record {
            trace_id: trace.id(),
            span_id,
            parent_id,
            side: self.side,
            service: self.place.service.clone(),
            method: self.place.method.to_string(),
            peer: self.place.peer.clone(),
            process: self.place.process.clone(),
            host: self.place.host.clone(),
            start_us: self.start_us,
            duration_us: self.duration_us,
            outcome,
            user: rare.and_then(|r| r.user.clone()),
            payload: rare.and_then(|r| r.payload.clone()),
            traceback: rare.and_then(|r| r.traceback.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(trace: &str, span: &str, parent: Option<&str>, outcome: Outcome) -> Record {
        Record {
            trace_id: trace.into(),
            span_id: span.into(),
            parent_id: parent.map(Into::into),
            side: Side::Server,
            service: "svc".into(),
            method: "echo".into(),
            peer: "0a1b".into(),
            process: "test[1]".into(),
            host: "h".into(),
            start_us: 1_700_000_000_000_000,
            duration_us: 1500,
            outcome,
            user: None,
            payload: None,
            traceback: None,
        }
    }

    fn round_trip(r: &Record) -> Kept {
        let kept = Kept::new(r.clone(), &mut Names::default());
        let key = TraceKey::of(&r.trace_id);
        assert_eq!(&kept.record(&key), r);
        kept
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn a_record_with_hex_ids_is_kept_in_numbers_and_reads_back_the_same() {
        let outcomes = [
            Outcome::Ok,
            Outcome::Stream { items: 7 },
            Outcome::Lost,
            Outcome::Timeout,
            Outcome::Cancelled,
        ];
        for outcome in outcomes {
            for parent in [None, Some("ffffffffffffffff")] {
                let kept = round_trip(&record(TRACE, SPAN, parent, outcome.clone()));
                assert!(kept.rare.is_none(), "{outcome:?} needs no box");
            }
        }
        assert!(matches!(TraceKey::of(TRACE), TraceKey::Hex(_)));
    }

    #[test]
    fn what_few_records_have_is_boxed_and_reads_back_the_same() {
        let mut r = record(
            TRACE,
            SPAN,
            None,
            Outcome::Err {
                name: "ValueError".into(),
                message: "bad".into(),
            },
        );
        assert!(round_trip(&r).rare.is_some());
        r.outcome = Outcome::Ok;
        r.user = Some("alice".into());
        r.traceback = Some("Traceback ...".into());
        r.payload = Payload::capped(vec![1.into()], Some("x".into()));
        assert!(round_trip(&r).rare.is_some());
    }

    #[test]
    fn ids_that_are_not_canonical_hex_read_back_as_they_came() {
        // upper case, short, all zero, not hex: each kept as text
        for (trace, span, parent) in [
            ("4BF92F3577B34DA6A3CE929D0E0E4736", SPAN, None),
            ("t1", "s1", Some("p")),
            (TRACE, "0000000000000000", None),
            (TRACE, SPAN, Some("0000000000000000")),
            (TRACE, SPAN, Some("00F067AA0BA902B7")),
            (TRACE, "00f067aa0ba902b", None),
            ("", "", Some("")),
        ] {
            round_trip(&record(trace, span, parent, Outcome::Ok));
        }
        assert!(matches!(TraceKey::of("t1"), TraceKey::Text(_)));
    }

    #[test]
    fn a_batch_s_records_with_the_same_names_share_one_place() {
        let mut names = Names::default();
        let a = record(
            "4b".repeat(16).as_str(),
            "0000000000000001",
            None,
            Outcome::Ok,
        );
        let b = Record {
            span_id: "0000000000000002".into(),
            ..a.clone()
        };
        // the same names, as other allocations of the same text
        let c = Record {
            service: "svc".into(),
            peer: "0a1b".into(),
            ..a.clone()
        };
        let d = Record {
            peer: "other".into(),
            ..a.clone()
        };
        let kept: Vec<Kept> = [&a, &b, &c, &d]
            .into_iter()
            .map(|r| Kept::new(r.clone(), &mut names))
            .collect();
        assert!(Arc::ptr_eq(&kept[0].place, &kept[1].place));
        assert!(!Arc::ptr_eq(&kept[0].place, &kept[2].place));
        assert!(!Arc::ptr_eq(&kept[0].place, &kept[3].place));
        // one copy of the method's name for the batch
        assert!(Arc::ptr_eq(kept[0].method(), kept[3].method()));
        let key = TraceKey::of(&a.trace_id);
        for (k, r) in kept.iter().zip([&a, &b, &c, &d]) {
            assert_eq!(&k.record(&key), r);
        }
    }

    #[test]
    fn a_kept_record_is_under_half_a_record() {
        // (what the store's memory is made of: see the module's doc)
        assert!(
            std::mem::size_of::<Kept>() * 2 <= std::mem::size_of::<Record>(),
            "{} vs {}",
            std::mem::size_of::<Kept>(),
            std::mem::size_of::<Record>()
        );
    }
}
