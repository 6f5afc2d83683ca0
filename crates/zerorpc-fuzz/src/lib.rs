//! # zerorpc-fuzz — the bodies of the fuzz targets
//!
//! One function per input a peer or a file controls, each taking arbitrary
//! bytes and panicking only on a broken property (a decoded event that
//! does not re-encode to itself, say): what a crash means. `fuzz/` (outside
//! the workspace: it needs the fuzzing flags) runs them under libFuzzer
//! (`fuzz/run.sh`); this crate's tests run them over the committed seeds
//! and deterministic mutations of them on every `cargo test` (a smoke: not
//! coverage-guided, but a parser that panics on a seed's neighbour fails
//! CI).
//!
//! What some targets check against lives in private modules: `curvezmq`
//! (a CurveZMQ peer written from the RFC), `server_core` (the server's
//! receive path replayed over the public sans-IO pieces), `pyjson` (a
//! reference for fedmsg's canonical JSON) and `bus` (a test PKI, a replay
//! store, a schema registry).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rmpv::Value;
use zerorpc::{Channel, ChannelConfig};
use zerorpc::{DecodeLimits, Event, EventKind, MessageId};

mod bus;
mod bus_targets;
mod curve_targets;
mod curvezmq;
mod pyjson;
mod server_core;
mod server_targets;

pub use bus_targets::{bus_replay, bus_schema, bus_signature, canonical_json};
pub use curve_targets::curve;
pub use server_targets::server_recv;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by name (the `fuzz/` binaries and the seed directories
/// are named the same).
pub const TARGETS: &[(&str, Target)] = &[
    ("zmtp_decoder", zmtp_decoder),
    ("zmtp_handshake", zmtp_handshake),
    ("event", event),
    ("channel", channel),
    ("hub", hub),
    ("multilang_json", multilang_json),
    ("multilang_msgpack", multilang_msgpack),
    ("flux", flux),
    ("gateway_json", gateway_json),
    ("yaml_configs", yaml_configs),
    ("bus_message", bus_message),
    ("curve", curve),
    ("server_recv", server_recv),
    ("bus_signature", bus_signature),
    ("bus_replay", bus_replay),
    ("bus_schema", bus_schema),
    ("canonical_json", canonical_json),
];

/// Structured reading of a target's input: what runs out reads as zeros
/// (or empty), so every input is a complete, if short, script.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes.
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A length byte, then that many bytes.
    fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte());
        self.bytes(n)
    }

    /// `N` bytes, zero-padded.
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let b = self.bytes(N);
        a[..b.len()].copy_from_slice(b);
        a
    }

    /// A small number, or one at the edge of `u64`.
    fn small(&mut self) -> u64 {
        match self.byte() {
            0xFF => u64::MAX,
            0xFE => u64::MAX - 1,
            b => u64::from(b),
        }
    }

    /// Alters `bytes` once: flips bits of a byte, cuts, or inserts.
    fn tamper(&mut self, bytes: &mut Vec<u8>) {
        let op = self.byte();
        let at = usize::from(self.u16()) % (bytes.len() + 1);
        let v = self.byte();
        match op % 3 {
            0 => match bytes.get_mut(at) {
                Some(b) => *b ^= v.max(1),
                None => bytes.push(v),
            },
            1 => bytes.truncate(at),
            _ => bytes.insert(at, v),
        }
    }
}

const LIMITS: zmtp::Limits = zmtp::Limits {
    max_message_size: 1 << 20,
    max_frames: 64,
};

/// The post-handshake ZMTP decoder, fed in chunks (the first byte picks
/// their size).
pub fn zmtp_decoder(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let mut dec = zmtp::Decoder::new(LIMITS, None);
    let mut input = BytesMut::new();
    for piece in rest.chunks(usize::from(chunk).max(1)) {
        input.extend_from_slice(piece);
        loop {
            match dec.decode(&mut input) {
                Ok(Some(item)) => {
                    let _ = item.reply();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// A ROUTER's handshake (a valid greeting first when the first byte's top
/// bit is set, to reach the command states), then the session decoder.
pub fn zmtp_handshake(data: &[u8]) {
    use zmtp::{Greeting, Handshake, NullMechanism, SocketType};
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let mut wire = Vec::new();
    if ctl & 0x80 != 0 {
        wire.extend_from_slice(&Greeting::new("NULL", false).encode());
    }
    wire.extend_from_slice(rest);
    let mut hs = Handshake::new(
        SocketType::Router,
        Bytes::new(),
        Box::new(NullMechanism::new()),
    );
    let mut input = BytesMut::new();
    let mut pieces = wire.chunks(usize::from(ctl & 0x7F).max(1));
    for piece in pieces.by_ref() {
        input.extend_from_slice(piece);
        let _ = hs.take_output();
        match hs.receive(&mut input) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => return,
        }
    }
    if !hs.is_done() {
        return;
    }
    let Ok(mut session) = hs.finish(LIMITS) else {
        return;
    };
    for piece in std::iter::once(&[][..]).chain(pieces) {
        input.extend_from_slice(piece);
        loop {
            match session.decoder.decode(&mut input) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

fn limits() -> DecodeLimits {
    DecodeLimits { max_nodes: 10_000 }
}

/// Event decoding: the full decoder and the header-only one agree, and a
/// decoded event re-encodes to bytes that decode to the same encoding.
pub fn event(data: &[u8]) {
    let full = Event::decode(data, limits());
    let head = Event::decode_head(data, limits());
    if let Ok(ev) = &full {
        let (h, name) = head.expect("decode_head refused what decode took");
        // (compared encoded: a NaN in a header value is not equal to itself)
        let bytes = |header: &zerorpc::Header, name: &str| {
            let mut e = Event::new(name, Value::Nil);
            e.header = header.clone();
            e.encode()
        };
        assert_eq!(
            bytes(&h, &name),
            bytes(&ev.header, &ev.name),
            "head and full differ"
        );
        let once = ev.encode();
        let again = Event::decode(&once, limits()).expect("our own encoding decodes");
        assert_eq!(again.encode(), once, "encoding is not stable");
    }
}

/// A client and a server channel fed arbitrary events, timeouts, sends
/// and consumption, with an explicit clock: no panic, and no more queued
/// output than a window's worth of control events.
pub fn channel(data: &[u8]) {
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = ChannelConfig {
        heartbeat: Duration::from_millis(100),
        window: 4,
        ..ChannelConfig::default()
    };
    let id = MessageId::random();
    let req = Event::new("m", Value::Array(vec![]));
    let mut chans = [
        Channel::client(id.clone(), cfg, now),
        Channel::server(&req, cfg, now),
    ];
    let kinds = [
        EventKind::Ok,
        EventKind::Err,
        EventKind::Stream,
        EventKind::StreamDone,
        EventKind::Heartbeat,
        EventKind::More,
    ];
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        let ch = &mut chans[usize::from(op & 1)];
        match (op >> 1) % 6 {
            0 => {
                // an event of some kind, with a small or odd argument
                let kind = kinds[usize::from(arg) % kinds.len()];
                let args = match arg >> 4 {
                    0 => Value::Array(vec![Value::from(arg)]),
                    1 => Value::from(-1),
                    2 => Value::Array(vec![Value::from(u64::MAX)]),
                    3 => Value::from("x"),
                    _ => Value::Nil,
                };
                let channel = ch.id().clone();
                let _ = ch.on_event(Event::on_channel(&channel, kind, args), now);
            }
            1 => {
                now += Duration::from_millis(u64::from(arg) * 5);
                let _ = ch.handle_timeout(now);
            }
            2 => {
                let kind = kinds[usize::from(arg) % 4];
                if kind != EventKind::Stream || ch.can_send_item() {
                    assert!(ch.send(kind, Value::from(1)));
                }
            }
            3 => ch.consumed(u64::from(arg)),
            4 => ch.set_deadline(now + Duration::from_millis(u64::from(arg)), Duration::ZERO),
            _ => while ch.poll_transmit().is_some() {},
        }
        assert!(ch.poll_timeout() >= t0);
    }
}

/// The hub's routing core fed arbitrary frames from clients and workers.
pub fn hub(data: &[u8]) {
    use zerorpc::hub::HubCore;
    use zerorpc::zmtp::Message;
    let mut now = Instant::now();
    let mut core = HubCore::new(&zerorpc::hub::HubOptions::default());
    let ids: Vec<Bytes> = (0..4u8).map(|i| Bytes::from(vec![b'p', i])).collect();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let len = usize::from(tail.first().copied().unwrap_or(0)).min(tail.len().saturating_sub(1));
        let payload = tail.get(1..1 + len).unwrap_or(&[]);
        rest = tail.get(1 + len..).unwrap_or(&[]);
        let who = ids[usize::from(op >> 4) % ids.len()].clone();
        let msg =
            || Message::from_iter([who.clone(), Bytes::new(), Bytes::copy_from_slice(payload)]);
        match op & 7 {
            0 => core.on_client(msg(), now),
            1 => core.on_worker(msg(), now),
            2 => core.worker_joined(who, now),
            3 => core.worker_left(&who),
            4 => core.client_left(&who),
            5 => core.worker_ready(&who, now),
            6 => {
                now += Duration::from_millis(u64::from(op) * 20);
                core.handle_timeout(now);
            }
            _ => while core.poll_output().is_some() {},
        }
    }
    let _ = core.stats(now);
}

fn multilang(serializer: zerorpc_stream::multilang::Serializer, data: &[u8]) {
    use zerorpc_stream::multilang::{
        check_shortcut, Decoder, Frame, FromComponent, Serializer, ToComponent,
    };
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    // The hand-written reader of per-tuple messages against serde, on
    // each message (JSON: each line; msgpack: what the decoder took for
    // one) and on the whole input.
    check_shortcut(rest, serializer);
    if serializer == Serializer::Json {
        for line in rest.split(|&b| b == b'\n') {
            check_shortcut(line, serializer);
        }
    } else {
        let mut dec = Decoder::with_limit(serializer, 64 * 1024);
        dec.feed(rest);
        let (mut at, mut before) = (0, dec.buffered());
        while let Ok(Some(frame)) = dec.next_frame() {
            let took = before - dec.buffered();
            if let (Frame::Message(_), Some(bytes)) = (frame, rest.get(at..at + took)) {
                check_shortcut(bytes, serializer);
            }
            at += took;
            before = dec.buffered();
        }
    }
    let mut dec = Decoder::with_limit(serializer, 64 * 1024);
    for piece in rest.chunks(usize::from(chunk).max(1)) {
        dec.feed(piece);
        loop {
            match dec.next_frame() {
                Ok(Some(Frame::Message(v))) => {
                    // what either side would make of it
                    let _ = FromComponent::from_value(v.clone());
                    let _ = ToComponent::from_value(v);
                }
                Ok(Some(Frame::Stray(_))) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Storm's multi-lang framing, JSON (`end` lines), and the messages read.
pub fn multilang_json(data: &[u8]) {
    multilang(zerorpc_stream::multilang::Serializer::Json, data);
}

/// Storm's multi-lang framing, msgpack (pystorm's), and the messages read.
pub fn multilang_msgpack(data: &[u8]) {
    multilang(zerorpc_stream::multilang::Serializer::Msgpack, data);
}

/// A Flux topology file.
pub fn flux(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = zerorpc_stream::flux::parse(text, std::path::Path::new("fuzz.yaml"));
    }
}

/// The gateway's request bodies: JSON into msgpack arguments, and back.
pub fn gateway_json(data: &[u8]) {
    use zerorpc_gateway::json::{args_from_slice, to_json, BodyArgs, Limits};
    let limits = Limits {
        max_values: 10_000,
        max_depth: 64,
    };
    match args_from_slice(data, limits) {
        Ok(BodyArgs::Positional(args)) => {
            for a in &args {
                let _ = to_json(a);
            }
        }
        Ok(BodyArgs::Named(named)) => {
            for a in named.values() {
                let _ = to_json(a);
            }
        }
        Err(_) => {}
    }
}

/// The YAML files an operator writes: a naming directory and
/// authorization rules.
pub fn yaml_configs(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = zerorpc::naming::Directory::parse(text);
        let _ = zerorpc::auth::Authorization::from_yaml(text);
    }
}

/// A fedmsg envelope: read, and its canonical JSON read back to itself.
pub fn bus_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = zerorpc_bus::message::Message::from_json(text) {
        let canonical = m.to_canonical_json();
        let back = zerorpc_bus::message::Message::from_json(&canonical)
            .expect("a message's canonical JSON reads back");
        assert_eq!(
            back.to_canonical_json(),
            canonical,
            "canonical JSON is not stable"
        );
    }
}
