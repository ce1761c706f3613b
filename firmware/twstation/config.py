# Station identity and settings (ESPHome style: everything is validated when the file is read, with
# a message naming the field; the running code trusts what it was given).
#
#   /station.json  settings, written by the technician tooling or the SET_CONFIG command
#   /key.bin       the 32-byte per-device key: read once, handed to twproto.mac.Mac, never printed,
#                  never sent, never part of the config hash
#   /boot.bin      u16 boot counter, incremented at every boot (unsynced readings carry it)
#
# Paths are joined to a `root` so the simulator and tests run the same code in a temp directory.
import hashlib
import json
import os

from twstation.errors import ConfigError

KEY_LEN = 32
MAX_FILE = 2048  # /station.json is small; refuse anything bigger before parsing


def __getattr__(name):
    # The field table and its validation live in twstation.settings (boot and SET_CONFIG only).
    if name in ("FIELDS", "DIVISIONS", "READERS", "check", "canonical"):
        from twstation import settings

        return getattr(settings, name)
    raise AttributeError(name)


def _join(root, name):
    if not root or root == "/":
        return "/" + name
    return root.rstrip("/") + "/" + name


class Config:
    """Validated settings. Attributes are the FIELDS names; `hash` is the 4-byte config hash
    (first 4 bytes of SHA-256 of the canonical JSON) that HELLO and STATUS report."""

    def __init__(self, d):
        from twstation.settings import DIVISIONS, canonical, check

        d = check(d)
        self.values = d
        for k in d:
            setattr(self, k, d[k])
        self.division_code = DIVISIONS.index(d["division_g"])
        self.hash = hashlib.sha256(canonical(d)).digest()[:4]

    def updated(self, changes):
        """A new Config with `changes` merged in (validated as a whole)."""
        d = dict(self.values)
        for k in changes:
            d[k] = changes[k]
        return Config(d)


def _read(path, limit):
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        raise ConfigError(path + ": larger than " + str(limit) + " bytes")
    return data


def load(root="/"):
    """Read and validate /station.json. Raises ConfigError with a precise message."""
    path = _join(root, "station.json")
    data = _read(path, MAX_FILE)
    if data is None:
        raise ConfigError(path + ": missing (provision the station first)")
    try:
        d = json.loads(data)
    except ValueError:
        raise ConfigError(path + ": not valid JSON")
    return Config(d)


def save(root, cfg):
    """Write the settings atomically (temp file, then rename over the old one)."""
    from twstation.settings import canonical

    _atomic_write(_join(root, "station.json"), canonical(cfg.values))


def _atomic_write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    try:
        os.rename(tmp, path)
    except OSError:  # some filesystems refuse to rename over an existing file
        os.remove(path)
        os.rename(tmp, path)


def load_key(root="/"):
    """The 32-byte device key. The message never contains key material."""
    path = _join(root, "key.bin")
    data = _read(path, KEY_LEN)
    if data is None:
        raise ConfigError(path + ": missing (provision the station key first)")
    if len(data) != KEY_LEN:
        raise ConfigError(path + ": must be exactly 32 bytes, found " + str(len(data)))
    return data


def key_present(root="/"):
    try:
        return os.stat(_join(root, "key.bin"))[6] == KEY_LEN
    except OSError:
        return False


def next_boot(root="/"):
    """Increment and persist the boot counter; return the new value (1 after the first boot).
    Wraps 65535 -> 1 (u16 on the wire; 0 is never used)."""
    path = _join(root, "boot.bin")
    data = _read(path, 2)
    n = 0
    if data is not None and len(data) == 2:
        n = data[0] | (data[1] << 8)
    n = n + 1 if n < 0xFFFF else 1
    _atomic_write(path, bytes((n & 0xFF, n >> 8)))
    return n
