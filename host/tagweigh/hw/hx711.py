"""HX711 24-bit load-cell ADC, modelled at the pin level (DOUT, PD_SCK) against a clock.

What the model does, from the Avia HX711 datasheet:
- Conversions complete every 1/rate (10 or 80 SPS, the RATE pin). DOUT is high while no data is
  ready and goes low when a conversion is ready.
- Each PD_SCK rising edge shifts out one bit, MSB first, 24 bits of two's complement. Pulse 25
  pulls DOUT high again. The number of pulses in a read selects the input and gain of the NEXT
  conversion: 25 -> channel A gain 128, 26 -> channel B gain 32, 27 -> channel A gain 64.
- Out-of-range inputs saturate: 0x7FFFFF above, 0x800000 below.
- PD_SCK high for more than 60 us powers the chip down (DOUT stays high); PD_SCK low again resets
  and powers it up with channel A gain 128. Output is valid after the settling time (400 ms at
  10 SPS, 50 ms at 80 SPS; four conversion periods), also after an input/gain change.

Modelling choices (documented, not in the datasheet):
- While settling the model withholds data (DOUT stays high) instead of emitting unsettled values.
- The pulse count of a read is applied at the next conversion boundary; data is not updated while
  a read is in progress, so a slow reader never sees bits from two conversions.
- Rising edges while no data is ready and no read is in progress are ignored.
- ``strict_timing=False`` (simulator on a busy host): a clock-high phase over 60 us *during a
  read's 24 data bits* is counted in ``violations`` instead of powering down; any other long high
  phase (a deliberate power-down, or one longer than ``lenient_limit_s``) still powers down.

``source(t) -> int`` gives the channel A input in counts at gain 128 (gain 64 halves it);
``source_b(t)`` gives channel B directly in counts at gain 32. ``tagweigh.hw.loadcell.LoadCell``'s
``counts`` plugs in as ``source``.
"""

from __future__ import annotations

import random
import time
from typing import Callable

from tagweigh.hw import fake_machine

PD_THRESHOLD_S = 60e-6
MAX_HIGH_S = 50e-6  # datasheet T3 max: the longest clock-high phase a reader may use
SAT_HI = 0x7FFFFF
SAT_LO = 0x800000
A128, B32, A64 = 25, 26, 27  # a setting is named by the pulse count that selects it

_count = 0


def _pin_id(name: str) -> str:
    global _count
    _count += 1
    return "%s#%d" % (name, _count)


# -- simple sources for tests and demos -----------------------------------------------------------


def constant(counts: int) -> Callable[[float], int]:
    return lambda t: counts


def ramp(start: int, per_second: float) -> Callable[[float], int]:
    return lambda t: int(start + per_second * t)


def noisy(base: Callable[[float], int] | int, sigma: float, seed: int = 1) -> Callable[[float], int]:
    rng = random.Random(seed)
    fn = base if callable(base) else constant(base)
    return lambda t: int(round(fn(t) + rng.gauss(0.0, sigma)))


# -- the model ------------------------------------------------------------------------------------


class HX711Model:
    def __init__(
        self,
        source: Callable[[float], int] | int = 0,
        *,
        source_b: Callable[[float], int] | int = 0,
        rate_sps: int = 10,
        clock: Callable[[], float] = time.monotonic,
        dout: fake_machine.Pin | None = None,
        pd_sck: fake_machine.Pin | None = None,
        strict_timing: bool = True,
        lenient_limit_s: float = 0.05,
    ):
        if rate_sps not in (10, 80):
            raise ValueError("HX711 runs at 10 or 80 samples per second (RATE pin)")
        self.source = source if callable(source) else constant(source)
        self.source_b = source_b if callable(source_b) else constant(source_b)
        self.rate_sps = rate_sps
        self.period = 1.0 / rate_sps
        self.settle = 4 * self.period
        self.clock = clock
        self.strict_timing = strict_timing
        self.lenient_limit_s = lenient_limit_s
        # Fault injection: None = healthy, 0/1 = DOUT stuck at that level (broken or shorted wire).
        self.dout_stuck: int | None = None
        # Counters a test or the simulator reads.
        self.conversions = 0  # conversions latched into the output register
        self.reads = 0  # reads completed (>= 25 pulses)
        self.power_downs = 0
        self.violations = 0  # clock-high phases over 60 us tolerated in lenient mode
        self.max_high_s = 0.0  # longest clock-high phase seen during reads
        self.extra_pulses = 0  # pulses beyond 27 in one read
        self.last_setting = A128  # setting of the conversion last shifted out

        self.dout = dout if dout is not None else fake_machine.Pin(_pin_id("hx711.dout"))
        self.pd_sck = pd_sck if pd_sck is not None else fake_machine.Pin(_pin_id("hx711.pd_sck"))
        self.dout._line.reader = self._dout_level
        self.pd_sck._line.listeners.append(self._on_sck)

        now = self.clock()
        self._sck = 0
        self._sck_rise = now
        self._powered = True
        self._power_up(now)

    # -- state ----------------------------------------------------------------------------------
    def _power_up(self, now: float) -> None:
        self._powered = True
        self.setting = A128
        self._next_conv = now + self.settle
        self._ready = False
        self._latched = 0
        self._latched_setting = A128
        self._pulses = 0  # 0 = no read in progress

    @property
    def powered(self) -> bool:
        self._advance(self.clock())
        return self._powered

    def _sample(self, t: float, setting: int) -> int:
        if setting == B32:
            v = int(self.source_b(t))
        elif setting == A64:
            v = int(self.source(t)) // 2
        else:
            v = int(self.source(t))
        if v >= SAT_HI:
            return SAT_HI
        if v <= -SAT_LO:
            return SAT_LO
        return v & 0xFFFFFF

    def _advance(self, now: float) -> None:
        if self._powered and self._sck:
            high = now - self._sck_rise
            if high > PD_THRESHOLD_S:
                data_bit = 0 < self._pulses <= 24
                if self.strict_timing or not data_bit or high > self.lenient_limit_s:
                    self._powered = False
                    self._ready = False
                    self._pulses = 0
                    self.power_downs += 1
                    return
        if not self._powered or now < self._next_conv:
            return
        if self._pulses:
            if self._pulses < A128:
                # Read still in progress: hold the data, let conversions slip by.
                skipped = int((now - self._next_conv) / self.period) + 1
                self._next_conv += skipped * self.period
                return
            self._finish_read(self._next_conv)
            if now < self._next_conv:
                return
        # Latch the newest completed conversion (older ones were overwritten unread).
        k = int((now - self._next_conv) / self.period)
        t = self._next_conv + k * self.period
        self._next_conv = t + self.period
        self._latched = self._sample(t, self.setting)
        self._latched_setting = self.setting
        self._ready = True
        self.conversions += 1

    def _finish_read(self, boundary: float) -> None:
        pulses = min(self._pulses, A64)
        self._pulses = 0
        self.reads += 1
        if pulses != self.setting:
            self.setting = pulses
            self._next_conv = boundary + self.settle  # input/gain changed: settle again

    # -- pins -----------------------------------------------------------------------------------
    def _dout_level(self) -> int:
        if self.dout_stuck is not None:
            return self.dout_stuck
        self._advance(self.clock())
        if not self._powered:
            return 1
        if self._pulses:
            if self._pulses > 24:
                return 1
            return (self._shift >> (24 - self._pulses)) & 1
        return 0 if self._ready else 1

    def _on_sck(self, level: int) -> None:
        now = self.clock()
        if level == self._sck:
            return
        reading = self._pulses if self._powered else 0
        self._advance(now)
        self._sck = level
        if level:
            self._sck_rise = now
            if not self._powered:
                return
            if self._pulses:
                self._pulses += 1
                if self._pulses > A64:
                    self.extra_pulses += 1
            elif self._ready:
                self._pulses = 1
                self._shift = self._latched
                self.last_setting = self._latched_setting
                self._ready = False
            return
        # falling edge
        high = now - self._sck_rise
        if reading and high > self.max_high_s:
            self.max_high_s = high
        if self._powered and 0 < self._pulses <= 24 and high > PD_THRESHOLD_S:
            self.violations += 1  # lenient mode tolerated it (strict mode powered down above)
        if not self._powered:
            self._power_up(now)  # PD_SCK low again: reset, channel A gain 128, settle

    # -- test helpers ---------------------------------------------------------------------------
    def value_now(self, setting: int = A128) -> int:
        """The signed value a conversion at ``setting`` would produce now (what a read should see)."""
        raw = self._sample(self.clock(), setting)
        return raw - 0x1000000 if raw & 0x800000 else raw
