#!/usr/bin/env bash
# Creates bench/.venv with Hugging Face `tokenizers`, the reference that
# `cargo run --release --bin bench -- tokenizer` measures against.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet "tokenizers==0.23.3"
.venv/bin/python -c "import tokenizers; print('tokenizers', tokenizers.__version__, 'ready in bench/.venv')"
