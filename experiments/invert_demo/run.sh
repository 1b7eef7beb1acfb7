#!/usr/bin/env bash
# The README's "Invert and edit a photo" figure: scikit-learn's sample photo china.jpg
# inverted into the bundled dssgan-shapes32 with `steer invert`, then edited with its zoom
# walk by `steer edit`; figure.py draws the crop, both reconstructions and the edited strip
# into assets/invert_china.png. Run from the repository root (about 2 minutes on one core):
#   OMP_NUM_THREADS=1 bash experiments/invert_demo/run.sh
# Without LPIPS's AlexNet weights in torch's cache, --allow-l2 inverts with L2 alone.
set -euo pipefail
command -v steer >/dev/null || steer() { python -m steer.cli "$@"; }  # not installed: run from source
out=runs/invert_demo
mkdir -p "$out"
python -c "from PIL import Image; from sklearn.datasets import load_sample_image; \
Image.fromarray(load_sample_image('china.jpg')).save('$out/china.jpg', quality=95)"
steer invert --model dssgan-shapes32 --image "$out/china.jpg" --allow-l2 --seed 0 --out "$out/china" \
  --walk walks/dssgan-shapes32/zoom/walk.safetensors
steer edit --inversion "$out/china" --walk walks/dssgan-shapes32/zoom/walk.safetensors --alphas 0.25,0.5,1,2,4
python experiments/invert_demo/figure.py "$out/china" walks/dssgan-shapes32/zoom/walk.safetensors \
  assets/invert_china.png
