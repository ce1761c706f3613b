# CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0; check("123456789") = 0x29B1.
# CPython has it in C (binascii.crc_hqx: twproto.cpython.crc16); MicroPython has no crc_hqx, so a
# 256-entry table is used: an array('H') of 512 bytes (a tuple or list of ints would take twice
# that, and building it from a list left garbage behind).
from array import array

from twproto.port import MICROPYTHON

TABLE = array("H", bytes(512))


def _fill(t):
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t[i] = c & 0xFFFF


_fill(TABLE)
del _fill  # run once: its code is not kept in the heap


def crc16_table(data, start=0, end=None, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of data[start:end] (end None or -1 = to the end), continuing from crc.
    Table-driven and allocation-free (indexes, no slicing)."""
    t = TABLE
    if end is None or end < 0:
        end = len(data)
    for i in range(start, end):
        crc = ((crc << 8) & 0xFF00) ^ t[(crc >> 8) ^ data[i]]
    return crc


if MICROPYTHON:
    crc16 = crc16_table
else:  # the same function in C
    from twproto.cpython import crc16  # type: ignore[assignment]
