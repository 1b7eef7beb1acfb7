"""The CLI's user mistakes: one line on stderr, exit status 2, no traceback."""
import os

import pytest

from steer.walks import LinearWalk, save

from tests.conftest import REPO, assert_user_error, run_steer


def test_unknown_model():
    assert_user_error(run_steer("walk", "--model", "no-such-model", "--steps", "1"), "unknown model", "no-such-model")


def test_unknown_edit(tiny_model_dir):
    assert_user_error(run_steer("walk", "--model", str(tiny_model_dir), "--edit", "squash", "--steps", "1"),
                      "unknown edit", "squash")


def test_unwritable_out(tiny_model_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_user_error(run_steer("walk", "--model", str(tiny_model_dir), "--steps", "1", "--out", str(blocker / "sub")),
                      "cannot write", "--out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_out(tiny_model_dir, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    assert_user_error(run_steer("walk", "--model", str(tiny_model_dir), "--steps", "1", "--out", str(ro)), "cannot write")


def test_missing_lpips_weights(tiny_model_dir, tmp_path):
    result = run_steer("walk", "--model", str(tiny_model_dir), "--loss", "lpips", "--steps", "1",
                       "--out", str(tmp_path / "w"), env={"TORCH_HOME": str(tmp_path / "empty-torch-home")})
    assert_user_error(result, "alexnet-owt-7be5be79.pth", str(tmp_path / "empty-torch-home"))


def test_alpha_out_of_range(tiny_generator, tiny_model_dir, tmp_path):
    walk_file = tmp_path / "zoom.safetensors"
    save(LinearWalk((8,)), walk_file, {"model": str(tiny_model_dir), "space": "z", "edit": "zoom"})
    assert_user_error(run_steer("render", "--walk", str(walk_file), "--alphas", "0.5,-2", "--out", str(tmp_path / "r")),
                      "out of range", "-2")
    assert_user_error(run_steer("render", "--walk", str(walk_file), "--alphas", "0.5,big", "--out", str(tmp_path / "r")),
                      "--alphas")


def test_missing_walk_file(tmp_path):
    assert_user_error(run_steer("render", "--walk", str(tmp_path / "none.safetensors")), "does not exist")


def test_class_out_of_range(tiny_model_dir, tmp_path):
    assert_user_error(run_steer("sample", "--model", str(tiny_model_dir), "--class", "7",
                                "--out", str(tmp_path / "s.png")), "--class 7")


def test_bad_option_value_is_exit_2():
    result = run_steer("walk", "--steps", "zero")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_walk_then_render_end_to_end(tiny_model_dir, tmp_path):
    out = tmp_path / "walk"
    result = run_steer("walk", "--model", str(tiny_model_dir), "--edit", "zoom", "--steps", "20", "--out", str(out))
    assert result.returncode == 0, result.stderr
    for name in ("walk.safetensors", "loss.png", "loss.json", "strip.png", "checkpoint.pt"):
        assert (out / name).is_file(), name
    render_out = tmp_path / "render"
    result = run_steer("render", "--walk", str(out / "walk.safetensors"), "--model", str(tiny_model_dir),
                       "--alphas", "0.5,1,2", "--seeds", "0,1", "--targets", "--out", str(render_out))
    assert result.returncode == 0, result.stderr
    assert (render_out / "strip.png").is_file() and (render_out / "strip.gif").is_file()
    from PIL import Image
    with Image.open(render_out / "strip.gif") as gif:
        assert gif.n_frames == 4  # 3 alphas played forward and back


def test_out_holding_another_walk_is_refused(tiny_model_dir, tmp_path):
    out = tmp_path / "walk"
    assert run_steer("walk", "--model", str(tiny_model_dir), "--edit", "zoom", "--steps", "2", "--out", str(out)).returncode == 0
    assert_user_error(run_steer("walk", "--model", str(tiny_model_dir), "--edit", "colour", "--steps", "2",
                                "--out", str(out)), "other settings", 'edit "zoom" -> "colour"', "--out", "--restart")


def test_missing_data_folder(tmp_path):
    assert_user_error(run_steer("train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "run")),
                      "does not exist")


def test_closed_form_walk_then_render(tmp_path):
    """`steer walk --method closed-form` writes a linear walk that `steer render` renders."""
    from steer.walks import load
    out = tmp_path / "cf"
    result = run_steer("walk", "--model", "dcgan-shapes32", "--method", "closed-form", "--edit", "zoom",
                       "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "direction solved in" in result.stdout and (out / "strip.png").is_file()
    walk, meta = load(out / "walk.safetensors")
    assert meta["walk"] == "linear" and meta["method"] == "closed-form" and meta["edit"] == "zoom"
    assert meta["held_out_l2"] < meta["zero_walk_l2"]
    assert walk.directions.abs().sum() > 0
    result = run_steer("render", "--walk", str(out / "walk.safetensors"), "--alphas", "0.5,1,2",
                       "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "strip.png").is_file() and (tmp_path / "r" / "strip.gif").is_file()


def test_closed_form_user_errors(tiny_model_dir, tmp_path):
    assert_user_error(run_steer("walk", "--model", str(tiny_model_dir), "--method", "closed-form", "--edit", "colour",
                                "--out", str(tmp_path / "c")), "zoom, shift_x, shift_y")
    assert_user_error(run_steer("walk", "--model", str(tiny_model_dir), "--method", "closed-form", "--walk",
                                "nonlinear", "--out", str(tmp_path / "n")), "closed-form", "linear")


def test_class_names_and_bad_class(tmp_path):
    assert run_steer("sample", "--model", "dssgan-shapes32", "-n", "2", "--class", "circle", "--out", str(tmp_path / "a.png")).returncode == 0
    assert run_steer("sample", "--model", "dssgan-shapes32", "-n", "3", "--classes", "Square,3", "--out", str(tmp_path / "b.png")).returncode == 0
    assert_user_error(run_steer("sample", "--model", "dssgan-shapes32", "--class", "blob", "--out", str(tmp_path / "c.png")), "unknown class", "blob")
    assert_user_error(run_steer("sample", "--model", "dssgan-shapes32", "--classes", "circle,9", "--out", str(tmp_path / "d.png")),
                      "--classes 9", "out of range")


@pytest.fixture
def biggan_folder(tmp_path):
    from steer.generators.biggan import random_biggan, save_biggan_folder
    folder = tmp_path / "biggan-deep-128"
    save_biggan_folder(random_biggan(128, channel_width=8, batch=2), folder)
    return folder


@pytest.mark.slow
def test_biggan_folder_through_the_cli(biggan_folder, tmp_path):
    """A folder of pytorch_model.bin + config.json works with sample, walk and render, with
    class names and a truncation that reaches synthesis."""
    from PIL import Image
    import numpy as np
    shots = {}
    for t in ("0.3", "1.0"):
        out = tmp_path / f"s{t}.png"
        result = run_steer("sample", "--model", str(biggan_folder), "-n", "2", "--classes", "golden retriever,980",
                           "--truncation", t, "--out", str(out))
        assert result.returncode == 0, result.stderr
        shots[t] = np.asarray(Image.open(out), dtype=np.float32)
    assert np.abs(shots["0.3"] - shots["1.0"]).mean() > 1.0
    walk_dir = tmp_path / "w"
    result = run_steer("walk", "--model", str(biggan_folder), "--method", "closed-form", "--edit", "shiftx",
                       "--class", "tabby", "--truncation", "0.5", "--batch", "2", "--out", str(walk_dir))
    assert result.returncode == 0, result.stderr
    from steer.walks import read_meta
    meta = read_meta(walk_dir / "walk.safetensors")
    assert meta["truncation"] == 0.5 and meta["edit"] == "shift_x"
    result = run_steer("render", "--walk", str(walk_dir / "walk.safetensors"), "--model", str(biggan_folder),
                       "--seeds", "0", "--class", "tabby", "--alphas", "-32,0,32", "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert_user_error(run_steer("sample", "--model", str(biggan_folder), "--truncation", "1.5",
                                "--out", str(tmp_path / "x.png")), "(0, 1]")
    assert_user_error(run_steer("sample", "--model", str(biggan_folder), "--class", "crane",
                                "--out", str(tmp_path / "x.png")), "ambiguous", "134", "517")


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_biggan_bad_files_are_one_line(biggan_folder, tmp_path):
    import torch
    marker = tmp_path / "pwned"
    torch.save({"embeddings.weight": _Hostile(marker)}, biggan_folder / "pytorch_model.bin")
    assert_user_error(run_steer("sample", "--model", str(biggan_folder), "--out", str(tmp_path / "x.png")),
                      "refused", "pytorch_model.bin")
    assert not marker.exists()
    (biggan_folder / "pytorch_model.bin").write_bytes(b"\x00" * 100)
    assert_user_error(run_steer("sample", "--model", str(biggan_folder), "--out", str(tmp_path / "x.png")),
                      "cannot read", "pytorch_model.bin")
    (biggan_folder / "config.json").unlink()
    assert_user_error(run_steer("sample", "--model", str(biggan_folder), "--out", str(tmp_path / "x.png")),
                      "no config.json")


def test_quantify_bundled_zoom_walk(tmp_path):
    import json

    out = tmp_path / "q"
    result = run_steer("quantify", "--walk", "walks/dcgan-shapes32/zoom/walk.safetensors", "--samples", "16",
                       "--data-samples", "64", "--alphas", "0.25,0.5,1,2,4", "--out", str(out), cwd=REPO)
    assert result.returncode == 0, result.stderr
    for name in ("quantify.json", "distributions.png", "achieved_vs_target.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "quantify.json").read_text())
    assert report["model"] == "dcgan-shapes32" and report["estimator"]["name"] == "area"
    assert report["alphas"] == [0.25, 0.5, 1.0, 2.0, 4.0] and len(report["values"]["walked"][0]) == 16
    rows = {r["alpha"]: r for r in report["per_alpha"]}
    # identity: the walked samples are the target's; the walk zooms: area grows with alpha
    assert rows[1.0]["walked"]["median"] == pytest.approx(rows[1.0]["target"]["median"], rel=1e-5)
    assert rows[0.25]["walked"]["median"] < rows[1.0]["walked"]["median"] < rows[4.0]["walked"]["median"]
    assert report["data_source"] == "shapes" and report["data"]["samples"] == 64
    assert report["realism"]["samples_walked"] == 16 and "frechet_walked_to_data" in rows[2.0]
    assert report["tolerance"] == {"value": 0.25, "relative": True, "rule": report["tolerance"]["rule"]}
    assert "reach:" in result.stdout and report["follows_target"]["low"] <= 1 <= report["follows_target"]["high"]
    # the walk visibly zooms, by less than asked: a slope between none and full, a reach around 1
    slope = report["slope"]
    assert 0.1 < slope["low"] <= slope["value"] <= slope["high"] < 1.0, slope
    assert report["reach"]["low"] < 1 < report["reach"]["high"], report["reach"]
    assert "slope of achieved log area on target log area" in result.stdout


@pytest.mark.slow
def test_quantify_user_errors(tmp_path):
    walk = str(REPO / "walks/dcgan-shapes32/zoom/walk.safetensors")
    assert_user_error(run_steer("quantify", "--walk", walk, "--estimator", "size", "--out", str(tmp_path)),
                      "unknown estimator 'size'")
    assert_user_error(run_steer("quantify", "--walk", walk, "--alphas", "1,two", "--out", str(tmp_path)), "--alphas")
    assert_user_error(run_steer("quantify", "--walk", walk, "--alphas", "0.5,-1", "--out", str(tmp_path)),
                      "out of range")
    assert_user_error(run_steer("quantify", "--walk", str(tmp_path / "none.safetensors")), "does not exist")
    assert_user_error(run_steer("quantify", "--walk", walk, "--estimator", "detector", "--out", str(tmp_path),
                                env={"TORCH_HOME": str(tmp_path / "empty")}),
                      "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth")


def test_quantify_with_the_detector(tmp_path):
    """Random weights in torch's cache layout: the detector path runs end to end (random
    weights find no box, which must be reported, not crash)."""
    import json

    import torch
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    home = tmp_path / "torch"
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict(),
               checkpoints / "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth")
    args = ("quantify", "--walk", "walks/dcgan-shapes32/zoom/walk.safetensors", "--estimator", "detector",
            "--detector", "fasterrcnn_mobilenet_v3_large_320_fpn", "--samples", "2", "--data-samples", "4",
            "--alphas", "1,2", "--features", "none", "--out", str(tmp_path / "q"))
    assert_user_error(run_steer(*args, env={"TORCH_HOME": str(home)}, cwd=REPO), "--coco-category", "4 classes")
    result = run_steer(*args, "--coco-category", "dog", env={"TORCH_HOME": str(home)}, cwd=REPO)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "q" / "quantify.json").read_text())
    assert report["estimator"]["name"] == "detector_area" and "dog" in report["estimator"]["description"]
    assert (tmp_path / "q" / "distributions.png").is_file()
