"""`import steer`, `import steer.cli` and `steer --help` stay light: no torch, no kornia."""
import importlib.metadata
import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

HEAVY = ("torch", "torchvision", "kornia", "numpy", "scipy", "sklearn", "matplotlib", "lpips", "safetensors")
COMMANDS = ("models", "sample", "walk", "render", "explore", "train", "finetune", "evaluate", "quantify", "probe",
            "invert", "edit", "bench", "fetch", "directions")


def python(*args):
    env = subprocess_env()
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120)


def imported_modules(*args):
    """The modules `python -X importtime ARGS` imported (importtime's report is on stderr)."""
    result = python("-X", "importtime", *args)
    assert result.returncode == 0, result.stderr
    names = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
             if line.startswith("import time:") and line.count("|") == 2}
    assert "steer" in names, result.stderr[-2000:]
    return result, names


def heavy(names):
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


@pytest.mark.parametrize("code", ["import steer", "import steer.cli", "import steer; steer.SteerError"])
def test_import_is_light(code):
    _, names = imported_modules("-c", code)
    assert heavy(names) == []


@pytest.mark.parametrize("args", [["--help"], ["walk", "--help"], ["bench", "walk", "--help"], ["train", "--help"],
                                  ["directions", "import", "--help"], ["fetch", "--help"]])
def test_help_is_light(args):
    result, names = imported_modules("-m", "steer.cli", *args)
    assert heavy(names) == []
    assert "Usage:" in result.stdout


def test_help_lists_every_command():
    result = python("-m", "steer.cli", "--help")
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("Commands:", 1)[1].split()
    for command in COMMANDS:
        assert command in listed, result.stdout


def test_console_script_entry_point():
    # this distribution's own entry point (another install of steer may also declare one)
    (entry,) = [e for e in importlib.metadata.distribution("steer-gan").entry_points
                if e.group == "console_scripts" and e.name == "steer"]
    assert entry.value == "steer.cli:main"
    from steer.cli import main
    assert entry.load() is main


def test_lazy_names_still_resolve():
    result = python("-c", "import steer, sys; assert 'torch' not in sys.modules; "
                          "from steer import load_generator, Generator, edits, fit, walks, SteerError; "
                          "assert 'torch' in sys.modules and callable(load_generator); "
                          "assert steer.__version__ and set(steer.__all__) <= set(dir(steer)); print('ok')")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
