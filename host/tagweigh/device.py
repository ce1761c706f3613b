"""A MicroPython board over its USB console: the REPL half of flashing, provisioning and doctor.

`Device` is a small raw-REPL client over pyserial. It talks the documented protocol
(docs.micropython.org "raw REPL" / "raw-paste mode"), not mpremote's Python API: mpremote's
``SerialTransport`` says in its own source that its API "is going to change significantly",
prints to stdout when it fails (which would tear through our progress bars and one-line errors),
and has no notion of the station app that holds the console. Here every step has a deadline,
every failure is a `DeviceError` with a hint, and the station app is stopped first.

Entering the REPL: while the station app runs, the console carries binary frames and Ctrl-C is
not an interrupt; the app stops and returns to the REPL when a 0x03 byte arrives on an idle line
(firmware/README.md). So ``enter()`` sends ``\\r\\x03`` and Ctrl-A until the raw-REPL banner
answers, for at most ``timeout`` seconds; a partly received frame is abandoned by the app after
250 ms of silence, so the second round always lands on an idle line.

Sending code: raw-paste mode (``\\x05A\\x01``, device-driven flow control) when the board has it,
else plain raw REPL written in 256-byte slices 10 ms apart (mpremote's pace: a UART without flow
control must not overrun). Files are written base64 in chunks to ``path.tw-tmp``, checked by
SHA-256 on the device, then renamed over ``path``: a cut cable leaves the old file or the new
one, never half of one.

    with Device("/dev/ttyUSB0") as dev:
        info = dev.info()                  # MicroPython version, .mpy version/arch, chip, flash
        dev.write_file("/station.json", data, progress=cb)
        dev.sha256("/key.bin") ...
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from tagweigh.errors import TagweighError

__all__ = [
    "ARCH_NAMES",
    "Device",
    "DeviceError",
    "DeviceExecError",
    "DeviceInfo",
    "parse_mpy",
]

#: sys.implementation._mpy >> 10 -> mpy-cross -march name (py/persistentcode.h MP_NATIVE_ARCH_*).
ARCH_NAMES = {
    1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em", 7: "armv7emsp",
    8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc", 12: "rv64imc",
}

_BANNER = b"raw REPL; CTRL-B to exit\r\n"
_TMP = ".tw-tmp"
CHUNK = 2048  # raw bytes per write exec (2732 base64 chars)
RX_LIMIT = 1 << 20  # unread output kept at most (a peer controls it)

Progress = Callable[[int, int], None]


class DeviceError(TagweighError):
    """The board did not answer, or refused a step. ``hint`` says what to do next."""

    exit_code = 4


class DeviceExecError(DeviceError):
    """Code sent to the board raised; ``remote`` is the last line of its traceback."""

    def __init__(self, message: str, remote: str, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.remote = remote


def parse_mpy(value: int | None) -> tuple[int | None, int | None, str | None]:
    """sys.implementation._mpy -> (mpy version, sub-version, native arch or None)."""
    if value is None:
        return None, None, None
    return value & 0xFF, (value >> 8) & 3, ARCH_NAMES.get(value >> 10)


@dataclass
class DeviceInfo:
    version: tuple[int, int, int]
    release: str  # os.uname().version, e.g. "v1.24.1 on 2024-11-29"
    machine: str  # os.uname().machine, e.g. "Generic ESP32 module with ESP32"
    sysname: str
    platform: str
    chip: str  # "esp32", "esp32s3", ... (from machine/sysname), "" if unknown
    mpy_version: int | None
    mpy_sub: int | None
    mpy_arch: str | None
    unique_id: str  # machine.unique_id() hex (the Wi-Fi MAC on an ESP32)
    flash_size: int | None
    fs_total: int | None
    fs_free: int | None
    mem_free: int | None

    @property
    def version_text(self) -> str:
        return "%d.%d.%d" % self.version

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["version"] = self.version_text
        return d


# One exec defines the helpers the other commands use (raw-REPL globals live until soft reset).
_HELPERS = """\
import os, sys, binascii, hashlib
def _tw_sha(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    b = bytearray(512)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(b[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
def _tw_size(p):
    try:
        s = os.stat(p)
    except OSError:
        return None
    return -1 if s[0] & 0x4000 else s[6]
def _tw_mkdirs(p):
    q = ''
    for part in p.strip('/').split('/'):
        q += '/' + part
        try:
            os.mkdir(q)
        except OSError as e:
            if e.args[0] != 17:
                raise
def _tw_rename(a, b):
    try:
        os.rename(a, b)
    except OSError:
        try:
            os.remove(b)
        except OSError:
            pass
        os.rename(a, b)
def _tw_close_check(tmp, path, want):
    global _tw_f
    _tw_f.close()
    _tw_f = None
    if _tw_sha(tmp) != want:
        _tw_rm(tmp)
        return False
    _tw_rename(tmp, path)
    return True
def _tw_rm(p):
    try:
        os.remove(p)
        return 1
    except OSError:
        return 0
def _tw_ls(d):
    try:
        return [(e[0], e[1] & 0x4000 != 0) for e in os.ilistdir(d)]
    except OSError:
        return None
def _tw_keyid(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    k = f.read(33)
    f.close()
    if len(k) != 32:
        return 'bad-length'
    r = binascii.hexlify(hashlib.sha256(b'tagweigh-key-id' + k).digest()).decode()[:8]
    k = None
    return r
"""

_INFO = """\
import json as _j
_v = sys.implementation.version
_u = os.uname()
_d = {'version': [_v[0], _v[1], _v[2]], 'release': _u.version, 'machine': _u.machine,
      'sysname': _u.sysname, 'platform': sys.platform,
      'mpy': getattr(sys.implementation, '_mpy', None)}
try:
    import machine
    _d['uid'] = binascii.hexlify(machine.unique_id()).decode()
except Exception:
    _d['uid'] = ''
try:
    import esp
    _d['flash'] = esp.flash_size()
except Exception:
    _d['flash'] = None
try:
    _s = os.statvfs('/')
    _d['fs'] = [_s[0] * _s[2], _s[0] * _s[3]]
except Exception:
    _d['fs'] = None
try:
    import gc
    gc.collect()
    _d['mem'] = gc.mem_free()
except Exception:
    _d['mem'] = None
print(_j.dumps(_d))
"""


def _chip_from(machine: str, sysname: str) -> str:
    m = machine.upper().replace("-", "")
    for name in ("ESP32S3", "ESP32S2", "ESP32C6", "ESP32C3", "ESP32"):
        if name in m:
            return name.lower()
    return "esp32" if sysname == "esp32" else ""


def _last_line(err: str) -> str:
    lines = [ln.strip() for ln in err.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else err.strip()


def _advice_for(remote: str) -> str | None:
    if "ENOSPC" in remote or "Errno 28" in remote:
        return ("the board's filesystem is full: run 'tagweigh doctor' to see what uses it; "
                "'tagweigh flash --erase-all' starts from an empty filesystem (and wipes the journal)")
    if "MemoryError" in remote:
        return ("the board ran out of RAM: press EN (reset) and run the same command again; if it "
                "repeats, use a MicroPython build with the app frozen in")
    if "ImportError" in remote or "no module named" in remote.lower():
        return "the app is missing or incomplete on the board: run 'tagweigh provision --app-only'"
    return None


class Device:
    """Raw-REPL client for one board. Not thread-safe; one per port."""

    def __init__(self, port: str, *, baudrate: int = 115200, timeout: float = 10.0,
                 slice_delay: float = 0.01, serial_factory: Callable[..., Any] | None = None):
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.slice_delay = slice_delay
        self._factory = serial_factory
        self._ser: Any = None
        self._rx = bytearray()  # received, not yet consumed
        self._raw_paste: bool | None = None  # unknown until tried
        self._helpers = False
        self.stopped_app = False  # the station app was running and was stopped by enter()

    # -- connection ----------------------------------------------------------------------------
    def open(self) -> "Device":
        import serial

        factory = self._factory or serial.serial_for_url
        try:
            self._ser = factory(self.port, baudrate=self.baudrate, timeout=0.05,
                                write_timeout=5)
        except (serial.SerialException, OSError, ValueError) as exc:
            text = str(exc)
            if "Permission denied" in text or "Errno 13" in text:
                hint = ("you may not open this port: add yourself to the 'dialout' group "
                        "(sudo usermod -aG dialout $USER), then log out and in again")
            elif "busy" in text.lower() or "Errno 16" in text or "Errno 11" in text:
                hint = "another program holds the port (the bridge, a serial monitor): close it"
            else:
                hint = "check the cable and run 'tagweigh ports' to see the ports present"
            raise DeviceError(f"cannot open {self.port}: {text}", hint=hint) from exc
        return self

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is None:
            return
        try:
            ser.write(b"\r\x02")  # back to the friendly REPL
            ser.flush()
        except Exception:  # closing after a lost port: nothing more to say
            pass
        try:
            ser.close()
        except Exception:
            pass

    def __enter__(self) -> "Device":
        if self._ser is None:
            self.open()
        self.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- bytes -----------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        try:
            self._ser.write(data)
        except Exception as exc:
            raise DeviceError(f"{self.port}: write failed: {exc}",
                              hint="the board went away: check the USB cable, then run the "
                                   "same command again") from exc

    def _fill(self) -> int:
        """Move what the port has (waiting at most its 50 ms timeout) into the receive buffer."""
        ser = self._ser
        try:
            n = ser.in_waiting
            chunk = ser.read(n if n else 1)
        except Exception as exc:
            raise DeviceError(f"{self.port}: read failed: {exc}",
                              hint="the board went away: check the USB cable, then run the "
                                   "same command again") from exc
        if chunk:
            self._rx += chunk
            if len(self._rx) > RX_LIMIT:
                raise DeviceError(f"{self.port}: more than {RX_LIMIT} bytes of unread output",
                                  hint="the board is printing without end: press EN (reset)")
        return len(chunk)

    def _take(self, n: int) -> bytes:
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    def _read_until(self, ending: bytes, deadline: float) -> bytes | None:
        """Bytes up to and including `ending`, or None at the deadline (nothing consumed)."""
        start = 0
        while True:
            i = self._rx.find(ending, start)
            if i >= 0:
                return self._take(i + len(ending))
            start = max(0, len(self._rx) - len(ending) + 1)
            if time.monotonic() > deadline:
                return None
            self._fill()

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._rx) < n:
            if time.monotonic() > deadline:
                raise DeviceError(f"{self.port}: the board stopped answering",
                                  hint="press EN (reset) and run the same command again")
            self._fill()
        return self._take(n)

    def _drain(self, quiet: float) -> bytes:
        """Everything until the line has been quiet for `quiet` seconds."""
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            if self._fill():
                last = time.monotonic()
        return self._take(len(self._rx))

    # -- REPL --------------------------------------------------------------------------------
    def enter(self, timeout: float | None = None) -> None:
        """Stop whatever runs (the station app included) and enter the raw REPL."""
        if self._ser is None:
            self.open()
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = bytearray()
        while time.monotonic() < deadline:
            self._write(b"\r\x03")
            seen += self._drain(0.3)
            self._write(b"\r\x01")
            got = self._read_until(_BANNER + b">", min(deadline, time.monotonic() + 1.5))
            if got is not None:
                seen += got
                self.stopped_app = b"tagweigh: stopped" in seen
                self._helpers = False
                return
        tail = bytes(seen[-80:])
        if not seen:
            hint = ("nothing answered: check the port ('tagweigh ports'), that the cable carries "
                    "data, and that MicroPython is installed ('tagweigh flash')")
        elif b"\xc0" in seen or b"waiting for download" in seen:
            hint = ("the board is in the ROM bootloader: press EN (reset) without holding BOOT, "
                    "then run the same command again")
        else:
            hint = ("the board answers but gives no REPL (another firmware, or a program that "
                    "ignores Ctrl-C): press EN (reset) and retry; if it repeats, run "
                    "'tagweigh flash' to reinstall MicroPython")
        raise DeviceError(f"{self.port}: no MicroPython raw REPL within "
                          f"{timeout or self.timeout:g} s (last bytes {tail!r})", hint=hint)

    def _send_code(self, code: bytes, deadline: float) -> None:
        if self._raw_paste is not False:
            self._write(b"\x05A\x01")
            head = self._read_exact(2, deadline)
            if head == b"R\x01":
                self._raw_paste = True
                self._paste(code, deadline)
                return
            if head != b"R\x00":  # an old firmware that does not know the request at all
                rest = self._read_until(b"w REPL; CTRL-B to exit\r\n>", deadline)
                if rest is None:
                    raise DeviceError(f"{self.port}: raw REPL lost while probing raw-paste mode",
                                      hint="press EN (reset) and run the same command again")
            self._raw_paste = False
        for i in range(0, len(code), 256):
            self._write(code[i : i + 256])
            if self.slice_delay:
                time.sleep(self.slice_delay)
        self._write(b"\x04")
        ok = self._read_exact(2, deadline)
        if ok != b"OK":
            raise DeviceError(f"{self.port}: the board did not accept the code (got {ok!r})",
                              hint="press EN (reset) and run the same command again")

    def _fill_now(self) -> int:
        try:
            waiting = self._ser.in_waiting
        except Exception:
            waiting = 0
        return self._fill() if waiting else 0

    def _paste(self, code: bytes, deadline: float) -> None:
        window = int.from_bytes(self._read_exact(2, deadline), "little")
        room = window
        i = 0
        while i < len(code):
            while room == 0 or self._rx or self._fill_now():
                b = self._read_exact(1, deadline)
                if b == b"\x01":
                    room += window
                elif b == b"\x04":  # the device ended the paste early (a compile error follows)
                    self._write(b"\x04")
                    return
                else:
                    raise DeviceError(f"{self.port}: unexpected byte {b!r} in raw-paste mode")
            piece = code[i : i + room]
            self._write(piece)
            room -= len(piece)
            i += len(piece)
        self._write(b"\x04")
        if self._read_until(b"\x04", deadline) is None:
            raise DeviceError(f"{self.port}: raw-paste not acknowledged",
                              hint="press EN (reset) and run the same command again")

    def exec(self, code: str | bytes, timeout: float | None = None) -> bytes:
        """Run code in the raw REPL; return what it printed. DeviceExecError if it raised."""
        if self._ser is None:
            self.enter()
        deadline = time.monotonic() + (timeout or self.timeout)
        data = code.encode() if isinstance(code, str) else code
        self._send_code(data, deadline)
        out = self._read_until(b"\x04", deadline)
        err = self._read_until(b"\x04", deadline) if out is not None else None
        if err is not None and self._read_until(b">", deadline) is None:  # the next prompt
            err = None
        if out is None or err is None:
            raise DeviceError(f"{self.port}: no answer within {timeout or self.timeout:g} s",
                              hint="the board may be stuck: press EN (reset) and run the same "
                                   "command again")
        if err[:-1]:
            text = err[:-1].decode("utf-8", "replace")
            remote = _last_line(text)
            raise DeviceExecError(f"{self.port}: the board raised {remote}", remote,
                                  hint=_advice_for(remote))
        return out[:-1]

    def eval_json(self, expr: str, timeout: float | None = None) -> Any:
        """Evaluate a MicroPython expression that json can encode."""
        out = self.exec("import json\nprint(json.dumps(" + expr + "))", timeout)
        try:
            return json.loads(out.decode("utf-8").strip().splitlines()[-1])
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise DeviceError(f"{self.port}: unexpected output {out[:80]!r}") from exc

    def _ensure_helpers(self) -> None:
        if not self._helpers:
            self.exec(_HELPERS)
            self._helpers = True

    def soft_reset(self, run_main: bool = True) -> None:
        """Restart MicroPython (files kept). run_main: leave the raw REPL first, so boot.py and
        main.py run and the station app starts; else stay in the raw REPL (main.py skipped)."""
        if run_main:
            self._write(b"\r\x02")
            self._drain(0.2)
            self._write(b"\x04")
            self._helpers = False
            return
        self._write(b"\x04")
        if self._read_until(_BANNER, time.monotonic() + self.timeout) is None:
            raise DeviceError(f"{self.port}: no raw REPL after the soft reset")
        self._helpers = False

    # -- queries -------------------------------------------------------------------------------
    def info(self) -> DeviceInfo:
        self._ensure_helpers()
        out = self.exec(_INFO)
        try:
            d = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise DeviceError(f"{self.port}: unexpected answer to the version query: {out[:80]!r}",
                              hint="is this a MicroPython board? run 'tagweigh flash'") from exc
        ver, sub, arch = parse_mpy(d.get("mpy"))
        fs = d.get("fs") or [None, None]
        return DeviceInfo(
            version=tuple(d["version"][:3]),  # type: ignore[arg-type]
            release=d.get("release", ""), machine=d.get("machine", ""),
            sysname=d.get("sysname", ""), platform=d.get("platform", ""),
            chip=_chip_from(d.get("machine", ""), d.get("sysname", "")),
            mpy_version=ver, mpy_sub=sub, mpy_arch=arch, unique_id=d.get("uid", ""),
            flash_size=d.get("flash"), fs_total=fs[0], fs_free=fs[1], mem_free=d.get("mem"),
        )

    def size(self, path: str) -> int | None:
        """File size, -1 for a directory, None if absent."""
        self._ensure_helpers()
        return self.eval_json(f"_tw_size({path!r})")

    def sha256(self, path: str) -> str | None:
        self._ensure_helpers()
        return self.eval_json(f"_tw_sha({path!r})")

    def sha256_many(self, paths: list[str]) -> dict[str, str | None]:
        """SHA-256 hex of each path (None if absent), in one round trip per 40 paths."""
        self._ensure_helpers()
        out: dict[str, str | None] = {}
        for i in range(0, len(paths), 40):
            part = paths[i : i + 40]
            got = self.eval_json("[_tw_sha(p) for p in " + repr(part) + "]", timeout=30)
            out.update(zip(part, got))
        return out

    def key_id(self, path: str = "/key.bin") -> str | None:
        """The public fingerprint (tagweigh.keys.key_id) of the key file on the board, computed
        on the board: the key itself never crosses the cable on the way back."""
        self._ensure_helpers()
        return self.eval_json(f"_tw_keyid({path!r})")

    def listdir(self, path: str) -> list[tuple[str, bool]] | None:
        """(name, is_dir) entries, or None if the directory does not exist."""
        self._ensure_helpers()
        got = self.eval_json(f"_tw_ls({path!r})")
        return None if got is None else [(n, bool(d)) for n, d in got]

    def dir_sizes(self, path: str) -> list[tuple[str, int]] | None:
        """(name, size; -1 for a directory) of each entry, or None if there is no such directory."""
        self._ensure_helpers()
        got = self.eval_json(f"None if _tw_size({path!r}) != -1 else "
                             f"[(n, _tw_size({path!r} + '/' + n)) for n in os.listdir({path!r})]")
        return None if got is None else [(str(n), int(z if z is not None else -1)) for n, z in got]

    def read_file(self, path: str, limit: int = 64 * 1024) -> bytes | None:
        """Whole file (None if absent); DeviceError if larger than limit."""
        size = self.size(path)
        if size is None:
            return None
        if size < 0 or size > limit:
            raise DeviceError(f"{self.port}: {path} is {'a directory' if size < 0 else f'{size} bytes'}"
                              f", not a file of at most {limit} bytes")
        out = bytearray()
        for off in range(0, size, CHUNK):
            code = (f"f=open({path!r},'rb')\nf.seek({off})\n"
                    f"print(binascii.b2a_base64(f.read({CHUNK})).decode().strip())\nf.close()")
            text = self.exec(code).decode().strip()
            out += base64.b64decode(text.splitlines()[-1] if text else "")
        return bytes(out)

    # -- changes -------------------------------------------------------------------------------
    def makedirs(self, path: str) -> None:
        self._ensure_helpers()
        if path.strip("/"):
            self.exec(f"_tw_mkdirs({path!r})")

    def remove(self, path: str) -> bool:
        self._ensure_helpers()
        return bool(self.eval_json(f"_tw_rm({path!r})"))

    def write_file(self, path: str, data: bytes, progress: Progress | None = None) -> None:
        """Write atomically: chunks to path.tw-tmp, SHA-256 checked on the board, renamed over
        path only if it matches. The data is never echoed back (key files go through here).
        A small file costs two round trips: open + first chunk, then close + check + rename."""
        self._ensure_helpers()
        parent = path.rsplit("/", 1)[0]
        tmp = path + _TMP
        total = len(data)
        head = (f"_tw_mkdirs({parent!r})\n" if parent else "") + f"_tw_f = open({tmp!r}, 'wb')"
        try:
            for off in range(0, max(total, 1), CHUNK):
                b64 = base64.b64encode(data[off : off + CHUNK])
                line = f"_tw_f.write(binascii.a2b_base64({b64!r}))"
                self.exec(head + "\n" + line if off == 0 else line, timeout=30)
                if progress is not None:
                    progress(min(off + CHUNK, total), total)
        except DeviceError:
            try:
                self.exec("_tw_f.close()\n_tw_rm(" + repr(tmp) + ")")
            except DeviceError:
                pass
            raise
        want = hashlib.sha256(data).hexdigest()
        ok = self.eval_json(f"_tw_close_check({tmp!r}, {path!r}, {want!r})")
        if not ok:
            raise DeviceError(f"{self.port}: {path} arrived corrupted (SHA-256 differs)",
                              hint="use a better USB cable or port, then run the same command "
                                   "again (nothing was replaced)")

    def run_selftest(self, root: str = "/", timeout: float = 20.0) -> dict[str, Any]:
        """The station's own self-test (twstation.app.selftest) on the board; its dict."""
        code = ("import json, gc\ngc.collect()\nfrom twstation import app as _a\n"
                f"print(json.dumps(_a.selftest({root!r})))")
        out = self.exec(code, timeout=timeout)
        try:
            return json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise DeviceError(f"{self.port}: self-test printed {out[-80:]!r}, not JSON",
                              hint="run 'tagweigh provision --app-only' to reinstall the app") from exc

