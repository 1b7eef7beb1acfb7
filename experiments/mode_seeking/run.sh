#!/usr/bin/env bash
# The conv baseline trained on shapes with and without MSGAN's mode-seeking term, same
# budget and seed, then every offline measure of `steer evaluate` on each.
# Run from the repository root; runs/ holds the checkpoints (resumable), results go to
# experiments/mode_seeking/results/.  STEPS=3000 OMP_NUM_THREADS=1 bash experiments/mode_seeking/run.sh
set -euo pipefail
STEPS=${STEPS:-3000}
mkdir -p experiments/mode_seeking/results
for weight in 0 1; do
  run=runs/mode_seeking/ms$weight
  steer train --arch dcgan --data shapes --out "$run" --resolution 32 --steps "$STEPS" --batch 32 \
    --mode-seeking "$weight" --seed 0 --device cpu
  steer evaluate --model "$run/model" --samples 4000 --seed 0 --device cpu \
    --out "experiments/mode_seeking/results/ms$weight.json"
done
