"""The bridge's configuration: one TOML file, every value with a default that works.

All validation happens here, when the file is read, with messages that name the key; the running
code trusts what it is given. Relative paths are relative to the config file's directory, so the
queue database and the key registry sit next to the config by default.

Sections owned by other parts ([upload], [web], and any others) are kept as plain dicts in
`Config.sections` for their owners to validate; this module checks [bridge], [queue], [keys],
[rules] and [log].
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagweigh.errors import ConfigError

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["Config", "DEFAULT_NAME", "Discovery", "default_path", "load"]

DEFAULT_NAME = "tagweigh.toml"
ENV_VAR = "TAGWEIGH_CONFIG"


@dataclass(frozen=True)
class Discovery:
    """Auto-discovery of stations by USB identity (serial.tools.list_ports)."""

    enabled: bool = False
    vid: int | None = None  # e.g. 0x10C4 (CP210x), 0x1A86 (CH340), 0x303A (Espressif native USB)
    pid: int | None = None
    serial_number: str | None = None  # substring match; None = any
    interval_s: float = 2.0  # how often to look for new ports


@dataclass(frozen=True)
class Config:
    path: Path | None  # the file this came from (None: built-in defaults)
    base_dir: Path
    # [bridge]
    ports: tuple[str, ...] = ()
    baudrate: int = 115200
    discovery: Discovery = field(default_factory=Discovery)
    group_commit_ms: float = 2.0
    group_commit_max: int = 1024
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 10.0
    hello_timeout_s: float = 10.0
    window: int = 32  # readings a station may have unacknowledged (WELCOME.window, 1..255)
    clock_trusted: bool = True  # the bridge's clock is NTP-synced: stations may set theirs from it
    metrics_listen: str = "127.0.0.1:9477"  # "" disables the HTTP /metrics endpoint
    status_interval_s: float = 5.0
    # [queue]
    queue_path: Path = Path(".")
    # [keys]
    keys_path: Path = Path(".")
    # [rules]
    ruleset_path: Path | None = None  # None: the rule set shipped with twproto (if any)
    # [log]
    log_level: str = "info"
    log_format: str = "json"  # "json" (one object per line) or "text"
    # every section as read, including [upload], [web] and others this module does not own
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """A raw section (e.g. "upload", "web") for the part that owns it; {} if absent."""
        return dict(self.sections.get(name, {}))


def default_path() -> Path:
    """$TAGWEIGH_CONFIG, else ./tagweigh.toml."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path.cwd() / DEFAULT_NAME


class _Section:
    """Reads typed keys from one TOML table, remembering which keys were used."""

    def __init__(self, name: str, table: Any, where: str):
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        self.name, self.table, self.where, self.used = name, table, where, set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            value = None  # TOML true/false is not a number here
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"{self.where}: {self.name}.{key} must be {names}, got {self.table[key]!r}")
        return value

    def positive(self, key: str, default: float) -> float:
        value = self.get(key, float, default)
        if value <= 0:
            raise ConfigError(f"{self.where}: {self.name}.{key} must be > 0, got {value}")
        return value

    def nonneg(self, key: str, default: float) -> float:
        value = self.get(key, float, default)
        if value < 0:
            raise ConfigError(f"{self.where}: {self.name}.{key} must be >= 0, got {value}")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ConfigError(
                f"{self.where}: unknown key(s) in [{self.name}]: {', '.join(unknown)}",
                hint="check the spelling against `tagweigh init --stdout`",
            )


def _usb_id(sec: _Section, key: str) -> int | None:
    value = sec.get(key, (int, str), None)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value, 16)
        except ValueError:
            raise ConfigError(f"{sec.where}: {sec.name}.{key} must be hex like \"10c4\"") from None
    if not 0 <= value <= 0xFFFF:
        raise ConfigError(f"{sec.where}: {sec.name}.{key} must be a 16-bit USB id")
    return value


def _listen(sec: _Section) -> str:
    value = sec.get("metrics_listen", str, Config.metrics_listen)
    if value:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"{sec.where}: bridge.metrics_listen must be HOST:PORT or \"\", got {value!r}")
    return value


def from_dict(doc: dict[str, Any], path: Path | None = None, base_dir: Path | None = None) -> Config:
    """Build and validate a Config from parsed TOML (exposed for tests and `init`)."""
    where = str(path) if path else "config"
    base = base_dir or (path.parent if path else Path.cwd())

    def resolve(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else base / q

    sections = {k: v for k, v in doc.items() if isinstance(v, dict)}
    stray = [k for k, v in doc.items() if not isinstance(v, dict)]
    if stray:
        raise ConfigError(f"{where}: top-level key(s) outside any [section]: {', '.join(stray)}")

    b = _Section("bridge", doc.get("bridge", {}), where)
    ports = b.get("ports", list, [])
    if not all(isinstance(p, str) and p for p in ports):
        raise ConfigError(f"{where}: bridge.ports must be a list of device paths or pyserial URLs")
    baudrate = b.get("baudrate", int, Config.baudrate)
    if baudrate <= 0:
        raise ConfigError(f"{where}: bridge.baudrate must be > 0")
    d = _Section("bridge.discovery", b.get("discovery", dict, {}), where)
    discovery = Discovery(
        enabled=d.get("enabled", bool, False),
        vid=_usb_id(d, "vid"),
        pid=_usb_id(d, "pid"),
        serial_number=d.get("serial_number", str, None) or None,
        interval_s=d.positive("interval_s", Discovery.interval_s),
    )
    d.finish()
    if discovery.enabled and discovery.vid is None and discovery.serial_number is None:
        raise ConfigError(
            f"{where}: bridge.discovery needs vid (and optionally pid) or serial_number",
            hint='for CP210x boards: vid = "10c4", pid = "ea60"',
        )
    group_commit_max = b.get("group_commit_max", int, Config.group_commit_max)
    if not 1 <= group_commit_max <= 100_000:
        raise ConfigError(f"{where}: bridge.group_commit_max must be 1..100000")
    cfg_bridge = dict(
        ports=tuple(ports),
        baudrate=baudrate,
        discovery=discovery,
        group_commit_ms=b.nonneg("group_commit_ms", Config.group_commit_ms),
        group_commit_max=group_commit_max,
        reconnect_initial_s=b.positive("reconnect_initial_s", Config.reconnect_initial_s),
        reconnect_max_s=b.positive("reconnect_max_s", Config.reconnect_max_s),
        hello_timeout_s=b.positive("hello_timeout_s", Config.hello_timeout_s),
        window=b.get("window", int, Config.window),
        clock_trusted=b.get("clock_trusted", bool, Config.clock_trusted),
        metrics_listen=_listen(b),
        status_interval_s=b.positive("status_interval_s", Config.status_interval_s),
    )
    b.finish()
    if not 1 <= cfg_bridge["window"] <= 255:
        raise ConfigError(f"{where}: bridge.window must be 1..255")
    if cfg_bridge["reconnect_initial_s"] > cfg_bridge["reconnect_max_s"]:
        raise ConfigError(f"{where}: bridge.reconnect_initial_s must be <= reconnect_max_s")

    q = _Section("queue", doc.get("queue", {}), where)
    queue_path = resolve(q.get("path", str, "tagweigh-queue.sqlite3"))
    q.finish()
    k = _Section("keys", doc.get("keys", {}), where)
    keys_path = resolve(k.get("path", str, "tagweigh-keys.json"))
    k.finish()
    r = _Section("rules", doc.get("rules", {}), where)
    ruleset = r.get("ruleset", str, "")
    r.finish()
    lg = _Section("log", doc.get("log", {}), where)
    level = lg.get("level", str, "info").lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where}: log.level must be debug, info, warning or error")
    fmt = lg.get("format", str, "json")
    if fmt not in ("json", "text"):
        raise ConfigError(f"{where}: log.format must be \"json\" or \"text\"")
    lg.finish()

    return Config(
        path=path,
        base_dir=base,
        queue_path=queue_path,
        keys_path=keys_path,
        ruleset_path=resolve(ruleset) if ruleset else None,
        log_level=level,
        log_format=fmt,
        sections=sections,
        **cfg_bridge,
    )


def load(path: str | os.PathLike | None = None) -> Config:
    """Load the config. With no path: $TAGWEIGH_CONFIG or ./tagweigh.toml if it exists, else the
    built-in defaults (files in the current directory). An explicit path must exist."""
    explicit = path is not None or ENV_VAR in os.environ
    p = Path(path) if path is not None else default_path()
    if not p.exists():
        if explicit:
            raise ConfigError(f"config file {p} not found", hint="create one with `tagweigh init`")
        return from_dict({}, None, Path.cwd())
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    return from_dict(doc, p.resolve(), p.resolve().parent)
