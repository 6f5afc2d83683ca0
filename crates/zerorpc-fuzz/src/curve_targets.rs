//! The `curve` target: the CURVE handshake and traffic, server and client
//! side, against the reference peer in `curvezmq`.

use super::*;

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
                let wire = if op & 0x40 != 0 {
                    sealed_in_place(&mut *sealers[dir], frame.clone())
                } else {
                    sealers[dir]
                        .seal(frame.clone())
                        .expect("a frame seals")
                        .body
                };
                let n = u64::from_be_bytes(wire[8..16].try_into().expect("a nonce"));
                assert_eq!(n, next[dir], "MESSAGE nonces count up by one");
                next[dir] += 1;
                sent[dir].push((wire, frame, n));
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

/// The MESSAGE `sealer` writes for `frame` into a write buffer (sealed in
/// place): the one frame's body, its header checked.
fn sealed_in_place(sealer: &mut dyn zmtp::mechanism::FrameSealer, frame: zmtp::Frame) -> Bytes {
    let mut out = zmtp::WriteBuffer::new();
    sealer.seal_into(frame, &mut out).expect("a frame seals");
    let mut slices = [std::io::IoSlice::new(&[]); 8];
    let n = out.io_slices(&mut slices);
    let bytes: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
    assert_eq!(bytes.len(), out.len(), "the buffer's slices hold all of it");
    let (flags, body) = (bytes[0], &bytes[1..]);
    assert_eq!(flags & !0x02, 0, "a MESSAGE is one data frame");
    let (len, body) = if flags & 0x02 != 0 {
        let (len, body) = body.split_first_chunk::<8>().expect("a long length");
        (u64::from_be_bytes(*len) as usize, body)
    } else {
        (usize::from(body[0]), &body[1..])
    };
    assert_eq!(len, body.len(), "the frame's length is its body's");
    Bytes::copy_from_slice(body)
}
