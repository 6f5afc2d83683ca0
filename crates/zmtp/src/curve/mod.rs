//! CURVE (RFC 26 CurveZMQ, as used by ZMTP 3.x): an authenticated,
//! encrypted handshake and per-frame encryption, interoperable with
//! libzmq's.
//!
//! The cryptography is NaCl's `crypto_box` (X25519 + XSalsa20Poly1305),
//! composed in `nacl` from RustCrypto's parts, and RustCrypto's
//! `crypto_secretbox` (the server's cookie); this module only lays out
//! the commands. Like NULL, it is sans-IO: the
//! [`Handshake`](crate::Handshake) feeds it commands and sends what it
//! returns.
//!
//! The handshake (C/S long-term keys, C'/S' per-connection keys):
//!
//! ```text
//! client                                            server
//! HELLO     C', Box[64 zeros](C'→S)           →
//!                                             ←     WELCOME  Box[S', cookie](S→C')
//! INITIATE  cookie, Box[C, vouch, meta](C'→S') →    (vouch: Box[C', S](C→S'))
//!                                             ←     READY    Box[meta](S'→C')
//! MESSAGE   Box[flags, frame](C'↔S')          ↔
//! ```
//!
//! The server decides on the client's long-term key C with a
//! [`CurveAuthenticator`] (the role ZAP, RFC 27, plays for libzmq): it
//! returns the user id the connection is then known by, or refuses it (the
//! client gets an ERROR command and the connection closes).
//!
//! Submodules, one job each: `keys` (key pairs), `cert` (pyzmq's
//! certificate files), `z85` (RFC 32), `config` (authenticators, each
//! side's configuration), `client` and `server` (the two handshakes) and
//! `traffic` (MESSAGE boxes after it), `nacl` (the box), `salsa` (the
//! MESSAGE boxes' keystream, several blocks at a time); the box helpers shared by all live
//! here.

use bytes::{BufMut, BytesMut};
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::AeadInPlace;

use crate::error::{Result, ZmtpError};
use nacl::CurveBox;

/// The MAC NaCl boxes carry.
const MAC: usize = 16;

mod cert;
mod client;
mod config;
mod keys;
mod nacl;
mod salsa;
mod server;
mod traffic;
mod z85;

pub use cert::{load_public_key, load_public_keys};
pub use client::CurveClient;
pub use config::{AllowAny, AllowList, CurveAuthenticator, CurveClientConfig, CurveServerConfig};
pub use keys::CurveKeyPair;
pub use server::CurveServer;
pub use z85::{z85_decode, z85_encode, z85_key};

// ------------------------------------------------------------------ boxes

/// Nonce: a 16-byte prefix (or 8-byte prefix) and the rest.
fn nonce(prefix: &[u8], rest: &[u8]) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..prefix.len()].copy_from_slice(prefix);
    n[prefix.len()..].copy_from_slice(rest);
    n
}

/// `Box[plaintext]`: the MAC, then the ciphertext (NaCl's layout without
/// its zero padding), appended to `out`.
fn seal_into(cipher: &impl AeadInPlace, n: &[u8; 24], plaintext: &[u8], out: &mut BytesMut) {
    let start = out.len();
    out.put_bytes(0, MAC);
    out.extend_from_slice(plaintext);
    let (mac, body) = out[start..].split_at_mut(MAC);
    // (XSalsa20Poly1305 cannot fail to encrypt a buffer this size)
    if let Ok(tag) = cipher.encrypt_in_place_detached(GenericArray::from_slice(n), b"", body) {
        mac.copy_from_slice(&tag);
    }
}

fn seal(cipher: &impl AeadInPlace, n: &[u8; 24], plaintext: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(MAC + plaintext.len());
    seal_into(cipher, n, plaintext, &mut out);
    out
}

/// Opens `Box[...]` (MAC then ciphertext).
fn open(
    cipher: &impl AeadInPlace,
    n: &[u8; 24],
    boxed: &[u8],
    what: &'static str,
) -> Result<Vec<u8>> {
    if boxed.len() < MAC {
        return Err(ZmtpError::Crypto(what));
    }
    let (mac, body) = boxed.split_at(MAC);
    let mut plain = body.to_vec();
    cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(n),
            b"",
            &mut plain,
            GenericArray::from_slice(mac),
        )
        .map_err(|_| ZmtpError::Crypto(what))?;
    Ok(plain)
}

/// The public keys of small order (libsodium's list; X25519 ignores the
/// top bit, so does the check): a box with one is made and opened with a
/// shared secret anybody can compute, so it proves nothing (a vouch "from"
/// such a key C needs no secret) and hides nothing. libsodium refuses
/// them, and so libzmq; so do we.
const LOW_ORDER: [[u8; 32]; 7] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    low_order_near_p(0xec),
    low_order_near_p(0xed),
    low_order_near_p(0xee),
];

/// p - 1, p and p + 1 (p = 2^255 - 19), little-endian.
const fn low_order_near_p(first: u8) -> [u8; 32] {
    let mut k = [0xff; 32];
    k[0] = first;
    k[31] = 0x7f;
    k
}

/// The box between `public` and `secret`; refused when `public` has small
/// order.
fn salsa_box(public: &[u8; 32], secret: &[u8; 32]) -> Result<CurveBox> {
    let mut canonical = *public;
    canonical[31] &= 0x7f;
    if LOW_ORDER.contains(&canonical) {
        return Err(ZmtpError::Crypto(
            "a public key of small order (its boxes are anybody's)",
        ));
    }
    Ok(CurveBox::new(public, secret))
}

fn key32(b: &[u8]) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(b).map_err(|_| ZmtpError::protocol("CURVE: truncated key"))
}

/// Short nonces: each side counts from 1 over the handshake and the
/// traffic; a peer's must only go up.
#[derive(Debug)]
struct Nonces {
    ours: u64,
    peers: u64,
}

impl Nonces {
    fn new() -> Self {
        Nonces { ours: 1, peers: 0 }
    }

    fn next(&mut self) -> [u8; 8] {
        let n = self.ours;
        self.ours += 1;
        n.to_be_bytes()
    }

    fn check(&mut self, n: &[u8]) -> Result<()> {
        let v = u64::from_be_bytes(
            <[u8; 8]>::try_from(n).map_err(|_| ZmtpError::protocol("CURVE: truncated nonce"))?,
        );
        if v <= self.peers {
            return Err(ZmtpError::Crypto("a nonce was reused (replayed traffic?)"));
        }
        self.peers = v;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Metadata, RawCommand};
    use crate::frame::Frame;
    use crate::mechanism::{Mechanism, MechanismStatus};
    use bytes::Bytes;
    use std::sync::Arc;

    #[test]
    fn z85_matches_the_rfc_and_round_trips() {
        // RFC 32's test vector.
        let data = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(z85_encode(&data), "HelloWorld");
        assert_eq!(z85_decode("HelloWorld").unwrap(), data);
        for bad in ["Hell", "Hell\"World", "#####"] {
            assert!(z85_decode(bad).is_none(), "{bad}");
        }
        let k = CurveKeyPair::generate();
        assert_eq!(z85_key(&k.public_z85()).unwrap(), k.public);
        assert!(z85_key("HelloWorld").is_err());
    }

    fn pump(client: &mut dyn Mechanism, server: &mut dyn Mechanism, md: &Metadata) -> Result<()> {
        let mut to_server = Vec::new();
        server.start(false, md, &mut Vec::new())?;
        client.start(true, md, &mut to_server)?;
        loop {
            let mut to_client = Vec::new();
            let mut s_ready = false;
            for c in to_server.drain(..) {
                s_ready = server.on_command(c, md, &mut to_client)? == MechanismStatus::Ready;
            }
            for c in to_client {
                if client.on_command(c, md, &mut to_server)? == MechanismStatus::Ready {
                    assert!(s_ready);
                    return Ok(());
                }
            }
        }
    }

    fn configs(auth: Arc<dyn CurveAuthenticator>) -> (CurveClientConfig, CurveServerConfig) {
        let server = CurveKeyPair::generate();
        (
            CurveClientConfig {
                keys: CurveKeyPair::generate(),
                server_key: server.public,
            },
            CurveServerConfig {
                keys: server,
                authenticator: auth,
            },
        )
    }

    #[test]
    fn a_handshake_then_traffic_both_ways() {
        let (cc, sc) = configs(Arc::new(AllowAny));
        let client_key = cc.keys.public;
        let mut c = Box::new(CurveClient::new(cc));
        let mut s = Box::new(CurveServer::new(sc));
        let md = Metadata::for_socket(crate::SocketType::Dealer, b"");
        pump(c.as_mut(), s.as_mut(), &md).unwrap();
        assert_eq!(s.user_id().unwrap(), z85_encode(&client_key).as_bytes());
        assert!(c.peer_metadata().is_some() && s.peer_metadata().is_some());
        let (mut cs, mut co) = c.into_transform().unwrap();
        let (mut ss, mut so) = s.into_transform().unwrap();
        for i in 0..3u8 {
            let f = Frame::data(vec![i; 100], i < 2);
            let wire = cs.seal(f.clone()).unwrap();
            assert!(!wire.body.windows(100).any(|w| w == [i; 100].as_slice()));
            assert_eq!(so.open(wire).unwrap(), f);
            let back = Frame {
                more: false,
                command: true,
                body: Bytes::from_static(b"\x04PING"),
            };
            assert_eq!(co.open(ss.seal(back.clone()).unwrap()).unwrap(), back);
        }
        // A replayed or altered MESSAGE is refused.
        let wire = cs.seal(Frame::data(&b"x"[..], false)).unwrap();
        assert!(so.open(wire.clone()).is_ok());
        assert!(matches!(so.open(wire), Err(ZmtpError::Crypto(_))));
        let mut bad = cs
            .seal(Frame::data(&b"x"[..], false))
            .unwrap()
            .body
            .to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(so.open(Frame::data(bad, false)).is_err());
    }

    #[test]
    fn the_session_seals_and_opens_frames_in_its_own_buffers() {
        use crate::codec::{Decoder, Encoder, Incoming, Limits, WriteBuffer};
        use crate::message::Message;
        let (cc, sc) = configs(Arc::new(AllowAny));
        let mut c = Box::new(CurveClient::new(cc));
        let mut s = Box::new(CurveServer::new(sc));
        let md = Metadata::for_socket(crate::SocketType::Dealer, b"");
        pump(c.as_mut(), s.as_mut(), &md).unwrap();
        let (cs, co) = c.into_transform().unwrap();
        let (mut ss, mut so) = s.into_transform().unwrap();
        // Bodies around the keystream's batch sizes, and a long one.
        let messages: Vec<Message> = [0usize, 1, 95, 96, 223, 224, 300, 4096, 70_000]
            .iter()
            .map(|&n| {
                let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                Message::from_iter([Bytes::new(), Bytes::from(body)])
            })
            .collect();
        // Client to server: sealed by the session's encoder in its write
        // buffer, opened by the frame-at-a-time API.
        let mut enc = Encoder::new(Some(cs));
        let mut out = WriteBuffer::new();
        for m in &messages {
            enc.encode_message(m, &mut out).unwrap();
        }
        let wire = out.to_vec();
        let plain: Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
        assert!(
            !wire.windows(64).any(|w| w == &plain[..64]),
            "plaintext on the wire"
        );
        let mut input = bytes::BytesMut::from(&wire[..]);
        let mut frames = crate::frame::FrameDecoder::new(u64::MAX);
        for m in &messages {
            for (i, want) in m.frames().iter().enumerate() {
                let f = frames.decode(&mut input).unwrap().unwrap();
                let f = so.open(f).unwrap();
                assert_eq!((&f.body, f.more), (want, i == 0));
            }
        }
        assert!(input.is_empty());
        // Server to client: sealed frame by frame, opened by the session's
        // decoder where they lie in its read buffer.
        let mut out = WriteBuffer::new();
        for m in &messages {
            for (i, f) in m.frames().iter().enumerate() {
                out.put_frame(ss.seal(Frame::data(f.clone(), i == 0)).unwrap());
            }
        }
        let mut input = bytes::BytesMut::from(&out.to_vec()[..]);
        let mut dec = Decoder::new(Limits::default(), Some(co));
        for m in &messages {
            match dec.decode(&mut input).unwrap() {
                Some(Incoming::Message(got)) => assert_eq!(&got, m),
                other => panic!("expected a message, got {other:?}"),
            }
        }
        assert!(input.is_empty());
    }

    #[test]
    fn a_refused_key_or_a_wrong_server_key_fails_the_handshake() {
        let (cc, sc) = configs(Arc::new(AllowList::default()));
        let mut c = CurveClient::new(cc);
        let mut s = CurveServer::new(sc);
        let md = Metadata::for_socket(crate::SocketType::Dealer, b"");
        assert!(matches!(
            pump(&mut c, &mut s, &md),
            Err(ZmtpError::AuthenticationFailed(_))
        ));
        let (mut cc, sc) = configs(Arc::new(AllowAny));
        cc.server_key = CurveKeyPair::generate().public;
        let mut c = CurveClient::new(cc);
        let mut s = CurveServer::new(sc);
        assert!(matches!(
            pump(&mut c, &mut s, &md),
            Err(ZmtpError::Crypto(_))
        ));
    }

    #[test]
    fn low_order_keys_are_refused() {
        // A HELLO from C' = 0, boxed with the zero shared secret anybody
        // can compute (what the `curve` fuzz target found accepted).
        let (mut cc, sc) = configs(Arc::new(AllowAny));
        let zero = crypto_box::SalsaBox::new(
            &crypto_box::PublicKey::from([0; 32]),
            &crypto_box::SecretKey::from([1; 32]),
        );
        let mut data = BytesMut::new();
        data.extend_from_slice(&[1, 0]);
        data.put_bytes(0, 72 + 32);
        data.extend_from_slice(&1u64.to_be_bytes());
        seal_into(
            &zero,
            &nonce(b"CurveZMQHELLO---", &1u64.to_be_bytes()),
            &[0; 64],
            &mut data,
        );
        let md = Metadata::for_socket(crate::SocketType::Dealer, b"");
        let mut s = CurveServer::new(sc);
        let hello = RawCommand::new("HELLO", data.freeze());
        assert!(matches!(
            s.on_command(hello, &md, &mut Vec::new()),
            Err(ZmtpError::Crypto(_))
        ));
        // p + 1 (= 1) with the top bit set: the same point
        cc.server_key = [0xff; 32];
        cc.server_key[0] = 0xee;
        let mut c = CurveClient::new(cc);
        assert!(c.start(true, &md, &mut Vec::new()).is_err());
    }

    #[test]
    fn certificates_round_trip() {
        let dir = std::env::temp_dir().join(format!("zmtp-certs-{}", std::process::id()));
        let k = CurveKeyPair::generate();
        let (public, secret) = k.save(&dir, "alice").unwrap();
        assert_eq!(CurveKeyPair::load(&secret).unwrap(), k);
        assert_eq!(load_public_key(&public).unwrap(), k.public);
        assert!(CurveKeyPair::load(&public).is_err());
        let allow = AllowList::from_dir(&dir).unwrap();
        assert_eq!(allow.authenticate(&k.public).unwrap(), "alice");
        assert!(allow.authenticate(&[1; 32]).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            name in proptest::sample::select(vec!["HELLO", "WELCOME", "INITIATE", "READY", "MESSAGE"]),
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            prefix_message in proptest::bool::ANY,
        ) {
            let (cc, sc) = configs(Arc::new(AllowAny));
            let md = Metadata::for_socket(crate::SocketType::Dealer, b"");
            let mut s = CurveServer::new(sc.clone());
            let _ = s.on_command(RawCommand::new(name, data.clone()), &md, &mut Vec::new());
            let mut c = CurveClient::new(cc.clone());
            let _ = c.start(true, &md, &mut Vec::new());
            let _ = c.on_command(RawCommand::new(name, data.clone()), &md, &mut Vec::new());
            // and to an established connection's opener
            let mut c = Box::new(CurveClient::new(cc));
            let mut s = Box::new(CurveServer::new(sc));
            if pump(c.as_mut(), s.as_mut(), &md).is_ok() {
                let (_, mut opener) = s.into_transform().unwrap();
                let mut body = if prefix_message { b"\x07MESSAGE".to_vec() } else { Vec::new() };
                body.extend_from_slice(&data);
                proptest::prop_assert!(opener.open(Frame::data(body, false)).is_err());
            }
        }
    }

    #[test]
    fn garbage_handshake_commands_are_errors_not_panics() {
        let (_, sc) = configs(Arc::new(AllowAny));
        let md = Metadata::for_socket(crate::SocketType::Dealer, b"");
        for len in [0usize, 1, 100, 193, 194, 195, 400] {
            let mut s = CurveServer::new(sc.clone());
            let cmd = RawCommand::new("HELLO", vec![1u8; len]);
            assert!(s.on_command(cmd, &md, &mut Vec::new()).is_err());
            let mut s = CurveServer::new(sc.clone());
            let cmd = RawCommand::new("INITIATE", vec![0u8; len]);
            assert!(s.on_command(cmd, &md, &mut Vec::new()).is_err());
        }
    }
}
