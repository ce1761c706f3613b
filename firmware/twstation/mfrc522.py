# MFRC522 13.56 MHz reader over SPI: ISO 14443A cards (4-, 7- and 10-byte UIDs), NTAG21x pages
# and the NDEF Text/URI record on them.
#
#   rf = MFRC522(spi, cs_pin, rst_pin=None)    # resets the chip, checks VersionReg, antenna on
#   r = rf.poll()        # station loop: one step of a small state machine, never waits
#   r == 1 TAG:          rf.uid (bytes), rf.sak, rf.atqa, rf.ndef_kind, rf.value (bytes or None)
#   r == 2 MULTIPLE:     more than one tag in the field (nothing is picked)
#   r == 4 GONE:         the tag reported last has left the field
#   r == 3 ERROR:        rf.error is 1 timeout / 2 CRC / 3 protocol / 4 chip (see _ERR_* below)
#   r == 0:              nothing new
# The numbers are private constants (inlined, no RAM); station.py compares with the same numbers
# and tests/firmware/test_mfrc522.py pins them.
#
# One scan (every scan_ms): WUPA -> ATQA, then per cascade level ANTICOLLISION (NVB 0x20) ->
# UID CLn + BCC and SELECT -> SAK, then for an NTAG (SAK 0x00) READ from page 3 (capability
# container + NDEF TLV) four pages at a time, then HLTA. Each poll() does at most one of those
# steps: it starts a command, or reads the chip's IRQ flags to see whether the last one is done
# (the chip's timer ends a command nobody answers). A tag is reported once per presentation; it
# is GONE after _GONE_AFTER scans without an answer. A collision anywhere gives MULTIPLE, never
# one of the UIDs. After MULTIPLE or an error the field is switched off for 5 ms so every card
# restarts from IDLE. CRC_A is computed here (crc_a) rather than by the chip's coprocessor;
# twstation.rfdiag cross-checks the two (technician tool). init()'s reset and register set-up
# run at boot only: they are in the cold twstation.drvwork.
from micropython import const

from twproto.port import ticks_add, ticks_diff, ticks_ms
from twstation.ndef import find_message, parse_record, value

# registers
_CommandReg = const(0x01)
_ComIrqReg = const(0x04)
_ErrorReg = const(0x06)
_FIFODataReg = const(0x09)
_FIFOLevelReg = const(0x0A)
_ControlReg = const(0x0C)
_BitFramingReg = const(0x0D)
_TxControlReg = const(0x14)
# commands
_IDLE = const(0x00)
_TRANSMIT = const(0x04)
_TRANSCEIVE = const(0x0C)
# PICC commands
_WUPA = const(0x52)
_SEL_CL1 = const(0x93)
_HLTA = const(0x50)
_READ = const(0x30)

# poll() results
_NONE = const(0)
_TAG = const(1)
_MULTIPLE = const(2)
_ERROR = const(3)
_GONE = const(4)
# error codes (rf.error after ERROR)
_ERR_TIMEOUT = const(1)  # a card stopped answering in the middle of a scan
_ERR_CRC = const(2)
_ERR_PROTOCOL = const(3)  # parity, framing, BCC, wrong length, FIFO overflow
_ERR_CHIP = const(4)  # the MFRC522 itself did not finish a command (SPI or power fault)


# twstation.ndef's record kinds (equal to the protocol's TAG_NDEF_TEXT / TAG_NDEF_URI; a test
# checks these copies)
_KIND_NONE = const(0)
_KIND_TEXT = const(1)
_KIND_URI = const(2)
_KIND_BAD = const(4)

_ST_IDLE = const(0)
_ST_WUPA = const(1)
_ST_ANTICOLL = const(2)
_ST_SELECT = const(3)
_ST_READ = const(4)
_ST_HALT = const(5)
_ST_RF_OFF = const(6)

_OK = const(0)
_BUSY = const(1)
_NOANS = const(2)
_COLL = const(3)
_BAD = const(4)
_DEAD = const(5)

_CHIP_MS = const(30)  # the timer ends every command after 5 ms; 30 ms means the chip is stuck
_RF_OFF_MS = const(5)
_RF_GUARD_MS = const(5)
_MEM_MAX = const(144)  # CC + up to 140 bytes of data area read (9 READs of 16 bytes)
_GONE_AFTER = const(2)  # scans without an answer before the reported tag is GONE


def crc_a(buf, n, start=0):
    """ISO/IEC 14443-3 CRC_A of buf[start:start+n] (x^16+x^12+x^5+1 reflected, preset 0x6363).

    Sent low byte first. Over a frame that already ends with its CRC the result is 0.
    """
    crc = 0x6363
    for i in range(start, start + n):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0x8408
            else:
                crc >>= 1
    return crc


class MFRC522:
    # The buffers and counters are allocated by twstation.drvwork.mfrc522() (boot only, code that
    # then leaves the heap); declared here for mypy (the compiler emits nothing for these).
    # Private attribute names reuse names the app already interns (firmware/MEMORY.md):
    # _w the 2-byte register buffer; _io the SPI transfer buffer (address byte + 64 FIFO bytes
    # + end marker: a frame to send is built in place at io[1:], no separate TX buffer, no
    # copy); _rx the bytes received; _mem the tag memory read (_MEM_MAX), _n bytes of it read
    # (the next READ is page 3 + _n/4); _buf the UID being selected: each cascade level's 4
    # bytes (CLn) land at _end, a cascade tag 0x88 is then shifted out (max 10 bytes: 3 + 3 + 4);
    # _present the UID of the tag reported and still in the field; _s the scan state (_ST_*);
    # _i scans without an answer while a tag is present; _hold the last result while it was
    # MULTIPLE or ERROR (a MULTIPLE is reported once); _over() how the running command stands
    # (_OK, _BUSY, ...).
    _w: bytearray
    _io: bytearray
    _rx: bytearray
    _mem: bytearray
    _buf: bytearray
    _n: int
    _end: int
    _present: bytes
    _i: int
    _hold: int
    uid: bytes
    sak: int
    atqa: int
    ndef_kind: int
    error: int
    scans: int
    tags: int
    multiples: int
    errors: int
    version: int

    def __init__(self, spi, cs, rst=None, scan_ms=100):
        self._spi = spi
        self._cs = cs
        self._rst = rst
        self.scan_ms = scan_ms
        self.init(1)

    # -- register access -------------------------------------------------------------------------
    def _wreg(self, n, val):  # register n := val
        b = self._w
        b[0] = (n << 1) & 0x7E
        b[1] = val
        self._cs.value(0)
        self._spi.write(b)
        self._cs.value(1)

    def _rreg(self, n):  # register n's value
        b = self._w
        b[0] = 0x80 | (n << 1)
        b[1] = 0
        self._cs.value(0)
        self._spi.write_readinto(b, b)
        self._cs.value(1)
        return b[1]

    # -- chip control ----------------------------------------------------------------------------
    def init(self, n=0):
        """Reset, check the chip is there, set the timer (5 ms reply timeout), antenna on; n=1
        (the constructor): allocate the buffers and zero the counters first. Boot and self-test
        only: the code lives in the cold twstation.drvwork (forgotten after the boot and after
        each command)."""
        from twstation import drvwork

        drvwork.mfrc522(self, n)
        self._next = ticks_add(ticks_ms(), _RF_GUARD_MS)

    def antenna(self, on):
        """Field on (TX1 and TX2 drivers) or off (every card in the field loses power)."""
        v = self._rreg(_TxControlReg)
        if on:
            if v & 0x03 != 0x03:
                self._wreg(_TxControlReg, v | 0x03)
        else:
            self._wreg(_TxControlReg, v & 0xFC)

    def _start(self, n, st, crc=1, b=0):  # b: valid bits of the last byte (0: all 8)
        """Send the frame built at io[1:1+n] (with its CRC_A appended when crc) and enter state
        st. HLTA is only transmitted (a halted card does not answer); the rest is transceived."""
        io = self._io
        if crc:
            c = crc_a(io, n, 1)
            io[n + 1] = c & 0xFF
            io[n + 2] = c >> 8
            n += 2
        self._wreg(_CommandReg, _IDLE)
        self._wreg(_ComIrqReg, 0x7F)  # clear every IRQ flag
        self._wreg(_FIFOLevelReg, 0x80)  # flush the FIFO
        io[0] = (_FIFODataReg << 1) & 0x7E  # write the frame into the FIFO
        self._cs.value(0)
        self._spi.write(memoryview(io)[: n + 1])
        self._cs.value(1)
        self._wreg(_BitFramingReg, b)
        if st == _ST_HALT:
            self._wreg(_CommandReg, _TRANSMIT)
        else:
            self._wreg(_CommandReg, _TRANSCEIVE)
            self._wreg(_BitFramingReg, 0x80 | b)  # StartSend
        self._t0 = ticks_ms()
        self._s = st
        return _NONE

    def _over(self):
        irq = self._rreg(_ComIrqReg)
        if irq == 0xFF:
            return _DEAD  # MISO stuck high: no chip answering
        if not irq & 0x32:  # neither RxIRq, IdleIRq nor ErrIRq
            if irq & 0x01:  # TimerIRq: nobody answered
                self._wreg(_CommandReg, _IDLE)
                return _NOANS
            if ticks_diff(ticks_ms(), self._t0) > _CHIP_MS:
                return _DEAD
            return _BUSY
        err = self._rreg(_ErrorReg)
        self._wreg(_BitFramingReg, 0)
        self._wreg(_CommandReg, _IDLE)
        if err & 0x08:
            return _COLL
        if err & 0x13:  # BufferOvfl, ParityErr, ProtocolErr
            return _BAD
        n = self._rreg(_FIFOLevelReg) & 0x7F
        if n > 64:
            return _BAD
        nak = n == 1 and self._rreg(_ControlReg) & 0x07 == 4  # 4-bit NAK (no such page)
        # read n FIFO bytes: n address bytes out, the data comes back one byte later
        io = self._io
        for i in range(n):
            io[i] = 0x80 | (_FIFODataReg << 1)
        io[n] = 0
        mv = memoryview(io)[: n + 1]
        self._cs.value(0)
        self._spi.write_readinto(mv, mv)
        self._cs.value(1)
        self._rx[:n] = io[1 : n + 1]
        self._len = -1 if nak else n
        return _OK

    # -- the scan state machine ------------------------------------------------------------------
    def poll(self):
        st = self._s
        io = self._io
        if st == _ST_IDLE or st == _ST_RF_OFF:
            if ticks_diff(ticks_ms(), self._next) < 0:
                return _NONE
            if st == _ST_RF_OFF:
                self.antenna(1)
                self._s = _ST_IDLE
                self._next = ticks_add(ticks_ms(), _RF_GUARD_MS)
                return _NONE
            self.scans += 1
            io[1] = _WUPA
            return self._start(1, _ST_WUPA, 0, 7)  # short frame: 7 bits
        if st == _ST_HALT:
            irq = self._rreg(_ComIrqReg)
            if irq & 0x10 or ticks_diff(ticks_ms(), self._t0) > _CHIP_MS:
                self._wreg(_CommandReg, _IDLE)
                self._s = _ST_IDLE
            return _NONE
        r = self._over()
        if r == _BUSY:
            return _NONE
        if r == _DEAD:
            return self._fail(_ERR_CHIP)
        if r == _COLL:
            return self._fail(0)
        if st == _ST_WUPA:
            if r == _NOANS:  # no card: the present one may have left
                self._s = _ST_IDLE
                self._next = ticks_add(ticks_ms(), self.scan_ms)
                self._hold = _NONE
                if self._present:
                    self._i += 1
                    if self._i >= _GONE_AFTER:
                        self._present = b""
                        self._i = 0
                        return _GONE
                return _NONE
            if r != _OK or self._len != 2:
                return self._fail(_ERR_PROTOCOL)
            self.atqa = self._rx[0] | (self._rx[1] << 8)
            self._end = 0
            io[1] = _SEL_CL1  # ANTICOLLISION, cascade level 1
            io[2] = 0x20
            return self._start(2, _ST_ANTICOLL, 0)
        if r == _NOANS:
            return self._fail(_ERR_TIMEOUT)
        if r != _OK:
            return self._fail(_ERR_PROTOCOL)
        rx = self._rx
        n = self._len
        if st == _ST_ANTICOLL:
            if n != 5 or rx[0] ^ rx[1] ^ rx[2] ^ rx[3] != rx[4]:
                return self._fail(_ERR_PROTOCOL)
            u = self._buf
            k = self._end
            io[1] = _SEL_CL1 + 2 * (k // 3)  # SELECT with CLn + BCC (cascade level k // 3)
            io[2] = 0x70
            for i in range(5):
                io[3 + i] = rx[i]
                if i < 4:
                    u[k + i] = rx[i]  # CLn: kept until SELECT says whether it is complete
            return self._start(7, _ST_SELECT)
        if st == _ST_SELECT:
            if n != 3:
                return self._fail(_ERR_PROTOCOL)
            if crc_a(rx, 3):
                return self._fail(_ERR_CRC)
            sak = rx[0]
            u = self._buf
            k = self._end
            if sak & 0x04:  # UID not complete: CLn holds the cascade tag 0x88 + 3 UID bytes
                if u[k] != 0x88 or k >= 6:
                    return self._fail(_ERR_PROTOCOL)
                for i in range(3):
                    u[k + i] = u[k + 1 + i]
                k += 3
                self._end = k
                io[1] = _SEL_CL1 + 2 * (k // 3)  # ANTICOLLISION, next cascade level
                io[2] = 0x20
                return self._start(2, _ST_ANTICOLL, 0)
            n = k + 4
            self._end = n
            self.sak = sak
            self._i = 0
            if u[:n] == self._present:
                return self._done(-1)  # still the tag reported already
            if sak == 0x00:  # Type 2 (Ultralight / NTAG): read CC and the data area
                self._n = 0
                io[1] = _READ
                io[2] = 3
                return self._start(2, _ST_READ)
            return self._done(_KIND_NONE)
        # _ST_READ
        if n == -1:  # 4-bit NAK: no such page / not a Type 2 tag
            return self._done(_KIND_NONE)
        if n != 18:
            return self._fail(_ERR_PROTOCOL)
        if crc_a(rx, 18):
            return self._fail(_ERR_CRC)
        mem = self._mem
        have = self._n
        mem[have : have + 16] = rx[:16]
        have += 16
        self._n = have
        if mem[0] != 0xE1:  # capability container: NDEF magic number
            return self._done(_KIND_NONE)
        area = 4 + mem[2] * 8  # CC byte 2: data area size / 8, after the 4 CC bytes
        status, off, length = find_message(mem, 4, min(have, area))
        # ndef statuses: 0 found, 1 absent, 2 need more bytes, 3 bad
        if status == 2 and have < area and have + 16 <= _MEM_MAX:
            io[1] = _READ
            io[2] = 3 + have // 4  # the next 4 pages
            return self._start(2, _ST_READ)
        if status == 0:
            kind, voff, vlen, prefix = parse_record(mem, off, length)
            self.value = value(mem, kind, voff, vlen, prefix)
            return self._done(kind)
        return self._done(_KIND_BAD if status != 1 else _KIND_NONE)

    def _done(self, kind):
        # The scan is over: report the tag (kind >= 0) or not (-1: the tag reported already),
        # then send HLTA and wait scan_ms for the next scan.
        r = _NONE
        if kind >= 0:
            n = self._end
            if kind != _KIND_TEXT and kind != _KIND_URI:
                self.value = None
            self.ndef_kind = kind
            self.uid = self._present = bytes(self._buf[:n])
            self.tags += 1
            r = _TAG
        io = self._io
        io[1] = _HLTA
        io[2] = 0
        self._start(2, _ST_HALT)
        self._next = ticks_add(ticks_ms(), self.scan_ms)
        self._hold = _NONE  # a clean scan ends a MULTIPLE episode
        return r

    def _fail(self, code):
        # A collision (err 0: MULTIPLE) or an error: field off for _RF_OFF_MS so every card
        # restarts from IDLE.
        self._wreg(_CommandReg, _IDLE)
        self.antenna(0)
        self._s = _ST_RF_OFF
        self._next = ticks_add(ticks_ms(), _RF_OFF_MS)
        if code:
            self.errors += 1
            self.error = code
            self._hold = _ERROR
            return _ERROR
        self._present = b""
        self.multiples += 1
        if self._hold == _MULTIPLE:
            return _NONE  # still the same two tags: reported already
        self._hold = _MULTIPLE
        return _MULTIPLE
