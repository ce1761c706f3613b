# Operator feedback: three LEDs (ok / bad / attention) and a buzzer, driven by patterns that run
# without blocking. show() starts a pattern; tick(now) from the station loop advances it.
#
#   fb = Feedback(led_ok, led_bad, led_attn, buzzer)   # buzzer: Pin (active) or PWM (passive)
#   fb.background(NOT_SYNCED)   # what to show when nothing else is (repeats)
#   fb.show(ACCEPTED)           # a transient pattern, then back to the background
#   fb.tick(ticks_ms())
#
# A pattern is a run of bytes in _PATTERNS: repeat_from, then one (leds | buzz << 3, ms // 10)
# pair per step. `leds` is a mask (1 ok, 2 bad, 4 attention), buzz 1 sounds the buzzer; ms 0
# holds the step until the next show(). repeat_from is the step the pattern repeats from; 255
# means the pattern ends after its last step and the background pattern resumes.
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

# One bytes object (not a tuple of int tuples: ~300 bytes less heap). Its first 6 bytes are the
# offsets of the patterns in it; a pattern ends where the next begins (or at the end).
_PATTERNS = const(
    b"\x06\x09\x0e\x1b\x22\x27"  # offsets of OFF ACCEPTED REJECTED ATTENTION NOT_SYNCED IDLE
    b"\x00" b"\x00\x00"  # OFF: all off, held
    b"\xff" b"\x09\x0c\x01\xbc"  # ACCEPTED: green + beep 120 ms, green 1880 ms
    b"\xff" b"\x0a\x0f\x02\x0a" b"\x0a\x0f\x02\x0a" b"\x0a\x0f\x02\xeb"  # REJECTED: 3 x
    # (red + beep 150 ms, red 100 ms), the last red 2350 ms
    b"\x01" b"\x0c\x28" b"\x04\x28\x00\x28"  # ATTENTION: amber + beep 400 ms, then
    # (amber 400 ms, off 400 ms) repeated: one long beep, then silent blinks
    b"\x00" b"\x04\x08\x00\xc0"  # NOT_SYNCED: short amber flash (80 ms) every 2 s
    b"\x00" b"\x01\x04\x00\xf8\x00\xf8"  # IDLE: a faint green heartbeat (40 ms) every
    # 5 s (the 4960 ms off in two steps of 2480: a step's ms // 10 fits in a byte)
)


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
        k = self.pattern
        i = self._i  # offset of the step in the pattern
        end = pats[k + 1] if k < _IDLE else len(pats)  # IDLE is the last pattern
        if pats[k] + i >= end:
            r = pats[pats[k]]
            if r == 255:  # transient finished: back to the background
                self.pattern = k = self._bg
                i = 1
            else:
                i = 1 + 2 * r
        i += pats[k]
        leds = pats[i] & 7
        buzz = pats[i] >> 3
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
        ms = pats[i + 1] * 10
        self._hold = ms == 0
        self._end = ticks_add(now, ms)
        self._i = i + 2 - pats[k]

    def tick(self, now=None):
        if self._hold:
            return
        now = ticks_ms() if now is None else now
        if ticks_diff(now, self._end) >= 0:
            self._next(now)
