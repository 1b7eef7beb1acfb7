"""Third-party checkpoints load as inert data: exact tensors, nothing from the file runs."""
import io
import os
import pickle
import struct
import zipfile

import pytest
import torch
from safetensors.torch import load_file

from steer.errors import SteerError
from steer.generators.safe_pickle import PersistentStub, Stub, module_state_dict, safe_load
from tests.conftest import FIXTURES

needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared/fixtures is not beside the checkout")


@needs_fixtures
def test_dssgan_whole_module_checkpoint():
    folder = FIXTURES / "dssgan_official"
    G = safe_load(folder / "generator_full_ema.pt")
    assert isinstance(G, Stub) and G.class_name == "model.generator.Generator"
    assert G.state["z_dim"] == 40 and G.state["num_classes"] == 3
    state = module_state_dict(G)
    reference = load_file(str(folder / "state_dict.safetensors"))
    assert set(state) == set(reference)
    for key, value in reference.items():
        assert torch.equal(state[key], value), key


@needs_fixtures
def test_stylegan_xl_snapshot_with_cuda_storages():
    folder = FIXTURES / "stylegan_xl_official"
    snapshot = safe_load(folder / "network-snapshot.pkl")
    G = snapshot["G_ema"]
    assert isinstance(G, PersistentStub) and G.class_name == "Generator"
    assert G.init_kwargs["z_dim"] == 64 and len(G.source_sha256) == 64
    state = module_state_dict(G)
    reference = load_file(str(folder / "state_dict.safetensors"))
    assert set(state) == set(reference)
    for key, value in reference.items():
        assert torch.equal(state[key], value), key
        assert state[key].device.type == "cpu"  # the file tags these storages cuda:0
    assert int(snapshot["progress"]["cur_nimg"].materialize()) == 10_000_000


@needs_fixtures
def test_dill_class_embedding_file():
    embedding = safe_load(FIXTURES / "stylegan_xl_official" / "tf_efficientnet_lite0.pkl")["embed"]
    assert embedding.class_name == "torch.nn.modules.sparse.Embedding"
    assert module_state_dict(embedding)["weight"].shape == (1000, 320)


class _Reduces:
    """Pickles as a call of `func(*args)`: the classic way a pickle runs code."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _hostile_payloads(marker):
    import builtins
    import subprocess
    touch = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return {
        "os.system": _Reduces(os.system, f"touch {marker}"),
        "eval": _Reduces(builtins.eval, touch),
        "exec": _Reduces(builtins.exec, touch),
        "subprocess": _Reduces(subprocess.call, ["touch", str(marker)]),
        "__import__": _Reduces(builtins.__import__, "os"),
    }


@pytest.mark.parametrize("as_zip", [False, True])
@pytest.mark.parametrize("kind", ["os.system", "eval", "exec", "subprocess", "__import__"])
def test_hostile_pickles_are_refused_and_nothing_runs(tmp_path, as_zip, kind):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"t": [1, 2], "x": _hostile_payloads(marker)[kind]}, protocol=2)
    path = tmp_path / "evil.pt"
    if as_zip:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(SteerError, match="asks to run code"):
        safe_load(path)
    assert not marker.exists()


def test_cli_refuses_a_hostile_model_file(tmp_path):
    from tests.conftest import run_steer
    marker = tmp_path / "pwned"
    path = tmp_path / "G_full_ema_epoch_001.pt"
    path.write_bytes(pickle.dumps(_hostile_payloads(marker)["os.system"], protocol=2))
    result = run_steer("sample", "--model", str(path), "--out", str(tmp_path / "s.png"))
    assert result.returncode == 2 and "asks to run code" in result.stderr
    assert "Traceback" not in result.stderr and not marker.exists()


class _Thing:
    def __init__(self):
        self.weight = [1.0, 2.0]


def test_unknown_classes_become_inert_stubs(tmp_path):
    path = tmp_path / "thing.pt"
    path.write_bytes(pickle.dumps({"m": _Thing()}, protocol=2))
    loaded = safe_load(path)
    assert isinstance(loaded["m"], Stub) and loaded["m"].class_name.endswith("._Thing")
    assert loaded["m"].state["weight"] == [1.0, 2.0]


def test_our_own_torch_save_round_trips(tmp_path):
    tensors = {"w": torch.randn(3, 4), "i": torch.arange(5), "view": torch.randn(6, 6)[1:, ::2]}
    path = tmp_path / "plain.pt"
    torch.save(tensors, path)
    loaded = safe_load(path)
    for key, value in tensors.items():
        assert torch.equal(loaded[key], value)


def test_corrupt_files_are_refused(tmp_path):
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(512))
    with pytest.raises(SteerError, match="cannot read"):
        safe_load(noise)
    # random bytes sometimes declare a huge record: BINBYTES8 with a length of 2**62
    huge = tmp_path / "huge.pt"
    huge.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"x")
    with pytest.raises(SteerError, match="cannot read"):
        safe_load(huge)
    truncated = tmp_path / "truncated.pt"
    buffer = io.BytesIO()
    torch.save({"w": torch.randn(100)}, buffer)
    truncated.write_bytes(buffer.getvalue()[:300])
    with pytest.raises(SteerError, match="cannot read"):
        safe_load(truncated)
    with pytest.raises(SteerError, match="does not exist"):
        safe_load(tmp_path / "absent.pt")


def test_arrays_written_by_newer_dill_rebuild(tmp_path, monkeypatch):
    """dill >= 0.3.5 (numpy 2 era) writes arrays as _create_array(_reconstruct, args, state)."""
    import sys
    import types

    import numpy as np
    dill_module = types.ModuleType("dill._dill")

    def _create_array(f, args, state, npdict=None):
        raise AssertionError("never called")

    _create_array.__module__ = "dill._dill"
    _create_array.__qualname__ = "_create_array"
    dill_module._create_array = _create_array
    monkeypatch.setitem(sys.modules, "dill", types.ModuleType("dill"))
    monkeypatch.setitem(sys.modules, "dill._dill", dill_module)
    size = np.array([36, 52])
    reconstruct, args, state = size.__reduce__()
    path = tmp_path / "arrays.pkl"
    path.write_bytes(pickle.dumps({"size": _Reduces(_create_array, reconstruct, args, state)}, protocol=4))
    loaded = safe_load(path)["size"]
    assert isinstance(loaded, np.ndarray) and loaded.tolist() == [36, 52]
    sneaky = tmp_path / "sneaky.pkl"
    sneaky.write_bytes(pickle.dumps({"size": _Reduces(_create_array, np.ones, (3,), state)}, protocol=4))
    with pytest.raises(SteerError, match="cannot read"):
        safe_load(sneaky)
