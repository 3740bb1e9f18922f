#!/usr/bin/env bash
# Side-by-side training throughput, ours against PyTorch eager fp32 (and bf16 autocast):
# the default `pretrain` config, a baseline of the same backbone, and a larger one
# (D = 512, 8 layers, seq 512), on 1 and 2 threads, in one run. Options go to
# bench/compare.py (--steps N, --warmup N, --reps N, --threads 1,2, --cases default,baseline,large,
# --no-bf16). Needs bench/setup_torch.sh first. The run in docs/torch-reference.md (--steps 2
# --warmup 1, --reps 2 on 2 threads and 1 on 1 thread, no bf16) took 28 minutes on the loaded machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c "import torch" 2>/dev/null; then
    echo "PyTorch is not installed: run bench/setup_torch.sh first" >&2
    exit 1
fi
cargo build --release --quiet --bin pretrain --bin bench
exec bench/.venv/bin/python bench/compare.py "$@"
