# twproto.port, the one platform gate: the same assertions hold on CPython and on MicroPython.
# Runs in both interpreters through the harness in tests/conftest.py (plain asserts, no pytest).
import sys

from twproto import port

# ESP32 (and every 32-bit MicroPython port): ticks wrap at 2**30 (MICROPY_PY_TIME_TICKS_PERIOD).
PERIOD = 1 << 30
HALF = PERIOD >> 1


def test_gate_reports_the_interpreter():
    assert port.MICROPYTHON == (sys.implementation.name == "micropython")


def test_const_is_identity():
    assert port.const(0x1021) == 0x1021
    assert port.const(-5) == -5
    assert port.const(PERIOD - 1) == PERIOD - 1


def test_ticks_add_wraps_at_period():
    assert port.ticks_add(PERIOD - 1, 1) == 0
    assert port.ticks_add(0, -1) == PERIOD - 1
    assert port.ticks_add(PERIOD - 10, 25) == 15
    assert port.ticks_add(5, -HALF + 1) == PERIOD - HALF + 6
    assert port.ticks_add(5, HALF - 1) == HALF + 4


def test_ticks_add_rejects_half_period_or_more():
    # MicroPython raises so that ticks_diff(ticks_add(t, d), t) == d holds for every accepted d
    for delta in (HALF, -HALF, PERIOD, -PERIOD - 5, 10 * PERIOD):
        try:
            port.ticks_add(0, delta)
        except OverflowError:
            continue
        raise AssertionError("ticks_add accepted delta %d" % delta)


def test_ticks_diff_across_wrap():
    assert port.ticks_diff(0, PERIOD - 1) == 1
    assert port.ticks_diff(PERIOD - 1, 0) == -1
    assert port.ticks_diff(3, PERIOD - 4) == 7
    # the answer is signed, in [-HALF, HALF)
    assert port.ticks_diff(HALF, 0) == -HALF
    assert port.ticks_diff(HALF - 1, 0) == HALF - 1


def test_ticks_diff_inverts_ticks_add():
    starts = (0, 1, 12345, HALF - 1, HALF, PERIOD - 2, PERIOD - 1)
    deltas = (0, 1, -1, 1000, -1000, HALF - 1, -HALF + 1, 777777, -777777)
    for start in starts:
        for delta in deltas:
            end = port.ticks_add(start, delta)
            assert 0 <= end < PERIOD, (start, delta, end)
            assert port.ticks_diff(end, start) == delta, (start, delta, end)


def test_deadline_pattern_survives_wrap():
    # the firmware's wait idiom: deadline = ticks_add(now, timeout); loop while ticks_diff(deadline, now) > 0
    now = PERIOD - 30
    deadline = port.ticks_add(now, 100)
    assert deadline == 70
    assert port.ticks_diff(deadline, now) > 0
    assert port.ticks_diff(deadline, port.ticks_add(now, 99)) > 0
    assert port.ticks_diff(deadline, port.ticks_add(now, 100)) == 0
    assert port.ticks_diff(deadline, port.ticks_add(now, 101)) < 0


def test_clocks_are_in_range_and_advance():
    t0_ms = port.ticks_ms()
    t0_us = port.ticks_us()
    assert 0 <= t0_ms < PERIOD
    assert 0 <= t0_us < PERIOD
    port.sleep_ms(2)
    assert port.ticks_diff(port.ticks_ms(), t0_ms) >= 2
    t1_us = port.ticks_us()
    port.sleep_us(500)
    assert port.ticks_diff(port.ticks_us(), t1_us) >= 500
    assert port.ticks_diff(t1_us, t0_us) >= 2000
