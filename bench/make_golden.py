"""Writes the golden debug states under tests/golden/ (llm.c's test_gpt2.c idea).

For each tiny configuration the PyTorch reference (bench/torch_ref.py) runs, in float64,
from fixed random weights and a fixed batch: the next-token logits, both losses, every
parameter gradient, then three AdamW steps on the same batch. model/tests/golden.rs checks
our forward, backward and optimizer against these files without PyTorch.

File layout (safetensors, every tensor F32; the computation was float64 and the weights
are exactly representable in f32, so both sides start from identical numbers):
  param.<name>   the weights the run starts from (names as in docs/checkpoint-format.md)
  grad.<name>    ∂loss/∂param at those weights
  step3.<name>   the weights after three AdamW steps
  logits         next-token logits [batch·seq, vocab]
metadata (strings, JSON): config (our ModelConfig), batch, seq, inputs, targets, loss,
loss_next, loss_next2, step_losses (the loss before each of the 3 steps), optimizer
(hyper-parameters), decayed (the parameters under weight decay), torch (version).

Run: bench/.venv/bin/python bench/make_golden.py   (after bench/setup_torch.sh)
"""

import json
import os

import torch
from safetensors.torch import save_file

from torch_ref import LM, Config, adamw, decays

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "golden")

BASE = {
    "vocab_size": 32,
    "d_model": 8,
    "n_layers": 2,
    "n_heads": 2,
    "n_kv_heads": 1,
    "ffn": "swiglu",
    "ffn_hidden": 12,
    "max_seq_len": 8,
    "rope_theta": 10000.0,
    "rope_interleaved": False,
    "norm_eps": 1e-6,
    "tie_embeddings": False,
    "init_std": 0.02,
}
MTP = {"enabled": True, "lambda": 0.3, "norm": "per-vector"}


def vwn(m, n, **kw):
    return {"m": m, "n": n, "embedding": "direct", "dynamic": True, "groupnorm_fallback": "skip",
            "decay_scales": False, **kw}


CASES = {
    "baseline": {**BASE, "arch": "baseline", "mtp": MTP},
    # r = 1.5: no GroupNorm before the reduce (spec §2.6).
    "vwn_2_3": {**BASE, "arch": "vwn", "vwn": vwn(2, 3), "mtp": MTP},
    # r = 4: GroupNorm with 4 groups of D.
    "vwn_2_8": {**BASE, "arch": "vwn", "vwn": vwn(2, 8), "mtp": MTP},
    # The other side of each switch: factorised embedding tied to the LM head, per-slot MTP
    # norms, GELU, interleaved rotary pairs, decay on the GHC scales, GQA off.
    "vwn_2_8_alt": {
        **BASE,
        "arch": "vwn",
        "n_kv_heads": 2,
        "ffn": "gelu",
        "rope_interleaved": True,
        "tie_embeddings": True,
        "vwn": vwn(2, 8, embedding="factorized", decay_scales=True),
        "mtp": {**MTP, "norm": "per-slot"},
    },
}
BATCH, SEQ = 2, 6
OPTIM = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "steps": 3}


def fixed_weights(model, gen):
    """Random weights away from the init (so every path, the dynamic GHC included, carries
    signal), drawn in float32 so that the file holds them exactly."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if leaf in ("static_alpha", "static_beta_t", "s_alpha", "s_beta_t", "gain", "norm_gain"):
                value = p.float() + 0.1 * noise  # perturb the structured init (identities, ones)
            elif leaf == "bias":
                value = 0.1 * noise
            else:
                value = 0.3 * noise
            p.copy_(value.double())


def run(name, model_cfg):
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    cfg = Config(model_cfg)
    model = LM(cfg).double()
    fixed_weights(model, gen)
    ids = torch.randint(0, cfg.vocab_size, (BATCH, SEQ + 1), generator=gen)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    tensors = {f"param.{n}": p.detach().float().clone() for n, p in model.named_parameters()}

    opt = adamw(model, OPTIM)
    step_losses = []
    for step in range(OPTIM["steps"]):
        opt.zero_grad(set_to_none=True)
        logits, loss, loss1, loss2 = model(inputs, targets)
        loss.backward()
        step_losses.append(loss.item())
        if step == 0:
            first = {"loss": loss.item(), "loss_next": loss1.item(), "loss_next2": loss2.item()}
            tensors["logits"] = logits.detach().reshape(BATCH * SEQ, -1).float()
            tensors.update({f"grad.{n}": p.grad.float().clone() for n, p in model.named_parameters()})
        opt.step()
    tensors.update({f"step3.{n}": p.detach().float().clone() for n, p in model.named_parameters()})

    meta = {
        "config": model_cfg,
        "batch": BATCH,
        "seq": SEQ,
        "inputs": inputs.flatten().tolist(),
        "targets": targets.flatten().tolist(),
        **first,
        "step_losses": step_losses,
        "optimizer": OPTIM,
        "decayed": sorted(n for n, p in model.named_parameters() if decays(n, p, cfg)),
        "torch": torch.__version__,
    }
    path = os.path.join(OUT, f"{name}.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path,
              metadata={k: json.dumps(v) for k, v in meta.items()})
    print(f"{path}: {os.path.getsize(path) / 1024:.1f} KiB, loss {first['loss']:.6f}")


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for name, model_cfg in CASES.items():
        run(name, model_cfg)


if __name__ == "__main__":
    main()
