"""PyTorch reference of the baseline GPT and the Virtual Width Network (VWN).

Written from shared/spec/vwn.md (section numbers below) and docs/checkpoint-format.md, not
from the Rust code, so that the two implementations check each other. It reads our JSON
configuration (a run's `config.json`, or its `model` part) and our `model.safetensors`;
parameter names, shapes and layouts are those of docs/checkpoint-format.md, so
`load_state_dict(strict=True)` doubles as a check of that document.

Commands:
  torch_ref.py check --checkpoint DIR            load a checkpoint, print its losses on a fixed batch
  torch_ref.py train --config FILE [--steps N]   time training steps (bench/compare.py runs this)
  torch_ref.py gemm [--threads N]                GFLOP/s of a 1024³ GEMM, fp32 and bf16
"""

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100  # PyTorch's ignore_index; positions without a target


# ----------------------------------------------------------------------------- config


class Config:
    """The model configuration, with the defaults of the Rust `ModelConfig`."""

    def __init__(self, model: dict):
        g = model.get
        self.arch = g("arch", "vwn")
        self.vocab_size = g("vocab_size", 8192)
        self.d_model = g("d_model", 256)
        self.n_layers = g("n_layers", 4)
        self.n_heads = g("n_heads", 4)
        self.n_kv_heads = g("n_kv_heads", 4)
        self.ffn = g("ffn", "swiglu")
        self.ffn_hidden = g("ffn_hidden", 688)
        self.max_seq_len = g("max_seq_len", 256)
        self.rope_theta = g("rope_theta", 10000.0)
        self.rope_interleaved = g("rope_interleaved", False)
        self.norm_eps = g("norm_eps", 1e-6)
        self.tie_embeddings = g("tie_embeddings", False)
        self.init_std = g("init_std", 0.02)
        vwn, mtp = g("vwn", {}), g("mtp", {})
        self.vwn_m = vwn.get("m", 2)
        self.vwn_n = vwn.get("n", 8)
        self.embedding = vwn.get("embedding", "direct")
        self.dynamic = vwn.get("dynamic", True)
        self.groupnorm_fallback = vwn.get("groupnorm_fallback", "skip")
        self.decay_scales = vwn.get("decay_scales", False)
        self.mtp = mtp.get("enabled", False)
        self.mtp_lambda = mtp.get("lambda", 0.3)
        self.mtp_norm = mtp.get("norm", "per-vector")
        if self.arch not in ("baseline", "vwn"):
            raise ValueError(f"config: arch must be baseline or vwn, got {self.arch!r}")

    @property
    def vwn(self):
        return self.arch == "vwn"

    @property
    def m(self):
        return self.vwn_m if self.vwn else 1

    @property
    def n(self):
        return self.vwn_n if self.vwn else 1

    @property
    def d_b(self):
        """Slot width D/m (spec §1)."""
        return self.d_model // self.m

    @property
    def wide(self):
        """Over-width D' = n·D/m."""
        return self.n * self.d_b

    @property
    def head_dim(self):
        return self.d_model // self.n_heads

    def final_groups(self):
        """Groups of the final GroupNorm (spec §2.6, §9.7), or None when it is omitted."""
        if not self.vwn or self.n == self.m:
            return None
        if self.wide % self.d_model == 0:
            return self.wide // self.d_model
        return self.n if self.groupnorm_fallback == "per-slot" else None


def load_config(path):
    """A run's config.json (TrainConfig) or a bare model config."""
    with open(path) as f:
        doc = json.load(f)
    return Config(doc.get("model", doc)), doc


# ----------------------------------------------------------------------------- layers


def rms_norm(x, gain, eps):
    """x / sqrt(mean(x²) + eps) · gain over the last axis."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * gain


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.gain, self.eps)


class GroupNorm(nn.Module):
    """GroupNorm over contiguous groups of the last axis, per-channel affine (spec §2.6)."""

    def __init__(self, dim, groups, eps=1e-5):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.groups, self.eps = groups, eps

    def forward(self, x):
        shape = x.shape
        g = x.reshape(*shape[:-1], self.groups, shape[-1] // self.groups)
        mean = g.mean(-1, keepdim=True)
        var = (g - mean).pow(2).mean(-1, keepdim=True)
        g = (g - mean) * torch.rsqrt(var + self.eps)
        return g.reshape(shape) * self.gain + self.bias


def linear(d_in, d_out):
    return nn.Linear(d_in, d_out, bias=False)


def rope_tables(cfg, seq, dtype):
    """cos/sin [seq, head_dim/2]: angle p·θ^(−2i/head_dim), computed in float64."""
    half = cfg.head_dim // 2
    inv = cfg.rope_theta ** (-2.0 * torch.arange(half, dtype=torch.float64) / cfg.head_dim)
    ang = torch.arange(seq, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().to(dtype), ang.sin().to(dtype)


def apply_rope(x, cos, sin, interleaved):
    """Rotates [batch, seq, heads, head_dim]: pairs (x[i], x[i+half]) or (x[2i], x[2i+1])."""
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]
    else:
        x1, x2 = x.chunk(2, dim=-1)
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    r1, r2 = x1 * c - x2 * s, x1 * s + x2 * c
    if interleaved:
        return torch.stack((r1, r2), dim=-1).flatten(-2)
    return torch.cat((r1, r2), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.wqkv = linear(cfg.d_model, (cfg.n_heads + 2 * cfg.n_kv_heads) * hd)
        self.wo = linear(cfg.d_model, cfg.d_model)

    def forward(self, x, rope):
        cfg, (b, t, _) = self.cfg, x.shape
        hd, hq, hkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
        q, k, v = self.wqkv(x).split([hq * hd, hkv * hd, hkv * hd], dim=-1)
        q = apply_rope(q.view(b, t, hq, hd), *rope, cfg.rope_interleaved)
        k = apply_rope(k.view(b, t, hkv, hd), *rope, cfg.rope_interleaved)
        v = v.view(b, t, hkv, hd)
        # Grouped-query attention: query head h reads key/value head h // (hq / hkv).
        k, v = (z.repeat_interleave(hq // hkv, dim=2) for z in (k, v))
        o = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, scale=1.0 / math.sqrt(hd)
        )
        return self.wo(o.transpose(1, 2).reshape(b, t, hq * hd))


class FFN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.kind, self.hidden = cfg.ffn, cfg.ffn_hidden
        fan = 2 * cfg.ffn_hidden if cfg.ffn == "swiglu" else cfg.ffn_hidden
        self.w_in = linear(cfg.d_model, fan)
        self.w_out = linear(cfg.ffn_hidden, cfg.d_model)

    def forward(self, x):
        h = self.w_in(x)
        if self.kind == "swiglu":
            gate, up = h.split(self.hidden, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate="tanh")
        return self.w_out(h)


class GHC(nn.Module):
    """A dynamic GHC module around one sublayer (spec §2.2–§2.4, Algorithm 2)."""

    def __init__(self, cfg):
        super().__init__()
        m, n, d_b = cfg.m, cfg.n, cfg.d_b
        self.m, self.n, self.d_b, self.dynamic, self.eps = m, n, d_b, cfg.dynamic, cfg.norm_eps
        a = torch.zeros(n, m + n)  # §3.1: Å = [I_m; 0], Â = I_n
        a[:m, :m] = torch.eye(m)
        a[:, m:] = torch.eye(n)
        self.static_alpha = nn.Parameter(a)
        # Bᵀ (n × m), cyclic: slot j receives output segment j mod m.
        self.static_beta_t = nn.Parameter(torch.eye(m)[torch.arange(n) % m])
        if self.dynamic:
            self.w_alpha = nn.Parameter(torch.zeros(d_b, m + n))
            self.w_beta = nn.Parameter(torch.zeros(d_b, m))
            self.s_alpha = nn.Parameter(torch.ones(n, m + n))
            self.s_beta_t = nn.Parameter(torch.ones(n, m))
            self.norm_gain = nn.Parameter(torch.ones(d_b))

    def coefficients(self, h):
        """C = tanh(RMSNorm(H)·[W_α|W_β]/√d_b) ∘ [S_α|S_βᵀ] + [A|Bᵀ], per token (§2.4)."""
        cst = torch.cat([self.static_alpha, self.static_beta_t], dim=1)
        if not self.dynamic:
            return cst
        hn = rms_norm(h, self.norm_gain, self.eps)
        wc = torch.cat([self.w_alpha, self.w_beta], dim=1)
        sc = torch.cat([self.s_alpha, self.s_beta_t], dim=1)
        return torch.tanh(hn @ wc / math.sqrt(self.d_b)) * sc + cst

    def forward(self, h, sublayer):
        """h: [batch, seq, n, d_b] → the state after `sublayer` (§2.3)."""
        m, n = self.m, self.n
        b, t = h.shape[:2]
        c = self.coefficients(h)
        alpha, beta_t = c[..., : m + n], c[..., m + n :]
        mix = torch.einsum("...ik,...id->...kd", alpha.expand(b, t, n, m + n), h)  # αᵀ·H
        x = mix[..., :m, :].reshape(b, t, m * self.d_b)
        y = sublayer(x).reshape(b, t, m, self.d_b)
        return torch.einsum("...jk,...kd->...jd", beta_t.expand(b, t, n, m), y) + mix[..., m:, :]


class Layer(nn.Module):
    """One transformer layer: pre-norm attention and FFN, joined by residual adds or GHC."""

    def __init__(self, cfg):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = FFN(cfg)
        if cfg.vwn:
            self.ghc_attn = GHC(cfg)
            self.ghc_ffn = GHC(cfg)
        self.vwn = cfg.vwn

    def forward(self, h, rope):
        attn = lambda x: self.attn(self.attn_norm(x), rope)  # noqa: E731
        ffn = lambda x: self.ffn(self.ffn_norm(x))  # noqa: E731
        if not self.vwn:
            h = h + attn(h)
            return h + ffn(h)
        return self.ghc_ffn(self.ghc_attn(h, attn), ffn)


class Embedding(nn.Module):
    """Token table [V, D'] (direct) or [V, D] expanded by W_expand [D', D] (spec §2.1)."""

    def __init__(self, cfg):
        super().__init__()
        factorized = cfg.vwn and cfg.embedding == "factorized"
        self.weight = nn.Parameter(torch.zeros(cfg.vocab_size, cfg.d_model if factorized or not cfg.vwn else cfg.wide))
        if factorized:
            self.expand = linear(cfg.d_model, cfg.wide)
        self.factorized = factorized

    def forward(self, ids):
        e = F.embedding(ids, self.weight)
        return self.expand(e) if self.factorized else e


class Final(nn.Module):
    """GroupNorm, reduce (spec §2.6) and the final RMSNorm before the LM head."""

    def __init__(self, cfg):
        super().__init__()
        groups = cfg.final_groups()
        if groups is not None:
            self.groupnorm = GroupNorm(cfg.wide, groups)
        if cfg.vwn:
            self.reduce = linear(cfg.wide, cfg.d_model)
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.has_gn, self.vwn = groups is not None, cfg.vwn

    def forward(self, x):
        if self.has_gn:
            x = self.groupnorm(x)
        if self.vwn:
            x = self.reduce(x)
        return self.norm(x)


class MTP(nn.Module):
    """Next-2-token head (spec §4): [H_norm(h_i); E_norm(e(t_{i+1}))] → proj → one layer."""

    def __init__(self, cfg):
        super().__init__()
        norm_dim = cfg.d_b if cfg.mtp_norm == "per-slot" else cfg.wide
        self.h_norm = RMSNorm(norm_dim, cfg.norm_eps)
        self.e_norm = RMSNorm(norm_dim, cfg.norm_eps)
        # VWN: the block-level linear 2·d_b → d_b shared by all slots; baseline: dense 2D → D.
        self.proj = linear(2 * cfg.d_b, cfg.d_b) if cfg.vwn else linear(2 * cfg.d_model, cfg.d_model)
        self.block = Layer(cfg)
        self.cfg = cfg

    def forward(self, h, e, rope):
        cfg = self.cfg

        def norm(module, x):
            if cfg.mtp_norm == "per-slot" or not cfg.vwn:
                return module(x)
            return module(x.flatten(-2)).view(x.shape)  # over the whole D' vector

        return self.block(self.proj(torch.cat([norm(self.h_norm, h), norm(self.e_norm, e)], dim=-1)), rope)


class LM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = Embedding(cfg)
        self.blocks = nn.ModuleList(Layer(cfg) for _ in range(cfg.n_layers))
        self.final = Final(cfg)
        if not cfg.tie_embeddings:
            self.lm_head = linear(cfg.d_model, cfg.vocab_size)
        if cfg.mtp:
            self.mtp = MTP(cfg)

    def head_weight(self):
        return self.embed.weight if self.cfg.tie_embeddings else self.lm_head.weight

    def state(self, ids):
        """The residual state: [batch, seq, D] or [batch, seq, n, d_b] (row-major slots, §1)."""
        e = self.embed(ids)
        return e.view(*ids.shape, self.cfg.n, self.cfg.d_b) if self.cfg.vwn else e

    def head(self, h):
        x = h.flatten(-2) if self.cfg.vwn else h
        return self.final(x) @ self.head_weight().t()

    def forward(self, inputs, targets):
        """Logits [batch, seq, V], the total loss and its parts (next, next-2 or None)."""
        rope = rope_tables(self.cfg, inputs.shape[1], self.embed.weight.dtype)
        h = self.state(inputs)
        for layer in self.blocks:
            h = layer(h, rope)
        logits = self.head(h)
        loss1 = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        if not self.cfg.mtp:
            return logits, loss1, loss1, None
        # Position i predicts token i+2 = targets[i+1]; the last position has no target.
        t2 = torch.cat([targets[:, 1:], torch.full_like(targets[:, :1], IGNORE)], dim=1)
        h2 = self.mtp(h, self.state(targets), rope)
        loss2 = F.cross_entropy(self.head(h2).flatten(0, 1), t2.flatten(), ignore_index=IGNORE)
        return logits, loss1 + self.cfg.mtp_lambda * loss2, loss1, loss2


# ----------------------------------------------------------------------------- optimizer


def decays(name, param, cfg):
    """Weight decay on matrices (linear weights, embeddings, W_α, W_β); never on the static
    GHC matrices (spec §3.2), on the scales S_α, S_β only with `decay_scales` (§9.5), never
    on gains and biases."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("static_alpha", "static_beta_t"):
        return False
    if leaf in ("s_alpha", "s_beta_t"):
        return cfg.decay_scales
    return param.dim() >= 2


# Our OptimConfig's defaults, for configs that leave a field out.
OPTIM_DEFAULTS = {"lr": 3e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8}


def adamw(model, optim):
    """torch.optim.AdamW with two parameter groups, hyper-parameters from our OptimConfig."""
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if decays(n, p, model.cfg)], "weight_decay": optim["weight_decay"]},
        {"params": [p for n, p in named if not decays(n, p, model.cfg)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=optim["lr"], betas=(optim["beta1"], optim["beta2"]), eps=optim["eps"])


# ----------------------------------------------------------------------------- checkpoints


def load_checkpoint(model, path):
    """Loads model.safetensors by name; every tensor must match (docs/checkpoint-format.md)."""
    from safetensors.torch import load_file

    tensors = load_file(path)
    dtype = model.embed.weight.dtype
    model.load_state_dict({k: v.to(dtype) for k, v in tensors.items()}, strict=True)


# ----------------------------------------------------------------------------- commands


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_check(args):
    cfg, _ = load_config(os.path.join(args.checkpoint, "config.json"))
    model = LM(cfg)
    load_checkpoint(model, os.path.join(args.checkpoint, "model.safetensors"))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1), generator=g)
    with torch.no_grad():
        _, total, l1, l2 = model(ids[:, :-1], ids[:, 1:])
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"params": n, "loss": total.item(), "next": l1.item(), "next2": None if l2 is None else l2.item()}))


def cmd_train(args):
    torch.set_num_threads(args.threads)
    cfg, doc = load_config(args.config)
    batch, seq = doc.get("batch_size", 16), doc.get("seq_len", 256)
    torch.manual_seed(doc.get("seed", 0))
    model = LM(cfg)
    # Weights need not match ours for timing, only be sane: N(0, init_std) on matrices.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and not name.rsplit(".", 1)[-1].startswith(("static_", "s_", "w_")):
                p.normal_(0.0, cfg.init_std)
    optim_cfg = doc.get("optim", {})
    opt = adamw(model, {k: optim_cfg.get(k, d) for k, d in OPTIM_DEFAULTS.items()})
    clip = optim_cfg.get("grad_clip", 1.0)
    g = torch.Generator().manual_seed(1)
    times, losses = [], []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(0, cfg.vocab_size, (batch, seq + 1), generator=g)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            _, loss, _, _ = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if step >= args.warmup:
            times.append(dt)
    ms = statistics.median(times) * 1e3
    print(
        json.dumps(
            {
                "impl": "pytorch-bf16" if args.bf16 else "pytorch-fp32",
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "steps": args.steps,
                "ms_per_step": ms,
                "tokens_per_s": batch * seq / (ms / 1e3),
                "peak_rss_mib": peak_rss_mib(),
                "losses": losses,
            }
        )
    )


def cmd_gemm(args):
    """GFLOP/s of a 1024³ GEMM (torch.mm), fp32 and bf16: PyTorch's ceiling on this machine."""
    torch.set_num_threads(args.threads)
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    result = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, y = a.to(dtype), b.to(dtype)
        times = []
        for rep in range(13):
            t0 = time.perf_counter()
            torch.mm(x, y)
            if rep >= 3:  # warm-up first
                times.append(time.perf_counter() - t0)
        result[name] = 2 * n**3 / statistics.median(times) / 1e9
    print(json.dumps(result))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="load a checkpoint folder and print its losses on a fixed random batch")
    c.add_argument("--checkpoint", required=True, help="folder with config.json and model.safetensors")
    c.add_argument("--batch", type=int, default=2)
    c.add_argument("--seq", type=int, default=32)
    t = sub.add_parser("train", help="time training steps of a configuration on random tokens")
    t.add_argument("--config", required=True, help="a run's config.json (our TrainConfig)")
    t.add_argument("--steps", type=int, default=5, help="timed steps")
    t.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--bf16", action="store_true", help="bf16 autocast (fp32 weights and optimizer)")
    m = sub.add_parser("gemm", help="GFLOP/s of a 1024³ torch.mm, fp32 and bf16")
    m.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    {"check": cmd_check, "train": cmd_train, "gemm": cmd_gemm}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
