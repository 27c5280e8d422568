//! The serving model in host memory and a fused CPU forward over new tokens.
//!
//! On the CPU backend, a rerank through burn runs about 80 ops, each paying allocation and
//! dispatch, and burn's attention computes (and masks) the whole square of a causal window.
//! [`HostModel::step`] does the same arithmetic (embedding, every layer with its cached keys
//! and values, layer mix, final norm) over plain slices on one thread: matrix products for
//! the projections, causal attention over each query's visible keys only, vectorisable `exp`
//! and `erf`; [`HostModel::scores`] gathers and scores the candidates in place. One step
//! serves a whole window (a stateless rerank) and one appended event (a session) alike.
//! Tests hold it to burn's forward within 1e-4.

use std::sync::Mutex;

use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor, TensorData, activation};

use crate::model::{
    FoundationModel, FoundationModelConfig, KvCache, LAYER_NORM_EPSILON, TokenTables,
};
use crate::tokenizer::{ITEM_OFFSET, TOKEN_FIELDS};

/// A linear layer's weight `[in, out]` (row-major, as burn stores it) and bias `[out]`.
#[derive(Debug, Clone)]
struct HostLinear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    out: usize,
}

impl HostLinear {
    fn of(l: &Linear) -> Self {
        let [_, out] = l.weight.val().dims();
        Self {
            weight: host_values(l.weight.val()),
            bias: l
                .bias
                .as_ref()
                .map_or_else(|| vec![0.0; out], |b| host_values(b.val())),
            out,
        }
    }

    /// One layer computing `a` and `b` of the same input side by side: `[y_a, y_b]`.
    fn side_by_side(a: Self, b: Self) -> Self {
        let rows = a
            .weight
            .chunks_exact(a.out)
            .zip(b.weight.chunks_exact(b.out));
        Self {
            weight: rows
                .flat_map(|(ra, rb)| ra.iter().chain(rb))
                .copied()
                .collect(),
            bias: a.bias.into_iter().chain(b.bias).collect(),
            out: a.out + b.out,
        }
    }

    /// `y = x W + b` for one row `x`.
    fn apply(&self, x: &[f32], y: &mut [f32]) {
        y.copy_from_slice(&self.bias);
        for (xi, row) in x.iter().zip(self.weight.chunks_exact(self.out)) {
            for (yj, wj) in y.iter_mut().zip(row) {
                *yj += xi * wj;
            }
        }
    }

    /// `y = x W + b` for the `m` rows of `x` `[m, in]` into `y` `[m, out]` (one matrix
    /// product beyond a single row).
    fn apply_rows(&self, x: &[f32], m: usize, y: &mut [f32]) {
        let k = self.weight.len() / self.out;
        if m == 1 {
            return self.apply(&x[..k], &mut y[..self.out]);
        }
        for row in y[..m * self.out].chunks_exact_mut(self.out) {
            row.copy_from_slice(&self.bias);
        }
        let rhs = Strided::rows(&self.weight, self.out);
        matmul(m, self.out, k, y, self.out, true, Strided::rows(x, k), rhs);
    }
}

/// A layer norm's scale and shift.
#[derive(Debug, Clone)]
struct HostNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl HostNorm {
    fn of(n: &LayerNorm) -> Self {
        let gamma = host_values(n.gamma.val());
        let beta = n
            .beta
            .as_ref()
            .map_or_else(|| vec![0.0; gamma.len()], |b| host_values(b.val()));
        Self { gamma, beta }
    }

    /// `y = (x − mean) / sqrt(var + ε) · γ + β` (population variance, as burn's op).
    fn apply(&self, x: &[f32], y: &mut [f32]) {
        let n = x.len() as f32;
        let mean = sum(x) / n;
        let var = squared_deviations(x, mean) / n;
        let inv = 1.0 / (var + LAYER_NORM_EPSILON as f32).sqrt();
        for (((yi, xi), g), b) in y.iter_mut().zip(x).zip(&self.gamma).zip(&self.beta) {
            *yi = (xi - mean) * inv * g + b;
        }
    }
}

/// One transformer layer's weights.
#[derive(Debug, Clone)]
struct HostLayer {
    norm_attn: HostNorm,
    query: HostLinear,
    /// Keys and values side by side (one matrix product for both).
    key_value: HostLinear,
    output: HostLinear,
    norm_ff: HostNorm,
    ff_in: HostLinear,
    ff_out: HostLinear,
}

/// Every layer's keys and values of the tokens encoded so far, each `[len, d_model]` (heads
/// side by side), in buffers allocated (and touched) once for a whole window, so that an
/// append writes in place: no reallocation, no copy, no page fault.
#[derive(Debug, Clone, Default)]
pub struct HostKvCache {
    /// Per layer: keys and values, `[room, d_model]` each; the first `len` rows are in use.
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    d_model: usize,
    len: usize,
}

impl HostKvCache {
    /// An empty cache of `layers` layers of width `d_model`, with room for `room` tokens.
    pub fn new(layers: usize, d_model: usize, room: usize) -> Self {
        Self {
            layers: vec![(vec![0.0; room * d_model], vec![0.0; room * d_model]); layers],
            d_model,
            len: 0,
        }
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens the buffers have room for.
    pub fn room(&self) -> usize {
        self.layers
            .first()
            .map_or(0, |(k, _)| k.len() / self.d_model.max(1))
    }

    /// Keeps the first `len` tokens.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Reads a device cache back (`[1, heads, len, head_dim]` per layer → `[len, d_model]`)
    /// into buffers with room for `room` tokens.
    ///
    /// # Panics
    /// If the device cache holds more than `room` tokens.
    pub fn from_device(cache: &KvCache, d_model: usize, room: usize) -> Self {
        let mut host = Self::new(cache.layers.len(), d_model, room);
        host.len = cache.len();
        assert!(
            host.len <= room,
            "{} cached tokens, room for {room}",
            host.len
        );
        for (layer, (keys, values)) in cache.layers.iter().zip(&mut host.layers) {
            if let Some((k, v)) = layer.keys_values() {
                let [_, h, n, hd] = k.dims();
                let rows = |t: Tensor<4>| host_values(t.swap_dims(1, 2).reshape([n * h * hd]));
                keys[..n * d_model].copy_from_slice(&rows(k));
                values[..n * d_model].copy_from_slice(&rows(v));
            }
        }
        host
    }

    /// Uploads the cache to `device` as a [`KvCache`] of `heads`-headed layers.
    pub fn to_device(&self, heads: usize, device: &Device) -> KvCache {
        let mut cache = KvCache::new(self.layers.len());
        let n = self.len();
        if n == 0 {
            return cache;
        }
        let hd = self.d_model / heads;
        let used = n * self.d_model;
        for ((k, v), layer) in self.layers.iter().zip(&mut cache.layers) {
            let up = |rows: &[f32]| {
                Tensor::<3>::from_data(
                    TensorData::new(rows[..used].to_vec(), [1, n, self.d_model]),
                    device,
                )
                .reshape([1, n, heads, hd])
                .swap_dims(1, 2)
            };
            layer.append(up(k), up(v));
        }
        cache
    }
}

/// The weights a serving step reads, copied once from a CPU model.
#[derive(Debug)]
pub struct HostModel {
    /// A cache reused by stateless forwards ([`HostModel::encode`]), so that they neither
    /// allocate nor page-fault; a concurrent caller that finds it busy allocates its own.
    scratch: Mutex<HostKvCache>,
    d_model: usize,
    heads: usize,
    /// The window (tokens).
    max_len: usize,
    /// Stacked token tables `[rows, d]` and each field's first row (see `TokenTables`); the
    /// item slot table comes first, so its rows are also the candidates' vectors.
    table: Vec<f32>,
    offsets: Vec<usize>,
    /// Position table `[max_len, d]`.
    position: Vec<f32>,
    input_scale: f32,
    layers: Vec<HostLayer>,
    /// softmax(layer_mix): the weight of the embedding output and of each layer's output.
    mix: Vec<f32>,
    norm: HostNorm,
}

impl HostModel {
    /// Copies the serving weights of `model` (an exported or encoder-less model) and its
    /// stacked token `tables` ([`FoundationModel::token_tables`]).
    pub fn new(
        model: &FoundationModel,
        config: &FoundationModelConfig,
        tables: &TokenTables,
    ) -> Self {
        let offsets: Vec<usize> = tables
            .offsets
            .clone()
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("offsets are integers")
            .into_iter()
            .map(|o| o as usize)
            .collect();
        let d = config.d_model;
        Self {
            scratch: Mutex::new(HostKvCache::new(config.n_layers, d, config.max_len)),
            d_model: d,
            heads: config.n_heads,
            max_len: config.max_len,
            table: host_values(tables.table.clone()),
            offsets,
            position: host_values(model.embedding.position.weight.val()),
            input_scale: model.embedding.input_scale(d),
            layers: model
                .blocks
                .iter()
                .map(|b| HostLayer {
                    norm_attn: HostNorm::of(&b.norm_attn),
                    query: HostLinear::of(&b.attention.query),
                    key_value: HostLinear::side_by_side(
                        HostLinear::of(&b.attention.key),
                        HostLinear::of(&b.attention.value),
                    ),
                    output: HostLinear::of(&b.attention.output),
                    norm_ff: HostNorm::of(&b.norm_ff),
                    ff_in: HostLinear::of(&b.ff_in),
                    ff_out: HostLinear::of(&b.ff_out),
                })
                .collect(),
            mix: host_values(activation::softmax(model.layer_mix.val(), 0)),
            norm: HostNorm::of(&model.norm),
        }
    }

    /// An empty cache for this model.
    pub fn empty_cache(&self) -> HostKvCache {
        HostKvCache::new(self.layers.len(), self.d_model, self.max_len)
    }

    /// The user representation `[d_model]` after `tokens` alone (a stateless forward).
    ///
    /// # Panics
    /// If `tokens` is empty or longer than the window.
    pub fn encode(&self, tokens: &[[i64; TOKEN_FIELDS]]) -> Vec<f32> {
        match self.scratch.try_lock() {
            Ok(mut cache) => {
                cache.truncate(0);
                self.step(tokens, &mut cache)
            }
            Err(_) => self.step(tokens, &mut self.empty_cache()),
        }
    }

    /// A device cache of this model read back into host memory, with room for a window.
    pub fn cache_from_device(&self, cache: &KvCache) -> HostKvCache {
        HostKvCache::from_device(cache, self.d_model, self.max_len)
    }

    /// The user representation `[d_model]` after `tokens` (each its [`TOKEN_FIELDS`] input
    /// fields) that follow the tokens in `cache`, whose keys and values are appended to it.
    /// Equal to `FoundationModel::user_state_incremental`; a whole window (empty cache) costs
    /// a few matrix products per layer, one new token a few vector products.
    ///
    /// # Panics
    /// If `tokens` is empty or reaches past the position table.
    pub fn step(&self, tokens: &[[i64; TOKEN_FIELDS]], cache: &mut HostKvCache) -> Vec<f32> {
        let d = self.d_model;
        let m = tokens.len();
        assert!(m > 0, "a step needs at least one token");
        let first = cache.len();
        assert!(
            first + m <= cache.room(),
            "{first} cached + {m} new tokens exceed the window of {}",
            cache.room()
        );
        let mut x = self.embed_at(tokens, first);
        let mut mixed: Vec<f32> = x[(m - 1) * d..].iter().map(|v| v * self.mix[0]).collect();
        let n_layers = self.layers.len();
        let mut normed = vec![0f32; m * d];
        for (l, (layer, (keys, values))) in self.layers.iter().zip(&mut cache.layers).enumerate() {
            // Every new token's keys and values join the cache.
            for (row, n) in x.chunks_exact(d).zip(normed.chunks_exact_mut(d)) {
                layer.norm_attn.apply(row, n);
            }
            let new = first * d..(first + m) * d;
            let mut kv = vec![0f32; m * 2 * d];
            layer.key_value.apply_rows(&normed, m, &mut kv);
            let rows = keys[new.clone()]
                .chunks_exact_mut(d)
                .zip(values[new].chunks_exact_mut(d));
            for ((k, v), both) in rows.zip(kv.chunks_exact(2 * d)) {
                k.copy_from_slice(&both[..d]);
                v.copy_from_slice(&both[d..]);
            }
            // The last layer's output is needed at the last token only.
            let q0 = if l + 1 == n_layers { m - 1 } else { 0 };
            let nq = m - q0;
            let mut buf = vec![0f32; nq * d];
            layer.query.apply_rows(&normed[q0 * d..], nq, &mut buf);
            let ctx = self.attend(&buf, nq, first + q0, keys, values);
            layer.output.apply_rows(&ctx, nq, &mut buf);
            let mut h = x.split_off(q0 * d);
            add_to(&mut h, &buf);
            for (row, n) in h.chunks_exact(d).zip(normed.chunks_exact_mut(d)) {
                layer.norm_ff.apply(row, n);
            }
            let mut hidden = vec![0f32; nq * layer.ff_in.out];
            layer.ff_in.apply_rows(&normed, nq, &mut hidden);
            gelu_in_place(&mut hidden);
            layer.ff_out.apply_rows(&hidden, nq, &mut buf);
            add_to(&mut h, &buf);
            x = h;
            let last = &x[x.len() - d..];
            for (mx, v) in mixed.iter_mut().zip(last) {
                *mx += self.mix[l + 1] * v;
            }
        }
        cache.len = first + m;
        let mut user = vec![0f32; d];
        self.norm.apply(&mixed, &mut user);
        user
    }

    /// The embedded `tokens` `[m, d]` at positions `first..first + m`: the stacked tables'
    /// rows summed, scaled, plus the position.
    fn embed_at(&self, tokens: &[[i64; TOKEN_FIELDS]], first: usize) -> Vec<f32> {
        let d = self.d_model;
        let mut x = vec![0f32; tokens.len() * d];
        for (t, (fields, row)) in tokens.iter().zip(x.chunks_exact_mut(d)).enumerate() {
            for (&f, &offset) in fields.iter().zip(&self.offsets) {
                let at = (f as usize + offset) * d;
                add_to(row, &self.table[at..at + d]);
            }
            let at = (first + t) * d;
            for (r, p) in row.iter_mut().zip(&self.position[at..at + d]) {
                *r = *r * self.input_scale + p;
            }
        }
        x
    }

    /// The embedded window `tokens` `[m, d]` (positions from 0): the input of a stateless
    /// forward on the WGSL transformer.
    ///
    /// # Panics
    /// If `tokens` is longer than the window.
    pub fn embed(&self, tokens: &[[i64; TOKEN_FIELDS]]) -> Vec<f32> {
        assert!(
            tokens.len() <= self.max_len,
            "{} tokens exceed the window",
            tokens.len()
        );
        self.embed_at(tokens, 0)
    }

    /// These weights for the WGSL transformer (everything after the embedding).
    #[cfg(feature = "wgsl-transformer")]
    pub fn transformer_weights(&self) -> encore_shaders::transformer::TransformerWeights {
        use encore_shaders::transformer as t;
        let linear = |l: &HostLinear| t::LinearWeights {
            weight: l.weight.clone(),
            bias: l.bias.clone(),
            out: l.out,
        };
        let norm = |n: &HostNorm| t::NormWeights {
            gamma: n.gamma.clone(),
            beta: n.beta.clone(),
        };
        let d = self.d_model;
        let items_at = ITEM_OFFSET as usize * d;
        // The item slot's rows end where the next field's table starts.
        let items_end = self.offsets.get(1).map_or(self.table.len(), |&o| o * d);
        t::TransformerWeights {
            d_model: d,
            heads: self.heads,
            max_len: self.max_len,
            epsilon: LAYER_NORM_EPSILON as f32,
            layers: self
                .layers
                .iter()
                .map(|l| t::LayerWeights {
                    norm_attn: norm(&l.norm_attn),
                    query_key_value: linear(&HostLinear::side_by_side(
                        l.query.clone(),
                        l.key_value.clone(),
                    )),
                    output: linear(&l.output),
                    norm_ff: norm(&l.norm_ff),
                    ff_in: linear(&l.ff_in),
                    ff_out: linear(&l.ff_out),
                })
                .collect(),
            mix: self.mix.clone(),
            norm: norm(&self.norm),
            items: self.table[items_at..items_end].to_vec(),
        }
    }

    /// Causal multi-head attention of the `nq` query rows `q` `[nq, d]`, at positions
    /// `pos0..pos0 + nq`, over the keys and values of positions `0..pos0 + nq`: `[nq, d]`.
    /// Query rows go in blocks; each block multiplies only the keys its rows may see, and its
    /// softmax runs over each row's visible prefix only.
    fn attend(&self, q: &[f32], nq: usize, pos0: usize, keys: &[f32], values: &[f32]) -> Vec<f32> {
        const BLOCK: usize = 32;
        let d = self.d_model;
        let hd = d / self.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut ctx = vec![0f32; nq * d];
        let mut p = vec![0f32; BLOCK.min(nq) * (pos0 + nq)];
        for c0 in (0..self.heads).map(|h| h * hd) {
            for b0 in (0..nq).step_by(BLOCK) {
                let rows = BLOCK.min(nq - b0);
                let nk = pos0 + b0 + rows;
                // p[rows, nk] = q_block · keysᵀ (this head's columns)
                let lhs = Strided::rows(&q[b0 * d + c0..], d);
                matmul(
                    rows,
                    nk,
                    hd,
                    &mut p,
                    nk,
                    false,
                    lhs,
                    Strided::columns(&keys[c0..], d),
                );
                for (r, row) in p.chunks_exact_mut(nk).take(rows).enumerate() {
                    softmax_prefix(row, pos0 + b0 + r + 1, scale);
                }
                // ctx_block[rows, hd] = p · values (this head's columns)
                let (lhs, rhs) = (Strided::rows(&p, nk), Strided::rows(&values[c0..], d));
                matmul(rows, hd, nk, &mut ctx[b0 * d + c0..], d, false, lhs, rhs);
            }
        }
        ctx
    }

    /// Scores of candidates given as dense item indices: `user · item vector` each.
    pub fn scores(&self, user: &[f32], candidates: &[i64]) -> Vec<f32> {
        let d = self.d_model;
        candidates
            .iter()
            .map(|&c| {
                let at = (c as usize + ITEM_OFFSET as usize) * d;
                dot(user, &self.table[at..at + d])
            })
            .collect()
    }
}

/// A float tensor's values in host memory.
fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensor")
}

fn add_to(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Dot product with eight independent partial sums, so that the compiler vectorises it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
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
struct Strided<'a> {
    values: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Strided<'a> {
    /// Row-major rows `row_stride` apart.
    fn rows(values: &'a [f32], row_stride: usize) -> Self {
        Self {
            values,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose of row-major rows `row_stride` apart.
    fn columns(values: &'a [f32], row_stride: usize) -> Self {
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
fn matmul(
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
fn softmax_prefix(row: &mut [f32], n: usize, scale: f32) {
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
fn squared_deviations(a: &[f32], mean: f32) -> f32 {
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
fn sum(a: &[f32]) -> f32 {
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
fn gelu_in_place(xs: &mut [f32]) {
    for x in xs {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{SyntheticWorld, SyntheticWorldConfig};
    use crate::tokenizer::{Context, TokenBatch, TokenSequence};

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

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
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
    ) -> HostKvCache {
        let device = Device::flex();
        let tables = model.token_tables();
        let host = HostModel::new(model, config, &tables);
        let mut device_cache = KvCache::new(config.n_layers);
        let mut host_cache = host.empty_cache();
        if cached > 0 {
            let head = TokenBatch::new(&[seq.tokens(0..cached)], &device);
            model.user_state_incremental(&head, &tables, &mut device_cache);
            host_cache = host.cache_from_device(&device_cache);
        }
        assert_eq!(host_cache.len(), cached);
        let next = seq.tokens(cached..cached + step);
        let batch = TokenBatch::new(std::slice::from_ref(&next), &device);
        let expected =
            host_values(model.user_state_incremental(&batch, &tables, &mut device_cache));
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
        let world = SyntheticWorld::generate(&SyntheticWorldConfig {
            members: 3,
            titles: 40,
            days: 30,
            ..Default::default()
        });
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
                let back = HostKvCache::from_device(&host_cache.to_device(heads, &device), d, 32);
                assert_eq!(back.len(), cached + step);
                assert_eq!(back.layers, host_cache.layers, "d {d}: device round trip");
            }
        }
    }

    /// Whole windows and long steps (several query blocks, lengths not a multiple of a
    /// block) against burn's forward, from an empty cache and after cached tokens.
    #[test]
    fn long_steps_match_the_burn_forward() {
        let device = Device::flex();
        let world = SyntheticWorld::generate(&SyntheticWorldConfig {
            members: 2,
            titles: 60,
            days: 200,
            ..Default::default()
        });
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

    #[test]
    fn scores_are_dot_products_with_the_item_rows() {
        let device = Device::flex();
        let config = FoundationModelConfig::new(6)
            .with_d_model(8)
            .with_n_heads(2);
        let model = config.init(&device);
        let host = HostModel::new(&model, &config, &model.token_tables());
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
        let host = {
            let model = config.init(&Device::flex());
            HostModel::new(&model, &config, &model.token_tables())
        };
        let mut cache = host.empty_cache();
        host.step(&[[0; TOKEN_FIELDS]; 3], &mut cache);
    }
}
