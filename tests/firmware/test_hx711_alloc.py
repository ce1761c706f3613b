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
