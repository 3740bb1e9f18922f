#!/usr/bin/env bash
# Installs CPU PyTorch into bench/.venv (created as by setup_python.sh if missing), plus
# numpy and safetensors: the reference that bench/torch_ref.py, bench/make_golden.py and
# bench/compare.sh run.
#
# Size warning: only PyPI is reachable here, and PyPI's Linux torch wheel is the CUDA build
# (about 540 MB) that links the NVIDIA runtime libraries at import, even on a machine
# without a GPU. A plain `pip install torch` pulls ~4 GB of CUDA wheels plus triton. This
# script installs the leanest set that imports and runs on the CPU: torch without its
# declared dependencies, its pure-Python dependencies, and only the CUDA wheels that
# torch's shared libraries list as needed at load time (no triton, cuda-bindings,
# cusolver, nvtx or toolkit extras). The total is printed at the end; pip warns that the
# skipped wheels are "not installed", which is expected.
set -euo pipefail
cd "$(dirname "$0")"
TORCH=2.15.0
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
echo "downloading torch $TORCH (CUDA wheel, ~540 MB) and the CUDA runtime libraries it loads (~2.5 GB)..."
.venv/bin/pip install --quiet --no-deps "torch==$TORCH"
.venv/bin/pip install --quiet filelock "typing-extensions>=4.13" "sympy>=1.13.3" "networkx>=2.5.1" jinja2 \
    "fsspec>=0.8.5" "setuptools>=77" numpy safetensors
# DT_NEEDED by libtorch_cpu / libtorch_cuda / libtorch_python (versions as torch pins them).
.venv/bin/pip install --quiet --no-deps \
    nvidia-cuda-runtime==13.2.86 nvidia-cuda-cupti==13.2.86 nvidia-cuda-nvrtc==13.2.86 \
    nvidia-cublas==13.4.1.3 nvidia-cufft==12.2.0.57 nvidia-cufile==1.17.1.22 \
    nvidia-cusparse==12.7.10.12 nvidia-nvjitlink==13.5.37 nvidia-cusparselt-cu13==0.8.1 \
    nvidia-nccl-cu13==2.30.7 nvidia-nvshmem-cu13==3.7.2 nvidia-cudnn-cu13==9.26.0.51
.venv/bin/python -c "
import torch, safetensors, numpy
x = torch.randn(64, 64, requires_grad=True)
(x @ x).sum().backward()
print('torch', torch.__version__, '(cpu capability', torch.backends.cpu.get_cpu_capability() + ')',
      'safetensors', safetensors.__version__, 'numpy', numpy.__version__, 'ready in bench/.venv')"
echo "bench/.venv size: $(du -sh .venv | cut -f1)"
