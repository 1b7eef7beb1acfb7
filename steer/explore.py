"""`steer explore`: a local page for driving walks by hand.

A standard-library HTTP server (no framework, nothing fetched from anywhere else) serves the
page in explore_static/ and renders images with the generator when the page asks:

    GET  /                the page (index.html, app.js, style.css)
    GET  /api/info        the model, its classes and truncation, and the walks found for it
    GET  /api/image?walk=W&seed=S&class=C&alpha=A[&truncation=T]   PNG of G(walk(z, alpha))
    GET  /api/strip?walk=W&seed=S&class=C[&truncation=T]           PNG: the walk across its show alphas
    POST /api/save        the same fields as JSON; writes a settings JSON and the PNG, returns their names
                          in the save folder

An image is exactly the one `steer render --frames` writes for the same settings: the same
sampling (steer.render.sample_rows), walk (render_walk) and PNG encoding (viz.png_bytes).
Colour walks take one alpha per channel ("alpha=r,g,b"). class "" means the class the seed
draws, as `steer render` without --class.

Any web page the user visits can send requests to a local server, so the server trusts no
request by default (see the README's "The explore server"):

- the Host header must name the bound address or localhost (no DNS rebinding);
- a request that changes state (POST /api/save) must be JSON (a cross-site form cannot send
  that without a CORS preflight, which is refused) and carry the page's per-session token
  or a same-origin Origin;
- with a token set (required for a non-loopback --host) every request but the static
  app.js and style.css must carry it (?token=, the X-Steer-Token header or the cookie the
  page sets);
- answers name files relative to the save folder, never absolute paths;
- sockets time out, connections are capped, and every error is a 4xx/5xx JSON answer.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import math
import re
import secrets
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import torch

from .edits import Edit, get_edit
from .errors import SteerError
from .generators.base import class_index as find_class
from .steering import Steering, source_record
from .viz import png_bytes
from .walks import load, read_meta

STATIC = Path(__file__).resolve().parent / "explore_static"
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/index.html": ("index.html", "text/html; charset=utf-8"),
         "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/style.css": ("style.css", "text/css; charset=utf-8")}
MAX_SEED = 2**32 - 1
MAX_BODY = 16_384  # a save request is a few short fields
SOCKET_TIMEOUT = 20  # seconds a connection may sit half-sent or idle before it is closed
MAX_CONNECTIONS = 32  # connections served at once; more are answered 503 and closed
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]{16,128}")
PUBLIC = {"/app.js", "/style.css"}  # the page's code: no secret in it, served without a token
SLIDER_POSITIONS = 400  # log-scale sliders: positions across the range


class BadRequest(Exception):
    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = int(status)


@dataclass
class WalkEntry:
    id: str
    path: Path
    walk: torch.nn.Module
    meta: dict
    edit: Edit
    space: str


@dataclass
class State:
    """One image the page asks for."""
    entry: WalkEntry
    seed: int
    class_text: str | None  # as the user picked it (a name or an index), None: the seed's class
    class_index: int | None
    alpha: object  # float, or [r, g, b] for a colour walk
    truncation: float | None


def latent_shapes(generator) -> dict:
    """{space: the shape of one latent there}."""
    return {space: tuple(generator.latent_shape(space)) for space in generator.spaces}


def walks_model(folder, device=None):
    """The generator the walk files under `folder` were learned on (they must agree); None
    when the folder holds no walk files."""
    from .steering import model_for
    metas = []
    for path in sorted(Path(folder).rglob("*.safetensors")):
        try:
            metas.append((path, read_meta(path)))
        except SteerError:
            continue
    if not metas:
        return None
    named = {json.dumps(m.get("source") or m.get("model"), sort_keys=True) for _, m in metas}
    if len(named) > 1:
        raise SteerError(f"the walks under {folder} were learned on {len(named)} different models: "
                         "pass --model to say which one to explore")
    path, meta = metas[0]
    return model_for(meta, None, device, what=str(path))


def find_walks(generator, folder) -> list:
    """The walk files under `folder` (searched recursively) that move this generator's latents:
    their latent shape must be the generator's in the walk's space. Other files are skipped."""
    folder = Path(folder)
    shapes = latent_shapes(generator)
    found = []
    for path in sorted(folder.rglob("*.safetensors")):
        try:
            meta = read_meta(path)
        except SteerError:
            continue  # model weights and other safetensors files
        space = meta.get("space", generator.default_space)
        shape = tuple(meta.get("settings", {}).get("latent_shape", ()))
        if space not in shapes or shapes[space] != shape:
            continue
        try:
            walk, meta = load(path, device=generator.device)
        except SteerError:
            continue
        rel = path.relative_to(folder)
        name = rel.parent if path.name == "walk.safetensors" else rel.with_suffix("")
        walk_id = name.as_posix() if str(name) != "." else path.stem
        found.append(WalkEntry(walk_id, path, walk.eval(), meta, get_edit(meta["edit"]), space))
    return found


def default_walks_dir(model_name: str) -> Path:
    """walks/<model> in the working folder, else the walks shipped beside the package."""
    here = Path("walks") / model_name
    return here if here.is_dir() else Path(__file__).resolve().parents[1] / "walks" / model_name


def _nice_step(span: float) -> float:
    """A round slider step giving about 200 positions over `span`."""
    return 10.0 ** math.floor(math.log10(span / 200))


class Explorer:
    """The generator, its walks and the save folder; turns requests into PNGs. Truncation is an
    argument of each render, so requests share no state; one render runs at a time all the
    same, since a CPU has no use for two."""

    def __init__(self, generator, walks: list, model_spec: str, save_dir):
        if not walks:
            raise SteerError("no walks to explore")
        self.G = generator
        self.walks = {w.id: w for w in walks}
        self.model_spec = model_spec
        self.save_dir = Path(save_dir)
        # steer's own families truncate z only when sampling: the page offers truncation for
        # families whose truncation is part of the model (StyleGAN psi, BigGAN)
        self.truncation_kind = generator.truncation_kind if generator.truncation_kind != "z" else None
        self.default_truncation = 1.0 if self.truncation_kind else None
        self.lock = threading.Lock()

    # -- what the page is told ----------------------------------------------------------
    def info(self) -> dict:
        G = self.G
        names = list(G.class_names or [])
        classes = [{"value": "", "label": "the seed's own"}] if G.num_classes else []
        classes += [{"value": names[i] if i < len(names) else str(i),
                     "label": f"{i}: {names[i]}" if i < len(names) else str(i)} for i in range(G.num_classes)]
        return {"model": G.name, "resolution": G.resolution, "classes": classes,
                "truncation": None if self.truncation_kind is None else {
                    "kind": self.truncation_kind, "default": self.default_truncation},
                "walks": [self._walk_info(w) for w in self.walks.values()]}

    def _walk_info(self, w: WalkEntry) -> dict:
        res = self.G.resolution
        tests = w.edit.test_alphas(res)
        low, high = float(min(tests)), float(max(tests))
        info = {"id": w.id, "edit": w.edit.name, "kind": w.meta["walk"], "sliders": w.edit.sliders,
                "min": low, "max": high, "identity": w.edit.identity, "convention": w.edit.convention,
                "show_alphas": [float(a) for a in w.edit.show_alphas(res)],
                "learned_on": w.meta.get("model"), "truncation": w.meta.get("truncation")}
        if w.edit.step_mode == "multiply" and low > 0:
            # a multiplicative alpha (zoom) moves evenly on a log scale
            info.update(scale="log", log2_min=math.log2(low), log2_step=math.log2(high / low) / SLIDER_POSITIONS,
                        positions=SLIDER_POSITIONS)
        else:
            info.update(scale="linear", step=_nice_step(high - low))
        return info

    # -- requests -----------------------------------------------------------------------
    def parse(self, fields: dict, need_alpha: bool = True) -> State:
        """Check every field of a request; anything wrong is a BadRequest with the reason."""
        walk_id = str(fields.get("walk", ""))
        if walk_id not in self.walks:
            raise BadRequest(f"unknown walk '{walk_id[:80]}': this server has {', '.join(self.walks)}",
                             HTTPStatus.NOT_FOUND)
        entry = self.walks[walk_id]
        seed_text = str(fields.get("seed", "0")).strip()
        if not re.fullmatch(r"\d{1,10}", seed_text) or int(seed_text) > MAX_SEED:
            raise BadRequest(f"seed must be a whole number in 0..{MAX_SEED}, got '{seed_text[:40]}'")
        class_text = str(fields.get("class", "") or "").strip() or None
        class_index = None
        if class_text is not None and len(class_text) > 200:
            raise BadRequest("class is too long: give a class name or index")
        if class_text is not None:
            if not self.G.num_classes:
                raise BadRequest(f"{self.G.name} is unconditional: leave class empty")
            try:
                class_index = find_class(self.G, class_text, "class")
            except SteerError as e:
                raise BadRequest(str(e)) from None
        alpha = self._parse_alpha(entry, fields.get("alpha")) if need_alpha else entry.edit.identity
        truncation = self._parse_truncation(fields.get("truncation"))
        return State(entry, int(seed_text), class_text, class_index, alpha, truncation)

    def _parse_alpha(self, entry: WalkEntry, value):
        edit = entry.edit
        if value is None or value == "":
            raise BadRequest("alpha is missing")
        parts = value if isinstance(value, list) else str(value).split(",")
        if len(parts) != edit.sliders:
            raise BadRequest(f"{edit.name} takes {edit.sliders} alpha value(s) (comma-separated), got {len(parts)}")
        try:
            values = [float(v) for v in parts]
        except (TypeError, ValueError):
            raise BadRequest(f"alpha must be numbers, got '{str(value)[:80]}'") from None
        low, high = edit.valid(self.G.resolution)
        for v in values:
            if not math.isfinite(v) or not low <= v <= high:
                raise BadRequest(f"alpha {v:g} is out of range for {edit.name}: use values in [{low:g}, {high:g}]")
        return values if edit.sliders > 1 else values[0]

    def _parse_truncation(self, value):
        if value is None or value == "":
            return None
        if self.truncation_kind is None:
            raise BadRequest(f"{self.G.name} has no truncation setting: leave truncation empty")
        try:
            t = float(value)
        except (TypeError, ValueError):
            raise BadRequest(f"truncation must be a number, got '{str(value)[:40]}'") from None
        high = 1.0 if self.truncation_kind == "biggan" else 2.0
        if not math.isfinite(t) or not 0 < t <= high:
            raise BadRequest(f"truncation must be in (0, {high:g}], got {t:g}")
        return t

    # -- rendering ----------------------------------------------------------------------
    def _render(self, state: State, alphas):
        """(len(alphas), 3, H, W) exactly as `steer render` computes them for one seed."""
        e = state.entry
        # as steer render: the truncation asked for, else the walk's, else none
        value = state.truncation if state.truncation is not None else e.meta.get("truncation")
        steering = Steering(self.G, e.walk, e.edit, e.space, truncation=value if self.truncation_kind else None)
        classes = None if state.class_index is None else torch.tensor([state.class_index])
        with self.lock:
            latent, c = steering.rows([state.seed], classes)
            return steering.strips(latent, c, alphas)[0], latent

    def image_png(self, state: State) -> bytes:
        return png_bytes(self._render(state, [state.alpha])[0][0])

    def strip_png(self, state: State) -> bytes:
        """The walk across its show alphas, side by side without a gutter (a colour walk's
        strip moves all three channels together)."""
        frames = self._render(state, state.entry.edit.show_alphas(self.G.resolution))[0]
        return png_bytes(torch.cat(list(frames), dim=-1))

    def settings(self, state: State, latent=None) -> dict:
        """The JSON `steer render --settings` reads: the same keys as render.json."""
        e = state.entry
        record = {"walk": str(e.path.resolve()), "model": self.model_spec, "source": source_record(self.G),
                  "space": e.space,
                  "seeds": [state.seed], "class": state.class_text, "classes": None, "channel": "all",
                  "alphas": [state.alpha], "truncation": state.truncation, "edit": e.edit.name}
        if latent is not None:
            record["latent"] = latent.reshape(-1).tolist()  # the seed's latent in the walk's space, before the walk
        return record

    def save(self, state: State) -> dict:
        """Write explore-NNNN.png and explore-NNNN.json (settings `steer render` reproduces it from)."""
        frames, latent = self._render(state, [state.alpha])
        png = png_bytes(frames[0])
        with self.lock:
            try:
                self.save_dir.mkdir(parents=True, exist_ok=True)
                n = 1
                while (self.save_dir / f"explore-{n:04d}.json").exists() or (self.save_dir / f"explore-{n:04d}.png").exists():
                    n += 1
                stem = self.save_dir / f"explore-{n:04d}"
                record = self.settings(state, latent)
                record["image"] = stem.name + ".png"
                record["render_command"] = f"steer render --settings {stem}.json --frames"
                stem.with_suffix(".png").write_bytes(png)
                stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
            except OSError as e:
                raise BadRequest(f"cannot write to the save folder {self.save_dir}: {e.strerror or e}",
                                 HTTPStatus.INTERNAL_SERVER_ERROR) from None
        # names in the save folder only: a page must not learn where the user's files live
        return {"json": stem.name + ".json", "png": stem.name + ".png",
                "settings": {"walk": e_id(state), "seeds": record["seeds"], "class": record["class"],
                             "alphas": record["alphas"], "truncation": record["truncation"], "edit": record["edit"],
                             "render_command": f"steer render --settings {stem.name}.json --frames"}}


def e_id(state: State) -> str:
    return state.entry.id


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(host: str, token):
    """The token a server on `host` requires: a non-loopback address serves other machines
    and every page they visit, so it needs one; on loopback it is optional."""
    if token is not None and not TOKEN_PATTERN.fullmatch(token):
        raise SteerError("--token must be 16 to 128 characters of A-Z, a-z, 0-9, '.', '_', '~' or '-'")
    if token is None and not is_loopback(host):
        raise SteerError(f"--host {host} serves other machines too: give --token SECRET (16+ characters, e.g. from "
                         "'python -c \"import secrets; print(secrets.token_urlsafe())\"') and open the printed URL")
    return token


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a drag sends many small requests
    server_version = "steer-explore"

    def log_message(self, format, *args):
        pass  # quiet: the terminal keeps the URL line

    @property
    def explorer(self) -> Explorer:
        return self.server.explorer

    timeout = SOCKET_TIMEOUT  # socketserver sets it on each connection: half-sent requests end

    def do_GET(self):
        url = urlsplit(self.path)
        self._answer(lambda: self._get(url.path, dict(parse_qsl(url.query, keep_blank_values=True))))

    def do_POST(self):
        self._answer(self._post)

    def _not_allowed(self):
        self.close_connection = True  # a body we do not read must not be taken for the next request
        self._answer(self._refuse_method)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_TRACE = do_CONNECT = _not_allowed

    def _refuse_method(self):
        raise BadRequest(f"method {str(getattr(self, 'command', ''))[:20]} is not allowed: use GET (POST for /api/save)",
                         HTTPStatus.METHOD_NOT_ALLOWED)

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (a bad request line, an unknown method, huge headers) as
        JSON like every other answer; an unknown method is 405, not 501."""
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # a garbled request line still gets a status line and headers
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed: use GET (POST for /api/save)"
        self.close_connection = True
        self._send(int(code), "application/json", json.dumps({"error": message or HTTPStatus(code).phrase}).encode())

    # -- who may ask ----------------------------------------------------------------------
    def _allowed_host(self) -> bool:
        """The Host header names this server: its bound address or localhost, with its port.
        A DNS-rebinding page reaches the server under the attacker's host name instead."""
        host = (self.headers.get("Host") or "").strip().lower()
        match = re.fullmatch(r"(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::([0-9]{1,5}))?", host)
        if not match:
            return False
        name, port = match.group(1).strip("[]"), match.group(2)
        if port is not None and int(port) != self.server.server_address[1]:
            return False
        return name in self.server.host_names

    def _token_given(self) -> bool:
        token = self.server.session_token  # the user's --token, else the one made for this session
        cookie = re.search(r"(?:^|;\s*)steer_token=([^;]*)", self.headers.get("Cookie") or "")
        given = [self.headers.get("X-Steer-Token"), cookie.group(1) if cookie else None,
                 dict(parse_qsl(urlsplit(self.path).query)).get("token")]
        return any(g is not None and hmac.compare_digest(g.encode(), token.encode()) for g in given)

    def _check_host(self):
        if not self._allowed_host():
            raise BadRequest(f"Host '{(self.headers.get('Host') or '')[:80]}' is not this server: use the URL "
                             "steer explore printed", HTTPStatus.FORBIDDEN)

    def _check_caller(self, path: str, changes_state: bool):
        if self.server.token_required and path not in PUBLIC and not self._token_given():
            raise BadRequest("this server needs its token: open the URL steer explore printed (with ?token=)",
                             HTTPStatus.FORBIDDEN)
        if changes_state:
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if kind != "application/json":
                raise BadRequest("a save request must be sent as Content-Type: application/json",
                                 HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            origin = self.headers.get("Origin")
            same_origin = origin is not None and origin.rstrip("/").lower() in self.server.origins(self.headers)
            if origin is not None and not same_origin:
                raise BadRequest(f"cross-site request from {origin[:80]} refused", HTTPStatus.FORBIDDEN)
            if not same_origin and not self._token_given():
                raise BadRequest("a save request needs the page's token (X-Steer-Token) or a same-origin Origin",
                                 HTTPStatus.FORBIDDEN)

    # -- what they get ----------------------------------------------------------------------
    def _get(self, path, fields):
        self._check_caller(path, changes_state=False)
        if path in PAGES:
            name, kind = PAGES[path]
            body = (STATIC / name).read_bytes()
            if name == "index.html":  # the page carries this session's token for its requests
                body = body.replace(b'name="steer-token" content=""',
                                    f'name="steer-token" content="{self.server.session_token}"'.encode())
            return kind, body
        if path == "/api/info":
            return "application/json", json.dumps(self.explorer.info()).encode()
        if path == "/api/image":
            return "image/png", self.explorer.image_png(self.explorer.parse(fields))
        if path == "/api/strip":
            return "image/png", self.explorer.strip_png(self.explorer.parse(fields, need_alpha=False))
        raise BadRequest(f"no such page: {path[:80]}", HTTPStatus.NOT_FOUND)

    def _post(self):
        path = urlsplit(self.path).path
        if path != "/api/save":
            self.close_connection = True
            raise BadRequest("only /api/save takes POST", HTTPStatus.METHOD_NOT_ALLOWED)
        try:
            self._check_caller(path, changes_state=True)
        except BadRequest:
            self.close_connection = True  # its body stays unread
            raise
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise BadRequest("a save request needs a Content-Length", HTTPStatus.LENGTH_REQUIRED) from None
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            raise BadRequest(f"request body too large ({length} bytes; at most {MAX_BODY})",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            fields = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
            raise BadRequest("the body must be JSON: an object of a few fields") from None
        if not isinstance(fields, dict):
            raise BadRequest("the body must be a JSON object")
        return "application/json", json.dumps(self.explorer.save(self.explorer.parse(fields))).encode()

    def _answer(self, produce):
        headers = {}
        try:
            self._check_host()  # first, for every method: a rebinding page learns nothing
            kind, body = produce()
            status = HTTPStatus.OK
            if self.server.token_required and self._token_given():
                # the page's later requests (images, app.js) carry the token as a cookie
                headers["Set-Cookie"] = f"steer_token={self.server.session_token}; Path=/; HttpOnly; SameSite=Strict"
        except BadRequest as e:
            status, kind, body = e.status, "application/json", json.dumps({"error": str(e)}).encode()
        except SteerError as e:
            status, kind, body = HTTPStatus.BAD_REQUEST, "application/json", json.dumps({"error": str(e)}).encode()
        except Exception as e:  # a bug: say so, keep serving
            status, kind = HTTPStatus.INTERNAL_SERVER_ERROR, "application/json"
            body = json.dumps({"error": f"internal error: {type(e).__name__}"}).encode()
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            headers["Allow"] = "GET, POST"
        self._send(int(status), kind, body, headers)

    def _send(self, status: int, kind: str, body: bytes, headers=None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if getattr(self, "command", None) != "HEAD":
                self.wfile.write(body)
        except (ConnectionError, socket.timeout):
            self.close_connection = True  # the page went away mid-answer


class ExploreServer(ThreadingHTTPServer):
    """At most MAX_CONNECTIONS connections at once, each in its own daemon thread; the rest
    get a short 503 and are closed, so a flood of half-open sockets cannot take every thread."""
    daemon_threads = True
    request_queue_size = 64  # the listen backlog: past socketserver's 5, a page's burst waits in the kernel

    def __init__(self, address, handler, token=None):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.token = token
        self.token_required = token is not None
        # the page gets the user's token, else one made for this session (needed to save)
        self.session_token = token or secrets.token_urlsafe(24)
        bound = self.server_address[0]
        self.host_names = {"localhost", "127.0.0.1", "::1", bound.lower()}
        if bound in ("0.0.0.0", "::"):  # every interface: the names and addresses of this machine
            names = {socket.gethostname(), socket.getfqdn()}
            for name in list(names):
                try:
                    names.update(socket.gethostbyname_ex(name)[2])
                except OSError:
                    pass
            self.host_names |= {n.lower() for n in names if n}

    def origins(self, headers) -> set:
        """The origins this server's own page has: its Host, as the browser sent it."""
        host = (headers.get("Host") or "").strip().lower()
        return {f"http://{host}"}

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(0.05)  # take what was sent, so closing does not reset the answer away
                try:
                    request.recv(65536)
                except OSError:
                    pass
                body = json.dumps({"error": "too many connections: try again"}).encode()
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> ExploreServer:
    """Bind (port 0: a free port) without serving yet; server.url says where, server.page_url
    is the page with its token when one is required. A non-loopback host needs a token."""
    token = check_token(host, token)
    server_class = ExploreServer
    if ":" in host:  # an IPv6 address
        server_class = type("ExploreServer6", (ExploreServer,), {"address_family": socket.AF_INET6})
    try:
        server = server_class((host, port), Handler, token=token)
    except OSError as e:
        if getattr(e, "errno", None) == 98 or "in use" in str(e):
            raise SteerError(f"port {port} on {host} is in use: choose another --port (0 picks a free one)") from None
        raise SteerError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.explorer = explorer
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    server.url = f"http://{shown}:{bound_port}/"
    server.page_url = server.url + (f"?token={token}" if token else "")  # what the user opens
    return server
