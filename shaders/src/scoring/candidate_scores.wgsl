// Fused candidate scoring: gather each candidate's row of the item table and take its dot
// product with the user vector, one invocation per candidate, in one dispatch.
//   scores[c] = sum_t table[idx[c] * d + t] * user[t]
@group(0) @binding(0) var<storage, read_write> table: array<{{ elem }}>;
@group(0) @binding(1) var<storage, read_write> user: array<{{ elem }}>;
@group(0) @binding(2) var<storage, read_write> idx: array<{{ index }}>;
@group(0) @binding(3) var<storage, read_write> scores: array<{{ elem }}>;
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

@compute
@workgroup_size({{ workgroup_size_x }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let count = info[0];
    let d = info[1];
    let c = gid.x;
    if (c >= count) {
        return;
    }
    let base = u32(idx[c]) * d;
    var dot: f32 = 0.0;
    for (var t = 0u; t < d; t++) {
        dot += f32(table[base + t]) * f32(user[t]);
    }
    scores[c] = {{ elem }}(dot);
}
