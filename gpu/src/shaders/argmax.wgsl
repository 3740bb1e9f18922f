// Index of the first largest element along one axis: one thread per output.
// Parameters: 0 outputs, 1 outer rank, 2 axis length, 3 axis stride, 4.. outer shape,
// 10.. outer view.

@group(0) @binding(1) var<storage, read_write> OUT: array<u32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;

@compute @workgroup_size(256)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let o = thread_index(wid, nwg, lid);
    if o >= p(0u) { return; }
    let base = view_offset(o, p(1u), 4u, 10u);
    let stride = p(3u);
    var best = 0u;
    var best_v = X[base];
    for (var i = 1u; i < p(2u); i++) {
        let v = X[base + i * stride];
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    OUT[o] = best;
}
