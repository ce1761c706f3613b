"""The operator page's HTTP server: static files, a JSON state, server-sent events, and the
PIN-protected actions. Python's standard library only (`http.server`, threads), like the
bridge's metrics endpoint; see docs/OPERATOR_PAGE.md for why that is enough here.

Routes:
    GET  /                       the page (index.html); ?token=... stores the access token
    GET  /static/<file>          the page's own CSS/JS (no CDN: works with no internet at all)
    GET  /api/state              everything the page shows, as JSON
    GET  /api/events             server-sent events: `state`, then `stations`, `readings`, `day`,
                                 `sync`, `reset` as things change (see view.Hub)
    GET  /api/reasons            reason codes with messages and hints, English and French
    GET  /api/readings?verdict=&device=&limit=   today's readings, filtered
    GET  /healthz                "ok"
    POST /api/stations/<device>/tare | /zero     {"pin"}
    POST /api/readings/<id>/void                  {"pin", "reason"}
    POST /api/upload/retry                        {"pin"}

Every POST is checked in this order: allowed Host, same origin (Origin or Sec-Fetch-Site), JSON
body of bounded size, the browser's CSRF token (X-CSRF-Token), a trusted browser (loopback-only
server or the access token), then the operator PIN (rate-limited). Each action, and each wrong
PIN, is written to the queue's audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twproto import messages as M

from tagweigh.errors import ConfigError
from tagweigh.queue import Queue, QueueError
from tagweigh.session import ONLINE
from tagweigh.web.auth import PinGate, WebConfig, csrf_token, is_loopback
from tagweigh.web.view import Hub, PageData, reasons_table

__all__ = ["WebServer"]

log = logging.getLogger("tagweigh.web")

STATIC = Path(__file__).with_name("static")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json",
          ".png": "image/png", ".ico": "image/x-icon"}
MAX_BODY = 4096  # every action body is a PIN and at most a short reason
KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies and dead-peer detection honest
COMMAND_TIMEOUT_S = 1.5  # per try; Session.command resends the same cmd_id once
COMMAND_TRIES = 2
SID_COOKIE = "tw_sid"
ACCESS_COOKIE = "tw_access"
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_ACTION = re.compile(r"^/api/(?:stations/([^/]{1,64})/(tare|zero)|readings/(\d{1,12})/(void)|upload/(retry))$")


def _load_static() -> dict[str, tuple[bytes, str, str]]:
    files = {}
    for p in sorted(STATIC.iterdir()):
        if p.is_file() and p.suffix in _TYPES:
            body = p.read_bytes()
            files[p.name] = (body, _TYPES[p.suffix], '"%s"' % hashlib.sha256(body).hexdigest()[:16])
    return files


class _Reply(Exception):
    """Ends a request with a JSON error (status, code, extra fields)."""

    def __init__(self, status: int, error: str, **extra: Any):
        super().__init__(error)
        self.status, self.error, self.extra = status, error, extra


class WebServer:
    """The operator page for one bridge. ``WebServer(bridge, web_config).start()``; ``stop()``.

    Opens its own connection to the bridge's queue (WAL: it reads while the bridge writes; the
    only writes are audit entries and voids). `address` is (host, port) once started."""

    def __init__(self, bridge: Any, config: WebConfig, *, hub_interval_s: float = 0.1,
                 secret: bytes | None = None):
        self.bridge = bridge
        self.config = config
        self.secret = secret or secrets.token_bytes(32)
        self.queue = Queue(bridge.queue.path)
        self.data = PageData(bridge, self.queue, site_name=config.site_name)
        self.hub = Hub(self.data, interval_s=hub_interval_s)
        self.pins = PinGate(config.operators, max_failures=config.pin_max_failures,
                            lockout_s=config.pin_lockout_s)
        self.static = _load_static()
        self._reasons = json.dumps(reasons_table(), ensure_ascii=False).encode()
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] | None = None
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        assert self.address is not None
        host = self.address[0]
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.address[1]}/"

    def start(self) -> "WebServer":
        cfg = self.config
        try:
            self._http = ThreadingHTTPServer((cfg.host, cfg.port), _handler(self))
        except OSError as exc:
            self.queue.close()
            raise ConfigError(f"cannot serve the operator page on {cfg.listen}: {exc.strerror}",
                              hint="set [web] listen to a free port, or enabled = false") from exc
        self._http.daemon_threads = True
        host, port = self._http.server_address[:2]
        self.address = (str(host), int(port))
        self.hub.start()
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.1,), name="web", daemon=True)
        self._thread.start()
        log.info("operator page on %s%s", self.url,
                 "" if cfg.loopback_only else " (actions need the access token)",
                 extra={"event": "web_started", "url": self.url})
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.hub.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
        self.queue.close()

    # ---- policy -----------------------------------------------------------------------------
    def host_allowed(self, host_header: str | None) -> bool:
        """A loopback-only server accepts only loopback Host names (a DNS-rebinding page must
        not become 'same origin' with it); a server reachable on the network relies on the
        access token instead, and `allowed_hosts` narrows it further when set."""
        if not host_header:
            return False
        name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        name = name.strip("[]").lower()
        if name in (h.lower() for h in self.config.allowed_hosts):
            return True
        if self.config.loopback_only:
            return is_loopback(name)
        return not self.config.allowed_hosts or name == self.config.host

    def trusted(self, cookies: dict[str, str], auth: str | None) -> bool:
        """May this browser act (with a PIN)?"""
        token = self.config.access_token
        if token:
            given = cookies.get(ACCESS_COOKIE, "")
            if auth and auth.startswith("Bearer "):
                given = auth[7:]
            if given and hmac.compare_digest(given.encode(), token.encode()):
                return True
        return self.config.loopback_only

    def readonly_reason(self, trusted: bool) -> str | None:
        if not trusted:
            return "token"
        if not self.config.operators:
            return "no_operators"
        return None

    # ---- actions ----------------------------------------------------------------------------
    def act(self, kind: str, target: str | None, body: dict[str, Any], client: str) -> dict[str, Any]:
        if not self.config.operators:
            raise _Reply(403, "no_operators")
        pin = body.get("pin")
        if not isinstance(pin, str) or not pin:
            raise _Reply(400, "pin_missing")
        reason = body.get("reason")
        if kind == "void":
            if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
                raise _Reply(400, "reason_missing")
            reason = " ".join(reason.split())
        try:
            op = self.pins.check(client, pin)
        except PermissionError as exc:
            raise _Reply(429, "pin_locked", retry_in_s=round(float(exc.args[0]), 1)) from None
        if op is None:
            self._audit("?", "pin_failed", {"action": kind, "target": target, "client": client})
            raise _Reply(403, "pin_wrong", retry_in_s=round(self.pins.locked_for(client), 1))
        if kind in ("tare", "zero"):
            return self._command(op.name, kind, str(target), client)
        if kind == "void":
            try:
                self.queue.void(int(str(target)), str(reason), op.name)
            except QueueError as exc:
                if "no reading" in str(exc):
                    raise _Reply(404, "not_found") from None
                raise _Reply(503, "queue", detail=str(exc)) from None
            self.hub.poke()
            return {"ok": True, "operator": op.name, "result": "voided"}
        # retry upload
        up = getattr(self.bridge, "uploader", None)
        if up is None:
            self._audit(op.name, "retry_upload", {"result": "no_uploader", "client": client})
            raise _Reply(409, "no_uploader")
        self.bridge.upload_now()  # the uploader's own loop retries every sink now, backoff skipped
        self._audit(op.name, "retry_upload", {"result": "scheduled", "client": client})
        self.hub.poke()
        return {"ok": True, "operator": op.name, "result": "scheduled"}

    def _command(self, actor: str, kind: str, device: str, client: str) -> dict[str, Any]:
        session = next((s for s in self.bridge.sessions() if s.device_id == device and s.state == ONLINE), None)
        if session is None:
            self._audit(actor, kind, {"device_id": device, "result": "offline", "client": client})
            raise _Reply(409, "offline")
        op = M.OP_TARE if kind == "tare" else M.OP_ZERO
        try:
            res = session.command(op, {}, timeout=COMMAND_TIMEOUT_S, tries=COMMAND_TRIES)
        except TimeoutError:
            self._audit(actor, kind, {"device_id": device, "result": "no_answer", "client": client})
            raise _Reply(504, "no_answer") from None
        name = M.RESULT_NAMES[res.status] if res.status < len(M.RESULT_NAMES) else str(res.status)
        self._audit(actor, kind, {"device_id": device, "result": name, "value": res.value, "client": client})
        self.hub.poke()
        return {"ok": res.status == M.RS_OK, "operator": actor, "result": name, "value": res.value}

    def _audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        try:
            self.queue.audit(actor, action, detail)
        except QueueError as exc:  # an action that cannot be audited is reported as failed
            log.error("cannot write the audit log: %s", exc)
            raise _Reply(503, "queue", detail=str(exc)) from None


def _cookies(header: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (header or "").split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k and len(out) < 32:
            out[k] = v
    return out


def _handler(web: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the first load is one connection
        server_version = "tagweigh"
        sys_version = ""

        def log_message(self, *args: Any) -> None:
            pass

        # ---- helpers ------------------------------------------------------------------------
        def _sid(self) -> tuple[str, bool]:
            sid = _cookies(self.headers.get("Cookie")).get(SID_COOKIE, "")
            if re.fullmatch(r"[A-Za-z0-9_-]{16,64}", sid):
                return sid, False
            return secrets.token_urlsafe(18), True

        def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None,
                  cookies: list[str] | tuple[str, ...] = ()) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Frame-Options", "DENY")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            for c in cookies:
                self.send_header("Set-Cookie", c)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj: Any, cookies: list[str] | tuple[str, ...] = ()) -> None:
            body = json.dumps(obj, separators=(",", ":"), default=str, ensure_ascii=False).encode()
            self._send(status, body, "application/json; charset=utf-8", {"Cache-Control": "no-store"}, cookies)

        def _sid_cookie(self, sid: str) -> str:
            return f"{SID_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000"

        def _server_info(self, sid: str) -> dict[str, Any]:
            trusted = web.trusted(_cookies(self.headers.get("Cookie")), self.headers.get("Authorization"))
            reason = web.readonly_reason(trusted)
            return {"csrf": csrf_token(web.secret, sid), "can_act": reason is None, "readonly": reason,
                    "uploader": getattr(web.bridge, "uploader", None) is not None}

        # ---- GET ----------------------------------------------------------------------------
        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            if not web.host_allowed(self.headers.get("Host")):
                self._send(421, b"unknown host name\n", "text/plain")
                return
            url = urlsplit(self.path)
            path = url.path
            sid, fresh = self._sid()
            cookies = [self._sid_cookie(sid)] if fresh else []
            try:
                if path in ("/", "/index.html"):
                    q = parse_qs(url.query)
                    if "token" in q:  # a technician opens /?token=... once on each tablet
                        given = q["token"][0]
                        ok = bool(web.config.access_token) and hmac.compare_digest(
                            given.encode(), web.config.access_token.encode())
                        if ok:
                            cookies.append(f"{ACCESS_COOKIE}={given}; Path=/; HttpOnly; SameSite=Strict; "
                                           "Max-Age=31536000")
                        log.info("access token %s from %s", "accepted" if ok else "refused", self.client_address[0],
                                 extra={"event": "web_token", "ok": ok})
                        self._send(303, b"", "text/plain", {"Location": "/"}, cookies)
                        return
                    self._static("index.html", cookies)
                elif path.startswith("/static/"):
                    self._static(path[len("/static/"):], cookies)
                elif path == "/api/events":
                    self._events(sid, cookies)
                elif path == "/api/state":
                    self._json(200, dict(web.data.state(), server=self._server_info(sid)), cookies)
                elif path == "/api/reasons":
                    self._send(200, web._reasons, "application/json; charset=utf-8",
                               {"Cache-Control": "no-cache"}, cookies)
                elif path == "/api/readings":
                    q = parse_qs(url.query)
                    verdict = q.get("verdict", [""])[0]
                    if verdict not in ("", "accept", "warn", "reject", "voided"):
                        raise _Reply(400, "bad_verdict")
                    try:
                        limit = max(1, min(int(q.get("limit", ["500"])[0]), 500))
                    except ValueError:
                        raise _Reply(400, "bad_limit") from None
                    rows = web.data.filtered(verdict=verdict or None, device_id=q.get("device", [""])[0] or None,
                                             limit=limit)
                    self._json(200, rows, cookies)
                elif path == "/healthz":
                    self._send(200, b"ok\n", "text/plain", {"Cache-Control": "no-store"})
                else:
                    self._send(404, b"not found\n", "text/plain")
            except _Reply as r:
                self._json(r.status, {"ok": False, "error": r.error, **r.extra})
            except QueueError as exc:
                self._json(503, {"ok": False, "error": "queue", "detail": str(exc)})
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _static(self, name: str, cookies: list[str]) -> None:
            f = web.static.get(name)
            if f is None:
                self._send(404, b"not found\n", "text/plain")
                return
            body, ctype, etag = f
            headers = {"Cache-Control": "no-cache", "ETag": etag}
            if name.endswith(".html"):
                headers["Content-Security-Policy"] = _CSP
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                for c in cookies:
                    self.send_header("Set-Cookie", c)
                self.end_headers()
                return
            self._send(200, body, ctype, headers, cookies)

        def _events(self, sid: str, cookies: list[str]) -> None:
            sub = web.hub.subscribe()
            if sub is None:
                self._json(503, {"ok": False, "error": "too_many_pages"})
                return
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
                self.send_header("Connection", "close")
                for c in cookies:
                    self.send_header("Set-Cookie", c)
                self.end_headers()
                self.close_connection = True
                info = self._server_info(sid)

                def state() -> bytes:
                    st = dict(web.data.state(), server=info)
                    return b"event: state\ndata: " + json.dumps(st, separators=(",", ":"), default=str).encode() + b"\n\n"

                self.wfile.write(b"retry: 1000\n\n" + state())
                self.wfile.flush()
                while not web.stopping.is_set():
                    items = sub.get(KEEPALIVE_S)
                    if sub.closed:
                        break
                    if items is None:
                        out = state()
                    elif not items:
                        out = b": keepalive\n\n"
                    else:
                        out = b"".join(b"event: " + e.encode() + b"\ndata: " + d.encode() + b"\n\n" for e, d in items)
                    self.wfile.write(out)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
            finally:
                web.hub.unsubscribe(sub)

        # ---- POST ---------------------------------------------------------------------------
        def do_POST(self) -> None:  # noqa: N802
            client = self.client_address[0]
            try:
                self._post(client)
            except _Reply as r:
                if r.error in ("csrf", "cross_site", "host"):
                    log.warning("operator page refused a request from %s: %s", client, r.error,
                                extra={"event": "web_refused", "why": r.error})
                self._json(r.status, {"ok": False, "error": r.error, **r.extra})
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _post(self, client: str) -> None:
            host = self.headers.get("Host")
            if not web.host_allowed(host):
                raise _Reply(421, "host")
            origin = self.headers.get("Origin")
            site = self.headers.get("Sec-Fetch-Site")
            if origin is not None:
                if origin not in (f"http://{host}", f"https://{host}"):
                    raise _Reply(403, "cross_site")
            elif site != "same-origin":
                raise _Reply(403, "cross_site")
            if site is not None and site not in ("same-origin", "none"):
                raise _Reply(403, "cross_site")
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                raise _Reply(415, "json_only")
            try:
                length = int(self.headers.get("Content-Length") or "0")
            except ValueError:
                raise _Reply(400, "bad_request") from None
            if not 0 < length <= MAX_BODY:
                raise _Reply(413 if length > MAX_BODY else 400, "bad_request")
            raw = self.rfile.read(length)
            sid = _cookies(self.headers.get("Cookie")).get(SID_COOKIE, "")
            given = self.headers.get("X-CSRF-Token") or ""
            if not sid or not hmac.compare_digest(given.encode(), csrf_token(web.secret, sid).encode()):
                raise _Reply(403, "csrf")
            m = _ACTION.match(urlsplit(self.path).path)
            if m is None:
                raise _Reply(404, "not_found")
            if not web.trusted(_cookies(self.headers.get("Cookie")), self.headers.get("Authorization")):
                raise _Reply(403, "readonly")
            try:
                body = json.loads(raw)
            except ValueError:
                raise _Reply(400, "bad_request") from None
            if not isinstance(body, dict):
                raise _Reply(400, "bad_request")
            if m.group(2):
                kind, target = m.group(2), m.group(1)
            elif m.group(4):
                kind, target = "void", m.group(3)
            else:
                kind, target = "retry", None
            self._json(200, web.act(kind, target, body, client))

    return Handler
