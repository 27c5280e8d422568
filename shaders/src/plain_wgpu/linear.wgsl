// A linear layer over rows, one invocation per output value:
//   y[i, j] = (ACCUMULATE ? y[i, j] : 0) + act(sum_t x[i, t] * w[t, j] + b[j])
// with act = GELU (exact, through erf) when the GELU flag is set. w is [inner, cols] row-major
// (burn's layout). Accumulating into y is the residual connection, without binding y twice.
struct Dims { rows: u32, inner: u32, cols: u32, flags: u32 }

const GELU: u32 = 1u;
const ACCUMULATE: u32 = 2u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> dims: Dims;

// The error function to about 2e-7 (Abramowitz & Stegun 7.1.26), as the CPU forward's.
fn erf(v: f32) -> f32 {
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = ((((1.0614054 * t - 1.4531521) * t + 1.4214137) * t - 0.28449674) * t
        + 0.2548296) * t;
    let r = 1.0 - poly * exp(-a * a);
    return select(r, -r, v < 0.0);
}

@compute
@workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.x;
    if (id >= dims.rows * dims.cols) {
        return;
    }
    let i = id / dims.cols;
    let j = id % dims.cols;
    var acc: f32 = b[j];
    let row = i * dims.inner;
    for (var t = 0u; t < dims.inner; t++) {
        acc += x[row + t] * w[t * dims.cols + j];
    }
    if ((dims.flags & GELU) != 0u) {
        acc = 0.5 * acc * (1.0 + erf(acc * 0.70710678));
    }
    if ((dims.flags & ACCUMULATE) != 0u) {
        acc += y[id];
    }
    y[id] = acc;
}
