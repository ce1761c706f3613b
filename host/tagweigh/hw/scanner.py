"""A GM65-class QR/barcode scanner module on a UART.

The module sends each decoded code as text + terminator at its baud rate (a host UART at another
rate receives garbled bytes, see fake_machine.UARTPort.feed). It understands the zone-bit
commands of the GM65 manual: ``7E 00 | type | len | addr(2) | data | CRC`` with CRC-16/XMODEM
over type..data (big endian; ``AB CD`` is accepted as "no CRC" as the manual allows), types
0x07 read, 0x08 write, 0x09 save to EEPROM; it answers ``02 00 00 01 <data> CRC`` (a write is
acknowledged with ``02 00 00 01 00 33 31``) and ignores frames with a bad CRC. Only single-byte
commands (len 1) are modelled. Zone 0x0000 bits 1-0 choose the mode: in command mode (01) a code
is held until the host writes 0x01 to zone 0x0002 (trigger). Zone 0x0013 (bit 7 enable, bits 6-0
x 100 ms) suppresses the same code within the delay.
"""

from __future__ import annotations

import time
from typing import Callable

from tagweigh.hw import fake_machine

ACK = bytes.fromhex("02000001003331")


def crc_xmodem(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def command(kind: int, addr: int, data: int) -> bytes:
    """A GM65 command frame (what the driver should put on the wire)."""
    body = bytes((kind, 0x01, addr >> 8, addr & 0xFF, data))
    return b"\x7e\x00" + body + crc_xmodem(body).to_bytes(2, "big")


def reply(data: int) -> bytes:
    body = bytes((0x00, 0x01, data))
    return b"\x02\x00" + body + crc_xmodem(body).to_bytes(2, "big")


_count = 0


class ScannerModel:
    def __init__(self, uart: fake_machine.UART | None = None, *, baudrate: int = 9600,
                 terminator: bytes = b"\r", clock: Callable[[], float] = time.monotonic):  # fmt: skip
        global _count
        if uart is None:
            _count += 1
            uart = fake_machine.UART("gm65#%d" % _count, baudrate)
        self.uart = uart
        self.uart.port.attach(self)
        self.baudrate = baudrate
        self.terminator = terminator
        self.clock = clock
        self.zones = bytearray(256)
        self.zones[0x00] = 0xD6  # continuous mode, LED and sound on
        self.saved = bytes(self.zones)
        self.commands: list[bytes] = []  # valid command frames received
        self.ignored = 0  # frames dropped (bad CRC, wrong baud, unknown)
        self._rx = bytearray()
        self._held: list[bytes] = []
        self._last_code: bytes | None = None
        self._last_time = -1e9

    @property
    def mode(self) -> int:
        return self.zones[0] & 0x03

    # -- what the operator does -------------------------------------------------------------------
    def scan(self, text: str | bytes) -> bool:
        """A code comes into view. Returns True when the module sends it (now)."""
        code = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        delay = self.zones[0x13]
        now = self.clock()
        if delay & 0x80 and code == self._last_code and now - self._last_time < (delay & 0x7F) / 10:
            return False
        if self.mode == 0x01:  # command mode: wait for a trigger
            self._held.append(code)
            return False
        self._send(code, now)
        return True

    def send_garbage(self, data: bytes) -> None:
        self.uart.port.feed(bytes(data), self.baudrate)

    def _send(self, code: bytes, now: float) -> None:
        self._last_code, self._last_time = code, now
        self.uart.port.feed(code + self.terminator, self.baudrate)

    # -- host -> module -----------------------------------------------------------------------------
    def host_tx(self, data: bytes, baudrate: int) -> None:
        if baudrate != self.baudrate:
            self.ignored += 1  # the module samples garbage: nothing it understands
            return
        self._rx += data
        while True:
            i = self._rx.find(b"\x7e\x00")
            if i < 0:
                del self._rx[: max(len(self._rx) - 1, 0)]
                return
            del self._rx[:i]
            if len(self._rx) < 9:
                return
            frame = bytes(self._rx[:9])
            del self._rx[:9]
            self._execute(frame)

    def _execute(self, frame: bytes) -> None:
        kind, length, addr, data = frame[2], frame[3], (frame[4] << 8) | frame[5], frame[6]
        crc = frame[7:9]
        if length != 1 or (crc != b"\xab\xcd" and crc != crc_xmodem(frame[2:7]).to_bytes(2, "big")):
            self.ignored += 1
            return
        self.commands.append(frame)
        if kind == 0x08 and addr < len(self.zones):
            self.zones[addr] = data
            self.uart.port.feed(ACK, self.baudrate)
            if addr == 0x02 and data & 0x01 and self._held:
                self._send(self._held.pop(0), self.clock())
        elif kind == 0x07 and addr < len(self.zones):
            self.uart.port.feed(reply(self.zones[addr]), self.baudrate)
        elif kind == 0x09:
            self.saved = bytes(self.zones)
            self.uart.port.feed(ACK, self.baudrate)
        else:
            self.ignored += 1
