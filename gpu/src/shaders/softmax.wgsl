// Softmax, log-softmax and softmax cross-entropy over contiguous rows: one workgroup a row.

@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT2: array<f32>;
@group(0) @binding(3) var<storage, read> X: array<f32>;
@group(0) @binding(4) var<storage, read> Y: array<f32>;
@group(0) @binding(5) var<storage, read> T: array<u32>;
@group(0) @binding(6) var<storage, read> G: array<f32>;

// ln Σ exp over the row starting at `base` (max-shifted).
fn row_logsumexp(base: u32, cols: u32, lid: u32) -> f32 {
    var m = -inf();
    for (var c = lid; c < cols; c += WG) {
        m = fmax(m, X[base + c]);
    }
    m = wg_max(m, lid);
    var s = 0.0;
    for (var c = lid; c < cols; c += WG) {
        s += exp(X[base + c] - m);
    }
    return m + log(wg_sum(s, lid));
}

// Parameters: 0 rows, 1 cols, 2 offset of x, 3 log.
@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p(0u) { return; }
    let cols = p(1u);
    let base = p(2u) + row * cols;
    let shift = row_logsumexp(base, cols, lid);
    for (var c = lid; c < cols; c += WG) {
        let v = X[base + c] - shift;
        OUT[row * cols + c] = select(exp(v), v, p(3u) != 0u);
    }
}

// X holds the softmax output y, Y the upstream gradient. Parameters as `softmax`.
@compute @workgroup_size(256)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p(0u) { return; }
    let cols = p(1u);
    let base = p(2u) + row * cols;
    let log_form = p(3u) != 0u;
    var s = 0.0;
    for (var c = lid; c < cols; c += WG) {
        s += select(X[base + c] * Y[base + c], Y[base + c], log_form);
    }
    s = wg_sum(s, lid);
    for (var c = lid; c < cols; c += WG) {
        let y = X[base + c];
        let g = Y[base + c];
        OUT[row * cols + c] = select(y * (g - s), g - exp(y) * s, log_form);
    }
}

fn ignored(t: u32) -> bool {
    return p(3u) != 0u && t == p(4u);
}

// OUT: loss, OUT2: log-sum-exp. Parameters: 0 rows, 1 cols, 2 offset, 3 has ignore, 4 ignore.
@compute @workgroup_size(256)
fn cross_entropy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p(0u) { return; }
    let cols = p(1u);
    let base = p(2u) + row * cols;
    let lse = row_logsumexp(base, cols, lid);
    if lid == 0u {
        let t = T[row];
        OUT[row] = select(lse - X[base + t], 0.0, ignored(t));
        OUT2[row] = lse;
    }
}

// Y: log-sum-exp, G: upstream loss gradient. Parameters as `cross_entropy`.
@compute @workgroup_size(256)
fn cross_entropy_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p(0u) { return; }
    let cols = p(1u);
    let base = p(2u) + row * cols;
    let t = T[row];
    let skip = ignored(t);
    let g = G[row];
    let lse = Y[row];
    for (var c = lid; c < cols; c += WG) {
        var d = exp(X[base + c] - lse) * g;
        if c == t {
            d -= g;
        }
        OUT[row * cols + c] = select(d, 0.0, skip);
    }
}
