// Layer norm of each row, one invocation per row (population variance, as burn's op):
//   y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * gamma + beta
struct Dims { rows: u32, width: u32, eps: f32, unused: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> dims: Dims;

@compute
@workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= dims.rows) {
        return;
    }
    let w = dims.width;
    let base = r * w;
    var total: f32 = 0.0;
    for (var c = 0u; c < w; c++) {
        total += x[base + c];
    }
    let mean = total / f32(w);
    var squares: f32 = 0.0;
    for (var c = 0u; c < w; c++) {
        let dev = x[base + c] - mean;
        squares += dev * dev;
    }
    let inv = 1.0 / sqrt(squares / f32(w) + dims.eps);
    for (var c = 0u; c < w; c++) {
        y[base + c] = (x[base + c] - mean) * inv * gamma[c] + beta[c];
    }
}
