"""A virtual MicroPython board on a pty: the REPL steps run against a real interpreter.

`VirtualDevice` starts the official MicroPython WebAssembly build in Node (``virtdev_runner.mjs``)
and connects its REPL to a pseudo-terminal. ``.port`` (e.g. ``/dev/pts/7``) is the serial device
that pyserial, ``mpremote connect <port> ...`` and ``tagweigh`` provisioning code open.

    with VirtualDevice() as dev:
        subprocess.run(["mpremote", "connect", dev.port, "fs", "ls", ":"])

The raw REPL (Ctrl-A ... Ctrl-D -> ``OK<out>\\x04<err>\\x04>``), soft reset (with the filesystem
kept, as flash is) and ``mpremote fs`` commands work. What the board looks like, and how that
differs from a real ESP32 (honestly):

- same: MicroPython 1.27 language and bytecode, the raw REPL protocol, errno values of os/open
  errors (translated from Emscripten's), modules the ESP32 lacks fail to import (tagweigh.mpvm);
  ``machine``/``esp``/``esp32`` modules with the ESP32 API and NOTHING connected: ``unique_id()``
  is the one given here, ``Pin`` keeps the level written, SPI reads zeros, UART has no data, I2C
  finds no device, ``esp32.NVS`` persists in the filesystem; ``machine.reset()`` reboots to the
  friendly REPL, ``machine.soft_reset()``/Ctrl-D soft-reboot; ``os.uname().sysname == "esp32"``;
  the root listing shows the files written (a fresh board has ``boot.py``).
- different: ``sys.platform`` is ``"webassembly"`` and ``sys.implementation._mpy`` has no native
  arch (the VM cannot run xtensawin native code; bytecode-only ``.mpy`` files from
  ``mpy-cross -march=xtensawin`` do load); floats are double precision; the heap grows on demand;
  no raw-paste mode (answered "not supported", clients fall back to the raw REPL); a running
  program cannot be interrupted with Ctrl-C (the VM runs code synchronously), so the host's
  deadline is the only guard; boot.py/main.py are not executed on reset; no baud rate, DTR/RTS.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import threading
import time
import tty
from collections import deque
from pathlib import Path

from .errors import TagweighError
from .mpvm import ESP32_BOOT, MicroPythonUnavailable, esp32_env_files, find_micropython_mjs, find_node

__all__ = ["DEFAULT_UNIQUE_ID", "VirtualDevice", "VirtualDeviceError"]

_RUNNER = Path(__file__).with_name("virtdev_runner.mjs")
#: Espressif OUI (24:0A:C4) plus a device number: what machine.unique_id() returns by default.
DEFAULT_UNIQUE_ID = bytes.fromhex("240ac4000001")

_FRESH_BOOT_PY = b"""\
# This file is executed on every boot (including wake-boot from deepsleep)
#import esp
#esp.osdebug(None)
#import webrepl
#webrepl.start()
"""

# machine, esp and esp32 for the virtual board: the ESP32 API, nothing connected.
_MACHINE_PY = """\
# tagweigh virtual device: the ESP32 machine API with nothing connected (see tagweigh.virtdev).
_UID = %(uid)r
_FREQS = (20000000, 40000000, 80000000, 160000000, 240000000)
_state = {"freq": 160000000}

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def unique_id():
    return _UID


def freq(hz=None):
    if hz is None:
        return _state["freq"]
    if hz not in _FREQS:
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _state["freq"] = hz


def reset():
    open("/_esp32/hard_reset", "w").close()  # the runner reboots to the friendly REPL
    raise SystemExit


def soft_reset():
    raise SystemExit


def reset_cause():
    return PWRON_RESET


def idle():
    pass


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    return -1  # no pulse ever arrives: the timeout result


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        self._v = 0
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if pull == Pin.PULL_UP:
            self._v = 1
        elif pull == Pin.PULL_DOWN:
            self._v = 0
        if value is not None:
            self._v = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0

    __call__ = value

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0

    def irq(self, handler=None, trigger=3):
        return None

    def __repr__(self):
        return "Pin(%%d)" %% self.id


class SPI:
    MSB = 0
    LSB = 1

    def __init__(self, id=1, *args, **kwargs):
        self.id = id

    def init(self, *args, **kwargs):
        pass

    def deinit(self):
        pass

    def write(self, buf):
        return None

    def read(self, n, write=0):
        return bytes(n)

    def readinto(self, buf, write=0):
        for i in range(len(buf)):
            buf[i] = 0

    def write_readinto(self, wbuf, rbuf):
        self.readinto(rbuf)


SoftSPI = SPI


class I2C:
    def __init__(self, id=0, *args, **kwargs):
        self.id = id

    def scan(self):
        return []

    def _absent(self, *args, **kwargs):
        raise OSError(19)  # ENODEV: nothing answers on the bus

    readfrom = readfrom_into = writeto = readfrom_mem = readfrom_mem_into = writeto_mem = _absent


SoftI2C = I2C


class UART:
    def __init__(self, id, baudrate=115200, *args, **kwargs):
        self.id = id
        self.baudrate = baudrate

    def init(self, *args, **kwargs):
        pass

    def deinit(self):
        pass

    def any(self):
        return 0

    def read(self, n=-1):
        return None

    def readinto(self, buf, n=-1):
        return None

    def readline(self):
        return None

    def write(self, buf):
        return len(buf)

    def flush(self):
        pass


class PWM:
    def __init__(self, pin, freq=5000, duty_u16=0, **kwargs):
        self.pin = pin
        self._freq = freq
        self._duty = duty_u16

    def freq(self, hz=None):
        if hz is None:
            return self._freq
        self._freq = hz

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d

    def deinit(self):
        pass


class ADC:
    ATTN_0DB = 0
    ATTN_11DB = 3

    def __init__(self, pin, *args, **kwargs):
        self.pin = pin

    def read_u16(self):
        return 0

    def read(self):
        return 0

    def read_uv(self):
        return 0


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


class RTC:
    _base = [(2000, 1, 1, 5, 0, 0, 0, 0)]

    def datetime(self, dt=None):
        if dt is None:
            return self._base[0]
        self._base[0] = tuple(dt)

    def init(self, dt=None):
        if dt is not None:
            self.datetime(dt)
"""

_ESP_PY = """\
# tagweigh virtual device: the ESP32 `esp` module (flash figures of a 4 MB module).
def flash_size():
    return 4 * 1024 * 1024


def flash_user_start():
    return 0x200000


def osdebug(level, *args):
    pass
"""

_ESP32_PY = """\
# tagweigh virtual device: the ESP32 `esp32` module; NVS persists in the virtual flash.
import json

HEAP_DATA = 1
HEAP_EXEC = 2


def mcu_temperature():
    return 40


def _path(ns):
    return "/_esp32/nvs_" + ns + ".json"


class NVS:
    def __init__(self, namespace):
        self._ns = namespace
        try:
            with open(_path(namespace)) as f:
                self._data = json.load(f)
        except OSError:
            self._data = {}

    def _get(self, key, kind):
        v = self._data.get(key)
        if v is None or v[0] != kind:
            raise OSError(-4354, "ESP_ERR_NVS_NOT_FOUND")
        return v[1]

    def set_i32(self, key, value):
        self._data[key] = ["i", int(value)]

    def get_i32(self, key):
        return self._get(key, "i")

    def set_blob(self, key, value):
        self._data[key] = ["b", bytes(value).hex()]

    def get_blob(self, key, buffer):
        raw = bytes.fromhex(self._get(key, "b"))
        n = min(len(raw), len(buffer))
        buffer[:n] = raw[:n]
        return len(raw)

    def erase_key(self, key):
        if key not in self._data:
            raise OSError(-4354, "ESP_ERR_NVS_NOT_FOUND")
        del self._data[key]

    def commit(self):
        with open(_path(self._ns), "w") as f:
            json.dump(self._data, f)
"""

# After the generic ESP32 env: hide the VM's own directories from the root listing, add os.uname.
_DEVICE_PY = """\
# tagweigh virtual device: board-level touches (see tagweigh.virtdev).
import os, sys
from collections import namedtuple

_HIDDEN = ("_esp32", "dev", "proc", "tmp", "home")
_listdir = os.listdir
_ilistdir = os.ilistdir


def _at_root(a):
    return (a[0] if a else os.getcwd()) in ("/", "")


def listdir(*a):
    names = _listdir(*a)
    return [n for n in names if n not in _HIDDEN] if _at_root(a) else names


def ilistdir(*a):
    # littlefs on the ESP32 gives (name, type, inode, size); the VM's VfsPosix omits the size.
    base = (a[0] if a else "") or os.getcwd()
    root = _at_root(a)
    out = []
    for e in _ilistdir(*a):
        if root and e[0] in _HIDDEN:
            continue
        if len(e) == 3:
            size = 0
            if e[1] == 0x8000:
                try:
                    size = os.stat(base.rstrip("/") + "/" + e[0])[6]
                except OSError:
                    pass
            e = (e[0], e[1], e[2], size)
        out.append(e)
    return iter(out)


_v = sys.implementation.version
_release = "%d.%d.%d" % (_v[0], _v[1], _v[2])
_uname = namedtuple("uname_result", ("sysname", "nodename", "release", "version", "machine"))(
    "esp32", "esp32", _release, "v" + _release + " (tagweigh virtual device)",
    "tagweigh virtual ESP32 (MicroPython WebAssembly)",
)


def uname():
    return _uname


os.listdir = listdir
os.ilistdir = ilistdir
os.uname = uname
"""

_DEVICE_BOOT = ESP32_BOOT + "import _tw_device\ndel _tw_device\n"


class VirtualDeviceError(TagweighError):
    """The virtual device could not start, or its interpreter process died."""


class VirtualDevice:
    """A MicroPython board behind a pty. Use as a context manager, or call start()/close()."""

    def __init__(
        self,
        *,
        unique_id: bytes = DEFAULT_UNIQUE_ID,
        heap_size: int = 110 * 1024,
        startup_timeout: float = 15.0,
        node: str | None = None,
        micropython_mjs: str | os.PathLike[str] | None = None,
    ):
        self.unique_id = bytes(unique_id)
        self.heap_size = heap_size
        self.startup_timeout = startup_timeout
        node = node or find_node()
        mjs = Path(micropython_mjs) if micropython_mjs else find_micropython_mjs()
        if not node:
            raise MicroPythonUnavailable(
                "node not found: the virtual device needs Node.js >= 18",
                hint="install Node.js, or set TAGWEIGH_NODE to its path",
            )
        self._node: str = node
        if mjs is None or not mjs.is_file():
            raise MicroPythonUnavailable(
                "npm package @micropython/micropython-webassembly-pyscript not found",
                hint="run `npm ci` at the repository root, or set TAGWEIGH_NODE_MODULES",
            )
        self._mjs = mjs
        self._proc: subprocess.Popen[bytes] | None = None
        self._master = self._slave = -1
        self._setup_file: str | None = None
        self._stop_r = self._stop_w = -1
        self._threads: list[threading.Thread] = []
        self._first_output = threading.Event()
        self._stderr: deque[str] = deque(maxlen=50)
        self.port = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def _setup(self) -> dict[str, object]:
        files = dict(esp32_env_files())
        files["/_esp32/_tw_device.py"] = _DEVICE_PY.encode()
        files["/_esp32/machine.py"] = (_MACHINE_PY % {"uid": self.unique_id}).encode()
        files["/_esp32/esp.py"] = _ESP_PY.encode()
        files["/_esp32/esp32.py"] = _ESP32_PY.encode()
        b64 = __import__("base64").b64encode
        return {
            "heapsize": self.heap_size,
            "files": {p: b64(d).decode() for p, d in files.items()},
            "first_boot_files": {"/boot.py": b64(_FRESH_BOOT_PY).decode()},
            "boot": _DEVICE_BOOT,
        }

    def start(self) -> VirtualDevice:
        if self._proc is not None:
            return self
        fd, self._setup_file = tempfile.mkstemp(prefix="tagweigh-virtdev-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(self._setup(), f)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop_r, self._stop_w = os.pipe()
        self._proc = subprocess.Popen(
            [self._node, str(_RUNNER), str(self._mjs), self._setup_file],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for target in (self._to_vm, self._from_vm, self._read_stderr):
            t = threading.Thread(target=target, daemon=True, name=f"virtdev{target.__name__}")
            t.start()
            self._threads.append(t)
        if not self._first_output.wait(self.startup_timeout):
            tail = "\n".join(self._stderr)
            self.close()
            raise VirtualDeviceError(
                f"virtual device did not boot within {self.startup_timeout:g} s"
                + (f"; node stderr:\n{tail}" if tail else "")
            )
        return self

    def close(self) -> None:
        """Stop the interpreter and release the pty (the port path disappears)."""
        proc, self._proc = self._proc, None
        if self._stop_w >= 0:
            os.write(self._stop_w, b"x")
        if proc is not None:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for t in self._threads:
            t.join(timeout=2)
        self._threads = []
        if proc is not None:
            for f in (proc.stdout, proc.stderr):
                if f is not None:
                    f.close()
        for name in ("_master", "_slave", "_stop_r", "_stop_w"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
        if self._setup_file:
            os.unlink(self._setup_file)
            self._setup_file = None

    def __enter__(self) -> VirtualDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- byte shuttles -------------------------------------------------------------------------

    def _to_vm(self) -> None:
        """pty (what the client wrote) -> interpreter."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        while True:
            ready, _, _ = select.select([self._master, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            if not data:
                return
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (OSError, ValueError):
                return

    def _from_vm(self) -> None:
        """interpreter -> pty (what the client reads)."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            self._first_output.set()
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._master, view)
                except BlockingIOError:
                    time.sleep(0.001)
                    continue
                except OSError:
                    return
                view = view[n:]

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        for line in proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace").rstrip())
