"""LED/buzzer patterns (non-blocking) and the optional SSD1306 display against its model."""

from __future__ import annotations

import pytest

from tagweigh import hw

hw.install_fakes()

import twstation.display as dsp  # noqa: E402
import twstation.feedback as fbm  # noqa: E402
from tagweigh.hw.fake_machine import I2C, PWM, Pin  # noqa: E402
from tagweigh.hw.ssd1306 import SSD1306Model  # noqa: E402
from twstation.errors import DriverError  # noqa: E402

# Pattern numbers: the ones station.py passes to show() / background() (the driver keeps them as
# private constants, inlined by MicroPython's compiler).
OFF, ACCEPTED, REJECTED, ATTENTION, NOT_SYNCED, IDLE = 0, 1, 2, 3, 4, 5


@pytest.fixture
def pins():
    hw.reset_bench()
    return Pin("G", Pin.OUT), Pin("R", Pin.OUT), Pin("A", Pin.OUT), Pin("BZ", Pin.OUT)


def timeline(fb, pins, start, end, step=10):
    """(t, green, red, amber, buzzer) at every change between start and end ms."""
    out = []
    last = None
    for t in range(start, end, step):
        fb.tick(t)
        state = tuple(p.value() for p in pins)
        if state != last:
            out.append((t,) + state)
            last = state
    return out


def test_accepted_green_and_one_beep_then_background(pins):
    fb = fbm.Feedback(*pins)
    fb.background(OFF, 0)
    fb.show(ACCEPTED, 1000)
    assert (pins[0].value(), pins[3].value()) == (1, 1)
    tl = timeline(fb, pins, 1000, 4000)
    assert tl == [(1000, 1, 0, 0, 1), (1120, 1, 0, 0, 0), (3000, 0, 0, 0, 0)]


def test_rejected_three_beeps_red(pins):
    fb = fbm.Feedback(*pins)
    fb.show(REJECTED, 0)
    tl = timeline(fb, pins, 0, 4000)
    beeps = [row for row in tl if row[4] == 1]
    assert len(beeps) == 3 and all(row[2] == 1 for row in tl[:-1])
    assert tl[-1][1:] == (0, 0, 0, 0)


def test_attention_repeats_silently_after_first_beep(pins):
    fb = fbm.Feedback(*pins)
    fb.show(ATTENTION, 0)
    tl = timeline(fb, pins, 0, 5000)
    assert sum(1 for row in tl if row[4]) == 1
    assert sum(1 for row in tl if row[3]) >= 5  # amber keeps blinking


def test_not_synced_background_resumes_after_transient(pins):
    fb = fbm.Feedback(*pins)
    fb.background(NOT_SYNCED, 0)
    fb.show(ACCEPTED, 500)
    timeline(fb, pins, 500, 2600)
    assert fb.pattern == NOT_SYNCED
    tl = timeline(fb, pins, 2600, 8600)
    flashes = [row for row in tl if row[3] == 1]
    assert len(flashes) == 3  # one short amber flash every 2 s, no beeps
    assert all(row[4] == 0 for row in tl)


def test_pwm_buzzer(pins):
    pwm = PWM(pins[3], freq=1000, duty_u16=0)
    fb = fbm.Feedback(pins[0], pins[1], pins[2], pwm, buzzer_freq=2700)
    fb.show(ACCEPTED, 0)
    assert pwm.freq() == 2700 and pwm.duty_u16() == 32768
    fb.tick(200)
    assert pwm.duty_u16() == 0


def test_active_low_leds(pins):
    fb = fbm.Feedback(*pins[:3], None, active_low=True)
    fb.show(ACCEPTED, 0)
    assert [p.value() for p in pins[:3]] == [0, 1, 1]


def test_display_init_and_reading(pins):
    i2c = I2C(0)
    oled = SSD1306Model(i2c)
    d = dsp.Display(i2c)
    assert oled.on and 0xAF in oled.commands and oled.lit() == 0
    d.show_reading(-12345, False, "BAG-000123", "rule: too heavy")
    assert [t[0] for t in d.fb.texts] == ["-12.345 kg ~", "BAG-000123", "rule: too heavy", ""]
    assert oled.gddram == d.buf and oled.lit() > 0


def test_display_absent_is_a_driver_error(pins):
    with pytest.raises(DriverError):
        dsp.Display(I2C(1), addr=0x3D)


def test_private_pattern_numbers_match_the_station():
    from twstation import station

    assert (fbm._OFF, fbm._ACCEPTED, fbm._REJECTED, fbm._ATTENTION, fbm._NOT_SYNCED,
            fbm._IDLE) == (OFF, ACCEPTED, REJECTED, ATTENTION, NOT_SYNCED, IDLE)
    assert (station._P_ACCEPTED, station._P_REJECTED, station._P_ATTENTION, station._P_NOT_SYNCED,
            station._P_IDLE) == (ACCEPTED, REJECTED, ATTENTION, NOT_SYNCED, IDLE)


def test_outputs_off_after_init(pins):
    fb = fbm.Feedback(*pins)
    assert fb.leds == 0 and fb.buzzing == 0 and fb.pattern == OFF
    assert [p.value() for p in pins[:3]] == [0, 0, 0]


def test_pattern_table_decodes_to_the_documented_steps():
    # _PATTERNS: 6 offsets, then per pattern repeat_from (255: transient) and (leds | buzz << 3,
    # ms // 10) per step
    p = fbm._PATTERNS
    spec = {
        OFF: (0, [(0, 0, 0)]),
        ACCEPTED: (255, [(1, 1, 120), (1, 0, 1880)]),
        REJECTED: (255, [(2, 1, 150), (2, 0, 100)] * 2 + [(2, 1, 150), (2, 0, 2350)]),
        ATTENTION: (1, [(4, 1, 400), (4, 0, 400), (0, 0, 400)]),
        NOT_SYNCED: (0, [(4, 0, 80), (0, 0, 1920)]),
        IDLE: (0, [(1, 0, 40), (0, 0, 2480), (0, 0, 2480)]),  # 4960 ms off in two steps
    }
    for k, (rep, steps) in spec.items():
        a = p[k]
        b = p[k + 1] if k < IDLE else len(p)
        got = [(p[i] & 7, p[i] >> 3, p[i + 1] * 10) for i in range(a + 1, b, 2)]
        assert (p[a], got) == (rep, steps), k


def test_idle_heartbeat_every_5_s(pins):
    fb = fbm.Feedback(*pins)
    fb.background(IDLE, 0)
    tl = timeline(fb, pins, 0, 15000)
    assert [row for row in tl if row[1]] == [(0, 1, 0, 0, 0), (5000, 1, 0, 0, 0),
                                              (10000, 1, 0, 0, 0)]
    assert all(t % 5000 == 40 for t, g, *_ in tl if not g)
