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
use zerorpc::channel::{Channel, ChannelConfig};
use zerorpc::{DecodeLimits, Event, EventKind, MessageId};

mod bus;
mod curvezmq;
mod pyjson;
mod server_core;

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
    let mut core = HubCore::new(&zerorpc::HubOptions::default());
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
        let _ = zerorpc::Authorization::from_yaml(text);
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

// ------------------------------------------------------------------ CURVE

/// Fixed keys (so inputs mean the same on every run): the server's and
/// the clients' long-term ones, and the reference peer's per-connection
/// ones (the library's sides pick theirs at random, as they must).
struct CurveKeys {
    server: zmtp::CurveKeyPair,
    /// Allowed by the server's authenticator, as `client`.
    client: zmtp::CurveKeyPair,
    /// Not allowed.
    stranger: zmtp::CurveKeyPair,
    /// The reference client's C'.
    client_t: zmtp::CurveKeyPair,
    /// The reference server's S'.
    server_t: zmtp::CurveKeyPair,
    /// C' (`client_t`) and S: HELLO's and WELCOME's box.
    hello_box: curvezmq::Boxer,
    server_cfg: zmtp::curve::CurveServerConfig,
    client_cfg: zmtp::curve::CurveClientConfig,
}

static CURVE_KEYS: LazyLock<CurveKeys> = LazyLock::new(|| {
    use zmtp::CurveKeyPair;
    let server = CurveKeyPair::from_secret([0x53; 32]);
    let client = CurveKeyPair::from_secret([0x43; 32]);
    let stranger = CurveKeyPair::from_secret([0x58; 32]);
    let client_t = CurveKeyPair::from_secret([0x63; 32]);
    let server_t = CurveKeyPair::from_secret([0x73; 32]);
    let mut allow = zmtp::AllowList::default();
    allow.allow(client.public, "client");
    CurveKeys {
        hello_box: curvezmq::Boxer::new(&server.public, &client_t.secret),
        server_cfg: zmtp::curve::CurveServerConfig {
            keys: server.clone(),
            authenticator: std::sync::Arc::new(allow),
        },
        client_cfg: zmtp::curve::CurveClientConfig {
            keys: client.clone(),
            server_key: server.public,
        },
        server,
        client,
        stranger,
        client_t,
        server_t,
    }
});

impl CurveKeys {
    /// The secret of a long-term client key we hold.
    fn secret_of(&self, public: &[u8]) -> Option<[u8; 32]> {
        [&self.client, &self.stranger]
            .into_iter()
            .find(|k| k.public == public)
            .map(|k| k.secret)
    }
}

/// A low-order Curve25519 point (here: zero): its shared secret with any
/// key is zero, so a box "from" it can be made by anyone. libsodium (and
/// so libzmq) refuses such keys.
const LOW_ORDER: [u8; 32] = [0; 32];

const CURVE_NAMES: [&str; 6] = ["HELLO", "WELCOME", "INITIATE", "READY", "MESSAGE", "ERROR"];

/// A step's command name: the expected one, or (top bit of the step's
/// byte set) another.
fn curve_name(v: u8, expected: &'static str) -> &'static str {
    if v & 0x80 != 0 {
        CURVE_NAMES[usize::from((v >> 4) & 7) % CURVE_NAMES.len()]
    } else {
        expected
    }
}

/// CURVE (RFC 26): the server side fed a client's commands (HELLO,
/// INITIATE), the client side fed a server's (WELCOME, READY), and MESSAGE
/// boxes once a handshake succeeded; the first byte picks which.
///
/// The peer is a reference CurveZMQ implementation written from the RFC in
/// this crate (`curvezmq`, on `crypto_box` directly), with fixed keys: each
/// command is either well-formed, well-formed then altered (a bit flip, a
/// cut, an insertion), built with one field chosen by the input (version,
/// short nonce, HELLO signature, cookie, client key, vouch, metadata, S')
/// inside valid boxes, or raw bytes, and sometimes sent under another
/// command's name. The properties, beyond never panicking:
/// * the library takes a command exactly when the reference says a peer
///   must (so an altered box, a replayed or zero nonce, another
///   connection's cookie, a vouch for another key or connection, or a
///   low-order key is refused, and a valid command is never refused);
/// * what the library sends (WELCOME, INITIATE, READY, MESSAGE) opens with
///   the reference and says what it should (its keys, the cookie echoed,
///   the nonces counting up, the metadata);
/// * after the handshake, a MESSAGE opens to exactly the frame that was
///   sealed, once: altered, replayed, reordered-older or forged ones are
///   errors (both directions, library to library and library to reference).
///
/// Not covered: the greeting and framing around the commands (the
/// `zmtp_handshake` target), ZAP, the sockets.
pub fn curve(data: &[u8]) {
    let mut input = Input(data);
    match input.byte() % 3 {
        0 => curve_server(&mut input),
        1 => curve_client(&mut input),
        _ => curve_traffic(&mut input),
    }
}

fn curve_server(input: &mut Input) {
    use curvezmq::{self as r, Boxer};
    use zmtp::curve::CurveServer;
    use zmtp::{Mechanism, MechanismStatus, Metadata, RawCommand, SocketType, ZmtpError};
    let k = &*CURVE_KEYS;
    let local = Metadata::for_socket(SocketType::Router, b"");
    let mut server = Box::new(CurveServer::new(k.server_cfg.clone()));
    let mut out = Vec::new();
    server
        .start(false, &local, &mut out)
        .expect("a CURVE server starts");

    // HELLO, from the reference client (C' = client_t).
    let v = input.byte();
    let good = |short: u64, sig: &[u8; 64], version| {
        r::hello(version, &k.client_t.public, &k.hello_box, short, sig)
    };
    let hello = match v & 3 {
        0 => good(1, &[0; 64], [1, 0]),
        1 => {
            let mut h = good(1, &[0; 64], [1, 0]);
            input.tamper(&mut h);
            h
        }
        2 => {
            let f = input.byte();
            let version = if f & 1 != 0 {
                [input.byte(), input.byte()]
            } else {
                [1, 0]
            };
            let mut sig = [0u8; 64];
            if f & 2 != 0 {
                sig[usize::from(input.byte()) % 64] = input.byte();
            }
            if f & 4 != 0 {
                // a low-order C', boxed with the zero shared secret
                let zero = curvezmq::Boxer::new(&LOW_ORDER, &[1; 32]);
                r::hello([1, 0], &LOW_ORDER, &zero, 1, &sig)
            } else {
                good(input.small(), &sig, version)
            }
        }
        _ => input.chunk().to_vec(),
    };
    let name = curve_name(v, "HELLO");
    let want = (name == "HELLO")
        .then(|| r::hello_ok(&hello, &k.server.secret))
        .flatten();
    let got = server.on_command(RawCommand::new(name, hello), &local, &mut out);
    assert_eq!(
        got.is_ok(),
        want.is_some(),
        "server took {name} against the RFC: {got:?}"
    );
    let Some((client_t, hello_short)) = want else {
        return;
    };
    assert!(matches!(got, Ok(MechanismStatus::Handshaking)));
    if client_t != k.client_t.public {
        return; // (a C' whose secret the reference does not hold)
    }
    let welcome = out.pop().expect("HELLO is answered");
    assert!(welcome.is("WELCOME") && out.is_empty());
    let (server_t, cookie) =
        r::welcome_open(&welcome.data, &k.hello_box).expect("the server's WELCOME opens");

    // INITIATE: the cookie, C, the vouch, metadata, boxed for S'.
    let session = Boxer::new(&server_t, &k.client_t.secret);
    let v = input.byte();
    let f = if v & 3 == 2 { input.byte() } else { 0 };
    let short = if f & 1 != 0 {
        input.small()
    } else {
        hello_short.wrapping_add(1)
    };
    let vouch_nonce = [0x76; 16];
    // (client key, the box the vouch is sealed with)
    let (client, vouch_box) = match (f >> 1) % 4 {
        0 => (k.client.public, Boxer::new(&server_t, &k.client.secret)),
        1 => (k.stranger.public, Boxer::new(&server_t, &k.stranger.secret)),
        // a key whose secret nobody has: the vouch cannot be made
        2 => (input.array(), Boxer::new(&server_t, &k.stranger.secret)),
        // a low-order key: the vouch is made with the zero shared secret
        _ => (LOW_ORDER, Boxer::new(&LOW_ORDER, &[1; 32])),
    };
    let vouch = match (f >> 3) % 4 {
        0 => r::vouch(
            &vouch_box,
            &vouch_nonce,
            &k.client_t.public,
            &k.server.public,
        ),
        // for another connection, or another server
        1 => r::vouch(
            &vouch_box,
            &vouch_nonce,
            &k.stranger.public,
            &k.server.public,
        ),
        2 => r::vouch(
            &vouch_box,
            &vouch_nonce,
            &k.client_t.public,
            &k.client.public,
        ),
        _ => input.array::<80>().to_vec(),
    };
    let md = if f & 0x20 != 0 {
        input.chunk().to_vec()
    } else {
        Metadata::for_socket(SocketType::Dealer, b"")
            .encode()
            .to_vec()
    };
    let mut cookie_sent = cookie.to_vec();
    if f & 0x40 != 0 {
        input.tamper(&mut cookie_sent);
    }
    let inner = r::initiate_inner(&client, &vouch_nonce, &vouch, &md);
    let good = r::initiate(&cookie_sent, &session, short, &inner);
    let initiate = match v & 3 {
        0 | 2 => good,
        1 => {
            let mut i = good;
            input.tamper(&mut i);
            i
        }
        _ => input.chunk().to_vec(),
    };
    let name = curve_name(v, "INITIATE");
    // What a server must do with it: the cookie is ours (byte for byte:
    // nobody else can make one), the nonce went up, the box opens, the
    // vouch (openable only with C's secret) names this C' and this S, and
    // the metadata parses; then the authenticator decides.
    let want = (name == "INITIATE" && initiate.get(..96) == Some(&cookie[..]))
        .then(|| r::initiate_open(&initiate, &session))
        .flatten()
        .filter(|(_, s, _)| *s > hello_short)
        .and_then(|(_, s, inner)| {
            let c: [u8; 32] = inner[..32].try_into().ok()?;
            let secret = k.secret_of(&c)?;
            let plain =
                Boxer::new(&server_t, &secret).open(r::VOUCH, &inner[32..48], &inner[48..128])?;
            (plain == [k.client_t.public, k.server.public].concat()).then_some(())?;
            let md = Metadata::parse(Bytes::copy_from_slice(&inner[128..])).ok()?;
            Some((c, md, s))
        });
    let got = server.on_command(RawCommand::new(name, initiate), &local, &mut out);
    let Some((c, peer_md, initiate_short)) = want else {
        assert!(got.is_err(), "server took {name} against the RFC: {got:?}");
        return;
    };
    if c != k.client.public {
        assert!(
            matches!(got, Err(ZmtpError::AuthenticationFailed(_))),
            "a key the authenticator refuses: {got:?}"
        );
        return;
    }
    assert!(
        matches!(got, Ok(MechanismStatus::Ready)),
        "a valid INITIATE refused: {got:?}"
    );
    assert_eq!(server.user_id().as_deref(), Some(&b"client"[..]));
    assert_eq!(server.peer_metadata(), Some(&peer_md));
    let ready = out.pop().expect("INITIATE is answered");
    assert!(ready.is("READY") && out.is_empty());
    let (ready_short, md) = r::ready_open(&ready.data, &session).expect("the server's READY opens");
    assert_eq!((ready_short, &md[..]), (1, &local.encode()[..]));
    let (sealer, opener) = server.into_transform().expect("CURVE protects traffic");
    curve_with_reference(
        input,
        sealer,
        opener,
        &session,
        (r::MESSAGE_S, 2),
        (r::MESSAGE_C, initiate_short),
    );
}

fn curve_client(input: &mut Input) {
    use curvezmq::{self as r, Boxer};
    use zmtp::curve::CurveClient;
    use zmtp::{Mechanism, MechanismStatus, Metadata, RawCommand, SocketType};
    let k = &*CURVE_KEYS;
    let local = Metadata::for_socket(SocketType::Dealer, b"");
    let mut client = Box::new(CurveClient::new(k.client_cfg.clone()));
    let mut out = Vec::new();
    client
        .start(true, &local, &mut out)
        .expect("a CURVE client starts");
    let hello = out.pop().expect("a client starts with HELLO");
    assert!(hello.is("HELLO") && out.is_empty());
    let (client_t, hello_short) =
        r::hello_ok(&hello.data, &k.server.secret).expect("the client's HELLO is valid");
    assert_eq!(hello_short, 1);

    // WELCOME, from the reference server (S' = server_t).
    let to_client = Boxer::new(&client_t, &k.server.secret);
    let v = input.byte();
    let mut server_t = Some(k.server_t.clone());
    let mut plain = [0u8; 128];
    plain[..32].copy_from_slice(&k.server_t.public);
    plain[32..].copy_from_slice(&[0xC0; 96]);
    let welcome = match v & 3 {
        0 => r::welcome(&to_client, &[0x77; 16], &plain),
        1 => {
            let mut w = r::welcome(&to_client, &[0x77; 16], &plain);
            input.tamper(&mut w);
            w
        }
        2 => {
            // S' or the cookie from the input, or a box of another size
            let f = input.byte();
            if f & 1 != 0 {
                let s_t = if f & 8 != 0 { LOW_ORDER } else { input.array() };
                plain[..32].copy_from_slice(&s_t);
                server_t = None;
            }
            if f & 2 != 0 {
                plain[32..].copy_from_slice(&input.array::<96>());
            }
            let mut p = plain.to_vec();
            if f & 4 != 0 {
                input.tamper(&mut p);
            }
            r::welcome(&to_client, &input.array(), &p)
        }
        _ => input.chunk().to_vec(),
    };
    let name = curve_name(v, "WELCOME");
    let want = (name == "WELCOME")
        .then(|| r::welcome_open(&welcome, &to_client))
        .flatten();
    let got = client.on_command(RawCommand::new(name, welcome), &local, &mut out);
    assert_eq!(
        got.is_ok(),
        want.is_some(),
        "client took {name} against the RFC: {got:?}"
    );
    let Some((s_t, cookie)) = want else {
        return;
    };
    let initiate = out.pop().expect("WELCOME is answered");
    assert!(initiate.is("INITIATE") && out.is_empty());
    let Some(server_t) = server_t.filter(|t| t.public == s_t) else {
        return; // (an S' whose secret the reference does not hold)
    };
    let session = Boxer::new(&client_t, &server_t.secret);
    let (cookie_back, initiate_short, inner) =
        r::initiate_open(&initiate.data, &session).expect("the client's INITIATE opens");
    assert_eq!(cookie_back, cookie);
    assert_eq!(initiate_short, 2);
    assert_eq!(inner[..32], k.client.public);
    let vouch = Boxer::new(&k.client.public, &server_t.secret)
        .open(r::VOUCH, &inner[32..48], &inner[48..128])
        .expect("the client's vouch opens");
    assert_eq!(vouch, [client_t, k.server.public].concat());
    assert_eq!(
        Metadata::parse(Bytes::copy_from_slice(&inner[128..])).ok(),
        Some(local.clone())
    );

    // READY: a short nonce and the server's metadata.
    let v = input.byte();
    let server_md = Metadata::for_socket(SocketType::Router, b"").encode();
    let ready = match v & 3 {
        0 => r::ready(&session, 1, &server_md),
        1 => {
            let mut rd = r::ready(&session, 1, &server_md);
            input.tamper(&mut rd);
            rd
        }
        2 => {
            let short = input.small();
            r::ready(&session, short, input.chunk())
        }
        _ => input.chunk().to_vec(),
    };
    let name = curve_name(v, "READY");
    let want = (name == "READY")
        .then(|| r::ready_open(&ready, &session))
        .flatten()
        .filter(|(short, _)| *short > 0)
        .and_then(|(short, md)| Some((short, Metadata::parse(Bytes::from(md)).ok()?)));
    let got = client.on_command(RawCommand::new(name, ready), &local, &mut out);
    let Some((ready_short, md)) = want else {
        assert!(got.is_err(), "client took {name} against the RFC: {got:?}");
        return;
    };
    assert!(
        matches!(got, Ok(MechanismStatus::Ready)),
        "a valid READY refused: {got:?}"
    );
    assert!(out.is_empty());
    assert_eq!(client.peer_metadata(), Some(&md));
    let (sealer, opener) = client.into_transform().expect("CURVE protects traffic");
    curve_with_reference(
        input,
        sealer,
        opener,
        &session,
        (r::MESSAGE_C, 3),
        (r::MESSAGE_S, ready_short),
    );
}

/// MESSAGEs between the library's side (its sealer's first nonce and
/// prefix in `ours`) and the reference peer (its last nonce in `theirs`).
fn curve_with_reference(
    input: &mut Input,
    mut sealer: Box<dyn zmtp::mechanism::FrameSealer>,
    mut opener: Box<dyn zmtp::mechanism::FrameOpener>,
    session: &curvezmq::Boxer,
    ours: (&[u8; 16], u64),
    theirs: (&[u8; 16], u64),
) {
    use curvezmq as r;
    let (our_prefix, mut our_next) = ours;
    let (their_prefix, mut their_last) = theirs;
    while !input.is_empty() {
        let op = input.byte();
        let (more, command) = (op & 4 != 0, op & 8 != 0);
        let body = input.chunk();
        match op % 3 {
            // library → reference
            0 => {
                let wire = sealer
                    .seal(zmtp::Frame {
                        more,
                        command,
                        body: Bytes::copy_from_slice(body),
                    })
                    .expect("a frame seals");
                assert!(!wire.more && !wire.command);
                let (short, flags, plain) = r::message_open(&wire.body, session, our_prefix)
                    .expect("the library's MESSAGE opens");
                assert_eq!(short, our_next, "MESSAGE nonces count up by one");
                assert_eq!(
                    (flags, &plain[..]),
                    (u8::from(more) | u8::from(command) << 1, body)
                );
                our_next += 1;
            }
            // reference → library, as sealed or altered
            _ => {
                let Some(short) = their_last.checked_add(1) else {
                    return;
                };
                let flags = u8::from(more) | u8::from(command) << 1;
                let sealed = r::message(session, their_prefix, short, flags, body);
                let mut wire = sealed.clone();
                if op % 3 == 2 {
                    input.tamper(&mut wire);
                }
                let got = opener.open(zmtp::Frame::data(wire.clone(), false));
                if wire == sealed {
                    let frame = got.expect("a valid MESSAGE opens");
                    assert_eq!(
                        (frame.more, frame.command, &frame.body[..]),
                        (more, command, body)
                    );
                    their_last = short;
                } else {
                    assert!(got.is_err(), "an altered MESSAGE opened: {got:?}");
                }
            }
        }
    }
}

/// Two library sides through a handshake, then MESSAGEs both ways.
fn curve_traffic(input: &mut Input) {
    use zmtp::curve::{CurveClient, CurveServer};
    use zmtp::{Mechanism, MechanismStatus, Metadata, SocketType};
    let k = &*CURVE_KEYS;
    let mut c = Box::new(CurveClient::new(k.client_cfg.clone()));
    let mut s = Box::new(CurveServer::new(k.server_cfg.clone()));
    let (cmd, smd) = (
        Metadata::for_socket(SocketType::Dealer, b""),
        Metadata::for_socket(SocketType::Router, b""),
    );
    let mut to_server = Vec::new();
    s.start(false, &smd, &mut Vec::new())
        .expect("server starts");
    c.start(true, &cmd, &mut to_server).expect("client starts");
    let mut ready = false;
    while !ready {
        let mut to_client = Vec::new();
        for cmd_ in to_server.drain(..) {
            s.on_command(cmd_, &smd, &mut to_client)
                .expect("a real client's command");
        }
        assert!(!to_client.is_empty(), "the handshake stalled");
        for cmd_ in to_client {
            ready = c
                .on_command(cmd_, &cmd, &mut to_server)
                .expect("a real server's command")
                == MechanismStatus::Ready;
        }
    }
    let (cs, co) = c.into_transform().expect("client transform");
    let (ss, so) = s.into_transform().expect("server transform");
    // [client → server, server → client]: sealer, opener, what was sealed
    // (wire, frame, nonce), the last nonce opened, the next one sealed.
    let mut sealers = [cs, ss];
    let mut openers = [so, co];
    let mut sent: [Vec<(Bytes, zmtp::Frame, u64)>; 2] = [Vec::new(), Vec::new()];
    let mut last = [2u64, 1];
    let mut next = [3u64, 2];
    while !input.is_empty() {
        let op = input.byte();
        let dir = usize::from(op & 1);
        match (op >> 1) % 4 {
            0 => {
                let frame = zmtp::Frame {
                    more: op & 0x10 != 0,
                    command: op & 0x20 != 0,
                    body: Bytes::copy_from_slice(input.chunk()),
                };
                let wire = sealers[dir].seal(frame.clone()).expect("a frame seals");
                let n = u64::from_be_bytes(wire.body[8..16].try_into().expect("a nonce"));
                assert_eq!(n, next[dir], "MESSAGE nonces count up by one");
                next[dir] += 1;
                sent[dir].push((wire.body, frame, n));
            }
            1 | 2 => {
                if sent[dir].is_empty() {
                    continue;
                }
                let i = usize::from(input.byte()) % sent[dir].len();
                let (wire, frame, n) = sent[dir][i].clone();
                let mut body = wire.to_vec();
                if (op >> 1) % 4 == 2 {
                    input.tamper(&mut body);
                }
                let got = openers[dir].open(zmtp::Frame::data(body.clone(), false));
                if body[..] == wire[..] && n > last[dir] {
                    assert_eq!(got.expect("a fresh MESSAGE opens"), frame);
                    last[dir] = n;
                } else {
                    assert!(
                        got.is_err(),
                        "an altered, replayed or older MESSAGE opened: {got:?}"
                    );
                }
            }
            _ => {
                let mut body = if op & 0x10 != 0 {
                    b"\x07MESSAGE".to_vec()
                } else {
                    Vec::new()
                };
                body.extend_from_slice(input.chunk());
                let got = openers[dir].open(zmtp::Frame::data(body, false));
                assert!(got.is_err(), "a forged MESSAGE opened: {got:?}");
            }
        }
    }
}

// ---------------------------------------------------------------- server

/// A msgpack value from the input (`depth` levels of containers).
fn value(input: &mut Input, depth: u8) -> Value {
    let b = input.byte();
    match b % 10 {
        0 => Value::Nil,
        1 => Value::Boolean(b & 0x10 != 0),
        2 => Value::from(i64::from(input.byte() as i8)),
        3 => Value::from(input.small()),
        4 => Value::F64(f64::from_bits(u64::from_be_bytes(input.array()))),
        5 => Value::from(String::from_utf8_lossy(input.chunk()).into_owned()),
        6 => Value::Binary(input.chunk().to_vec()),
        7 if depth > 0 => Value::Array((0..b >> 5).map(|_| value(input, depth - 1)).collect()),
        8 if depth > 0 => Value::Map(
            (0..b >> 5)
                .map(|_| (value(input, 0), value(input, depth - 1)))
                .collect(),
        ),
        _ => Value::from(u64::from(b >> 4)),
    }
}

const SERVER_METHODS: [&str; 14] = [
    "echo",
    "add",
    "lolita",
    "range",
    "fail",
    "record",
    "slow",
    "bytes",
    "_zerorpc_ping",
    "_zerorpc_list",
    "_zerorpc_help",
    "_zerorpc_args",
    "_zerorpc_inspect",
    "nope",
];

/// A request built from the input: a method (of the demo service, or any
/// name), arguments, a short message id (bin, or str like Node's), and
/// maybe a deadline and trace headers.
fn server_request(input: &mut Input) -> Event {
    let b = input.byte();
    let name = if b & 0x80 != 0 {
        String::from_utf8_lossy(input.chunk()).into_owned()
    } else {
        SERVER_METHODS[usize::from(b) % SERVER_METHODS.len()].to_owned()
    };
    let args = if b & 0x40 != 0 {
        value(input, 2)
    } else {
        Value::Array((0..(b >> 4) & 3).map(|_| value(input, 1)).collect())
    };
    let mut ev = Event::new(name, args);
    let id = input.byte();
    ev.header.message_id = if id & 1 == 0 {
        MessageId::from_bin(vec![id >> 1])
    } else {
        MessageId::from_str_id(&format!("n{}", id >> 1))
    };
    let h = input.byte();
    if h & 1 != 0 {
        ev.header.deadline_ms = Some(match input.byte() {
            0xFF => u64::MAX,
            ms => u64::from(ms) * 100,
        });
    }
    let text = |input: &mut Input| Value::from(String::from_utf8_lossy(input.chunk()).into_owned());
    if h & 2 != 0 {
        let tp = if h & 0x10 != 0 {
            text(input)
        } else {
            let (t, s): ([u8; 16], [u8; 8]) = (input.array(), input.array());
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            Value::from(format!("00-{}-{}-{:02x}", hex(&t), hex(&s), input.byte()))
        };
        ev.header.set("traceparent", tp);
    }
    if h & 4 != 0 {
        ev.header.set("tracestate", text(input));
    }
    if h & 8 != 0 {
        ev.header.set("trace_id", text(input));
    }
    ev
}

/// The server's receive path: sequences of ROUTER messages (an identity,
/// maybe the empty delimiter, an event: requests, events on open
/// channels, undecodable bytes, odd frame counts) from three clients, time
/// passing, calls starting, clients disconnecting.
///
/// What it covers: `Server::run` hands each message to a private
/// `handle_message`, which needs a `RouterSocket` with live peers, and
/// each call to a private `ServerCall` future; so this target replays
/// their steps (in `server_core`, said there line by line) over the
/// public sans-IO pieces they use, which are the code under test: event
/// decoding with the server's limits; the channel table (requests open a
/// call, events go to their `(identity, channel)`'s call, duplicates are
/// ignored, limits answer `ServerOverloaded`); `Channel::server` from
/// arbitrary requests (bin and str ids), deadlines from `deadline_ms`
/// (`u64::MAX` included), trace contexts from `traceparent`,
/// `tracestate` and legacy `trace_id` headers onto every reply;
/// `Channel::on_event` with whatever arrives (a bad `_zpc_more` abandons
/// the call), heartbeats, loss and deadline expiry with an explicit
/// `now`; the demo service's dispatch as `start_handler` does it
/// (introspection, argument decoding into its typed methods, `NameError`,
/// handler errors, streams under credit). Properties: no panic; every
/// reply decodes, is a protocol event on its own channel and carries its
/// call's trace; a stream never sends without credit; no more calls open
/// than the limits allow.
///
/// Not covered: the socket and its queues, the mailbox (events are
/// handled at once, never dropped for a full queue), back-pressure and
/// concurrency slots (a call starts when the input says), tracing records
/// and metrics, authorization, handlers that need a runtime (`slow`) or
/// allocate up to 32 MiB (`bytes`): those two never answer here.
pub fn server_recv(data: &[u8]) {
    use server_core::{ServerCore, MAX_CALLS};
    let mut input = Input(data);
    let mut now = Instant::now();
    let mut core = ServerCore::new();
    // libzmq's generated routing ids: 0, then four bytes.
    let peers: Vec<Bytes> = (1..=3u8)
        .map(|i| Bytes::from(vec![0, 0, 0, 0, i]))
        .collect();
    while !input.is_empty() {
        let op = input.byte();
        let who = peers[usize::from(op >> 6) % peers.len()].clone();
        // (ZeroMQ clients send the empty delimiter; zerorpc's DEALERs do not)
        let envelope = |frames: &mut Vec<Bytes>| {
            if op & 0x20 != 0 {
                frames.push(Bytes::new());
            }
        };
        match op & 7 {
            0 => {
                let mut frames = vec![who];
                envelope(&mut frames);
                frames.push(Bytes::copy_from_slice(input.chunk()));
                core.on_message(frames, now);
            }
            1 => {
                let mut frames = vec![who];
                envelope(&mut frames);
                frames.push(server_request(&mut input).encode());
                core.on_message(frames, now);
            }
            2 => {
                let k = input.byte();
                let Some((owner, id)) = core.call_id(usize::from(k)) else {
                    continue;
                };
                let kind = [
                    "_zpc_hb",
                    "_zpc_more",
                    "STREAM",
                    "OK",
                    "ERR",
                    "STREAM_DONE",
                    "x",
                ][usize::from(k >> 4) % 7];
                let args = match (kind, input.byte()) {
                    ("_zpc_more", a) if a < 0xC0 => Value::Array(vec![Value::from(a)]),
                    (_, a) if a < 0x80 => Value::Array(vec![Value::from(0)]),
                    _ => value(&mut input, 1),
                };
                let ev = Event::on_channel(&id, kind, args);
                // (the owner, or another client naming its channel)
                let mut frames = vec![if k & 8 != 0 { who } else { owner }];
                envelope(&mut frames);
                frames.push(ev.encode());
                core.on_message(frames, now);
            }
            3 => {
                now += Duration::from_millis(u64::from(input.byte()) * 50);
                core.poll_all(now, false);
            }
            4 => {
                let i = usize::from(input.byte());
                if core.len() > 0 {
                    core.poll(i % core.len(), now, true);
                }
            }
            5 => core.poll_all(now, true),
            6 => core.disconnect(&who),
            _ => {
                // odd shapes: no event, several envelope frames, nothing
                let n = usize::from(input.byte() % 5);
                let mut frames: Vec<Bytes> = if op & 8 != 0 { vec![] } else { vec![who] };
                frames.extend((0..n).map(|_| Bytes::copy_from_slice(input.chunk())));
                core.on_message(frames, now);
            }
        }
        assert!(core.len() <= MAX_CALLS, "more calls open than allowed");
    }
    // Everything winds down: heartbeats stop, calls are lost.
    now += Duration::from_secs(60);
    core.poll_all(now, false);
}

// ------------------------------------------------------------------- bus

/// fedmsg signature and certificate checks (`crypto::Validator`, with a
/// test CA, its CRL and a routing policy, at a fixed date), the first
/// byte picking what the rest is:
/// * 0: an envelope as received: read, validated by both validators
///   (nitpicky or not); one that is accepted must be genuine: alice's or
///   bob's own signature over its payload (PKCS#1 v1.5 signatures are
///   deterministic, so it is recomputed and compared);
/// * 1: an envelope, signed by one of five signers (valid, valid, revoked,
///   expired, another CA's) chosen by the first byte: the verdict must be
///   the one the PKI and the policy call for, the same after a round trip
///   through its canonical JSON; then one byte of that JSON is altered
///   (the next four bytes say how): if the result is still accepted, its
///   signed payload must be the one that was signed;
/// * 2: DER bytes put in alice's signed message as its certificate (base64
///   of PEM, as fedmsg sends it): the X.509 parsing and chain checks on
///   arbitrary certificates; accepted only if it is alice's;
/// * 3: a CA certificate and a CRL file (PEM) as an operator gives them:
///   `Validator::new` must refuse or build a validator that works.
///
/// Never a panic. Not covered: signing with arbitrary keys (the keys are
/// the operator's), `Validator::from_files` (the same after reading).
pub fn bus_signature(data: &[u8]) {
    use zerorpc_bus::crypto::Validator;
    use zerorpc_bus::message::Message;
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let pki = &*bus::PKI;
    let now = bus::now();
    match ctl % 4 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let Ok(msg) = Message::from_json(text) else {
                return;
            };
            for v in &pki.validators {
                if v.validate_at(&msg, now).is_ok() {
                    assert!(bus::genuine(&msg), "a message nobody signed was accepted");
                }
            }
        }
        1 => {
            let mut input = Input(rest);
            let how = input.array::<4>();
            let Ok(text) = std::str::from_utf8(input.0) else {
                return;
            };
            let Ok(mut msg) = Message::from_json(text) else {
                return;
            };
            let i = usize::from(ctl >> 2) % bus::SIGNERS.len();
            let nitpicky = ctl & 0x80 != 0;
            let validator = &pki.validators[usize::from(nitpicky)];
            pki.signers[i].sign(&mut msg).expect("signing");
            let got = validator.validate_at(&msg, now);
            assert!(
                bus::expected(i, &msg.topic, nitpicky, &got),
                "{} signed on {:?}: {got:?}",
                bus::SIGNERS[i].0,
                msg.topic
            );
            let wire = msg.to_canonical_json();
            let back = Message::from_json(&wire).expect("a signed message's JSON reads back");
            let again = validator.validate_at(&back, now);
            assert_eq!(
                again.is_ok(),
                got.is_ok(),
                "the verdict changed on the wire"
            );
            let mut bytes = wire.into_bytes();
            Input(&how).tamper(&mut bytes);
            let Ok(text) = String::from_utf8(bytes) else {
                return;
            };
            if let Ok(altered) = Message::from_json(&text) {
                if validator.validate_at(&altered, now).is_ok() {
                    assert!(
                        got.is_ok(),
                        "an altered message passed where the original failed"
                    );
                    assert_eq!(
                        altered.signed_payload(),
                        msg.signed_payload(),
                        "an altered message was accepted"
                    );
                }
            }
        }
        2 => {
            let mut msg = pki.signed.clone();
            msg.certificate = Some(bus::certificate_field(rest));
            for v in &pki.validators {
                if v.validate_at(&msg, now).is_ok() {
                    assert_eq!(rest, &pki.ders[0][..], "a certificate not alice's passed");
                }
            }
        }
        _ => {
            let _ = Validator::new(rest, None, bus::policy(), false);
            if let Ok(v) = Validator::new(bus::CA.as_bytes(), Some(rest), bus::policy(), false) {
                let _ = v.validate_at(&pki.signed, now);
            }
        }
    }
}

/// fedmsg's replay queries, as the daemon's replay endpoint gets them (one
/// frame): `ReplayQuery::parse`, then `replay::answer` against a store of
/// 24 known messages (with at most 3 and 10,000 messages an answer, the
/// daemon's limit), compared with a model of the documented semantics (a
/// < seq ≤ b for ranges, each message once, in seq order, `NoMatch`,
/// `TooManyMatches`, each envelope with its `seq_id` as canonical JSON); a
/// refused query's `error_reply`. The same bytes as a stored envelope for
/// `with_seq_id` (the fedmsg PUB fan-out's): any JSON object takes it, and
/// for canonical JSON the result is the canonical JSON of the object with
/// `seq_id` set. Not covered: the REQ/REP socket, a store that fails.
pub fn bus_replay(data: &[u8]) {
    use zerorpc_bus::replay::{self, ReplayError, ReplayQuery};
    match ReplayQuery::parse(data) {
        Err(e) => {
            let _ = replay::error_reply(&e);
        }
        Ok(q) => {
            let fixture = &*bus::REPLAY;
            for max in [3, 10_000] {
                let got = replay::answer(&fixture.store, &q, max);
                match (replay_model(&fixture.records, &q, max), got) {
                    (Ok(want), Ok(got)) => assert_eq!(got, want, "{q:?}"),
                    (Err(0), Err(ReplayError::NoMatch)) => {}
                    (Err(_), Err(ReplayError::TooManyMatches { max: m })) if m == max => {}
                    (want, got) => panic!("{q:?} (max {max}): want {want:?}, got {got:?}"),
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_with_seq_id(text);
    }
}

/// What `answer` must give: the envelopes with their seq_id, or `Err(n)`,
/// n matches (0: none, else more than `max`).
fn replay_model(
    records: &[bus::Rec],
    q: &zerorpc_bus::replay::ReplayQuery,
    max: usize,
) -> Result<Vec<String>, usize> {
    use zerorpc_bus::replay::ReplayQuery as Q;
    let matches: Vec<&bus::Rec> = records
        .iter()
        .filter(|r| match q {
            Q::SeqId(s) => r.seq == *s,
            Q::SeqIds(s) => s.contains(&r.seq),
            Q::SeqIdRange(a, b) => *a < r.seq && r.seq <= *b,
            Q::MsgId(id) => r.msg_id == *id,
            Q::MsgIds(ids) => ids.contains(&r.msg_id),
            // from ≤ timestamp ≤ to, bounds past i64 saturating as stored
            // timestamps do (a float timestamp past i64 is kept as
            // i64::MAX: a query from 1e19 finds it)
            Q::Time(from, to) => {
                from.ceil() as i64 <= r.timestamp && r.timestamp <= to.floor() as i64
            }
        })
        .collect();
    if matches.is_empty() || matches.len() > max {
        return Err(matches.len());
    }
    Ok(matches
        .iter()
        .map(|r| {
            let mut v: serde_json::Value = serde_json::from_str(&r.json).expect("stored JSON");
            v["seq_id"] = serde_json::Value::from(r.seq);
            zerorpc_bus::json::to_canonical(&v)
        })
        .collect())
}

/// `with_seq_id` over any text: no panic; a JSON object always takes it;
/// the canonical form of one gives the canonical form with `seq_id`.
fn check_with_seq_id(text: &str) {
    use zerorpc_bus::json::to_canonical;
    use zerorpc_bus::replay::with_seq_id;
    let seq = text.len() as u64 * 7919;
    let got = with_seq_id(text, seq);
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let got = got.expect("a JSON object takes a seq_id");
    assert!(
        serde_json::from_str::<serde_json::Value>(&got).is_ok(),
        "with_seq_id made invalid JSON of {text:?}: {got:?}"
    );
    let mut object = serde_json::Value::Object(map);
    let canonical = to_canonical(&object);
    object["seq_id"] = serde_json::Value::from(seq);
    assert_eq!(
        with_seq_id(&canonical, seq).expect("canonical JSON takes a seq_id"),
        to_canonical(&object),
        "with_seq_id on canonical JSON"
    );
}

/// Schema validation of message bodies against a registry of schemas (the
/// crate ships none: `bus::SCHEMAS` has the documented kinds: versions of
/// one glob topic, a literal topic, many JSON Schema keywords, draft 7 and
/// 2020-12): an envelope's topic and body, or any JSON body on one of six
/// topics. `SchemaRegistry::check` must agree with `check_with` naming the
/// schema it chose (or, with no schema for the topic, every named schema
/// is for another topic), an invalid body names at least one violation,
/// each a JSON pointer; summaries render (the registry's templates, and
/// one the envelope carries as `x-summary`). Not covered: compiling
/// arbitrary schemas (`load_dir`, `add`: operator files, left out as
/// their regular expressions can be made slow at will).
pub fn bus_schema(data: &[u8]) {
    use zerorpc_bus::schema::{render_summary, Checked, SchemaError};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((topic, body, template)) = bus::schema_input(text) else {
        return;
    };
    let r = &*bus::SCHEMAS;
    match r.check(&topic, &body) {
        Ok(Checked::Valid { schema_id }) => {
            let again = r.check_with(&topic, &body, Some(&schema_id));
            assert!(
                matches!(&again, Ok(Checked::Valid { schema_id: s }) if *s == schema_id),
                "{schema_id} chosen and valid, but named: {again:?}"
            );
            let _ = r.fedora_messaging_name(&schema_id);
        }
        Ok(Checked::NoSchema) => {
            for id in r.schema_ids() {
                let named = r.check_with(&topic, &body, Some(id));
                assert!(
                    matches!(named, Err(SchemaError::WrongTopic { .. })),
                    "no schema for {topic:?}, but {id} named: {named:?}"
                );
            }
        }
        Err(e) => {
            let text = e.to_string();
            let SchemaError::Invalid {
                schema_id,
                violations,
                ..
            } = e
            else {
                panic!("check can only find a body invalid: {text}");
            };
            assert!(!violations.is_empty(), "invalid without a violation");
            for v in &violations {
                assert!(v.path.is_empty() || v.path.starts_with('/'), "{v}");
            }
            let named = r.check_with(&topic, &body, Some(&schema_id));
            assert!(
                matches!(named, Err(SchemaError::Invalid { .. })),
                "{schema_id} refused the body when chosen, not when named: {named:?}"
            );
        }
    }
    let _ = r.summary(&topic, &body);
    if let Some(t) = template {
        let _ = render_summary(&t, &body);
    }
}

/// fedmsg's canonical JSON (`zerorpc_bus::json`, what signatures are
/// computed over) against a reference (`pyjson`: serde_json's strings and
/// integers with `ensure_ascii` applied after, keys sorted by character,
/// floats as Python's `repr` rebuilt from Rust's positional `Display`):
/// any JSON serde_json reads is encoded canonically (and in Python's
/// default style) exactly as the reference does; the canonical text is
/// ASCII, reads back to the same value, and re-encodes to itself. The
/// first eight bytes, as an `f64`, also go through `python_float_repr`
/// (every float, not only those JSON text reaches). Not covered: what
/// serde_json cannot hold (NaN, big integers kept exact, lone surrogates:
/// the module documentation says so).
pub fn canonical_json(data: &[u8]) {
    use zerorpc_bus::json::{python_float_repr, to_canonical, to_python_default};
    if let Some(bits) = data.get(..8) {
        let x = f64::from_bits(u64::from_be_bytes(bits.try_into().expect("8 bytes")));
        if x.is_finite() {
            let repr = python_float_repr(x);
            assert_eq!(repr, pyjson::float_repr(x), "repr of {x:e}");
            let back: f64 = repr.parse().expect("a repr reads back");
            assert!(back == x && back.is_sign_negative() == x.is_sign_negative());
        }
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let canonical = to_canonical(&value);
    assert!(canonical.is_ascii(), "canonical JSON is ASCII");
    assert_eq!(
        canonical,
        pyjson::dumps(&value, true, true),
        "canonical JSON"
    );
    assert_eq!(
        to_python_default(&value),
        pyjson::dumps(&value, false, false),
        "Python's default json.dumps"
    );
    let back: serde_json::Value =
        serde_json::from_str(&canonical).expect("canonical JSON reads back");
    assert_eq!(back, value, "canonical JSON reads back to the value");
    assert_eq!(to_canonical(&back), canonical, "canonical JSON is stable");
}
