# The one gate between MicroPython and CPython for the shared core and the firmware.
# Everything else imports time, hashing and const from here, never probes the platform itself.
try:
    from micropython import const  # type: ignore[import-not-found]
except ImportError:  # CPython

    def const(x):  # type: ignore[no-redef]
        return x


import time as _time

try:
    ticks_ms = _time.ticks_ms  # type: ignore[attr-defined]
    ticks_us = _time.ticks_us  # type: ignore[attr-defined]
    ticks_add = _time.ticks_add  # type: ignore[attr-defined]
    ticks_diff = _time.ticks_diff  # type: ignore[attr-defined]
    sleep_ms = _time.sleep_ms  # type: ignore[attr-defined]
    sleep_us = _time.sleep_us  # type: ignore[attr-defined]
    MICROPYTHON = True
    crc_hqx = None  # no binascii.crc_hqx: twproto.crc uses its table
except AttributeError:  # CPython: same semantics, 30-bit wrapping like the ESP32 port
    MICROPYTHON = False
    from binascii import crc_hqx  # type: ignore[attr-defined,no-redef]  # C, CRC-16/CCITT-FALSE
    _TICKS_PERIOD = 1 << 30
    _TICKS_HALF = _TICKS_PERIOD >> 1
    _mono_ns = _time.monotonic_ns

    def ticks_ms():  # type: ignore[misc]
        return (_mono_ns() // 1_000_000) & (_TICKS_PERIOD - 1)

    def ticks_us():  # type: ignore[misc]
        return (_mono_ns() // 1_000) & (_TICKS_PERIOD - 1)

    def ticks_add(ticks, delta):  # type: ignore[misc]
        # As MicroPython: |delta| < half a period, so ticks_diff(ticks_add(t, d), t) == d always.
        if not -_TICKS_HALF < delta < _TICKS_HALF:
            raise OverflowError("ticks interval overflow")
        return (ticks + delta) & (_TICKS_PERIOD - 1)

    def ticks_diff(end, start):  # type: ignore[misc]
        return ((end - start + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF

    def sleep_ms(ms):  # type: ignore[misc]
        _time.sleep(ms / 1000)

    def sleep_us(us):  # type: ignore[misc]
        _time.sleep(us / 1_000_000)
