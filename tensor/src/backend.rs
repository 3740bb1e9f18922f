//! The op set every device implements.
//!
//! Methods take storages with their [`Layout`]s and return fresh, contiguous storages.
//! Elementwise ops, copies, reductions and matmul accept any strided view; the fused ops
//! (norms, softmax, cross-entropy, attention, RoPE) document their own layout rules and
//! the [`crate::Tensor`] wrapper makes inputs contiguous where a method requires it.
//! Integer inputs (token ids, targets) travel as host slices; they are small.

use crate::element::Element;
use crate::layout::Layout;
use crate::ops::{AdamWStep, BinaryOp, ReduceOp, SgdStep, UnaryOp};
use std::fmt::Debug;

/// Saved statistics of a normalisation, needed by its backward pass.
#[derive(Debug)]
pub struct NormStats<S> {
    /// Per-(row, group) mean; `None` for RMSNorm.
    pub mean: Option<S>,
    /// Per-(row, group) reciprocal standard deviation (or reciprocal RMS).
    pub rstd: S,
}

/// Gradients of a normalisation with respect to its input and affine parameters.
#[derive(Debug)]
pub struct NormGrads<S> {
    pub dx: S,
    pub dgain: Option<S>,
    pub dbias: Option<S>,
}

/// Shape of a fused attention call: `q` is `[batch, seq, q_heads, head_dim]`, `k` and `v`
/// are `[batch, seq, kv_heads, head_dim]` (token-major, so that the projections feed it
/// without a permute). `q_heads` must be a multiple of `kv_heads` (grouped-query).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq_q: usize,
    pub seq_kv: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub causal: bool,
    pub scale: f64,
}

impl AttentionShape {
    /// Position of query row 0 among the keys: with a KV cache the queries are the last
    /// `seq_q` of `seq_kv` positions, and causality is measured from there.
    pub fn q_offset(&self) -> usize {
        self.seq_kv - self.seq_q
    }
}

/// Rotary position embedding settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeArgs {
    /// Position of the first token of the sequence axis (for KV-cached generation).
    pub pos_offset: usize,
    /// `true`: rotate pairs `(x[2i], x[2i+1])` (GPT-J / llama.cpp); `false`: rotate
    /// `(x[i], x[i + d/2])` (GPT-NeoX / Hugging Face "rotate half").
    pub interleaved: bool,
    /// Apply the inverse rotation (the adjoint, used by backward).
    pub inverse: bool,
}

pub trait Backend: Clone + Debug + Send + Sync + 'static {
    type Elem: Element;
    type Storage: Debug + Send + Sync;

    /// Human-readable device name, e.g. `"cpu"` or the GPU adapter.
    fn name(&self) -> String;

    // ---- data movement -------------------------------------------------------------
    fn upload(&self, data: Vec<Self::Elem>) -> Self::Storage;
    /// The view's elements in row-major order.
    fn to_vec(&self, s: &Self::Storage, l: &Layout) -> Vec<Self::Elem>;
    fn full(&self, len: usize, value: Self::Elem) -> Self::Storage;
    /// A contiguous copy of a strided view.
    fn copy(&self, s: &Self::Storage, l: &Layout) -> Self::Storage;
    /// Writes the view `src` into the view `dst` of `dst_storage` (same shape).
    fn copy_into(&self, dst_storage: &mut Self::Storage, dst: &Layout, src_storage: &Self::Storage, src: &Layout);

    // ---- elementwise ---------------------------------------------------------------
    fn unary(&self, op: UnaryOp, x: &Self::Storage, lx: &Layout) -> Self::Storage;
    /// `dy · f'(x)` for the unary op `f`.
    fn unary_backward(
        &self,
        op: UnaryOp,
        x: &Self::Storage,
        lx: &Layout,
        dy: &Self::Storage,
        ldy: &Layout,
    ) -> Self::Storage;
    /// `a op b`; both layouts have the output shape (broadcast axes carry stride 0).
    fn binary(&self, op: BinaryOp, a: &Self::Storage, la: &Layout, b: &Self::Storage, lb: &Layout) -> Self::Storage;
    /// `cond ≠ 0 ? a : b`; all three layouts have the output shape.
    #[allow(clippy::too_many_arguments)]
    fn where_cond(
        &self,
        cond: &Self::Storage,
        lc: &Layout,
        a: &Self::Storage,
        la: &Layout,
        b: &Self::Storage,
        lb: &Layout,
    ) -> Self::Storage;

    // ---- reductions ----------------------------------------------------------------
    /// Reduces `axes` (sorted, distinct); the result has the input's shape with those axes
    /// set to 1, stored contiguously.
    fn reduce(&self, op: ReduceOp, x: &Self::Storage, lx: &Layout, axes: &[usize]) -> Self::Storage;
    /// Index of the largest element along `axis` (first one on ties), row-major over the
    /// remaining axes.
    fn argmax(&self, x: &Self::Storage, lx: &Layout, axis: usize) -> Vec<u32>;

    // ---- linear algebra ------------------------------------------------------------
    /// `[..., M, K] × [..., K, N] → [..., M, N]`; both layouts carry the same (broadcast)
    /// batch axes.
    fn matmul(&self, a: &Self::Storage, la: &Layout, b: &Self::Storage, lb: &Layout) -> Self::Storage;

    // ---- fused ops (contiguous inputs unless stated) --------------------------------
    /// Softmax (or log-softmax) over the last axis.
    fn softmax(&self, x: &Self::Storage, lx: &Layout, log: bool) -> Self::Storage;
    /// Adjoint of [`Backend::softmax`] given its output `y`.
    fn softmax_backward(&self, y: &Self::Storage, dy: &Self::Storage, l: &Layout, log: bool) -> Self::Storage;
    /// Per-row cross-entropy of `logits` (`[rows, vocab]`) against `targets`; rows whose
    /// target equals `ignore` get loss 0. Returns `(loss[rows], logsumexp[rows])`.
    fn cross_entropy(
        &self,
        logits: &Self::Storage,
        l: &Layout,
        targets: &[u32],
        ignore: Option<u32>,
    ) -> (Self::Storage, Self::Storage);
    /// `dlogits = (softmax(logits) − onehot(target)) · dloss[row]`, zero on ignored rows.
    fn cross_entropy_backward(
        &self,
        logits: &Self::Storage,
        l: &Layout,
        lse: &Self::Storage,
        targets: &[u32],
        ignore: Option<u32>,
        dloss: &Self::Storage,
    ) -> Self::Storage;

    /// RMSNorm over the last axis of `x` (`[rows, dim]`), optional gain `[dim]`.
    fn rms_norm(
        &self,
        x: &Self::Storage,
        l: &Layout,
        gain: Option<&Self::Storage>,
        eps: f64,
    ) -> (Self::Storage, NormStats<Self::Storage>);
    fn rms_norm_backward(
        &self,
        x: &Self::Storage,
        l: &Layout,
        gain: Option<&Self::Storage>,
        rstd: &Self::Storage,
        dy: &Self::Storage,
    ) -> NormGrads<Self::Storage>;
    /// GroupNorm over the last axis of `x` (`[rows, channels]`) split into `groups`
    /// contiguous groups, with per-channel gain and bias. LayerNorm is `groups = 1`.
    #[allow(clippy::too_many_arguments)]
    fn group_norm(
        &self,
        x: &Self::Storage,
        l: &Layout,
        groups: usize,
        gain: Option<&Self::Storage>,
        bias: Option<&Self::Storage>,
        eps: f64,
    ) -> (Self::Storage, NormStats<Self::Storage>);
    #[allow(clippy::too_many_arguments)]
    fn group_norm_backward(
        &self,
        x: &Self::Storage,
        l: &Layout,
        groups: usize,
        gain: Option<&Self::Storage>,
        has_bias: bool,
        mean: &Self::Storage,
        rstd: &Self::Storage,
        dy: &Self::Storage,
    ) -> NormGrads<Self::Storage>;

    /// Rotary embedding of `x` (`[batch, seq, heads, head_dim]`, any strides) with tables
    /// `cos`, `sin` (`[max_pos, head_dim/2]`, contiguous).
    fn rope(
        &self,
        x: &Self::Storage,
        l: &Layout,
        cos: &Self::Storage,
        sin: &Self::Storage,
        args: RopeArgs,
    ) -> Self::Storage;

    /// Fused multi-head attention. `q`, `k`, `v` may be strided views whose last axis is
    /// contiguous. Returns the output (`[batch, seq_q, q_heads, head_dim]`, contiguous)
    /// and the per-row log-sum-exp of the scores (`[batch, q_heads, seq_q]`).
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        shape: &AttentionShape,
        q: &Self::Storage,
        lq: &Layout,
        k: &Self::Storage,
        lk: &Layout,
        v: &Self::Storage,
        lv: &Layout,
    ) -> (Self::Storage, Self::Storage);
    /// Gradients `(dq, dk, dv)`, contiguous and shaped like `q`, `k`, `v`.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        &self,
        shape: &AttentionShape,
        q: &Self::Storage,
        lq: &Layout,
        k: &Self::Storage,
        lk: &Layout,
        v: &Self::Storage,
        lv: &Layout,
        out: &Self::Storage,
        lse: &Self::Storage,
        dout: &Self::Storage,
        ldout: &Layout,
    ) -> (Self::Storage, Self::Storage, Self::Storage);

    // ---- indexing ------------------------------------------------------------------
    /// Picks `ids` along `axis`: the output's `axis` has length `ids.len()`.
    fn index_select(&self, x: &Self::Storage, l: &Layout, axis: usize, ids: &[u32]) -> Self::Storage;
    /// Adjoint of `index_select`: a zero tensor whose `axis` has length `size`, with slice
    /// `i` of `src` added at index `ids[i]` (repeated ids accumulate).
    fn index_add(&self, src: &Self::Storage, l: &Layout, axis: usize, ids: &[u32], size: usize) -> Self::Storage;

    // ---- optimizers (in place, contiguous, equal lengths) ----------------------------
    fn adamw_step(
        &self,
        param: &mut Self::Storage,
        grad: &Self::Storage,
        m: &mut Self::Storage,
        v: &mut Self::Storage,
        h: &AdamWStep,
    );
    fn sgd_step(&self, param: &mut Self::Storage, grad: &Self::Storage, momentum: &mut Self::Storage, h: &SgdStep);
}
