# MFRC522 set-up and diagnostics: init() (reset, chip check, register set-up: MFRC522.init at
# boot and in the self-test, forgotten afterwards) and the technician's CRC check (REPL, tests).
# None of it stays in the station's heap while it runs.
#
#   from twstation.rfdiag import crc_self_test
#   crc_self_test(rf)    # True, or DriverError: the chip's CRC coprocessor disagrees with crc_a()
from micropython import const

from twproto.port import sleep_ms, ticks_diff, ticks_ms
from twstation.errors import DriverError
from twstation.mfrc522 import crc_a

_CommandReg = const(0x01)
_DivIrqReg = const(0x05)
_FIFODataReg = const(0x09)
_FIFOLevelReg = const(0x0A)
_CRCResultRegH = const(0x21)
_CRCResultRegL = const(0x22)
_VersionReg = const(0x37)
_MEM_MAX = const(144)  # mfrc522._MEM_MAX: CC + up to 140 bytes of data area
_IDLE = const(0x00)
_CALC_CRC = const(0x03)
_SOFT_RESET = const(0x0F)

# VersionReg values accepted: FM17522 clone, v0.0, v1.0, v2.0, clones
_VERSIONS = const((0x88, 0x90, 0x91, 0x92, 0x12, 0xB2))

# init()'s register set-up, (register, value) pairs:
#   TModeReg 0x2A := 0x80       TAuto: the timer starts at the end of each transmission
#   TPrescalerReg 0x2B := 0xA9  (2*169+1)/13.56 MHz = 25 us per tick
#   TReloadRegH/L 0x2C/0x2D := 0x00C8: 200 ticks = 5 ms reply timeout
#   TxASKReg 0x15 := 0x40       force 100 % ASK (ISO 14443A)
#   ModeReg 0x11 := 0x3D        CRC preset 0x6363
#   RFCfgReg 0x26 := 0x70       receiver gain 48 dB
_SETUP = b"\x2a\x80\x2b\xa9\x2c\x00\x2d\xc8\x15\x40\x11\x3d\x26\x70"


def init(rf, n):
    """MFRC522.init's work: (n=1, from the constructor: allocate the buffers and zero the
    counters, see MFRC522's comments), reset, check the chip is there, set the timer, antenna on,
    scan state idle."""
    if n:
        rf._w = bytearray(2)
        rf._io = bytearray(66)
        rf._rx = bytearray(64)
        rf._mem = bytearray(_MEM_MAX)
        rf._n = 0
        rf._buf = bytearray(10)
        rf._end = 0
        rf._present = b""
        rf.uid = b""
        rf.sak = 0
        rf.atqa = 0
        rf.ndef_kind = 0  # _KIND_NONE
        rf.value = None
        rf.error = 0
        rf.scans = 0
        rf.tags = 0
        rf.multiples = 0
        rf.errors = 0
        rf._cs.value(1)
    rst = rf._rst
    if rst is not None:
        rst.value(0)
        sleep_ms(1)
        rst.value(1)
        sleep_ms(1)
    rf._wreg(_CommandReg, _SOFT_RESET)
    start = ticks_ms()
    while rf._rreg(_CommandReg) & 0x10:  # PowerDown bit: oscillator still starting
        if ticks_diff(ticks_ms(), start) > 50:
            raise DriverError("mfrc522: soft reset did not finish")
        sleep_ms(1)
    v = rf._rreg(_VersionReg)
    if v not in _VERSIONS:
        raise DriverError("mfrc522: not found (VersionReg=0x%02x)" % v)
    rf.version = v
    for i in range(0, len(_SETUP), 2):
        rf._wreg(_SETUP[i], _SETUP[i + 1])
    rf.antenna(1)
    rf._s = 0  # _ST_IDLE
    rf._i = 0
    rf._hold = 0  # _NONE


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
