# MFRC522 diagnostics: the technician's CRC check (REPL, tests). The station does not load this
# module (MFRC522.init's reset and set-up is in the cold twstation.drvwork).
#
#   from twstation.rfdiag import crc_self_test
#   crc_self_test(rf)    # True, or DriverError: the chip's CRC coprocessor disagrees with crc_a()
from micropython import const

from twproto.port import ticks_diff, ticks_ms
from twstation.errors import DriverError
from twstation.mfrc522 import crc_a

_CommandReg = const(0x01)
_DivIrqReg = const(0x05)
_FIFODataReg = const(0x09)
_FIFOLevelReg = const(0x0A)
_CRCResultRegH = const(0x21)
_CRCResultRegL = const(0x22)
_IDLE = const(0x00)
_CALC_CRC = const(0x03)


def crc_self_test(rf):
    """Compare the chip's CRC coprocessor with crc_a() over 8 bytes. Blocking (< 5 ms)."""
    data = b"12345678"
    rf._wreg(_CommandReg, _IDLE)
    rf._wreg(_DivIrqReg, 0x04)  # clear CRCIRq
    rf._wreg(_FIFOLevelReg, 0x80)  # flush the FIFO
    for b in data:
        rf._wreg(_FIFODataReg, b)  # one FIFO byte per register write
    rf._wreg(_CommandReg, _CALC_CRC)
    start = ticks_ms()
    while not rf._rreg(_DivIrqReg) & 0x04:
        if ticks_diff(ticks_ms(), start) > 5:
            raise DriverError("mfrc522: CRC coprocessor did not finish")
    rf._wreg(_CommandReg, _IDLE)
    got = rf._rreg(_CRCResultRegL) | (rf._rreg(_CRCResultRegH) << 8)
    if got != crc_a(data, 8):
        raise DriverError("mfrc522: CRC coprocessor mismatch")
    return True
