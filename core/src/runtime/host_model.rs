//! The serving model in host memory and a fused CPU step over a few new tokens.
//!
//! On the CPU backend, appending one event to a [`super::MemberSession`] used to run about 80
//! burn ops on one or two tokens, each paying allocation and dispatch for a few thousand
//! multiply-adds. [`HostModel::step`] does the same arithmetic (embedding, every layer with
//! its cached keys and values, layer mix, final norm) as one loop nest over plain slices, and
//! [`HostModel::scores`] gathers and scores the candidates in place. Whole windows are still
//! encoded by burn (its matrix kernels win there); their keys and values then move into a
//! [`HostKvCache`]. Tests hold the two paths to 1e-4.

use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor, TensorData, activation};

use crate::model::{
    FoundationModel, FoundationModelConfig, KvCache, LAYER_NORM_EPSILON, TokenTables,
};
use crate::tokenizer::{ITEM_OFFSET, TOKEN_FIELDS};

/// Most new tokens one [`HostModel::step`] takes; longer runs go through burn's kernels.
pub const HOST_STEP_MAX_TOKENS: usize = 16;

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

    /// `y = x W + b` for one row `x`.
    fn apply(&self, x: &[f32], y: &mut [f32]) {
        y.copy_from_slice(&self.bias);
        for (xi, row) in x.iter().zip(self.weight.chunks_exact(self.out)) {
            for (yj, wj) in y.iter_mut().zip(row) {
                *yj += xi * wj;
            }
        }
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
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
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
    key: HostLinear,
    value: HostLinear,
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
#[derive(Debug, Clone)]
pub struct HostModel {
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
                    key: HostLinear::of(&b.attention.key),
                    value: HostLinear::of(&b.attention.value),
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

    /// A device cache of this model read back into host memory, with room for a window.
    pub fn cache_from_device(&self, cache: &KvCache) -> HostKvCache {
        HostKvCache::from_device(cache, self.d_model, self.max_len)
    }

    /// The user representation `[d_model]` after `tokens` (each its [`TOKEN_FIELDS`] input
    /// fields) that follow the tokens in `cache`, whose keys and values are appended to it.
    /// Equal to `FoundationModel::user_state_incremental`.
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
        // Embedding: the stacked tables' rows summed, scaled, plus the position.
        let mut x = vec![0f32; m * d];
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
        let mut mixed: Vec<f32> = x[(m - 1) * d..].iter().map(|v| v * self.mix[0]).collect();
        let (mut normed, mut buf) = (vec![0f32; d], vec![0f32; d]);
        let mut hidden = vec![0f32; self.layers.first().map_or(0, |l| l.ff_in.out)];
        let n_layers = self.layers.len();
        for (l, (layer, (keys, values))) in self.layers.iter().zip(&mut cache.layers).enumerate() {
            // Every new token's keys and values join the cache.
            let mut attn_in = vec![0f32; m * d];
            for (t, (row, n)) in x
                .chunks_exact(d)
                .zip(attn_in.chunks_exact_mut(d))
                .enumerate()
            {
                layer.norm_attn.apply(row, n);
                let at = (first + t) * d..(first + t + 1) * d;
                layer.key.apply(n, &mut keys[at.clone()]);
                layer.value.apply(n, &mut values[at]);
            }
            // The last layer's output is needed at the last token only.
            let queries = if l + 1 == n_layers { m - 1..m } else { 0..m };
            let mut out = Vec::with_capacity(queries.len() * d);
            for t in queries {
                let row = &x[t * d..(t + 1) * d];
                layer.query.apply(&attn_in[t * d..(t + 1) * d], &mut buf);
                let ctx = self.attend(&buf, keys, values, first + t + 1);
                layer.output.apply(&ctx, &mut buf);
                let mut h: Vec<f32> = row.iter().zip(&buf).map(|(a, b)| a + b).collect();
                layer.norm_ff.apply(&h, &mut normed);
                hidden.resize(layer.ff_in.out, 0.0);
                layer.ff_in.apply(&normed, &mut hidden);
                for v in &mut hidden {
                    *v = gelu(*v);
                }
                layer.ff_out.apply(&hidden, &mut buf);
                add_to(&mut h, &buf);
                out.extend_from_slice(&h);
            }
            x = out;
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

    /// Multi-head attention of one query row `[d]` over the first `n` cached keys and values.
    fn attend(&self, q: &[f32], keys: &[f32], values: &[f32], n: usize) -> Vec<f32> {
        let d = self.d_model;
        let hd = d / self.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut ctx = vec![0f32; d];
        let mut p = vec![0f32; n];
        for h in 0..self.heads {
            let cols = h * hd..(h + 1) * hd;
            let qh = &q[cols.clone()];
            let mut max = f32::NEG_INFINITY;
            for (j, pj) in p.iter_mut().enumerate() {
                *pj = dot(qh, &keys[j * d + cols.start..j * d + cols.end]) * scale;
                max = max.max(*pj);
            }
            let mut sum = 0.0;
            for pj in &mut p {
                *pj = (*pj - max).exp();
                sum += *pj;
            }
            let out = &mut ctx[cols.clone()];
            for (j, pj) in p.iter().enumerate() {
                let w = pj / sum;
                for (o, v) in out
                    .iter_mut()
                    .zip(&values[j * d + cols.start..j * d + cols.end])
                {
                    *o += w * v;
                }
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

/// GELU with the exact error function, as burn's `gelu`.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
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
            let host = HostModel::new(&model, &config, &model.token_tables());
            let tables = model.token_tables();
            let seq = tokens(&world, 32);
            assert!(seq.len() > 24, "{} tokens", seq.len());
            for (cached, step) in [(1, 1), (5, 2), (20, 3)] {
                // Cache the first `cached` tokens with burn, then both paths take `step` more.
                let mut device_cache = KvCache::new(2);
                let head = TokenBatch::new(&[seq.tokens(0..cached)], &device);
                model.user_state_incremental(&head, &tables, &mut device_cache);
                let mut host_cache = host.cache_from_device(&device_cache);
                assert_eq!(host_cache.len(), cached);

                let next = seq.tokens(cached..cached + step);
                let batch = TokenBatch::new(std::slice::from_ref(&next), &device);
                let expected =
                    host_values(model.user_state_incremental(&batch, &tables, &mut device_cache));
                let fields: Vec<_> = (0..step).map(|i| next.fields(i)).collect();
                let ours = host.step(&fields, &mut host_cache);
                let what = format!("d {d}, {heads} heads, {cached} cached + {step}");
                assert!(
                    max_diff(&ours, &expected) < 1e-4,
                    "{what}: user vectors differ"
                );
                // Both caches now hold the same keys and values.
                let from_burn = host.cache_from_device(&device_cache);
                assert_eq!(host_cache.len(), cached + step, "{what}");
                for ((k, v), (k2, v2)) in host_cache.layers.iter().zip(&from_burn.layers) {
                    let used = (cached + step) * d;
                    assert!(max_diff(&k[..used], &k2[..used]) < 1e-4, "{what}: keys");
                    assert!(max_diff(&v[..used], &v2[..used]) < 1e-4, "{what}: values");
                }
                // And the round trip to the device keeps them.
                let back = HostKvCache::from_device(&host_cache.to_device(heads, &device), d, 32);
                assert_eq!(back.len(), cached + step);
                assert_eq!(back.layers, host_cache.layers, "{what}: device round trip");
            }
        }
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
