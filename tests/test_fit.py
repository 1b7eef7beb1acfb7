import os
import signal

import pytest
import torch

from steer.edits import EDITS
from steer.fit import FitConfig, fit_walk
from steer.walks import make_walk


def test_fit_moves_only_the_walk(tiny_generator):
    before = {k: v.clone() for k, v in tiny_generator.state_dict().items()}
    walk = make_walk("linear", EDITS["zoom"], (8,), 16)
    start = walk.directions.detach().clone()
    result = fit_walk(tiny_generator, walk, EDITS["zoom"], FitConfig(steps=5, batch=4), progress=False)
    assert len(result.history) == 5
    assert not torch.equal(walk.directions, start)
    for k, v in tiny_generator.state_dict().items():
        assert torch.equal(v, before[k])
    assert not tiny_generator.training
    assert all(not p.requires_grad for p in tiny_generator.parameters())


@pytest.mark.parametrize("kind", ["linear", "nonlinear"])
def test_resume_after_interrupt_matches_uninterrupted(tmp_path, tiny_generator, kind):
    edit = EDITS["shift_x"]
    config = FitConfig(steps=12, batch=4, checkpoint_every=5, lr=1e-2)

    full = make_walk(kind, edit, (8,), 16, seed=3)
    full_result = fit_walk(tiny_generator, full, edit, config, progress=False)

    ckpt = tmp_path / "ckpt.pt"
    interrupted = make_walk(kind, edit, (8,), 16, seed=3)

    def stop(step, loss):
        if step == 7:  # a real Ctrl-C, delivered during step 7
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        fit_walk(tiny_generator, interrupted, edit, config, checkpoint=ckpt, progress=False, callback=stop)
    assert ckpt.exists()
    resumed = make_walk(kind, edit, (8,), 16, seed=99)  # a different start: all state comes from the checkpoint
    result = fit_walk(tiny_generator, resumed, edit, config, checkpoint=ckpt, progress=False)
    assert result.resumed_from == 8
    assert result.history == full_result.history
    for a, b in zip(resumed.state_dict().values(), full.state_dict().values()):
        assert torch.equal(a, b)
