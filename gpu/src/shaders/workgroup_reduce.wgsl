// Workgroup-wide sum and max for kernels that give one workgroup a row.

var<workgroup> SH: array<f32, 256>;

fn wg_reduce(v: f32, lid: u32, take_max: bool) -> f32 {
    workgroupBarrier();
    SH[lid] = v;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half = half / 2u) {
        if lid < half {
            SH[lid] = select(SH[lid] + SH[lid + half], fmax(SH[lid], SH[lid + half]), take_max);
        }
        workgroupBarrier();
    }
    let r = SH[0];
    workgroupBarrier();
    return r;
}

fn wg_sum(v: f32, lid: u32) -> f32 {
    return wg_reduce(v, lid, false);
}

fn wg_max(v: f32, lid: u32) -> f32 {
    return wg_reduce(v, lid, true);
}
