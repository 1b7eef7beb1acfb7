"""steer fetch and --model hf:...: a loopback server in this file plays the Hugging Face Hub
(HF_ENDPOINT) and the torch weights host (STEER_TORCH_WEIGHTS_URL), serving fixture files.
Covered: a download and its recorded source, a hash mismatch, an interrupted download, an
offline run, reloading an output's model from the cache only, and the missing-file hints."""
import hashlib
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, assert_user_error, run_steer, subprocess_env

pytest.importorskip("huggingface_hub")

CHECKPOINT = FIXTURES / "stylegan2_ada_official" / "uncond" / "network-snapshot-000200.pkl"
SMALL = FIXTURES / "rosinality_stylegan2" / "stylegan2-fixture-converted.pt"
REPO_ID, HUB_FILE, COMMIT = "dssgan/DSS_GAN", "checkpoints/network-snapshot-000200.pkl", "a" * 40
ALEX = "alexnet-owt-7be5be79.pth"

needs = pytest.mark.skipif(not CHECKPOINT.is_file() or not SMALL.is_file(),
                           reason="shared/fixtures is not beside the checkout")


class Hub(BaseHTTPRequestHandler):
    """HEAD/GET /{repo}/resolve/{revision}/{file} as the hub answers them (X-Repo-Commit,
    X-Linked-Etag = the LFS sha256, Content-Length, Range), and GET /torch/{file}.
    server.mode: "ok", "bad-hash" (the etag is not the body's sha256), "cut" (every body
    stops halfway and the connection closes), "cut-once" (the first body only)."""

    def log_message(self, *args):
        pass

    def _find(self):
        server = self.server
        if self.path.startswith("/torch/"):
            return server.torch_files.get(self.path[len("/torch/"):]), None
        prefix = f"/{REPO_ID}/resolve/"
        if not self.path.startswith(prefix):
            return None, "RepoNotFound"
        revision, _, file = self.path[len(prefix):].partition("/")
        if revision not in ("main", COMMIT):
            return None, "RevisionNotFound"
        return server.hub_files.get(file), "EntryNotFound"

    def _answer(self, body_wanted):
        server = self.server
        data, error = self._find()
        server.requests.append((self.command, self.path))
        if data is None:
            self.send_response(404)
            if error:
                self.send_header("X-Error-Code", error)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes=") and body_wanted:
            start = int(ranged[len("bytes="):].split("-")[0])
        self.send_response(206 if start else 200)
        digest = hashlib.sha256(data).hexdigest() if server.mode != "bad-hash" else "0" * 64
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("X-Linked-Etag", f'"{digest}"')
        self.send_header("ETag", f'"{digest}"')
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not body_wanted:
            return
        body = data[start:]
        cut = server.mode == "cut" or (server.mode == "cut-once" and not server.cut_done)
        if cut:
            server.cut_done = True
            # half the body; in "cut" mode a resume (Range) gets none, so retries end soon
            self.wfile.write(body[:len(body) // 2] if not start else b"")
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # mid-body: the client sees the connection end early
            return
        self.wfile.write(body)

    def do_HEAD(self):
        self._answer(False)

    def do_GET(self):
        self._answer(True)


@pytest.fixture
def hub(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    server.mode, server.cut_done, server.requests = "ok", False, []
    server.hub_files = {HUB_FILE: CHECKPOINT.read_bytes()}
    server.torch_files = {ALEX: SMALL.read_bytes()}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    server.env = {"HF_ENDPOINT": url, "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HOME": str(tmp_path / "hf-home"),
                  "TORCH_HOME": str(tmp_path / "torch"), "STEER_TORCH_WEIGHTS_URL": f"{url}/torch",
                  "HF_HUB_OFFLINE": "0", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
                  "HF_HUB_DISABLE_TELEMETRY": "1"}
    yield server
    server.shutdown()
    server.server_close()


def blobs(tmp_path):
    return sorted(p.name for p in (tmp_path / "hf").rglob("blobs/*") if p.is_file())


@pytest.mark.slow
@needs
def test_hf_model_downloads_once_and_every_output_records_its_source(hub, tmp_path):
    spec = f"hf:{REPO_ID}/{HUB_FILE}"
    result = run_steer("models", "--model", spec, env=hub.env)
    assert result.returncode == 0, result.stderr
    assert "stylegan2" in result.stdout and f"hf:{REPO_ID}/{HUB_FILE}@{COMMIT}" in result.stdout
    assert blobs(tmp_path) == [hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()]
    # a walk on it: its file's source names the hub repo, file, revision, commit and sha256
    out = tmp_path / "walk"
    result = run_steer("walk", "--model", spec, "--edit", "brightness", "--steps", "2", "--batch", "2",
                       "--out", str(out), env=hub.env)
    assert result.returncode == 0, result.stderr
    from steer.walks import load
    _, meta = load(out / "walk.safetensors")
    sha = hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()
    assert meta["source"]["kind"] == "hf" and meta["source"]["sha256"] == sha
    assert meta["source"]["hub"] == {"repo": REPO_ID, "file": HUB_FILE, "revision": "main", "commit": COMMIT,
                                     "sha256": sha}
    # rendering it offline reloads the model from the cache alone, at the recorded commit
    hub.requests.clear()
    offline = dict(hub.env, HF_HUB_OFFLINE="1")
    result = run_steer("render", "--walk", str(out / "walk.safetensors"), "--seeds", "0", "--out",
                       str(tmp_path / "render"), env=offline)
    assert result.returncode == 0, result.stderr
    assert hub.requests == []
    render = json.loads((tmp_path / "render" / "render.json").read_text())
    assert render["source"]["hub"]["commit"] == COMMIT


@needs
def test_reloading_never_downloads_and_names_the_fetch_command(hub, tmp_path):
    from steer.generators.registry import load_source
    record = {"kind": "hf", "name": f"hf:{REPO_ID}/{HUB_FILE}@{COMMIT}", "path": "/gone", "sha256": "0" * 64,
              "family": "stylegan2"}
    import os
    from unittest import mock
    with mock.patch.dict(os.environ, hub.env):
        from steer.errors import SteerError
        with pytest.raises(SteerError, match=f"steer fetch hf:{REPO_ID}/{HUB_FILE}@{COMMIT}"):
            load_source(record, what="walk.safetensors")
    assert hub.requests == []


@needs
def test_hf_offline_run_refuses_in_one_line(hub, tmp_path):
    result = run_steer("models", "--model", f"hf:{REPO_ID}/{HUB_FILE}@main", env=dict(hub.env, HF_HUB_OFFLINE="1"))
    assert_user_error(result, HUB_FILE, "HF_HUB_OFFLINE", f"steer fetch hf:{REPO_ID}/{HUB_FILE}@main")
    assert hub.requests == []
    result = run_steer("fetch", "lpips-alexnet", env=dict(hub.env, HF_HUB_OFFLINE="1"))
    assert_user_error(result, ALEX, "HF_HUB_OFFLINE")
    assert hub.requests == []


@needs
def test_hf_hash_mismatch_is_one_line_and_leaves_nothing(hub, tmp_path):
    hub.mode = "bad-hash"
    result = run_steer("fetch", f"hf:{REPO_ID}/{HUB_FILE}", env=hub.env)
    assert_user_error(result, "hash mismatch", HUB_FILE)
    assert blobs(tmp_path) == []
    hub.mode = "ok"  # a retry downloads it again
    result = run_steer("fetch", f"hf:{REPO_ID}/{HUB_FILE}@{COMMIT}", env=hub.env)
    assert result.returncode == 0, result.stderr
    assert f"commit {COMMIT}" in result.stdout


@needs
def test_hf_interrupted_download_resumes_or_fails_in_one_line(hub, tmp_path):
    hub.mode = "cut-once"  # huggingface_hub resumes with a Range request
    result = run_steer("fetch", f"hf:{REPO_ID}/{HUB_FILE}", env=hub.env)
    assert result.returncode == 0, result.stderr
    assert blobs(tmp_path) == [hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()]
    hub.mode = "cut"  # every attempt stops halfway: one line, no file under the blob's name
    result = run_steer("fetch", f"hf:{REPO_ID}/other.pkl", env=dict(hub.env))
    assert_user_error(result, "other.pkl")
    hub.hub_files["other.pkl"] = SMALL.read_bytes()
    result = run_steer("fetch", f"hf:{REPO_ID}/other.pkl", env=hub.env)
    assert_user_error(result, "could not download", "rerun")
    assert blobs(tmp_path) == [hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()]


@needs
def test_hf_spec_and_missing_entries_are_one_line(hub):
    for spec in ("hf:only/two", "hf:a/b/c@", "hf:a/../c"):
        assert_user_error(run_steer("fetch", spec, env=hub.env), "hf:ORG/REPO/FILE")
    assert_user_error(run_steer("fetch", f"hf:{REPO_ID}/{HUB_FILE}@v9", env=hub.env), "v9")
    assert_user_error(run_steer("fetch", "hf:someone/else/x.pkl", env=hub.env), "someone/else")
    assert_user_error(run_steer("models", "--model", f"hf:{REPO_ID}/README.md", env=hub.env), "checkpoint files")
    assert_user_error(run_steer("fetch", "resnet", env=hub.env), "lpips-alexnet")


@needs
def test_torch_file_hash_mismatch_and_interruption_leave_nothing(hub, tmp_path):
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    # the fixture is not AlexNet: its sha256 does not start with the 7be5be79 in the name
    assert_user_error(run_steer("fetch", "lpips-alexnet", env=hub.env), "hash mismatch", "7be5be79")
    assert not checkpoints.is_dir() or list(checkpoints.iterdir()) == []
    hub.mode = "cut"
    assert_user_error(run_steer("fetch", "lpips-alexnet", env=hub.env), "could not download", ALEX)
    assert not checkpoints.is_dir() or list(checkpoints.iterdir()) == []
    del hub.torch_files[ALEX]
    hub.mode = "ok"
    assert_user_error(run_steer("fetch", "lpips-alexnet", env=hub.env), "could not download", "404")
    # a file already there under the name but with other contents is refused, not replaced
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / ALEX).write_bytes(b"not alexnet")
    assert_user_error(run_steer("fetch", "lpips-alexnet", env=hub.env), "delete it")
    result = run_steer("fetch", env=hub.env)
    assert result.returncode == 0 and "lpips-alexnet  present" in result.stdout and "missing" in result.stdout


@needs
def test_torch_file_download_into_torch_hub_cache(hub, tmp_path, monkeypatch):
    from steer import fetch
    for key, value in hub.env.items():
        monkeypatch.setenv(key, value)
    data = SMALL.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    name = f"fixture-{digest[:8]}.pth"
    hub.torch_files[name] = data
    monkeypatch.setitem(fetch.TORCH_FILES, "fixture", fetch.TorchFile(name, "unused", "a fixture"))
    path, sha, downloaded = fetch.fetch_torch_file("fixture")
    assert downloaded and sha == digest and path == tmp_path / "torch" / "hub" / "checkpoints" / name
    assert path.read_bytes() == data
    requests = len(hub.requests)
    assert fetch.fetch_torch_file("fixture") == (path, digest, False)  # already there: no request
    assert len(hub.requests) == requests


def test_missing_weights_name_the_fetch_command(tmp_path):
    empty = {"TORCH_HOME": str(tmp_path / "empty")}
    result = run_steer("walk", "--model", "dcgan-shapes32", "--loss", "lpips", "--steps", "1",
                       "--out", str(tmp_path / "w"), env=empty)
    assert_user_error(result, ALEX, "steer fetch lpips-alexnet")


def test_fetch_needs_no_network_to_list(tmp_path):
    result = run_steer("fetch", env={"TORCH_HOME": str(tmp_path / "t")})
    assert result.returncode == 0, result.stderr
    for name in ("lpips-alexnet", "fid-inception", "coco-detector"):
        assert name in result.stdout
    assert str(Path(tmp_path / "t" / "hub" / "checkpoints")) in result.stdout


def test_missing_huggingface_hub_is_one_line():
    code = ("import sys; sys.modules['huggingface_hub'] = None; sys.argv = ['steer', 'fetch', 'hf:a/b/c.pkl']; "
            "from steer.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
                            timeout=120)
    assert_user_error(result, "huggingface_hub", '.[hub]')
