//! A CurveZMQ peer written from RFC 26 for the `curve` target, on
//! RustCrypto's `crypto_box` directly (not on zmtp's code): it builds the
//! commands a client or a server sends, with any field replaced, so the
//! target can hand the library a command that is wrong in exactly one
//! place with valid boxes around it; and it checks what the library sends.
//! The two readings of the RFC are checked against each other.

use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::AeadInPlace;
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use std::sync::Arc;

/// The MAC in front of every box.
pub const MAC: usize = 16;

pub const HELLO: &[u8; 16] = b"CurveZMQHELLO---";
pub const WELCOME: &[u8; 8] = b"WELCOME-";
pub const VOUCH: &[u8; 8] = b"VOUCH---";
pub const INITIATE: &[u8; 16] = b"CurveZMQINITIATE";
pub const READY: &[u8; 16] = b"CurveZMQREADY---";
/// MESSAGE nonce prefixes: from the client, from the server.
pub const MESSAGE_C: &[u8; 16] = b"CurveZMQMESSAGEC";
pub const MESSAGE_S: &[u8; 16] = b"CurveZMQMESSAGES";

/// NaCl's `crypto_box` between one public and one secret key (either
/// side's pair of keys gives the same box).
pub struct Boxer(Arc<SalsaBox>);

/// The last few key pairs' boxes (most of the reference's keys are fixed,
/// and an X25519 is most of an execution's time).
type BoxCache = Vec<(([u8; 32], [u8; 32]), Arc<SalsaBox>)>;

thread_local! {
    static BOXES: std::cell::RefCell<BoxCache> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Boxer {
    pub fn new(public: &[u8; 32], secret: &[u8; 32]) -> Self {
        let key = (*public, *secret);
        BOXES.with_borrow_mut(|cache| {
            if let Some((_, b)) = cache.iter().find(|(k, _)| *k == key) {
                return Boxer(b.clone());
            }
            let b = Arc::new(SalsaBox::new(
                &PublicKey::from(*public),
                &SecretKey::from(*secret),
            ));
            if cache.len() == 8 {
                cache.remove(0);
            }
            cache.push((key, b.clone()));
            Boxer(b)
        })
    }

    fn nonce(prefix: &[u8], short: &[u8]) -> [u8; 24] {
        let mut n = [0u8; 24];
        n[..prefix.len()].copy_from_slice(prefix);
        n[prefix.len()..].copy_from_slice(short);
        n
    }

    /// `Box[plain]`: the MAC, then the ciphertext.
    pub fn seal(&self, prefix: &[u8], short: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut text = plain.to_vec();
        let tag = self
            .0
            .encrypt_in_place_detached(
                GenericArray::from_slice(&Self::nonce(prefix, short)),
                b"",
                &mut text,
            )
            .expect("XSalsa20Poly1305 seals any small buffer");
        let mut out = tag.to_vec();
        out.extend_from_slice(&text);
        out
    }

    pub fn open(&self, prefix: &[u8], short: &[u8], boxed: &[u8]) -> Option<Vec<u8>> {
        if boxed.len() < MAC {
            return None;
        }
        let (tag, text) = boxed.split_at(MAC);
        let mut plain = text.to_vec();
        self.0
            .decrypt_in_place_detached(
                GenericArray::from_slice(&Self::nonce(prefix, short)),
                b"",
                &mut plain,
                GenericArray::from_slice(tag),
            )
            .ok()?;
        Some(plain)
    }
}

/// Whether `public` has small order: X25519 with it gives zero whatever
/// the (clamped) secret key, so anybody can make and open its boxes.
/// libsodium refuses a zero result (and so libzmq); so does this
/// reference, computing it as libsodium does.
pub fn is_low_order(public: &[u8; 32]) -> bool {
    thread_local! {
        static LAST: std::cell::Cell<([u8; 32], bool)> = const { std::cell::Cell::new(([0; 32], true)) };
    }
    let (last, low) = LAST.get();
    if last == *public {
        return low;
    }
    let low = curve25519_dalek::montgomery::MontgomeryPoint(*public)
        .mul_clamped([0x5a; 32])
        .0
        == [0; 32];
    LAST.set((*public, low));
    low
}

fn key(b: &[u8]) -> [u8; 32] {
    b.try_into().expect("32 bytes")
}

/// HELLO: version, 72 bytes of padding, C', short nonce, `Box[signature]`
/// (C' to S). The signature is 64 zeros in a well-formed HELLO.
pub fn hello(
    version: [u8; 2],
    client_t: &[u8; 32],
    to_server: &Boxer,
    short: u64,
    signature: &[u8; 64],
) -> Vec<u8> {
    let mut out = version.to_vec();
    out.extend_from_slice(&[0u8; 72]);
    out.extend_from_slice(client_t);
    out.extend_from_slice(&short.to_be_bytes());
    out.extend_from_slice(&to_server.seal(HELLO, &short.to_be_bytes(), signature));
    out
}

/// Whether a server with secret key `server_secret` must take this HELLO
/// (as its first command): its C' and short nonce if so. The padding is
/// not checked (libzmq does not either).
pub fn hello_ok(data: &[u8], server_secret: &[u8; 32]) -> Option<([u8; 32], u64)> {
    if data.len() != 194 || data[..2] != [1, 0] {
        return None;
    }
    let client_t = key(&data[74..106]);
    let short = u64::from_be_bytes(data[106..114].try_into().ok()?);
    if short == 0 {
        return None;
    }
    let plain = Boxer::new(&client_t, server_secret).open(HELLO, &data[106..114], &data[114..])?;
    (plain == [0u8; 64] && !is_low_order(&client_t)).then_some((client_t, short))
}

/// WELCOME: a long nonce and `Box[S', cookie]` (S to C'). `plain` is S'
/// and the cookie in a well-formed one (128 bytes).
pub fn welcome(to_client: &Boxer, nonce: &[u8; 16], plain: &[u8]) -> Vec<u8> {
    let mut out = nonce.to_vec();
    out.extend_from_slice(&to_client.seal(WELCOME, nonce, plain));
    out
}

/// What a client must make of a WELCOME: S' and the cookie.
pub fn welcome_open(data: &[u8], from_server: &Boxer) -> Option<([u8; 32], [u8; 96])> {
    if data.len() != 16 + MAC + 128 {
        return None;
    }
    let plain = from_server.open(WELCOME, &data[..16], &data[16..])?;
    let server_t = key(&plain[..32]);
    if is_low_order(&server_t) {
        return None;
    }
    Some((server_t, plain[32..].try_into().ok()?))
}

/// The vouch: `Box[C', S]` (C to S').
pub fn vouch(boxer: &Boxer, nonce: &[u8; 16], client_t: &[u8; 32], server: &[u8; 32]) -> Vec<u8> {
    boxer.seal(VOUCH, nonce, &[*client_t, *server].concat())
}

/// INITIATE's plaintext: C, the vouch's nonce and box, the metadata.
pub fn initiate_inner(
    client: &[u8; 32],
    vouch_nonce: &[u8; 16],
    vouch: &[u8],
    md: &[u8],
) -> Vec<u8> {
    let mut inner = client.to_vec();
    inner.extend_from_slice(vouch_nonce);
    inner.extend_from_slice(vouch);
    inner.extend_from_slice(md);
    inner
}

/// INITIATE: the cookie, a short nonce, `Box[inner]` (C' to S').
pub fn initiate(cookie: &[u8], session: &Boxer, short: u64, inner: &[u8]) -> Vec<u8> {
    let mut out = cookie.to_vec();
    out.extend_from_slice(&short.to_be_bytes());
    out.extend_from_slice(&session.seal(INITIATE, &short.to_be_bytes(), inner));
    out
}

/// An INITIATE opened by the server that knows s': the cookie, the short
/// nonce and the plaintext (at least C, the vouch nonce and the vouch).
pub fn initiate_open(data: &[u8], session: &Boxer) -> Option<(Vec<u8>, u64, Vec<u8>)> {
    if data.len() < 96 + 8 + MAC + 128 {
        return None;
    }
    let short = u64::from_be_bytes(data[96..104].try_into().ok()?);
    let inner = session.open(INITIATE, &data[96..104], &data[104..])?;
    Some((data[..96].to_vec(), short, inner))
}

/// READY: a short nonce and `Box[metadata]` (S' to C').
pub fn ready(session: &Boxer, short: u64, md: &[u8]) -> Vec<u8> {
    let mut out = short.to_be_bytes().to_vec();
    out.extend_from_slice(&session.seal(READY, &short.to_be_bytes(), md));
    out
}

/// A READY opened: its short nonce and metadata bytes.
pub fn ready_open(data: &[u8], session: &Boxer) -> Option<(u64, Vec<u8>)> {
    if data.len() < 8 + MAC {
        return None;
    }
    let short = u64::from_be_bytes(data[..8].try_into().ok()?);
    Some((short, session.open(READY, &data[..8], &data[8..])?))
}

/// A MESSAGE command frame's body: name, short nonce, `Box[flags, body]`.
pub fn message(session: &Boxer, prefix: &[u8; 16], short: u64, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"\x07MESSAGE".to_vec();
    out.extend_from_slice(&short.to_be_bytes());
    let mut plain = vec![flags];
    plain.extend_from_slice(body);
    out.extend_from_slice(&session.seal(prefix, &short.to_be_bytes(), &plain));
    out
}

/// A MESSAGE opened: its short nonce, flags and body.
pub fn message_open(data: &[u8], session: &Boxer, prefix: &[u8; 16]) -> Option<(u64, u8, Vec<u8>)> {
    if data.len() < 16 + MAC + 1 || &data[..8] != b"\x07MESSAGE" {
        return None;
    }
    let short = u64::from_be_bytes(data[8..16].try_into().ok()?);
    let plain = session.open(prefix, &data[8..16], &data[16..])?;
    Some((short, plain[0], plain[1..].to_vec()))
}
