//! Fused causal self-attention: `softmax(QKᵀ/√d + causal mask) V` in one dispatch for all heads.

#[cfg(feature = "wgpu")]
mod kernel;

#[cfg(feature = "wgpu")]
use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Tensor, activation};

#[cfg(feature = "wgpu")]
pub use kernel::{FusedAttentionBackend, MAX_HEAD_DIM};

/// True when tensors on `device` run the WGSL kernels (a wgpu/WebGPU device without autodiff;
/// never in a build without the `wgpu` feature).
pub fn uses_wgsl_kernels(device: &Device) -> bool {
    #[cfg(feature = "wgpu")]
    return !device.is_autodiff() && matches!(device.as_dispatch(), DispatchDevice::Cube(_));
    #[cfg(not(feature = "wgpu"))]
    {
        let _ = device;
        false
    }
}

/// Causal attention on `[batch, heads, seq, head_dim]` tensors: the WGSL kernel where
/// [`uses_wgsl_kernels`] holds (and `head_dim ≤ MAX_HEAD_DIM`); burn's own fused attention op
/// on other devices without autodiff (the CPU backend's skips masked blocks and never builds a
/// mask); the burn-ops reference under autodiff (training).
pub fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let device = q.device();
    #[cfg(feature = "wgpu")]
    if uses_wgsl_kernels(&device) && q.dims()[3] <= MAX_HEAD_DIM {
        return fused_causal_attention(q, k, v);
    }
    if !device.is_autodiff() {
        blocked_causal_attention(q, k, v, QUERY_BLOCK)
    } else {
        causal_attention_reference(q, k, v)
    }
}

/// Query rows per call in [`blocked_causal_attention`].
pub const QUERY_BLOCK: usize = 64;

/// Causal attention as one [`burn_causal_attention`] call per block of `block` queries, each
/// over the keys up to its last query only, so that most of the masked upper triangle is
/// never computed (about a third less work at 200 tokens). Same shapes as
/// [`causal_attention`].
pub fn blocked_causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    block: usize,
) -> Tensor<4> {
    let s = q.dims()[2];
    if s <= block {
        return burn_causal_attention(q, k, v);
    }
    let parts: Vec<Tensor<4>> = (0..s)
        .step_by(block)
        .map(|start| {
            let end = (start + block).min(s);
            burn_causal_attention(
                q.clone().narrow(2, start, end - start),
                k.clone().narrow(2, 0, end),
                v.clone().narrow(2, 0, end),
            )
        })
        .collect();
    Tensor::cat(parts, 2)
}

/// burn's attention op with causal masking. Queries are the last `m` of the `n` key
/// positions (`m = n` for a whole sequence): q `[batch, heads, m, head_dim]`, k and v
/// `[batch, heads, n, head_dim]` → `[batch, heads, m, head_dim]`.
pub fn burn_causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    burn::tensor::module::attention(
        q,
        k,
        v,
        None,
        None,
        AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        },
    )
}

/// The WGSL kernel. q, k, v: `[batch, heads, seq, head_dim]` on a wgpu device → same shape.
///
/// # Panics
/// On a device that is not wgpu, or with `head_dim > MAX_HEAD_DIM`.
#[cfg(feature = "wgpu")]
pub fn fused_causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    crate::launches::count_attention();
    Tensor::from_dispatch(Dispatch::fused_causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
    ))
}

/// Reference in burn ops (any backend, differentiable). q, k, v: `[batch, heads, seq, head_dim]`.
pub fn causal_attention_reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let [b, h, s, d] = q.dims();
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .mul_scalar(1.0 / (d as f32).sqrt());
    let future = causal_future(s, &scores.device())
        .reshape([1, 1, s, s])
        .expand([b, h, s, s]);
    let scores = scores.mask_fill(future, f32::NEG_INFINITY);
    activation::softmax(scores, 3).matmul(v)
}

/// Causal attention of the last `m` positions of an `n`-token sequence (an incremental step
/// over cached keys and values): q `[batch, heads, m, head_dim]`, k and v
/// `[batch, heads, n, head_dim]` with `m ≤ n` → `[batch, heads, m, head_dim]`. Query `i` sits at
/// position `n - m + i` and attends to keys `0..=n - m + i`. burn's attention op without
/// autodiff ([`burn_causal_attention`]), [`causal_attention_suffix_reference`] under it.
pub fn causal_attention_suffix(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    if q.device().is_autodiff() {
        causal_attention_suffix_reference(q, k, v)
    } else {
        burn_causal_attention(q, k, v)
    }
}

/// [`causal_attention_suffix`] in plain burn ops (scores, mask, softmax, values).
pub fn causal_attention_suffix_reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let [b, h, m, d] = q.dims();
    let n = k.dims()[2];
    assert!(m <= n, "{m} queries but only {n} keys");
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .mul_scalar(1.0 / (d as f32).sqrt());
    let scores = if m > 1 {
        // `tril_mask` with offset n - m marks keys j > i + (n - m): each query's future.
        let future = Tensor::<2, Bool>::tril_mask([m, n], (n - m) as i64, &scores.device())
            .reshape([1, 1, m, n])
            .expand([b, h, m, n]);
        scores.mask_fill(future, f32::NEG_INFINITY)
    } else {
        scores
    };
    activation::softmax(scores, 3).matmul(v)
}

/// `[s, s]` mask that is true strictly above the diagonal (key after query).
fn causal_future(s: usize, device: &Device) -> Tensor<2, Bool> {
    // burn's `tril_mask` marks what lies outside the lower triangle, i.e. the future keys.
    Tensor::<2, Bool>::tril_mask([s, s], 0, device)
}
