// In-place optimizer updates, one thread per parameter, in the CPU's operation order.

@group(0) @binding(1) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(2) var<storage, read_write> M: array<f32>;
@group(0) @binding(3) var<storage, read_write> V: array<f32>;
@group(0) @binding(4) var<storage, read> GRAD: array<f32>;

// Parameters: 0 n, 1 decay, 2 beta1, 3 beta2, 4 1-beta1, 5 1-beta2, 6 lr/bc1,
// 7 1/sqrt(bc2), 8 eps, 9 grad scale.
@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if i >= p(0u) { return; }
    let g = GRAD[i] * pf(9u);
    let m = pf(2u) * M[i] + pf(4u) * g;
    let v = pf(3u) * V[i] + pf(5u) * g * g;
    M[i] = m;
    V[i] = v;
    let denom = sqrt(v) * pf(7u) + pf(8u);
    PARAM[i] = PARAM[i] * pf(1u) - pf(6u) * m / denom;
}

// M is the momentum buffer. Parameters: 0 n, 1 lr, 2 momentum, 3 weight decay,
// 4 nesterov, 5 grad scale.
@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if i >= p(0u) { return; }
    let g = GRAD[i] * pf(5u) + pf(3u) * PARAM[i];
    let b = pf(2u) * M[i] + g;
    M[i] = b;
    let step = select(b, g + pf(2u) * b, p(4u) != 0u);
    PARAM[i] = PARAM[i] - pf(1u) * step;
}
