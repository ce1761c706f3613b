"""The fake machine/micropython modules and the bench wiring the models use."""

from __future__ import annotations

import sys

import pytest

from tagweigh import hw


def test_install_fakes_registers_modules():
    hw.install_fakes()
    import machine
    import micropython

    assert machine is hw.fake_machine and sys.modules["micropython"] is hw.fake_micropython
    assert micropython.const(5) == 5
    assert sorted(hw.__all__) == sorted(
        ["install_fakes", "reset_bench", "VirtualClock", "HX711Model", "MFRC522Model", "Card",
         "ntag_memory", "ndef_text", "ndef_uri", "ScannerModel", "SSD1306Model", "constant",
         "ramp", "noisy"])  # fmt: skip
    for name in hw.__all__:
        assert getattr(hw, name) is not None


def test_pins_with_the_same_id_share_a_line():
    m = hw.fake_machine
    hw.reset_bench()
    a = m.Pin(16, m.Pin.OUT)
    b = m.Pin(16, m.Pin.IN)
    a.on()
    assert b.value() == 1
    a(0)
    assert b() == 0
    assert m.Pin(17, m.Pin.IN, m.Pin.PULL_UP).value() == 1
    seen = []
    b.irq(lambda p: seen.append(p), trigger=m.Pin.IRQ_FALLING)
    b._line.fire(0)
    assert seen == [b]


def test_uart_rx_buffer_is_bounded():
    m = hw.fake_machine
    hw.reset_bench()
    u = m.UART(2, 9600, rxbuf=16)
    u.port.feed(b"x" * 40)
    assert u.any() == 16 and u.port.overruns == 24
    assert u.read(4) == b"xxxx" and u.read() == b"x" * 12 and u.read() is None


def test_i2c_missing_device_is_enodev():
    m = hw.fake_machine
    hw.reset_bench()
    with pytest.raises(OSError) as e:
        m.I2C(0).writeto(0x3C, b"\x00")
    assert e.value.errno == 19


def test_irq_state_and_reset():
    m = hw.fake_machine
    bench = hw.reset_bench()
    s = m.disable_irq()
    assert bench.irq_disabled == 1
    m.enable_irq(s)
    assert bench.irq_disabled == 0
    with pytest.raises(m.MachineReset):
        m.reset()


def test_virtual_clock_ticks_wrap_like_the_port():
    c = hw.VirtualClock(start_us=(1 << 30) - 5, step_us=0)
    t0 = c.ticks_us()
    c.advance_us(10)
    t1 = c.ticks_us()
    assert t1 < t0 and c.ticks_diff(t1, t0) == 10
