// Reductions over a set of axes: one workgroup per output element, its threads striding
// over the reduced elements, then a tree in workgroup memory.
// Parameters: 0 outputs, 1 kept rank, 2 reduced rank, 3 reduced count,
// 4.. kept shape, 10.. kept view, 17.. reduced shape, 23.. reduced view.

override OP: u32 = 0u; // 0 sum, 1 max, 2 min

@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;

var<workgroup> SH: array<f32, 256>;

fn identity() -> f32 {
    switch OP {
        case 1u: { return -inf(); }
        case 2u: { return inf(); }
        default: { return 0.0; }
    }
}

fn combine(a: f32, b: f32) -> f32 {
    switch OP {
        case 1u: { return fmax(a, b); }
        case 2u: { return fmin(a, b); }
        default: { return a + b; }
    }
}

@compute @workgroup_size(256)
fn reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let o = group_index(wid, nwg);
    if o >= p(0u) { return; }
    let base = view_offset(o, p(1u), 4u, 10u);
    var acc = identity();
    for (var r = lid; r < p(3u); r += WG) {
        acc = combine(acc, X[base + view_offset(r, p(2u), 17u, 23u)]);
    }
    SH[lid] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half = half / 2u) {
        if lid < half {
            SH[lid] = combine(SH[lid], SH[lid + half]);
        }
        workgroupBarrier();
    }
    if lid == 0u {
        OUT[o] = SH[0];
    }
}
