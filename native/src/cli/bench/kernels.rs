//! `encore bench --kernels`: Encore's WGSL kernels (fused causal attention, candidate
//! scoring) against burn's own ops on wgpu, and burn's paths on the CPU for scale.

use super::BenchArgs;
use super::timing::queued_mean_ms;
use crate::backend::Backend;

/// Times causal attention on `[batch, heads, seq, head_dim]` shapes: Encore's fused WGSL
/// kernel, burn's attention op and the burn-ops reference (matmul, mask, softmax, matmul) on
/// wgpu, and burn's paths on the CPU. Each timing includes reading the result back.
pub fn kernel_comparison(a: &BenchArgs) -> anyhow::Result<()> {
    use burn::tensor::{Distribution, Tensor};
    use encore_shaders::{
        QUERY_BLOCK, blocked_causal_attention, burn_causal_attention, causal_attention_reference,
        fused_causal_attention,
    };
    type Attention = fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>;
    let gpu: (&str, Backend, Vec<(&str, Attention)>) = (
        "wgpu",
        Backend::Wgpu,
        vec![
            ("encore-wgsl-fused", fused_causal_attention as Attention),
            ("burn-attention-op", burn_causal_attention),
            ("burn-ops-reference", causal_attention_reference),
        ],
    );
    let cpu: (&str, Backend, Vec<(&str, Attention)>) = (
        "cpu",
        Backend::Cpu,
        vec![
            ("burn-attention-blocked", |q, k, v| {
                blocked_causal_attention(q, k, v, QUERY_BLOCK)
            }),
            ("burn-attention-op", burn_causal_attention),
            ("burn-ops-reference", causal_attention_reference),
        ],
    );
    for (name, backend, paths) in [gpu, cpu] {
        if !a.backends.contains(&backend) {
            continue;
        }
        let device = backend.device();
        for shape in [
            [1, 1, 51, 50],
            [1, 1, 201, 50],
            [1, 2, 201, 32],
            [1, 4, 201, 16],
            [16, 2, 201, 32],
        ] {
            let draw = || Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let (q, k, v) = (draw(), draw(), draw());
            for (path, f) in &paths {
                let mean_ms = queued_mean_ms(a, || f(q.clone(), k.clone(), v.clone()));
                println!(
                    "RESULT attention device={name} shape={shape:?} path={path} mean={mean_ms:.3} ms"
                );
            }
        }
    }
    // Candidate scoring: gather + dot, fused, against burn's select + matmul.
    use burn::tensor::{Int, TensorData};
    use encore_shaders::{candidate_scores_reference, fused_candidate_scores};
    type Scoring = fn(Tensor<2>, Tensor<1>, Tensor<1, Int>) -> Tensor<1>;
    for backend in [Backend::Wgpu, Backend::Cpu] {
        if !a.backends.contains(&backend) {
            continue;
        }
        let device = backend.device();
        let mut paths: Vec<(&str, Scoring)> =
            vec![("burn-select-matmul", candidate_scores_reference)];
        if backend == Backend::Wgpu {
            paths.insert(0, ("encore-wgsl-fused", fused_candidate_scores));
        }
        let (rows, d) = (3885, 50);
        let table = Tensor::<2>::random([rows, d], Distribution::Normal(0.0, 1.0), &device);
        let user = Tensor::<1>::random([d], Distribution::Normal(0.0, 1.0), &device);
        for count in [100, 500, 2000] {
            let idx: Vec<i64> = (0..count).map(|i| ((i * 7919 + 3) % rows) as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [count]), &device);
            for (path, f) in &paths {
                let mean_ms = queued_mean_ms(a, || f(table.clone(), user.clone(), idx.clone()));
                println!(
                    "RESULT scoring device={} candidates={count} d={d} path={path} mean={mean_ms:.3} ms",
                    backend.name()
                );
            }
        }
    }
    Ok(())
}
