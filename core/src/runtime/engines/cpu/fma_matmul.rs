//! A matrix product for the CPU engine's small shapes on x86-64 processors with AVX2 and FMA:
//! row-major operands read in place (no packing), six rows of the output at a time against
//! sixteen (or eight, or the last four) columns, accumulated in registers with fused
//! multiply-adds.
//!
//! The engine's products are small (a window of a few hundred rows against a width of 50 to
//! 200): gemm's packing and blocking cost more there than they save, and its column tiles fit
//! a width of 50 poorly. Columns past the last full vector are read and written through masks.

use super::math::{Start, Strided};
use std::arch::x86_64::{
    __m128i, __m256, __m256i, _mm_fmadd_ps, _mm_maskload_ps, _mm_maskstore_ps, _mm_set1_ps,
    _mm_setr_epi32, _mm_setzero_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps,
    _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_setr_epi32, _mm256_setzero_ps,
    _mm256_storeu_ps,
};

/// Rows of the output computed together.
const ROWS: usize = 6;
/// Lanes of a vector.
const LANES: usize = 8;

/// Whether this processor runs [`matmul`] (AVX2 and FMA; the check is cached by std).
#[inline]
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `dst[m, n] = start + lhs[m, k] · rhs[k, n]`, every operand row-major with its own row
/// stride.
///
/// # Safety
/// The processor has AVX2 and FMA ([`available`]); every element of the three `m × k`,
/// `k × n` and `m × n` matrices (and of an `n`-long bias) lies inside its allocation, and
/// `dst` aliases neither operand.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_stride: usize,
    start: Start<'_>,
    lhs: Strided<'_>,
    rhs: Strided<'_>,
) {
    let mut row = 0;
    while row < m {
        let rows = ROWS.min(m - row);
        // SAFETY: rows `row..row + rows` of `lhs` and `dst` lie inside them (the contract).
        let (lhs_rows, dst_rows) = unsafe { (lhs.from_row(row), dst.add(row * dst_stride)) };
        // SAFETY: as for this function, for `rows` rows.
        unsafe {
            match rows {
                6 => panel::<6>(n, k, dst_rows, dst_stride, start, lhs_rows, rhs),
                5 => panel::<5>(n, k, dst_rows, dst_stride, start, lhs_rows, rhs),
                4 => panel::<4>(n, k, dst_rows, dst_stride, start, lhs_rows, rhs),
                3 => panel::<3>(n, k, dst_rows, dst_stride, start, lhs_rows, rhs),
                2 => panel::<2>(n, k, dst_rows, dst_stride, start, lhs_rows, rhs),
                _ => panel::<1>(n, k, dst_rows, dst_stride, start, lhs_rows, rhs),
            }
        }
        row += rows;
    }
}

/// `R` rows of the output, across all `n` columns: tiles of two vectors, then one vector,
/// the last one masked to the columns that remain.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn panel<const R: usize>(
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_stride: usize,
    start: Start<'_>,
    lhs: Strided<'_>,
    rhs: Strided<'_>,
) {
    let mut col = 0;
    while col < n {
        let left = n - col;
        // SAFETY: columns `col..col + min(left, 16)` lie inside every row; lanes past them
        // are masked off (masked lanes are neither read nor written, nor do they fault).
        unsafe {
            if left >= 2 * LANES {
                tile::<R, 2>(k, dst.add(col), dst_stride, start, lhs, rhs, col, LANES);
                col += 2 * LANES;
            } else if left > LANES {
                tile::<R, 2>(
                    k,
                    dst.add(col),
                    dst_stride,
                    start,
                    lhs,
                    rhs,
                    col,
                    left - LANES,
                );
                col = n;
            } else if left > LANES / 2 {
                tile::<R, 1>(k, dst.add(col), dst_stride, start, lhs, rhs, col, left);
                col = n;
            } else {
                narrow_tile::<R>(k, dst.add(col), dst_stride, start, lhs, rhs, col, left);
                col = n;
            }
        }
    }
}

/// A mask of the first `lanes` lanes (1 to 8).
#[target_feature(enable = "avx2")]
#[inline]
fn lane_mask(lanes: usize) -> __m256i {
    let l = lanes as i32;
    let on = |i: i32| if i < l { -1 } else { 0 };
    _mm256_setr_epi32(on(0), on(1), on(2), on(3), on(4), on(5), on(6), on(7))
}

/// One `R × (V · 8)` tile at column `col`, its last vector holding `last` columns (8: full).
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const V: usize>(
    k: usize,
    dst: *mut f32,
    dst_stride: usize,
    start: Start<'_>,
    lhs: Strided<'_>,
    rhs: Strided<'_>,
    col: usize,
    last: usize,
) {
    let mask = lane_mask(last);
    let full = last == LANES;
    // SAFETY (every block below): the caller's contract; the last vector of a row goes
    // through `mask` unless it is full.
    let load = |p: *const f32, v: usize| unsafe {
        if v + 1 < V || full {
            _mm256_loadu_ps(p)
        } else {
            _mm256_maskload_ps(p, mask)
        }
    };
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    match start {
        Start::Zero => {}
        Start::Output => {
            for (r, row) in acc.iter_mut().enumerate() {
                for (v, a) in row.iter_mut().enumerate() {
                    *a = load(unsafe { dst.add(r * dst_stride + v * LANES) }, v);
                }
            }
        }
        Start::Bias(bias) => {
            let mut b = [_mm256_setzero_ps(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = load(unsafe { bias.as_ptr().add(col + v * LANES) }, v);
            }
            acc = [b; R];
        }
    }
    let b_col = unsafe { rhs.values.as_ptr().add(col) };
    for p in 0..k {
        let b_row = unsafe { b_col.add(p * rhs.row_stride) };
        let mut b: [__m256; V] = [_mm256_setzero_ps(); V];
        for (v, bv) in b.iter_mut().enumerate() {
            *bv = load(unsafe { b_row.add(v * LANES) }, v);
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let a =
                _mm256_broadcast_ss(unsafe { &*lhs.values.as_ptr().add(r * lhs.row_stride + p) });
            for (a_v, bv) in row.iter_mut().zip(&b) {
                *a_v = _mm256_fmadd_ps(a, *bv, *a_v);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, a) in row.iter().enumerate() {
            let out = unsafe { dst.add(r * dst_stride + v * LANES) };
            if v + 1 < V || full {
                unsafe { _mm256_storeu_ps(out, *a) };
            } else {
                unsafe { _mm256_maskstore_ps(out, mask, *a) };
            }
        }
    }
}

/// The last 1 to 4 columns of `R` rows, at column `col`, in 128-bit registers: a full-width
/// tile would spend at least half its lanes on nothing.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn narrow_tile<const R: usize>(
    k: usize,
    dst: *mut f32,
    dst_stride: usize,
    start: Start<'_>,
    lhs: Strided<'_>,
    rhs: Strided<'_>,
    col: usize,
    columns: usize,
) {
    let c = columns as i32;
    let on = |i: i32| if i < c { -1 } else { 0 };
    let mask: __m128i = _mm_setr_epi32(on(0), on(1), on(2), on(3));
    // SAFETY (every block below): the caller's contract; masked lanes are neither read nor
    // written.
    let load = |p: *const f32| unsafe { _mm_maskload_ps(p, mask) };
    let mut acc = [_mm_setzero_ps(); R];
    match start {
        Start::Zero => {}
        Start::Output => {
            for (r, a) in acc.iter_mut().enumerate() {
                *a = load(unsafe { dst.add(r * dst_stride) });
            }
        }
        Start::Bias(bias) => acc = [load(unsafe { bias.as_ptr().add(col) }); R],
    }
    let b_col = unsafe { rhs.values.as_ptr().add(col) };
    for p in 0..k {
        let b = load(unsafe { b_col.add(p * rhs.row_stride) });
        for (r, a) in acc.iter_mut().enumerate() {
            let x = _mm_set1_ps(unsafe { *lhs.values.as_ptr().add(r * lhs.row_stride + p) });
            *a = _mm_fmadd_ps(x, b, *a);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        unsafe { _mm_maskstore_ps(dst.add(r * dst_stride), mask, *a) };
    }
}
