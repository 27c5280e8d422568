//! The CPU engine: the serving description ([`ServingModel`]) executed over plain slices on
//! one thread.
//!
//! On the CPU backend a rerank through burn runs about 80 ops, each paying allocation and
//! dispatch, and burn's attention computes (and masks) the whole square of a causal window.
//! [`CpuEngine::step`] runs [`LayerStep::ORDER`] for every layer over host memory: matrix
//! products for the projections, causal attention over each query's visible keys only,
//! vectorisable `exp` and `erf`; [`CpuEngine::scores`] gathers and scores the candidates in
//! place. One step serves a whole window (a stateless rerank) and one appended event (a
//! session) alike. A stateless forward, whose keys and values nobody reads again, skips the
//! last layer's key and value projections: that layer attends from the normed rows through
//! the query and the context instead ([`attend_absorbed`]). Tests hold it to burn's forward
//! within 1e-4.

#[cfg(target_arch = "x86_64")]
mod avx2_transpose;
mod cache;
#[cfg(target_arch = "x86_64")]
mod fma_matmul;
pub(crate) mod math;
mod ranker;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128_matmul;
mod workspace;

pub use cache::CpuKvCache;
pub use ranker::ranker_logits;

use std::sync::{Arc, Mutex};

use math::{
    Start, Strided, Vectorised, add_to, dot, gelu_in_place, matmul, mean_and_variance, mul_add,
    run_vectorised, softmax_unnormalised, transpose,
};

use workspace::{Workspace, sized};

use crate::model::{KvCache, MAX_PROMPT_LENGTH};
use crate::serving::{LayerStep, LinearWeights, NormWeights, ServingModel};
use crate::tokenizer::TOKEN_FIELDS;

/// A layer's query, key and value projections as contiguous matrices: the CPU engine reads
/// the description's fused q|k|v as three products (queries only for the rows a layer
/// outputs; keys and values straight into the cache).
#[derive(Debug)]
struct SplitProjections {
    /// `[d, d]`.
    query: LinearWeights,
    /// `[d, d]`.
    key: LinearWeights,
    /// `[d, d]`.
    value: LinearWeights,
}

impl SplitProjections {
    fn of(qkv: &LinearWeights, d: usize) -> Self {
        let columns = |from: usize, to: usize| LinearWeights {
            weight: qkv
                .weight
                .chunks_exact(qkv.out)
                .flat_map(|row| row[from..to].iter().copied())
                .collect(),
            bias: qkv.bias[from..to].to_vec(),
            out: to - from,
        };
        Self {
            query: columns(0, d),
            key: columns(d, 2 * d),
            value: columns(2 * d, 3 * d),
        }
    }
}

/// The serving forward on the CPU, over a shared [`ServingModel`].
#[derive(Debug)]
pub struct CpuEngine {
    model: Arc<ServingModel>,
    /// Each layer's [`SplitProjections`].
    projections: Vec<SplitProjections>,
    /// A cache reused by stateless forwards ([`CpuEngine::encode`]), so that they neither
    /// allocate nor page-fault; a concurrent caller that finds it busy allocates its own.
    scratch: Mutex<CpuKvCache>,
    /// Work buffers reused by every step; a concurrent caller that finds them busy
    /// allocates its own.
    workspace: Mutex<Workspace>,
}

impl CpuEngine {
    /// An engine over `model`.
    pub fn new(model: Arc<ServingModel>) -> Self {
        let scratch = Mutex::new(CpuKvCache::new(
            model.layers.len(),
            model.d_model,
            model.max_len + MAX_PROMPT_LENGTH,
        ));
        let projections = model
            .layers
            .iter()
            .map(|l| SplitProjections::of(&l.query_key_value, model.d_model))
            .collect();
        Self {
            model,
            projections,
            scratch,
            workspace: Mutex::default(),
        }
    }

    /// The serving description this engine executes.
    pub fn model(&self) -> &ServingModel {
        &self.model
    }

    /// An empty cache for this model, with room for a window and a prompt.
    pub fn empty_cache(&self) -> CpuKvCache {
        CpuKvCache::new(
            self.model.layers.len(),
            self.model.d_model,
            self.model.max_len + MAX_PROMPT_LENGTH,
        )
    }

    /// A device cache of this model read back into host memory, with room for a window and
    /// a prompt.
    pub fn cache_from_device(&self, cache: &KvCache) -> CpuKvCache {
        CpuKvCache::from_device(
            cache,
            self.model.d_model,
            self.model.max_len + MAX_PROMPT_LENGTH,
        )
    }

    /// The user representation `[d_model]` after `tokens` alone (a stateless forward).
    ///
    /// # Panics
    /// If `tokens` is empty or longer than the window.
    pub fn encode(&self, tokens: &[[i64; TOKEN_FIELDS]]) -> Vec<f32> {
        self.encode_with(tokens, &[])
    }

    /// [`CpuEngine::encode`] with the item rows of `extra` after the model's own (see
    /// [`ServingModel::embed_with`]).
    pub fn encode_with(&self, tokens: &[[i64; TOKEN_FIELDS]], extra: &[f32]) -> Vec<f32> {
        self.encode_prompted(tokens, extra, None)
    }

    /// [`CpuEngine::encode_with`] under prompt set `prompt` when given (see
    /// [`CpuEngine::step_prompted`]).
    pub fn encode_prompted(
        &self,
        tokens: &[[i64; TOKEN_FIELDS]],
        extra: &[f32],
        prompt: Option<usize>,
    ) -> Vec<f32> {
        let run = |cache: &mut CpuKvCache| match prompt {
            Some(p) => self.step_prompted(tokens, extra, cache, p),
            None => self.stateless(tokens, extra, cache),
        };
        match self.scratch.try_lock() {
            Ok(mut cache) => {
                cache.truncate(0);
                run(&mut cache)
            }
            Err(_) => run(&mut self.empty_cache()),
        }
    }

    /// The user representation `[d_model]` after `tokens` (each its [`TOKEN_FIELDS`] input
    /// fields) that follow the tokens in `cache`, whose keys and values are appended to it.
    /// Equal to burn's forward over the whole sequence; a whole window (empty cache) costs a
    /// few matrix products per layer, one new token a few vector products.
    ///
    /// # Panics
    /// If `tokens` is empty or reaches past the window.
    pub fn step(&self, tokens: &[[i64; TOKEN_FIELDS]], cache: &mut CpuKvCache) -> Vec<f32> {
        self.step_with(tokens, &[], cache)
    }

    /// [`CpuEngine::step`] with the item rows of `extra` after the model's own (see
    /// [`ServingModel::embed_with`]).
    pub fn step_with(
        &self,
        tokens: &[[i64; TOKEN_FIELDS]],
        extra: &[f32],
        cache: &mut CpuKvCache,
    ) -> Vec<f32> {
        self.tokens_step(tokens, extra, cache, false)
    }

    /// [`CpuEngine::step_with`] from the empty `cache`, which is left empty: the forward of a
    /// whole window whose keys and values nobody reads again. The last layer then projects
    /// no keys or values (see [`attend_absorbed`]).
    fn stateless(
        &self,
        tokens: &[[i64; TOKEN_FIELDS]],
        extra: &[f32],
        cache: &mut CpuKvCache,
    ) -> Vec<f32> {
        debug_assert_eq!(
            cache.len(),
            0,
            "a stateless forward starts from an empty cache"
        );
        // `run_layers` leaves a discarded cache as it found it: empty.
        self.tokens_step(tokens, extra, cache, true)
    }

    /// [`CpuEngine::step_with`], the last layer's keys and values discarded when `discard`
    /// (see [`CpuEngine::run_layers`]).
    fn tokens_step(
        &self,
        tokens: &[[i64; TOKEN_FIELDS]],
        extra: &[f32],
        cache: &mut CpuKvCache,
        discard: bool,
    ) -> Vec<f32> {
        let m = tokens.len();
        assert!(m > 0, "a step needs at least one token");
        let first = cache.len();
        assert!(
            first + m <= self.model.max_len,
            "{first} cached + {m} new tokens exceed the window of {}",
            self.model.max_len
        );
        let rows = NewRows::Tokens {
            tokens,
            first,
            extra,
        };
        self.run_layers(rows, cache, discard)
    }

    /// The user representation `[d_model]` after `tokens` (the last one the request token)
    /// under prompt set `prompt` (an index into the description's prompts): the tokens before
    /// the request join `cache` as in [`CpuEngine::step_with`]; the prompt and the request
    /// token run after them and leave the cache as it was (it then holds the history alone,
    /// so the next call may select another prompt).
    ///
    /// # Panics
    /// If `tokens` is empty or reaches past the window, or `prompt` is out of range.
    pub fn step_prompted(
        &self,
        tokens: &[[i64; TOKEN_FIELDS]],
        extra: &[f32],
        cache: &mut CpuKvCache,
        prompt: usize,
    ) -> Vec<f32> {
        let model = &*self.model;
        let prompt = &model.prompts[prompt];
        let (d, m) = (model.d_model, tokens.len());
        assert!(m > 0, "a step needs at least one token");
        let (events, request) = tokens.split_at(m - 1);
        if !events.is_empty() {
            self.step_with(events, extra, cache);
        }
        let history = cache.len();
        assert!(
            history < model.max_len,
            "{history} cached tokens leave no room for the request in a window of {}",
            model.max_len
        );
        // The request token keeps the position it has without a prompt.
        let mut x = prompt.input.clone();
        x.extend(model.embed_with(request, history, extra));
        let deep = prompt.deep_keys();
        for (l, (keys, values)) in cache.layers_mut().enumerate() {
            let from = l * deep * d..(l + 1) * deep * d;
            let to = history * d..(history + deep) * d;
            keys[to.clone()].copy_from_slice(&prompt.keys[from.clone()]);
            values[to].copy_from_slice(&prompt.values[from]);
        }
        cache.set_len(history + deep);
        let user = self.run_layers(NewRows::Embedded(x), cache, false);
        cache.truncate(history);
        user
    }

    /// The layers over the new tokens `rows` (`[m, d]` once embedded) that follow the tokens
    /// in `cache` (their keys and values are appended to it): the user representation `[d]`
    /// at the last one. With `discard` (an empty cache that nobody reads afterwards), the
    /// last layer stores no keys or values and attends through [`attend_absorbed`]. Runs
    /// with the processor's widest vectors (see [`run_vectorised`]).
    fn run_layers(&self, rows: NewRows<'_>, cache: &mut CpuKvCache, discard: bool) -> Vec<f32> {
        /// [`CpuEngine::layers_inline`] as work for [`run_vectorised`].
        struct Layers<'a> {
            engine: &'a CpuEngine,
            rows: NewRows<'a>,
            cache: &'a mut CpuKvCache,
            discard: bool,
        }
        impl Vectorised for Layers<'_> {
            type Output = Vec<f32>;
            #[inline(always)]
            fn run<const FUSED: bool>(self) -> Vec<f32> {
                self.engine
                    .layers_inline::<FUSED>(self.rows, self.cache, self.discard)
            }
        }
        run_vectorised(Layers {
            engine: self,
            rows,
            cache,
            discard,
        })
    }

    /// [`CpuEngine::run_layers`]'s work, inlined into its caller.
    #[inline(always)]
    fn layers_inline<const FUSED: bool>(
        &self,
        rows: NewRows<'_>,
        cache: &mut CpuKvCache,
        discard: bool,
    ) -> Vec<f32> {
        let mut x = match rows {
            NewRows::Embedded(x) => x,
            NewRows::Tokens {
                tokens,
                first,
                extra,
            } => self.model.embed_with(tokens, first, extra),
        };
        let model = &*self.model;
        let d = model.d_model;
        let m = x.len() / d;
        let first = cache.len();
        assert!(
            first + m <= cache.room(),
            "{first} cached + {m} new tokens exceed the cache's room of {}",
            cache.room()
        );
        let mut own = Workspace::default();
        let mut shared = self.workspace.try_lock();
        let work = match shared.as_deref_mut() {
            Ok(work) => work,
            Err(_) => &mut own,
        };
        // The residual stream: rows of the new tokens (fewer once a layer keeps only the
        // rows it was asked for).
        let mut mixed: Vec<f32> = x[(m - 1) * d..].iter().map(|v| v * model.mix[0]).collect();
        let normed = sized(&mut work.normed, m * d);
        let layers = model.layers.iter().zip(&self.projections);
        for (l, ((layer, split), (keys, values))) in layers.zip(cache.layers_mut()).enumerate() {
            let rows = model.query_rows(l, m);
            let (q0, nq) = (rows.start, rows.len());
            // The last layer of a forward whose cache is discarded: one query row, over the
            // normed rows themselves (the cache holds nothing before them).
            let absorbed = discard && first == 0 && l + 1 == model.layers.len() && nq == 1;
            let q = sized(&mut work.query, nq * d);
            let context = sized(&mut work.context, nq * d);
            let projected = sized(&mut work.projected, nq * d);
            let hidden = sized(&mut work.hidden, nq * layer.d_ff());
            for step in LayerStep::ORDER {
                match step {
                    LayerStep::NormAttn => {
                        for (row, n) in x.chunks_exact(d).zip(normed.chunks_exact_mut(d)) {
                            norm::<FUSED>(&layer.norm_attn, model.epsilon, row, n);
                        }
                    }
                    LayerStep::QueryKeyValue => {
                        // Every new token's keys and values join the cache; queries only
                        // for the rows this layer outputs.
                        if !absorbed {
                            let new = first * d..(first + m) * d;
                            linear(&split.key, normed, m, &mut keys[new.clone()]);
                            linear(&split.value, normed, m, &mut values[new]);
                        }
                        linear(&split.query, &normed[q0 * d..], nq, q);
                    }
                    LayerStep::Attention if absorbed => {
                        let scratch = AbsorbedScratch {
                            scores: &mut work.scores,
                            vectors: &mut work.absorbed,
                        };
                        attend_absorbed::<FUSED>(model, split, q, normed, context, scratch);
                    }
                    LayerStep::Attention => {
                        let scratch = AttentionScratch {
                            scores: &mut work.scores,
                            keys_transposed: &mut work.keys_transposed,
                        };
                        let position = first + q0;
                        attend::<FUSED>(model, q, nq, position, keys, values, context, scratch);
                    }
                    LayerStep::Output => {
                        linear(&layer.output, context, nq, projected);
                        if q0 > 0 {
                            x.drain(..q0 * d);
                        }
                        add_to(&mut x, projected);
                    }
                    LayerStep::NormFf => {
                        for (row, n) in x.chunks_exact(d).zip(normed.chunks_exact_mut(d)) {
                            norm::<FUSED>(&layer.norm_ff, model.epsilon, row, n);
                        }
                    }
                    LayerStep::FfIn => {
                        linear(&layer.ff_in, normed, nq, hidden);
                        gelu_in_place::<FUSED>(hidden);
                    }
                    LayerStep::FfOut => {
                        linear(&layer.ff_out, hidden, nq, projected);
                        add_to(&mut x, projected);
                    }
                }
            }
            let last = &x[x.len() - d..];
            for (mx, v) in mixed.iter_mut().zip(last) {
                *mx += model.mix[l + 1] * v;
            }
        }
        // A discarded cache's last layer holds no keys or values: it is left empty.
        cache.set_len(if discard { first } else { first + m });
        let mut user = vec![0f32; d];
        norm::<FUSED>(&model.norm, model.epsilon, &mixed, &mut user);
        user
    }

    /// Scores of candidates given as dense item indices: `user · item vector` each (with the
    /// processor's widest vectors, see [`run_vectorised`]).
    pub fn scores(&self, user: &[f32], candidates: &[i64]) -> Vec<f32> {
        /// The dot products as work for [`run_vectorised`].
        struct Scores<'a> {
            model: &'a ServingModel,
            user: &'a [f32],
            candidates: &'a [i64],
        }
        impl Vectorised for Scores<'_> {
            type Output = Vec<f32>;
            #[inline(always)]
            fn run<const FUSED: bool>(self) -> Vec<f32> {
                let mut scores = Vec::with_capacity(self.candidates.len());
                for &c in self.candidates {
                    scores.push(dot::<FUSED>(self.user, self.model.item_vector(c as usize)));
                }
                scores
            }
        }
        run_vectorised(Scores {
            model: &self.model,
            user,
            candidates,
        })
    }
}

/// The new rows of a step: embedded already, or tokens that the step embeds itself (inside
/// [`run_vectorised`]).
enum NewRows<'a> {
    /// `[m, d]` embedded rows.
    Embedded(Vec<f32>),
    /// Tokens at positions `first..`, with `extra` item rows (see [`ServingModel::embed_with`]).
    Tokens {
        tokens: &'a [[i64; TOKEN_FIELDS]],
        first: usize,
        extra: &'a [f32],
    },
}

/// `y = x W + b` for the `m` rows of `x` `[m, inner]` into `y` `[m, out]` (one matrix product
/// beyond a single row).
#[inline(always)]
pub(crate) fn linear(l: &LinearWeights, x: &[f32], m: usize, y: &mut [f32]) {
    let (k, n) = (l.inner(), l.out);
    if m == 1 {
        let y = &mut y[..n];
        y.copy_from_slice(&l.bias);
        for (xi, row) in x[..k].iter().zip(l.weight.chunks_exact(n)) {
            for (yj, wj) in y.iter_mut().zip(row) {
                *yj += xi * wj;
            }
        }
        return;
    }
    let rhs = Strided::rows(&l.weight, n);
    matmul(
        m,
        n,
        k,
        y,
        n,
        Start::Bias(&l.bias),
        Strided::rows(x, k),
        rhs,
    );
}

/// `y = (x − mean) / sqrt(var + ε) · γ + β` (population variance, as burn's op).
#[inline(always)]
pub(crate) fn norm<const FUSED: bool>(n: &NormWeights, epsilon: f32, x: &[f32], y: &mut [f32]) {
    let len = x.len();
    let (mean, var) = mean_and_variance::<FUSED>(x);
    let inv = 1.0 / (var + epsilon).sqrt();
    let (y, gamma, beta) = (&mut y[..len], &n.gamma[..len], &n.beta[..len]);
    for i in 0..len {
        y[i] = mul_add::<FUSED>((x[i] - mean) * inv, gamma[i], beta[i]);
    }
}

/// The buffers [`attend`] works in (see [`Workspace`]).
struct AttentionScratch<'a> {
    scores: &'a mut Vec<f32>,
    keys_transposed: &'a mut Vec<f32>,
}

/// Causal multi-head attention of the `nq` query rows `q` `[nq, d]`, at positions
/// `pos0..pos0 + nq`, over the keys and values of positions `0..pos0 + nq`, into `context`
/// `[nq, d]`. Query rows go in blocks; each block multiplies only the keys its rows may see,
/// and its softmax runs over each row's visible prefix only. With several query rows, each
/// head's keys are first transposed (`[hd, keys]`), so that both products read row-major
/// operands.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend<const FUSED: bool>(
    model: &ServingModel,
    q: &[f32],
    nq: usize,
    pos0: usize,
    keys: &[f32],
    values: &[f32],
    context: &mut [f32],
    scratch: AttentionScratch<'_>,
) {
    const BLOCK: usize = 12;
    // Up to this many query rows, each score is a dot product of a query and a key row:
    // cheaper than transposing every key once for a product.
    const DOT_ROWS: usize = 16;
    let d = model.d_model;
    let hd = model.head_dim();
    let scale = 1.0 / (hd as f32).sqrt();
    let all = pos0 + nq;
    let by_dots = nq <= DOT_ROWS;
    let p = sized(scratch.scores, BLOCK.min(nq) * all);
    let transposed = sized(scratch.keys_transposed, if by_dots { 0 } else { hd * all });
    let mut inverse_sums = [0f32; BLOCK];
    for c0 in (0..model.n_heads).map(|h| h * hd) {
        if !by_dots {
            transpose(all, hd, &keys[c0..], d, transposed, all);
        }
        for b0 in (0..nq).step_by(BLOCK) {
            let rows = BLOCK.min(nq - b0);
            let nk = pos0 + b0 + rows;
            // p[rows, nk] = q_block · keysᵀ (this head's columns); a row's keys past its
            // own position are masked below.
            if by_dots {
                for (r, row) in p.chunks_exact_mut(nk).take(rows).enumerate() {
                    let query = &q[(b0 + r) * d + c0..][..hd];
                    let visible = pos0 + b0 + r + 1;
                    for (s, key) in row.iter_mut().zip(keys.chunks_exact(d).take(visible)) {
                        *s = dot::<FUSED>(query, &key[c0..c0 + hd]);
                    }
                }
            } else {
                let lhs = Strided::rows(&q[b0 * d + c0..], d);
                let rhs = Strided::rows(transposed, all);
                matmul(rows, nk, hd, p, nk, Start::Zero, lhs, rhs);
            }
            for (r, row) in p.chunks_exact_mut(nk).take(rows).enumerate() {
                inverse_sums[r] = softmax_unnormalised::<FUSED>(row, pos0 + b0 + r + 1, scale);
            }
            // context_block[rows, hd] = softmax(p) · values (this head's columns): the
            // product of the unnormalised rows, each scaled by its row's 1 / Σ.
            let (lhs, rhs) = (Strided::rows(p, nk), Strided::rows(&values[c0..], d));
            let out = &mut context[b0 * d + c0..];
            matmul(rows, hd, nk, out, d, Start::Zero, lhs, rhs);
            for (row, inv) in out.chunks_mut(d).zip(&inverse_sums[..rows]) {
                for v in &mut row[..hd] {
                    *v *= inv;
                }
            }
        }
    }
}

/// The buffers [`attend_absorbed`] works in (see [`Workspace`]).
struct AbsorbedScratch<'a> {
    scores: &'a mut Vec<f32>,
    vectors: &'a mut Vec<f32>,
}

/// Causal multi-head attention of the last of `m` positions over all of them, from the
/// positions' normed rows `normed` `[m, d]` and the last one's query `q` `[d]`, into
/// `context` `[d]`, without projecting a key or a value.
///
/// Per head, with `Wk`, `Wv` the head's columns of the key and value weights: the score
/// `q · (Wkᵀ nⱼ + bk)` is `(Wk q) · nⱼ` plus `q · bk`, the same for every position (so the
/// softmax removes it), and, the weights `pⱼ` summing to 1, `Σⱼ pⱼ (Wvᵀ nⱼ + bv)` is
/// `Wvᵀ (Σⱼ pⱼ nⱼ) + bv`. That costs `4·m·d` per head and `2·d²` in all, where projecting
/// every key and value costs `4·m·d²`.
#[inline(always)]
fn attend_absorbed<const FUSED: bool>(
    model: &ServingModel,
    split: &SplitProjections,
    q: &[f32],
    normed: &[f32],
    context: &mut [f32],
    scratch: AbsorbedScratch<'_>,
) {
    let d = model.d_model;
    let hd = model.head_dim();
    let m = normed.len() / d;
    let scale = 1.0 / (hd as f32).sqrt();
    let scores = sized(scratch.scores, m);
    let (query, summed) = sized(scratch.vectors, 2 * d).split_at_mut(d);
    for c0 in (0..model.n_heads).map(|h| h * hd) {
        let head = c0..c0 + hd;
        // The head's query through the keys' weights: `query[c] = Σᵢ Wk[c, i] q[i]`.
        for (out, row) in query.iter_mut().zip(split.key.weight.chunks_exact(d)) {
            *out = dot::<FUSED>(&row[head.clone()], &q[head.clone()]);
        }
        for (s, row) in scores.iter_mut().zip(normed.chunks_exact(d)) {
            *s = dot::<FUSED>(query, row);
        }
        let inverse_sum = softmax_unnormalised::<FUSED>(scores, m, scale);
        summed.fill(0.0);
        for (&p, row) in scores.iter().zip(normed.chunks_exact(d)) {
            for (a, &v) in summed.iter_mut().zip(row) {
                *a = mul_add::<FUSED>(p, v, *a);
            }
        }
        // The head's context: `bv + Σ_c summed[c] Wv[c, ·] / Σ p`.
        let out = &mut context[head.clone()];
        out.copy_from_slice(&split.value.bias[head.clone()]);
        for (&a, row) in summed.iter().zip(split.value.weight.chunks_exact(d)) {
            let a = a * inverse_sum;
            for (o, &w) in out.iter_mut().zip(&row[head.clone()]) {
                *o = mul_add::<FUSED>(a, w, *o);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::math::max_diff;
    use super::*;
    use burn::tensor::{Device, Tensor, TensorData};

    use crate::model::{FoundationModel, FoundationModelConfig};

    fn engine(model: &FoundationModel) -> CpuEngine {
        CpuEngine::new(Arc::new(ServingModel::from_model(
            model,
            &model.token_tables(),
        )))
    }

    fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().expect("float tensor")
    }
    use crate::data::synthetic::{SyntheticWorld, SyntheticWorldConfig};
    use crate::tokenizer::{Context, TokenBatch, TokenSequence};

    /// A small synthetic world of `members` members, `titles` titles and `days` days.
    fn world(members: usize, titles: usize, days: u32) -> SyntheticWorld {
        SyntheticWorld::generate(&SyntheticWorldConfig {
            members,
            titles,
            days,
            ..Default::default()
        })
    }

    /// A member's serving tokens (about 30) from a small synthetic world.
    fn tokens(world: &SyntheticWorld, max_len: usize) -> TokenSequence {
        let member = world.events[0].member;
        let history: Vec<_> = world
            .events
            .iter()
            .filter(|e| e.member == member)
            .take(max_len - 1)
            .cloned()
            .collect();
        let request = Context::of(history.last().expect("events"));
        EventTokenizer::new(max_len)
            .serving_sequence(world.catalog.vocabulary(), &history, &request)
            .expect("known items")
    }

    use crate::tokenizer::EventTokenizer;

    /// Caches the first `cached` tokens of `seq` with burn, then runs `step` more through burn
    /// and through the host step; asserts that the user vectors and the caches agree to 1e-4.
    /// Returns the host cache afterwards.
    fn compare_step(
        model: &FoundationModel,
        config: &FoundationModelConfig,
        seq: &TokenSequence,
        cached: usize,
        step: usize,
    ) -> CpuKvCache {
        let device = Device::flex();
        let tables = model.token_tables();
        let host = CpuEngine::new(Arc::new(ServingModel::from_model(model, &tables)));
        let mut device_cache = KvCache::new(config.n_layers);
        let mut host_cache = host.empty_cache();
        if cached > 0 {
            let head = TokenBatch::new(&[seq.slice(0..cached)], &device);
            model.forward(&head, &tables, Some(&mut device_cache), true);
            host_cache = host.cache_from_device(&device_cache);
        }
        assert_eq!(host_cache.len(), cached);
        let next = seq.slice(cached..cached + step);
        let batch = TokenBatch::new(std::slice::from_ref(&next), &device);
        let expected = host_values(model.forward(&batch, &tables, Some(&mut device_cache), true));
        let fields = next.field_rows();
        let ours = host.step(&fields, &mut host_cache);
        let what = format!(
            "d {}, {} heads, {cached} cached + {step}",
            config.d_model, config.n_heads
        );
        let diff = max_diff(&ours, &expected);
        assert!(diff < 1e-4, "{what}: user vectors differ by {diff}");
        // Both caches now hold the same keys and values.
        let from_burn = host.cache_from_device(&device_cache);
        assert_eq!(host_cache.len(), cached + step, "{what}");
        let used = (cached + step) * config.d_model;
        for ((k, v), (k2, v2)) in host_cache.layers.iter().zip(&from_burn.layers) {
            assert!(max_diff(&k[..used], &k2[..used]) < 1e-4, "{what}: keys");
            assert!(max_diff(&v[..used], &v2[..used]) < 1e-4, "{what}: values");
        }
        host_cache
    }

    /// The host step against burn's incremental forward, for widths, heads, context and
    /// scale on and off, steps of 1 to 3 tokens after caches of 1 to 20 tokens.
    #[test]
    fn step_matches_the_burn_forward() {
        let device = Device::flex();
        let world = world(3, 40, 30);
        for (d, heads, context, scale) in [
            (16, 1, true, true),
            (32, 4, true, false),
            (24, 3, false, true),
        ] {
            let config = FoundationModelConfig::new(world.catalog.len())
                .with_d_model(d)
                .with_n_heads(heads)
                .with_n_layers(2)
                .with_d_ff(40)
                .with_max_len(32)
                .with_context_features(context)
                .with_scale_embedding(scale)
                .with_dropout(0.0);
            let model = config.init(&device);
            let seq = tokens(&world, 32);
            assert!(seq.len() > 24, "{} tokens", seq.len());
            for (cached, step) in [(1, 1), (5, 2), (20, 3)] {
                let host_cache = compare_step(&model, &config, &seq, cached, step);
                // And the round trip to the device keeps them.
                let back = CpuKvCache::from_device(
                    &host_cache.to_device(heads, &device),
                    d,
                    host_cache.room(),
                );
                assert_eq!(back.len(), cached + step);
                assert_eq!(back.layers, host_cache.layers, "d {d}: device round trip");
            }
        }
    }

    /// One engine serving long and short windows in turn (its work buffers reused, grown and
    /// not cleared) gives bit for bit what a fresh engine gives for each.
    #[test]
    fn reused_work_buffers_change_no_result() {
        let world = world(2, 60, 200);
        let config = FoundationModelConfig::new(world.catalog.len())
            .with_d_model(24)
            .with_n_heads(2)
            .with_n_layers(2)
            .with_max_len(120)
            .with_dropout(0.0);
        let model = config.init(&Device::flex());
        let fields = tokens(&world, 120).field_rows();
        assert!(fields.len() > 100, "{} tokens", fields.len());
        let (long, short) = (&fields[..], &fields[fields.len() - 5..]);
        let shared = engine(&model);
        let fresh = |t: &[[i64; TOKEN_FIELDS]]| engine(&model).encode(t);
        let (first_long, first_short) = (shared.encode(long), shared.encode(short));
        let again = shared.encode(long);
        assert_eq!(first_long, fresh(long));
        assert_eq!(first_short, fresh(short));
        assert_eq!(again, first_long);
        assert_ne!(first_long, first_short);
    }

    /// Whole windows and long steps (several query blocks, lengths not a multiple of a
    /// block) against burn's forward, from an empty cache and after cached tokens.
    #[test]
    fn long_steps_match_the_burn_forward() {
        let device = Device::flex();
        let world = world(2, 60, 200);
        let max_len = 120;
        let seq = tokens(&world, max_len);
        assert!(seq.len() > 100, "{} tokens", seq.len());
        for (heads, cached, step) in [(2, 0, seq.len()), (1, 0, 33), (4, 7, 70), (2, 64, 1)] {
            let config = FoundationModelConfig::new(world.catalog.len())
                .with_d_model(32)
                .with_n_heads(heads)
                .with_n_layers(2)
                .with_d_ff(48)
                .with_max_len(max_len)
                .with_dropout(0.0);
            compare_step(&config.init(&device), &config, &seq, cached, step);
        }
    }

    /// Stateless forwards (the last layer's attention without keys or values, see
    /// `attend_absorbed`) against burn's forward and against a step into a kept cache, for
    /// one to four heads, one and two layers, windows of 1 to 40 tokens.
    #[test]
    fn stateless_forwards_match_the_burn_forward() {
        let device = Device::flex();
        let world = world(2, 60, 200);
        let seq = tokens(&world, 64);
        let mut cases = 0;
        for (heads, layers) in [(1, 1), (2, 1), (4, 2), (1, 2)] {
            let config = FoundationModelConfig::new(world.catalog.len())
                .with_d_model(24)
                .with_n_heads(heads)
                .with_n_layers(layers)
                .with_d_ff(40)
                .with_max_len(64)
                .with_dropout(0.0);
            let model = config.init(&device);
            let host = engine(&model);
            let tables = model.token_tables();
            for len in [1, 7, 40] {
                let window = seq.slice(0..len);
                let batch = TokenBatch::new(std::slice::from_ref(&window), &device);
                let expected = host_values(model.forward(&batch, &tables, None, true));
                let fields = window.field_rows();
                let ours = host.encode(&fields);
                let what = format!("{heads} heads, {layers} layers, {len} tokens");
                let diff = max_diff(&ours, &expected);
                assert!(diff < 1e-4, "{what}: differs from burn by {diff}");
                let mut kept = host.empty_cache();
                let stepped = host.step(&fields, &mut kept);
                let diff = max_diff(&ours, &stepped);
                assert!(diff < 1e-5, "{what}: differs from a step by {diff}");
                assert_eq!(kept.len(), len, "{what}");
                // The engine's own cache is left empty, so the next forward starts afresh.
                assert_eq!(host.encode(&fields), ours, "{what}: a second forward");
                cases += 1;
            }
        }
        assert_eq!(cases, 12);
    }

    #[test]
    fn scores_are_dot_products_with_the_item_rows() {
        let device = Device::flex();
        let config = FoundationModelConfig::new(6)
            .with_d_model(8)
            .with_n_heads(2);
        let model = config.init(&device);
        let host = engine(&model);
        let user: Vec<f32> = (0..8).map(|i| i as f32 * 0.25 - 1.0).collect();
        let rows = [4i64, 0, 5];
        let expected = host_values(model.candidate_scores(
            Tensor::<1>::from_data(TensorData::new(user.clone(), [8]), &device),
            Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(rows.to_vec(), [3]), &device),
        ));
        assert!(max_diff(&host.scores(&user, &rows), &expected) < 1e-5);
    }

    #[test]
    #[should_panic(expected = "exceed the window")]
    fn a_step_past_the_window_is_refused() {
        let config = FoundationModelConfig::new(6)
            .with_d_model(8)
            .with_max_len(2);
        let host = engine(&config.init(&Device::flex()));
        let mut cache = host.empty_cache();
        host.step(&[[0; TOKEN_FIELDS]; 3], &mut cache);
    }
}
