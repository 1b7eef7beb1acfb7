#!/usr/bin/env bash
# The DSS-GAN subvector probe (`steer probe`) on the bundled dssgan-shapes32 (three scan
# directions, 2750 steps), and on two models with the same recipe and a 1500-step budget:
# three directions (the bundled run's own state at step 1500) and one direction, the baseline.
# Run from the repository root; checkpoints go to runs/ (resumable), the probe's JSON and
# figures to experiments/dlr_probe/results/.
#   OMP_NUM_THREADS=2 bash experiments/dlr_probe/run.sh
set -euo pipefail
results=experiments/dlr_probe/results
recipe=(--arch dssgan --data shapes --resolution 32 --batch 32 --lr 2e-4 --lr-d 4e-4 --r1-gamma 1 --seed 0 --device cpu)
probe=(--samples 64 --seed 0 --device cpu)
steer probe --model dssgan-shapes32 "${probe[@]}" --out "$results/dssgan-shapes32"
steer train "${recipe[@]}" --steps 1500 --out runs/dssgan-3dir-1500
steer probe --model runs/dssgan-3dir-1500/model "${probe[@]}" --out "$results/dssgan-3dir-1500"
steer train "${recipe[@]}" --steps 1500 --directions row_fwd --out runs/dssgan-1dir-1500
steer probe --model runs/dssgan-1dir-1500/model "${probe[@]}" --out "$results/dssgan-1dir-1500"
