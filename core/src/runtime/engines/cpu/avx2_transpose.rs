//! A matrix transposition for x86-64 processors with AVX2: blocks of 8 × 8 values moved
//! through registers (eight loads, 24 shuffles, eight stores), so that every store writes
//! eight neighbouring values instead of one value per cache line.

use std::arch::x86_64::{
    __m256, _mm256_loadu_ps, _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_storeu_ps,
    _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

/// Values of a block side.
const BLOCK: usize = 8;

/// Whether this processor runs [`transpose`] (AVX2; the check is cached by std).
#[inline]
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// `dst[c · dst_stride + r] = src[r · src_stride + c]` for `r < rows`, `c < columns`.
///
/// # Safety
/// The processor has AVX2 ([`available`]); the `rows × columns` block of `src` and the
/// `columns × rows` block of `dst` lie inside their allocations, and they do not overlap.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn transpose(
    rows: usize,
    columns: usize,
    src: *const f32,
    src_stride: usize,
    dst: *mut f32,
    dst_stride: usize,
) {
    let (full_rows, full_columns) = (rows - rows % BLOCK, columns - columns % BLOCK);
    for r0 in (0..full_rows).step_by(BLOCK) {
        for c0 in (0..full_columns).step_by(BLOCK) {
            // SAFETY: the block's rows and columns lie inside both matrices (the contract).
            unsafe {
                let mut block = [std::arch::x86_64::_mm256_setzero_ps(); BLOCK];
                for (i, v) in block.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(src.add((r0 + i) * src_stride + c0));
                }
                for (i, v) in transpose_block(block).iter().enumerate() {
                    _mm256_storeu_ps(dst.add((c0 + i) * dst_stride + r0), *v);
                }
            }
        }
    }
    // The edges: the last `columns mod 8` columns of the whole rows, and the last
    // `rows mod 8` rows.
    for r in 0..rows {
        let first = if r < full_rows { full_columns } else { 0 };
        for c in first..columns {
            // SAFETY: as above, one value.
            unsafe { *dst.add(c * dst_stride + r) = *src.add(r * src_stride + c) };
        }
    }
}

/// The transpose of the 8 × 8 block whose rows are `r`.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose_block(r: [__m256; BLOCK]) -> [__m256; BLOCK] {
    // Pairs of rows interleaved, then quadruples, then the 128-bit halves exchanged.
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    let u = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    [
        _mm256_permute2f128_ps::<0x20>(u[0], u[4]),
        _mm256_permute2f128_ps::<0x20>(u[1], u[5]),
        _mm256_permute2f128_ps::<0x20>(u[2], u[6]),
        _mm256_permute2f128_ps::<0x20>(u[3], u[7]),
        _mm256_permute2f128_ps::<0x31>(u[0], u[4]),
        _mm256_permute2f128_ps::<0x31>(u[1], u[5]),
        _mm256_permute2f128_ps::<0x31>(u[2], u[6]),
        _mm256_permute2f128_ps::<0x31>(u[3], u[7]),
    ]
}
