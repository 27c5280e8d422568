// Causal multi-head self-attention over the fused projections of a member's tokens, one
// invocation per (query row, head), all heads in one dispatch:
//   ctx[i, head] = softmax_{j <= i}( q[i, head] . k[j, head] / sqrt(hd) ) @ v[j, head]
// qkv is [rows, 3d]: q | k | v side by side, each with its heads side by side (hd = d / n_heads);
// ctx is [rows, d]. The last row (the request token) also sees `prefix` extra keys and values,
// prefix_kv [prefix, 2d] (k | v): a deep prompt's, placed between the history and the request.
// Online (flash-style) softmax: one pass over the keys with a running max and sum; the query
// row and the output accumulator live in registers.
struct Dims { rows: u32, d: u32, n_heads: u32, prefix: u32 }

const MAX_HEAD_DIM: u32 = 128u;

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> prefix_kv: array<f32>;
@group(0) @binding(2) var<storage, read_write> ctx: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

@compute
@workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.x;
    if (id >= dims.rows * dims.n_heads) {
        return;
    }
    let i = id / dims.n_heads;
    let head = id % dims.n_heads;
    let d = dims.d;
    let hd = d / dims.n_heads;
    let stride = 3u * d;
    let col = head * hd;
    let scale = 1.0 / sqrt(f32(hd));

    var qrow: array<f32, MAX_HEAD_DIM>;
    var acc: array<f32, MAX_HEAD_DIM>;
    for (var c = 0u; c < hd; c++) {
        qrow[c] = qkv[i * stride + col + c] * scale;
        acc[c] = 0.0;
    }
    var m: f32 = -3.0e38;
    var l: f32 = 0.0;
    // The request token's extra keys first (the softmax does not depend on the order).
    let extra = select(0u, dims.prefix, i + 1u == dims.rows);
    for (var j = 0u; j < extra; j++) {
        let kj = j * 2u * d + col;
        let vj = kj + d;
        var dot: f32 = 0.0;
        for (var t = 0u; t < hd; t++) {
            dot += qrow[t] * prefix_kv[kj + t];
        }
        let m_new = max(m, dot);
        let corr = exp(m - m_new);
        let p = exp(dot - m_new);
        l = l * corr + p;
        for (var c = 0u; c < hd; c++) {
            acc[c] = acc[c] * corr + p * prefix_kv[vj + c];
        }
        m = m_new;
    }
    for (var j = 0u; j <= i; j++) {
        let kj = j * stride + d + col;
        let vj = kj + d;
        var dot: f32 = 0.0;
        for (var t = 0u; t < hd; t++) {
            dot += qrow[t] * qkv[kj + t];
        }
        let m_new = max(m, dot);
        let corr = exp(m - m_new);
        let p = exp(dot - m_new);
        l = l * corr + p;
        for (var c = 0u; c < hd; c++) {
            acc[c] = acc[c] * corr + p * qkv[vj + c];
        }
        m = m_new;
    }
    let inv_l = 1.0 / l;
    for (var c = 0u; c < hd; c++) {
        ctx[i * d + col + c] = acc[c] * inv_l;
    }
}
