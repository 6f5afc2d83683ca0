//! [`CurveBox`]: NaCl's `crypto_box` (X25519, then XSalsa20-Poly1305 under
//! the shared key), the box every CurveZMQ command and MESSAGE carries.
//!
//! Composed here from RustCrypto's parts (X25519 from `curve25519-dalek`,
//! HSalsa20 and XSalsa20 from `salsa20`) rather than taken whole from
//! `crypto_box`, for one reason: Poly1305. The `poly1305` crate picks its
//! AVX2 backend where the CPU has it, and that backend spends some 4,300
//! instructions setting up each message (the powers of the key, the final
//! reduction): more than hashing a 100-byte frame costs, and a call seals
//! and opens eight such boxes. Messages shorter than [`LONG`] are hashed by
//! [`poly1305_short`], a scalar 64-bit implementation (three 44-bit limbs,
//! as poly1305-donna); longer ones by the crate, whose AVX2 code is faster
//! there. Both give the same tag (tested against the crate and against
//! `crypto_box`'s boxes, and the handshake runs against libzmq's).
//!
//! The handshake's boxes take their XSalsa20 from `salsa20`; the MESSAGE
//! boxes ([`MessageBox`]), which carry the traffic, take their Salsa20
//! from `super::salsa`, which makes several blocks at a time.

use crypto_box::aead::consts::{U0, U10, U16, U24};
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::{AeadCore, AeadInPlace, Buffer};
use curve25519_dalek::montgomery::MontgomeryPoint;
use poly1305::universal_hash::KeyInit;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use salsa20::XSalsa20;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::salsa::{Stream, HEAD};

/// Messages from this length on are hashed by the `poly1305` crate.
const LONG: usize = 4096;

/// The box between a public and a secret key: their X25519 shared secret
/// through HSalsa20 (NaCl's `crypto_box_beforenm`), computed once.
pub(super) struct CurveBox {
    key: Zeroizing<[u8; 32]>,
}

impl CurveBox {
    /// The box between `public` and `secret` (the caller refuses public
    /// keys of small order first).
    pub(super) fn new(public: &[u8; 32], secret: &[u8; 32]) -> Self {
        let shared = Zeroizing::new(MontgomeryPoint(*public).mul_clamped(*secret).to_bytes());
        let key = salsa20::hsalsa::<U10>(
            GenericArray::from_slice(&shared[..]),
            &GenericArray::default(),
        );
        CurveBox {
            key: Zeroizing::new(key.into()),
        }
    }

    /// The box of one direction's MESSAGEs, whose nonces all start with
    /// `prefix` (`CurveZMQMESSAGEC` or `CurveZMQMESSAGES`).
    pub(super) fn messages(&self, prefix: &[u8; 16]) -> MessageBox {
        let subkey = salsa20::hsalsa::<U10>(
            GenericArray::from_slice(&self.key[..]),
            GenericArray::from_slice(prefix),
        );
        MessageBox::new(Zeroizing::new(subkey.into()))
    }

    fn cipher(&self, nonce: &GenericArray<u8, U24>) -> XSalsa20 {
        XSalsa20::new(GenericArray::from_slice(&self.key[..]), nonce)
    }
}

/// The box of one direction's MESSAGEs. XSalsa20 under a 24-byte nonce is
/// Salsa20 under HSalsa20(key, the nonce's first 16 bytes) with its last
/// 8; as every MESSAGE nonce of a direction starts with the same 16 bytes,
/// that HSalsa20 is done once per connection and direction, and each
/// message costs Salsa20 under the subkey with its 8-byte short nonce
/// (the same bytes as [`CurveBox`] with the whole nonce: tested).
///
/// Batched across boxes: a box that needs fewer than eight blocks of
/// keystream (a ZeroRPC message is an empty delimiter frame, one block,
/// then an event of a few hundred bytes, two to five) has them made in a
/// batch of four or eight whose spare lanes make the first blocks of the
/// next nonce's stream, kept for the next box. Nonces go up by one (our
/// sealer's always; a peer's as libzmq and we send them), so the next box
/// usually finds its start made: a message costs one batch rather than a
/// scalar block and a batch. A box under another nonce ignores what was
/// made ahead.
pub(super) struct MessageBox {
    subkey: Zeroizing<[u8; 32]>,
    /// Keystream: the last batch (a box's first blocks, then those made
    /// ahead), and room for more blocks after them.
    buf: Zeroizing<[u8; 3 * HEAD]>,
    ahead: Ahead,
    /// Blocks the last box that found its start made ahead needed: whether
    /// the next batch is four blocks or eight.
    follow: usize,
}

/// Keystream made ahead: the first `blocks` blocks of the stream under
/// `nonce`, from byte `at` of the box's `buf` (none while `blocks` is 0).
#[derive(Default)]
struct Ahead {
    nonce: [u8; 8],
    at: usize,
    blocks: usize,
}

impl MessageBox {
    fn new(subkey: Zeroizing<[u8; 32]>) -> Self {
        MessageBox {
            subkey,
            buf: Zeroizing::new([0; 3 * HEAD]),
            ahead: Ahead::default(),
            follow: 0,
        }
    }

    /// Encrypts `text` in place under the short nonce; returns its tag.
    pub(super) fn seal(&mut self, short: &[u8; 8], text: &mut [u8]) -> [u8; 16] {
        let (stream, key, head) = self.start(short, text.len());
        xor_after_key(&stream, &self.buf[head], text);
        poly1305(&key, text)
    }

    /// Checks `tag` and decrypts `text` in place under the short nonce
    /// (untouched when the tag does not match).
    pub(super) fn open(&mut self, short: &[u8; 8], text: &mut [u8], tag: &[u8]) -> bool {
        let (stream, key, head) = self.start(short, text.len());
        if !bool::from(poly1305(&key, text).ct_eq(tag)) {
            return false;
        }
        xor_after_key(&stream, &self.buf[head], text);
        true
    }

    /// A box of `text_len` bytes under the short nonce: its stream, its
    /// Poly1305 key (the stream's first 32 bytes, wiped in `buf`), and
    /// where in `buf` the stream's next blocks are (at least those the box
    /// uses, or four). What was made ahead for this nonce is used, and the
    /// next nonce's start is made ahead when a batch has spare lanes.
    fn start(
        &mut self,
        short: &[u8; 8],
        text_len: usize,
    ) -> (Stream, Zeroizing<[u8; 32]>, std::ops::Range<usize>) {
        let stream = Stream::new(&self.subkey, short);
        let need = (32 + text_len).div_ceil(64);
        let ahead = std::mem::take(&mut self.ahead);
        let (at, mut blocks) = if ahead.blocks > 0 && ahead.nonce == *short {
            self.follow = need;
            (ahead.at, ahead.blocks)
        } else {
            (0, 0)
        };
        if blocks == 0 {
            let batch: &mut [u8; 2 * HEAD] = self.buf.first_chunk_mut().expect("two batches");
            batch.fill(0);
            let next = u64::from_be_bytes(*short)
                .checked_add(1)
                .map(u64::to_be_bytes);
            let wide = need + self.follow > HEAD / 64;
            let made = next
                .and_then(|next| Some((next, stream.blocks_and_next(need, &next, wide, batch)?)));
            blocks = match made {
                Some((nonce, n)) => {
                    self.ahead = Ahead {
                        nonce,
                        at: 64 * need,
                        blocks: n,
                    };
                    need
                }
                None => stream.blocks(0, need.min(4), batch),
            };
        } else if blocks < need {
            let more = &mut self.buf[at + 64 * blocks..][..HEAD];
            more.fill(0);
            blocks += stream.blocks(blocks as u64, (need - blocks).min(4), more);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&self.buf[at..at + 32]);
        self.buf[at..at + 32].zeroize();
        (stream, key, at..at + 64 * blocks)
    }
}

/// XORs the keystream after the Poly1305 key into `text`: the rest of
/// `head` (the stream's first blocks), then the blocks after it.
fn xor_after_key(stream: &Stream, head: &[u8], text: &mut [u8]) {
    let (first, rest) = text.split_at_mut(text.len().min(head.len() - 32));
    for (t, k) in first.iter_mut().zip(&head[32..]) {
        *t ^= k;
    }
    if !rest.is_empty() {
        stream.apply((head.len() / 64) as u64, rest);
    }
}

/// XSalsa20-Poly1305 (or Salsa20-Poly1305 under a derived key) sealing:
/// the stream's first 32 bytes are the Poly1305 key, the rest encrypts.
fn seal(mut cipher: impl StreamCipher, text: &mut [u8]) -> [u8; 16] {
    let mut mac_key = Zeroizing::new([0u8; 32]);
    cipher.apply_keystream(&mut mac_key[..]);
    cipher.apply_keystream(text);
    poly1305(&mac_key, text)
}

/// The opening that [`seal`] undoes: the tag checked first (in constant
/// time), the text decrypted only if it matches.
fn open(mut cipher: impl StreamCipher, text: &mut [u8], tag: &[u8]) -> bool {
    let mut mac_key = Zeroizing::new([0u8; 32]);
    cipher.apply_keystream(&mut mac_key[..]);
    let expected = poly1305(&mac_key, text);
    if !bool::from(expected.ct_eq(tag)) {
        return false;
    }
    cipher.apply_keystream(text);
    true
}

impl AeadCore for CurveBox {
    type NonceSize = U24;
    type TagSize = U16;
    type CiphertextOverhead = U0;
}

impl AeadInPlace for CurveBox {
    fn encrypt_in_place_detached(
        &self,
        nonce: &GenericArray<u8, U24>,
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> crypto_box::aead::Result<GenericArray<u8, U16>> {
        if !associated_data.is_empty() {
            return Err(crypto_box::aead::Error);
        }
        Ok(seal(self.cipher(nonce), buffer).into())
    }

    fn decrypt_in_place_detached(
        &self,
        nonce: &GenericArray<u8, U24>,
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: &GenericArray<u8, U16>,
    ) -> crypto_box::aead::Result<()> {
        if !associated_data.is_empty() || !open(self.cipher(nonce), buffer, tag) {
            return Err(crypto_box::aead::Error);
        }
        Ok(())
    }

    // (the default `encrypt_in_place` and `decrypt_in_place` put the tag
    // after the text; the boxes here are always laid out by hand)
    fn encrypt_in_place(
        &self,
        nonce: &GenericArray<u8, U24>,
        associated_data: &[u8],
        buffer: &mut dyn Buffer,
    ) -> crypto_box::aead::Result<()> {
        let tag = self.encrypt_in_place_detached(nonce, associated_data, buffer.as_mut())?;
        buffer.extend_from_slice(tag.as_slice())
    }
}

/// The Poly1305 tag of `msg` under `key` (`r`, then `s`).
fn poly1305(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    if msg.len() < LONG {
        return poly1305_short(key, msg);
    }
    let mac = poly1305::Poly1305::new(poly1305::Key::from_slice(key));
    mac.compute_unpadded(msg).into()
}

const M44: u64 = (1 << 44) - 1;
const M42: u64 = (1 << 42) - 1;

fn le64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// Poly1305 in 64-bit arithmetic: the accumulator and `r` in three limbs
/// of 44, 44 and 42 bits, products in 128 bits. No branch and no memory
/// access depends on the key or the message (only on its length).
pub(super) fn poly1305_short(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    let (t0, t1) = (le64(&key[0..]), le64(&key[8..]));
    // r, clamped as the algorithm requires
    let r0 = t0 & 0xffc_0fff_ffff;
    let r1 = ((t0 >> 44) | (t1 << 20)) & 0xfff_ffc0_ffff;
    let r2 = (t1 >> 24) & 0x00f_ffff_fc0f;
    // 2^130 = 5 (mod p), and the limbs are 44 bits: a carry out of the top
    // limb comes back times 5 << 2
    let (s1, s2) = (r1 * (5 << 2), r2 * (5 << 2));
    let (mut h0, mut h1, mut h2) = (0u64, 0u64, 0u64);
    let mut block = |b: &[u8], hibit: u64| {
        let (t0, t1) = (le64(&b[0..]), le64(&b[8..]));
        h0 += t0 & M44;
        h1 += ((t0 >> 44) | (t1 << 20)) & M44;
        h2 += ((t1 >> 24) & M42) | hibit;
        let m = |a: u64, b: u64| u128::from(a) * u128::from(b);
        let d0 = m(h0, r0) + m(h1, s2) + m(h2, s1);
        let mut d1 = m(h0, r1) + m(h1, r0) + m(h2, s2);
        let mut d2 = m(h0, r2) + m(h1, r1) + m(h2, r0);
        let mut c = (d0 >> 44) as u64;
        h0 = d0 as u64 & M44;
        d1 += u128::from(c);
        c = (d1 >> 44) as u64;
        h1 = d1 as u64 & M44;
        d2 += u128::from(c);
        c = (d2 >> 42) as u64;
        h2 = d2 as u64 & M42;
        h0 += c * 5;
        c = h0 >> 44;
        h0 &= M44;
        h1 += c;
    };
    let mut chunks = msg.chunks_exact(16);
    for b in &mut chunks {
        block(b, 1 << 40);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 16];
        last[..rest.len()].copy_from_slice(rest);
        last[rest.len()] = 1;
        block(&last, 0);
    }
    // full carry (twice: the first pass's carry out of h2 may carry again)
    let mut c;
    for _ in 0..2 {
        c = h1 >> 44;
        h1 &= M44;
        h2 += c;
        c = h2 >> 42;
        h2 &= M42;
        h0 += c * 5;
        c = h0 >> 44;
        h0 &= M44;
        h1 += c;
    }
    // g = h - p (= h + 5 - 2^130); keep it when it did not go below zero
    let mut g0 = h0 + 5;
    c = g0 >> 44;
    g0 &= M44;
    let mut g1 = h1 + c;
    c = g1 >> 44;
    g1 &= M44;
    let g2 = (h2 + c).wrapping_sub(1 << 42);
    let keep_g = (g2 >> 63).wrapping_sub(1);
    h0 = (h0 & !keep_g) | (g0 & keep_g);
    h1 = (h1 & !keep_g) | (g1 & keep_g);
    h2 = (h2 & !keep_g) | (g2 & keep_g);
    // h + s, mod 2^128
    let (t0, t1) = (le64(&key[16..]), le64(&key[24..]));
    h0 += t0 & M44;
    c = h0 >> 44;
    h0 &= M44;
    h1 += (((t0 >> 44) | (t1 << 20)) & M44) + c;
    c = h1 >> 44;
    h1 &= M44;
    h2 += ((t1 >> 24) & M42) + c;
    h2 &= M42;
    let lo = h0 | (h1 << 44);
    let hi = (h1 >> 20) | (h2 << 24);
    let mut tag = [0u8; 16];
    tag[..8].copy_from_slice(&lo.to_le_bytes());
    tag[8..].copy_from_slice(&hi.to_le_bytes());
    tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_box::{PublicKey, SalsaBox, SecretKey};
    use rand::{Rng, RngCore, SeedableRng};

    fn crate_tag(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        poly1305::Poly1305::new(poly1305::Key::from_slice(key))
            .compute_unpadded(msg)
            .into()
    }

    #[test]
    fn rfc_8439_vector() {
        // RFC 8439, 2.5.2
        let key: [u8; 32] = [
            0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33, 0x7f, 0x44, 0x52, 0xfe, 0x42, 0xd5,
            0x06, 0xa8, 0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d, 0xb2, 0xfd, 0x4a, 0xbf, 0xf6, 0xaf,
            0x41, 0x49, 0xf5, 0x1b,
        ];
        let tag = [
            0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01,
            0x27, 0xa9,
        ];
        assert_eq!(
            poly1305_short(&key, b"Cryptographic Forum Research Group"),
            tag
        );
    }

    #[test]
    fn the_short_poly1305_agrees_with_the_crate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(26);
        let mut msg = vec![0u8; 600];
        for len in 0..600 {
            for _ in 0..8 {
                let mut key = [0u8; 32];
                rng.fill_bytes(&mut key);
                rng.fill_bytes(&mut msg[..len]);
                assert_eq!(
                    poly1305_short(&key, &msg[..len]),
                    crate_tag(&key, &msg[..len]),
                    "length {len}"
                );
            }
        }
        // The carries' edges: all-ones keys and messages, values near p.
        for len in [0, 1, 15, 16, 17, 32, 63, 64, 65, 255, 256, 1000] {
            for (k, m) in [(0xffu8, 0xffu8), (0, 0xff), (0xff, 0), (0, 0)] {
                let key = [k; 32];
                let msg = vec![m; len];
                assert_eq!(
                    poly1305_short(&key, &msg),
                    crate_tag(&key, &msg),
                    "key {k:#x}, message {m:#x} x {len}"
                );
            }
        }
        for _ in 0..2000 {
            let len = rng.random_range(0..5000);
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            let msg: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            assert_eq!(poly1305_short(&key, &msg), crate_tag(&key, &msg));
        }
    }

    #[test]
    fn a_message_box_seals_as_the_box_with_the_whole_nonce() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(28);
        for len in (0..200).chain([4095, 4096, 4097, 70_000]) {
            let (a, b): ([u8; 32], [u8; 32]) = (rng.random(), rng.random());
            let b_public = *SecretKey::from(b).public_key().as_bytes();
            let whole = CurveBox::new(&b_public, &a);
            let prefix: &[u8; 16] = if len % 2 == 0 {
                b"CurveZMQMESSAGEC"
            } else {
                b"CurveZMQMESSAGES"
            };
            let mut messages = whole.messages(prefix);
            let short: [u8; 8] = rng.random();
            let mut nonce = [0u8; 24];
            nonce[..16].copy_from_slice(prefix);
            nonce[16..].copy_from_slice(&short);
            let n = GenericArray::from_slice(&nonce);
            let plain: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let mut by_whole = plain.clone();
            let tag = whole
                .encrypt_in_place_detached(n, b"", &mut by_whole)
                .unwrap();
            let mut by_messages = plain.clone();
            assert_eq!(messages.seal(&short, &mut by_messages), tag.as_slice());
            assert_eq!(by_messages, by_whole, "length {len}");
            // and it opens what the whole box sealed, refusing a wrong nonce
            let mut other = short;
            other[7] ^= 1;
            assert!(!messages.open(&other, &mut by_messages.clone(), &tag));
            assert!(messages.open(&short, &mut by_messages, &tag));
            assert_eq!(by_messages, plain);
        }
    }

    #[test]
    fn boxes_in_a_row_seal_and_open_as_boxes_alone() {
        // One box seals a run of boxes (making each next one's start
        // ahead); each must be what a fresh box seals. Another opens them
        // in order, across gaps in the nonces and a box that fails to open.
        let mut rng = rand::rngs::StdRng::seed_from_u64(29);
        let whole = CurveBox::new(&rng.random(), &rng.random());
        let prefix = b"CurveZMQMESSAGEC";
        let (mut sealer, mut opener) = (whole.messages(prefix), whole.messages(prefix));
        let mut nonce: u64 = rng.random_range(0..1 << 40);
        for i in 0..3000 {
            let len = match i % 4 {
                0 => 0,
                1 => rng.random_range(0..300),
                2 => rng.random_range(0..1000),
                _ => [95, 96, 97, 159, 160, 161, 223, 224, 225][i / 4 % 9],
            };
            nonce += if rng.random_ratio(1, 20) { 2 } else { 1 };
            let short = nonce.to_be_bytes();
            let plain: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let mut alone = plain.clone();
            let tag = whole.messages(prefix).seal(&short, &mut alone);
            let mut sealed = plain.clone();
            assert_eq!(
                sealer.seal(&short, &mut sealed),
                tag,
                "box {i}, {len} bytes"
            );
            assert_eq!(sealed, alone, "box {i}, {len} bytes");
            if rng.random_ratio(1, 30) {
                let mut bad = tag;
                bad[0] ^= 1;
                assert!(!opener.open(&short, &mut sealed.clone(), &bad));
            }
            assert!(opener.open(&short, &mut sealed, &tag), "box {i}");
            assert_eq!(sealed, plain, "box {i}, {len} bytes");
        }
        // (the last nonce: nothing is made ahead of it)
        let short = u64::MAX.to_be_bytes();
        let mut text = [7u8; 10];
        let tag = sealer.seal(&short, &mut text);
        assert!(opener.open(&short, &mut text, &tag));
        assert_eq!(text, [7u8; 10]);
    }

    #[test]
    fn boxes_open_with_crypto_box_and_the_other_way() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(27);
        for len in (0..300).chain([4095, 4096, 4097, 70_000]) {
            let (a, b): ([u8; 32], [u8; 32]) = (rng.random(), rng.random());
            let b_public = *SecretKey::from(b).public_key().as_bytes();
            let a_public = *SecretKey::from(a).public_key().as_bytes();
            let ours = CurveBox::new(&b_public, &a);
            let theirs = SalsaBox::new(&PublicKey::from(a_public), &SecretKey::from(b));
            let nonce: [u8; 24] = rng.random();
            let n = GenericArray::from_slice(&nonce);
            let plain: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // ours seals, crypto_box opens
            let mut buf = plain.clone();
            let tag = ours.encrypt_in_place_detached(n, b"", &mut buf).unwrap();
            let mut theirs_buf = buf.clone();
            theirs
                .decrypt_in_place_detached(n, b"", &mut theirs_buf, &tag)
                .unwrap();
            assert_eq!(theirs_buf, plain, "length {len}");
            // crypto_box seals, ours opens
            let mut buf = plain.clone();
            let tag = theirs.encrypt_in_place_detached(n, b"", &mut buf).unwrap();
            let sealed = buf.clone();
            ours.decrypt_in_place_detached(n, b"", &mut buf, &tag)
                .unwrap();
            assert_eq!(buf, plain, "length {len}");
            // an altered box does not open, and is left as it was
            if len > 0 {
                let mut bad = sealed.clone();
                bad[rng.random_range(0..len)] ^= 1 << rng.random_range(0..8);
                let before = bad.clone();
                assert!(ours
                    .decrypt_in_place_detached(n, b"", &mut bad, &tag)
                    .is_err());
                assert_eq!(bad, before);
            }
            let mut bad_tag = tag;
            bad_tag[rng.random_range(0..16)] ^= 1;
            let mut buf = sealed.clone();
            assert!(ours
                .decrypt_in_place_detached(n, b"", &mut buf, &bad_tag)
                .is_err());
        }
    }
}
