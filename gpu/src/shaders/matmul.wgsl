// Batched GEMM on strided operands: C[b] = A[b] · B[b], A `M×K`, B `K×N`, C contiguous.
// 64×64 output tiles per 256-thread workgroup, K in slices of 16 staged in workgroup
// memory, each thread accumulating a 4×4 block in registers (vec4 rows).
// Parameters: 0 M, 1 N, 2 K, 3 batch rank, 4 batches in this dispatch, 5 first batch,
// 6 rsa, 7 csa, 8 rsb, 9 csb, 10 offset A, 11 offset B, 12.. batch shape (4),
// 16.. A batch strides, 20.. B batch strides.

const TILE: u32 = 64u;
const BK: u32 = 16u;

@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;

var<workgroup> AS: array<array<f32, 64>, 16>;
var<workgroup> BS: array<array<f32, 64>, 16>;

// Offsets of batch `b` in A and B (broadcast batch axes have stride 0).
fn batch_offsets(b: u32) -> vec2<u32> {
    var rem = b;
    var off = vec2<u32>(p(10u), p(11u));
    for (var d = p(3u); d > 0u; d = d - 1u) {
        let n = p(12u + d - 1u);
        let i = rem % n;
        off += i * vec2<u32>(p(16u + d - 1u), p(20u + d - 1u));
        rem = rem / n;
    }
    return off;
}

@compute @workgroup_size(256)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = p(0u);
    let n = p(1u);
    let k = p(2u);
    let batch = p(5u) + wid.z;
    let offs = batch_offsets(batch);
    let rsa = p(6u);
    let csa = p(7u);
    let rsb = p(8u);
    let csb = p(9u);
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < k; k0 += BK) {
        for (var e = 0u; e < 4u; e++) {
            let idx = lid + e * WG;
            // Walk the operand's unit-stride axis with consecutive threads.
            var am = idx / BK;
            var ak = idx % BK;
            if csa != 1u {
                am = idx % TILE;
                ak = idx / TILE;
            }
            let gr = row0 + am;
            let gk = k0 + ak;
            AS[ak][am] = select(0.0, A[offs.x + min(gr, m - 1u) * rsa + min(gk, k - 1u) * csa], gr < m && gk < k);
            var bk = idx / TILE;
            var bn = idx % TILE;
            if csb != 1u {
                bk = idx % BK;
                bn = idx / BK;
            }
            let gc = col0 + bn;
            let gk2 = k0 + bk;
            BS[bk][bn] = select(0.0, B[offs.y + min(gk2, k - 1u) * rsb + min(gc, n - 1u) * csb], gc < n && gk2 < k);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let bv = vec4<f32>(BS[kk][tx * 4u], BS[kk][tx * 4u + 1u], BS[kk][tx * 4u + 2u], BS[kk][tx * 4u + 3u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i] += AS[kk][ty * 4u + i] * bv;
            }
        }
        workgroupBarrier();
    }
    let cbase = batch * m * n;
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + ty * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + tx * 4u + j;
            if r < m && c < n {
                OUT[cbase + r * n + c] = acc[i][j];
            }
        }
    }
}
