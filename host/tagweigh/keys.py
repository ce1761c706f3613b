"""Key registry: the per-device 32-byte MAC keys, at rest in one JSON file only its owner can read.

The file is created with mode 0600 and replaced atomically (write a 0600 temp file, fsync,
rename). Loading refuses a file that the group or others can read, with the chmod command that
fixes it. Keys never appear in logs, reprs or `export_public_info()`; only `export_keys()` writes
them out, explicitly, to another 0600 file (for a reference receiver that verifies MACs itself).

File layout::

    {"format": "tagweigh-keys", "version": 1,
     "devices": {"<device id>": {"key": "<64 hex>", "added_at": 1700000000.0, "info": {...},
                                 "retired": [{"key_id": "ab12cd34", "retired_at": ...}]}}}
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import threading
import time
from pathlib import Path
from typing import Any

from tagweigh.errors import TagweighError

__all__ = ["KeyFileError", "KeyRegistry", "device_name", "key_id"]

KEY_LEN = 32
_FORMAT = "tagweigh-keys"


class KeyFileError(TagweighError):
    """The key registry file is missing, unreadable, malformed or too open."""



def key_id(key: bytes) -> str:
    """A public fingerprint of a key (first 8 hex digits of its SHA-256): safe to log and show."""
    return hashlib.sha256(b"tagweigh-key-id" + key).hexdigest()[:8]


def device_name(device_id: int | str) -> str:
    """The registry's text form of a device id: the station's u32 id in decimal (HELLO carries it
    as an integer); a string is taken as is."""
    if isinstance(device_id, int) and not isinstance(device_id, bool):
        if not 0 <= device_id <= 0xFFFFFFFF:
            raise KeyFileError(f"device id {device_id} is not a u32")
        return str(device_id)
    return device_id


def _check_device_id(device_id: int | str) -> str:
    device_id = device_name(device_id)
    if not isinstance(device_id, str) or not device_id or len(device_id) > 64:
        raise KeyFileError(f"bad device id {device_id!r}: a non-empty string of at most 64 chars")
    return device_id


def _write_private(path: Path, text: str) -> None:
    """Atomically replace path with text, mode 0600 from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # umask can only remove bits, but an existing tmp may be wider
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


class KeyRegistry:
    """Device keys by device id. Thread-safe; the file is re-read when it changes on disk, so
    `tagweigh keys add` (another process) takes effect in a running bridge."""

    def __init__(self, path: str | os.PathLike, create: bool = True):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._devices: dict[str, dict[str, Any]] = {}
        self._mtime: tuple[int, int] | None = None
        if not self.path.exists():
            if not create:
                raise KeyFileError(
                    f"key registry {self.path} does not exist",
                    hint="add a device with `tagweigh keys add DEVICE` or run `tagweigh init`",
                )
            self._save()
        self._load()

    def __repr__(self) -> str:
        return f"<KeyRegistry {self.path} devices={len(self._devices)} keys=<redacted>>"

    # ---- loading and saving -------------------------------------------------------------------
    def _load(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise KeyFileError(f"cannot read key registry {self.path}: {exc.strerror}") from exc
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"key registry {self.path} is readable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); refusing to use it",
                hint=f"chmod 600 {self.path}",
            )
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise KeyFileError(
                f"key registry {self.path} belongs to uid {st.st_uid}, not to this user",
                hint=f"chown $(id -u) {self.path}",
            )
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"key registry {self.path} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc.get("version") != 1:
            raise KeyFileError(f"{self.path} is not a tagweigh key registry (format/version)")
        devices = doc.get("devices")
        if not isinstance(devices, dict):
            raise KeyFileError(f"{self.path}: 'devices' must be an object")
        parsed: dict[str, dict[str, Any]] = {}
        for dev, entry in devices.items():
            try:
                key = bytes.fromhex(entry["key"])
            except (KeyError, TypeError, ValueError):
                raise KeyFileError(f"{self.path}: device {dev!r}: 'key' must be hex") from None
            if len(key) != KEY_LEN:
                raise KeyFileError(f"{self.path}: device {dev!r}: key must be {KEY_LEN} bytes")
            parsed[dev] = dict(entry, key=key)
        self._devices = parsed
        self._mtime = (st.st_mtime_ns, st.st_size)

    def _save(self) -> None:
        devices = {d: dict(e, key=e["key"].hex()) for d, e in sorted(self._devices.items())}
        doc = {"format": _FORMAT, "version": 1, "devices": devices}
        _write_private(self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
        st = os.stat(self.path)
        self._mtime = (st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return  # keep what we have; the next successful stat reloads
        if (st.st_mtime_ns, st.st_size) != self._mtime:
            self._load()

    # ---- queries ------------------------------------------------------------------------------
    def get(self, device_id: int | str) -> bytes | None:
        """The current key of device_id, or None if the device is not registered."""
        with self._lock:
            self._refresh()
            entry = self._devices.get(device_name(device_id))
            return None if entry is None else entry["key"]

    def info(self, device_id: int | str) -> dict[str, Any] | None:
        """Public information about one device (never the key)."""
        with self._lock:
            self._refresh()
            entry = self._devices.get(device_name(device_id))
            return None if entry is None else self._public(device_name(device_id), entry)

    def devices(self) -> list[str]:
        with self._lock:
            self._refresh()
            return sorted(self._devices)

    def __contains__(self, device_id: int | str) -> bool:
        return self.get(device_id) is not None

    def __len__(self) -> int:
        return len(self.devices())

    @staticmethod
    def _public(device_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "device_id": device_id,
            "key_id": key_id(entry["key"]),
            "added_at": entry.get("added_at"),
            "rotated_at": entry.get("rotated_at"),
            "info": dict(entry.get("info") or {}),
            "retired": [dict(r) for r in entry.get("retired") or []],
        }

    def export_public_info(self) -> list[dict[str, Any]]:
        """Every device with its key fingerprint and info; never a key."""
        with self._lock:
            self._refresh()
            return [self._public(d, e) for d, e in sorted(self._devices.items())]

    # ---- changes ------------------------------------------------------------------------------
    def add(self, device_id: int | str, key: bytes | None = None, **info: Any) -> bytes:
        """Register a device; generates a random key if none is given. Returns the key (for
        provisioning the station). Refuses to overwrite an existing device: use `rotate`."""
        device_id = _check_device_id(device_id)
        key = secrets.token_bytes(KEY_LEN) if key is None else bytes(key)
        if len(key) != KEY_LEN:
            raise KeyFileError(f"a device key must be {KEY_LEN} bytes, got {len(key)}")
        with self._lock:
            self._refresh()
            if device_id in self._devices:
                raise KeyFileError(
                    f"device {device_id} already has a key",
                    hint=f"use `tagweigh keys rotate {device_id}` to replace it",
                )
            self._devices[device_id] = {"key": key, "added_at": time.time(), "info": info}
            self._save()
        return key

    def rotate(self, device_id: int | str, key: bytes | None = None) -> bytes:
        """Replace a device's key; the old key's fingerprint is kept in its history."""
        device_id = device_name(device_id)
        key = secrets.token_bytes(KEY_LEN) if key is None else bytes(key)
        if len(key) != KEY_LEN:
            raise KeyFileError(f"a device key must be {KEY_LEN} bytes, got {len(key)}")
        with self._lock:
            self._refresh()
            entry = self._devices.get(device_id)
            if entry is None:
                raise KeyFileError(f"device {device_id} is not registered")
            now = time.time()
            retired = list(entry.get("retired") or [])
            retired.append({"key_id": key_id(entry["key"]), "retired_at": now})
            self._devices[device_id] = dict(entry, key=key, rotated_at=now, retired=retired)
            self._save()
        return key

    def remove(self, device_id: int | str) -> None:
        device_id = device_name(device_id)
        with self._lock:
            self._refresh()
            if self._devices.pop(device_id, None) is None:
                raise KeyFileError(f"device {device_id} is not registered")
            self._save()

    def export_keys(self, path: str | os.PathLike, devices: list[str] | None = None) -> int:
        """Write the keys (all, or the listed devices) to another 0600 registry file at path,
        for a reference receiver. Returns the number of keys written. Explicit by design."""
        with self._lock:
            self._refresh()
            chosen = self._devices if devices is None else {d: self._devices[d] for d in devices}
            out = {d: {"key": e["key"].hex(), "info": e.get("info") or {}} for d, e in chosen.items()}
        doc = {"format": _FORMAT, "version": 1, "devices": out}
        _write_private(Path(path), json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return len(out)
