#!/usr/bin/env bash
# Installs what the project needs beyond the Rust toolchain. Idempotent; CI runs it.
set -euo pipefail

# The Rust toolchain's components used by CI.
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

# Mesa's lavapipe (software Vulkan), so the GPU backend's tests run on machines without
# a GPU. Skipped when already installed; sudo only when not root.
if ! dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || ! dpkg -s libvulkan1 >/dev/null 2>&1; then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update
  "${as_root[@]}" apt-get install -y mesa-vulkan-drivers libvulkan1
fi
