// Gather along an axis and its adjoint. The adjoint is deterministic and atomic-free:
// the host groups the source positions of every output index (a counting sort of the
// ids, CSR form), and one thread per output element sums its sources in id order.

@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> IDS: array<u32>;

// Parameters: 0 numel, 1 rank, 2 axis, 4.. output shape, 10.. view of x (strides, offset).
@compute @workgroup_size(256)
fn index_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if i >= p(0u) { return; }
    var rem = i;
    var off = p(10u + MAX_RANK);
    for (var d = p(1u); d > 0u; d = d - 1u) {
        let ax = d - 1u;
        let n = p(4u + ax);
        var c = rem % n;
        if ax == p(2u) {
            c = IDS[c];
        }
        off += c * p(10u + ax);
        rem = rem / n;
    }
    OUT[i] = X[off];
}

// Output `[outer, size, inner]`, source contiguous `[outer, n_ids, inner]`. IDS holds
// `size + 1` CSR starts, then the source positions grouped by output index.
// Parameters: 0 numel, 1 size, 2 inner, 3 n_ids, 4 source offset.
@compute @workgroup_size(256)
fn index_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if i >= p(0u) { return; }
    let size = p(1u);
    let inner = p(2u);
    let c = i % inner;
    let j = (i / inner) % size;
    let o = i / (inner * size);
    var acc = 0.0;
    for (var q = IDS[j]; q < IDS[j + 1u]; q++) {
        let k = IDS[size + 1u + q];
        acc += X[p(4u) + (o * p(3u) + k) * inner + c];
    }
    OUT[i] = acc;
}
