#!/usr/bin/env bash
# The DSS-GAN subvector probe (`steer probe`) on the bundled dssgan-shapes32 (three scan
# directions) and on a baseline trained with the same recipe and budget but one direction.
# Run from the repository root; the baseline's checkpoints go to runs/ (resumable), the
# probe's JSON and figures to experiments/dlr_probe/results/.
#   OMP_NUM_THREADS=2 bash experiments/dlr_probe/run.sh
set -euo pipefail
results=experiments/dlr_probe/results
steer probe --model dssgan-shapes32 --samples 64 --seed 0 --device cpu --out "$results/dssgan-shapes32"
steer train --arch dssgan --data shapes --out runs/dssgan-1dir-shapes32 --resolution 32 --steps 2750 --batch 32 \
  --lr 2e-4 --lr-d 4e-4 --r1-gamma 1 --directions row_fwd --seed 0 --device cpu
steer probe --model runs/dssgan-1dir-shapes32/model --samples 64 --seed 0 --device cpu --out "$results/dssgan-1dir"
