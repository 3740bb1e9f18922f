//! `tensor::Backend` on the GPU: argument checks and parameter blocks on the host, the
//! work in the WGSL kernels of `shaders/`.

use crate::device::{describe, GpuError};
use crate::params::{coalesce, grid, word, Params, MAX_RANK};
use crate::runtime::{GpuStorage, Runtime, Shader};
use std::sync::{Arc, OnceLock};
use tensor::{
    AdamWStep, AttentionShape, Backend, BinaryOp, Layout, NormGrads, NormStats, ReduceOp, RopeArgs, SgdStep, UnaryOp,
};

const REDUCE_SNIPPET: &str = include_str!("shaders/workgroup_reduce.wgsl");
const ELEMENTWISE: Shader = Shader { name: "elementwise", sources: &[include_str!("shaders/elementwise.wgsl")] };
const REDUCE: Shader = Shader { name: "reduce", sources: &[include_str!("shaders/reduce.wgsl")] };
const ARGMAX: Shader = Shader { name: "argmax", sources: &[include_str!("shaders/argmax.wgsl")] };
const MATMUL: Shader = Shader { name: "matmul", sources: &[include_str!("shaders/matmul.wgsl")] };
const SOFTMAX: Shader = Shader { name: "softmax", sources: &[REDUCE_SNIPPET, include_str!("shaders/softmax.wgsl")] };
const NORM: Shader = Shader { name: "norm", sources: &[REDUCE_SNIPPET, include_str!("shaders/norm.wgsl")] };
const ROPE: Shader = Shader { name: "rope", sources: &[include_str!("shaders/rope.wgsl")] };
const ATTENTION: Shader = Shader { name: "attention", sources: &[include_str!("shaders/attention.wgsl")] };
const INDEX: Shader = Shader { name: "index", sources: &[include_str!("shaders/index.wgsl")] };
const OPTIM: Shader = Shader { name: "optim", sources: &[include_str!("shaders/optim.wgsl")] };

/// Threads per workgroup of the 1-D kernels (the shaders' `WG`).
const WG: usize = 256;
/// Matmul output tile edge and attention rows per workgroup.
const TILE: usize = 64;
/// Largest head dimension the attention kernels hold in registers (`DMAX`).
const MAX_HEAD_DIM: usize = 128;
/// The elementwise shader's identity op (plain copies).
const COPY_OP: u32 = 17;

/// The wgpu device computing in `f32`.
#[derive(Clone)]
pub struct GpuBackend {
    rt: Arc<Runtime>,
}

impl std::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBackend({})", describe(&self.rt.dev.info))
    }
}

fn unary_code(op: UnaryOp) -> (u32, f64) {
    use UnaryOp::*;
    match op {
        Neg => (0, 0.0),
        Exp => (1, 0.0),
        Log => (2, 0.0),
        Sqrt => (3, 0.0),
        Rsqrt => (4, 0.0),
        Recip => (5, 0.0),
        Tanh => (6, 0.0),
        Sigmoid => (7, 0.0),
        Relu => (8, 0.0),
        Silu => (9, 0.0),
        GeluTanh => (10, 0.0),
        Square => (11, 0.0),
        Abs => (12, 0.0),
        AddScalar(s) => (13, s),
        MulScalar(s) => (14, s),
        PowScalar(e) => (15, e),
        MaxScalar(s) => (16, s),
    }
}

fn binary_code(op: BinaryOp) -> u32 {
    use BinaryOp::*;
    match op {
        Add => 0,
        Sub => 1,
        Mul => 2,
        Div => 3,
        Max => 4,
        Min => 5,
        Pow => 6,
        Eq => 7,
        Gt => 8,
        Ge => 9,
    }
}

fn last_dim(l: &Layout) -> usize {
    *l.shape().last().unwrap_or(&1)
}

#[track_caller]
fn check_ids(op: &str, ids: &[u32], size: usize) {
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= size) {
        panic!("{op}: index {bad} out of range for axis of size {size}");
    }
}

impl GpuBackend {
    /// Opens the adapter chosen by `choice` (index or name substring), else by the
    /// `VWN_GPU_ADAPTER` environment variable, else the most capable one.
    pub fn open(choice: Option<&str>) -> Result<Self, GpuError> {
        Ok(GpuBackend { rt: Runtime::new(choice)? })
    }

    /// One device per process, opened on first use; panics with the reason when no
    /// adapter can be opened (tests rely on this: they fail, never skip).
    pub fn shared() -> Self {
        static SHARED: OnceLock<GpuBackend> = OnceLock::new();
        SHARED.get_or_init(|| Self::open(None).unwrap_or_else(|e| panic!("gpu backend: {e}"))).clone()
    }

    /// The adapter's description, backend and the limits the kernels respect.
    pub fn report(&self) -> String {
        let l = &self.rt.dev.limits;
        format!(
            "{}; driver {} {}; max storage binding {} MiB, max buffer {} MiB, workgroup memory {} KiB, \
             {} storage buffers per stage",
            describe(&self.rt.dev.info),
            self.rt.dev.info.driver,
            self.rt.dev.info.driver_info,
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroup_storage_size >> 10,
            l.max_storage_buffers_per_shader_stage
        )
    }

    /// Submits recorded work without waiting (the CPU can prepare the next step).
    pub fn flush(&self) {
        self.rt.flush();
    }

    /// `(bytes held by tensors and the pool, peak of that, bytes free in the pool)`.
    pub fn memory(&self) -> (u64, u64, u64) {
        self.rt.memory()
    }

    fn grid(&self, n: usize, per_group: usize) -> [u32; 3] {
        grid(n, per_group, self.rt.dev.limits.max_compute_workgroups_per_dimension)
    }

    /// Elementwise `entry` over `inputs`, written into the view `out_l` of `out`.
    fn map(
        &self,
        entry: &'static str,
        op: u32,
        scalar: f64,
        out: &GpuStorage,
        out_l: &Layout,
        inputs: &[(&GpuStorage, &Layout)],
    ) {
        let numel = out_l.numel();
        if numel == 0 {
            return;
        }
        let mut views: Vec<&[usize]> = vec![out_l.strides()];
        views.extend(inputs.iter().map(|(_, l)| l.strides()));
        let (shape, strides) = coalesce(out_l.shape(), &views);
        let mut p = Params::new();
        p.set(0, numel).set(1, shape.len()).set_f32(3, scalar).list(4, &shape);
        p.view(10, &strides[0], out_l.offset());
        let mut bindings = vec![(1, out)];
        for (i, (s, l)) in inputs.iter().enumerate() {
            p.view(17 + 7 * i, &strides[i + 1], l.offset());
            bindings.push((i as u32 + 2, *s));
        }
        self.rt.dispatch(&ELEMENTWISE, entry, &[("OP", f64::from(op))], p.words(), &bindings, self.grid(numel, WG));
    }

    fn fresh_map(
        &self,
        entry: &'static str,
        op: u32,
        scalar: f64,
        shape: &[usize],
        inputs: &[(&GpuStorage, &Layout)],
    ) -> GpuStorage {
        let out_l = Layout::contiguous(shape);
        let out = self.rt.output(out_l.numel());
        self.map(entry, op, scalar, &out, &out_l, inputs);
        out
    }

    /// `s` itself when the view is contiguous, else a contiguous copy; with the offset.
    fn dense<'a>(&self, s: &'a GpuStorage, l: &Layout) -> (Operand<'a>, usize) {
        if l.is_contiguous() {
            (Operand::Borrowed(s), l.offset())
        } else {
            (Operand::Owned(self.copy(s, l)), 0)
        }
    }

    /// Launches one of the row kernels (one workgroup per row).
    fn rows(&self, shader: &Shader, entry: &'static str, p: &Params, bindings: &[(u32, &GpuStorage)], rows: usize) {
        self.rt.dispatch(shader, entry, &[], p.words(), bindings, self.grid(rows, 1));
    }

    fn attention_params(&self, s: &AttentionShape, views: [&Layout; 4]) -> Params {
        assert!(
            s.kv_heads > 0 && s.q_heads.is_multiple_of(s.kv_heads),
            "attention: {} query heads not a multiple of {} kv heads",
            s.q_heads,
            s.kv_heads
        );
        assert!(s.seq_kv >= s.seq_q, "attention: {} queries but only {} keys", s.seq_q, s.seq_kv);
        assert!(
            s.head_dim <= MAX_HEAD_DIM,
            "gpu attention: head_dim {} over the kernels' register budget of {MAX_HEAD_DIM}",
            s.head_dim
        );
        let mut p = Params::new();
        p.list(0, &[s.seq_q, s.seq_kv, s.q_heads, s.q_heads / s.kv_heads, s.head_dim, usize::from(s.causal)]);
        p.set_f32(6, s.scale).set(7, s.q_offset());
        for (i, l) in views.iter().enumerate() {
            let st = l.strides();
            p.list(8 + 4 * i, &[l.offset(), st[0], st[1], st[2]]);
        }
        p
    }

    /// The view with a unit-stride last axis (the attention kernels read rows).
    fn rows_view<'a>(&self, s: &'a GpuStorage, l: &Layout) -> (Operand<'a>, Layout) {
        if l.strides()[3] == 1 || l.shape()[3] <= 1 {
            (Operand::Borrowed(s), l.clone())
        } else {
            (Operand::Owned(self.copy(s, l)), Layout::contiguous(l.shape()))
        }
    }
}

/// An operand as the kernel needs it: the caller's storage, or a contiguous copy.
enum Operand<'a> {
    Borrowed(&'a GpuStorage),
    Owned(GpuStorage),
}

impl std::ops::Deref for Operand<'_> {
    type Target = GpuStorage;
    fn deref(&self) -> &GpuStorage {
        match self {
            Operand::Borrowed(s) => s,
            Operand::Owned(s) => s,
        }
    }
}

impl Backend for GpuBackend {
    type Elem = f32;
    type Storage = GpuStorage;

    fn name(&self) -> String {
        format!("gpu: {}", describe(&self.rt.dev.info))
    }

    fn upload(&self, data: Vec<f32>) -> GpuStorage {
        self.rt.upload(&data)
    }

    fn to_vec(&self, s: &GpuStorage, l: &Layout) -> Vec<f32> {
        let (d, offset) = self.dense(s, l);
        self.rt.read(&d, offset, l.numel())
    }

    fn full(&self, len: usize, value: f32) -> GpuStorage {
        let out = self.rt.output(len);
        let mut p = Params::new();
        p.set(0, len).set_f32(3, f64::from(value));
        self.rt.dispatch(&ELEMENTWISE, "fill", &[], p.words(), &[(1, &out)], self.grid(len, WG));
        out
    }

    fn copy(&self, s: &GpuStorage, l: &Layout) -> GpuStorage {
        self.fresh_map("unary", COPY_OP, 0.0, l.shape(), &[(s, l)])
    }

    fn copy_into(&self, dst: &mut GpuStorage, dl: &Layout, src: &GpuStorage, sl: &Layout) {
        assert_eq!(dl.shape(), sl.shape(), "copy_into: destination and source shapes differ");
        self.map("unary", COPY_OP, 0.0, dst, dl, &[(src, sl)]);
    }

    fn unary(&self, op: UnaryOp, x: &GpuStorage, lx: &Layout) -> GpuStorage {
        let (code, s) = unary_code(op);
        self.fresh_map("unary", code, s, lx.shape(), &[(x, lx)])
    }

    fn unary_backward(&self, op: UnaryOp, x: &GpuStorage, lx: &Layout, dy: &GpuStorage, ldy: &Layout) -> GpuStorage {
        let (code, s) = unary_code(op);
        self.fresh_map("unary_backward", code, s, lx.shape(), &[(x, lx), (dy, ldy)])
    }

    fn binary(&self, op: BinaryOp, a: &GpuStorage, la: &Layout, b: &GpuStorage, lb: &Layout) -> GpuStorage {
        self.fresh_map("binary", binary_code(op), 0.0, la.shape(), &[(a, la), (b, lb)])
    }

    fn where_cond(
        &self,
        c: &GpuStorage,
        lc: &Layout,
        a: &GpuStorage,
        la: &Layout,
        b: &GpuStorage,
        lb: &Layout,
    ) -> GpuStorage {
        self.fresh_map("where_cond", 0, 0.0, lc.shape(), &[(c, lc), (a, la), (b, lb)])
    }

    fn reduce(&self, op: ReduceOp, x: &GpuStorage, lx: &Layout, axes: &[usize]) -> GpuStorage {
        let (mut kept_shape, mut kept_strides, mut red_shape, mut red_strides) = (vec![], vec![], vec![], vec![]);
        for (ax, (&d, &s)) in lx.shape().iter().zip(lx.strides()).enumerate() {
            if axes.contains(&ax) {
                red_shape.push(d);
                red_strides.push(s);
            } else {
                kept_shape.push(d);
                kept_strides.push(s);
            }
        }
        let n_out: usize = kept_shape.iter().product();
        let out = self.rt.output(n_out);
        let (ks, kv) = coalesce(&kept_shape, &[&kept_strides]);
        let (rs, rv) = coalesce(&red_shape, &[&red_strides]);
        let mut p = Params::new();
        p.set(0, n_out).set(1, ks.len()).set(2, rs.len()).set(3, red_shape.iter().product());
        p.list(4, &ks).view(10, &kv[0], lx.offset()).list(17, &rs).view(23, &rv[0], 0);
        let code = match op {
            ReduceOp::Sum => 0.0,
            ReduceOp::Max => 1.0,
            ReduceOp::Min => 2.0,
        };
        self.rt.dispatch(&REDUCE, "reduce", &[("OP", code)], p.words(), &[(1, &out), (2, x)], self.grid(n_out, 1));
        out
    }

    fn argmax(&self, x: &GpuStorage, lx: &Layout, axis: usize) -> Vec<u32> {
        let outer: Vec<usize> = (0..lx.rank()).filter(|&a| a != axis).collect();
        let shape: Vec<usize> = outer.iter().map(|&a| lx.shape()[a]).collect();
        let strides: Vec<usize> = outer.iter().map(|&a| lx.strides()[a]).collect();
        let n: usize = shape.iter().product();
        let len = lx.shape()[axis];
        if n == 0 || len == 0 {
            return vec![0; if len == 0 { 0 } else { n }];
        }
        let (cs, cv) = coalesce(&shape, &[&strides]);
        let out = self.rt.output(n);
        let mut p = Params::new();
        p.set(0, n).set(1, cs.len()).set(2, len).set(3, lx.strides()[axis]).list(4, &cs).view(10, &cv[0], lx.offset());
        self.rt.dispatch(&ARGMAX, "argmax", &[], p.words(), &[(1, &out), (2, x)], self.grid(n, WG));
        self.rt.read(&out, 0, n)
    }

    fn matmul(&self, a: &GpuStorage, la: &Layout, b: &GpuStorage, lb: &Layout) -> GpuStorage {
        let r = la.rank();
        assert!(r >= 2 && lb.rank() == r, "matmul: operands of shapes {:?} and {:?}", la.shape(), lb.shape());
        let (m, k, n) = (la.shape()[r - 2], la.shape()[r - 1], lb.shape()[r - 1]);
        assert_eq!(lb.shape()[r - 2], k, "matmul: inner dimensions of {:?} and {:?}", la.shape(), lb.shape());
        assert_eq!(la.shape()[..r - 2], lb.shape()[..r - 2], "matmul: batch axes differ");
        let batch_shape = &la.shape()[..r - 2];
        let batches: usize = batch_shape.iter().product();
        let out = self.rt.output(batches * m * n);
        if out.is_empty() {
            return out;
        }
        let (bs, bv) = coalesce(batch_shape, &[&la.strides()[..r - 2], &lb.strides()[..r - 2]]);
        assert!(bs.len() <= 4, "gpu matmul: {} independent batch axes, the kernel indexes 4", bs.len());
        let (sa, sb) = (la.strides(), lb.strides());
        let mut p = Params::new();
        p.list(0, &[m, n, k, bs.len()]);
        p.list(6, &[sa[r - 2], sa[r - 1], sb[r - 2], sb[r - 1], la.offset(), lb.offset()]);
        p.list(12, &bs).list(16, &bv[0]).list(20, &bv[1]);
        word(batches * m * n, "matmul output size");
        let max_z = self.rt.dev.limits.max_compute_workgroups_per_dimension as usize;
        let groups = [word(n.div_ceil(TILE), "matmul column tiles"), word(m.div_ceil(TILE), "matmul row tiles")];
        let mut first = 0;
        while first < batches {
            let count = (batches - first).min(max_z);
            p.set(4, count).set(5, first);
            self.rt.dispatch(
                &MATMUL,
                "matmul",
                &[],
                p.words(),
                &[(1, &out), (2, a), (3, b)],
                [groups[0], groups[1], count as u32],
            );
            first += count;
        }
        out
    }

    fn softmax(&self, x: &GpuStorage, lx: &Layout, log: bool) -> GpuStorage {
        let cols = last_dim(lx);
        let rows = lx.numel() / cols.max(1);
        let out = self.rt.output(lx.numel());
        let mut p = Params::new();
        p.list(0, &[rows, cols, lx.offset(), usize::from(log)]);
        self.rows(&SOFTMAX, "softmax", &p, &[(1, &out), (3, x)], rows);
        out
    }

    fn softmax_backward(&self, y: &GpuStorage, dy: &GpuStorage, l: &Layout, log: bool) -> GpuStorage {
        let cols = last_dim(l);
        let rows = l.numel() / cols.max(1);
        let out = self.rt.output(l.numel());
        let mut p = Params::new();
        p.list(0, &[rows, cols, l.offset(), usize::from(log)]);
        self.rows(&SOFTMAX, "softmax_backward", &p, &[(1, &out), (3, y), (4, dy)], rows);
        out
    }

    fn cross_entropy(
        &self,
        logits: &GpuStorage,
        l: &Layout,
        targets: &[u32],
        ignore: Option<u32>,
    ) -> (GpuStorage, GpuStorage) {
        let cols = last_dim(l);
        let rows = targets.len();
        check_targets(targets, cols, ignore);
        let (loss, lse) = (self.rt.output(rows), self.rt.output(rows));
        let t = self.rt.upload(targets);
        let mut p = Params::new();
        p.list(0, &[rows, cols, l.offset(), usize::from(ignore.is_some()), ignore.unwrap_or(0) as usize]);
        self.rows(&SOFTMAX, "cross_entropy", &p, &[(1, &loss), (2, &lse), (3, logits), (5, &t)], rows);
        (loss, lse)
    }

    fn cross_entropy_backward(
        &self,
        logits: &GpuStorage,
        l: &Layout,
        lse: &GpuStorage,
        targets: &[u32],
        ignore: Option<u32>,
        dloss: &GpuStorage,
    ) -> GpuStorage {
        let cols = last_dim(l);
        let rows = targets.len();
        check_targets(targets, cols, ignore);
        let out = self.rt.output(rows * cols);
        let t = self.rt.upload(targets);
        let mut p = Params::new();
        p.list(0, &[rows, cols, l.offset(), usize::from(ignore.is_some()), ignore.unwrap_or(0) as usize]);
        let bindings = [(1, &out), (3, logits), (4, lse), (5, &t), (6, dloss)];
        self.rows(&SOFTMAX, "cross_entropy_backward", &p, &bindings, rows);
        out
    }

    fn rms_norm(
        &self,
        x: &GpuStorage,
        l: &Layout,
        gain: Option<&GpuStorage>,
        eps: f64,
    ) -> (GpuStorage, NormStats<GpuStorage>) {
        let dim = last_dim(l);
        let rows = l.numel() / dim.max(1);
        let (y, rstd) = (self.rt.output(l.numel()), self.rt.output(rows));
        let mut p = Params::new();
        p.list(0, &[rows, dim, l.offset(), usize::from(gain.is_some())]).set_f32(4, eps);
        // Without a gain the kernel never reads binding 5; any buffer fills the slot.
        self.rows(&NORM, "rms_norm", &p, &[(1, &y), (3, &rstd), (4, x), (5, gain.unwrap_or(x))], rows);
        (y, NormStats { mean: None, rstd })
    }

    fn rms_norm_backward(
        &self,
        x: &GpuStorage,
        l: &Layout,
        gain: Option<&GpuStorage>,
        rstd: &GpuStorage,
        dy: &GpuStorage,
    ) -> NormGrads<GpuStorage> {
        let dim = last_dim(l);
        let rows = l.numel() / dim.max(1);
        let dx = self.rt.output(l.numel());
        let mut p = Params::new();
        p.list(0, &[rows, dim, l.offset(), usize::from(gain.is_some())]);
        let g = gain.unwrap_or(x);
        self.rows(&NORM, "rms_norm_backward", &p, &[(1, &dx), (4, x), (5, g), (6, dy), (8, rstd)], rows);
        let dgain = gain.map(|_| self.norm_dgain(x, l, 1, None, rstd, dy));
        NormGrads { dx, dgain, dbias: None }
    }

    fn group_norm(
        &self,
        x: &GpuStorage,
        l: &Layout,
        groups: usize,
        gain: Option<&GpuStorage>,
        bias: Option<&GpuStorage>,
        eps: f64,
    ) -> (GpuStorage, NormStats<GpuStorage>) {
        let ch = last_dim(l);
        assert!(groups > 0 && ch.is_multiple_of(groups), "group_norm: {ch} channels in {groups} groups");
        let rows = l.numel() / ch.max(1);
        let (y, mean, rstd) = (self.rt.output(l.numel()), self.rt.output(rows * groups), self.rt.output(rows * groups));
        let mut p = Params::new();
        p.list(0, &[rows * groups, ch, l.offset(), usize::from(gain.is_some())]).set_f32(4, eps);
        p.set(5, groups).set(6, usize::from(bias.is_some()));
        let bindings = [(1, &y), (2, &mean), (3, &rstd), (4, x), (5, gain.unwrap_or(x)), (6, bias.unwrap_or(x))];
        self.rows(&NORM, "group_norm", &p, &bindings, rows * groups);
        (y, NormStats { mean: Some(mean), rstd })
    }

    fn group_norm_backward(
        &self,
        x: &GpuStorage,
        l: &Layout,
        groups: usize,
        gain: Option<&GpuStorage>,
        has_bias: bool,
        mean: &GpuStorage,
        rstd: &GpuStorage,
        dy: &GpuStorage,
    ) -> NormGrads<GpuStorage> {
        let ch = last_dim(l);
        let rows = l.numel() / ch.max(1);
        let dx = self.rt.output(l.numel());
        let mut p = Params::new();
        p.list(0, &[rows * groups, ch, l.offset(), usize::from(gain.is_some())]).set(5, groups);
        let bindings = [(1, &dx), (4, x), (5, gain.unwrap_or(x)), (6, dy), (7, mean), (8, rstd)];
        self.rows(&NORM, "group_norm_backward", &p, &bindings, rows * groups);
        let dgain = gain.map(|_| self.norm_dgain(x, l, groups, Some(mean), rstd, dy));
        // The bias gradient is a column sum of dy: the reduce kernel's job.
        let dbias = has_bias.then(|| self.reduce(ReduceOp::Sum, dy, &Layout::contiguous(&[rows, ch]), &[0]));
        NormGrads { dx, dgain, dbias }
    }

    fn rope(&self, x: &GpuStorage, l: &Layout, cos: &GpuStorage, sin: &GpuStorage, args: RopeArgs) -> GpuStorage {
        let [batch, seq, heads, dh] = <[usize; 4]>::try_from(l.shape())
            .unwrap_or_else(|_| panic!("rope: expected [batch, seq, heads, head_dim], got {:?}", l.shape()));
        let half = dh / 2;
        let pairs = batch * seq * heads * half;
        let out = self.rt.output(l.numel());
        let mut p = Params::new();
        p.list(
            0,
            &[pairs, half, seq, heads, args.pos_offset, usize::from(args.interleaved), usize::from(args.inverse)],
        );
        p.set(7, l.offset()).list(8, l.strides());
        self.rt.dispatch(&ROPE, "rope", &[], p.words(), &[(1, &out), (2, x), (3, cos), (4, sin)], self.grid(pairs, WG));
        out
    }

    fn attention(
        &self,
        s: &AttentionShape,
        q: &GpuStorage,
        lq: &Layout,
        k: &GpuStorage,
        lk: &Layout,
        v: &GpuStorage,
        lv: &Layout,
    ) -> (GpuStorage, GpuStorage) {
        let ((q, lq), (k, lk), (v, lv)) = (self.rows_view(q, lq), self.rows_view(k, lk), self.rows_view(v, lv));
        let p = self.attention_params(s, [&lq, &lk, &lv, &lq]);
        let out = self.rt.output(s.batch * s.seq_q * s.q_heads * s.head_dim);
        let lse = self.rt.output(s.batch * s.q_heads * s.seq_q);
        let groups = [word(s.seq_q.div_ceil(TILE), "query blocks"), word(s.batch * s.q_heads, "batch·heads"), 1];
        let bindings = [(1, &out), (2, &lse), (3, &*q), (4, &*k), (5, &*v)];
        self.rt.dispatch(&ATTENTION, "attention_forward", &[], p.words(), &bindings, groups);
        (out, lse)
    }

    fn attention_backward(
        &self,
        s: &AttentionShape,
        q: &GpuStorage,
        lq: &Layout,
        k: &GpuStorage,
        lk: &Layout,
        v: &GpuStorage,
        lv: &Layout,
        out: &GpuStorage,
        lse: &GpuStorage,
        dout: &GpuStorage,
        ldout: &Layout,
    ) -> (GpuStorage, GpuStorage, GpuStorage) {
        let ((q, lq), (k, lk), (v, lv)) = (self.rows_view(q, lq), self.rows_view(k, lk), self.rows_view(v, lv));
        let (dout, ldout) = self.rows_view(dout, ldout);
        let p = self.attention_params(s, [&lq, &lk, &lv, &ldout]);
        let dq = self.rt.output(s.batch * s.seq_q * s.q_heads * s.head_dim);
        let dk = self.rt.output(s.batch * s.seq_kv * s.kv_heads * s.head_dim);
        let dv = self.rt.output(s.batch * s.seq_kv * s.kv_heads * s.head_dim);
        let q_groups = [word(s.seq_q.div_ceil(TILE), "query blocks"), word(s.batch * s.q_heads, "batch·heads"), 1];
        let bindings = [(1, &dq), (3, &*q), (4, &*k), (5, &*v), (6, out), (7, lse), (8, &*dout)];
        self.rt.dispatch(&ATTENTION, "attention_backward_dq", &[], p.words(), &bindings, q_groups);
        let kv_groups = [word(s.seq_kv.div_ceil(TILE), "key blocks"), word(s.batch * s.kv_heads, "batch·kv heads"), 1];
        let bindings = [(1, &dk), (2, &dv), (3, &*q), (4, &*k), (5, &*v), (6, out), (7, lse), (8, &*dout)];
        self.rt.dispatch(&ATTENTION, "attention_backward_dkv", &[], p.words(), &bindings, kv_groups);
        (dq, dk, dv)
    }

    fn index_select(&self, x: &GpuStorage, l: &Layout, axis: usize, ids: &[u32]) -> GpuStorage {
        check_ids("index_select", ids, l.shape()[axis]);
        assert!(l.rank() <= MAX_RANK, "gpu index_select: rank {} over {MAX_RANK}", l.rank());
        let mut shape = l.shape().to_vec();
        shape[axis] = ids.len();
        let numel: usize = shape.iter().product();
        let out = self.rt.output(numel);
        if numel == 0 {
            return out;
        }
        let ids_buf = self.rt.upload(ids);
        let mut p = Params::new();
        p.set(0, numel).set(1, l.rank()).set(2, axis).list(4, &shape).view(10, l.strides(), l.offset());
        self.rt.dispatch(
            &INDEX,
            "index_select",
            &[],
            p.words(),
            &[(1, &out), (2, x), (3, &ids_buf)],
            self.grid(numel, WG),
        );
        out
    }

    fn index_add(&self, src: &GpuStorage, l: &Layout, axis: usize, ids: &[u32], size: usize) -> GpuStorage {
        check_ids("index_add", ids, size);
        let inner: usize = l.shape()[axis + 1..].iter().product();
        let outer: usize = l.shape()[..axis].iter().product();
        let numel = outer * size * inner;
        let out = self.rt.output(numel);
        if numel == 0 {
            return out;
        }
        // CSR of source positions per output index, in ascending position order (the
        // CPU's summation order).
        let mut starts = vec![0u32; size + 1];
        for &i in ids {
            starts[i as usize + 1] += 1;
        }
        for j in 0..size {
            starts[j + 1] += starts[j];
        }
        let mut next = starts.clone();
        let mut positions = vec![0u32; ids.len()];
        for (k, &i) in ids.iter().enumerate() {
            positions[next[i as usize] as usize] = word(k, "index position");
            next[i as usize] += 1;
        }
        starts.extend_from_slice(&positions);
        let csr = self.rt.upload(&starts);
        let (src, offset) = self.dense(src, l);
        let mut p = Params::new();
        p.list(0, &[numel, size, inner, ids.len(), offset]);
        self.rt.dispatch(
            &INDEX,
            "index_add",
            &[],
            p.words(),
            &[(1, &out), (2, &*src), (3, &csr)],
            self.grid(numel, WG),
        );
        out
    }

    fn adamw_step(
        &self,
        param: &mut GpuStorage,
        grad: &GpuStorage,
        m: &mut GpuStorage,
        v: &mut GpuStorage,
        h: &AdamWStep,
    ) {
        // The views cover the first elements of each storage (a storage may be longer).
        let n = param.len().min(grad.len()).min(m.len()).min(v.len());
        let bc1 = 1.0 - h.beta1.powi(h.step as i32);
        let bc2 = 1.0 - h.beta2.powi(h.step as i32);
        let mut p = Params::new();
        p.set(0, n).set_f32(1, 1.0 - h.lr * h.weight_decay).set_f32(2, h.beta1).set_f32(3, h.beta2);
        p.set_f32(4, 1.0 - h.beta1).set_f32(5, 1.0 - h.beta2).set_f32(6, h.lr / bc1).set_f32(7, 1.0 / bc2.sqrt());
        p.set_f32(8, h.eps).set_f32(9, h.grad_scale);
        let bindings = [(1, &*param), (2, &*m), (3, &*v), (4, grad)];
        self.rt.dispatch(&OPTIM, "adamw", &[], p.words(), &bindings, self.grid(n, WG));
    }

    fn sgd_step(&self, param: &mut GpuStorage, grad: &GpuStorage, momentum: &mut GpuStorage, h: &SgdStep) {
        let n = param.len().min(grad.len()).min(momentum.len());
        let mut p = Params::new();
        p.set(0, n).set_f32(1, h.lr).set_f32(2, h.momentum).set_f32(3, h.weight_decay);
        p.set(4, usize::from(h.nesterov)).set_f32(5, h.grad_scale);
        let bindings = [(1, &*param), (2, &*momentum), (4, grad)];
        self.rt.dispatch(&OPTIM, "sgd", &[], p.words(), &bindings, self.grid(n, WG));
    }
}

impl GpuBackend {
    /// `dgain[c] = Σ_rows dy · x̂` (RMSNorm when `mean` is `None`).
    fn norm_dgain(
        &self,
        x: &GpuStorage,
        l: &Layout,
        groups: usize,
        mean: Option<&GpuStorage>,
        rstd: &GpuStorage,
        dy: &GpuStorage,
    ) -> GpuStorage {
        let ch = last_dim(l);
        let rows = l.numel() / ch.max(1);
        let out = self.rt.output(ch);
        let mut p = Params::new();
        p.list(0, &[rows, ch, l.offset()]).set(5, groups).set(6, usize::from(mean.is_some()));
        let bindings = [(1, &out), (4, x), (6, dy), (7, mean.unwrap_or(rstd)), (8, rstd)];
        self.rt.dispatch(&NORM, "norm_dgain", &[], p.words(), &bindings, self.grid(ch, WG));
        out
    }
}

#[track_caller]
fn check_targets(targets: &[u32], cols: usize, ignore: Option<u32>) {
    if let Some(&t) = targets.iter().find(|&&t| Some(t) != ignore && t as usize >= cols) {
        panic!("cross_entropy: target {t} out of range for {cols} classes");
    }
}
