//! Lower-case hex, both ways, a word at a time where it can: trace and
//! span ids (every event of a traced channel carries a `traceparent`),
//! message ids (every event has a fresh one), log fields.

use std::fmt;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes shown as lower-case hex when formatted (a log field without
/// building a string first).
pub(crate) struct HexId<'a>(pub(crate) &'a [u8]);

impl fmt::Display for HexId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        f.write_str(hex_chunk(&mut buf, self.0))
    }
}

/// Up to 32 bytes of `b` (the rest ignored) in hex, written into `buf`.
fn hex_chunk<'a>(buf: &'a mut [u8; 64], b: &[u8]) -> &'a str {
    let n = b.len().min(32);
    encode_into(&mut buf[..2 * n], &b[..n]);
    // (only hex digits were written)
    std::str::from_utf8(&buf[..2 * n]).unwrap_or_default()
}

/// Lower-case hex.
pub(crate) fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    let mut buf = [0u8; 64];
    for chunk in b.chunks(32) {
        s.push_str(hex_chunk(&mut buf, chunk));
    }
    s
}

/// Hex digit values (lower case only, as W3C requires); 0xff: not one.
const NIBBLE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Lower-case hex text into bytes, sixteen digits at a time (SSE2, which
/// every x86-64 has), then eight (one word); `None` if a byte is not a
/// lower-case hex digit. `text` is twice as long as `out`, and a whole
/// number of words.
#[inline(always)]
fn unhex_words(out: &mut [u8], text: &[u8]) -> Option<()> {
    #[cfg(target_arch = "x86_64")]
    let (out, text) = {
        let n = out.len() / 8 * 8;
        for (o, digits) in out[..n].chunks_exact_mut(8).zip(text.chunks_exact(16)) {
            o.copy_from_slice(&unhex16(digits.try_into().ok()?)?);
        }
        (&mut out[n..], &text[2 * n..])
    };
    const L: u64 = 0x0101_0101_0101_0101;
    const H: u64 = 0x8080_8080_8080_8080;
    // Each byte's high bit: set where the byte (below 0x80) is at least
    // `n` (no byte carries into the next).
    let at_least = |x: u64, n: u8| x.wrapping_add(u64::from(0x80 - n) * L) & H;
    for (o, word) in out.chunks_exact_mut(4).zip(text.chunks_exact(8)) {
        let x = u64::from_le_bytes(word.try_into().ok()?);
        let digit = at_least(x, b'0') & !at_least(x, b'9' + 1);
        let letter = at_least(x, b'a') & !at_least(x, b'f' + 1);
        if x & H != 0 || (digit | letter) != H {
            return None;
        }
        // '0'..='9' → 0..=9; 'a'..='f' → 1..=6, plus 9 (bit 6 is set)
        let v = (x & (0x0f * L)) + ((x >> 6) & L) * 9;
        // each 16-bit lane's low byte: its first digit × 16 + its second
        let pairs = ((v & 0x00ff_00ff_00ff_00ff) << 4) | ((v >> 8) & 0x00ff_00ff_00ff_00ff);
        let t = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
        let t = (t | (t >> 16)) & 0xffff_ffff;
        o.copy_from_slice(&(t as u32).to_le_bytes());
    }
    Some(())
}

/// Sixteen lower-case hex digits into eight bytes, in SSE2 registers:
/// each byte checked against both digit ranges, its value taken, then each
/// pair of values joined into one byte.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn unhex16(digits: &[u8; 16]) -> Option<[u8; 8]> {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of every x86-64 target; the load and the store
    // are unaligned ones, within `digits` (16 bytes) and `out` (8).
    unsafe {
        let v = _mm_loadu_si128(digits.as_ptr().cast());
        // (signed compares: a byte of 0x80 or above is below every bound)
        let within = |lo: u8, hi: u8| {
            _mm_and_si128(
                _mm_cmpgt_epi8(v, _mm_set1_epi8(lo as i8 - 1)),
                _mm_cmplt_epi8(v, _mm_set1_epi8(hi as i8 + 1)),
            )
        };
        let digit = within(b'0', b'9');
        let letter = within(b'a', b'f');
        if _mm_movemask_epi8(_mm_or_si128(digit, letter)) != 0xffff {
            return None;
        }
        // '0'..='9' less '0', 'a'..='f' less 'a' - 10
        let value = _mm_sub_epi8(
            v,
            _mm_or_si128(
                _mm_and_si128(digit, _mm_set1_epi8(b'0' as i8)),
                _mm_and_si128(letter, _mm_set1_epi8((b'a' - 10) as i8)),
            ),
        );
        // each 16-bit lane holds a pair (first digit in its low byte): its
        // low byte becomes first × 16 + second
        let joined = _mm_and_si128(
            _mm_or_si128(_mm_slli_epi16(value, 4), _mm_srli_epi16(value, 8)),
            _mm_set1_epi16(0x00ff),
        );
        let mut out = [0u8; 8];
        _mm_storel_epi64(out.as_mut_ptr().cast(), _mm_packus_epi16(joined, joined));
        Some(out)
    }
}

pub(crate) fn nibble(c: u8) -> Option<u8> {
    match NIBBLE[usize::from(c)] {
        0xff => None,
        n => Some(n),
    }
}

/// Lower-case hex text into `N` bytes: sixteen or eight digits at a time
/// where it can ([`unhex_words`]; every event of a traced channel carries
/// a traceparent), then digit by digit; `None` unless it is exactly
/// `2 * N` lower-case hex digits.
pub(crate) fn unhex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    let in_words = N / 4 * 4;
    unhex_words(&mut out[..in_words], &text[..2 * in_words])?;
    for (o, pair) in out[in_words..]
        .iter_mut()
        .zip(text[2 * in_words..].chunks_exact(2))
    {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Four bytes as their eight hex digits, computed in one word: each
/// nibble spread into a byte of its own, then `'0'` added, and
/// `'a' - '0' - 10` more where the nibble is 10 or above.
#[inline(always)]
fn encode_word(x: u32) -> [u8; 8] {
    const L: u64 = 0x0101_0101_0101_0101;
    let x = u64::from(x);
    // (the first byte ends in the top 16 bits, then each byte's high
    // nibble in the higher byte of its 16 bits)
    let x = ((x & 0xffff_0000) << 16) | (x & 0xffff);
    let x = ((x & 0x0000_ff00_0000_ff00) << 8) | (x & 0x0000_00ff_0000_00ff);
    let n = ((x & 0x00f0_00f0_00f0_00f0) << 4) | (x & 0x000f_000f_000f_000f);
    // (a byte's bit 4 is set where its nibble + 6 carries past 15)
    let letter = ((n + 6 * L) >> 4) & L;
    (n + b'0' as u64 * L + letter * u64::from(b'a' - b'0' - 10)).to_be_bytes()
}

/// `b` in hex into `out` (twice its length): four bytes to a word, the
/// rest digit by digit. (Always inlined: the callers' lengths are
/// constants, so the loops unroll.)
#[inline(always)]
pub(crate) fn encode_into(out: &mut [u8], b: &[u8]) {
    debug_assert_eq!(out.len(), 2 * b.len());
    let words = b.len() / 4 * 4;
    for (o, w) in out.chunks_exact_mut(8).zip(b[..words].chunks_exact(4)) {
        o.copy_from_slice(&encode_word(u32::from_be_bytes([w[0], w[1], w[2], w[3]])));
    }
    for (o, x) in out[2 * words..].chunks_exact_mut(2).zip(&b[words..]) {
        o[0] = HEX[usize::from(x >> 4)];
        o[1] = HEX[usize::from(x & 15)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digit by digit, for comparison.
    fn slow(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn every_byte_value_in_every_position_encodes_as_digit_by_digit() {
        for len in 0..=13 {
            for v in 0..=255u8 {
                let b: Vec<u8> = (0..len)
                    .map(|i| v.wrapping_add((i as u8).wrapping_mul(37)))
                    .collect();
                let mut out = vec![0u8; 2 * len];
                encode_into(&mut out, &b);
                assert_eq!(std::str::from_utf8(&out).unwrap(), slow(&b), "{b:?}");
                assert_eq!(hex(&b), slow(&b));
                if let Some(back) = unhex_vec(&out) {
                    assert_eq!(back, Some(b));
                }
            }
        }
    }

    /// `unhex` at the sizes the crate reads (trace ids, span ids,
    /// flags); `None` for other sizes.
    fn unhex_vec(text: &[u8]) -> Option<Option<Vec<u8>>> {
        match text.len() {
            32 => Some(unhex::<16>(text).map(|a| a.to_vec())),
            16 => Some(unhex::<8>(text).map(|a| a.to_vec())),
            2 => Some(unhex::<1>(text).map(|a| a.to_vec())),
            _ => None,
        }
    }

    #[test]
    fn a_long_id_is_shown_in_chunks() {
        let b: Vec<u8> = (0..70u8).collect();
        assert_eq!(hex(&b), slow(&b));
        assert_eq!(format!("{}", HexId(&b[..5])), slow(&b[..5]));
    }
}
