//! The WGSL attention kernel against the burn-ops reference on burn's wgpu backend (Mesa's
//! software Vulkan here, a real GPU elsewhere).

use burn::tensor::{Device, Distribution, Tensor};
use encore_shaders::{
    causal_attention, causal_attention_reference, fused_causal_attention, uses_wgsl_kernels,
};

fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn wgsl_attention_matches_reference_on_random_shapes() {
    let gpu = Device::wgpu(Default::default());
    assert!(uses_wgsl_kernels(&gpu));
    assert!(!uses_wgsl_kernels(&Device::flex()));
    assert!(!uses_wgsl_kernels(&gpu.clone().autodiff()));
    gpu.seed(11);
    // Sequence lengths 1, odd, and not multiples of the 64-row workgroup; head dims 8..128.
    for &(b, h, s, d) in &[
        (1, 1, 1, 8),
        (2, 2, 7, 16),
        (1, 4, 65, 32),
        (3, 1, 130, 64),
        (1, 2, 33, 128),
        (2, 3, 50, 25),
    ] {
        let draw = || Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &gpu);
        let (q, k, v) = (draw(), draw(), draw());
        let reference = causal_attention_reference(q.clone(), k.clone(), v.clone());
        let fused = fused_causal_attention(q.clone(), k.clone(), v.clone());
        let diff = max_diff(fused, reference.clone());
        assert!(diff <= 1e-4, "shape {:?}: max diff {diff}", [b, h, s, d]);
        // The dispatching entry point picks the kernel here and agrees too.
        assert!(max_diff(causal_attention(q, k, v), reference) <= 1e-4);
    }
}

#[test]
fn wgsl_attention_accepts_non_contiguous_inputs() {
    let gpu = Device::wgpu(Default::default());
    let x = Tensor::<4>::random([2, 9, 3, 16], Distribution::Normal(0.0, 1.0), &gpu);
    let q = x.clone().swap_dims(1, 2); // [2, 3, 9, 16], strided
    let diff = max_diff(
        fused_causal_attention(q.clone(), q.clone(), q.clone()),
        causal_attention_reference(q.clone(), q.clone(), q),
    );
    assert!(diff <= 1e-4, "max diff {diff}");
}

#[test]
fn reference_is_causal() {
    let cpu = Device::flex();
    let q = Tensor::<4>::random([1, 1, 6, 8], Distribution::Normal(0.0, 1.0), &cpu);
    let v = Tensor::<4>::random([1, 1, 6, 8], Distribution::Normal(0.0, 1.0), &cpu);
    let out = causal_attention_reference(q.clone(), q.clone(), v.clone());
    // Changing the last value row must not change any earlier output row.
    let v2 = v.clone().slice_assign(
        [0..1, 0..1, 5..6, 0..8],
        Tensor::<4>::ones([1, 1, 1, 8], &cpu) * 100.0,
    );
    let out2 = causal_attention_reference(q.clone(), q, v2);
    let early = (out.clone().slice([0..1, 0..1, 0..5, 0..8])
        - out2.clone().slice([0..1, 0..1, 0..5, 0..8]))
    .abs()
    .max()
    .into_scalar::<f32>();
    let last = (out.slice([0..1, 0..1, 5..6, 0..8]) - out2.slice([0..1, 0..1, 5..6, 0..8]))
        .abs()
        .max()
        .into_scalar::<f32>();
    assert_eq!(early, 0.0);
    assert!(last > 1.0);
}

#[test]
fn cpu_attention_paths_match_the_reference() {
    use encore_shaders::{
        blocked_causal_attention, causal_attention_suffix, causal_attention_suffix_reference,
    };
    let cpu = Device::flex();
    cpu.seed(5);
    for &(b, h, s, d) in &[
        (1usize, 1usize, 1usize, 8usize),
        (2, 2, 7, 16),
        (1, 1, 130, 50),
        (2, 3, 201, 24),
    ] {
        let draw = || Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &cpu);
        let (q, k, v) = (draw(), draw(), draw());
        let reference = causal_attention_reference(q.clone(), k.clone(), v.clone());
        // Blocks that do and do not divide the length, including a single block.
        for block in [1, 16, 64, 500] {
            let blocked = blocked_causal_attention(q.clone(), k.clone(), v.clone(), block);
            let diff = max_diff(blocked, reference.clone());
            assert!(
                diff <= 1e-4,
                "shape {:?} block {block}: {diff}",
                [b, h, s, d]
            );
        }
        assert!(
            max_diff(
                causal_attention(q.clone(), k.clone(), v.clone()),
                reference.clone()
            ) <= 1e-4
        );
        // The last m queries over all keys equal the last m rows of full causal attention.
        for m in [1, s.div_ceil(2), s] {
            let tail = q.clone().narrow(2, s - m, m);
            let want = reference.clone().narrow(2, s - m, m);
            let burn = causal_attention_suffix(tail.clone(), k.clone(), v.clone());
            let ops = causal_attention_suffix_reference(tail, k.clone(), v.clone());
            assert!(max_diff(burn, want.clone()) <= 1e-4, "suffix {m} of {s}");
            assert!(max_diff(ops, want) <= 1e-4, "reference suffix {m} of {s}");
        }
    }
}

#[test]
fn wgsl_candidate_scoring_matches_reference() {
    use burn::tensor::{Int, TensorData};
    use encore_shaders::{candidate_scores, candidate_scores_reference, fused_candidate_scores};
    let gpu = Device::wgpu(Default::default());
    gpu.seed(3);
    // Counts of 1, below, at and above the 64-wide workgroup, many; widths 8..128.
    for &(rows, d, count) in &[
        (10usize, 8usize, 1usize),
        (100, 16, 63),
        (100, 50, 64),
        (500, 64, 65),
        (3885, 128, 2000),
    ] {
        let table = Tensor::<2>::random([rows, d], Distribution::Normal(0.0, 1.0), &gpu);
        let user = Tensor::<1>::random([d], Distribution::Normal(0.0, 1.0), &gpu);
        // Repeats and the last row included.
        let idx: Vec<i64> = (0..count).map(|i| ((i * 7919 + 3) % rows) as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [count]), &gpu);
        let reference = candidate_scores_reference(table.clone(), user.clone(), idx.clone());
        let fused = fused_candidate_scores(table.clone(), user.clone(), idx.clone());
        let diff = (fused - reference.clone()).abs().max().into_scalar::<f32>();
        assert!(diff <= 1e-4, "rows {rows} d {d} count {count}: {diff}");
        let auto = candidate_scores(table, user, idx);
        assert!((auto - reference).abs().max().into_scalar::<f32>() <= 1e-4);
    }
}
