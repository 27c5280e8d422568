//! The CPU engine's arithmetic over plain slices: one-thread matrix products (gemm), and
//! vectorisable sums, maxima, `exp`, `erf` and GELU.
//!
//! These loops are written for the compiler to vectorise. A plain x86-64 build may only use
//! 128-bit SSE2; [`run_vectorised`] runs work compiled a second time for AVX2 (256-bit) and
//! FMA when the processor has them, so that every helper here marked `#[inline(always)]` is
//! vectorised twice as wide inside it. Helpers with a `FUSED` parameter evaluate their
//! polynomials with fused multiply-adds when it is `true` (only inside that second copy: a
//! fused multiply-add without FMA is a library call per element). For the same reason they
//! loop with `for` rather than through closures, which the compiler may leave out of line,
//! compiled without the dispatching function's features.

/// Work that [`run_vectorised`] runs from code compiled for the processor's widest vectors.
/// `run` must be `#[inline(always)]` (and so must what it calls), so that its loops are
/// compiled inside the dispatching function with that function's target features.
pub(crate) trait Vectorised {
    /// What the work returns.
    type Output;
    /// Does the work; `FUSED`: whether fused multiply-adds are fast here (see the module).
    fn run<const FUSED: bool>(self) -> Self::Output;
}

/// Runs `work` compiled for AVX2 and FMA when this x86-64 processor has them (the check is
/// a cached load after the first call), and compiled for the build's own target otherwise.
#[inline]
pub(crate) fn run_vectorised<V: Vectorised>(work: V) -> V::Output {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the processor has AVX2 and FMA, checked just above.
        return unsafe { run_avx2(work) };
    }
    work.run::<false>()
}

/// `work.run()` compiled with AVX2 and FMA: the inlined loops use 256-bit registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2<V: Vectorised>(work: V) -> V::Output {
    work.run::<true>()
}

/// `a · b + c`, fused (one rounding) when `FUSED`.
#[inline(always)]
pub(super) fn mul_add<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { a.mul_add(b, c) } else { a * b + c }
}

/// `acc += x`, element by element.
#[inline(always)]
pub(super) fn add_to(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Dot product with eight independent partial sums, so that the compiler vectorises it
/// (fused multiply-adds when `FUSED`).
#[inline(always)]
pub(crate) fn dot<const FUSED: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut tail = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail = mul_add::<FUSED>(*x, *y, tail);
    }
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] = mul_add::<FUSED>(x[k], y[k], acc[k]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A read-only row-major matrix operand: its values and the stride between rows.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    /// The values, the first element first.
    pub(super) values: &'a [f32],
    /// Elements between rows.
    pub(super) row_stride: usize,
}

impl<'a> Strided<'a> {
    /// Row-major rows `row_stride` apart.
    pub(crate) fn rows(values: &'a [f32], row_stride: usize) -> Self {
        Self { values, row_stride }
    }

    /// The operand from its row `row` on.
    ///
    /// # Panics
    /// If row `row` starts past the values.
    #[allow(dead_code)] // used by the SIMD kernels, which not every target has
    #[inline(always)]
    pub(super) fn from_row(self, row: usize) -> Self {
        Self {
            values: &self.values[row * self.row_stride..],
            ..self
        }
    }

    /// Asserts that an `r × c` matrix fits in the values.
    fn check(&self, r: usize, c: usize) {
        let last = (r - 1) * self.row_stride + (c - 1);
        assert!(last < self.values.len(), "matrix operand out of bounds");
    }
}

/// What a matrix product's output starts from, before the product is added.
#[derive(Clone, Copy)]
pub(crate) enum Start<'a> {
    /// Zeros: the output is overwritten.
    Zero,
    /// The output's own values.
    Output,
    /// A bias `[n]`, the same in every row.
    Bias(&'a [f32]),
}

/// `dst[m, n] = start + lhs[m, k] · rhs[k, n]` on one thread, `dst` row-major with rows
/// `dst_stride` apart. Runs [`fma_matmul`](super::fma_matmul) on x86-64 processors with AVX2
/// and FMA, gemm elsewhere.
///
/// # Panics
/// If a matrix does not fit in its slice, or a bias is not `n` long.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_stride: usize,
    start: Start<'_>,
    lhs: Strided<'_>,
    rhs: Strided<'_>,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        k > 0 && (m - 1) * dst_stride + n <= dst.len(),
        "matmul output out of bounds"
    );
    lhs.check(m, k);
    rhs.check(k, n);
    if let Start::Bias(bias) = start {
        assert_eq!(bias.len(), n, "a bias per output column");
    }
    // SAFETY: every element lies inside the slices (checked above), and `dst` is borrowed
    // mutably, apart from both operands.
    if unsafe { simd_kernel(m, n, k, dst.as_mut_ptr(), dst_stride, start, lhs, rhs) } {
        return;
    }
    if let Start::Bias(bias) = start {
        for row in dst.chunks_mut(dst_stride).take(m) {
            row[..n].copy_from_slice(bias);
        }
    }
    // SAFETY: every element gemm reads or writes lies inside the slices (checked above), and
    // `dst` does not alias the operands (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            !matches!(start, Start::Zero),
            lhs.values.as_ptr(),
            1,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            1,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Runs the product on this target's own SIMD kernel when it has one: [`fma_matmul`]
/// (super::fma_matmul) on x86-64 processors with AVX2 and FMA, [`simd128_matmul`]
/// (super::simd128_matmul) in WebAssembly with 128-bit SIMD. False when it has none.
///
/// # Safety
/// As [`matmul`]'s checks: every element lies inside its allocation; `dst` aliases neither
/// operand.
#[allow(clippy::too_many_arguments, unused_variables)]
unsafe fn simd_kernel(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_stride: usize,
    start: Start<'_>,
    lhs: Strided<'_>,
    rhs: Strided<'_>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if super::fma_matmul::available() {
        // SAFETY: the processor has AVX2 and FMA (checked just above); the rest is this
        // function's contract.
        unsafe { super::fma_matmul::matmul(m, n, k, dst, dst_stride, start, lhs, rhs) };
        return true;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        // SAFETY: this function's contract.
        unsafe { super::simd128_matmul::matmul(m, n, k, dst, dst_stride, start, lhs, rhs) };
        return true;
    }
    #[allow(unreachable_code)]
    false
}

/// `dst[c · dst_stride + r] = src[r · src_stride + c]` for the `rows × columns` block at the
/// start of `src`: in 8 × 8 blocks through registers on x86-64 processors with AVX2
/// ([`avx2_transpose`](super::avx2_transpose)), value by value elsewhere.
///
/// # Panics
/// If either block does not fit in its slice.
pub(crate) fn transpose(
    rows: usize,
    columns: usize,
    src: &[f32],
    src_stride: usize,
    dst: &mut [f32],
    dst_stride: usize,
) {
    if rows == 0 || columns == 0 {
        return;
    }
    Strided::rows(src, src_stride).check(rows, columns);
    assert!(
        (columns - 1) * dst_stride + rows <= dst.len(),
        "transposed block out of bounds"
    );
    #[cfg(target_arch = "x86_64")]
    if super::avx2_transpose::available() {
        // SAFETY: the processor has AVX2 (checked just above); both blocks lie inside their
        // slices (checked above), and `dst` is borrowed mutably, apart from `src`.
        unsafe {
            super::avx2_transpose::transpose(
                rows,
                columns,
                src.as_ptr(),
                src_stride,
                dst.as_mut_ptr(),
                dst_stride,
            )
        };
        return;
    }
    for (r, row) in src.chunks(src_stride).take(rows).enumerate() {
        for (c, &v) in row[..columns].iter().enumerate() {
            dst[c * dst_stride + r] = v;
        }
    }
}

/// In place: `row[..n] = exp(row[..n] · scale − max)`, `row[n..] = 0` (the causal mask);
/// returns `1 / Σ row`, the factor that makes the row a softmax (callers apply it to what
/// they compute from the row, which costs less than a pass over it).
#[inline(always)]
pub(super) fn softmax_unnormalised<const FUSED: bool>(
    row: &mut [f32],
    n: usize,
    scale: f32,
) -> f32 {
    let (visible, hidden) = row.split_at_mut(n);
    hidden.fill(0.0);
    let max = max(visible) * scale;
    let mut acc = [0f32; 8];
    let mut chunks = visible.chunks_exact_mut(8);
    for c in &mut chunks {
        for k in 0..8 {
            c[k] = exp::<FUSED>(mul_add::<FUSED>(c[k], scale, -max));
            acc[k] += c[k];
        }
    }
    let mut tail = 0.0;
    for v in chunks.into_remainder() {
        *v = exp::<FUSED>(mul_add::<FUSED>(*v, scale, -max));
        tail += *v;
    }
    1.0 / (acc.iter().sum::<f32>() + tail)
}

/// In place: `row[..n] = softmax(row[..n] · scale)`, `row[n..] = 0` (the causal mask).
#[cfg(test)]
fn softmax_prefix(row: &mut [f32], n: usize, scale: f32) {
    let inv = softmax_unnormalised::<false>(row, n, scale);
    for v in &mut row[..n] {
        *v *= inv;
    }
}

/// Maximum with eight independent compare-and-select lanes, so that the compiler vectorises
/// it (`f32::max` is a call in wasm).
#[inline(always)]
fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = a.chunks_exact(8);
    let pick = |a: f32, b: f32| if b > a { b } else { a };
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| pick(a, b));
    for c in chunks {
        for k in 0..8 {
            acc[k] = pick(acc[k], c[k]);
        }
    }
    acc.into_iter().fold(tail, pick)
}

/// Mean and population variance of `x` (not empty) in one pass, eight lanes each: the sums
/// of `x − x[0]` and of its squares. Shifting by an element of `x` keeps a mean far from zero
/// from cancelling the variance's digits.
#[inline(always)]
pub(super) fn mean_and_variance<const FUSED: bool>(x: &[f32]) -> (f32, f32) {
    let shift = x[0];
    let (mut sums, mut squares) = ([0f32; 8], [0f32; 8]);
    let chunks = x.chunks_exact(8);
    let (mut sum_tail, mut square_tail) = (0.0, 0.0);
    for v in chunks.remainder() {
        let t = v - shift;
        sum_tail += t;
        square_tail = mul_add::<FUSED>(t, t, square_tail);
    }
    for c in chunks {
        for k in 0..8 {
            let t = c[k] - shift;
            sums[k] += t;
            squares[k] = mul_add::<FUSED>(t, t, squares[k]);
        }
    }
    let n = x.len() as f32;
    let mean = (sums.iter().sum::<f32>() + sum_tail) / n;
    let squares = (squares.iter().sum::<f32>() + square_tail) / n;
    (shift + mean, (squares - mean * mean).max(0.0))
}

/// `e^x` to about 2 ulp for `x` in [−87, 88] (clamped outside), without branches or calls so
/// that loops over it vectorise: `2^n · p(r)` with `n = round(x / ln 2)` and Cephes' `expf`
/// polynomial for `e^r`, |r| ≤ ln 2 / 2.
#[inline(always)]
fn exp<const FUSED: bool>(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to nearest
    let x = x.clamp(-87.0, 88.0);
    // `x / ln 2 + ROUND` holds round(x / ln 2) in its low mantissa bits.
    let shifted = mul_add::<FUSED>(x, std::f32::consts::LOG2_E, ROUND);
    let n = shifted - ROUND;
    let r = mul_add::<FUSED>(n, 2.121_944_4e-4, mul_add::<FUSED>(n, -0.693_359_4, x));
    let mut p = 1.987_569_1e-4;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = mul_add::<FUSED>(p, r, c);
    }
    let p = mul_add::<FUSED>(p, r * r, r + 1.0);
    // 2^n from the integer bits alone (a float-to-int cast would not vectorise).
    p * f32::from_bits(shifted.to_bits().wrapping_sub(ROUND.to_bits() - 127) << 23)
}

/// The error function to about 2e-7 (Abramowitz & Stegun 7.1.26), vectorisable like [`exp`].
#[inline(always)]
fn erf<const FUSED: bool>(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / mul_add::<FUSED>(0.327_591_1, a, 1.0);
    let mut poly = 1.061_405_4;
    for c in [-1.453_152_1, 1.421_413_7, -0.284_496_74, 0.254_829_6] {
        poly = mul_add::<FUSED>(poly, t, c);
    }
    let poly = poly * t;
    mul_add::<FUSED>(-poly, exp::<FUSED>(-a * a), 1.0).copysign(x)
}

/// GELU with the error function, as burn's `gelu`, over a slice.
#[inline(always)]
pub(super) fn gelu_in_place<const FUSED: bool>(xs: &mut [f32]) {
    for x in xs {
        *x = 0.5 * *x * (1.0 + erf::<FUSED>(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Largest absolute difference between two equally long slices (for tests).
#[cfg(test)]
pub(super) fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both forms (plain and fused multiply-adds) of `exp` and `erf` against f64 references.
    fn check_exp_and_erf<const FUSED: bool>() {
        for i in -4000..=4000 {
            let x = i as f32 * 0.02;
            let e = (x as f64).exp();
            let ours = exp::<FUSED>(x);
            let rel = ((ours as f64 - e) / e).abs();
            assert!(rel < 5e-7, "exp({x}), fused {FUSED}: {ours} vs {e}");
            let x = i as f32 * 0.0015;
            let (want, ours) = (libm_erf(x as f64), erf::<FUSED>(x));
            assert!(
                (ours as f64 - want).abs() < 1e-6,
                "erf({x}), fused {FUSED}: {ours} vs {want}"
            );
        }
        assert!(exp::<FUSED>(-200.0) < 1e-37 && exp::<FUSED>(-200.0) >= 0.0);
    }

    #[test]
    fn exp_and_erf_match_the_standard_functions() {
        check_exp_and_erf::<false>();
        check_exp_and_erf::<true>();
        // Softmax over the visible prefix only; the rest is masked to exactly 0.
        let mut row = [1.0, 2.0, 50.0];
        softmax_prefix(&mut row, 2, 1.0);
        let want = [1.0 / (1.0 + 1f32.exp()), 1.0 / (1.0 + (-1f32).exp()), 0.0];
        assert!(max_diff(&row, &want) < 1e-6, "{row:?}");
        let mut row = [3.0, -1.0];
        softmax_prefix(&mut row, 1, 0.5);
        assert_eq!(row, [1.0, 0.0]);
        // Rows longer than a vector: the eight lanes and the tail both count.
        let mut row: Vec<f32> = (0..21).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let want: Vec<f32> = {
            let e: Vec<f64> = row[..19].iter().map(|&v| (v as f64 * 0.8).exp()).collect();
            let total: f64 = e.iter().sum();
            e.iter()
                .map(|v| (v / total) as f32)
                .chain([0.0, 0.0])
                .collect()
        };
        softmax_prefix(&mut row, 19, 0.8);
        assert!(max_diff(&row, &want) < 1e-6, "{row:?}");
    }

    /// The error function in f64 by its Maclaurin series (|x| ≤ 6, plenty of terms).
    fn libm_erf(x: f64) -> f64 {
        if x.abs() > 4.0 {
            return x.signum();
        }
        let (mut term, mut total) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            total += term / (2 * n + 1) as f64;
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    /// `start + lhs · rhs` by a plain triple loop in f64.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        (m, n, k): (usize, usize, usize),
        dst: &[f32],
        dst_stride: usize,
        start: Start<'_>,
        lhs: &[f32],
        lhs_stride: usize,
        rhs: &[f32],
        rhs_stride: usize,
    ) -> Vec<f32> {
        let mut out = dst.to_vec();
        for i in 0..m {
            for j in 0..n {
                let mut total = match start {
                    Start::Zero => 0.0,
                    Start::Output => dst[i * dst_stride + j] as f64,
                    Start::Bias(b) => b[j] as f64,
                };
                for p in 0..k {
                    total += lhs[i * lhs_stride + p] as f64 * rhs[p * rhs_stride + j] as f64;
                }
                out[i * dst_stride + j] = total as f32;
            }
        }
        out
    }

    /// Every row count of a panel (1 to 6, and several panels), column counts around one and
    /// two vectors and past them, padded strides, and each way the output starts: equal to
    /// the plain loop, and the padding between rows left as it was. On a processor without
    /// AVX2 and FMA this checks the gemm fallback instead.
    #[test]
    fn products_equal_a_plain_loop() {
        let value = |i: usize, salt: usize| ((i * 7919 + salt * 104_729) % 201) as f32 / 50.0 - 2.0;
        let mut cases = 0;
        for m in [1, 2, 3, 5, 6, 7, 13, 20] {
            for n in [1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 33, 50, 100] {
                for k in [1, 3, 50, 300] {
                    let (lhs_stride, rhs_stride, dst_stride) = (k + 3, n + 5, n + 2);
                    let lhs: Vec<f32> = (0..m * lhs_stride).map(|i| value(i, 1)).collect();
                    let rhs: Vec<f32> = (0..k * rhs_stride).map(|i| value(i, 2)).collect();
                    let bias: Vec<f32> = (0..n).map(|i| value(i, 3)).collect();
                    let before: Vec<f32> = (0..m * dst_stride).map(|i| value(i, 4)).collect();
                    for start in [Start::Zero, Start::Output, Start::Bias(&bias)] {
                        let mut dst = before.clone();
                        let (l, r) = (
                            Strided::rows(&lhs, lhs_stride),
                            Strided::rows(&rhs, rhs_stride),
                        );
                        matmul(m, n, k, &mut dst, dst_stride, start, l, r);
                        let (shape, strides) = ((m, n, k), (lhs_stride, rhs_stride));
                        let want = reference(
                            shape, &before, dst_stride, start, &lhs, strides.0, &rhs, strides.1,
                        );
                        let diff = max_diff(&dst, &want);
                        assert!(diff < 1e-4, "m {m}, n {n}, k {k}: differs by {diff}");
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 8 * 13 * 4 * 3);
    }

    /// Blocks of every size around the 8 × 8 blocks, with padded strides: each value lands at
    /// its transposed place, and the padding between the output's rows is left as it was.
    #[test]
    fn transposes_move_every_value_to_its_place() {
        let mut cases = 0;
        for rows in [1, 7, 8, 9, 16, 17, 200] {
            for columns in [1, 3, 8, 12, 50] {
                let (src_stride, dst_stride) = (columns + 3, rows + 2);
                let src: Vec<f32> = (0..rows * src_stride).map(|i| i as f32).collect();
                let mut dst = vec![-1.0; columns * dst_stride];
                transpose(rows, columns, &src, src_stride, &mut dst, dst_stride);
                for c in 0..columns {
                    for r in 0..dst_stride {
                        let want = if r < rows {
                            src[r * src_stride + c]
                        } else {
                            -1.0
                        };
                        let got = dst[c * dst_stride + r];
                        assert_eq!(got, want, "{rows} × {columns}: row {r}, column {c}");
                    }
                }
                cases += 1;
            }
        }
        assert_eq!(cases, 7 * 5);
    }

    /// The one-pass mean and variance against f64 two-pass ones, both forms, for a mean near
    /// zero and one far from it (where unshifted sums of squares would cancel every digit).
    #[test]
    fn mean_and_variance_match_two_passes_in_f64() {
        for offset in [0.0f32, 1000.0] {
            for len in [1, 7, 8, 50, 129] {
                let x: Vec<f32> = (0..len)
                    .map(|i| offset + ((i * 37 % 11) as f32 - 5.0) * 0.1)
                    .collect();
                let mean = x.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
                let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len as f64;
                for (m, v) in [
                    mean_and_variance::<false>(&x),
                    mean_and_variance::<true>(&x),
                ] {
                    assert!(
                        (m as f64 - mean).abs() < 1e-4,
                        "offset {offset}, {len}: mean {m}"
                    );
                    assert!(
                        (v as f64 - var).abs() < 1e-5,
                        "offset {offset}, {len}: var {v} vs {var}"
                    );
                }
            }
        }
    }
}
