//! Distributed tracing (documented on [`TraceContext`]).

use std::fmt;

use rmpv::Value;

use crate::event::{Header, SharedEntries};
use crate::hex::{self, hex, unhex};

/// Header key of the W3C `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// Header key of the W3C `tracestate`.
pub const TRACESTATE: &str = "tracestate";
/// The legacy header key, read only.
pub const LEGACY_TRACE_ID: &str = "trace_id";

/// A span's place in a trace: the trace id, this span's id, and (when
/// known) the span it was started from.
///
/// Distributed tracing: W3C Trace Context carried in event headers, and a
/// task-local current context so calls made inside a handler are children
/// of the call being served.
///
/// On the wire a traced channel's events carry a `traceparent` header key
/// (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`) and `tracestate`
/// when it is not empty (PROTOCOL.md section 9). A legacy `trace_id` key,
/// from older in-house peers, is read as the trace id. Peers that know
/// nothing of it (zerorpc-python, zerorpc-node) ignore the extra keys.
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 16 bytes, shared by every span of the trace.
    pub trace_id: [u8; 16],
    /// 8 bytes, this span's own.
    pub span_id: [u8; 8],
    /// The span this one is a child of (`None` for a root).
    pub parent_id: Option<[u8; 8]>,
    /// The W3C `sampled` flag.
    pub sampled: bool,
    /// Vendor data (`tracestate`), passed along untouched.
    pub tracestate: Option<String>,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("trace_id", &hex(&self.trace_id))
            .field("span_id", &hex(&self.span_id))
            .field("parent_id", &self.parent_id.map(|p| hex(&p)))
            .finish()
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// Runs `f` with `ctx`, if any, as the current context (a server polling
/// its handler: a context made per poll, no allocation).
pub(crate) fn sync_scoped<R>(ctx: Option<TraceContext>, f: impl FnOnce() -> R) -> R {
    match ctx {
        Some(c) => CURRENT.sync_scope(c, f),
        None => f(),
    }
}

std::thread_local! {
    /// Per-thread id generator state (SplitMix64), seeded once from the
    /// OS-seeded `rand` generator: ids must be unpredictable enough not to
    /// collide, not secret, and one is made for every call.
    static IDS: std::cell::Cell<u64> = std::cell::Cell::new(rand::random());
}

fn next_u64() -> u64 {
    IDS.with(|s| {
        let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn nonzero<const N: usize>() -> [u8; N] {
    loop {
        let mut b = [0u8; N];
        for chunk in b.chunks_mut(8) {
            chunk.copy_from_slice(&next_u64().to_le_bytes()[..chunk.len()]);
        }
        if b.iter().any(|x| *x != 0) {
            return b;
        }
    }
}

impl TraceContext {
    /// The first span of a new trace.
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: nonzero(),
            span_id: nonzero(),
            parent_id: None,
            sampled: true,
            tracestate: None,
        }
    }

    /// A new span of the same trace, started from this one.
    pub fn child(&self) -> Self {
        TraceContext {
            trace_id: self.trace_id,
            span_id: nonzero(),
            parent_id: (self.span_id != [0; 8]).then_some(self.span_id),
            sampled: self.sampled,
            tracestate: self.tracestate.clone(),
        }
    }

    /// The context of the task this is called from: inside a traced
    /// handler (or [`TraceContext::scope`]), its span.
    pub fn current() -> Option<TraceContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `f` with this context as the current one.
    pub async fn scope<F: std::future::Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// The trace id as 32 hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// The `traceparent` value naming this span.
    pub fn traceparent(&self) -> String {
        self.traceparent_bytes()
            .iter()
            .map(|&c| char::from(c))
            .collect()
    }

    fn traceparent_bytes(&self) -> [u8; 55] {
        self.trace_parent().to_bytes()
    }

    /// Reads a `traceparent` (and `tracestate`): the context of the remote
    /// span, which a receiver takes as its parent. `None` if malformed
    /// (all-zero ids are invalid, as the W3C spec says).
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id: [u8; 16] = unhex(trace.as_bytes())?;
        let span_id: [u8; 8] = unhex(span.as_bytes())?;
        let [flags] = unhex::<1>(flags.as_bytes())?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            parent_id: None,
            sampled: flags & 1 == 1,
            tracestate: tracestate.filter(|s| !s.is_empty()).map(str::to_owned),
        })
    }

    /// The remote span named by an event header: `traceparent` (with
    /// `tracestate`), else a legacy `trace_id` (any string or bytes: 32
    /// hex digits or a UUID are used as they are, anything else is hashed
    /// into an id; the remote span id is then unknown).
    pub fn from_header(h: &Header) -> Option<Self> {
        fn text(v: &Value) -> Option<&str> {
            match v {
                Value::String(s) => s.as_str(),
                Value::Binary(b) => std::str::from_utf8(b).ok(),
                _ => None,
            }
        }
        if let Some(tp) = &h.traceparent {
            return Some(TraceContext {
                trace_id: tp.trace_id,
                span_id: tp.span_id,
                parent_id: None,
                sampled: tp.flags & 1 == 1,
                tracestate: h
                    .get(TRACESTATE)
                    .and_then(text)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            });
        }
        if let Some(tp) = h.get(TRACEPARENT).and_then(text) {
            let ts = h.get(TRACESTATE).and_then(text);
            if let Some(ctx) = TraceContext::parse(tp, ts) {
                return Some(ctx);
            }
            tracing::debug!(traceparent = %tp, "ignoring a malformed traceparent");
        }
        let legacy = h.get(LEGACY_TRACE_ID)?;
        let raw = text(legacy).map_or_else(|| legacy.to_string(), str::to_owned);
        let compact: String = raw.chars().filter(|c| *c != '-').collect();
        let trace_id = unhex::<16>(compact.as_bytes())
            .filter(|t| *t != [0; 16])
            .unwrap_or_else(|| fold16(raw.as_bytes()));
        Some(TraceContext {
            trace_id,
            // (unknown: a child of this has no parent span)
            span_id: [0; 8],
            parent_id: None,
            sampled: true,
            tracestate: None,
        })
    }

    /// The header entries, encoded once to be sent with every event of a
    /// channel. (A channel of ours carries its context without them:
    /// [`crate::Channel::set_trace`].)
    pub fn shared_entries(&self) -> SharedEntries {
        SharedEntries::new(&self.header_entries())
    }

    /// This span as a `traceparent` ([`crate::Header::traceparent`]).
    pub fn trace_parent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            span_id: self.span_id,
            flags: u8::from(self.sampled),
        }
    }

    /// Puts this span on an event header: its `traceparent` in place (no
    /// allocation), and its `tracestate`, if it has one, among the shared
    /// entries.
    pub fn stamp(&self, header: &mut crate::Header) {
        header.traceparent = Some(self.trace_parent());
        header.shared = self.tracestate_entries();
    }

    /// The `tracestate` entry, encoded to be shared by every event of a
    /// channel (none without one).
    pub(crate) fn tracestate_entries(&self) -> SharedEntries {
        match &self.tracestate {
            Some(ts) => SharedEntries::new(&[(Value::from(TRACESTATE), Value::from(ts.as_str()))]),
            None => SharedEntries::default(),
        }
    }

    /// The header entries that carry this span on the wire.
    pub fn header_entries(&self) -> Vec<(Value, Value)> {
        let mut v = vec![(Value::from(TRACEPARENT), Value::from(self.traceparent()))];
        if let Some(ts) = &self.tracestate {
            v.push((Value::from(TRACESTATE), Value::from(ts.as_str())));
        }
        v
    }
}

/// A version-00 W3C `traceparent`, parsed in place from an event header
/// ([`crate::Header::traceparent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes, not all zero.
    pub span_id: [u8; 8],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// `00-<32 hex>-<16 hex>-<2 hex>` exactly (lower-case hex, ids not all
    /// zero), else `None`.
    pub fn parse(b: &[u8]) -> Option<TraceParent> {
        if b.len() != 55 || &b[..3] != b"00-" || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let tp = TraceParent {
            trace_id: unhex(&b[3..35])?,
            span_id: unhex(&b[36..52])?,
            flags: unhex::<1>(&b[53..55])?[0],
        };
        if tp.trace_id == [0; 16] || tp.span_id == [0; 8] {
            return None;
        }
        Some(tp)
    }

    /// The 55 bytes of its text.
    pub fn to_bytes(&self) -> [u8; 55] {
        let mut b = [0u8; 55];
        b[..3].copy_from_slice(b"00-");
        hex::encode_into(&mut b[3..35], &self.trace_id);
        b[35] = b'-';
        hex::encode_into(&mut b[36..52], &self.span_id);
        b[52] = b'-';
        hex::encode_into(&mut b[53..55], &[self.flags]);
        b
    }
}

/// A stable 16-byte id from arbitrary bytes (two FNV-1a passes).
fn fold16(b: &[u8]) -> [u8; 16] {
    let fnv = |seed: u64| {
        b.iter()
            .fold(seed, |h, x| (h ^ u64::from(*x)).wrapping_mul(0x100000001b3))
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&fnv(0xcbf29ce484222325).to_be_bytes());
    out[8..].copy_from_slice(&fnv(0x84222325cbf29ce4).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_entries_encode_what_header_entries_say_and_decode_into_extra() {
        let mut ctx = TraceContext::new_root();
        for tracestate in [None, Some("congo=t61rcWkgMzE".to_owned())] {
            ctx.tracestate = tracestate;
            let shared = ctx.shared_entries();
            assert_eq!(shared.entries(), ctx.header_entries());
            let mut ev = crate::Event::new("m", Value::Array(vec![]));
            ev.header.shared = shared;
            let back = crate::Event::decode(&ev.encode(), Default::default()).unwrap();
            // (a W3C traceparent is read in place; tracestate stays extra)
            assert_eq!(
                back.header.traceparent.map(|t| t.to_bytes().to_vec()),
                Some(ctx.traceparent().into_bytes())
            );
            assert_eq!(back.header.extra, ctx.header_entries()[1..]);
            let got = TraceContext::from_header(&back.header).unwrap();
            assert_eq!((got.trace_id, got.span_id), (ctx.trace_id, ctx.span_id));
            assert_eq!(got.tracestate, ctx.tracestate);
        }
    }

    #[test]
    fn traceparent_round_trips_and_children_share_the_trace() {
        let root = TraceContext::new_root();
        let tp = root.traceparent();
        assert_eq!(tp.len(), 55);
        let back = TraceContext::parse(&tp, None).unwrap();
        assert_eq!((back.trace_id, back.span_id), (root.trace_id, root.span_id));
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_eq!(child.parent_id, Some(root.span_id));
        assert_ne!(child.span_id, root.span_id);
    }

    /// The parser before the eight-digit words: a digit at a time.
    fn parse_by_digit(b: &[u8]) -> Option<TraceParent> {
        let hex = |t: &[u8], out: &mut [u8]| -> Option<()> {
            for (o, p) in out.iter_mut().zip(t.chunks_exact(2)) {
                *o = (crate::hex::nibble(p[0])? << 4) | crate::hex::nibble(p[1])?;
            }
            Some(())
        };
        if b.len() != 55 || &b[..3] != b"00-" || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let mut tp = TraceParent {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        };
        hex(&b[3..35], &mut tp.trace_id)?;
        hex(&b[36..52], &mut tp.span_id)?;
        hex(&b[53..55], std::slice::from_mut(&mut tp.flags))?;
        (tp.trace_id != [0; 16] && tp.span_id != [0; 8]).then_some(tp)
    }

    #[test]
    fn word_parsing_agrees_with_digit_by_digit() {
        use rand::Rng;
        let mut rng = rand::rng();
        let alphabet = b"0123456789abcdefABCDEF/:`g\x00\x7f\x80\xff-";
        for i in 0..200_000 {
            let mut b = TraceContext::new_root().traceparent_bytes();
            // Most cases: one to three bytes changed, anywhere.
            for _ in 0..(i % 3 + 1) {
                let at = rng.random_range(0..55);
                b[at] = alphabet[rng.random_range(0..alphabet.len())];
            }
            if i % 7 == 0 {
                // ids of zeros, with and without other changes
                b[3..35].fill(b'0');
            }
            assert_eq!(
                TraceParent::parse(&b),
                parse_by_digit(&b),
                "{}",
                String::from_utf8_lossy(&b)
            );
        }
        // Every byte value in every digit position.
        let good = TraceContext::new_root().traceparent_bytes();
        for at in (3..35).chain(36..52).chain(53..55) {
            for c in 0..=255u8 {
                let mut b = good;
                b[at] = c;
                assert_eq!(TraceParent::parse(&b), parse_by_digit(&b));
            }
        }
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(good, Some("congo=t61rcWkgMzE")).unwrap();
        assert!(ctx.sampled);
        assert_eq!(ctx.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn legacy_trace_ids_are_read() {
        let mut h = Header::new();
        h.set(
            LEGACY_TRACE_ID,
            Value::from("4bf92f35-77b3-4da6-a3ce-929d0e0e4736"),
        );
        let ctx = TraceContext::from_header(&h).unwrap();
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let mut h2 = Header::new();
        h2.set(LEGACY_TRACE_ID, Value::from("job-1234"));
        let a = TraceContext::from_header(&h2).unwrap();
        let b = TraceContext::from_header(&h2).unwrap();
        assert_eq!(a.trace_id, b.trace_id, "a legacy id maps to one trace");
        // traceparent wins over the legacy key
        h2.set(
            TRACEPARENT,
            Value::from(TraceContext::new_root().traceparent()),
        );
        assert_ne!(TraceContext::from_header(&h2).unwrap().trace_id, a.trace_id);
        assert!(TraceContext::from_header(&Header::new()).is_none());
    }

    #[tokio::test]
    async fn the_current_context_is_task_local() {
        assert!(TraceContext::current().is_none());
        let root = TraceContext::new_root();
        let id = root.trace_id;
        root.scope(async move {
            assert_eq!(TraceContext::current().unwrap().trace_id, id);
        })
        .await;
        assert!(TraceContext::current().is_none());
    }
}
