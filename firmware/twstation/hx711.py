# HX711 24-bit load-cell ADC, bit-banged on two pins the board config built.
#
#   hx = HX711(dout_pin, pd_sck_pin, gain=128, rate_sps=10)
#   v = hx.poll()        # station loop: int counts, or None (nothing new / discarded sample);
#                        # raises DriverTimeout when DOUT stayed high for stall_ms (wiring fault)
#   v = hx.read_raw()    # blocking, with a deadline (calibration, diagnostics)
#   hx.power_down(); hx.power_up()
#
# Timing (datasheet): each PD_SCK high phase must stay under 50 us; over 60 us powers the chip
# down. Each bit runs in its own short interrupt-disabled section (not the whole 24-bit read, so
# the rest of the system keeps its interrupts) and the high phase is measured; a stretched phase
# or DOUT still low after the gain pulses means the read cannot be trusted: the sample is dropped,
# counted in `glitches`, and the chip is power-cycled into a known state.
# Saturation codes 0x7FFFFF / 0x800000 are dropped and counted in `spikes`.
# No allocation per sample: ints stay small, pin methods are bound once in __init__.
import machine
from micropython import const

from twproto.port import sleep_us, ticks_diff, ticks_ms, ticks_us
from twstation.errors import ConfigError, DriverTimeout

_SAT_HI = const(0x7FFFFF)
_SAT_LO = const(0x800000)
_SIGN = const(0x800000)
_WRAP = const(0x1000000)
_HIGH_MAX_US = const(50)  # datasheet T3 max
_PD_HOLD_US = const(80)  # > 60 us high = power down
_SETTLE_PERIODS = const(4)  # settling time = 4 output periods (400 ms @ 10 SPS, 50 ms @ 80 SPS)



def _pulses(gain):
    # gain -> PD_SCK pulses per read (25: A/128, 26: B/32, 27: A/64)
    if gain == 128:
        return 25
    if gain == 32:
        return 26
    if gain == 64:
        return 27
    raise ConfigError("hx711 gain must be 128, 64 (channel A) or 32 (channel B)")


class HX711:
    def __init__(self, dout, pd_sck, gain=128, rate_sps=10, stall_ms=0):
        self._pulses = _pulses(gain)
        if rate_sps not in (10, 80):
            raise ConfigError("hx711 rate_sps must be 10 or 80 (RATE pin)")
        self._dout = dout.value
        self._sck = pd_sck.value
        self.gain = gain
        period = (1000 + rate_sps - 1) // rate_sps
        # No sample for this long = DOUT stuck high (unplugged, no power): report, don't hang.
        # Settling takes _SETTLE_PERIODS output periods, then a few periods of margin.
        self.stall_ms = stall_ms or (_SETTLE_PERIODS + 3) * period
        self.samples = 0
        self.timeouts = 0
        self.spikes = 0
        self.glitches = 0
        self.last_high_us = 0  # longest clock-high phase of the last read
        self.reset()

    # -- state ---------------------------------------------------------------------------------
    def reset(self):
        """Power-cycle the chip into a known state (channel A gain 128, settling): PD_SCK high
        > 60 us, then low. Restarts the stall window."""
        self._sck(1)
        sleep_us(_PD_HOLD_US)
        self.power_up()

    def power_down(self):
        """PD_SCK high: the chip sleeps 60 us later (~1 uA). Call power_up() to wake it."""
        self._sck(0)
        self._sck(1)
        self._discard = -1  # powered down (no separate flag: one attribute name less)

    def power_up(self):
        self._sck(0)
        # _discard: samples still to drop (>= 0 while powered). The chip wakes at gain 128:
        # the first sample is at 128 whatever we ask for next.
        self._discard = 0 if self._pulses == 25 else 1
        self._t0 = ticks_ms()

    def set_gain(self, gain):
        pulses = _pulses(gain)
        if gain != self.gain:
            self.gain = gain
            self._pulses = pulses
            if self._discard >= 0:  # powered
                self._discard = 1  # the next read still carries the old gain's conversion

    def ready(self):
        return self._discard >= 0 and not self._dout()

    # -- reads ---------------------------------------------------------------------------------
    def _sample(self):
        # DOUT is low: shift one conversion out. Returns signed counts or None (dropped).
        dout = self._dout
        sck = self._sck
        raw = 0
        worst = 0
        for _ in range(24):
            s = machine.disable_irq()
            t0 = ticks_us()
            sck(1)
            raw = (raw << 1) | dout()
            sck(0)
            high = ticks_diff(ticks_us(), t0)  # ticks are only ever compared via ticks_diff
            machine.enable_irq(s)
            if high > worst:
                worst = high
        for _ in range(self._pulses - 24):  # gain / channel for the next conversion
            s = machine.disable_irq()
            t0 = ticks_us()
            sck(1)
            sck(0)
            high = ticks_diff(ticks_us(), t0)
            machine.enable_irq(s)
            if high > worst:
                worst = high
        self.last_high_us = worst
        if worst > _HIGH_MAX_US or not dout():
            self.glitches += 1
            # the reset does NOT restart the stall window: a chip that keeps failing reads
            # still ends in a DriverTimeout
            w = self._t0
            self.reset()
            self._t0 = w
            return None
        self._t0 = ticks_ms()
        if raw == _SAT_HI or raw == _SAT_LO:
            self.spikes += 1
            return None
        if self._discard:
            self._discard -= 1
            return None
        self.samples += 1
        if raw & _SIGN:
            return raw - _WRAP
        return raw
    def poll(self):
        """Non-blocking: a new sample (int), or None. Raises DriverTimeout on a stall."""
        if self._discard < 0:  # powered down
            return None
        if not self._dout():
            v = self._sample()
            if v is not None:
                return v
        if ticks_diff(ticks_ms(), self._t0) > self.stall_ms:
            self.timeouts += 1
            self.reset()  # also restarts the stall window: one report per window
            raise DriverTimeout("hx711: no conversion within stall_ms (DOUT stuck?)")
        return None

    def read_raw(self, timeout_ms=0):
        """Blocking read of one valid sample, within timeout_ms (default: stall_ms)."""
        if self._discard < 0:  # powered down
            self.power_up()
        start = ticks_ms()
        limit = timeout_ms or self.stall_ms
        while True:
            if not self._dout():
                v = self._sample()
                if v is not None:
                    return v
            if ticks_diff(ticks_ms(), start) > limit:
                self.timeouts += 1
                raise DriverTimeout("hx711: no valid sample before the deadline")
            sleep_us(500)
