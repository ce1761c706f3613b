"""Who may do what on the operator page: the [web] config, operator PINs, the access token,
the cross-site request guard and the PIN attempt limiter.

The model, in one paragraph: anyone who can reach the page may look at it. Changing something
(tare, zero, void a reading, retry the upload) needs three things: the request comes from the
page itself (same origin, a per-browser CSRF token, an allowed Host), the browser is trusted
(the server listens on loopback only, or the browser presented the configured access token),
and an operator typed a PIN that matches one configured operator, who is then named in the
audit log. PINs are stored as salted scrypt hashes; wrong PINs are limited per client and in
total, so a 4-digit PIN cannot be guessed through the page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from tagweigh.config import Config, _Section
from tagweigh.errors import ConfigError

__all__ = ["Operator", "PinGate", "WebConfig", "csrf_token", "hash_pin", "is_loopback", "verify_pin",
           "web_config"]

DEFAULT_LISTEN = "127.0.0.1:8080"
# scrypt cost: n=2**14, r=8 takes ~30 ms and 16 MiB here: cheap for one login, slow for a
# guessing loop over a stolen config file (a 4-digit PIN is still weak offline: keep the file 0600).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1
PIN_MIN, PIN_MAX = 4, 12


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_pin_format(pin: str) -> None:
    if not (isinstance(pin, str) and pin.isdigit() and PIN_MIN <= len(pin) <= PIN_MAX and pin.isascii()):
        raise ConfigError(f"a PIN is {PIN_MIN} to {PIN_MAX} digits")


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """'scrypt$n$r$p$salt$hash' for a PIN of 4-12 digits (what [web] operators store)."""
    check_pin_format(pin)
    salt = salt if salt is not None else secrets.token_bytes(16)
    dk = hashlib.scrypt(pin.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(dk)}"


def _parse_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not scrypt$n$r$p$salt$hash")
    n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
    if not (2 <= n <= 1 << 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("scrypt parameters out of range")
    salt, dk = _unb64(parts[4]), _unb64(parts[5])
    if len(salt) < 8 or len(dk) < 16:
        raise ValueError("salt or hash too short")
    return n, r, p, salt, dk


def verify_pin(pin: str, hashed: str) -> bool:
    """Constant-time check of a PIN against hash_pin's output (False for a malformed PIN)."""
    try:
        check_pin_format(pin)
        n, r, p, salt, dk = _parse_hash(hashed)
    except (ConfigError, ValueError):
        return False
    got = hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=len(dk), maxmem=256 << 20)
    return hmac.compare_digest(got, dk)


@dataclass(frozen=True)
class Operator:
    name: str
    pin_hash: str = field(repr=False)


@dataclass(frozen=True)
class WebConfig:
    """The [web] section, validated."""

    enabled: bool = True
    listen: str = DEFAULT_LISTEN
    access_token: str = field(default="", repr=False)
    allowed_hosts: tuple[str, ...] = ()  # Host header names accepted besides the listen address
    operators: tuple[Operator, ...] = ()
    site_name: str = ""  # shown in the page title; default: the rule set's site
    pin_max_failures: int = 5  # wrong PINs from one client before it is locked out
    pin_lockout_s: float = 60.0  # first lockout; doubles for each further lockout, up to 1 h

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def web_config(cfg: Config, *, listen: str | None = None, enabled: bool | None = None) -> WebConfig:
    """Validate the [web] section (listen/enabled override it, e.g. from `bridge --web ADDR`)."""
    where = str(cfg.path) if cfg.path else "config"
    w = _Section("web", cfg.section("web"), where)
    on = w.get("enabled", bool, True)
    addr = w.get("listen", str, DEFAULT_LISTEN)
    token = w.get("access_token", str, "")
    hosts = w.get("allowed_hosts", list, [])
    ops_raw = w.get("operators", list, [])
    site_name = w.get("site_name", str, "")
    max_fail = w.get("pin_max_failures", int, WebConfig.pin_max_failures)
    lockout = w.positive("pin_lockout_s", WebConfig.pin_lockout_s)
    w.finish()
    if listen is not None:
        addr = listen
    if enabled is not None:
        on = enabled
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: web.listen must be HOST:PORT, got {addr!r}")
    if not all(isinstance(h, str) and h for h in hosts):
        raise ConfigError(f"{where}: web.allowed_hosts must be a list of host names")
    if not 1 <= max_fail <= 100:
        raise ConfigError(f"{where}: web.pin_max_failures must be 1..100")
    if token and len(token) < 16:
        raise ConfigError(f"{where}: web.access_token must be at least 16 characters",
                          hint='make one with: python -c "import secrets; print(secrets.token_urlsafe(24))"')
    operators = []
    for i, op in enumerate(ops_raw):
        if not isinstance(op, dict) or set(op) - {"name", "pin"} or not isinstance(op.get("name"), str) \
                or not op["name"].strip() or not isinstance(op.get("pin"), str):
            raise ConfigError(f"{where}: web.operators[{i}] must be {{ name = \"...\", pin = \"scrypt$...\" }}",
                              hint="make the pin value with `tagweigh pin`")
        try:
            _parse_hash(op["pin"])
        except ValueError as exc:
            raise ConfigError(f"{where}: web.operators[{i}] ({op['name']}): pin is not a PIN hash ({exc})",
                              hint="store the output of `tagweigh pin`, never the PIN itself") from None
        operators.append(Operator(op["name"].strip(), op["pin"]))
    names = [o.name for o in operators]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: web.operators has two operators with the same name")
    wc = WebConfig(enabled=on, listen=addr, access_token=token, allowed_hosts=tuple(hosts),
                   operators=tuple(operators), site_name=site_name, pin_max_failures=max_fail,
                   pin_lockout_s=lockout)
    if on and not wc.loopback_only and not token:
        raise ConfigError(
            f"{where}: the operator page listens on {addr}, beyond this computer, but web.access_token is not set",
            hint="set web.access_token (tablets open http://HOST:PORT/?token=... once), "
                 "or listen on 127.0.0.1",
        )
    return wc


def csrf_token(secret: bytes, sid: str) -> str:
    """The CSRF token of one browser (its sid cookie), bound to this server's secret."""
    return _b64(hmac.new(secret, b"csrf:" + sid.encode(), hashlib.sha256).digest()[:18])


class PinGate:
    """Checks PINs against the operators, with a limit on wrong attempts.

    Per client: after `max_failures` wrong PINs in a row the client is locked out for
    `lockout_s`, doubling with each further lockout (capped at an hour); a right PIN resets it.
    In total: more than 4 * max_failures wrong PINs within 10 minutes, from any clients, lock
    every PIN check for `lockout_s` (someone is cycling addresses)."""

    GLOBAL_WINDOW_S = 600.0
    MAX_CLIENTS = 1024  # bounded memory: the oldest entries go first

    def __init__(self, operators: tuple[Operator, ...], *, max_failures: int = 5, lockout_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.operators = operators
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.clock = clock
        self._lock = threading.Lock()
        self._clients: dict[str, list[Any]] = {}  # client -> [failures, lockouts, locked_until]
        self._recent: list[float] = []  # times of recent failures, any client
        self._global_until = 0.0

    def locked_for(self, client: str) -> float:
        """Seconds this client must still wait before a PIN is checked (0: may try now)."""
        now = self.clock()
        with self._lock:
            st = self._clients.get(client)
            wait = max(self._global_until - now, (st[2] - now) if st else 0.0)
        return max(0.0, wait)

    def check(self, client: str, pin: str) -> Operator | None:
        """The operator whose PIN this is, or None (counted as a failure). Raises
        PermissionError(seconds) while the client is locked out (nothing is checked)."""
        wait = self.locked_for(client)
        if wait > 0:
            raise PermissionError(wait)
        found = None
        if isinstance(pin, str):
            for op in self.operators:  # every hash is checked: the time does not tell which matched
                if verify_pin(pin, op.pin_hash) and found is None:
                    found = op
        now = self.clock()
        with self._lock:
            if found is not None:
                self._clients.pop(client, None)
                return found
            st = self._clients.pop(client, None) or [0, 0, 0.0]
            self._clients[client] = st  # re-insert: most recent last
            while len(self._clients) > self.MAX_CLIENTS:
                del self._clients[next(iter(self._clients))]
            st[0] += 1
            if st[0] >= self.max_failures:
                st[2] = now + min(3600.0, self.lockout_s * 2 ** min(st[1], 12))
                st[0] = 0
                st[1] += 1
            self._recent = [t for t in self._recent if now - t < self.GLOBAL_WINDOW_S] + [now]
            if len(self._recent) > 4 * self.max_failures:
                self._global_until = now + self.lockout_s
                self._recent.clear()
        return None
