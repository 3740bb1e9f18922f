// Shared by every kernel: the per-dispatch parameters (binding 0), strided-view
// addressing and the 2-D dispatch grid that keeps workgroup counts under the limit.

const MAX_RANK: u32 = 6u;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: array<vec4<u32>, 16>;

fn p(i: u32) -> u32 {
    return P[i / 4u][i % 4u];
}

fn pf(i: u32) -> f32 {
    return bitcast<f32>(p(i));
}

// Index of a workgroup in a grid of `nwg.x` columns.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Index of a thread in a grid of 256-thread workgroups.
fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return group_index(wid, nwg) * WG + lid;
}

// Storage offset of row-major element `i` of a view: `rank` axes of lengths p(shape_at..)
// and a view block at `view_at`: MAX_RANK strides, then the offset.
fn view_offset(i: u32, rank: u32, shape_at: u32, view_at: u32) -> u32 {
    var rem = i;
    var off = p(view_at + MAX_RANK);
    for (var d = rank; d > 0u; d = d - 1u) {
        let n = p(shape_at + d - 1u);
        off += (rem % n) * p(view_at + d - 1u);
        rem = rem / n;
    }
    return off;
}

fn inf() -> f32 {
    return bitcast<f32>(0x7f800000u);
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// IEEE maxNum/minNum as Rust's f32::max/min: a NaN operand yields the other.
fn fmax(a: f32, b: f32) -> f32 {
    if is_nan(a) { return b; }
    if is_nan(b) { return a; }
    return max(a, b);
}

fn fmin(a: f32, b: f32) -> f32 {
    if is_nan(a) { return b; }
    if is_nan(b) { return a; }
    return min(a, b);
}
