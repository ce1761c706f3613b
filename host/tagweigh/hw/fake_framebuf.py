"""A fake ``framebuf`` for CPython: real pixel operations for MONO_VLSB/MONO_HLSB buffers.

Text is not rendered with MicroPython's 8x8 font (not ours to copy): each non-space character
becomes a filled 6x7 block in its 8x8 cell, and every ``text()`` call is recorded in ``texts``
as ``(string, x, y, colour)`` so tests and the simulator can read what the screen shows.
"""

from __future__ import annotations

from typing import Any

MONO_VLSB = 0
RGB565 = 1
GS4_HMSB = 2
MONO_HLSB = 3
MONO_HMSB = 4
GS2_HMSB = 5
GS8 = 6
MVLSB = MONO_VLSB


class FrameBuffer:
    def __init__(self, buffer: Any, width: int, height: int, format: int, stride: int | None = None):
        if format not in (MONO_VLSB, MONO_HLSB):
            raise ValueError("fake framebuf supports MONO_VLSB and MONO_HLSB only")
        self.buf = memoryview(buffer).cast("B")
        self.width, self.height, self.format = width, height, format
        self.stride = width if stride is None else stride
        self.texts: list[tuple[str, int, int, int]] = []

    def _index(self, x: int, y: int) -> tuple[int, int]:
        if self.format == MONO_VLSB:
            return (y >> 3) * self.stride + x, y & 7
        return (y * self.stride + x) >> 3, 7 - (x & 7)

    def pixel(self, x: int, y: int, c: int | None = None) -> int | None:
        if not (0 <= x < self.width and 0 <= y < self.height):
            return None if c is not None else 0
        i, bit = self._index(x, y)
        if c is None:
            return (self.buf[i] >> bit) & 1
        if c:
            self.buf[i] |= 1 << bit
        else:
            self.buf[i] &= ~(1 << bit) & 0xFF
        return None

    def fill(self, c: int) -> None:
        v = 0xFF if c else 0
        for i in range(len(self.buf)):
            self.buf[i] = v
        self.texts.clear()

    def fill_rect(self, x: int, y: int, w: int, h: int, c: int) -> None:
        for yy in range(max(y, 0), min(y + h, self.height)):
            for xx in range(max(x, 0), min(x + w, self.width)):
                self.pixel(xx, yy, c)

    def hline(self, x: int, y: int, w: int, c: int) -> None:
        self.fill_rect(x, y, w, 1, c)

    def vline(self, x: int, y: int, h: int, c: int) -> None:
        self.fill_rect(x, y, 1, h, c)

    def rect(self, x: int, y: int, w: int, h: int, c: int, f: bool = False) -> None:
        if f:
            self.fill_rect(x, y, w, h, c)
            return
        self.hline(x, y, w, c)
        self.hline(x, y + h - 1, w, c)
        self.vline(x, y, h, c)
        self.vline(x + w - 1, y, h, c)

    def text(self, s: str, x: int, y: int, c: int = 1) -> None:
        self.texts.append((s, x, y, c))
        for i, ch in enumerate(s):
            if ch != " ":
                self.fill_rect(x + 8 * i + 1, y, 6, 7, c)

    def scroll(self, dx: int, dy: int) -> None:
        raise NotImplementedError("scroll is not used by tagweigh")

    def blit(self, *args: Any, **kw: Any) -> None:
        raise NotImplementedError("blit is not used by tagweigh")
