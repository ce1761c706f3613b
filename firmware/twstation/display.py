# Optional SSD1306-class OLED (128x64 or 128x32, I2C) showing weight, tag and verdict reason.
#
#   d = Display(i2c, addr=0x3C)     # raises DriverError if nothing answers at addr
#   d.show_reading(12345, True, "BAG-000123", "accepted")
#
# Drawing uses MicroPython's framebuf; flush() sends the whole buffer in one I2C write with
# writevto (control byte + buffer, no 1 KB concatenation).
import framebuf
from micropython import const

from twstation.errors import DriverError

_SET_CONTRAST = const(0x81)
_DISPLAY_ALL_ON_RESUME = const(0xA4)
_NORMAL = const(0xA6)
_OFF = const(0xAE)
_ON = const(0xAF)
_MEM_MODE = const(0x20)
_COL_ADDR = const(0x21)
_PAGE_ADDR = const(0x22)
_START_LINE = const(0x40)
_SEG_REMAP = const(0xA1)
_MUX = const(0xA8)
_COM_SCAN_DEC = const(0xC8)
_OFFSET = const(0xD3)
_COM_PINS = const(0xDA)
_CLOCK_DIV = const(0xD5)
_PRECHARGE = const(0xD9)
_VCOMH = const(0xDB)
_CHARGE_PUMP = const(0x8D)


class Display:
    def __init__(self, i2c, addr=0x3C, width=128, height=64):
        self._i2c = i2c
        self.addr = addr
        self.width = width
        self.height = height
        self.pages = height // 8
        self.buf = bytearray(width * self.pages)
        self.fb = framebuf.FrameBuffer(self.buf, width, height, framebuf.MONO_VLSB)
        self._cmd = bytearray(2)
        self._ctl = b"\x40"
        try:
            self.init()
        except OSError:
            raise DriverError("display: no SSD1306 answers at 0x%02x" % addr)

    def _command(self, c):
        self._cmd[0] = 0x80  # Co=1, D/C=0: one command byte follows
        self._cmd[1] = c
        self._i2c.writeto(self.addr, self._cmd)

    def init(self):
        for c in (
            _OFF, _MEM_MODE, 0x00, _START_LINE, _SEG_REMAP, _MUX, self.height - 1, _COM_SCAN_DEC,
            _OFFSET, 0x00, _COM_PINS, 0x12 if self.height == 64 else 0x02, _CLOCK_DIV, 0x80,
            _PRECHARGE, 0xF1, _VCOMH, 0x30, _SET_CONTRAST, 0xFF, _DISPLAY_ALL_ON_RESUME, _NORMAL,
            _CHARGE_PUMP, 0x14, _ON,
        ):  # fmt: skip
            self._command(c)
        self.fb.fill(0)
        self.flush()

    def power(self, on):
        self._command(_ON if on else _OFF)

    def flush(self):
        for c in (_COL_ADDR, 0, self.width - 1, _PAGE_ADDR, 0, self.pages - 1):
            self._command(c)
        self._i2c.writevto(self.addr, (self._ctl, self.buf))

    def show(self, line1, line2="", line3="", line4=""):
        fb = self.fb
        fb.fill(0)
        fb.text(line1, 0, 0, 1)
        fb.text(line2, 0, 16, 1)
        fb.text(line3, 0, 32, 1)
        fb.text(line4, 0, 48, 1)
        self.flush()

    def show_reading(self, net_g, stable, tag, reason):
        sign = "-" if net_g < 0 else ""
        g = -net_g if net_g < 0 else net_g
        weight = "%s%d.%03d kg%s" % (sign, g // 1000, g % 1000, "" if stable else " ~")
        self.show(weight, (tag or "-")[:16], (reason or "")[:16])
