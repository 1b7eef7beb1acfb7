"""A researcher's own model through every command. For each kind of model a user brings (a
model folder steer trained, an official DSS-GAN .pt, an official StyleGAN-XL .pkl, a
BigGAN-deep release folder) the walk is learned with --model once; after that render,
quantify, explore, invert, edit and finetune find the model from the files by themselves."""
import json
import re
import select
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO, run_steer, subprocess_env

DSSGAN_PT = FIXTURES / "dssgan_official" / "generator_full_ema.pt"
STYLEGAN_XL_PKL = FIXTURES / "stylegan_xl_official" / "network-snapshot.pkl"
PHOTO = REPO / "assets" / "zoom_strip.png"  # any RGB picture will do as the "photo"


def ok(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    ok(run_steer("train", "--data", "shapes", "--out", str(out), "--steps", "2", "--batch", "4",
                 "--resolution", "16", "--base-channels", "8", "--device", "cpu"))
    return out / "model"


@pytest.fixture(scope="module")
def biggan_model(tmp_path_factory):
    from steer.generators.biggan import random_biggan, save_biggan_folder
    folder = tmp_path_factory.mktemp("biggan") / "biggan-deep-128"
    save_biggan_folder(random_biggan(128, channel_width=4, batch=2), folder)
    return folder


def explore_one_image(walks_dir, tmp_path):
    """Start `steer explore --walks DIR` (no --model), fetch one image, stop it."""
    proc = subprocess.Popen([sys.executable, "-m", "steer.cli", "explore", "--walks", str(walks_dir), "--port", "0",
                             "--save-dir", str(tmp_path / "saves")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=subprocess_env(), cwd=tmp_path)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 180)
        line = proc.stdout.readline() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"no URL from steer explore: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        url = match.group(0)
        info = json.loads(urllib.request.urlopen(url + "api/info", timeout=120).read())
        walk = info["walks"][0]
        with urllib.request.urlopen(f"{url}api/image?walk={walk['id']}&seed=0&alpha=2", timeout=300) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/png"
            assert r.read()[:8] == b"\x89PNG\r\n\x1a\n"
        return info
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def flow(model, tmp_path, finetune_data=None, invert_class=None):
    walk_dir = tmp_path / "walks" / "zoom"
    ok(run_steer("walk", "--model", str(model), "--edit", "zoom", "--steps", "2", "--batch", "2",
                 "--out", str(walk_dir), "--device", "cpu"))
    walk = walk_dir / "walk.safetensors"
    from steer.walks import read_meta
    meta = read_meta(walk)
    assert meta["source"]["path"] == str(Path(model).resolve()) and len(meta["source"]["sha256"]) == 64

    # after the walk, no command is told the model
    ok(run_steer("render", "--walk", str(walk), "--seeds", "0,1", "--alphas", "0.5,2", "--out", str(tmp_path / "r")))
    record = json.loads((tmp_path / "r" / "render.json").read_text())
    assert record["source"] == meta["source"]
    quantified = ok(run_steer("quantify", "--walk", str(walk), "--samples", "4", "--alphas", "0.5,1,2",
                              "--data", "none", "--features", "none", "--out", str(tmp_path / "q")))
    assert "area" in quantified.stdout
    assert json.loads((tmp_path / "q" / "quantify.json").read_text())["source"] == meta["source"]
    info = explore_one_image(walk_dir.parent, tmp_path)
    assert info["walks"][0]["id"] == "zoom"
    invert_args = ["invert", "--image", str(PHOTO), "--walk", str(walk), "--allow-l2", "--project-steps", "3",
                   "--tune-steps", "2", "--out", str(tmp_path / "inv")]
    if invert_class is not None:
        invert_args += ["--class", str(invert_class)]
    ok(run_steer(*invert_args))
    inversion = json.loads((tmp_path / "inv" / "inversion.json").read_text())
    assert inversion["source"] == meta["source"]
    ok(run_steer("edit", "--inversion", str(tmp_path / "inv"), "--walk", str(walk), "--alphas", "0.5,2",
                 "--out", str(tmp_path / "edit")))
    assert (tmp_path / "edit" / "strip.png").is_file()
    if finetune_data is not None:
        ok(run_steer("finetune", "--walk", str(walk), "--data", finetune_data, "--out", str(tmp_path / "ft"),
                     "--steps", "3", "--warmup-steps", "1", "--batch", "4", "--device", "cpu"))
        card = (tmp_path / "ft" / "model" / "README.md").read_text()
        assert meta["source"]["sha256"] in card  # the fine-tuned model names its base
        tuned_meta = read_meta(tmp_path / "ft" / "walk.safetensors")
        assert tuned_meta["source"]["path"] == str((tmp_path / "ft" / "model").resolve())
        ok(run_steer("render", "--walk", str(tmp_path / "ft" / "walk.safetensors"), "--seeds", "0",
                     "--out", str(tmp_path / "r2")))
    return meta


@pytest.mark.slow
def test_flow_with_a_model_folder_steer_trained(trained_model, tmp_path):
    flow(trained_model, tmp_path, finetune_data="shapes")


@pytest.mark.slow  # a 256 px DSS-GAN through seven commands: about 3 minutes on 2 cores
def test_flow_with_the_official_dssgan_checkpoint(tmp_path):
    if not DSSGAN_PT.is_file():
        pytest.skip(f"fixture {DSSGAN_PT} is missing")
    data = tmp_path / "afhq"
    from PIL import Image
    for k in range(3):  # the fixture has 3 classes: a folder per class
        (data / f"class{k}").mkdir(parents=True)
        Image.open(PHOTO).convert("RGB").save(data / f"class{k}" / "a.png")
    flow(DSSGAN_PT, tmp_path, finetune_data=str(data), invert_class=0)


@pytest.mark.slow
def test_flow_with_the_official_stylegan_xl_snapshot(tmp_path):
    if not STYLEGAN_XL_PKL.is_file():
        pytest.skip(f"fixture {STYLEGAN_XL_PKL} is missing")
    flow(STYLEGAN_XL_PKL, tmp_path, invert_class=1)


@pytest.mark.slow  # a 128 px BigGAN-deep through six commands
def test_flow_with_a_biggan_deep_release_folder(biggan_model, tmp_path):
    flow(biggan_model, tmp_path, invert_class=207)


def test_a_moved_or_changed_model_is_one_line(trained_model, tmp_path):
    import shutil
    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    ok(run_steer("walk", "--model", str(model), "--edit", "zoom", "--steps", "1", "--batch", "2",
                 "--out", str(tmp_path / "w"), "--device", "cpu"))
    walk = str(tmp_path / "w" / "walk.safetensors")
    weights = model / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of the weights changed
    weights.write_bytes(bytes(data))
    changed = run_steer("render", "--walk", walk, "--out", str(tmp_path / "r"))
    assert changed.returncode == 2 and "changed" in changed.stderr and "--model" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    shutil.rmtree(model)
    moved = run_steer("quantify", "--walk", walk, "--samples", "2", "--data", "none", "--out", str(tmp_path / "q"))
    assert moved.returncode == 2 and "no longer there" in moved.stderr and "--model" in moved.stderr
    # --model overrides the recorded source
    ok(run_steer("render", "--walk", walk, "--model", str(trained_model), "--out", str(tmp_path / "r3")))
