// The user representation from the last token's state after the embedding and after each
// layer: user = layer_norm( sum_l mix[l] * lasts[l, :] ). One invocation (d values).
struct Dims { states: u32, d: u32, eps: f32, unused: u32 }

@group(0) @binding(0) var<storage, read> lasts: array<f32>;
@group(0) @binding(1) var<storage, read> mix: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> user: array<f32>;
@group(0) @binding(5) var<uniform> dims: Dims;

@compute
@workgroup_size(1, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x != 0u) {
        return;
    }
    let d = dims.d;
    var total: f32 = 0.0;
    for (var c = 0u; c < d; c++) {
        var v: f32 = 0.0;
        for (var s = 0u; s < dims.states; s++) {
            v += mix[s] * lasts[s * d + c];
        }
        user[c] = v;
        total += v;
    }
    let mean = total / f32(d);
    var squares: f32 = 0.0;
    for (var c = 0u; c < d; c++) {
        let dev = user[c] - mean;
        squares += dev * dev;
    }
    let inv = 1.0 / sqrt(squares / f32(d) + dims.eps);
    for (var c = 0u; c < d; c++) {
        user[c] = (user[c] - mean) * inv * gamma[c] + beta[c];
    }
}
