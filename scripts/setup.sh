#!/usr/bin/env bash
# Installs what the project needs beyond the Rust toolchain. Idempotent; CI runs it.
set -euo pipefail

# The Rust toolchain's components used by CI.
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
