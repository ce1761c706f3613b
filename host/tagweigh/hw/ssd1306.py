"""An SSD1306 OLED controller on I2C: the command stream and GDDRAM in horizontal addressing mode.

Control byte 0x00 = a command stream, 0x80 = one command (then another control byte), 0x40 = a
data stream written at the column/page pointer, which wraps inside the window set by 0x21/0x22.
"""

from __future__ import annotations

from typing import Any

# commands followed by N argument bytes
_ARGS = {0x20: 1, 0x21: 2, 0x22: 2, 0x81: 1, 0x8D: 1, 0xA8: 1, 0xD3: 1, 0xD5: 1, 0xD9: 1, 0xDA: 1, 0xDB: 1}


class SSD1306Model:
    def __init__(self, i2c: Any = None, addr: int = 0x3C, width: int = 128, height: int = 64):
        self.width, self.height, self.pages = width, height, height // 8
        self.gddram = bytearray(width * self.pages)
        self.on = False
        self.commands: list[int] = []
        self.data_writes = 0
        self._col = (0, width - 1)
        self._page = (0, self.pages - 1)
        self._x, self._p = 0, 0
        self._pending: list[int] = []
        if i2c is not None:
            i2c.bus.attach(addr, self)

    def i2c_write(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            ctl = data[i]
            i += 1
            if ctl & 0x40:  # data
                self.data_writes += 1
                for b in data[i:]:
                    self._write_data(b)
                return
            if ctl & 0x80:  # one command byte, then another control byte
                if i < len(data):
                    self._command_byte(data[i])
                i += 1
                continue
            for b in data[i:]:  # a command stream to the end
                self._command_byte(b)
            return

    def i2c_read(self, n: int) -> bytes:
        return bytes(n)  # status reads are not used

    def _command_byte(self, b: int) -> None:
        self.commands.append(b)
        if self._pending:
            self._pending.append(b)
            cmd = self._pending[0]
            if len(self._pending) - 1 < _ARGS[cmd]:
                return
            args = self._pending[1:]
            self._pending = []
            if cmd == 0x21:
                self._col = (args[0], args[1])
                self._x = args[0]
            elif cmd == 0x22:
                self._page = (args[0], args[1])
                self._p = args[0]
            return
        if b in _ARGS:
            self._pending = [b]
        elif b == 0xAF:
            self.on = True
        elif b == 0xAE:
            self.on = False

    def _write_data(self, b: int) -> None:
        if self._p < self.pages and self._x < self.width:
            self.gddram[self._p * self.width + self._x] = b
        self._x += 1
        if self._x > self._col[1]:
            self._x = self._col[0]
            self._p += 1
            if self._p > self._page[1]:
                self._p = self._page[0]

    def pixel(self, x: int, y: int) -> int:
        return (self.gddram[(y >> 3) * self.width + x] >> (y & 7)) & 1

    def lit(self) -> int:
        return sum(bin(b).count("1") for b in self.gddram)
