"""A virtual clock shared by the hardware models and (in tests) the firmware's tick functions.

Real MicroPython code spends time between two clock reads; a frozen virtual clock would make every
busy-wait loop spin forever. So each ``ticks_*`` read costs ``step_us`` microseconds (a model of
code execution time), ``sleep_*`` advances the clock, and a test can ``advance`` it explicitly
(e.g. inside a pin hook, to stretch one HX711 clock-high phase).
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

_PERIOD = 1 << 30  # same 30-bit wrap as twproto.port and the ESP32 port
_HALF = _PERIOD >> 1


class VirtualClock:
    def __init__(self, start_us: int = 0, step_us: int = 1):
        self.now_us = int(start_us)
        self.step_us = int(step_us)

    # -- model side ---------------------------------------------------------------------------
    def monotonic(self) -> float:
        """Seconds, the ``clock`` callable the models take. Reading it costs no time."""
        return self.now_us / 1_000_000

    __call__ = monotonic

    def advance_us(self, us: float) -> None:
        self.now_us += int(us)

    def advance_ms(self, ms: float) -> None:
        self.now_us += int(ms * 1000)

    # -- firmware side (twproto.port signatures) ----------------------------------------------
    def ticks_us(self) -> int:
        self.now_us += self.step_us
        return self.now_us & (_PERIOD - 1)

    def ticks_ms(self) -> int:
        self.now_us += self.step_us
        return (self.now_us // 1000) & (_PERIOD - 1)

    @staticmethod
    def ticks_add(ticks: int, delta: int) -> int:
        return (ticks + delta) & (_PERIOD - 1)

    @staticmethod
    def ticks_diff(end: int, start: int) -> int:
        return ((end - start + _HALF) & (_PERIOD - 1)) - _HALF

    def sleep_us(self, us: int) -> None:
        self.now_us += max(int(us), 0)

    def sleep_ms(self, ms: int) -> None:
        self.now_us += max(int(ms), 0) * 1000

    def bind(self, *modules: ModuleType) -> Callable[[], None]:
        """Point the tick/sleep names of firmware modules at this clock; returns an undo function.

        Firmware imports ``from twproto.port import ticks_ms, ...`` into its module namespace, so
        rebinding those names there is enough (the functions read globals at call time).
        """
        names = ("ticks_ms", "ticks_us", "ticks_add", "ticks_diff", "sleep_ms", "sleep_us")
        saved: list[tuple[ModuleType, str, object]] = []
        for mod in modules:
            for name in names:
                if hasattr(mod, name):
                    saved.append((mod, name, getattr(mod, name)))
                    setattr(mod, name, getattr(self, name))

        def undo() -> None:
            for mod, name, value in reversed(saved):
                setattr(mod, name, value)

        return undo
