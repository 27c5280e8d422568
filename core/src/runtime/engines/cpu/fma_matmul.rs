//! A matrix product for the CPU engine's small shapes on x86-64 processors with AVX2 and FMA:
//! row-major operands read in place (no packing), six rows of the output at a time against
//! sixteen (or eight) columns, accumulated in registers with fused multiply-adds.
//!
//! The engine's products are small (a window of a few hundred rows against a width of 50 to
//! 200): gemm's packing and blocking cost more there than they save, and its column tiles fit
//! a width of 50 poorly. Columns past the last full vector are read and written through masks,
//! except a last one to four (`n mod 8`): a tile that narrow would spend most of its lanes on
//! nothing and leave too few independent sums to hide the multiply-adds' latency. Those
//! columns are copied out transposed, a few hundred rows of the right operand at a time, and
//! each output is a dot product along the inner dimension, eight lanes wide, twelve at once.

use super::math::{Start, Strided};
use std::arch::x86_64::{
    __m128, __m256, __m256i, _mm_add_ps, _mm_storeu_ps, _mm256_broadcast_ss,
    _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_hadd_ps,
    _mm256_loadu_ps, _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_setr_epi32, _mm256_setzero_ps,
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
    // The last one to four columns go through `remainder`; the rest through panels.
    let narrow = match n % LANES {
        r @ 1..=4 => r,
        _ => 0,
    };
    let wide = n - narrow;
    let mut row = 0;
    while wide > 0 && row < m {
        let rows = ROWS.min(m - row);
        // SAFETY: rows `row..row + rows` of `lhs` and `dst` lie inside them (the contract).
        let (lhs_rows, dst_rows) = unsafe { (lhs.from_row(row), dst.add(row * dst_stride)) };
        // SAFETY: as for this function, for `rows` rows and the first `wide` columns.
        unsafe {
            match rows {
                6 => panel::<6>(wide, k, dst_rows, dst_stride, start, lhs_rows, rhs),
                5 => panel::<5>(wide, k, dst_rows, dst_stride, start, lhs_rows, rhs),
                4 => panel::<4>(wide, k, dst_rows, dst_stride, start, lhs_rows, rhs),
                3 => panel::<3>(wide, k, dst_rows, dst_stride, start, lhs_rows, rhs),
                2 => panel::<2>(wide, k, dst_rows, dst_stride, start, lhs_rows, rhs),
                _ => panel::<1>(wide, k, dst_rows, dst_stride, start, lhs_rows, rhs),
            }
        }
        row += rows;
    }
    // SAFETY: as for this function, for columns `wide..n`.
    unsafe {
        match narrow {
            0 => {}
            1 => remainder::<1>(m, k, dst, dst_stride, start, lhs, rhs, wide),
            2 => remainder::<2>(m, k, dst, dst_stride, start, lhs, rhs, wide),
            3 => remainder::<3>(m, k, dst, dst_stride, start, lhs, rhs, wide),
            _ => remainder::<4>(m, k, dst, dst_stride, start, lhs, rhs, wide),
        }
    }
}

/// `R` rows of the output, across all `n` columns (`n mod 8` is 0 or 5 to 7): tiles of two
/// vectors, then one vector, the last one masked to the columns that remain.
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
            } else {
                tile::<R, 1>(k, dst.add(col), dst_stride, start, lhs, rhs, col, left);
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

/// Rows of the right operand copied per pass of [`remainder`].
const CHUNK: usize = 256;

/// Columns `col..col + C` (C ≤ 4) of every one of the `m` output rows, as dot products
/// along `k`: [`CHUNK`] rows of those columns at a time are copied out transposed (and
/// zero-padded to whole vectors), then [`dots`] runs `12 / C` output rows at a time.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn remainder<const C: usize>(
    m: usize,
    k: usize,
    dst: *mut f32,
    dst_stride: usize,
    start: Start<'_>,
    lhs: Strided<'_>,
    rhs: Strided<'_>,
    col: usize,
) {
    let group = 12 / C;
    let mut columns = [[0f32; CHUNK]; C];
    let mut k0 = 0;
    while k0 < k {
        let kc = CHUNK.min(k - k0);
        for (j, column) in columns.iter_mut().enumerate() {
            for (p, v) in column[..kc].iter_mut().enumerate() {
                // SAFETY: row `k0 + p < k` of `rhs`, column `col + j < n` (the contract).
                *v = unsafe { *rhs.values.as_ptr().add((k0 + p) * rhs.row_stride + col + j) };
            }
            column[kc..kc.next_multiple_of(LANES)].fill(0.0);
        }
        // The first pass adds to `start`, the later ones to what the earlier ones wrote.
        let start = if k0 == 0 { start } else { Start::Output };
        let mut row = 0;
        while row < m {
            let rows = group.min(m - row);
            // SAFETY: rows `row..row + rows` of `lhs` and `dst` (the contract), from column
            // `k0` of `lhs` and `col` of `dst`.
            unsafe {
                let (l, d) = (lhs.from_row(row), dst.add(row * dst_stride + col));
                let l = l.values.as_ptr().add(k0);
                let args = (kc, d, dst_stride, start, l, lhs.row_stride, &columns, col);
                match rows {
                    12 => dots::<12, C>(args),
                    11 => dots::<11, C>(args),
                    10 => dots::<10, C>(args),
                    9 => dots::<9, C>(args),
                    8 => dots::<8, C>(args),
                    7 => dots::<7, C>(args),
                    6 => dots::<6, C>(args),
                    5 => dots::<5, C>(args),
                    4 => dots::<4, C>(args),
                    3 => dots::<3, C>(args),
                    2 => dots::<2, C>(args),
                    _ => dots::<1, C>(args),
                }
            }
            row += rows;
        }
        k0 += kc;
    }
}

/// What [`dots`] reads and writes: `k` (one pass's length), the output's first row at
/// the remainder's first column and its stride, the start, the left operand's first row at
/// the pass's first column and its stride, the copied columns, and the first column's index
/// (for a bias).
type DotsArgs<'a, const C: usize> = (
    usize,
    *mut f32,
    usize,
    Start<'a>,
    *const f32,
    usize,
    &'a [[f32; CHUNK]; C],
    usize,
);

/// `R × C` outputs: each the dot product of a left row's `k` values with a copied column,
/// in `R · C` eight-lane sums, then added to the start.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dots<const R: usize, const C: usize>(args: DotsArgs<'_, C>) {
    let (k, dst, dst_stride, start, lhs, lhs_stride, columns, col) = args;
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let full = k / LANES;
    let mask = lane_mask(k % LANES);
    // SAFETY (every block below): `k` values of each of the `R` left rows lie inside the
    // operand (the caller's contract), the last vector read through `mask`; the copied
    // columns hold whole vectors.
    for v in 0..k.div_ceil(LANES) {
        let at = v * LANES;
        let mut b = [_mm256_setzero_ps(); C];
        for (bj, column) in b.iter_mut().zip(columns) {
            *bj = unsafe { _mm256_loadu_ps(column.as_ptr().add(at)) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let p = unsafe { lhs.add(r * lhs_stride + at) };
            let a = if v < full {
                unsafe { _mm256_loadu_ps(p) }
            } else {
                unsafe { _mm256_maskload_ps(p, mask) }
            };
            for (a_j, bj) in row.iter_mut().zip(&b) {
                *a_j = _mm256_fmadd_ps(a, *bj, *a_j);
            }
        }
    }
    // Four sums at a time across lanes, into `sums` in the accumulators' order.
    let mut sums = [0f32; 16];
    for (four, out) in acc.as_flattened().chunks(4).zip(sums.chunks_exact_mut(4)) {
        let at = |i: usize| four.get(i).copied().unwrap_or(_mm256_setzero_ps());
        let total = sum4(at(0), at(1), at(2), at(3));
        // SAFETY: `out` holds four values.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), total) };
    }
    for r in 0..R {
        for j in 0..C {
            // SAFETY: output row `r`, column `j` of the remainder (the caller's contract).
            let out = unsafe { &mut *dst.add(r * dst_stride + j) };
            let base = match start {
                Start::Zero => 0.0,
                Start::Output => *out,
                Start::Bias(bias) => bias[col + j],
            };
            *out = base + sums[r * C + j];
        }
    }
}

/// The sums of the eight lanes of each of `a`, `b`, `c`, `d`, in that order.
#[target_feature(enable = "avx2")]
#[inline]
fn sum4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
    let abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_add_ps(
        _mm256_castps256_ps128(abcd),
        _mm256_extractf128_ps::<1>(abcd),
    )
}
