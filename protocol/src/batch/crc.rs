//! CRC-32C (Castagnoli) of record batches, as fast as the CPU allows: every
//! consumed batch is checked, so this is on the hot path of every read.
//!
//! The `crc32c` crate computes it with the CPU's CRC instruction (SSE 4.2 on
//! x86_64, the CRC extension on aarch64, a table elsewhere). That
//! instruction handles at most 8 bytes a cycle. On x86_64 CPUs with
//! AVX-512 and VPCLMULQDQ (built with Rust 1.89 or later, see `build.rs`),
//! batches of at least `FOLD_MIN_BYTES` are folded with carry-less
//! multiplication instead, 64 bytes an instruction, about twice as fast:
//!
//! The message is a polynomial over GF(2), and only its value mod P (the
//! Castagnoli polynomial) matters. The bytes before the first 64-byte
//! boundary go through the CRC instruction (so no wide load straddles two
//! cache lines). Four 512-bit accumulators (sixteen 128-bit lanes) take the
//! next 256 bytes, the CRC register so far XORed into the first 32 bits; each further 256 bytes are added after
//! moving every lane forward by 2048 bits: a lane `X = Lo * x^64 + Hi`
//! becomes `Lo * (x^2112 mod P) + Hi * (x^2048 mod P)`, two carry-less
//! multiplications by 32-bit constants whose products fit in 128 bits. The
//! lanes are then folded into one, and whole 16-byte blocks after them
//! likewise; that last 128-bit value, taken as a message, has the same CRC
//! as everything before it, so the CRC instruction finishes it and the
//! last bytes.
//!
//! Lanes hold bits in the reflected order CRC-32C uses: bit `i` of a lane
//! is the coefficient of `x^(127 - i)`. A carry-less product of two such
//! 64-bit values is the polynomial product times x, so a shift by `x^n`
//! uses `x^(n - 1) mod P` (see `fold_constants`). The constants are computed
//! at compile time from P, not written out.

/// Below this, the CRC instruction alone is about as fast. (At least one
/// 256-byte stride must remain past the first 64-byte boundary.)
#[cfg_attr(not(all(target_arch = "x86_64", ferry_avx512_crc)), allow(dead_code))]
const FOLD_MIN_BYTES: usize = 1024;

/// The CRC-32C of `bytes` (initial value and final XOR all ones).
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(all(target_arch = "x86_64", ferry_avx512_crc))]
    {
        if bytes.len() >= FOLD_MIN_BYTES && fold::supported() {
            // SAFETY: the CPU has every feature the function is built for.
            return unsafe { fold::crc32c(bytes) };
        }
    }
    crc32c::crc32c(bytes)
}

/// The Castagnoli polynomial without its x^32 term.
#[cfg_attr(not(all(target_arch = "x86_64", ferry_avx512_crc)), allow(dead_code))]
const POLYNOMIAL: u64 = 0x1EDC_6F41;

/// `x^n mod P`, the coefficient of x^d at bit d.
#[cfg_attr(not(all(target_arch = "x86_64", ferry_avx512_crc)), allow(dead_code))]
const fn x_pow_mod(n: u32) -> u32 {
    let mut remainder: u64 = 1;
    let mut step = 0;
    while step < n {
        remainder <<= 1;
        if remainder & (1 << 32) != 0 {
            remainder ^= (1 << 32) | POLYNOMIAL;
        }
        step += 1;
    }
    remainder as u32
}

/// A polynomial of degree below 32 as a reflected 64-bit lane half: the
/// coefficient of x^d at bit 63 - d.
#[cfg_attr(not(all(target_arch = "x86_64", ferry_avx512_crc)), allow(dead_code))]
const fn reflected(polynomial: u32) -> u64 {
    (polynomial.reverse_bits() as u64) << 32
}

/// The constants that move a lane forward by `bits`: for its first half
/// (`Lo`, worth `x^(bits + 64)`) and its second (`Hi`, worth `x^bits`),
/// each one power lower for the x that every product carries.
#[cfg_attr(not(all(target_arch = "x86_64", ferry_avx512_crc)), allow(dead_code))]
const fn fold_constants(bits: u32) -> (u64, u64) {
    (
        reflected(x_pow_mod(bits + 64 - 1)),
        reflected(x_pow_mod(bits - 1)),
    )
}

#[cfg(all(target_arch = "x86_64", ferry_avx512_crc))]
mod fold {
    use std::arch::x86_64::*;

    use super::fold_constants;

    const LANE_BYTES: usize = 16;
    const WIDE_BYTES: usize = 64;
    const ACCUMULATORS: usize = 4;
    const STRIDE: usize = ACCUMULATORS * WIDE_BYTES;
    const BY_STRIDE: (u64, u64) = fold_constants((STRIDE * 8) as u32);
    const BY_WIDE: (u64, u64) = fold_constants((WIDE_BYTES * 8) as u32);
    /// Moving lanes 0, 1 and 2 of a 512-bit value onto lane 3.
    const BY_LANES: [(u64, u64); 3] = [
        fold_constants(3 * 128),
        fold_constants(2 * 128),
        fold_constants(128),
    ];

    pub(super) fn supported() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("vpclmulqdq")
            && is_x86_feature_detected!("pclmulqdq")
            && is_x86_feature_detected!("sse4.2")
    }

    /// # Safety
    /// The CPU must have the features `supported` checks; `bytes` must hold
    /// at least one stride past its first 64-byte boundary.
    #[target_feature(enable = "avx512f,vpclmulqdq,pclmulqdq,sse4.2")]
    pub(super) unsafe fn crc32c(bytes: &[u8]) -> u32 {
        // Up to the first 64-byte boundary with the CRC instruction, so that
        // no wide load straddles two cache lines.
        let head = bytes.as_ptr().align_offset(WIDE_BYTES).min(bytes.len());
        let (head, bytes) = bytes.split_at(head);
        let register = update(!0, head);
        debug_assert!(bytes.len() >= STRIDE);
        let mut strides = bytes.chunks_exact(STRIDE);
        let mut wide = [_mm512_setzero_si512(); ACCUMULATORS];
        let first = strides.next().unwrap_or_default();
        for (accumulator, block) in wide.iter_mut().zip(first.chunks_exact(WIDE_BYTES)) {
            *accumulator = load_wide(block);
        }
        // The register so far, XORed into the first 32 bits.
        let register = _mm512_castsi128_si512(_mm_cvtsi32_si128(register as i32));
        wide[0] = _mm512_xor_si512(wide[0], register);
        let by_stride = wide_constants(BY_STRIDE);
        for stride in &mut strides {
            for (accumulator, block) in wide.iter_mut().zip(stride.chunks_exact(WIDE_BYTES)) {
                *accumulator = shift_wide_add(*accumulator, by_stride, load_wide(block));
            }
        }
        let by_wide = wide_constants(BY_WIDE);
        let mut folded = wide[0];
        for accumulator in &wide[1..] {
            folded = shift_wide_add(folded, by_wide, *accumulator);
        }
        let mut blocks = strides.remainder().chunks_exact(WIDE_BYTES);
        for block in &mut blocks {
            folded = shift_wide_add(folded, by_wide, load_wide(block));
        }
        let mut lane = _mm512_extracti32x4_epi32(folded, 3);
        let parts = [
            _mm512_extracti32x4_epi32(folded, 0),
            _mm512_extracti32x4_epi32(folded, 1),
            _mm512_extracti32x4_epi32(folded, 2),
        ];
        for (part, by) in parts.into_iter().zip(BY_LANES) {
            lane = _mm_xor_si128(lane, shift(part, constants(by)));
        }
        finish(lane, blocks.remainder())
    }

    /// Folds the last whole 16-byte blocks into `lane`, then runs the CRC
    /// instruction over it and the bytes left.
    #[target_feature(enable = "pclmulqdq,sse4.2")]
    unsafe fn finish(mut lane: __m128i, rest: &[u8]) -> u32 {
        let by_lane = constants(fold_constants(128));
        let mut blocks = rest.chunks_exact(LANE_BYTES);
        for block in &mut blocks {
            lane = _mm_xor_si128(shift(lane, by_lane), _mm_loadu_si128(block.as_ptr().cast()));
        }
        let mut halves = [0u64; 2];
        _mm_storeu_si128(halves.as_mut_ptr().cast(), lane);
        let register = _mm_crc32_u64(_mm_crc32_u64(0, halves[0]), halves[1]) as u32;
        !update(register, blocks.remainder())
    }

    /// The CRC register after `bytes` (no final XOR), with the CRC
    /// instruction, 8 bytes at a time.
    #[target_feature(enable = "sse4.2")]
    unsafe fn update(mut register: u32, bytes: &[u8]) -> u32 {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(word);
            register = _mm_crc32_u64(u64::from(register), u64::from_le_bytes(raw)) as u32;
        }
        for &byte in words.remainder() {
            register = _mm_crc32_u8(register, byte);
        }
        register
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn wide_constants((lo, hi): (u64, u64)) -> __m512i {
        let (lo, hi) = (lo as i64, hi as i64);
        _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_wide(block: &[u8]) -> __m512i {
        debug_assert_eq!(block.len(), WIDE_BYTES);
        _mm512_loadu_si512(block.as_ptr().cast())
    }

    /// Each lane of `wide` moved forward by the shift `constants` stand
    /// for, plus `next`.
    #[inline]
    #[target_feature(enable = "avx512f,vpclmulqdq")]
    unsafe fn shift_wide_add(wide: __m512i, constants: __m512i, next: __m512i) -> __m512i {
        let lo = _mm512_clmulepi64_epi128(wide, constants, 0x00);
        let hi = _mm512_clmulepi64_epi128(wide, constants, 0x11);
        // 0x96: the truth table of a ^ b ^ c.
        _mm512_ternarylogic_epi64(lo, hi, next, 0x96)
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn constants((lo, hi): (u64, u64)) -> __m128i {
        _mm_set_epi64x(hi as i64, lo as i64)
    }

    /// `lane` moved forward by the shift `constants` stand for.
    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    unsafe fn shift(lane: __m128i, constants: __m128i) -> __m128i {
        _mm_xor_si128(
            _mm_clmulepi64_si128(lane, constants, 0x00),
            _mm_clmulepi64_si128(lane, constants, 0x11),
        )
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn matches_the_crate_at_every_length_and_alignment(
            bytes in proptest::collection::vec(any::<u8>(), 0..5000),
            skip in 0usize..64,
        ) {
            let bytes = &bytes[skip.min(bytes.len())..];
            prop_assert_eq!(super::crc32c(bytes), crc32c::crc32c(bytes));
        }
    }

    #[test]
    fn matches_around_every_boundary() {
        let bytes: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let lengths = (FOLD_MIN_BYTES - 20..FOLD_MIN_BYTES + 600).chain([4096, 65_535, 70_000]);
        for len in lengths {
            assert_eq!(
                super::crc32c(&bytes[..len]),
                crc32c::crc32c(&bytes[..len]),
                "{len}"
            );
        }
    }

    /// The folded path itself, whatever `crc32c` would choose.
    #[cfg(all(target_arch = "x86_64", ferry_avx512_crc))]
    #[test]
    fn the_folded_path_matches_where_the_cpu_has_it() {
        if !fold::supported() {
            return;
        }
        let bytes: Vec<u8> = (0..9000u32).map(|i| (i * 7 + i / 255) as u8).collect();
        for start in 0..64 {
            for len in (320..1400).step_by(7).chain([8000]) {
                let slice = &bytes[start..start + len];
                // SAFETY: `supported` said yes; 320 bytes hold a stride past
                // the first 64-byte boundary.
                let folded = unsafe { fold::crc32c(slice) };
                assert_eq!(folded, crc32c::crc32c(slice), "{start} {len}");
            }
        }
    }

    #[test]
    fn powers_of_x_reduce_by_the_polynomial() {
        assert_eq!(x_pow_mod(0), 1);
        assert_eq!(x_pow_mod(31), 1 << 31);
        assert_eq!(x_pow_mod(32), POLYNOMIAL as u32);
    }
}
