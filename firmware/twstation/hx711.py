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
# No allocation per sample: ints stay small, pin methods are bound once at construction.
import machine
from micropython import const

from twproto.port import sleep_us, ticks_diff, ticks_ms, ticks_us
from twstation.errors import DriverTimeout

_SAT_HI = const(0x7FFFFF)
_SAT_LO = const(0x800000)
_SIGN = const(0x800000)
_WRAP = const(0x1000000)
_HIGH_MAX_US = const(50)  # datasheet T3 max
_PD_HOLD_US = const(80)  # > 60 us high = power down


class HX711:
    # Construction (argument checks, counters) and the rare methods run in the cold
    # twstation.drvwork (imported on use, forgotten after the boot or the command): only poll(),
    # the sample read and the power-cycle stay in the heap. drvwork reads the clock through this
    # module (tests and the simulator bind a virtual clock to its ticks/sleep names).
    # Attributes drvwork sets (declarations for mypy: the compiler emits nothing for them):
    samples: int
    timeouts: int
    spikes: int
    glitches: int
    last_high_us: int  # longest clock-high phase of the last read

    def __init__(self, dout, pd_sck, gain=128, rate_sps=10, stall_ms=0):
        from twstation import drvwork

        drvwork.hx711(self, dout, pd_sck, gain, rate_sps, stall_ms)

    def __getattr__(self, name):
        # power_down(), power_up(), set_gain(gain), ready(), read_raw(timeout_ms=0): the cold
        # drvwork.hx_<name>(hx, ...). A name it does not have is an AttributeError, as usual.
        from twstation import drvwork

        f = getattr(drvwork, "hx_" + name)
        return lambda *a, **k: f(self, *a, **k)

    def reset(self, n=_PD_HOLD_US):
        """Power-cycle the chip into a known state (channel A gain 128, settling): PD_SCK high
        for n > 60 us, then low. Restarts the stall window. n=0: PD_SCK low only (power_up)."""
        if n:
            self._sck(1)
            sleep_us(n)
        self._sck(0)
        # _discard: samples still to drop (>= 0 while powered; -1 powered down). The chip wakes
        # at gain 128: the first sample is at 128 whatever we ask for next.
        self._discard = 0 if self._pulses == 25 else 1
        self._t0 = ticks_ms()

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
