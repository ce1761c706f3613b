# CPython stand-ins for what MicroPython has built in. Imported by twproto.port (the one gate
# between the platforms) and twproto.crc on CPython only: on the station this code would be
# loaded into the heap for nothing (an .mpy loads every function it contains, run or not).
import time as _time
from binascii import crc_hqx  # type: ignore[attr-defined]  # C, CRC-16/CCITT-FALSE
# C; twproto.mac's constant-time compare on CPython
from hmac import compare_digest as _compare  # type: ignore[import-not-found]  # noqa: F401

_TICKS_PERIOD = 1 << 30  # same semantics as MicroPython: 30-bit wrapping like the ESP32 port
_TICKS_HALF = _TICKS_PERIOD >> 1
_mono_ns = _time.monotonic_ns  # type: ignore[attr-defined]


def const(x):
    return x


def ticks_ms():
    return (_mono_ns() // 1_000_000) & (_TICKS_PERIOD - 1)


def ticks_us():
    return (_mono_ns() // 1_000) & (_TICKS_PERIOD - 1)


def ticks_add(ticks, delta):
    # As MicroPython: |delta| < half a period, so ticks_diff(ticks_add(t, d), t) == d always.
    if not -_TICKS_HALF < delta < _TICKS_HALF:
        raise OverflowError("ticks interval overflow")
    return (ticks + delta) & (_TICKS_PERIOD - 1)


def ticks_diff(end, start):
    return ((end - start + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF


def sleep_ms(ms):
    _time.sleep(ms / 1000)


def sleep_us(us):
    _time.sleep(us / 1_000_000)


def crc16(data, start=0, end=None, crc=0xFFFF):
    """twproto.crc.crc16 at C speed (binascii.crc_hqx is the same CRC-16/CCITT-FALSE)."""
    if end is None or end < 0:
        end = len(data)
    if start == 0 and end == len(data):
        return crc_hqx(data, crc)
    return crc_hqx(memoryview(data)[start:end], crc)
