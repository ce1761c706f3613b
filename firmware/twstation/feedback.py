# Operator feedback: three LEDs (ok / bad / attention) and a buzzer, driven by patterns that run
# without blocking. show() starts a pattern; tick(now) from the station loop advances it.
#
#   fb = Feedback(led_ok, led_bad, led_attn, buzzer)   # buzzer: Pin (active) or PWM (passive)
#   fb.background(NOT_SYNCED)   # what to show when nothing else is (repeats)
#   fb.show(ACCEPTED)           # a transient pattern, then back to the background
#   fb.tick(ticks_ms())
#
# A pattern is a flat tuple: (repeat_from, leds, buzz, ms, leds, buzz, ms, ...). `leds` is a mask
# (1 ok, 2 bad, 4 attention); ms 0 holds the step until the next show(). repeat_from -1 means the
# pattern ends after its last step and the background pattern resumes.
from micropython import const

from twproto.port import ticks_add, ticks_diff, ticks_ms

# Pattern numbers (private constants, inlined: no RAM). station.py uses the same numbers and
# tests/firmware/test_feedback.py pins them.
_OFF = const(0)
_ACCEPTED = const(1)
_REJECTED = const(2)
_ATTENTION = const(3)
_NOT_SYNCED = const(4)
_IDLE = const(5)

_PATTERNS = const((
    (0, 0, 0, 0),  # OFF
    (-1, 1, 1, 120, 1, 0, 1880),  # ACCEPTED: green, one short beep, 2 s
    (-1, 2, 1, 150, 2, 0, 100, 2, 1, 150, 2, 0, 100, 2, 1, 150, 2, 0, 2350),  # REJECTED: 3 beeps
    (1, 4, 1, 400, 4, 0, 400, 0, 0, 400),  # ATTENTION: amber blinks; one long beep, then silent
    (0, 4, 0, 80, 0, 0, 1920),  # NOT_SYNCED: short amber flash every 2 s
    (0, 1, 0, 40, 0, 0, 4960),  # IDLE: a faint green heartbeat every 5 s
))  # fmt: skip


class Feedback:
    def __init__(self, led_ok, led_bad, led_attn, buzzer=None, buzzer_freq=2700, active_low=False):
        # _io: the output pins (ok, bad, attention, buzzer or None). Private names reuse names
        # the app already interns (firmware/MEMORY.md): _io, _i, _next, _hold, _end.
        self._io = (led_ok, led_bad, led_attn, buzzer)
        if hasattr(buzzer, "duty_u16"):  # a PWM (passive buzzer)
            buzzer.freq(buzzer_freq)
        self._inv = 1 if active_low else 0
        self._bg = _OFF
        self.leds = 0  # current LED mask (for tests and a status page)
        self.buzzing = -1  # unknown: the first step writes the buzzer
        self.show(_OFF)  # every output off, held

    def show(self, pattern, now=None):
        self.pattern = pattern
        self._i = 1
        self._next(ticks_ms() if now is None else now)

    def background(self, pattern, now=None):
        """The pattern shown when no transient one runs (e.g. NOT_SYNCED until the bridge syncs)."""
        if pattern == self._bg:
            return
        running = self.pattern == self._bg
        self._bg = pattern
        if running:
            self.show(pattern, now)

    def _next(self, now):  # the pattern's next step
        pats = _PATTERNS
        p = pats[self.pattern]
        i = self._i
        if i >= len(p):
            if p[0] < 0:  # transient finished: back to the background
                self.pattern = self._bg
                p = pats[self._bg]
                i = 1
            else:
                i = 1 + 3 * p[0]
        leds = p[i]
        buzz = p[i + 1]
        inv = self._inv
        pins = self._io
        pins[0].value((leds & 1 and 1) ^ inv)
        pins[1].value((leds & 2 and 1) ^ inv)
        pins[2].value((leds & 4 and 1) ^ inv)
        b = pins[3]
        if b is not None and buzz != self.buzzing:
            if hasattr(b, "duty_u16"):
                b.duty_u16(32768 if buzz else 0)
            else:
                b.value(buzz)
        self.leds = leds
        self.buzzing = buzz
        ms = p[i + 2]
        self._hold = ms == 0
        self._end = ticks_add(now, ms)
        self._i = i + 3

    def tick(self, now=None):
        if self._hold:
            return
        now = ticks_ms() if now is None else now
        if ticks_diff(now, self._end) >= 0:
            self._next(now)
