//! The matrix product of [`fma_matmul`](super) 's design for WebAssembly's 128-bit SIMD:
//! row-major operands read in place (no packing), four rows of the output at a time against
//! eight (or four) columns, accumulated in registers (multiply, then add: the baseline SIMD
//! has no fused multiply-add).
//!
//! WebAssembly has no masked loads: the last `n mod 4` columns are computed from a copy of
//! the right operand's last columns padded to four, into a padded row that is then copied out.

use std::arch::wasm32::{f32x4_add, f32x4_mul, f32x4_splat, v128, v128_load, v128_store};

use super::math::{Start, Strided};

/// Rows of the output computed together. Four rows of two vectors keep the tile's eight
/// accumulators, two right-hand vectors and a broadcast in registers under V8, which has 15
/// vector registers on x86-64 (one is its scratch): six rows spilled, and ran 20–30% slower
/// (BENCHMARKS.md).
const ROWS: usize = 4;
/// Lanes of a vector.
const LANES: usize = 4;
/// Vectors of the output's columns computed together.
const VECTORS: usize = 2;

/// `dst[m, n] = start + lhs[m, k] · rhs[k, n]`, every operand row-major with its own row
/// stride.
///
/// # Safety
/// Every element of the three `m × k`, `k × n` and `m × n` matrices (and of an `n`-long bias)
/// lies inside its allocation, and `dst` aliases neither operand.
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
    let vectors = n / LANES * LANES;
    let tail = n - vectors;
    // The last columns, padded to a vector: `[k, 4]`, and their bias.
    let (padded, padded_bias) = if tail > 0 {
        let mut padded = vec![0f32; k * LANES];
        for (p, row) in padded.chunks_exact_mut(LANES).enumerate() {
            for (c, v) in row[..tail].iter_mut().enumerate() {
                // SAFETY: column `vectors + c` < n of row p < k of `rhs`.
                *v = unsafe { *rhs.values.as_ptr().add(p * rhs.row_stride + vectors + c) };
            }
        }
        let mut bias = [0f32; LANES];
        if let Start::Bias(b) = start {
            bias[..tail].copy_from_slice(&b[vectors..]);
        }
        (padded, bias)
    } else {
        (Vec::new(), [0f32; LANES])
    };
    let mut row = 0;
    while row < m {
        let rows = ROWS.min(m - row);
        // SAFETY: rows `row..row + rows` of `lhs` and `dst` lie inside them (the contract).
        let (lhs_rows, dst_rows) = unsafe { (lhs.from_row(row), dst.add(row * dst_stride)) };
        let panel = Panel {
            k,
            dst: dst_rows,
            dst_stride,
            start,
            lhs: lhs_rows,
            rhs,
            vectors,
            tail,
            padded: &padded,
            padded_bias: &padded_bias,
        };
        // SAFETY: as for this function, for `rows` rows.
        unsafe {
            match rows {
                4 => panel.run::<4>(),
                3 => panel.run::<3>(),
                2 => panel.run::<2>(),
                _ => panel.run::<1>(),
            }
        }
        row += rows;
    }
}

/// Up to [`ROWS`] rows of the output, across all its columns.
struct Panel<'a> {
    k: usize,
    dst: *mut f32,
    dst_stride: usize,
    start: Start<'a>,
    lhs: Strided<'a>,
    rhs: Strided<'a>,
    /// Columns in whole vectors.
    vectors: usize,
    /// Columns after them (0 to 3).
    tail: usize,
    /// The tail columns of `rhs`, padded: `[k, 4]`.
    padded: &'a [f32],
    /// The tail columns' bias, padded.
    padded_bias: &'a [f32; LANES],
}

impl Panel<'_> {
    /// The `R` rows: tiles of two vectors, one of one vector, then the padded tail.
    ///
    /// # Safety
    /// As [`matmul`], for `R` rows.
    unsafe fn run<const R: usize>(&self) {
        let mut col = 0;
        // SAFETY (the tiles): columns `col..col + 4·V` lie inside every row.
        while col + VECTORS * LANES <= self.vectors {
            unsafe { self.tile::<R, VECTORS>(col) };
            col += VECTORS * LANES;
        }
        while col < self.vectors {
            unsafe { self.tile::<R, 1>(col) };
            col += LANES;
        }
        if self.tail == 0 {
            return;
        }
        let mut out = [[0f32; LANES]; R];
        if let Start::Output = self.start {
            for (r, row) in out.iter_mut().enumerate() {
                for (c, v) in row[..self.tail].iter_mut().enumerate() {
                    // SAFETY: column `vectors + c` < n of row r < R.
                    *v = unsafe { *self.dst.add(r * self.dst_stride + self.vectors + c) };
                }
            }
        }
        let start = match self.start {
            Start::Bias(_) => Start::Bias(self.padded_bias),
            other => other,
        };
        let rhs = Strided::rows(self.padded, LANES);
        // SAFETY: `out` holds R rows of 4; `padded` is `[k, 4]`.
        unsafe {
            tile::<R, 1>(
                self.k,
                out.as_mut_ptr().cast(),
                LANES,
                start,
                self.lhs,
                rhs,
                0,
            )
        };
        for (r, row) in out.iter().enumerate() {
            for (c, v) in row[..self.tail].iter().enumerate() {
                // SAFETY: as above.
                unsafe { *self.dst.add(r * self.dst_stride + self.vectors + c) = *v };
            }
        }
    }

    /// [`tile`] at column `col` of this panel.
    ///
    /// # Safety
    /// As [`tile`].
    unsafe fn tile<const R: usize, const V: usize>(&self, col: usize) {
        // SAFETY: the caller's.
        unsafe {
            tile::<R, V>(
                self.k,
                self.dst.add(col),
                self.dst_stride,
                self.start,
                self.lhs,
                self.rhs,
                col,
            )
        };
    }
}

/// One `R × 4V` tile: `dst` points at its first element, `rhs` and a bias are read from
/// column `col`.
///
/// # Safety
/// Every element read or written lies inside its allocation.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const V: usize>(
    k: usize,
    dst: *mut f32,
    dst_stride: usize,
    start: Start<'_>,
    lhs: Strided<'_>,
    rhs: Strided<'_>,
    col: usize,
) {
    // SAFETY (every block below): the caller's contract.
    let load = |p: *const f32| unsafe { v128_load(p.cast::<v128>()) };
    let mut acc = [[f32x4_splat(0.0); V]; R];
    match start {
        Start::Zero => {}
        Start::Output => {
            for (r, row) in acc.iter_mut().enumerate() {
                for (v, a) in row.iter_mut().enumerate() {
                    *a = load(unsafe { dst.add(r * dst_stride + v * LANES) });
                }
            }
        }
        Start::Bias(bias) => {
            let mut b = [f32x4_splat(0.0); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = load(unsafe { bias.as_ptr().add(col + v * LANES) });
            }
            acc = [b; R];
        }
    }
    let b_col = unsafe { rhs.values.as_ptr().add(col) };
    for p in 0..k {
        let b_row = unsafe { b_col.add(p * rhs.row_stride) };
        let mut b = [f32x4_splat(0.0); V];
        for (v, bv) in b.iter_mut().enumerate() {
            *bv = load(unsafe { b_row.add(v * LANES) });
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let a = f32x4_splat(unsafe { *lhs.values.as_ptr().add(r * lhs.row_stride + p) });
            for (a_v, bv) in row.iter_mut().zip(&b) {
                *a_v = f32x4_add(*a_v, f32x4_mul(a, *bv));
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, a) in row.iter().enumerate() {
            unsafe { v128_store(dst.add(r * dst_stride + v * LANES).cast::<v128>(), *a) };
        }
    }
}
