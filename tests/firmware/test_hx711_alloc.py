"""Zero allocation per HX711 sample, measured inside the MicroPython VM (heap locked)."""

from __future__ import annotations

# A stand-in `machine` and two pins written in MicroPython that do not allocate either: DOUT
# replays the bits of a fixed 24-bit value, low (ready) between reads.
_FAKES = r'''
import sys
class _M:
    @staticmethod
    def disable_irq():
        return 0
    @staticmethod
    def enable_irq(s):
        pass
sys.modules["machine"] = _M

class Sck:
    def __init__(self, dout):
        self.dout = dout
    def value(self, v=None):
        if v:
            self.dout.rise()

class Dout:
    def __init__(self, raw):
        self.raw = raw
        self.n = 0
    def rise(self):
        self.n += 1
    def value(self, v=None):
        n = self.n
        if n == 0:
            return 0
        if n <= 24:
            return (self.raw >> (24 - n)) & 1
        self.n = 0  # pulse 25+: DOUT high, the next poll finds the next conversion ready
        return 1
'''


def test_hx711_poll_does_not_allocate(mpvm_loaded):
    vm = mpvm_loaded
    vm.exec(_FAKES)
    out = vm.exec(
        "import gc, micropython\n"
        "import twstation.hx711 as H\n"
        "from twstation.hx711 import HX711\n"
        # Node's timing jitter is not the ESP32's: measure allocation, not the 50 us check.
        "def _zero():\n    return 0\n"
        "H.ticks_us = _zero\n"
        "d = Dout(0xFED4B3)\n"  # -76621
        "hx = HX711(d, Sck(d))\n"
        "d.n = 0\n"  # forget the pulse of the driver's power-cycle at init
        "hx._discard = 0\n"
        "v = hx.poll(); v = hx.poll()\n"
        "gc.collect()\n"
        "a = gc.mem_alloc()\n"
        "micropython.heap_lock()\n"
        "s = 0\n"
        "for i in range(200):\n"
        "    v = hx.poll()\n"
        "    s += v if v is not None else 1\n"
        "micropython.heap_unlock()\n"
        "print(gc.mem_alloc() - a, s, hx.samples, hx.glitches)\n"
    )
    delta, total, samples, glitches = (int(x) for x in out.split())
    assert delta == 0 and glitches == 0
    assert total == -76621 * 200
    assert samples >= 200


def test_rare_methods_reload_the_forgotten_cold_module(mpvm_loaded):
    # HX711.__getattr__ -> twstation.drvwork.hx_<name>: after forget() (as after the boot) the
    # driver polls without it and a rare method imports it again, inside MicroPython
    vm = mpvm_loaded
    vm.exec(_FAKES)
    out = vm.exec(
        "import sys\n"
        "from twstation import forget\n"
        "import twstation.hx711 as H\n"
        "from twstation.hx711 import HX711\n"
        # Node's timing jitter is not the ESP32's (a loaded machine failed the 50 us check once)
        "def _zero():\n    return 0\n"
        "H.ticks_us = _zero\n"
        "d = Dout(0xFED4B3)\n"
        "hx = HX711(d, Sck(d), rate_sps=80)\n"
        "forget(('twstation.drvwork',))\n"
        "gone = 'twstation.drvwork' not in sys.modules\n"
        "d.n = 0\n"
        "hx._discard = 0\n"
        "v = hx.poll()\n"
        "hx.set_gain(64)\n"
        "print(gone, v, hx.gain, hx._pulses, 'twstation.drvwork' in sys.modules,"
        " hasattr(hx, 'no_such'))\n"
    )
    assert out.split() == ["True", "-76621", "64", "27", "True", "False"]
