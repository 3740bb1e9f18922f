// Rotary position embedding of a strided `[batch, seq, heads, head_dim]` view into a
// contiguous output: one thread per rotated pair.
// Parameters: 0 pairs, 1 half, 2 seq, 3 heads, 4 position offset, 5 interleaved,
// 6 inverse, 7 offset, 8.. strides of batch, seq, head, dim.

@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> COS: array<f32>;
@group(0) @binding(4) var<storage, read> SIN: array<f32>;

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let idx = thread_index(wid, nwg, lid);
    if idx >= p(0u) { return; }
    let half = p(1u);
    let i = idx % half;
    let row = idx / half;
    let heads = p(3u);
    let seq = p(2u);
    let h = row % heads;
    let t = (row / heads) % seq;
    let b = row / (heads * seq);
    let pos = t + p(4u);
    let c = COS[pos * half + i];
    let s = select(SIN[pos * half + i], -SIN[pos * half + i], p(6u) != 0u);
    var a = i;
    var bb = i + half;
    if p(5u) != 0u {
        a = 2u * i;
        bb = 2u * i + 1u;
    }
    let start = p(7u) + b * p(8u) + t * p(9u) + h * p(10u);
    let xa = X[start + a * p(11u)];
    let xb = X[start + bb * p(11u)];
    let dh = 2u * half;
    OUT[row * dh + a] = xa * c - xb * s;
    OUT[row * dh + bb] = xa * s + xb * c;
}
