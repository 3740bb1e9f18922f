#!/usr/bin/env bash
# Baseline vs VWN at 1.5x, 2x and 4x virtual width, each with and without the next-2-token
# head: same backbone, same data order, seed and token budget. Writes runs to $OUT (default
# runs/compare) and prints a markdown table; curves go to $OUT/val_loss.svg.
#   STEPS=600 docs/results/compare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin pretrain
out=${OUT:-runs/compare}
steps=${STEPS:-300}
common=(--preset small --steps "$steps" --seed 1234 --sample-tokens 0 --eval-interval 50 --eval-batches 16
        --checkpoint-interval 100000 --cache-dir runs/cache)
runs=()
for mtp in false true; do
  tag=$([ "$mtp" = true ] && echo mtp || echo ntp)
  ./target/release/pretrain "${common[@]}" --arch baseline --mtp.enabled "$mtp" --out-dir "$out/baseline-$tag"
  runs+=("$out/baseline-$tag")
  for mn in "2 3" "2 4" "2 8"; do
    set -- $mn
    ./target/release/pretrain "${common[@]}" --arch vwn --m "$1" --n "$2" --mtp.enabled "$mtp" --out-dir "$out/vwn-$1x$2-$tag"
    runs+=("$out/vwn-$1x$2-$tag")
  done
done
./target/release/pretrain compare "${runs[@]}" --plot "$out/val_loss.svg"
