"""HX711 driver against the pin-level HX711 model, on a virtual clock."""

from __future__ import annotations

import pytest

from tagweigh import hw

hw.install_fakes()

import twstation.hx711 as hx711_mod  # noqa: E402
from tagweigh.hw.hx711 import A64, A128, B32, HX711Model  # noqa: E402
from twstation.errors import DriverTimeout  # noqa: E402


@pytest.fixture
def clock():
    hw.reset_bench()
    c = hw.VirtualClock(step_us=1)
    undo = c.bind(hx711_mod)
    yield c
    undo()


def make(clock, source=0, **kw):
    rate = kw.pop("rate_sps", 10)
    model = HX711Model(source, clock=clock, rate_sps=rate, source_b=kw.pop("source_b", 0))
    drv = hx711_mod.HX711(model.dout, model.pd_sck, rate_sps=rate, **kw)
    return model, drv


def next_sample(drv, clock, step_ms=5, limit_ms=3000):
    for _ in range(limit_ms // step_ms):
        v = drv.poll()
        if v is not None:
            return v
        clock.advance_ms(step_ms)
    raise AssertionError("no sample")


@pytest.mark.parametrize("value", [0, 1, -1, 123456, -123456, 0x7FFFFE, -0x7FFFFF, 8388000])
def test_gain_128_reads_source_value(clock, value):
    model, drv = make(clock, value)
    assert not drv.ready()  # settling after power-up: DOUT high
    clock.advance_ms(400)
    assert drv.read_raw() == value
    assert model.last_setting == A128
    assert drv.last_high_us <= 50


@pytest.mark.parametrize("rate", [10, 80])
def test_samples_arrive_at_the_data_rate(clock, rate):
    model, drv = make(clock, 5000, rate_sps=rate)
    clock.advance_ms(400)
    got = []
    start = clock.now_us
    while clock.now_us - start < 1_000_000:
        v = drv.poll()
        if v is not None:
            got.append(v)
        clock.advance_ms(1)
    assert all(v == 5000 for v in got)
    assert rate - 1 <= len(got) <= rate + 1
    assert model.power_downs == 1  # only the driver's reset at init


def test_gain_64_halves_and_channel_b_uses_second_source(clock):
    model, drv = make(clock, -200000, gain=64, source_b=-777)
    assert next_sample(drv, clock) == -100000
    assert model.last_setting == A64
    drv.set_gain(32)
    assert next_sample(drv, clock) == -777
    assert model.last_setting == B32
    drv.set_gain(128)
    assert next_sample(drv, clock) == -200000
    assert model.last_setting == A128


def test_gain_pulse_count_is_25_26_27(clock):
    for gain, pulses in ((128, 25), (32, 26), (64, 27)):
        hw.reset_bench()
        model, drv = make(clock, 1, gain=gain)
        clock.advance_ms(400)
        edges = []
        model.pd_sck._line.listeners.append(lambda lv: edges.append(lv))
        while not drv.ready():
            clock.advance_ms(1)
        drv.poll()
        assert edges.count(1) == pulses


def test_saturated_codes_are_discarded_and_counted(clock):
    values = iter([10**9, -(10**9), 42] + [42] * 50)
    model, drv = make(clock, lambda t: next(values))
    clock.advance_ms(400)
    got = [drv.poll()]
    for _ in range(3):
        clock.advance_ms(100)
        got.append(drv.poll())
    assert got[:3] == [None, None, 42]
    assert drv.spikes == 2 and drv.samples >= 1


def test_dout_stuck_high_times_out_within_the_deadline(clock):
    model, drv = make(clock, 0)
    model.dout_stuck = 1
    t0 = clock.now_us
    with pytest.raises(DriverTimeout):
        drv.read_raw(timeout_ms=250)
    assert 250_000 <= clock.now_us - t0 < 300_000
    assert drv.timeouts == 1
    # The non-blocking path reports it once per stall window, never hangs.
    when = []
    for _ in range(3000):
        try:
            drv.poll()
        except DriverTimeout:
            when.append(clock.now_us // 1000)
        clock.advance_ms(1)
    assert len(when) >= 3
    gaps = [b - a for a, b in zip(when, when[1:])]
    assert all(drv.stall_ms <= g <= drv.stall_ms + 5 for g in gaps)
    assert drv.timeouts == 1 + len(when)


def test_dout_stuck_low_is_a_glitch_then_a_stall(clock):
    model, drv = make(clock, 0)
    model.dout_stuck = 0
    with pytest.raises(DriverTimeout):
        for _ in range(2000):
            assert drv.poll() is None
            clock.advance_ms(1)
    assert drv.glitches > 0 and drv.samples == 0


def test_stretched_clock_high_powers_model_down_and_driver_recovers(clock):
    model, drv = make(clock, 3210, gain=64)
    assert next_sample(drv, clock) == 1605
    # Stretch the 10th clock-high phase of the next read past 60 us (an interrupt the IRQ lock
    # did not hold off, a flash cache stall...).
    rises = {"n": 0}

    def stretch(level):
        if level:
            rises["n"] += 1
            if rises["n"] == 10:
                clock.advance_us(70)

    model.pd_sck._line.listeners.append(stretch)
    while not drv.ready():
        clock.advance_ms(1)
    pd = model.power_downs
    assert drv.poll() is None
    assert model.power_downs == pd + 2  # the stretched phase, then the driver's reset
    assert drv.glitches == 1
    model.pd_sck._line.listeners.remove(stretch)
    # Recovered: the gain (reset to 128 by the power cycle) is re-applied and values are right.
    assert next_sample(drv, clock) == 1605
    assert model.last_setting == A64


def test_lenient_model_counts_violations_instead_of_powering_down(clock):
    model = HX711Model(100, clock=clock, strict_timing=False)
    drv = hx711_mod.HX711(model.dout, model.pd_sck)
    clock.advance_ms(400)
    assert model.power_downs == 1  # the driver's reset at init (PD_SCK held 80 us)

    rises = {"n": 0}

    def stretch(level):
        if level:
            rises["n"] += 1
            if rises["n"] == 5:  # a data bit
                clock.advance_us(65)

    model.pd_sck._line.listeners.append(stretch)
    assert drv.poll() is None  # the driver still refuses a read it timed as stretched
    model.pd_sck._line.listeners.remove(stretch)
    assert model.violations >= 1
    assert model.power_downs == 2  # the driver's recovery reset, not the stretched read


def test_power_down_and_up(clock):
    model, drv = make(clock, 77)
    clock.advance_ms(400)
    drv.power_down()
    clock.advance_us(100)
    assert not model.powered
    assert drv.poll() is None and not drv.ready()
    drv.power_up()
    assert model.powered
    assert next_sample(drv, clock) == 77


def test_read_uses_short_irq_sections_per_bit(clock):
    bench = hw.reset_bench()
    model, drv = make(clock, 5)
    clock.advance_ms(400)
    before = bench.irq_sections
    assert drv.read_raw() == 5
    assert bench.irq_sections - before == 25  # one per clock pulse, not one for the whole read
    assert bench.irq_disabled == 0


def test_config_validation():
    from twstation.errors import ConfigError

    hw.reset_bench()
    m = HX711Model(0)
    with pytest.raises(ConfigError):
        hx711_mod.HX711(m.dout, m.pd_sck, gain=100)
    with pytest.raises(ConfigError):
        hx711_mod.HX711(m.dout, m.pd_sck, rate_sps=40)


def test_real_clock_smoke():
    """Same driver and model on the real clock (what the simulator does)."""
    hw.reset_bench()
    model = HX711Model(-4242, rate_sps=80, strict_timing=False)
    drv = hx711_mod.HX711(model.dout, model.pd_sck, rate_sps=80)
    assert drv.read_raw(timeout_ms=1000) == -4242


def test_rare_methods_come_from_the_cold_module_and_unknown_names_stay_errors(clock):
    # power_down/power_up/set_gain/ready/read_raw live in twstation.drvwork (HX711.__getattr__)
    model, drv = make(clock, 9)
    assert callable(drv.set_gain) and callable(drv.read_raw)
    assert not hasattr(drv, "no_such_method") and not hasattr(drv, "hx711")
    with pytest.raises(AttributeError):
        drv.__wrapped__
