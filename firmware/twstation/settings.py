# Station settings: the field table of /station.json and its validation (ESPHome style: every
# field is checked when the file is read, with a message naming it), the canonical form its
# config hash is taken over, and the files (/station.json, /key.bin, /boot.bin: see
# twstation.config). Needed when the settings are read (boot) or changed (SET_CONFIG):
# twstation.config imports it then, and the app forgets it afterwards, so it does not stay in the
# station's heap. twstation.config re-exports every name here (module __getattr__).
import json
import os

from twproto.port import const
from twstation.calib import DIVISIONS  # index = division code e in READING flags bits 0-2
from twstation.errors import ConfigError

_KEY_LEN = const(32)
_MAX_FILE = const(2048)  # /station.json is small; refuse anything bigger before parsing


def __getattr__(name):
    # KEY_LEN and MAX_FILE for tools (config.MAX_FILE): a literal of 11+ characters is not
    # interned, so these names do not stay in the station's heap after the boot
    names = "KEY_LEN MAX_FILE".split()
    if name not in names:
        raise AttributeError(name)
    return (_KEY_LEN, _MAX_FILE)[names.index(name)]

# name: (kind, default or None if required, low, high). kind "i" int in [low, high],
# "s" str with low..high characters, "c" one of the tuple in `low`. One table of mixed rows.
FIELDS = {  # type: dict[str, tuple]
    "device_id": ("i", None, 1, 0xFFFFFFFF),
    "site": ("s", None, 1, 32),
    "step": ("i", None, 0, 15),  # station role/step in the chain of custody (READING step_kind)
    "operator": ("i", 0, 0, 0xFFFF),  # default operator ID until SET_OPERATOR
    "division_g": ("c", 10, DIVISIONS, None),
    "capacity_g": ("i", 60000, 1, 0x7FFFFF),  # Max: heavier is "out of range"
    "empty_g": ("i", 200, 1, 0x7FFFFF),  # below this the platform counts as empty (bag removed)
    "reader": ("c", "rfid", ("rfid", "qr", "both"), None),
    "bind_ms": ("i", 5000, 200, 60000),  # window binding one stable weight and one tag read
    "ack_ms": ("i", 5000, 100, 60000),  # resend deadline for an unacknowledged READING (SPEC 10)
    "send_window": ("i", 4, 1, 8),  # readings in flight (sent, not yet acknowledged)
    "live_ms": ("i", 250, 100, 10000),  # LIVE frames at most this often while the weight moves
    "status_ms": ("i", 10000, 1000, 600000),  # STATUS heartbeat
    "hello_ms": ("i", 2000, 200, 60000),  # HELLO repeated this often until WELCOME
    "feedback_ms": ("i", 1500, 100, 10000),  # how long the verdict pattern is shown
    "journal_capacity": ("i", 1000, 8, 100000),  # readings the journal holds
    "journal_warn_pct": ("i", 90, 10, 99),  # fill level that raises the "nearly full" event
}


def check(d):
    """Validate a settings dict; return a new dict with defaults filled in. Raises ConfigError
    naming the first bad field. Unknown fields are refused (a typo must not pass silently)."""
    if not isinstance(d, dict):
        raise ConfigError("station.json: expected a JSON object")
    for k in d:
        if k not in FIELDS:
            raise ConfigError("station.json: unknown field '" + str(k) + "'")
    out = {}
    for k in FIELDS:
        kind, default, lo, hi = FIELDS[k]
        if k not in d:
            if default is None:
                raise ConfigError("station.json: '" + k + "' is required")
            out[k] = default
            continue
        v = d[k]
        if kind == "i":
            if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
                raise ConfigError(
                    "station.json: '" + k + "' must be an integer " + str(lo) + ".." + str(hi)
                )
        elif kind == "s":
            if not isinstance(v, str) or len(v) < lo or len(v) > hi:
                raise ConfigError(
                    "station.json: '" + k + "' must be text of " + str(lo) + ".." + str(hi) + " characters"
                )
        elif v not in lo or isinstance(v, bool):
            raise ConfigError("station.json: '" + k + "' must be one of " + str(list(lo)))
        out[k] = v
    if out["empty_g"] >= out["capacity_g"]:
        raise ConfigError("station.json: 'empty_g' must be below 'capacity_g'")
    return out


def fill(c, d):
    """twstation.config.Config(d): validate d, set its fields as c's attributes, the division
    code and the config hash (c.values keeps the dict)."""
    import hashlib

    d = check(d)
    c.values = d
    for k in d:
        setattr(c, k, d[k])
    c.division_code = DIVISIONS.index(d["division_g"])
    c.hash = hashlib.sha256(canonical(d)).digest()[:4]


def updated(config, changes):
    """A new Config: `config`'s settings with `changes` merged in (validated as a whole)."""
    from twstation.config import Config

    d = dict(config.values)
    d.update(changes)
    return Config(d)


def canonical(d):
    """Canonical bytes of a flat settings dict (sorted keys, no spaces), same on both VMs."""
    keys = sorted(d)
    parts = []
    for k in keys:
        v = d[k]
        if not isinstance(v, int):
            v = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append('"' + k + '":' + str(v))
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def join(root, name):
    if not root or root == "/":
        return "/" + name
    return root.rstrip("/") + "/" + name


def read(path, n):
    try:
        with open(path, "rb") as f:
            data = f.read(n + 1)
    except OSError:
        return None
    if len(data) > n:
        raise ConfigError("%s: larger than %d bytes" % (path, n))
    return data


def load(root="/"):
    """Read and validate /station.json into a twstation.config.Config. Raises ConfigError with a
    precise message."""
    from twstation.config import Config

    path = join(root, "station.json")
    data = read(path, _MAX_FILE)
    if data is None:
        raise ConfigError(path + ": missing (provision the station first)")
    try:
        d = json.loads(data)
    except ValueError:
        raise ConfigError(path + ": not valid JSON")
    return Config(d)


def save(root, config):
    """Write the settings atomically (temp file, then rename over the old one)."""
    replace(join(root, "station.json"), canonical(config.values))


def replace(path, data):  # atomically: a temp file renamed over the old one
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
    path = join(root, "key") + ".bin"
    data = read(path, _KEY_LEN)
    if data is None:
        raise ConfigError(path + ": missing (provision the station key first)")
    if len(data) != _KEY_LEN:
        raise ConfigError(path + ": must be exactly 32 bytes, found " + str(len(data)))
    return data


def key_present(root="/"):
    try:
        return os.stat(join(root, "key") + ".bin")[6] == _KEY_LEN
    except OSError:
        return False


def next_boot(root="/"):
    """Increment and persist the boot counter; return the new value (1 after the first boot).
    Wraps 65535 -> 1 (u16 on the wire; 0 is never used)."""
    path = join(root, "boot") + ".bin"
    data = read(path, 2)
    n = 0
    if data is not None and len(data) == 2:
        n = data[0] | (data[1] << 8)
    n = n + 1 if n < 0xFFFF else 1
    replace(path, bytes((n & 0xFF, n >> 8)))
    return n
