// Fused multi-head attention on token-major `[batch, seq, heads, head_dim]` views with
// grouped-query heads, FlashAttention style: keys and values stream through workgroup
// memory in tiles, each thread keeps one query row's running max, sum and output in
// registers, so no score matrix ever reaches global memory. The forward pass saves the
// log-sum-exp; the backward pass recomputes probabilities from it, in two kernels
// (dq per query row; dk, dv per key row) so that no two threads write one gradient.
// Parameters: 0 seq_q, 1 seq_kv, 2 q heads, 3 group size, 4 head_dim, 5 causal,
// 6 scale (f32 bits), 7 query offset among the keys, then views (offset and strides of
// batch, seq, head): 8 q, 12 k, 16 v, 20 upstream gradient.

const DMAX: u32 = 128u;
const BQ: u32 = 64u;
const BKV: u32 = 16u;
const BQ_T: u32 = 8u;

@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT2: array<f32>;
@group(0) @binding(3) var<storage, read> Q: array<f32>;
@group(0) @binding(4) var<storage, read> K: array<f32>;
@group(0) @binding(5) var<storage, read> V: array<f32>;
@group(0) @binding(6) var<storage, read> O: array<f32>;
@group(0) @binding(7) var<storage, read> LSE: array<f32>;
@group(0) @binding(8) var<storage, read> DO: array<f32>;

var<workgroup> TA: array<array<f32, DMAX>, BKV>;
var<workgroup> TB: array<array<f32, DMAX>, BKV>;
var<workgroup> TROW: array<vec2<f32>, BQ_T>;

// Storage index of element 0 of (batch, token, head) in the view at parameter `v`.
fn row_at(v: u32, b: u32, t: u32, h: u32) -> u32 {
    return p(v) + b * p(v + 1u) + t * p(v + 2u) + h * p(v + 3u);
}

// Keys query row `t` may see.
fn visible(t: u32) -> u32 {
    if p(5u) != 0u {
        return min(t + p(7u) + 1u, p(1u));
    }
    return p(1u);
}

// Stages key/value rows `j0..j0+BKV` of kv head `hk` in TA/TB (zeros past the end).
fn stage_kv(b: u32, hk: u32, j0: u32, lid: u32, threads: u32) {
    let dh = p(4u);
    for (var e = lid; e < BKV * dh; e += threads) {
        let r = e / dh;
        let d = e % dh;
        let j = j0 + r;
        var kx = 0.0;
        var vx = 0.0;
        if j < p(1u) {
            kx = K[row_at(12u, b, j, hk) + d];
            vx = V[row_at(16u, b, j, hk) + d];
        }
        TA[r][d] = kx;
        TB[r][d] = vx;
    }
}

// OUT: output, OUT2: log-sum-exp. One workgroup: BQ query rows of one (batch, head).
@compute @workgroup_size(64)
fn attention_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let seq_q = p(0u);
    let hq = p(2u);
    let dh = p(4u);
    let scale = pf(6u);
    let b = wid.y / hq;
    let h = wid.y % hq;
    let hk = h / p(3u);
    let t = wid.x * BQ + lid;
    let tq = min(t, seq_q - 1u);
    let n_keys = visible(min(wid.x * BQ + BQ - 1u, seq_q - 1u));
    let vis = visible(tq);
    var q: array<f32, DMAX>;
    var acc: array<f32, DMAX>;
    let qa = row_at(8u, b, tq, h);
    for (var d = 0u; d < dh; d++) {
        q[d] = Q[qa + d];
        acc[d] = 0.0;
    }
    var m = -inf();
    var l = 0.0;
    for (var j0 = 0u; j0 < n_keys; j0 += BKV) {
        workgroupBarrier();
        stage_kv(b, hk, j0, lid, BQ);
        workgroupBarrier();
        var s: array<f32, BKV>;
        var tile_max = -inf();
        for (var jj = 0u; jj < BKV; jj++) {
            s[jj] = -inf();
            if j0 + jj < vis {
                var dot = 0.0;
                for (var d = 0u; d < dh; d++) {
                    dot += q[d] * TA[jj][d];
                }
                s[jj] = dot * scale;
                tile_max = max(tile_max, s[jj]);
            }
        }
        if tile_max > -inf() {
            let m_new = max(m, tile_max);
            let corr = exp(m - m_new);
            l *= corr;
            for (var d = 0u; d < dh; d++) {
                acc[d] *= corr;
            }
            for (var jj = 0u; jj < BKV; jj++) {
                let pj = exp(s[jj] - m_new);
                l += pj;
                for (var d = 0u; d < dh; d++) {
                    acc[d] += pj * TB[jj][d];
                }
            }
            m = m_new;
        }
    }
    if t < seq_q {
        let o = ((b * seq_q + t) * hq + h) * dh;
        for (var d = 0u; d < dh; d++) {
            OUT[o + d] = acc[d] / l;
        }
        OUT2[(b * hq + h) * seq_q + t] = m + log(l);
    }
}

// OUT: dq (contiguous like the output). One workgroup: BQ query rows of one (batch, head).
@compute @workgroup_size(64)
fn attention_backward_dq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let seq_q = p(0u);
    let hq = p(2u);
    let dh = p(4u);
    let scale = pf(6u);
    let b = wid.y / hq;
    let h = wid.y % hq;
    let hk = h / p(3u);
    let t = wid.x * BQ + lid;
    let tq = min(t, seq_q - 1u);
    let n_keys = visible(min(wid.x * BQ + BQ - 1u, seq_q - 1u));
    let vis = visible(tq);
    var q: array<f32, DMAX>;
    var g: array<f32, DMAX>;
    var dq: array<f32, DMAX>;
    let qa = row_at(8u, b, tq, h);
    let ga = row_at(20u, b, tq, h);
    let oa = ((b * seq_q + tq) * hq + h) * dh;
    var dsum = 0.0;
    for (var d = 0u; d < dh; d++) {
        q[d] = Q[qa + d];
        g[d] = DO[ga + d];
        dsum += g[d] * O[oa + d];
        dq[d] = 0.0;
    }
    let lse = LSE[(b * hq + h) * seq_q + tq];
    for (var j0 = 0u; j0 < n_keys; j0 += BKV) {
        workgroupBarrier();
        stage_kv(b, hk, j0, lid, BQ);
        workgroupBarrier();
        for (var jj = 0u; jj < BKV; jj++) {
            if j0 + jj < vis {
                var dot = 0.0;
                var dp = 0.0;
                for (var d = 0u; d < dh; d++) {
                    dot += q[d] * TA[jj][d];
                    dp += g[d] * TB[jj][d];
                }
                let ds = exp(dot * scale - lse) * (dp - dsum) * scale;
                for (var d = 0u; d < dh; d++) {
                    dq[d] += ds * TA[jj][d];
                }
            }
        }
    }
    if t < seq_q {
        for (var d = 0u; d < dh; d++) {
            OUT[oa + d] = dq[d];
        }
    }
}

// OUT: dk, OUT2: dv (contiguous like k, v). One workgroup: BQ key rows of one
// (batch, kv head), summing over the query heads of its group; queries stream through
// workgroup memory BQ_T rows at a time with their log-sum-exp and Σ dO·O.
@compute @workgroup_size(64)
fn attention_backward_dkv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let seq_q = p(0u);
    let seq_kv = p(1u);
    let hq = p(2u);
    let group = p(3u);
    let hkv = hq / group;
    let dh = p(4u);
    let scale = pf(6u);
    let b = wid.y / hkv;
    let hk = wid.y % hkv;
    let j = wid.x * BQ + lid;
    let jk = min(j, seq_kv - 1u);
    var k: array<f32, DMAX>;
    var v: array<f32, DMAX>;
    var dk: array<f32, DMAX>;
    var dv: array<f32, DMAX>;
    let ka = row_at(12u, b, jk, hk);
    let va = row_at(16u, b, jk, hk);
    for (var d = 0u; d < dh; d++) {
        k[d] = K[ka + d];
        v[d] = V[va + d];
        dk[d] = 0.0;
        dv[d] = 0.0;
    }
    // Causal: query i sees key j when j <= i + offset, so the block's first key bounds
    // the first query that matters.
    var first_q = 0u;
    if p(5u) != 0u && wid.x * BQ > p(7u) {
        first_q = wid.x * BQ - p(7u);
    }
    for (var gi = 0u; gi < group; gi++) {
        let h = hk * group + gi;
        for (var i0 = first_q; i0 < seq_q; i0 += BQ_T) {
            workgroupBarrier();
            for (var e = lid; e < BQ_T * dh; e += BQ) {
                let r = e / dh;
                let d = e % dh;
                let i = min(i0 + r, seq_q - 1u);
                TA[r][d] = Q[row_at(8u, b, i, h) + d];
                TB[r][d] = DO[row_at(20u, b, i, h) + d];
            }
            if lid < BQ_T {
                let i = min(i0 + lid, seq_q - 1u);
                let oa = ((b * seq_q + i) * hq + h) * dh;
                let ga = row_at(20u, b, i, h);
                var dsum = 0.0;
                for (var d = 0u; d < dh; d++) {
                    dsum += DO[ga + d] * O[oa + d];
                }
                TROW[lid] = vec2<f32>(LSE[(b * hq + h) * seq_q + i], dsum);
            }
            workgroupBarrier();
            for (var r = 0u; r < BQ_T; r++) {
                let i = i0 + r;
                if i < seq_q && j < visible(i) {
                    var dot = 0.0;
                    var dp = 0.0;
                    for (var d = 0u; d < dh; d++) {
                        dot += TA[r][d] * k[d];
                        dp += TB[r][d] * v[d];
                    }
                    let pr = exp(dot * scale - TROW[r].x);
                    let ds = pr * (dp - TROW[r].y) * scale;
                    for (var d = 0u; d < dh; d++) {
                        dv[d] += pr * TB[r][d];
                        dk[d] += ds * TA[r][d];
                    }
                }
            }
        }
    }
    if j < seq_kv {
        let o = ((b * seq_kv + j) * hkv + hk) * dh;
        for (var d = 0u; d < dh; d++) {
            OUT[o + d] = dk[d];
            OUT2[o + d] = dv[d];
        }
    }
}
