"""steer explore: the server on its own (fast, no browser) and the page in headless Chromium.

Every image the page shows must be pixel-identical to what `steer render --frames` writes for
the same settings, and Save's JSON must make `steer render --settings` reproduce it."""
import io
import json
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, assert_user_error, run_steer, subprocess_env

ZOOM_WALK = REPO / "walks" / "dssgan-shapes32" / "zoom" / "walk.safetensors"


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def get(url, data=None, headers=None):
    """(status, content type, body) without raising on 4xx/5xx."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def query(**fields):
    return "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in fields.items())


def start_server(model, walks_dir, save_dir):
    from steer import load_generator
    from steer.explore import Explorer, find_walks, make_server
    G = load_generator(model, device="cpu")
    server = make_server(Explorer(G, find_walks(G, walks_dir), model, save_dir), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server("dssgan-shapes32", ZOOM_WALK.parents[1], tmp_path_factory.mktemp("saves"))
    yield s
    s.shutdown()
    s.server_close()


def test_page_is_self_contained(server):
    """The page and its files come from steer and name no other site."""
    status, kind, html = get(server.url)
    assert status == 200 and kind.startswith("text/html")
    for name in ("app.js", "style.css"):
        assert f'"{name}"' in html.decode()
        status, _, body = get(server.url + name)
        assert status == 200 and body
        html += body
    text = html.decode()
    outside = [u for u in re.findall(r"(?:https?:)?//[\w.-]+", text) if not re.search(r"//(localhost|127\.0\.0\.1)\b", u)]
    assert not outside, outside
    assert "@import" not in text and "url(" not in text  # no fonts or sheets fetched by CSS
    info = json.loads(get(server.url + "api/info")[2])
    assert info["model"] == "dssgan-shapes32" and [w["id"] for w in info["walks"]] == ["zoom"]
    assert [c["value"] for c in info["classes"]] == ["", "circle", "square", "triangle", "cross"]
    assert info["truncation"] is None  # the bundled models have no truncation setting
    zoom = info["walks"][0]
    assert zoom["scale"] == "log" and (zoom["min"], zoom["max"]) == (1 / 16, 16)


def test_image_is_what_steer_render_writes(server, tmp_path):
    out = tmp_path / "render"
    result = run_steer("render", "--walk", str(ZOOM_WALK), "--alphas", "0.5,2.25", "--seeds", "3",
                       "--class", "square", "--frames", "--out", str(out))
    assert result.returncode == 0, result.stderr
    for i, alpha in enumerate(("0.5", "2.25")):
        status, kind, png = get(server.url + "api/image?" + query(walk="zoom", seed=3, **{"class": "square"}, alpha=alpha))
        assert status == 200 and kind == "image/png"
        frame = (out / "frames" / f"row0_alpha{i}.png").read_bytes()
        assert pixels(png).shape == (32, 32, 3)
        assert np.array_equal(pixels(png), pixels(frame))
        assert png == frame  # the same encoder too
    # the strip is the walk across the edit's show alphas, side by side
    status, _, strip = get(server.url + "api/strip?" + query(walk="zoom", seed=3, **{"class": "square"}))
    assert status == 200 and pixels(strip).shape == (32, 32 * 7, 3)


@pytest.mark.parametrize("fields, status, words", [
    ({"walk": "nope", "alpha": 1}, 404, ["unknown walk", "zoom"]),
    ({"walk": "zoom", "alpha": "big"}, 400, ["alpha must be numbers"]),
    ({"walk": "zoom", "alpha": "nan"}, 400, ["out of range"]),
    ({"walk": "zoom", "alpha": "1e300"}, 400, ["out of range"]),
    ({"walk": "zoom", "alpha": "-2"}, 400, ["out of range"]),
    ({"walk": "zoom", "alpha": "1,2"}, 400, ["1 alpha value"]),
    ({"walk": "zoom"}, 400, ["alpha is missing"]),
    ({"walk": "zoom", "alpha": 1, "seed": "9" * 40}, 400, ["seed must be"]),
    ({"walk": "zoom", "alpha": 1, "seed": "-1"}, 400, ["seed must be"]),
    ({"walk": "zoom", "alpha": 1, "class": "dog"}, 400, ["unknown class"]),
    ({"walk": "zoom", "alpha": 1, "class": "9" * 5000}, 400, ["too long"]),
    ({"walk": "zoom", "alpha": 1, "truncation": "0.5"}, 400, ["no truncation"]),
])
def test_bad_requests_get_a_message_and_the_server_keeps_serving(server, fields, status, words):
    code, kind, body = get(server.url + "api/image?" + query(**fields))
    assert code == status and kind == "application/json"
    message = json.loads(body)["error"]
    for word in words:
        assert word in message, message
    assert get(server.url + "api/image?" + query(walk="zoom", seed=0, alpha=1))[0] == 200


def same_origin(server):
    """The headers the page's own Save sends: JSON, from the server's own origin."""
    return {"Content-Type": "application/json", "Origin": server.url.rstrip("/")}


def test_bad_paths_and_bodies(server):
    assert get(server.url + "../../etc/passwd")[0] == 404
    assert get(server.url + "api/nothing")[0] == 404
    assert get(server.url + "api/save", data=b"not json", headers=same_origin(server))[0] == 400
    assert get(server.url + "api/save", data=b"[1]", headers=same_origin(server))[0] == 400
    assert get(server.url + "api/save", data=b"{}")[0] == 415  # a form's content type: not JSON
    code, _, body = get(server.url + "api/save", data=b"x" * 100_000, headers=same_origin(server))
    assert code == 413 and "too large" in json.loads(body)["error"]
    assert get(server.url + "api/image?" + query(walk="zoom", alpha=1))[0] == 200


def test_colour_save_round_trips_through_render(tmp_path):
    """A three-slider colour walk: Save's JSON renders to the saved PNG, and the render.json
    that render writes renders to it again (one schema both ways)."""
    from click.testing import CliRunner

    from steer.cli import cli
    s = start_server("dcgan-shapes32", REPO / "walks" / "dcgan-shapes32", tmp_path / "saves")
    try:
        info = json.loads(get(s.url + "api/info")[2])
        assert sorted(w["id"] for w in info["walks"]) == ["colour", "shift_x", "shift_y", "zoom"]
        assert [w["sliders"] for w in info["walks"] if w["id"] == "colour"] == [3]
        body = json.dumps({"walk": "colour", "seed": "7", "class": "cross", "alpha": "0.4,-0.3,0.15"}).encode()
        code, _, answer = get(s.url + "api/save", data=body, headers=same_origin(s))
        assert code == 200, answer
        saved = json.loads(answer)
    finally:
        s.shutdown()
        s.server_close()
    # the answer names the files in the save folder, never where that folder is
    assert saved["json"] == "explore-0001.json" and saved["png"] == "explore-0001.png"
    assert str(tmp_path) not in answer.decode()
    saved = {k: str(tmp_path / "saves" / saved[k]) for k in ("json", "png")}
    settings = json.loads(open(saved["json"]).read())
    assert settings["alphas"] == [[0.4, -0.3, 0.15]] and settings["seeds"] == [7] and settings["class"] == "cross"
    assert settings["model"] == "dcgan-shapes32" and settings["walk"].endswith("colour/walk.safetensors")
    assert len(settings["latent"]) == 64
    runner = CliRunner()
    first = runner.invoke(cli, ["render", "--settings", saved["json"], "--frames", "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    png = open(saved["png"], "rb").read()
    assert np.array_equal(pixels((tmp_path / "a" / "frames" / "row0_alpha0.png").read_bytes()), pixels(png))
    again = runner.invoke(cli, ["render", "--settings", str(tmp_path / "a" / "render.json"), "--frames",
                                "--out", str(tmp_path / "b")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "b" / "frames" / "row0_alpha0.png").read_bytes() == png


def test_truncation_reaches_the_generator(tmp_path):
    """A model whose truncation is part of it (StyleGAN psi) gets it from the request, else from
    the walk, else none; it is an argument of each render, so no request changes the model."""
    from steer.explore import Explorer, find_walks
    from steer.generators.registry import family
    from steer.steering import Steering
    from steer.walks import LinearWalk, save
    G = family("stylegan_xl").small(0)
    save(LinearWalk(G.latent_shape("w"), sliders=1, seed=1), tmp_path / "walks" / "zoom.safetensors",
         {"model": "small", "space": "w", "edit": "zoom"})
    explorer = Explorer(G, find_walks(G, tmp_path / "walks"), "small", tmp_path / "saves")
    assert explorer.info()["truncation"] == {"kind": "psi", "default": 1.0}
    assert [w["id"] for w in explorer.info()["walks"]] == ["zoom"]
    entry = explorer.walks["zoom"]

    def expected(truncation):
        steering = Steering(G, entry.walk, entry.edit, "w", truncation=truncation)
        latent, c = steering.rows([0])
        return steering.strips(latent, c, [2.0])[0][0]

    half = explorer._render(explorer.parse({"walk": "zoom", "alpha": "2", "truncation": "0.5"}), [2.0])[0][0]
    plain = explorer._render(explorer.parse({"walk": "zoom", "alpha": "2"}), [2.0])[0][0]
    assert torch.equal(half, expected(0.5)) and torch.equal(plain, expected(None))
    assert not torch.equal(half, plain)
    with pytest.raises(Exception, match="truncation must be in"):
        explorer.parse({"walk": "zoom", "alpha": "2", "truncation": "2.5"})


def test_cli_errors(tmp_path):
    assert_user_error(run_steer("explore", "--model", "no-such-model"), "unknown model")
    (tmp_path / "empty").mkdir()
    assert_user_error(run_steer("explore", "--walks", str(tmp_path / "empty")), "no walks", "dssgan-mnist")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_user_error(run_steer("explore", "--port", str(port)), "in use", str(port))


# -- the page in a real browser -----------------------------------------------------------

def chromium():
    """A headless Chromium driven by Debian's chromedriver, or a skip saying what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,800"):
        options.add_argument(flag)
    # the explicit driver path keeps Selenium Manager from looking for one online
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture
def explore_process(tmp_path):
    """`steer explore --port 0` as a user runs it; yields (url, save dir)."""
    save_dir = tmp_path / "saves"
    proc = subprocess.Popen([sys.executable, "-m", "steer.cli", "explore", "--model", "dssgan-shapes32", "--port", "0",
                             "--save-dir", str(save_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(), cwd=tmp_path)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"no URL from steer explore: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        yield match.group(0), save_dir
    finally:
        proc.terminate()
        proc.wait(timeout=30)


SHOWN_BYTES = """
const done = arguments[arguments.length - 1];
fetch(document.getElementById('image').src).then(r => r.arrayBuffer()).then(b => {
  let s = ''; for (const x of new Uint8Array(b)) s += String.fromCharCode(x); done(btoa(s)); });
"""

# move the zoom slider to a position and wait until the image for it is on screen (the page's
# own alphaAt maps positions to alphas); returns [ms from the input event to the image shown, alpha sent]
MOVE_AND_WAIT = """
const [position, done] = [arguments[0], arguments[arguments.length - 1]];
const img = document.getElementById('image'), slider = document.getElementById('alpha');
slider.value = String(position);
const t0 = performance.now();
slider.dispatchEvent(new Event('input'));
const check = () => {
  const sent = new URLSearchParams((img.dataset.query || '?').split('?')[1]).get('alpha');
  if (Number(img.dataset.shownAt || 0) > t0 && Number(sent) === alphaAt(slider.value)) done([Number(img.dataset.shownAt) - t0, sent]);
  else setTimeout(check, 2);
};
check();
"""

# true once the image on screen is the one for the slider's current position
SHOWS_SLIDER = """
const img = document.getElementById('image'), slider = document.getElementById('alpha');
const sent = new URLSearchParams((img.dataset.query || '?').split('?')[1]).get('alpha');
return Number(sent) === alphaAt(slider.value);
"""


def test_page_in_chromium(explore_process, tmp_path):
    url, save_dir = explore_process
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    driver = chromium()
    try:
        driver.set_script_timeout(60)
        driver.get(url)
        wait = WebDriverWait(driver, 60, poll_frequency=0.05)
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1' && "
                                              "!!document.getElementById('image').dataset.shownAt"))
        assert driver.find_element(By.ID, "alpha").get_attribute("value") == "200"  # alpha 1, the identity
        Select(driver.find_element(By.ID, "class")).select_by_value("square")
        seed = driver.find_element(By.ID, "seed")
        seed.clear()
        seed.send_keys("5")
        wait.until(lambda d: "seed=5&class=square" in (d.find_element(By.ID, "image").get_attribute("data-query") or ""))
        before = driver.execute_async_script(SHOWN_BYTES)

        _, alpha = driver.execute_async_script(MOVE_AND_WAIT, 273)  # alpha = 2 ** 1.46
        shown = driver.execute_async_script(SHOWN_BYTES)
        assert shown != before
        assert abs(float(alpha) - 2 ** 1.46) < 1e-9

        # dragging: twenty moves at once send the first and the last, nothing queues between
        driver.execute_script("performance.clearResourceTimings();")
        driver.execute_script("""const s = document.getElementById('alpha');
            for (let p = 100; p < 120; p++) { s.value = String(p); s.dispatchEvent(new Event('input')); }""")
        wait.until(lambda d: d.execute_script(SHOWS_SLIDER))
        time.sleep(0.3)  # nothing more may follow
        sent = driver.execute_script("return performance.getEntriesByType('resource')"
                                     ".filter(e => e.name.includes('api/image')).length")
        assert sent == 2, sent

        # slider change to image on screen, 50 times
        latencies = []
        for i in range(50):
            position = 60 + (i * 37) % 280
            ms, _ = driver.execute_async_script(MOVE_AND_WAIT, position)
            latencies.append(ms)
        median = statistics.median(latencies)
        report = (f"steer explore, dssgan-shapes32 on CPU: slider change to new image shown, median of 50: "
                  f"{median:.1f} ms (min {min(latencies):.1f}, max {max(latencies):.1f})")
        print("\n" + report)
        (tmp_path / "latency.txt").write_text(report + "\n")

        # back to the checked position, then Save
        _, alpha = driver.execute_async_script(MOVE_AND_WAIT, 273)
        shown = driver.execute_async_script(SHOWN_BYTES)
        driver.find_element(By.ID, "save").click()
        wait.until(lambda d: d.find_element(By.ID, "saved").get_attribute("data-json"))
        saved_json = driver.find_element(By.ID, "saved").get_attribute("data-json")
        saved_png = driver.find_element(By.ID, "saved").get_attribute("data-png")
        assert saved_json == "explore-0001.json"  # a name in the save folder, not a path
        saved_json, saved_png = str(save_dir / saved_json), str(save_dir / saved_png)
    finally:
        driver.quit()
    settings = json.loads(open(saved_json).read())
    assert settings["model"] == "dssgan-shapes32"
    assert settings["walk"] == str(ZOOM_WALK.resolve())
    assert settings["alphas"] == [float(alpha)] and settings["seeds"] == [5] and settings["class"] == "square"
    out = tmp_path / "render"
    result = run_steer("render", "--settings", saved_json, "--frames", "--out", str(out))
    assert result.returncode == 0, result.stderr
    frame = (out / "frames" / "row0_alpha0.png").read_bytes()
    import base64
    assert np.array_equal(pixels(base64.b64decode(shown)), pixels(frame))  # what the page showed
    assert np.array_equal(pixels(open(saved_png, "rb").read()), pixels(frame))  # what Save wrote
