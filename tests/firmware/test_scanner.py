"""GM65-class scanner driver against the UART scanner model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagweigh import hw

hw.install_fakes()

import twstation.scanner as scm  # noqa: E402
from twstation import gm65  # noqa: E402
from tagweigh.hw.fake_machine import UART  # noqa: E402
from tagweigh.hw.scanner import ACK, ScannerModel, command, crc_xmodem  # noqa: E402
from twstation.errors import ConfigError, DriverTimeout  # noqa: E402


@pytest.fixture
def clock():
    hw.reset_bench()
    c = hw.VirtualClock(step_us=1)
    undo = c.bind(scm, gm65)
    yield c
    undo()


@pytest.fixture
def rig(clock):
    model = ScannerModel(baudrate=9600, clock=clock)
    drv = scm.Scanner(model.uart, terminator=b"\r", max_line=32)
    return model, drv


def drain(drv, n=20):
    out = []
    for _ in range(n):
        line = drv.poll()
        if line is not None:
            out.append(line)
    return out


def test_manual_examples_crc():
    # The worked examples of the GM65 manual (write 0x3E at 0x000A, read 0x000A, save, ACK).
    assert command(0x08, 0x000A, 0x3E) == bytes.fromhex("7E000801000A3E4CCF")
    assert command(0x07, 0x000A, 0x01) == bytes.fromhex("7E000701000A01EE8A")
    assert command(0x09, 0x0000, 0x00) == bytes.fromhex("7E000901000000DEC8")
    buf = bytearray(ACK)
    assert scm.crc_gm65(buf, 2, 3) == 0x3331 == crc_xmodem(ACK[2:5])


def test_scan_lines(rig):
    model, drv = rig
    assert drv.poll() is None
    assert model.scan("ABC123")
    model.scan("https://trace.example/t/9")
    assert drain(drv) == [b"ABC123", b"https://trace.example/t/9"]
    assert drv.lines == 2 and drv.garbage == 0


def test_utf8_text_is_a_line(rig):
    model, drv = rig
    model.scan("Kalimbi-é-✓")
    assert drain(drv) == ["Kalimbi-é-✓".encode()]


def test_crlf_terminator(clock):
    model = ScannerModel(terminator=b"\r\n", clock=clock)
    drv = scm.Scanner(model.uart, terminator=b"\r\n")
    model.scan("X1")
    model.scan("Y2")
    assert drain(drv) == [b"X1", b"Y2"]


def test_overlong_line_dropped_and_counted(rig):
    model, drv = rig
    model.scan("Z" * 33)
    model.scan("OK")
    assert drain(drv) == [b"OK"]
    assert drv.overlong == 1


def test_garbage_dropped_and_counted(rig, clock):
    model, drv = rig
    model.send_garbage(b"\x00\x13\xff\xfe\r")  # control bytes and invalid UTF-8
    model.send_garbage(b"AB\x07C\r")
    model.send_garbage(b"\xc3(\r")  # bad continuation byte
    model.scan("GOOD")
    assert drain(drv) == [b"GOOD"]
    assert drv.garbage == 3


def test_unterminated_partial_line_times_out(rig, clock):
    model, drv = rig
    model.send_garbage(b"HALF")
    assert drv.poll() is None
    clock.advance_ms(400)
    assert drv.poll() is None
    assert drv.garbage == 1
    model.scan("NEXT")
    assert drain(drv) == [b"NEXT"]  # the partial line did not stick to the next one


def test_baud_mismatch_gives_garbage_not_lines(clock):
    model = ScannerModel(baudrate=9600, clock=clock)
    uart = UART(model.uart.id, 115200)  # the board configured the wrong rate
    drv = scm.Scanner(uart)
    model.scan("ABC123456")
    assert drain(drv) == []
    clock.advance_ms(400)
    assert drain(drv) == []
    assert drv.garbage >= 1 or drv.overlong >= 1


def test_bounded_work_per_poll(rig):
    model, drv = rig
    model.uart.port.rxbuf = 4096
    model.send_garbage(b"A" * 1000)
    drv.poll()
    assert model.uart.any() == 1000 - 64  # one 64-byte chunk per call


def test_setup_commands_exact_bytes_and_ack(rig):
    model, drv = rig
    gm65.set_mode(drv, gm65.MODE_COMMAND)
    assert bytes(model.uart.port.tx_log) == bytes.fromhex("7E0008010000D5") + crc_xmodem(
        bytes.fromhex("08010000D5")
    ).to_bytes(2, "big")
    assert model.mode == 1 and drv.replies == 1
    gm65.set_same_code_delay(drv, 1500)
    assert model.zones[0x13] == 0x80 | 15
    assert gm65.read_zone(drv, 0x0013) == 0x8F
    gm65.save(drv)
    assert model.saved[0] == 0xD5


def test_command_mode_trigger(rig):
    model, drv = rig
    gm65.set_mode(drv, gm65.MODE_COMMAND)
    assert model.scan("HELD") is False
    assert drain(drv) == []
    gm65.trigger(drv)
    assert drain(drv) == [b"HELD"]  # the module's ACK was consumed, not taken for a line
    assert drv.replies == 2 and drv.garbage == 0


def test_same_code_delay_in_model(rig, clock):
    model, drv = rig
    gm65.set_same_code_delay(drv, 1000)
    assert model.scan("A1")
    assert not model.scan("A1")
    clock.advance_ms(1100)
    assert model.scan("A1")


def test_no_module_setup_times_out(clock):
    uart = UART("nobody", 9600)
    drv = scm.Scanner(uart)
    t0 = clock.now_us
    with pytest.raises(DriverTimeout):
        gm65.set_mode(drv, gm65.MODE_CONTINUOUS)
    assert clock.now_us - t0 < 600_000


def test_config_validation():
    uart = UART("cfg", 9600)
    with pytest.raises(ConfigError):
        scm.Scanner(uart, terminator=b"")
    with pytest.raises(ConfigError):
        scm.Scanner(uart, max_line=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_categories=("Cc", "Cs")), min_size=1, max_size=40), max_size=5),
       st.integers(1, 7))  # fmt: skip
def test_lines_survive_any_chunking(texts, chunk):
    hw.reset_bench()
    uart = UART("chunky", 9600)
    drv = scm.Scanner(uart, max_line=128)
    stream = b"".join(t.encode() + b"\r" for t in texts)
    got = []
    for i in range(0, len(stream), chunk):
        uart.port.feed(stream[i : i + chunk])
        line = drv.poll()
        while line is not None:
            got.append(line)
            line = drv.poll()
    got += drain(drv)
    assert got == [t.encode() for t in texts]


def test_malformed_utf8_lines_are_garbage_crlf_too(clock):
    # one validator for the station (twproto.tags.utf8_valid): overlong forms, surrogates and
    # truncated sequences are refused, with either terminator
    for term in (b"\r", b"\r\n"):
        uart = UART("u8" + term.hex(), 9600)
        drv = scm.Scanner(uart, terminator=term)
        for bad in (b"\xc0\xafA", b"\xe0\x80\xafB", b"\xed\xa0\x80C", b"D\xe2\x82"):
            uart.port.feed(bad + term)
        uart.port.feed("é✓".encode() + term)
        assert drain(drv) == ["é✓".encode()]
        assert drv.garbage == 4 and drv.lines == 1
