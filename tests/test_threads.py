"""The thread policy: the auto team is the cores nobody else uses, a busy process is seen,
and a fixed choice is applied before and after torch is imported."""
import subprocess
import sys
import time

import torch

from steer import threads
from tests.conftest import assert_user_error, run_steer


def test_auto_team_is_the_free_cores_and_at_least_one():
    assert threads.auto_threads(cores=2, others=0) == 2
    assert threads.auto_threads(cores=2, others=1) == 1
    assert threads.auto_threads(cores=2, others=7) == 1
    assert threads.auto_threads(cores=16, others=3) == 13


def test_a_busy_process_is_counted_as_running():
    quiet = threads.other_running()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = threads.other_running()
    finally:
        spinner.kill()
        spinner.wait()
    assert busy >= 1 and busy >= min(quiet, 1)


def test_fixed_threads_are_applied_and_auto_adapts(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("STEER_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        assert threads.configure(2) == 2
        assert torch.get_num_threads() == 2
        import os
        assert os.environ["OMP_NUM_THREADS"] == "2" and os.environ["OMP_WAIT_POLICY"]
        threads.adapt(0)  # fixed: left alone
        assert torch.get_num_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(threads, "auto_threads", lambda: 1)
        assert threads.configure(None) == 1  # auto
        torch.set_num_threads(2)
        threads.adapt(threads.ADAPT_EVERY)  # a look between steps resizes the team
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        threads.adapt(threads.ADAPT_EVERY + 1)  # not every step
        assert torch.get_num_threads() == 2
    finally:
        threads._auto = False
        torch.set_num_threads(before)


def test_cli_threads_option():
    r = run_steer("--threads", "1", "models")
    assert r.returncode == 0, r.stderr
    assert_user_error(run_steer("--threads", "0", "models"), "--threads")
