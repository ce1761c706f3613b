"""MFRC522 reader and ISO 14443A cards, modelled at the register / FIFO / air-frame level.

The chip (NXP MFRC522 datasheet):
- SPI: first byte = address (bit 7 = read, bits 6-1 = register, bit 0 = 0). Reading: each
  further MOSI byte is the next address to read and MISO returns the previous address's value
  (the first MISO byte is undefined, the last MOSI byte is 0x00). Writing: every further MOSI
  byte is written to the same address (so FIFO writes stream).
- 64-byte FIFO (overflow sets BufferOvfl), FIFOLevelReg (bit 7 flushes), ComIrqReg/DivIrqReg
  with Set1/Set2 write semantics, ErrorReg cleared when a command starts, CollReg with CollPos,
  ControlReg RxLastBits, BitFramingReg TxLastBits and StartSend, TxControlReg antenna bits.
- Commands: Idle, SoftReset, CalcCRC (CRC_A with the ModeReg preset into CRCResultReg, DivIrq
  CRCIRq), Transmit, Transceive (starts on StartSend). Others raise NotImplementedError so a
  driver relying on them is caught in tests. TxCRCEn/RxCRCEn append/check the CRC in hardware.
- The timer: with TAuto it starts at the end of each transmission and sets TimerIRq after
  (2*TPrescaler+1)*(TReload+1)/13.56 MHz when nobody answers.
- Timing: a frame takes ~9.44 us per bit on air (106 kbit/s, parity included) plus ~90 us of
  card response time; results appear (TxIRq, then RxIRq or TimerIRq) only when the clock says so.
- Switching the antenna off removes power from every card (they reset to IDLE).

Cards (ISO/IEC 14443-3 type A states IDLE, READY, ACTIVE, HALT): REQA/WUPA -> ATQA,
ANTICOLLISION (NVB 0x20) -> UID CLn + BCC per cascade level (4/7/10-byte UIDs), SELECT
(NVB 0x70 + CRC_A) -> SAK, HLTA, and for Type 2 tags (NTAG21x) READ (16 bytes, rollover) and
GET_VERSION. Several cards answering at once superpose bit by bit: the first differing bit is a
collision (CollErr, CollPos). Bit-oriented anticollision with a partial NVB is not modelled (a
card treats it as an unknown command). Card faults: ``corrupt_next(n)`` flips a bit in the next n
answers; ``in_field = False`` takes a card out of range.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

from tagweigh.hw import fake_machine

# registers
CommandReg, ComIEnReg, DivIEnReg, ComIrqReg, DivIrqReg, ErrorReg = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
Status1Reg, Status2Reg, FIFODataReg, FIFOLevelReg, WaterLevelReg = 0x07, 0x08, 0x09, 0x0A, 0x0B
ControlReg, BitFramingReg, CollReg, ModeReg, TxModeReg, RxModeReg = 0x0C, 0x0D, 0x0E, 0x11, 0x12, 0x13
TxControlReg, TxASKReg, CRCResultRegH, CRCResultRegL = 0x14, 0x15, 0x21, 0x22
TModeReg, TPrescalerReg, TReloadRegH, TReloadRegL, VersionReg = 0x2A, 0x2B, 0x2C, 0x2D, 0x37
# commands
IDLE, MEM, RANDOM_ID, CALC_CRC, TRANSMIT, NO_CHANGE, RECEIVE = 0x0, 0x1, 0x2, 0x3, 0x4, 0x7, 0x8
TRANSCEIVE, MF_AUTHENT, SOFT_RESET = 0xC, 0xE, 0xF

# reset values from the datasheet's register overview (registers not listed reset to 0)
RESET_VALUES = {
    CommandReg: 0x20, ComIEnReg: 0x80, ComIrqReg: 0x14, Status1Reg: 0x21, WaterLevelReg: 0x08,
    ControlReg: 0x10, CollReg: 0xA0, ModeReg: 0x3F, TxControlReg: 0x80, 0x16: 0x10, 0x17: 0x84,
    0x18: 0x84, 0x19: 0x4D, 0x1C: 0x62, 0x1F: 0xEB, CRCResultRegH: 0xFF, CRCResultRegL: 0xFF,
    0x24: 0x26, 0x26: 0x48, 0x27: 0x88, 0x28: 0x20, 0x29: 0x20,
}  # fmt: skip

BIT_S = 9.44e-6  # one bit at 106 kbit/s
FDT_S = 90e-6  # card frame delay time (~1172/fc for a bit-oriented answer), rounded
FC = 13.56e6
_PRESETS = (0x0000, 0x6363, 0xA671, 0xFFFF)


def crc_a(data: bytes, preset: int = 0x6363) -> int:
    """CRC_A (ISO/IEC 14443-3): CRC-16 polynomial 0x1021 reflected, given preset, no final XOR."""
    crc = preset
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return crc & 0xFFFF


def with_crc(data: bytes) -> bytes:
    c = crc_a(data)
    return bytes(data) + bytes((c & 0xFF, c >> 8))


# -- NDEF / NTAG memory builders (independent of the firmware parser) ----------------------------

URI_CODES = {
    "http://www.": 0x01, "https://www.": 0x02, "http://": 0x03, "https://": 0x04, "tel:": 0x05,
    "mailto:": 0x06, "urn:": 0x13, "file://": 0x1D, "urn:epc:id:": 0x1E, "urn:nfc:": 0x23,
}  # fmt: skip


def ndef_record(tnf: int, rtype: bytes, payload: bytes, *, first: bool = True, last: bool = True) -> bytes:
    short = len(payload) < 256
    flags = (0x80 if first else 0) | (0x40 if last else 0) | (0x10 if short else 0) | (tnf & 7)
    plen = bytes((len(payload),)) if short else len(payload).to_bytes(4, "big")
    return bytes((flags, len(rtype))) + plen + rtype + payload


def ndef_text(text: str, lang: str = "en") -> bytes:
    """An NDEF message with one well-known Text record (UTF-8)."""
    code = lang.encode("ascii")
    return ndef_record(1, b"T", bytes((len(code),)) + code + text.encode("utf-8"))


def ndef_uri(uri: str) -> bytes:
    """An NDEF message with one well-known URI record, using the longest matching prefix code."""
    best = ""
    for prefix in URI_CODES:
        if uri.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    code = URI_CODES.get(best, 0)
    return ndef_record(1, b"U", bytes((code,)) + uri[len(best) :].encode("utf-8"))


NTAG_TYPES = {  # total pages, CC data-area byte, GET_VERSION storage byte
    "ntag213": (45, 0x12, 0x0F),
    "ntag215": (135, 0x3E, 0x11),
    "ntag216": (231, 0x6D, 0x13),
}


def ntag_memory(uid: bytes, kind: str = "ntag213", ndef_message: bytes | None = b"") -> bytearray:
    """A realistic NTAG21x memory image: UID/BCC pages 0-2, CC on page 3, the NDEF TLV from
    page 4 (``ndef_message=None`` leaves the tag unformatted), config pages at the end."""
    if len(uid) != 7:
        raise ValueError("NTAG21x UIDs are 7 bytes")
    pages, cc_size, _ = NTAG_TYPES[kind]
    mem = bytearray(pages * 4)
    bcc0 = 0x88 ^ uid[0] ^ uid[1] ^ uid[2]
    bcc1 = uid[3] ^ uid[4] ^ uid[5] ^ uid[6]
    mem[0:12] = bytes((uid[0], uid[1], uid[2], bcc0)) + uid[3:7] + bytes((bcc1, 0x48, 0, 0))
    if ndef_message is not None:
        mem[12:16] = bytes((0xE1, 0x10, cc_size, 0x00))
        n = len(ndef_message)
        tlv = bytes((0x03, n)) if n < 0xFF else bytes((0x03, 0xFF, n >> 8, n & 0xFF))
        body = tlv + ndef_message + b"\xFE"
        if len(body) > cc_size * 8:
            raise ValueError("NDEF message too long for %s" % kind)
        mem[16 : 16 + len(body)] = body
    cfg = (pages - 5) * 4  # dynamic lock, CFG0, CFG1, PWD, PACK
    mem[cfg : cfg + 12] = bytes((0, 0, 0, 0xBD, 0x04, 0, 0, 0xFF, 0, 0x05, 0, 0))
    return mem


# -- cards ----------------------------------------------------------------------------------------

_IDLE, _READY, _ACTIVE, _HALT = "IDLE", "READY", "ACTIVE", "HALT"


class Card:
    """An ISO 14443A card. ``pages`` (bytearray, 4 bytes per page) makes it a Type 2 tag."""

    def __init__(self, uid: bytes, *, atqa: int | None = None, sak: int | None = None,
                 pages: bytearray | None = None, version: bytes | None = None):  # fmt: skip
        if len(uid) not in (4, 7, 10):
            raise ValueError("ISO 14443A UIDs are 4, 7 or 10 bytes")
        self.uid = bytes(uid)
        self.pages = pages
        type2 = pages is not None
        self.sak = (0x00 if type2 else 0x08) if sak is None else sak
        default_atqa = {4: 0x0004, 7: 0x0044, 10: 0x0084}[len(uid)]
        self.atqa = default_atqa if atqa is None else atqa
        self.version = version
        self.state = _IDLE
        self.level = 0
        self.in_field = True
        self._from_halt = False
        self._corrupt = 0
        self.answers = 0

    @classmethod
    def ntag(cls, uid: bytes, ndef_message: bytes | None = b"", kind: str = "ntag213") -> "Card":
        storage = NTAG_TYPES[kind][2]
        version = bytes((0x00, 0x04, 0x04, 0x02, 0x01, 0x00, storage, 0x03))
        return cls(uid, pages=ntag_memory(uid, kind, ndef_message), version=version)

    @classmethod
    def classic(cls, uid: bytes) -> "Card":
        return cls(uid, sak=0x08)

    def corrupt_next(self, n: int = 1) -> None:
        self._corrupt += n

    def power_off(self) -> None:
        self.state = _IDLE
        self.level = 0

    def _cascade(self, level: int) -> tuple[bytes, bool]:
        """(CLn 4 bytes, more levels follow) for cascade level 0..2."""
        u = self.uid
        levels = len(u) // 3  # 4 -> 1, 7 -> 2, 10 -> 3
        if level >= levels:
            raise IndexError
        if level == levels - 1:
            return u[3 * level : 3 * level + 4] if level else u[:4], False
        return b"\x88" + u[3 * level : 3 * level + 3], True

    def _error(self) -> None:
        self.state = _HALT if self._from_halt else _IDLE

    def _answer(self, data: bytes, last_bits: int = 0) -> tuple[bytes, int]:
        self.answers += 1
        if self._corrupt:
            self._corrupt -= 1
            data = bytes(data[:-1]) + bytes((data[-1] ^ 0x02,))
        return bytes(data), last_bits

    def receive(self, data: bytes, bits: int) -> tuple[bytes, int] | None:
        """One frame from the reader (``bits`` long). Returns (answer, last_bits) or None."""
        if bits == 7:
            cmd = data[0] & 0x7F
            if (cmd == 0x26 and self.state == _IDLE) or (cmd == 0x52 and self.state in (_IDLE, _HALT)):
                self._from_halt = self.state == _HALT
                self.state, self.level = _READY, 0
                return self._answer(self.atqa.to_bytes(2, "little"))
            if self.state in (_READY, _ACTIVE):
                self._error()
            return None
        if bits % 8 or not data:
            self._error() if self.state in (_READY, _ACTIVE) else None
            return None
        if self.state == _READY:
            return self._ready(data)
        if self.state == _ACTIVE:
            return self._active(data)
        return None

    def _ready(self, data: bytes) -> tuple[bytes, int] | None:
        if len(data) >= 2 and data[0] == 0x93 + 2 * self.level:
            cl, more = self._cascade(self.level)
            bcc = cl[0] ^ cl[1] ^ cl[2] ^ cl[3]
            nvb = data[1]
            if nvb == 0x20 and len(data) == 2:
                return self._answer(cl + bytes((bcc,)))
            if nvb == 0x70 and len(data) == 9 and crc_a(data) == 0:
                if data[2:7] != cl + bytes((bcc,)):
                    return None  # another card is being selected: stay READY, stay silent
                if more:
                    self.level += 1
                    return self._answer(with_crc(bytes((0x04,))))
                self.state = _ACTIVE
                return self._answer(with_crc(bytes((self.sak,))))
        self._error()
        return None

    def _active(self, data: bytes) -> tuple[bytes, int] | None:
        if len(data) < 3 or crc_a(data) != 0:
            self._error()
            return None
        cmd = data[0]
        if cmd == 0x50 and data[1] == 0x00 and len(data) == 4:
            self.state = _HALT
            return None
        if self.pages is None:  # Classic: everything needs authentication first
            return self._answer(bytes((0x04,)), 4)
        npages = len(self.pages) // 4
        if cmd == 0x30 and len(data) == 4:
            page = data[1]
            if page >= npages:
                return self._answer(bytes((0x00,)), 4)  # NAK: invalid argument
            out = bytearray()
            for i in range(4):
                p = (page + i) % npages  # roll over to page 0 past the end
                if p >= npages - 2:
                    out += b"\x00\x00\x00\x00"  # PWD and PACK read as zeros
                else:
                    out += self.pages[4 * p : 4 * p + 4]
            return self._answer(with_crc(bytes(out)))
        if cmd == 0x60 and len(data) == 3 and self.version is not None:
            return self._answer(with_crc(self.version))
        self._error()
        return self._answer(bytes((0x00,)), 4)


# -- the reader chip ------------------------------------------------------------------------------


def _bits_of(data: bytes, last_bits: int) -> list[int]:
    out: list[int] = []
    for i, b in enumerate(data):
        n = last_bits if (i == len(data) - 1 and last_bits) else 8
        out.extend((b >> k) & 1 for k in range(n))
    return out


def _bytes_of(bits: list[int]) -> tuple[bytes, int]:
    out = bytearray()
    for i in range(0, len(bits), 8):
        chunk = bits[i : i + 8]
        out.append(sum(bit << k for k, bit in enumerate(chunk)))
    return bytes(out), len(bits) % 8


_count = 0


def _ident(name: str) -> str:
    global _count
    _count += 1
    return "%s#%d" % (name, _count)


class MFRC522Model:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 spi: fake_machine.SPI | None = None, cs: fake_machine.Pin | None = None,
                 rst: fake_machine.Pin | None = None, version: int = 0x92):  # fmt: skip
        self.clock = clock
        self.version = version
        self.spi = spi if spi is not None else fake_machine.SPI(_ident("mfrc522.spi"))
        self.cs = cs if cs is not None else fake_machine.Pin(_ident("mfrc522.cs"))
        self.rst = rst
        self.spi.bus.attach(self, self.cs)
        if rst is not None:
            rst._line.listeners.append(self._on_rst)
        self.cards: list[Card] = []
        self.frames: deque[tuple[bytes, int]] = deque(maxlen=256)  # (frame, bits) sent on air
        self.transceives = 0
        self.soft_resets = 0
        self._reset_registers()
        self._out = 0

    # -- field ------------------------------------------------------------------------------------
    def add_card(self, card: Card) -> Card:
        card.power_off()
        self.cards.append(card)
        return card

    def remove_card(self, card: Card) -> None:
        self.cards.remove(card)
        card.power_off()

    @property
    def field_on(self) -> bool:
        return bool(self.regs[TxControlReg] & 0x03)

    # -- registers --------------------------------------------------------------------------------
    def _reset_registers(self) -> None:
        self.regs = bytearray(64)
        for reg, value in RESET_VALUES.items():
            self.regs[reg] = value
        self.fifo = bytearray()
        self._pending: dict | None = None
        self._crc_on = False
        self._crc = 0
        for card in getattr(self, "cards", []):
            card.power_off()

    def _in_reset(self) -> bool:
        return self.rst is not None and self.rst._line.driven and self.rst._line.level == 0

    def _on_rst(self, level: int) -> None:
        if level:
            self._reset_registers()  # leaving hard power-down: a full reset

    def read_reg(self, reg: int) -> int:
        self._update()
        if reg == FIFODataReg:
            return self.fifo.pop(0) if self.fifo else 0
        if reg == FIFOLevelReg:
            return len(self.fifo)
        if reg == VersionReg:
            return self.version
        return self.regs[reg]

    def write_reg(self, reg: int, v: int) -> None:
        self._update()
        regs = self.regs
        if reg == CommandReg:
            regs[CommandReg] = v & 0x3F
            self._command(v & 0x0F)
        elif reg == ComIrqReg:
            regs[reg] = (regs[reg] | (v & 0x7F)) if v & 0x80 else (regs[reg] & ~v & 0x7F)
        elif reg == DivIrqReg:
            regs[reg] = (regs[reg] | (v & 0x14)) if v & 0x80 else (regs[reg] & ~v & 0x14)
        elif reg == FIFODataReg:
            if len(self.fifo) >= 64:
                regs[ErrorReg] |= 0x10  # BufferOvfl
            else:
                self.fifo.append(v)
                if self._crc_on:
                    self._crc = crc_a(bytes((v,)), self._crc)
                    self._store_crc()
        elif reg == FIFOLevelReg:
            if v & 0x80:
                self.fifo.clear()
                regs[ErrorReg] &= ~0x10 & 0xFF
        elif reg == BitFramingReg:
            regs[reg] = v
            if v & 0x80 and regs[CommandReg] & 0x0F == TRANSCEIVE:
                self._transmit(receive=True)
        elif reg == TxControlReg:
            was_on = self.field_on
            regs[reg] = v
            if was_on and not self.field_on:
                for card in self.cards:
                    card.power_off()
        elif reg in (ErrorReg, Status1Reg, VersionReg):
            pass  # read-only
        else:
            regs[reg] = v

    # -- commands ---------------------------------------------------------------------------------
    def _command(self, cmd: int) -> None:
        self._crc_on = False
        if cmd == IDLE:
            self._pending = None
            return
        if cmd == SOFT_RESET:
            self.soft_resets += 1
            self._reset_registers()
            return
        self.regs[ErrorReg] &= 0x10  # errors clear when a command starts (BufferOvfl stays)
        if cmd == CALC_CRC:
            self._crc_on = True
            self._crc = crc_a(bytes(self.fifo), _PRESETS[self.regs[ModeReg] & 0x03])
            self.fifo.clear()
            self._store_crc()
            return
        if cmd == TRANSMIT:
            self._transmit(receive=False)
            return
        if cmd == TRANSCEIVE:
            return  # waits for StartSend
        raise NotImplementedError("MFRC522 model: command 0x%X is not modelled" % cmd)

    def _store_crc(self) -> None:
        self.regs[CRCResultRegH] = self._crc >> 8
        self.regs[CRCResultRegL] = self._crc & 0xFF
        self.regs[DivIrqReg] |= 0x04
        self.regs[Status1Reg] |= 0x20  # CRCReady

    def _timer_s(self) -> float | None:
        r = self.regs
        if not r[TModeReg] & 0x80:
            return None  # no TAuto: the timer never runs by itself
        prescaler = ((r[TModeReg] & 0x0F) << 8) | r[TPrescalerReg]
        reload = (r[TReloadRegH] << 8) | r[TReloadRegL]
        return (2 * prescaler + 1) * (reload + 1) / FC

    def _transmit(self, *, receive: bool) -> None:
        now = self.clock()
        data = bytes(self.fifo)
        self.fifo.clear()
        tx_last = self.regs[BitFramingReg] & 0x07
        if self.regs[TxModeReg] & 0x80 and not tx_last:
            data = with_crc(data)
        bits = 8 * len(data) - ((8 - tx_last) if tx_last else 0)
        self.frames.append((data, bits))
        self.transceives += receive
        answers = []
        if self.field_on and data:
            for card in self.cards:
                if card.in_field:
                    ans = card.receive(data, bits)
                    if ans is not None:
                        answers.append(ans)
        t_tx = now + bits * BIT_S
        pend: dict = {"t_tx": t_tx, "tx_done": False, "receive": receive, "answer": None}
        if not receive:
            pend["t_done"] = t_tx
        elif answers:
            rx_bits = max(len(_bits_of(*a)) for a in answers)
            pend["t_done"] = t_tx + FDT_S + rx_bits * BIT_S
            pend["answer"] = self._superpose(answers)
        else:
            timer = self._timer_s()
            pend["t_done"] = None if timer is None else t_tx + timer
        self._pending = pend

    def _superpose(self, answers: list[tuple[bytes, int]]) -> tuple[bytes, int, int]:
        """Several cards answering at once: (data, last_bits, collision position 0 = none)."""
        streams = [_bits_of(*a) for a in answers]
        n = max(len(s) for s in streams)
        out: list[int] = []
        coll = 0
        after = bool(self.regs[CollReg] & 0x80)  # ValuesAfterColl
        for i in range(n):
            vals = {s[i] if i < len(s) else None for s in streams}
            if coll:
                out.append(max((v or 0) for v in vals) if after else 0)
            elif len(vals) > 1:
                coll = i + 1
                out.append(1)
            else:
                out.append(vals.pop() or 0)
        data, last = _bytes_of(out)
        return data, last, coll

    def _update(self) -> None:
        p = self._pending
        if p is None:
            return
        now = self.clock()
        regs = self.regs
        if not p["tx_done"] and now >= p["t_tx"]:
            p["tx_done"] = True
            regs[ComIrqReg] |= 0x40  # TxIRq
        if p["t_done"] is None or now < p["t_done"]:
            return
        self._pending = None
        if not p["receive"]:
            regs[ComIrqReg] |= 0x10  # Transmit ends by itself: IdleIRq
            regs[CommandReg] &= 0xF0
            return
        if p["answer"] is None:
            regs[ComIrqReg] |= 0x01  # TimerIRq
            return
        data, last, coll = p["answer"]
        err = 0
        if coll:
            err |= 0x08
            pos = coll if coll <= 32 else 0
            regs[CollReg] = (regs[CollReg] & 0x80) | (0x20 if coll > 32 else (pos & 0x1F))
        if regs[RxModeReg] & 0x80 and not last and not coll:
            if len(data) < 3 or crc_a(data) != 0:
                err |= 0x04  # CRCErr
            else:
                data = data[:-2]
        self.fifo = bytearray(data[:64])
        if len(data) > 64:
            err |= 0x10
        regs[ControlReg] = (regs[ControlReg] & 0xF8) | last
        regs[ErrorReg] |= err
        regs[ComIrqReg] |= 0x20 | (0x02 if err else 0)  # RxIRq (+ ErrIRq)

    # -- SPI device side --------------------------------------------------------------------------
    def select(self) -> None:
        self._first = True
        self._reading = False
        self._out = 0

    def exchange(self, b: int) -> int:
        if self._in_reset():
            return 0x00  # hard power-down: MISO not driven by the chip
        out = self._out
        if self._first:
            self._first = False
            self._addr = (b >> 1) & 0x3F
            self._reading = bool(b & 0x80)
            self._out = self.read_reg(self._addr) if self._reading else 0
        elif self._reading:
            self._out = self.read_reg((b >> 1) & 0x3F) if b & 0x80 else 0
        else:
            self.write_reg(self._addr, b)
            self._out = 0
        return out

    def deselect(self) -> None:
        self._first = True
