//! Salsa20/20 keystreams several blocks at a time, for the MESSAGE boxes
//! (`nacl::MessageBox`): each message is encrypted and decrypted under the
//! connection's subkey and its 8-byte nonce, and that stream is nearly all
//! of what CURVE adds to a call.
//!
//! The `salsa20` crate computes one 64-byte block at a time in scalar code
//! (about 0.7 GB/s here). Salsa20's blocks are independent (they differ
//! only in their counter), so they are computed side by side: word `i` of
//! four (SSE2) or eight (AVX2) blocks in one vector register, the same
//! rounds applied to all lanes, then transposed back into bytes. Measured
//! on 64 KiB: SSE2 2.2×, AVX2 3.7× the crate's speed
//! (`bench-results/2026-12-06-curve-simd.md`). SSE2 is part of every
//! x86-64 CPU; AVX2 is chosen at run time when the CPU has it, and where
//! it has AVX-512F and VL the same rounds rotate with one instruction
//! instead of three (30–40% more keystream per second here,
//! `bench-results/2026-12-06-curve-batch.md`). Elsewhere a
//! portable version of the four-block code runs (what the compiler makes
//! of it). Each is tested against the `salsa20` crate below.
//!
//! The only `unsafe` of the crate is here: calling a function compiled for
//! a CPU feature (`#[target_feature]`) is `unsafe` in Rust, and it is sound
//! only when the CPU has the feature. SSE2's is checked at compile time
//! (`cfg(target_feature = "sse2")`, true for every x86-64 target), AVX2's
//! and AVX-512's at run time.
//!
//! (Over 600 lines with its tests: the versions share one set of rounds,
//! and their tests belong beside them.)

/// Salsa20's constant words ("expand 32-byte k").
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// The bytes of keystream the first batch makes: four blocks.
pub(super) const HEAD: usize = 256;

/// A Salsa20/20 key and nonce, as the words of the block's input.
pub(super) struct Stream {
    key: [u32; 8],
    nonce: [u32; 2],
}

impl Drop for Stream {
    fn drop(&mut self) {
        // (the subkey's words, as `Zeroizing` does for the bytes)
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl Stream {
    pub(super) fn new(key: &[u8; 32], nonce: &[u8; 8]) -> Stream {
        Stream {
            key: std::array::from_fn(|i| word(key, 4 * i)),
            nonce: nonce_words(nonce),
        }
    }

    /// The block input with a zero counter.
    fn input(&self) -> [u32; 16] {
        let (k, n) = (&self.key, &self.nonce);
        [
            SIGMA[0], k[0], k[1], k[2], k[3], SIGMA[1], n[0], n[1], 0, 0, SIGMA[2], k[4], k[5],
            k[6], k[7], SIGMA[3],
        ]
    }

    /// Words 6 to 9 of block `counter`'s input: the nonce and the counter.
    fn lane(&self, counter: u64) -> [u32; 4] {
        lane(self.nonce, counter)
    }

    /// [`Stream::lane`] of `L` blocks from `counter`.
    fn lanes<const L: usize>(&self, counter: u64) -> [[u32; 4]; L] {
        std::array::from_fn(|i| self.lane(counter.wrapping_add(i as u64)))
    }

    /// XORs `blocks` blocks (1 to 4) of keystream from block `counter` into
    /// `out` (given zeros, so that it holds the keystream after): one or two
    /// are made in scalar code, three or four as a four-block batch (which
    /// costs about as much as two scalar blocks; a box of a few bytes, like
    /// an empty frame's, needs one). Returns how many it made.
    pub(super) fn blocks(&self, counter: u64, blocks: usize, out: &mut [u8]) -> usize {
        debug_assert!((1..=4).contains(&blocks));
        let input = self.input();
        match blocks {
            1 => portable::blocks(&input, &self.lanes::<1>(counter), &mut out[..64]),
            2 => portable::blocks(&input, &self.lanes::<2>(counter), &mut out[..128]),
            _ => {
                let out: &mut [u8; HEAD] = (&mut out[..HEAD]).try_into().expect("HEAD bytes");
                four(&input, &self.lanes(counter), out);
                return 4;
            }
        }
        blocks
    }

    /// XORs, in one batch of four blocks or eight, this stream's first
    /// `blocks` blocks and then the first blocks of the stream under the
    /// same key and the nonce `next` into `out`: the batch's spare lanes
    /// make the start of the next box's stream. Eight when asked (`wide`) and the CPU has
    /// AVX2, or when `blocks` does not leave a four-block batch a spare
    /// lane; `None` when neither can be made (`blocks` from 8, or from 4
    /// without AVX2). Returns how many blocks of `next` it made.
    pub(super) fn blocks_and_next(
        &self,
        blocks: usize,
        next: &[u8; 8],
        wide: bool,
        out: &mut [u8; 2 * HEAD],
    ) -> Option<usize> {
        let next = nonce_words(next);
        let lanes: [[u32; 4]; 8] = std::array::from_fn(|i| {
            if i < blocks {
                self.lane(i as u64)
            } else {
                lane(next, (i - blocks) as u64)
            }
        });
        if (wide || blocks >= 4) && blocks < 8 && eight_wide() {
            eight(&self.input(), &lanes, out);
            return Some(8 - blocks);
        }
        if blocks >= 4 {
            return None;
        }
        let four_lanes: &[[u32; 4]; 4] = lanes.first_chunk().expect("eight lanes");
        let out: &mut [u8; HEAD] = out.first_chunk_mut().expect("HEAD bytes");
        four(&self.input(), four_lanes, out);
        Some(4 - blocks)
    }

    /// XORs the keystream from block `counter` on into `data`.
    pub(super) fn apply(&self, mut counter: u64, data: &mut [u8]) {
        let input = self.input();
        let mut rest = data;
        if rest.len() >= 2 * HEAD && eight_wide() {
            let (chunks, tail) = rest.as_chunks_mut::<{ 2 * HEAD }>();
            for c in chunks {
                eight(&input, &self.lanes(counter), c);
                counter = counter.wrapping_add(8);
            }
            rest = tail;
        }
        let (chunks, tail) = rest.as_chunks_mut::<HEAD>();
        for c in chunks {
            four(&input, &self.lanes(counter), c);
            counter = counter.wrapping_add(4);
        }
        if !tail.is_empty() {
            let mut buf = zeroize::Zeroizing::new([0u8; HEAD]);
            buf[..tail.len()].copy_from_slice(tail);
            four(&input, &self.lanes(counter), &mut buf);
            tail.copy_from_slice(&buf[..tail.len()]);
        }
    }
}

/// The little-endian word at byte `i` of `b`.
fn word(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// A nonce as the block input's words 6 and 7.
fn nonce_words(nonce: &[u8; 8]) -> [u32; 2] {
    [word(nonce, 0), word(nonce, 4)]
}

/// Words 6 to 9 of a block's input: its nonce's words and its counter.
fn lane(nonce: [u32; 2], counter: u64) -> [u32; 4] {
    [nonce[0], nonce[1], counter as u32, (counter >> 32) as u32]
}

/// Whether the CPU has AVX-512's rotation for 128- and 256-bit registers
/// (AVX-512F and VL), which the SIMD rounds then use (with AVX2, which
/// every such CPU has, checked all the same).
#[cfg(target_arch = "x86_64")]
fn has_rol() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx2")
}

/// Whether eight blocks are one batch (AVX2) rather than two.
fn eight_wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return true;
    }
    false
}

/// XORs four blocks into `data`: `input` with words 6 to 9 (nonce and
/// counter) of block `j` from `lanes[j]`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
fn four(input: &[u32; 16], lanes: &[[u32; 4]; 4], data: &mut [u8; HEAD]) {
    if has_rol() {
        // SAFETY: the CPU has AVX-512F and VL (checked just above).
        unsafe { x86::four_rol(input, lanes, data) }
    } else {
        // SAFETY: SSE2 is enabled for this target (the `cfg` above).
        unsafe { x86::four(input, lanes, data) }
    }
}

/// XORs four blocks into `data`: `input` with words 6 to 9 (nonce and
/// counter) of block `j` from `lanes[j]`.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn four(input: &[u32; 16], lanes: &[[u32; 4]; 4], data: &mut [u8; HEAD]) {
    portable::blocks(input, lanes, data);
}

/// XORs eight blocks into `data` as [`four`] does four: in one batch
/// where the CPU has AVX2 ([`eight_wide`]), else in two.
#[allow(unsafe_code)]
fn eight(input: &[u32; 16], lanes: &[[u32; 4]; 8], data: &mut [u8; 2 * HEAD]) {
    #[cfg(target_arch = "x86_64")]
    if has_rol() {
        // SAFETY: the CPU has AVX-512F, VL and AVX2 (checked just above).
        unsafe { x86::eight_rol(input, lanes, data) };
        return;
    } else if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { x86::eight(input, lanes, data) };
        return;
    }
    let (low, high) = data.split_at_mut(HEAD);
    let (first, then) = lanes.split_at(4);
    four(
        input,
        first.try_into().expect("four lanes"),
        low.try_into().expect("HEAD bytes"),
    );
    four(
        input,
        then.try_into().expect("four lanes"),
        high.try_into().expect("HEAD bytes"),
    );
}

/// The rounds on any number of blocks in plain Rust: one or two blocks
/// (the start of a short box), and four where there is no SIMD version.
// (a lane index runs across several rows of the state at once)
#[allow(clippy::needless_range_loop)]
mod portable {
    fn quarter<const L: usize>(x: &mut [[u32; L]; 16], a: usize, b: usize, c: usize, d: usize) {
        for i in 0..L {
            x[b][i] ^= x[a][i].wrapping_add(x[d][i]).rotate_left(7);
            x[c][i] ^= x[b][i].wrapping_add(x[a][i]).rotate_left(9);
            x[d][i] ^= x[c][i].wrapping_add(x[b][i]).rotate_left(13);
            x[a][i] ^= x[d][i].wrapping_add(x[c][i]).rotate_left(18);
        }
    }

    /// XORs `L` blocks into `data` (at least `64 * L` bytes: the callers
    /// pass constant lengths): `input` with words 6 to 9 (nonce and
    /// counter) of block `i` from `lanes[i]`.
    pub(super) fn blocks<const L: usize>(
        input: &[u32; 16],
        lanes: &[[u32; 4]; L],
        data: &mut [u8],
    ) {
        let mut start = [[0u32; L]; 16];
        for (w, v) in start.iter_mut().zip(input) {
            *w = [*v; L];
        }
        for (i, lane) in lanes.iter().enumerate() {
            for (w, v) in lane.iter().enumerate() {
                start[6 + w][i] = *v;
            }
        }
        let mut x = start;
        for _ in 0..10 {
            super::double_round!(quarter, &mut x);
        }
        for (w, (x, s)) in x.iter().zip(&start).enumerate() {
            for i in 0..L {
                let k = x[i].wrapping_add(s[i]).to_le_bytes();
                let at = 64 * i + 4 * w;
                for (d, k) in data[at..at + 4].iter_mut().zip(k) {
                    *d ^= k;
                }
            }
        }
    }
}

/// Salsa20's double round (a column round, then a row round) with the
/// given quarter-round function.
macro_rules! double_round {
    ($q:ident, $x:expr) => {{
        let x = $x;
        $q(x, 0, 4, 8, 12);
        $q(x, 5, 9, 13, 1);
        $q(x, 10, 14, 2, 6);
        $q(x, 15, 3, 7, 11);
        $q(x, 0, 1, 2, 3);
        $q(x, 5, 6, 7, 4);
        $q(x, 10, 11, 8, 9);
        $q(x, 15, 12, 13, 14);
    }};
}
use double_round;

/// The SSE2 (four blocks) and AVX2 (eight blocks) versions: word `i` of
/// every block in one register, one block per 32-bit lane.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// XORs the 16 bytes of `r` into `d[..16]`.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn xor16(d: &mut [u8], r: __m128i) {
        let lo = _mm_cvtsi128_si64(r) as u64;
        let hi = _mm_cvtsi128_si64(_mm_unpackhi_epi64(r, r)) as u64;
        let (a, b) = d[..16].split_at_mut(8);
        let word = |s: &[u8]| u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
        let (x, y) = (word(a) ^ lo, word(b) ^ hi);
        a.copy_from_slice(&x.to_le_bytes());
        b.copy_from_slice(&y.to_le_bytes());
    }

    /// A quarter round over registers of type `$v` (four lanes or eight),
    /// with that instruction set's operations; `$rot::<L, R>` rotates each
    /// lane left by `L` (= 32 - `R`).
    macro_rules! quarter {
        ($name:ident, $feature:literal, $v:ty, $add:ident, $xor:ident, $rot:ident) => {
            #[inline]
            #[target_feature(enable = $feature)]
            fn $name(x: &mut [$v; 16], a: usize, b: usize, c: usize, d: usize) {
                x[b] = $xor(x[b], $rot::<7, 25>($add(x[a], x[d])));
                x[c] = $xor(x[c], $rot::<9, 23>($add(x[b], x[a])));
                x[d] = $xor(x[d], $rot::<13, 19>($add(x[c], x[b])));
                x[a] = $xor(x[a], $rot::<18, 14>($add(x[d], x[c])));
            }
        };
    }

    // Rotations: two shifts and an or before AVX-512, one instruction with
    // it (AVX-512VL gives it to 128- and 256-bit registers).
    #[inline]
    #[target_feature(enable = "sse2")]
    fn shifts4<const L: i32, const R: i32>(t: __m128i) -> __m128i {
        _mm_or_si128(_mm_slli_epi32::<L>(t), _mm_srli_epi32::<R>(t))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn shifts8<const L: i32, const R: i32>(t: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_slli_epi32::<L>(t), _mm256_srli_epi32::<R>(t))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl")]
    fn rol4<const L: i32, const R: i32>(t: __m128i) -> __m128i {
        _mm_rol_epi32::<L>(t)
    }
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    fn rol8<const L: i32, const R: i32>(t: __m256i) -> __m256i {
        _mm256_rol_epi32::<L>(t)
    }

    quarter!(
        quarter4,
        "sse2",
        __m128i,
        _mm_add_epi32,
        _mm_xor_si128,
        shifts4
    );
    quarter!(
        quarter4_rol,
        "avx512f,avx512vl",
        __m128i,
        _mm_add_epi32,
        _mm_xor_si128,
        rol4
    );
    quarter!(
        quarter8,
        "avx2",
        __m256i,
        _mm256_add_epi32,
        _mm256_xor_si256,
        shifts8
    );
    quarter!(
        quarter8_rol,
        "avx2,avx512f,avx512vl",
        __m256i,
        _mm256_add_epi32,
        _mm256_xor_si256,
        rol8
    );

    /// `$name`: XORs four blocks into `data`, `input` with words 6 to 9
    /// (nonce and counter) of block `j` from `lanes[j]`, with `$quarter`.
    macro_rules! four {
        ($name:ident, $feature:literal, $quarter:ident) => {
            #[target_feature(enable = $feature)]
            pub(super) fn $name(input: &[u32; 16], lanes: &[[u32; 4]; 4], data: &mut [u8; 256]) {
                let mut start = [_mm_setzero_si128(); 16];
                for (s, w) in start.iter_mut().zip(input) {
                    *s = _mm_set1_epi32(*w as i32);
                }
                let l = |j: usize, w: usize| lanes[j][w] as i32;
                for w in 0..4 {
                    start[6 + w] = _mm_set_epi32(l(3, w), l(2, w), l(1, w), l(0, w));
                }
                let mut x = start;
                for _ in 0..10 {
                    super::double_round!($quarter, &mut x);
                }
                for (x, s) in x.iter_mut().zip(&start) {
                    *x = _mm_add_epi32(*x, *s);
                }
                for g in 0..4 {
                    transpose_xor(
                        [x[4 * g], x[4 * g + 1], x[4 * g + 2], x[4 * g + 3]],
                        g,
                        data,
                    );
                }
            }
        };
    }
    four!(four, "sse2", quarter4);
    four!(four_rol, "avx512f,avx512vl", quarter4_rol);

    /// XORs words `4g` to `4g + 3` of four blocks (block `j`'s in lane
    /// `j` of each register) into the blocks' 256 bytes of `data`:
    /// transposed, each block's 16 bytes at that group's place.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn transpose_xor([a, b, c, d]: [__m128i; 4], g: usize, data: &mut [u8]) {
        let (t0, t1) = (_mm_unpacklo_epi32(a, b), _mm_unpacklo_epi32(c, d));
        let (t2, t3) = (_mm_unpackhi_epi32(a, b), _mm_unpackhi_epi32(c, d));
        let rows = [
            _mm_unpacklo_epi64(t0, t1),
            _mm_unpackhi_epi64(t0, t1),
            _mm_unpacklo_epi64(t2, t3),
            _mm_unpackhi_epi64(t2, t3),
        ];
        for (block, r) in rows.into_iter().enumerate() {
            xor16(&mut data[64 * block + 16 * g..], r);
        }
    }

    /// `$name`: XORs eight blocks into `data`, `input` with words 6 to 9
    /// (nonce and counter) of block `j` from `lanes[j]`, with `$quarter`.
    macro_rules! eight {
        ($name:ident, $feature:literal, $quarter:ident) => {
            #[target_feature(enable = $feature)]
            pub(super) fn $name(input: &[u32; 16], lanes: &[[u32; 4]; 8], data: &mut [u8; 512]) {
                let mut start = [_mm256_setzero_si256(); 16];
                for (s, w) in start.iter_mut().zip(input) {
                    *s = _mm256_set1_epi32(*w as i32);
                }
                let l = |j: usize, w: usize| lanes[j][w] as i32;
                for w in 0..4 {
                    start[6 + w] = _mm256_set_epi32(
                        l(7, w),
                        l(6, w),
                        l(5, w),
                        l(4, w),
                        l(3, w),
                        l(2, w),
                        l(1, w),
                        l(0, w),
                    );
                }
                let mut x = start;
                for _ in 0..10 {
                    super::double_round!($quarter, &mut x);
                }
                for (x, s) in x.iter_mut().zip(&start) {
                    *x = _mm256_add_epi32(*x, *s);
                }
                // The low halves hold blocks 0 to 3, the high halves blocks 4 to 7.
                let (low, high) = data.split_at_mut(256);
                for g in 0..4 {
                    let w = [x[4 * g], x[4 * g + 1], x[4 * g + 2], x[4 * g + 3]];
                    let lows = [
                        _mm256_castsi256_si128(w[0]),
                        _mm256_castsi256_si128(w[1]),
                        _mm256_castsi256_si128(w[2]),
                        _mm256_castsi256_si128(w[3]),
                    ];
                    let highs = [
                        _mm256_extracti128_si256::<1>(w[0]),
                        _mm256_extracti128_si256::<1>(w[1]),
                        _mm256_extracti128_si256::<1>(w[2]),
                        _mm256_extracti128_si256::<1>(w[3]),
                    ];
                    transpose_xor(lows, g, low);
                    transpose_xor(highs, g, high);
                }
            }
        };
    }
    eight!(eight, "avx2", quarter8);
    eight!(eight_rol, "avx2,avx512f,avx512vl", quarter8_rol);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};
    use salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

    /// The `salsa20` crate's keystream from block `counter`, XORed into
    /// `data`.
    fn reference(key: &[u8; 32], nonce: &[u8; 8], counter: u64, data: &mut [u8]) {
        let mut c = salsa20::Salsa20::new(key.into(), nonce.into());
        c.seek(counter * 64);
        c.apply_keystream(data);
    }

    /// `Stream::apply` from block `counter` on `data` gives what the crate
    /// gives.
    fn assert_apply_agrees(key: &[u8; 32], nonce: &[u8; 8], counter: u64, mut data: Vec<u8>) {
        let mut want = data.clone();
        reference(key, nonce, counter, &mut want);
        Stream::new(key, nonce).apply(counter, &mut data);
        let len = data.len();
        assert_eq!(data, want, "{len} bytes from block {counter:#x}");
    }

    #[test]
    fn the_keystream_is_the_salsa20_crates() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(61);
        let lengths = (0..1100).chain([4095, 4096, 4097, 65_536, 70_001]);
        for len in lengths {
            let (key, nonce): ([u8; 32], [u8; 8]) = (rng.random(), rng.random());
            let counter = rng.random_range(0..3);
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            assert_apply_agrees(&key, &nonce, counter, data);
        }
    }

    #[test]
    fn blocks_from_any_counter_are_the_keystream_s() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(62);
        for blocks in 1..=4 {
            for counter in [0, 1, 3, rng.random_range(0..1 << 40)] {
                let (key, nonce): ([u8; 32], [u8; 8]) = (rng.random(), rng.random());
                let mut out = [0u8; 2 * HEAD];
                let made = Stream::new(&key, &nonce).blocks(counter, blocks, &mut out);
                assert!(made >= blocks && made <= 4, "{made} for {blocks}");
                let mut want = [0u8; 2 * HEAD];
                reference(&key, &nonce, counter, &mut want[..64 * made]);
                assert_eq!(out, want, "{blocks} blocks from {counter}");
            }
        }
    }

    #[test]
    fn a_batch_s_spare_lanes_start_the_next_stream() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(64);
        for wide in [false, true] {
            for blocks in 1..9 {
                let (key, nonce, next): ([u8; 32], [u8; 8], [u8; 8]) =
                    (rng.random(), rng.random(), rng.random());
                let mut out = [0u8; 2 * HEAD];
                let stream = Stream::new(&key, &nonce);
                let Some(ahead) = stream.blocks_and_next(blocks, &next, wide, &mut out) else {
                    assert!(
                        blocks >= 4,
                        "{blocks} blocks leave a four-block batch spare lanes"
                    );
                    continue;
                };
                let avx2 =
                    cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx2");
                let lanes = if (wide || blocks >= 4) && avx2 { 8 } else { 4 };
                assert_eq!(ahead, lanes - blocks, "{blocks} blocks, wide {wide}");
                let mut want = [0u8; 2 * HEAD];
                let (this, then) = want[..64 * lanes].split_at_mut(64 * blocks);
                reference(&key, &nonce, 0, this);
                reference(&key, &next, 0, then);
                assert_eq!(
                    out, want,
                    "{blocks} blocks, then the next stream's (wide {wide})"
                );
            }
        }
    }

    #[test]
    fn the_counter_carries_into_its_high_word() {
        // Blocks on both sides of 2^32 (the counter's two words), in every
        // batch size: a four-block batch, an eight-block one and the rest.
        let (key, nonce) = ([9u8; 32], [4u8; 8]);
        for start in [(1u64 << 32) - 3, (1u64 << 32) - 7, u32::MAX as u64] {
            for len in [256, 512, 1000] {
                assert_apply_agrees(&key, &nonce, start, vec![0x5a; len]);
            }
        }
    }

    /// Each SIMD version this CPU can run, called directly (the others
    /// are tested where they are what `four` and `eight` pick).
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[allow(unsafe_code)]
    fn every_simd_version_the_cpu_has_agrees() {
        let (avx2, rol) = (std::arch::is_x86_feature_detected!("avx2"), has_rol());
        let mut rng = rand::rngs::StdRng::seed_from_u64(65);
        for _ in 0..50 {
            let (key, nonce): ([u8; 32], [u8; 8]) = (rng.random(), rng.random());
            let counter = rng.random_range(0..1 << 40);
            let s = Stream::new(&key, &nonce);
            let mut data = [0u8; 2 * HEAD];
            rng.fill_bytes(&mut data);
            let mut want = data;
            reference(&key, &nonce, counter, &mut want);
            let (input, lanes) = (s.input(), s.lanes::<8>(counter));
            let four_lanes = lanes.first_chunk().unwrap();
            let mut d = data;
            // SAFETY: SSE2 is part of x86-64.
            unsafe { x86::four(&input, four_lanes, d.first_chunk_mut().unwrap()) };
            assert_eq!(d[..HEAD], want[..HEAD], "SSE2");
            if rol {
                let mut d = data;
                // SAFETY: the CPU has AVX-512F and VL (checked).
                unsafe { x86::four_rol(&input, four_lanes, d.first_chunk_mut().unwrap()) };
                assert_eq!(d[..HEAD], want[..HEAD], "AVX-512VL, four blocks");
            }
            if avx2 {
                let mut d = data;
                // SAFETY: the CPU has AVX2 (checked).
                unsafe { x86::eight(&input, &lanes, &mut d) };
                assert_eq!(d, want, "AVX2");
            }
            if rol {
                let mut d = data;
                // SAFETY: the CPU has AVX-512F, VL and AVX2 (checked).
                unsafe { x86::eight_rol(&input, &lanes, &mut d) };
                assert_eq!(d, want, "AVX-512VL, eight blocks");
            }
        }
        eprintln!("tested: SSE2, AVX2 {avx2}, AVX-512VL {rol}");
    }

    #[test]
    fn the_portable_blocks_agree() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(63);
        for _ in 0..20 {
            let (key, nonce): ([u8; 32], [u8; 8]) = (rng.random(), rng.random());
            let counter = rng.random_range(0..1 << 40);
            let s = Stream::new(&key, &nonce);
            let mut data = [0u8; 512];
            rng.fill_bytes(&mut data);
            let mut want = data;
            reference(&key, &nonce, counter, &mut want);
            portable::blocks(&s.input(), &s.lanes::<8>(counter), &mut data);
            assert_eq!(data, want);
        }
    }
}
