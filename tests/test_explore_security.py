"""The explore server against hostile requests: raw HTTP from generated parts (methods, hosts,
origins, content types, bodies), DNS-rebinding Host values, cross-site saves, half-sent
connections, a connection flood, and the token a non-loopback --host needs. Every answer is
JSON with a 2xx/4xx status, no unauthorised save writes a file, and the server keeps serving.

One server per module (two: without and with --token), with a short socket timeout."""
import json
import random
import re
import socket
import threading
import time

import pytest

from conftest import REPO, assert_user_error

WALKS = REPO / "walks" / "dcgan-shapes32"
TOKEN = "test-token-0123456789abcdef"


def start(tmp_path_factory, token=None):
    import steer.explore as explore
    from steer import load_generator
    G = load_generator("dcgan-shapes32", device="cpu")
    save_dir = tmp_path_factory.mktemp("saves")
    server = explore.make_server(explore.Explorer(G, explore.find_walks(G, WALKS), "dcgan-shapes32", save_dir),
                                 "127.0.0.1", 0, token=token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.save_dir = save_dir
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import steer.explore as explore
    saved = explore.Handler.timeout
    explore.Handler.timeout = 1.5  # half-sent requests end fast here; 20 s in use
    s = start(tmp_path_factory)
    yield s
    s.shutdown()
    s.server_close()
    explore.Handler.timeout = saved


@pytest.fixture(scope="module")
def token_server(tmp_path_factory, server):
    s = start(tmp_path_factory, token=TOKEN)
    yield s
    s.shutdown()
    s.server_close()


def port_of(s):
    return s.server_address[1]


def send(s, data: bytes, timeout=10):
    """Raw bytes in, (status or None, headers, parsed JSON body or raw bytes) out."""
    with socket.create_connection(("127.0.0.1", port_of(s)), timeout=timeout) as c:
        try:
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)  # nothing more comes: the server must answer what it has
        except OSError:
            pass  # the server answered and closed before all was sent (a refusal): read that answer
        raw = b""
        while True:
            try:
                chunk = c.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    headers = dict(re.findall(rb"\r\n([^:\r\n]+): ([^\r\n]*)", head))
    headers = {k.decode().lower(): v.decode() for k, v in headers.items()}
    return (int(match.group(1)) if match else None), headers, body


def request(s, method="GET", path="/api/info", host=None, headers=None, body=b""):
    host = f"127.0.0.1:{port_of(s)}" if host is None else host
    lines = [f"{method} {path} HTTP/1.1"] + ([f"Host: {host}"] if host is not False else [])
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body and "Content-Length" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return send(s, ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body)


def saves(s):
    return sorted(p.name for p in s.save_dir.iterdir())


def assert_json_error(status, headers, body, *codes):
    assert status in codes, (status, body[:200])
    assert headers.get("content-type") == "application/json", headers
    assert "error" in json.loads(body)


def save_body(**extra):
    return json.dumps({"walk": "zoom", "seed": "1", "alpha": "2", **extra}).encode()


# -- single cases from the issue -------------------------------------------------------------

def test_a_cross_site_text_plain_save_writes_nothing(server):
    before = saves(server)
    status, headers, body = request(server, "POST", "/api/save", headers={
        "Content-Type": "text/plain", "Origin": "http://attacker.example"}, body=save_body())
    assert_json_error(status, headers, body, 415, 403)
    status, headers, body = request(server, "POST", "/api/save", headers={
        "Content-Type": "application/json", "Origin": "http://attacker.example"}, body=save_body())
    assert_json_error(status, headers, body, 403)
    status, headers, body = request(server, "POST", "/api/save", headers={"Content-Type": "application/json"},
                                    body=save_body())
    assert_json_error(status, headers, body, 403)  # no Origin and no token: not the page
    assert saves(server) == before


def test_the_page_saves_with_its_token_and_learns_only_names(server):
    status, _, page = request(server, "GET", "/")
    token = re.search(rb'name="steer-token" content="([^"]+)"', page).group(1).decode()
    before = saves(server)
    status, headers, body = request(server, "POST", "/api/save", headers={
        "Content-Type": "application/json", "X-Steer-Token": token}, body=save_body())
    assert status == 200, body
    answer = json.loads(body)
    assert re.fullmatch(r"explore-\d{4}\.json", answer["json"]) and re.fullmatch(r"explore-\d{4}\.png", answer["png"])
    assert str(server.save_dir) not in body.decode() and str(REPO) not in body.decode()  # no absolute paths
    assert len(saves(server)) == len(before) + 2
    origin = f"http://127.0.0.1:{port_of(server)}"
    status, _, body = request(server, "POST", "/api/save", headers={"Content-Type": "application/json; charset=utf-8",
                                                                     "Origin": origin}, body=save_body())
    assert status == 200, body  # same origin, as a browser sends it


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}", "127.0.0.1.attacker.example",
                                  "localhost:1", "127.0.0.1:{other}", "", "evil/..", False])
def test_a_host_other_than_this_server_is_refused(server, host):
    if isinstance(host, str):
        host = host.format(port=port_of(server), other=port_of(server) + 1)
    status, headers, body = request(server, "GET", "/api/info", host=host)
    assert_json_error(status, headers, body, 400, 403)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "127.0.0.1", "localhost"])
def test_this_servers_own_names_are_served(server, host):
    status, _, body = request(server, "GET", "/api/info", host=host.format(port=port_of(server)))
    assert status == 200 and json.loads(body)["model"] == "dcgan-shapes32"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "HEAD"])
def test_other_methods_get_405_json(server, method):
    status, headers, body = request(server, method, "/api/save")
    assert status == 405 and headers.get("content-type") == "application/json"
    if method != "HEAD":
        assert "error" in json.loads(body)


def test_unknown_class_and_deep_json_are_4xx(server):
    status, headers, body = request(server, "GET", "/api/image?walk=zoom&alpha=1&class=%C2%B2")
    assert_json_error(status, headers, body, 400)
    origin = {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port_of(server)}"}
    for deep in (b"[" * 8000 + b"]" * 8000, b'{"a":' * 5000 + b"1" + b"}" * 5000):
        status, headers, body = request(server, "POST", "/api/save", headers=origin, body=deep)
        assert_json_error(status, headers, body, 400, 413)
    status, headers, body = request(server, "POST", "/api/save", headers=origin, body=save_body(**{"class": "²"}))
    assert_json_error(status, headers, body, 400)


def test_half_sent_connections_are_closed(server):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=20) as c:
        c.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1")  # and never the rest
        assert c.recv(1024) == b""  # the server hangs up
    assert time.monotonic() - started < 10


def test_a_connection_flood_is_capped_and_the_server_recovers(server):
    from steer.explore import MAX_CONNECTIONS
    held = [socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # every one accepted and holding a slot
        status, headers, body = request(server, "GET", "/api/info")
        assert_json_error(status, headers, body, 503)
    finally:
        for c in held:
            c.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if request(server, "GET", "/api/info")[0] == 200:
            break
        time.sleep(0.1)
    assert request(server, "GET", "/api/info")[0] == 200


# -- generated raw requests ------------------------------------------------------------------

def random_request(rng, s):
    """(raw bytes, does it carry the right to save, is its Host this server)."""
    port = port_of(s)
    method = rng.choice(["GET", "GET", "POST", "POST", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "BREW", "get", ""])
    path = rng.choice(["/", "/api/info", "/api/save", "/api/image?walk=zoom&alpha=1", "/api/strip?walk=zoom",
                       "/api/image?walk=zoom&alpha=nan&seed=99999999999", "/api/image?walk=%00&class=\u00b2",
                       "/../../etc/passwd", "/api/save?x=" + "a" * rng.randint(0, 3000), "*", "http://evil/api/info",
                       "/" + "".join(rng.choice("abc/%.?&=") for _ in range(rng.randint(0, 40)))])
    good_host = rng.random() < 0.7
    host = (rng.choice([f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"]) if good_host else
            rng.choice(["attacker.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "", "\u00b2",
                        "a" * 300, f"localhost.evil:{port}"]))
    content_type = rng.choice(["application/json", "application/json; charset=utf-8", "text/plain",
                               "application/x-www-form-urlencoded", "multipart/form-data", None])
    origin = rng.choice([f"http://127.0.0.1:{port}", "http://attacker.example", "null", None, None])
    token = rng.choice([s.session_token, "wrong-token-value-123456", None, None])
    body = rng.choice([save_body(), b"{}", b"[]", b"null", b"not json", b"[" * 9000 + b"]" * 9000,
                       json.dumps({"walk": ["zoom"], "seed": {"a": 1}, "alpha": [[1]]}).encode(),
                       json.dumps({"walk": "zoom", "alpha": "1e308", "class": "\u00b2" * 50}).encode(),
                       bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))), b""])
    headers = [f"{method} {path} HTTP/1.1"]
    if good_host or rng.random() < 0.5:  # a bad Host is sometimes no Host at all
        headers.append(f"Host: {host}")
    if content_type:
        headers.append(f"Content-Type: {content_type}")
    if origin:
        headers.append(f"Origin: {origin}")
    if token:
        headers.append(f"X-Steer-Token: {token}")
    length = len(body)
    if rng.random() < 0.15:
        length = rng.choice([-1, 10**12, "x", max(0, len(body) - 3)])  # never more than sent: that would wait
    headers.append(f"Content-Length: {length}")
    headers.append("Connection: close")
    raw = ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + body
    authorised = (content_type or "").startswith("application/json") and (
        origin == f"http://127.0.0.1:{port}" or (token == s.session_token and origin in (None,)))
    to_save = method == "POST" and (path == "/api/save" or path.startswith("/api/save?"))
    return raw, authorised and good_host and to_save, good_host


def test_generated_raw_requests_never_500_and_never_save_unasked(server):
    rng = random.Random(9)
    n = 250
    for i in range(n):
        raw, may_save, host_ok = random_request(rng, server)
        before = saves(server)
        status, headers, body = send(server, raw)
        assert status is not None and status < 500 or status == 503, (i, raw[:200], status, body[:200])
        if status >= 400:
            assert headers.get("content-type") == "application/json", (raw[:200], headers)
            if body:
                assert "error" in json.loads(body)
        if not host_ok and raw.split(b" ")[0] in (b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS"):
            assert status in (400, 403), (raw[:200], status)
        if not may_save:
            assert saves(server) == before, raw[:300]
    print(f"\nraw HTTP requests: {n} generated cases")
    assert request(server, "GET", "/api/image?walk=zoom&alpha=1")[0] == 200  # still serving


# -- the token ----------------------------------------------------------------------------

def test_a_token_server_answers_nothing_without_its_token(token_server):
    s = token_server
    for path in ("/", "/api/info", "/api/image?walk=zoom&alpha=1"):
        status, headers, body = request(s, "GET", path)
        assert_json_error(status, headers, body, 403)
        status, headers, body = request(s, "GET", path, headers={"X-Steer-Token": "not-the-token-at-all"})
        assert_json_error(status, headers, body, 403)
    assert request(s, "GET", "/app.js")[0] == 200  # the page's code holds no secret
    status, headers, page = request(s, "GET", f"/?token={TOKEN}")
    assert status == 200 and f'content="{TOKEN}"'.encode() in page
    assert "steer_token=" in headers.get("set-cookie", "")
    assert request(s, "GET", "/api/info", headers={"Cookie": f"steer_token={TOKEN}"})[0] == 200
    assert request(s, "GET", "/api/info", headers={"X-Steer-Token": TOKEN})[0] == 200
    before = saves(s)
    status, _, body = request(s, "POST", "/api/save", headers={"Content-Type": "application/json",
                                                                "Origin": f"http://127.0.0.1:{port_of(s)}"},
                              body=save_body())
    assert status == 403 and saves(s) == before  # same origin is not enough: the token is the key
    status, _, body = request(s, "POST", "/api/save", headers={"Content-Type": "application/json",
                                                                "X-Steer-Token": TOKEN}, body=save_body())
    assert status == 200, body


def test_a_non_loopback_host_needs_a_token():
    from test_hostile_cli import steer_here
    assert_user_error(steer_here("explore", "--host", "0.0.0.0", "--port", "0"), "--token")
    assert_user_error(steer_here("explore", "--host", "192.168.1.20", "--port", "0"), "--token")
    assert_user_error(steer_here("explore", "--host", "0.0.0.0", "--token", "short"), "--token")
    from steer.explore import check_token
    assert check_token("127.0.0.1", None) is None and check_token("::1", None) is None
    assert check_token("0.0.0.0", TOKEN) == TOKEN
