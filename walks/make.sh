#!/usr/bin/env bash
# Re-learns the walks shipped for the bundled models (run from the repository root).
set -euo pipefail
for edit in zoom shift_x shift_y colour; do
  steer walk --model dcgan-shapes32 --edit "$edit" --walk linear --steps 800 --schedule constant --seed 0 \
    --out "walks/dcgan-shapes32/$edit"
  rm -f "walks/dcgan-shapes32/$edit/checkpoint.pt"
done
steer walk --model dssgan-shapes32 --edit zoom --walk linear --steps 800 --schedule constant --seed 0 \
  --out walks/dssgan-shapes32/zoom
rm -f walks/dssgan-shapes32/zoom/checkpoint.pt
for edit in zoom shift_x rotate; do
  steer walk --model dcgan-mnist --edit "$edit" --walk linear --steps 800 --schedule constant --seed 0 \
    --out "walks/dcgan-mnist/$edit"
  rm -f "walks/dcgan-mnist/$edit/checkpoint.pt"
done
for edit in zoom rotate shift_x; do
  steer walk --model dssgan-mnist --edit "$edit" --walk linear --steps 800 --schedule constant --seed 0 \
    --out "walks/dssgan-mnist/$edit"
  rm -f "walks/dssgan-mnist/$edit/checkpoint.pt"
done
