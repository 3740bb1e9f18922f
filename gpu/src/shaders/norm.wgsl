// RMSNorm and GroupNorm (LayerNorm is one group) over contiguous rows, forward and
// backward. One workgroup normalises one (row, group); gain gradients sum over rows with
// one thread per channel, in row order (deterministic).
// Bindings: 1, 2, 3 outputs; 4 X, 5 gain, 6 bias or upstream gradient, 7 mean, 8 rstd.

@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT_MEAN: array<f32>;
@group(0) @binding(3) var<storage, read_write> OUT_RSTD: array<f32>;
@group(0) @binding(4) var<storage, read> X: array<f32>;
@group(0) @binding(5) var<storage, read> GAIN: array<f32>;
@group(0) @binding(6) var<storage, read> AUX: array<f32>;
@group(0) @binding(7) var<storage, read> MEAN: array<f32>;
@group(0) @binding(8) var<storage, read> RSTD: array<f32>;

fn gain(c: u32) -> f32 {
    return select(1.0, GAIN[c], p(3u) != 0u);
}

// Parameters: 0 rows, 1 dim, 2 offset of x, 3 has gain, 4 eps.
@compute @workgroup_size(256)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p(0u) { return; }
    let dim = p(1u);
    let base = p(2u) + row * dim;
    var s = 0.0;
    for (var c = lid; c < dim; c += WG) {
        let v = X[base + c];
        s += v * v;
    }
    let rstd = 1.0 / sqrt(wg_sum(s, lid) / f32(dim) + pf(4u));
    for (var c = lid; c < dim; c += WG) {
        OUT[row * dim + c] = X[base + c] * rstd * gain(c);
    }
    if lid == 0u {
        OUT_RSTD[row] = rstd;
    }
}

// AUX: upstream gradient (contiguous). Parameters as `rms_norm`.
@compute @workgroup_size(256)
fn rms_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p(0u) { return; }
    let dim = p(1u);
    let base = p(2u) + row * dim;
    let rs = RSTD[row];
    var s = 0.0;
    for (var c = lid; c < dim; c += WG) {
        s += AUX[row * dim + c] * gain(c) * X[base + c] * rs;
    }
    let dot = wg_sum(s, lid) / f32(dim);
    for (var c = lid; c < dim; c += WG) {
        let xhat = X[base + c] * rs;
        OUT[row * dim + c] = rs * (AUX[row * dim + c] * gain(c) - xhat * dot);
    }
}

// One workgroup per (row, group). Parameters: 0 rows·groups, 1 channels, 2 offset of x,
// 3 has gain, 4 eps, 5 groups, 6 has bias. AUX: bias.
@compute @workgroup_size(256)
fn group_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let rg = group_index(wid, nwg);
    if rg >= p(0u) { return; }
    let gs = p(1u) / p(5u);
    let first = (rg % p(5u)) * gs;
    let base = p(2u) + rg * gs;
    var s = 0.0;
    for (var c = lid; c < gs; c += WG) {
        s += X[base + c];
    }
    let mean = wg_sum(s, lid) / f32(gs);
    var q = 0.0;
    for (var c = lid; c < gs; c += WG) {
        let d = X[base + c] - mean;
        q += d * d;
    }
    let rstd = 1.0 / sqrt(wg_sum(q, lid) / f32(gs) + pf(4u));
    for (var c = lid; c < gs; c += WG) {
        let ch = first + c;
        OUT[rg * gs + c] = (X[base + c] - mean) * rstd * gain(ch) + select(0.0, AUX[ch], p(6u) != 0u);
    }
    if lid == 0u {
        OUT_MEAN[rg] = mean;
        OUT_RSTD[rg] = rstd;
    }
}

// AUX: upstream gradient. Parameters as `group_norm`.
@compute @workgroup_size(256)
fn group_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let rg = group_index(wid, nwg);
    if rg >= p(0u) { return; }
    let gs = p(1u) / p(5u);
    let first = (rg % p(5u)) * gs;
    let base = p(2u) + rg * gs;
    let mu = MEAN[rg];
    let rs = RSTD[rg];
    var sd = 0.0;
    var sdx = 0.0;
    for (var c = lid; c < gs; c += WG) {
        let d = AUX[rg * gs + c] * gain(first + c);
        sd += d;
        sdx += d * (X[base + c] - mu) * rs;
    }
    let mean_d = wg_sum(sd, lid) / f32(gs);
    let mean_dx = wg_sum(sdx, lid) / f32(gs);
    for (var c = lid; c < gs; c += WG) {
        let xhat = (X[base + c] - mu) * rs;
        OUT[rg * gs + c] = rs * (AUX[rg * gs + c] * gain(first + c) - mean_d - xhat * mean_dx);
    }
}

// dgain[c] = Σ_rows dy·x̂, one thread per channel. Parameters: 0 rows, 1 channels,
// 2 offset of x, 3 unused, 4 unused, 5 groups, 6 has mean (0 for RMSNorm). AUX: dy.
@compute @workgroup_size(256)
fn norm_dgain(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let c = thread_index(wid, nwg, lid);
    let ch = p(1u);
    if c >= ch { return; }
    let groups = p(5u);
    let g = c / (ch / groups);
    var acc = 0.0;
    for (var r = 0u; r < p(0u); r++) {
        let i = r * groups + g;
        let mu = select(0.0, MEAN[i], p(6u) != 0u);
        acc += AUX[r * ch + c] * ((X[p(2u) + r * ch + c] - mu) * RSTD[i]);
    }
    OUT[c] = acc;
}
