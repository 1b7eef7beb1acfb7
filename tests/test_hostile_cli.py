"""Hostile but realistic command lines: every bad value is one line and exit status 2, no
hang, no traceback; resume never mixes two runs; a bad checkpoint.pt in --out is one line.

Most cases run the CLI in this process (steer_here: the same main() a user runs, with its
stderr captured and an alarm as a timeout), so hundreds of generated values stay fast; the
issue's own examples also run as real subprocesses (run_steer). Generators are seeded, so
every run tries the same cases; each property test prints how many it ran."""
import io
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO, assert_user_error, run_steer, subprocess_env

ZOOM_WALK = REPO / "walks" / "dcgan-shapes32" / "zoom" / "walk.safetensors"
MODEL = "dcgan-shapes32"  # the quickest bundled model: 32 px, four classes


def steer_here(*args, timeout=60):
    """`steer ARGS` through steer.cli.main in this process: (returncode, stdout, stderr).
    An alarm turns a hang into a failure after `timeout` seconds."""
    from steer import cli as steer_cli

    def on_alarm(signum, frame):
        raise TimeoutError(f"steer {' '.join(args)} ran past {timeout} s")

    err, out, code = io.StringIO(), io.StringIO(), 0
    argv, previous = sys.argv, signal.signal(signal.SIGALRM, on_alarm)
    sys.argv = ["steer", *map(str, args)]
    signal.alarm(timeout)
    try:
        with redirect_stderr(err), redirect_stdout(out):
            try:
                steer_cli.main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        sys.argv = argv
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def report(name, n):
    print(f"\n{name}: {n} generated cases")


# -- numeric options --------------------------------------------------------------------

# (command and the arguments it needs, option, kind, low, high): the ranges the CLI declares
OPTIONS = [
    (["sample"], "--truncation", float, 0, 1e6), (["sample"], "--seed", int, 0, 2**32 - 1),
    (["sample"], "-n", int, 1, 1024),
    (["walk"], "--lr", float, 0, 1e6), (["walk"], "--steps", int, 1, 10**9), (["walk"], "--batch", int, 1, 10**9),
    (["walk"], "--truncation", float, 0, 1e6), (["walk"], "--alpha-max", float, 0, 1e6),
    (["walk"], "--seed", int, 0, 2**32 - 1), (["walk"], "--checkpoint-minutes", float, 0, 1e4),
    (["train", "--out", "X"], "--lr", float, 0, 1e6), (["train", "--out", "X"], "--lr-d", float, 0, 1e6),
    (["train", "--out", "X"], "--steps", int, 1, 10**9), (["train", "--out", "X"], "--batch", int, 1, 10**9),
    (["train", "--out", "X"], "--r1-gamma", float, 0, 1e6),
    (["train", "--out", "X"], "--mode-seeking", float, 0, 1e6),
    (["train", "--out", "X"], "--augment-share", float, 0, 1),
    (["train", "--out", "X"], "--ema-rampup", float, 0, 1e6),
    (["train", "--out", "X"], "--resolution", int, 1, 2**14),
    (["train", "--out", "X"], "--base-channels", int, 4, 2048),
    (["finetune", "--out", "X"], "--walk-weight", float, 0, 1e6),
    (["finetune", "--out", "X"], "--edit-share", float, 0, 1),
    (["finetune", "--out", "X"], "--walk-lr", float, 0, 1e6),
    (["finetune", "--out", "X"], "--ramp-steps", int, 0, 10**9),
    (["render", "--walk", "W"], "--truncation", float, 0, 1e6),
    (["quantify", "--walk", "W"], "--tolerance", float, 0, 1e6),
    (["quantify", "--walk", "W"], "--samples", int, 2, 10**9),
    (["probe"], "--sigma", float, 0, 1e6),
    (["invert", "--image", "I"], "--tune-lr", float, 0, 1e6),
    (["invert", "--image", "I"], "--locality", float, 0, 1e6),
    (["explore"], "--port", int, 0, 65535),
    (["evaluate"], "--samples", int, 20, 10**9),
]
NOT_NUMBERS = ["nan", "NaN", "-nan", "inf", "-inf", "+Infinity", "1e400", "-1e400", "", " ", "abc", "1,5", "0x10",
               "²", "1e", "--5", "1.2.3", "½", "9" * 80]
NOT_WHOLE = ["1.5", "1e3", "١٢", "1_000", "+-3", "0.0"]


def bad_values(rng, kind, low, high, k):
    """k values outside what the option takes: not numbers, non-finite, or past its range."""
    pool = list(NOT_NUMBERS) + (NOT_WHOLE if kind is int else [])
    values = rng.sample(pool, k // 2)
    while len(values) < k:
        if rng.random() < 0.5:
            past = high * (1 + rng.random()) + 1 if kind is float else high + rng.randint(1, 10 ** rng.randint(1, 30))
        else:
            past = low - (rng.random() * 10 ** rng.randint(0, 12) + (0 if kind is float else 1))
        values.append(repr(float(past)) if kind is float else str(int(past)))
    return values


def test_numeric_options_refuse_non_finite_and_out_of_range_values():
    rng = random.Random(19)
    n = 0
    for command, option, kind, low, high in OPTIONS:
        for value in bad_values(rng, kind, low, high, 8):
            result = steer_here(*command, f"{option}={value}")
            assert_user_error(result, option)
            n += 1
    report("numeric options", n)
    assert n == 8 * len(OPTIONS)


def test_lists_of_numbers_refuse_non_finite_and_huge_values():
    rng = random.Random(4)
    n = 0
    for _ in range(12):
        good = [f"{rng.uniform(0.3, 3):.3f}" for _ in range(rng.randint(0, 3))]
        bad = rng.choice(["nan", "inf", "-inf", "1e999", "x", "²", "9" * 400])
        values = good + [bad]
        rng.shuffle(values)
        assert_user_error(steer_here("render", "--walk", ZOOM_WALK, "--alphas", ",".join(values), "--out", "/nonexistent"),
                          "--alphas")
        seeds = [str(rng.randint(0, 9)), rng.choice([str(2**64 + rng.randint(0, 99)), "-1", "1.5", "nan", "²"])]
        assert_user_error(steer_here("render", "--walk", ZOOM_WALK, "--seeds", ",".join(seeds)), "--seeds")
        n += 2
    report("number lists", n)


@pytest.mark.parametrize("seed", [2**64 + 1, 2**32, 10**30, -1])
def test_seeds_past_the_range_are_one_line(seed):
    for command in (["sample"], ["walk"], ["train", "--out", "X"], ["invert", "--image", "I"]):
        assert_user_error(steer_here(*command, "--seed", str(seed)), "--seed")


def test_the_issue_examples_as_a_user_runs_them(tmp_path):
    """Real subprocesses, as typed: a truncation whose redraw could never finish, a class that
    looks like an option (the rest run in this process, below)."""
    started = time.monotonic()
    assert_user_error(run_steer("sample", "--truncation", "1e-300", "--out", str(tmp_path / "s.png"), timeout=120),
                      "truncation")
    assert time.monotonic() - started < 120
    assert_user_error(run_steer("sample", "--class=--5", "--device", "cpu", "--out", str(tmp_path / "s.png"),
                                timeout=120), "class")


PEAK_BOUND_MIB = 1536  # torch, the bundled model and steer itself take 0.5-0.9 GiB; a large allocation would not fit


def test_the_issue_examples_stay_within_a_memory_bound(tmp_path):
    """Measured per process: each refusal comes before anything large is allocated."""
    from tests.conftest import run_steer_peak
    cases = [("sample", "--truncation", "1e-300", "--out", tmp_path / "s.png"),
             ("walk", "--model", MODEL, "--steps", "1", "--batch", "100000000", "--out", tmp_path / "w"),
             ("quantify", "--walk", ZOOM_WALK, "--samples", "100000000", "--out", tmp_path / "q")]
    peaks = []
    for case in cases:
        result, peak = run_steer_peak(*case, timeout=120)
        assert_user_error(result)
        peaks.append(peak)
    print(f"\npeak resident memory of the {len(cases)} refusals: worst {max(peaks):.0f} MiB "
          f"(bound {PEAK_BOUND_MIB} MiB)")
    assert max(peaks) < PEAK_BOUND_MIB, peaks


def test_truncation_never_hangs(tmp_path):
    """Tiny, huge and random truncations: an answer (image or one line) within the timeout."""
    rng = random.Random(7)
    values = ["1e-300", "5e-324", "1e-10", "0.01", "0.049"] + [f"{10 ** rng.uniform(-40, 0.5):.3g}" for _ in range(15)]
    for value in values:
        result = steer_here("sample", "--model", MODEL, "-n", "2", "--truncation", value,
                            "--out", tmp_path / "s.png", timeout=30)
        if result.returncode != 0:
            assert_user_error(result, "truncation")
        else:  # a bound the redraw can meet: the image is written and every entry obeys it
            assert float(value) >= 0.05
    report("truncations", len(values))

    from steer import load_generator
    G = load_generator(MODEL, device="cpu")
    z, _ = G.sample(256, seed=1, truncation=0.05)
    assert z.abs().max() <= 0.05


# -- classes and devices ------------------------------------------------------------------

def random_class_strings(rng, k):
    """Strings that are no class of a four-class model with names circle, square, triangle, cross."""
    fixed = ["--5", "-5", "-1", "+-1", "²", "١", "٣", "4", "99", str(2**70), "1e3", "0x1", "1.0", "circl", "circles",
             "\u200bcircle", "☃", "a" * 300, "0,1", "' OR 1=1", "%s%n", "\x1b[31m"]
    out = rng.sample(fixed, min(k // 2, len(fixed)))
    alphabet = "-+²³¹½٣०①0123456789abcxyz _,.:'\"\\é漢\u202e"
    while len(out) < k:
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        index = re.fullmatch(r"[+-]?[0-9]+", text.strip())
        if text.strip().lower().replace("_", " ") not in ("circle", "square", "triangle", "cross", "") \
                and not (index and 0 <= int(text) < 4):  # a valid index such as '+2' or '-0'
            out.append(text)
    return out


def test_class_strings_are_one_line(tmp_path):
    rng = random.Random(23)
    cases = random_class_strings(rng, 40)
    n = 0
    for text in cases:
        result = steer_here("sample", "--model", MODEL, "-n", "1", f"--class={text}", "--out", tmp_path / "s.png")
        assert_user_error(result)
        n += 1
        if "," not in text:  # in a list, each part is a class of its own
            result = steer_here("sample", "--model", MODEL, "-n", "2", "--classes", f"0,{text}",
                                "--out", tmp_path / "s.png")
            assert_user_error(result)
            n += 1
    report("class strings", n)


def test_devices_are_checked_before_any_work():
    rng = random.Random(3)
    cases = ["tpu9", "tpu", "gpu", "cuda:99", "cuda:-1", "cpu:0", "cuda0", "meta", "CUDA:x", "", "cuda:0:1", "vulkan"]
    if not torch.cuda.is_available():
        cases += ["cuda", "cuda:0", "CUDA"]
    cases += ["".join(rng.choice("acdiumpt:0129") for _ in range(rng.randint(1, 8))) for _ in range(20)]
    cases = [c for c in cases if c.strip().lower() != "cpu" and not (torch.cuda.is_available() and c.strip().lower() in ("cuda", "cuda:0"))]
    for device in cases:
        for command in (["sample", "--out", "/nonexistent/s.png"], ["walk", "--out", "/nonexistent"]):
            assert_user_error(steer_here(*command, "--device", device), "device")
    report("devices", 2 * len(cases))


def test_a_batch_that_cannot_fit_is_refused_before_it_is_allocated(tmp_path):
    rng = random.Random(5)
    sizes = [100_000_000] + [rng.randint(10**8, 10**9) for _ in range(4)]
    for batch in sizes:
        assert_user_error(steer_here("walk", "--model", MODEL, "--steps", "1", "--batch", batch,
                                     "--out", tmp_path / "w"), "--batch", "GiB")
        assert not (tmp_path / "w" / "checkpoint.pt").exists()
    assert_user_error(steer_here("train", "--out", tmp_path / "t", "--batch", sizes[0]), "--batch", "GiB")
    assert_user_error(steer_here("finetune", "--edit", "zoom", "--out", tmp_path / "f", "--batch", sizes[0]),
                      "--batch", "GiB")
    assert_user_error(steer_here("quantify", "--walk", ZOOM_WALK, "--samples", sizes[0], "--out", tmp_path / "q"),
                      "--samples", "GiB")
    report("batch sizes", len(sizes) + 3)


# -- resume ---------------------------------------------------------------------------------

WALK = ["walk", "--model", MODEL, "--edit", "zoom", "--steps", "2", "--batch", "2", "--seed", "0"]


@pytest.fixture(scope="module")
def walk_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("walk") / "run"
    result = steer_here(*WALK, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def with_option(args, option, value):
    args = list(args)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


@pytest.mark.parametrize("option, value, named", [
    ("--seed", "7", "seed"), ("--batch", "4", "batch"), ("--lr", "0.5", "lr"), ("--truncation", "0.9", "truncation"),
    ("--class", "square", "classes"), ("--alpha-max", "2", "alpha_max"), ("--edit", "shift_x", "edit"),
    ("--walk", "nonlinear", "walk"), ("--model", "dssgan-shapes32", "model"),
])
def test_resuming_a_walk_with_other_settings_is_refused(walk_run, option, value, named):
    before = walk_run.joinpath("checkpoint.pt").read_bytes()
    result = steer_here(*with_option(WALK, option, value), "--out", walk_run)
    assert_user_error(result, named, "--restart", "--out")
    assert walk_run.joinpath("checkpoint.pt").read_bytes() == before  # the first run is untouched


def test_resume_mixes_nothing_only_steps_grow(walk_run, tmp_path):
    """The issue's example: steps 1 seed 0 batch 16, then steps 2 seed 7 batch 4 lr 0.5."""
    out = tmp_path / "x"
    assert steer_here(*with_option(WALK, "--steps", "1"), "--out", out).returncode == 0
    result = steer_here(*with_option(with_option(with_option(WALK, "--seed", "7"), "--batch", "4"), "--lr", "0.5"),
                        "--out", out)
    assert_user_error(result, "seed 0 -> 7", "batch 2 -> 4", "lr")
    assert steer_here(*WALK, "--out", out).returncode == 0  # --steps 1 -> 2 resumes
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert_user_error(steer_here(*with_option(WALK, "--steps", "1"), "--out", out), "--steps")
    restarted = steer_here(*with_option(WALK, "--seed", "7"), "--restart", "--out", out)
    assert restarted.returncode == 0, restarted.stderr
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["config"]["seed"] == 7 and state["step"] == 2


TRAIN = ["train", "--steps", "2", "--batch", "4", "--resolution", "16", "--base-channels", "8", "--device", "cpu"]


def test_resuming_training_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "t"
    assert steer_here(*TRAIN, "--out", out).returncode == 0
    for option, value, named in [("--seed", "3", "seed"), ("--batch", "8", "batch"), ("--lr", "1e-3", "lr"),
                                 ("--resolution", "32", "resolution"), ("--base-channels", "16", "base_channels"),
                                 ("--mode-seeking", "0.5", "mode_seeking"), ("--recipe", "official", "recipe")]:
        result = steer_here(*with_option(TRAIN, option, value), "--out", out)
        if named == "recipe":  # the official recipe changes betas, R1, EMA ...: named by those fields
            named = "betas"
        assert_user_error(result, named, "--restart")
    grown = steer_here(*with_option(TRAIN, "--steps", "3"), "--out", out)
    assert grown.returncode == 0, grown.stderr


def test_resuming_finetuning_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "f"
    args = ["finetune", "--model", MODEL, "--edit", "zoom", "--steps", "2", "--warmup-steps", "1", "--batch", "4",
            "--device", "cpu"]
    first = steer_here(*args, "--out", out)
    assert first.returncode == 0, first.stderr
    for option, value, named in [("--seed", "3", "seed"), ("--edit-share", "0.25", "edit_share"),
                                 ("--walk-weight", "2", "walk_weight"), ("--lr", "1e-3", "lr"),
                                 ("--edit", "shift_x", "edit")]:
        assert_user_error(steer_here(*with_option(args, option, value), "--out", out), named, "--restart")


# -- checkpoints --------------------------------------------------------------------------

def hostile_checkpoints(rng, good: bytes, marker):
    """(label, bytes): corrupt, truncated, wrong-shape and code-running files."""
    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    def saved(obj):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()

    cases = [("empty", b""), ("text", b"not a checkpoint\n"), ("code", pickle.dumps(RunsCode())),
             ("code in torch zip", _zip_with_pickle(pickle.dumps(RunsCode()))),
             ("a list", saved([1, 2, 3])), ("a tensor", saved(torch.zeros(3))),
             ("no walk", saved({"step": 1, "history": [0.1]})),
             ("negative step", saved({"walk": {}, "optimiser": {}, "step": -4, "history": []})),
             ("step as text", saved({"walk": {}, "optimiser": {}, "step": "2", "history": []})),
             ("wrong shape", saved({"walk": {"direction": torch.zeros(5, 5)}, "optimiser": {}, "step": 1,
                                    "history": [0.1]})),
             ("history too short", saved({**torch.load(io.BytesIO(good), weights_only=True), "history": []})),
             ("history of text", saved({**torch.load(io.BytesIO(good), weights_only=True), "history": ["a", "b"]}))]
    for _ in range(10):
        cut = rng.randint(1, len(good) - 1)
        cases.append((f"truncated at {cut}", good[:cut]))
    for _ in range(8):
        data = bytearray(good)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cases.append(("bytes flipped", bytes(data)))
    cases += [("random bytes", bytes(rng.randrange(256) for _ in range(rng.randint(1, 4000)))) for _ in range(4)]
    return cases


def _zip_with_pickle(payload: bytes) -> bytes:
    """A torch-style zip whose data.pkl is `payload`."""
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    return buffer.getvalue()


def test_a_bad_checkpoint_in_out_is_one_line_and_runs_nothing(walk_run, tmp_path):
    rng = random.Random(11)
    good = (walk_run / "checkpoint.pt").read_bytes()
    marker = tmp_path / "ran"
    cases = hostile_checkpoints(rng, good, marker)
    for label, data in cases:
        out = tmp_path / "bad"
        out.mkdir(exist_ok=True)
        (out / "checkpoint.pt").write_bytes(data)
        result = steer_here(*WALK, "--out", out)
        if result.returncode == 0:  # a flipped byte the zip's slack absorbed: it read as the good run
            assert label == "bytes flipped", label
            continue
        assert_user_error(result, "checkpoint.pt")
        assert "--restart" in result.stderr, (label, result.stderr)
        assert not marker.exists(), label
    report("bad checkpoints", len(cases))
    # the same files under train
    for label, data in cases[:12]:
        out = tmp_path / "badtrain"
        out.mkdir(exist_ok=True)
        (out / "checkpoint.pt").write_bytes(data)
        assert_user_error(steer_here(*TRAIN, "--out", out), "checkpoint.pt")
    assert not marker.exists()


def test_checkpoints_by_wall_time(tmp_path, tiny_generator):
    """With the step interval far away, the wall-time interval still writes checkpoints."""
    from steer.edits import EDITS
    from steer.fit import FitConfig, fit_walk
    from steer.walks import make_walk
    ckpt = tmp_path / "walk.pt"
    seen = []

    def look(step, loss):
        if ckpt.exists():
            seen.append(torch.load(ckpt, weights_only=True)["step"])

    config = FitConfig(steps=4, batch=2, checkpoint_every=10**6, checkpoint_seconds=0.0)
    fit_walk(tiny_generator, make_walk("linear", EDITS["zoom"], (8,), 16), EDITS["zoom"], config,
             checkpoint=ckpt, progress=False, callback=look)
    assert seen == [1, 2, 3]  # written after every step, though checkpoint_every is a million

    from steer.data.shapes import shapes_batches
    from steer.generators.dcgan import DCGANDiscriminator, DCGANGenerator
    from steer.train import TrainConfig, train_gan
    steps = []
    G = DCGANGenerator(resolution=16, latent_dim=8, num_classes=4, embed_dim=4, base_channels=8)
    D = DCGANDiscriminator(resolution=16, num_classes=4, base_channels=8)
    train_gan(G, D, shapes_batches(resolution=16), tmp_path / "t",
              TrainConfig(steps=3, batch=4, checkpoint_every=10**6, checkpoint_seconds=0.0), progress=False,
              on_checkpoint=lambda G_ema, step: steps.append(step))
    assert steps == [1, 2, 3, 3]  # each step by wall time, then the final save


def test_the_interrupt_message_is_true_in_every_phase(tmp_path):
    from steer import checkpoint
    checkpoint.track(tmp_path / "checkpoint.pt")
    assert "nothing was saved" in checkpoint.interrupt_message()
    checkpoint.save_checkpoint({"step": 5}, tmp_path / "checkpoint.pt")
    assert "holds step 5" in checkpoint.interrupt_message()
    checkpoint._tracked.update(path=None, step=None)
    assert checkpoint.interrupt_message() == "interrupted"


def test_ctrl_c_during_training_names_the_checkpoint_it_left(tmp_path):
    """A real SIGINT to `steer train`: the message names the step the checkpoint holds."""
    out = tmp_path / "t"
    proc = subprocess.Popen([sys.executable, "-m", "steer.cli", *with_option(TRAIN, "--steps", "100000"),
                             "--checkpoint-minutes", "0.002", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert (out / "checkpoint.pt").exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert f"holds step {step}" in last and "resume" in last, last
