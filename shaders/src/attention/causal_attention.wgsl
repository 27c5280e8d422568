// Fused causal self-attention, one invocation per query row, all heads in one dispatch.
//   out[r, :] = softmax_{j <= i}( q[r, :] . k[base + j, :] / sqrt(d) ) @ v[base + j, :]
// where r = bh * s + i. Tensors are contiguous [BH, S, D] (leading dims flattened into BH).
// Online (flash-style) softmax: one pass over the keys, a running max and sum, and a private
// accumulator for the output row; q's row is loaded once into registers.
@group(0) @binding(0) var<storage, read_write> q: array<{{ elem }}>;
@group(0) @binding(1) var<storage, read_write> k: array<{{ elem }}>;
@group(0) @binding(2) var<storage, read_write> v: array<{{ elem }}>;
@group(0) @binding(3) var<storage, read_write> out: array<{{ elem }}>;
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

@compute
@workgroup_size({{ workgroup_size_x }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let rows = info[0];
    let s = info[1];
    let d = info[2];
    let row = gid.x;
    if (row >= rows) {
        return;
    }
    let i = row % s;
    let base = (row - i) * d;
    let scale = inverseSqrt(f32(d));

    var qrow: array<f32, {{ max_hd }}>;
    var acc: array<f32, {{ max_hd }}>;
    for (var c = 0u; c < d; c++) {
        qrow[c] = f32(q[row * d + c]) * scale;
        acc[c] = 0.0;
    }
    var m: f32 = -3.0e38;
    var l: f32 = 0.0;
    for (var j = 0u; j <= i; j++) {
        let kj = base + j * d;
        var dot: f32 = 0.0;
        for (var t = 0u; t < d; t++) {
            dot += qrow[t] * f32(k[kj + t]);
        }
        let m_new = max(m, dot);
        let corr = exp(m - m_new);
        let p = exp(dot - m_new);
        l = l * corr + p;
        for (var c = 0u; c < d; c++) {
            acc[c] = acc[c] * corr + p * f32(v[kj + c]);
        }
        m = m_new;
    }
    let inv_l = 1.0 / l;
    for (var c = 0u; c < d; c++) {
        out[row * d + c] = {{ elem }}(acc[c] * inv_l);
    }
}
