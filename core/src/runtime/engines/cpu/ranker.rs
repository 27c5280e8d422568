//! The contextual ranker on the CPU engine: the forward of [`crate::ranker::Ranker`] over
//! [`RankerRows`] in host memory. A request's own embeddings (task, context, query, source,
//! user) are computed once per request, not once per candidate; the candidates' features,
//! cross layers and MLP run as matrix products over all of a request's rows.

use super::math::{Start, Strided, Vectorised, dot, matmul, run_vectorised};
use super::{linear, norm};
use crate::ranker::{QUERY_FEATURES, RankerRows};
use crate::serving::LinearWeights;
use crate::serving::ServingRanker;

/// Rows of `table` `[_, e]`.
fn row(table: &[f32], r: usize, e: usize) -> &[f32] {
    &table[r * e..(r + 1) * e]
}

/// The request-level part of `x₀` for the request whose first row is `r`: task, context
/// fields, query and source, each imputed by the task's default where absent, then the user
/// embedding scaled by `alpha` (`[fields + 3, e]` then `[e]`).
fn request_part(
    ranker: &ServingRanker,
    rows: &RankerRows,
    r: usize,
    alpha: f32,
) -> (Vec<f32>, Vec<f32>) {
    let c = &ranker.config;
    let e = c.d_embed;
    let fields = c.context_fields.len();
    let task = rows.task[r] as usize;
    let mut out = Vec::with_capacity((fields + 3) * e);
    out.extend_from_slice(row(&ranker.task, task, e));
    for k in 0..fields {
        let v = rows.context[r * fields + k] as usize;
        if v > 0 {
            out.extend_from_slice(row(&ranker.fields[k], v, e));
        } else {
            out.extend_from_slice(row(&ranker.defaults[k], task, e));
        }
    }
    let query = &rows.query[r * QUERY_FEATURES..(r + 1) * QUERY_FEATURES];
    let present: Vec<usize> = query
        .iter()
        .filter(|&&b| b > 0)
        .map(|&b| b as usize)
        .collect();
    if present.is_empty() {
        out.extend_from_slice(row(&ranker.defaults[fields], task, e));
    } else {
        let mut mean = vec![0f32; e];
        for &b in &present {
            for (m, v) in mean.iter_mut().zip(row(&ranker.query, b, e)) {
                *m += v;
            }
        }
        let n = present.len() as f32;
        out.extend(mean.into_iter().map(|m| m / n));
    }
    if rows.has_source[r] > 0.5 {
        let (d, mut s) = (c.d_item, vec![0f32; e]);
        linear(&ranker.source, &rows.source[r * d..(r + 1) * d], 1, &mut s);
        out.extend(s);
    } else {
        out.extend_from_slice(row(&ranker.defaults[fields + 1], task, e));
    }
    let d = c.d_user;
    let mut user = vec![0f32; e];
    linear(&ranker.user, &rows.user[r * d..(r + 1) * d], 1, &mut user);
    user.iter_mut().for_each(|u| *u *= alpha);
    (out, user)
}

/// `t = x₀ W + b` for the `m` rows of `x₀` `[m, w]` whose request columns (`0..at` and the
/// user's `at + 2e..at + 3e`) are the same in every row: those columns' product once, then
/// the candidate columns' (`at..at + 2e`, `at + 3e..w`) for every row.
#[inline(always)]
fn first_cross_product(
    layer: &LinearWeights,
    x0: &[f32],
    m: usize,
    at: usize,
    e: usize,
    t: &mut [f32],
) {
    let w = layer.out;
    let mut shared = layer.bias.clone();
    let user = at + 2 * e;
    let request_rows = (0..at).chain(user..user + e);
    for (k, xk) in request_rows.map(|k| (k, x0[k])) {
        for (s, wk) in shared.iter_mut().zip(&layer.weight[k * w..(k + 1) * w]) {
            *s += xk * wk;
        }
    }
    for row in t[..m * w].chunks_exact_mut(w) {
        row.copy_from_slice(&shared);
    }
    for (from, len) in [(at, 2 * e), (user + e, w - user - e)] {
        if len > 0 {
            matmul(
                m,
                w,
                len,
                t,
                w,
                Start::Output,
                Strided::rows(&x0[from..], w),
                Strided::rows(&layer.weight[from * w..], w),
            );
        }
    }
}

/// The logit of every row of `rows` (one request after another, as [`RankerRows::sizes`]
/// says; each request's α from [`RankerRows::alpha`]): `[rows]`.
///
/// # Panics
/// If `rows` were not built for `ranker`'s shape.
pub fn ranker_logits(ranker: &ServingRanker, rows: &RankerRows) -> Vec<f32> {
    /// [`logits_inline`] as work for [`run_vectorised`].
    struct Logits<'a> {
        ranker: &'a ServingRanker,
        rows: &'a RankerRows,
    }
    impl Vectorised for Logits<'_> {
        type Output = Vec<f32>;
        #[inline(always)]
        fn run<const FUSED: bool>(self) -> Vec<f32> {
            logits_inline::<FUSED>(self.ranker, self.rows)
        }
    }
    run_vectorised(Logits { ranker, rows })
}

/// [`ranker_logits`]'s work, inlined into its caller (with the processor's widest vectors
/// there, see [`run_vectorised`]).
#[inline(always)]
fn logits_inline<const FUSED: bool>(ranker: &ServingRanker, rows: &RankerRows) -> Vec<f32> {
    let c = &ranker.config;
    let (e, w, h) = (c.d_embed, c.width(), c.d_hidden);
    let (d_item, n_dense) = (c.d_item, c.n_dense);
    assert_eq!(
        rows.dense.len(),
        rows.len() * n_dense,
        "dense features per row"
    );
    let mut logits = Vec::with_capacity(rows.len());
    let mut first = 0;
    for (&m, &alpha) in rows.sizes.iter().zip(&rows.alpha) {
        if m == 0 {
            continue;
        }
        let (request, user) = request_part(ranker, rows, first, alpha);
        let at = request.len();
        // Candidate-level embeddings of all m rows.
        let mut cand = vec![0f32; m * e];
        linear(
            &ranker.candidate,
            &rows.candidate[first * d_item..(first + m) * d_item],
            m,
            &mut cand,
        );
        let mut dense = vec![0f32; m * e];
        linear(
            &ranker.dense,
            &rows.dense[first * n_dense..(first + m) * n_dense],
            m,
            &mut dense,
        );
        let mut x0 = vec![0f32; m * w];
        for (i, x) in x0.chunks_exact_mut(w).enumerate() {
            x[..at].copy_from_slice(&request);
            x[at..at + e].copy_from_slice(&cand[i * e..(i + 1) * e]);
            x[at + e..at + 2 * e].copy_from_slice(&dense[i * e..(i + 1) * e]);
            x[at + 2 * e..at + 3 * e].copy_from_slice(&user);
            let s = rows.fm_score[first + i];
            for ((y, wt), b) in x[at + 3 * e..]
                .iter_mut()
                .zip(&ranker.fm_score.weight)
                .zip(&ranker.fm_score.bias)
            {
                *y = (s * wt + b) * alpha;
            }
        }
        // Cross layers: x ← x₀ ⊙ (x W + b) + x. In the first, x = x₀, whose request columns
        // are the same in every row: their product is computed once.
        let mut x = x0.clone();
        let mut t = vec![0f32; m * w];
        for (l, layer) in ranker.cross.iter().enumerate() {
            if l == 0 {
                first_cross_product(layer, &x0, m, at, e, &mut t);
            } else {
                linear(layer, &x, m, &mut t);
            }
            for ((xi, ti), x0i) in x.iter_mut().zip(&t).zip(&x0) {
                *xi += x0i * ti;
            }
        }
        // Residual MLP blocks: x ← x + project(relu(expand(norm(x)))).
        let mut normed = vec![0f32; m * w];
        let mut hidden = vec![0f32; m * h];
        for block in &ranker.mlp {
            for (src, dst) in x.chunks_exact(w).zip(normed.chunks_exact_mut(w)) {
                norm::<FUSED>(&block.norm, ranker.epsilon, src, dst);
            }
            linear(&block.expand, &normed, m, &mut hidden);
            hidden.iter_mut().for_each(|v| *v = v.max(0.0));
            linear(&block.project, &hidden, m, &mut t);
            for (xi, ti) in x.iter_mut().zip(&t) {
                *xi += ti;
            }
        }
        let bias = ranker.out.bias[0];
        for r in x.chunks_exact(w) {
            logits.push(dot::<FUSED>(r, &ranker.out.weight) + bias);
        }
        first += m;
    }
    logits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranker::RankerConfig;
    use burn::tensor::Device;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Rows of three requests (search with a query, a home row with nothing, a page with a
    /// source title), random candidate features, different α.
    fn random_rows(cfg: &RankerConfig, rng: &mut ChaCha8Rng) -> RankerRows {
        let mut rows = RankerRows::default();
        let requests = [
            (0i64, true, false, 1.0f32, 5usize),
            (1, false, false, 0.0, 7),
            (2, false, true, 0.4, 3),
        ];
        for (task, query, source, alpha, m) in requests {
            rows.sizes.push(m);
            rows.alpha.push(alpha);
            let context: Vec<i64> = cfg
                .context_fields
                .iter()
                .map(|&n| rng.random_range(0..=n as i64))
                .collect();
            let mut q: Vec<i64> = (0..QUERY_FEATURES)
                .map(|i| {
                    if query && i < 9 {
                        rng.random_range(1..cfg.query_buckets as i64)
                    } else {
                        0
                    }
                })
                .collect();
            q.truncate(QUERY_FEATURES);
            let src: Vec<f32> = (0..cfg.d_item)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let user: Vec<f32> = (0..cfg.d_user)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            for _ in 0..m {
                rows.task.push(task);
                rows.context.extend(&context);
                rows.query.extend(&q);
                if source {
                    rows.source.extend(&src);
                } else {
                    rows.source.extend(std::iter::repeat_n(0.0, cfg.d_item));
                }
                rows.has_source.push(f32::from(u8::from(source)));
                rows.candidate
                    .extend((0..cfg.d_item).map(|_| rng.random_range(-1.0f32..1.0)));
                rows.dense
                    .extend((0..cfg.n_dense).map(|_| rng.random_range(0.0f32..1.0)));
                rows.user.extend(&user);
                rows.fm_score.push(rng.random_range(-3.0..3.0));
                rows.label.push(0.0);
            }
        }
        rows
    }

    #[test]
    fn the_cpu_engine_equals_the_training_forward() {
        let device = Device::flex();
        let cfg = RankerConfig::new(3, vec![5, 2, 4], 12, 12, 7)
            .with_query_buckets(64)
            .with_d_embed(8)
            .with_d_hidden(24)
            .with_n_cross(2)
            .with_n_mlp(2)
            .with_dropout(0.0);
        device.seed(7);
        let ranker = cfg.init(&device);
        let serving = ServingRanker::from_ranker(&ranker, &cfg);
        let rows = random_rows(&cfg, &mut ChaCha8Rng::seed_from_u64(3));
        let want: Vec<f32> = ranker
            .forward(&rows.input(&cfg, &device))
            .into_data()
            .try_into_vec()
            .unwrap();
        let got = ranker_logits(&serving, &rows);
        assert_eq!(got.len(), rows.len());
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "max |engine − training| = {worst}");
        // The rows differ, so a constant output could not pass.
        assert!(want.iter().any(|&v| (v - want[0]).abs() > 1e-3), "{want:?}");
    }
}
