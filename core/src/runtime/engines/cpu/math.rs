//! The CPU engine's arithmetic over plain slices: one-thread matrix products (gemm), and
//! vectorisable sums, maxima, `exp`, `erf` and GELU.

pub(super) fn add_to(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Dot product with eight independent partial sums, so that the compiler vectorises it.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A read-only matrix operand: its values and the strides between rows and between columns.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    values: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Strided<'a> {
    /// Row-major rows `row_stride` apart.
    pub(crate) fn rows(values: &'a [f32], row_stride: usize) -> Self {
        Self {
            values,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose of row-major rows `row_stride` apart.
    pub(super) fn columns(values: &'a [f32], row_stride: usize) -> Self {
        Self {
            values,
            row_stride: 1,
            col_stride: row_stride,
        }
    }

    /// Asserts that an `r × c` matrix fits in the values.
    fn check(&self, r: usize, c: usize) {
        let last = (r - 1) * self.row_stride + (c - 1) * self.col_stride;
        assert!(last < self.values.len(), "matrix operand out of bounds");
    }
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]` on one thread, `dst` row-major with rows `dst_stride`
/// apart (added to when `accumulate`, overwritten otherwise).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_stride: usize,
    accumulate: bool,
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
            accumulate,
            lhs.values.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.col_stride as isize,
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

/// In place: `row[..n] = softmax(row[..n] · scale)`, `row[n..] = 0` (the causal mask).
pub(super) fn softmax_prefix(row: &mut [f32], n: usize, scale: f32) {
    let (visible, hidden) = row.split_at_mut(n);
    hidden.fill(0.0);
    let max = max(visible) * scale;
    for v in visible.iter_mut() {
        *v = exp(*v * scale - max);
    }
    let inv = 1.0 / sum(visible);
    for v in visible.iter_mut() {
        *v *= inv;
    }
}

/// Maximum with eight independent compare-and-select lanes, so that the compiler vectorises
/// it (`f32::max` is a call in wasm).
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

/// Σ (x − mean)² with eight independent partial sums.
pub(super) fn squared_deviations(a: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for k in 0..8 {
            acc[k] += (c[k] - mean) * (c[k] - mean);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Sum with eight independent partial sums, so that the compiler vectorises it.
pub(super) fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `e^x` to about 2 ulp for `x` in [−87, 88] (clamped outside), without branches or calls so
/// that loops over it vectorise: `2^n · p(r)` with `n = round(x / ln 2)` and Cephes' `expf`
/// polynomial for `e^r`, |r| ≤ ln 2 / 2.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to nearest
    let x = x.clamp(-87.0, 88.0);
    // `x / ln 2 + ROUND` holds round(x / ln 2) in its low mantissa bits.
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * r
        * r
        + r
        + 1.0;
    // 2^n from the integer bits alone (a float-to-int cast would not vectorise).
    p * f32::from_bits(shifted.to_bits().wrapping_sub(ROUND.to_bits() - 127) << 23)
}

/// The error function to about 2e-7 (Abramowitz & Stegun 7.1.26), vectorisable like [`exp`].
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// GELU with the error function, as burn's `gelu`, over a slice.
pub(super) fn gelu_in_place(xs: &mut [f32]) {
    for x in xs {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
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

    #[test]
    fn exp_and_erf_match_the_standard_functions() {
        for i in -4000..=4000 {
            let x = i as f32 * 0.02;
            let e = (x as f64).exp();
            let rel = ((exp(x) as f64 - e) / e).abs();
            assert!(rel < 5e-7, "exp({x}): {} vs {e}", exp(x));
            let x = i as f32 * 0.0015;
            let want = libm_erf(x as f64);
            assert!(
                (erf(x) as f64 - want).abs() < 1e-6,
                "erf({x}): {} vs {want}",
                erf(x)
            );
        }
        assert!(exp(-200.0) < 1e-37 && exp(-200.0) >= 0.0);
        // Softmax over the visible prefix only; the rest is masked to exactly 0.
        let mut row = [1.0, 2.0, 50.0];
        softmax_prefix(&mut row, 2, 1.0);
        let want = [1.0 / (1.0 + 1f32.exp()), 1.0 / (1.0 + (-1f32).exp()), 0.0];
        assert!(max_diff(&row, &want) < 1e-6, "{row:?}");
        let mut row = [3.0, -1.0];
        softmax_prefix(&mut row, 1, 0.5);
        assert_eq!(row, [1.0, 0.0]);
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
}
