"""An emulated ESP32 ROM serial bootloader behind a real pty, for testing the flashing path.

It serves Espressif's documented ROM loader protocol (esptool docs, "Serial Protocol") closely
enough that the real esptool, in ROM mode (``--no-stub``) without reset lines
(``--before no-reset``), can detect an ESP32, attach and size the SPI flash, write an image
and verify it by MD5:

* SLIP framing both ways; request ``00 op size:u16 chk:u32 data``; response
  ``01 op size:u16 value:u32 data status error 00 00`` (the ESP32 ROM sends four status bytes).
* SYNC answered with eight sync responses, with a non-zero value as the ROM does (a zero value
  would make esptool believe the flasher stub is running).
* READ_REG / WRITE_REG over a small register file: the chip-detect magic word at 0x40001000,
  the eFuse words esptool reads (MAC, package, revision, security bits) and the SPI0
  peripheral's "user command" registers, which run RDID (JEDEC ID), RDSFDP and RDSR against
  the modelled flash chip.
* SPI_ATTACH (8 bytes on the ESP32 ROM), SPI_SET_PARAMS (the ROM assumes 2 MB until told).
* FLASH_BEGIN erases the region up front, as the ROM does; FLASH_DATA checks the sequence
  number, the length and the 0xEF-seeded XOR checksum (error 0x07 on a mismatch) and programs
  NOR-style (bits only go 1 -> 0); FLASH_DEFL_* likewise with zlib-compressed data.
* SPI_FLASH_MD5 answers 32 hex ASCII characters (ROM style, the stub sends 16 raw bytes).
* READ_FLASH_SLOW (64-byte blocks, ROM only) and CHANGE_BAUDRATE (recorded; a pty has no
  line speed). GET_SECURITY_INFO is unknown to the ESP32 ROM (error 0x05) and answered by
  the ESP32-S3 identity.
* The stub-only commands (ERASE_FLASH, ERASE_REGION, READ_FLASH 0xD2) are answered with
  "invalid message" like any unknown command; esptool does not send them in ROM mode (it
  erases a region through FLASH_BEGIN and reads through READ_FLASH_SLOW).

Failure injection (``fail=``) reproduces what technicians meet in the field:
``"no_sync"`` (chip not in download mode / no cable: total silence), ``"app_running"`` (the
application prints text instead of SLIP), ``"timeout_after_n"`` (goes silent after
``fail_after`` commands, as a link that drops at high baud), ``"bad_checksum"`` (data packets
arrive corrupted, the ROM answers "Invalid CRC") and ``"wrong_chip"`` (an ESP32-S3 answers).
"""

from __future__ import annotations

import hashlib
import os
import select
import struct
import threading
import tty
import zlib

__all__ = ["RomBootloaderEmulator", "FAIL_MODES", "slip_encode", "SlipDecoder"]

FAIL_MODES = (None, "no_sync", "app_running", "timeout_after_n", "bad_checksum", "wrong_chip")

# Command opcodes (esptool docs, Serial Protocol, "Commands").
FLASH_BEGIN = 0x02
FLASH_DATA = 0x03
FLASH_END = 0x04
MEM_BEGIN = 0x05
MEM_END = 0x06
MEM_DATA = 0x07
SYNC = 0x08
WRITE_REG = 0x09
READ_REG = 0x0A
SPI_SET_PARAMS = 0x0B
SPI_ATTACH = 0x0D
READ_FLASH_SLOW = 0x0E
CHANGE_BAUDRATE = 0x0F
FLASH_DEFL_BEGIN = 0x10
FLASH_DEFL_DATA = 0x11
FLASH_DEFL_END = 0x12
SPI_FLASH_MD5 = 0x13
GET_SECURITY_INFO = 0x14

# ROM loader error codes.
ERR_INVALID_MESSAGE = 0x05
ERR_FAILED_TO_ACT = 0x06
ERR_INVALID_CRC = 0x07
ERR_FLASH_WRITE = 0x08
ERR_FLASH_READ = 0x09
ERR_READ_LENGTH = 0x0A
ERR_DEFLATE = 0x0B

SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32
SYNC_VALUE = 0x20120707  # any non-zero value says "ROM", zero would say "stub"
CHECKSUM_SEED = 0xEF
SECTOR = 0x1000
ROM_DEFAULT_FLASH_SIZE = 2 * 1024 * 1024  # until SPI_SET_PARAMS says otherwise
READ_SLOW_BLOCK = 64

# A request is at most 8 header bytes + 16 bytes of data header + one 16 KB block, doubled
# when every byte is escaped. Anything longer is noise: drop it rather than grow a buffer.
MAX_PACKET = 8 + 16 + 0x4000 + 64

CHIP_DETECT_MAGIC_REG = 0x40001000

# Register layout per chip: SPI0 user-command registers and eFuse words esptool reads.
_CHIPS = {
    "esp32": {
        "name": "ESP32",
        "magic": 0x00F01D83,
        "chip_id": None,  # no GET_SECURITY_INFO in the ESP32 ROM
        "spi_base": 0x3FF42000,
        "spi_usr": 0x1C,
        "spi_usr2": 0x24,
        "spi_w0": 0x80,
        "attach_len": 8,  # 4-byte pin word + 4 "is legacy" bytes
        "begin_len": 16,
    },
    "esp32s3": {
        "name": "ESP32-S3",
        "magic": 0x00000009,  # not used by esptool for the S3 (it asks for the chip ID)
        "chip_id": 9,
        "spi_base": 0x60002000,
        "spi_usr": 0x18,
        "spi_usr2": 0x20,
        "spi_w0": 0x58,
        "attach_len": 8,
        "begin_len": 20,  # + "encrypted write" word
    },
}

SPI_CMD_USR = 1 << 18
SPIFLASH_RDID = 0x9F
SPIFLASH_RDSFDP = 0x5A
SFDP_SIGNATURE = 0x50444653

# JEDEC capacity byte -> flash size (2**n bytes).
_JEDEC_VENDOR_WINBOND = 0xEF
_JEDEC_TYPE = 0x40


def slip_encode(packet: bytes) -> bytes:
    """Frame one packet: 0xC0, escaped body (0xDB -> DB DD, 0xC0 -> DB DC), 0xC0."""
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class SlipDecoder:
    """Incremental, bounded SLIP decoder: ``feed(bytes)`` returns the complete packets.

    Bytes outside a frame are counted in ``noise`` and dropped; a frame longer than ``limit``
    or with a bad escape is dropped whole and counted in ``dropped``.
    """

    def __init__(self, limit: int = MAX_PACKET):
        self.limit = limit
        self._buf = bytearray()
        self._in_frame = False
        self._escape = False
        self._overflow = False
        self.noise = 0
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes]:
        out = []
        for b in data:
            if not self._in_frame:
                if b == 0xC0:
                    self._start()
                else:
                    self.noise += 1
                continue
            if b == 0xC0:
                if self._buf and not self._overflow:
                    out.append(bytes(self._buf))
                elif self._overflow:
                    self.dropped += 1
                # An empty frame is a frame boundary (0xC0 0xC0): stay in frame.
                self._start()
                continue
            if self._escape:
                self._escape = False
                if b == 0xDC:
                    b = 0xC0
                elif b == 0xDD:
                    b = 0xDB
                else:
                    self._overflow = True  # invalid escape: drop the frame
                    continue
            elif b == 0xDB:
                self._escape = True
                continue
            if len(self._buf) >= self.limit:
                self._overflow = True
            elif not self._overflow:
                self._buf.append(b)
        return out

    def _start(self) -> None:
        self._buf.clear()
        self._in_frame = True
        self._escape = False
        self._overflow = False


class RomBootloaderEmulator:
    """An ESP32 in UART download mode, on a pty. Use as a context manager.

    ``port`` is the device path to hand to esptool; ``flash`` the modelled flash chip (a
    bytearray you can inspect); ``commands`` the opcodes received, in order; ``baud`` the last
    rate CHANGE_BAUDRATE asked for.
    """

    def __init__(
        self,
        *,
        chip: str = "esp32",
        flash_size: int = 4 * 1024 * 1024,
        fail: str | None = None,
        fail_after: int = 4,
        mac: bytes = bytes.fromhex("240ac4123456"),
    ):
        if fail not in FAIL_MODES:
            raise ValueError(f"unknown fail mode {fail!r}; known: {FAIL_MODES[1:]}")
        if chip not in _CHIPS:
            raise ValueError(f"unknown chip {chip!r}; known: {sorted(_CHIPS)}")
        if flash_size & (flash_size - 1) or not SECTOR <= flash_size <= 16 * 1024 * 1024:
            raise ValueError("flash_size must be a power of two between 4 KB and 16 MB")
        if fail == "wrong_chip":
            chip = "esp32s3" if chip == "esp32" else "esp32"
        self.chip = chip
        self._c = _CHIPS[chip]
        self.fail = fail
        self.fail_after = fail_after
        self.flash = bytearray(b"\xff") * flash_size
        self.commands: list[int] = []
        self.baud: int | None = None
        self.attached = False
        self.flash_limit = min(ROM_DEFAULT_FLASH_SIZE, flash_size)
        self.left_loader = False  # FLASH_END / MEM_END ran "user code": the loader is gone
        self._regs = self._initial_registers(mac)
        self._write = None  # (offset, block_size, next_seq, blocks_left, inflater or None)
        self._decoder = SlipDecoder()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing, 8-bit clean
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="rom-emulator", daemon=True)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> "RomBootloaderEmulator":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "RomBootloaderEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- registers ------------------------------------------------------------------------

    def _initial_registers(self, mac: bytes) -> dict[int, int]:
        regs = {CHIP_DETECT_MAGIC_REG: self._c["magic"]}
        if self.chip == "esp32":
            efuse = 0x3FF5A000
            # MAC: word 2 holds CRC(8) + first two bytes, word 1 the last four (esptool reads
            # big-endian words 2 then 1 and drops the two top bytes).
            regs[efuse + 4] = int.from_bytes(mac[2:6], "big")
            regs[efuse + 8] = int.from_bytes(mac[0:2], "big")
            # Word 3: package 1 (D0WD), revision bit 0; word 5: revision bit 1.
            regs[efuse + 12] = (1 << 9) | (1 << 15)
            regs[efuse + 20] = 1 << 20
            # Word 4 low byte: CK8M calibration, with RTCCALICFG1 giving a 40 MHz crystal.
            regs[efuse + 16] = 100
            regs[0x3FF5F06C] = 1024 << 7
            regs[0x3FF66000 + 0x7C] = 1 << 31  # APB_CTL_DATE: revision bit 2 -> v3.0
        return regs

    def _read_reg(self, addr: int) -> int:
        return self._regs.get(addr, 0)

    def _write_reg(self, addr: int, value: int, mask: int) -> None:
        old = self._regs.get(addr, 0)
        self._regs[addr] = (old & ~mask | value & mask) & 0xFFFFFFFF
        base = self._c["spi_base"]
        if addr == base and self._regs[addr] & SPI_CMD_USR:
            self._run_spi_user_command()
            self._regs[addr] &= ~SPI_CMD_USR  # "done" at once

    def _run_spi_user_command(self) -> None:
        base = self._c["spi_base"]
        command = self._regs.get(base + self._c["spi_usr2"], 0) & 0xFFFF
        w0 = base + self._c["spi_w0"]
        if command == SPIFLASH_RDID:
            capacity = len(self.flash).bit_length() - 1
            self._regs[w0] = _JEDEC_VENDOR_WINBOND | _JEDEC_TYPE << 8 | capacity << 16
        elif command == SPIFLASH_RDSFDP:
            address = self._regs.get(base + 0x04, 0) >> 8  # 24-bit address, MSB-aligned
            self._regs[w0] = SFDP_SIGNATURE if address == 0 else 0
        else:
            self._regs[w0] = 0  # RDSR and friends: idle, nothing protected

    # -- serving --------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except OSError:
                continue  # slave side closed and not yet reopened
            if not data:
                continue
            if self.fail == "no_sync" or self.left_loader:
                continue
            if self.fail == "app_running":
                self._send_raw(b"\r\nTraceback (most recent call last):\r\n>>> ")
                continue
            for packet in self._decoder.feed(data):
                self._handle(packet)

    def _send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                continue
            except OSError:
                return
            view = view[n:]

    def _reply(self, op: int, *, value: int = 0, data: bytes = b"", error: int = 0) -> None:
        status = bytes((1 if error else 0, error, 0, 0))
        body = data + status
        header = struct.pack("<BBHI", 0x01, op, len(body), value)
        self._send_raw(slip_encode(header + body))

    def _handle(self, packet: bytes) -> None:
        if len(packet) < 8 or packet[0] != 0x00:
            return  # not a request: the ROM ignores it
        _, op, size, chk = struct.unpack_from("<BBHI", packet)
        data = packet[8:]
        if len(data) != size:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        self.commands.append(op)
        if self.fail == "timeout_after_n" and len(self.commands) > self.fail_after:
            return
        handler = self._HANDLERS.get(op)
        if handler is None:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        handler(self, op, data, chk)

    def _sync(self, op: int, data: bytes, chk: int) -> None:
        if data != SYNC_PAYLOAD:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        for _ in range(8):
            self._reply(op, value=SYNC_VALUE)

    def _cmd_read_reg(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 4:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        (addr,) = struct.unpack("<I", data)
        self._reply(op, value=self._read_reg(addr))

    def _cmd_write_reg(self, op: int, data: bytes, chk: int) -> None:
        if not data or len(data) % 16:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        for i in range(0, len(data), 16):
            addr, value, mask, _delay_us = struct.unpack_from("<IIII", data, i)
            self._write_reg(addr, value, mask)
        self._reply(op)

    def _security_info(self, op: int, data: bytes, chk: int) -> None:
        if self._c["chip_id"] is None:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        # flags, flash_crypt_cnt, 7 key purposes, chip_id, api_version
        info = struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self._c["chip_id"], 0)
        self._reply(op, data=info)

    def _spi_attach(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != self._c["attach_len"]:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        self.attached = True
        self._reply(op)

    def _spi_set_params(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 24:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        _id, total, _block, sector, _page, _mask = struct.unpack("<6I", data)
        if sector != SECTOR or not 0 < total <= 16 * 1024 * 1024:
            self._reply(op, error=ERR_FAILED_TO_ACT)
            return
        self.flash_limit = min(total, len(self.flash))
        self._reply(op)

    def _change_baud(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 8:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        new_baud, _old = struct.unpack("<II", data)
        if new_baud == 0:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        self._reply(op)  # answered at the old rate, then the UART switches
        self.baud = new_baud

    def _flash_begin(self, op: int, data: bytes, chk: int) -> None:
        if len(data) not in (16, self._c["begin_len"]):
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        erase_size, blocks, block_size, offset = struct.unpack_from("<IIII", data)
        if not self.attached:
            self._reply(op, error=ERR_FAILED_TO_ACT)  # the ROM needs SPI_ATTACH first
            return
        if offset % SECTOR or offset + erase_size > self.flash_limit or block_size > 0x4000:
            self._reply(op, error=ERR_FAILED_TO_ACT)
            return
        end = -(-(offset + erase_size) // SECTOR) * SECTOR
        self.flash[offset:end] = b"\xff" * (end - offset)  # the ROM erases up front
        inflater = zlib.decompressobj() if op == FLASH_DEFL_BEGIN else None
        self._write = [offset, block_size, 0, blocks, inflater, offset]
        self._reply(op)

    def _flash_data(self, op: int, data: bytes, chk: int) -> None:
        state = self._write
        if state is None or (op == FLASH_DEFL_DATA) != (state[4] is not None):
            self._reply(op, error=ERR_FAILED_TO_ACT)
            return
        if len(data) < 16:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        length, seq = struct.unpack_from("<II", data)
        payload = bytearray(data[16:])
        if self.fail == "bad_checksum" and payload:
            payload[len(payload) // 2] ^= 0x10  # a flipped bit on the wire
        if length != len(payload) or (state[4] is None and length != state[1]):
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        checksum = CHECKSUM_SEED
        for b in payload:
            checksum ^= b
        if checksum != chk & 0xFF:
            self._reply(op, error=ERR_INVALID_CRC)
            return
        if seq != state[2] or state[3] <= 0:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        if state[4] is not None:
            try:
                chunk = state[4].decompress(bytes(payload))
            except zlib.error:
                self._reply(op, error=ERR_DEFLATE)
                return
        else:
            chunk = bytes(payload)
        at = state[5]
        if at + len(chunk) > self.flash_limit:
            self._reply(op, error=ERR_FLASH_WRITE)
            return
        # NOR programming: bits can only be cleared; erase is what sets them back to 1.
        self.flash[at : at + len(chunk)] = bytes(
            a & b for a, b in zip(self.flash[at : at + len(chunk)], chunk)
        )
        state[2] += 1
        state[3] -= 1
        state[5] = at + len(chunk)
        self._reply(op)

    def _flash_end(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 4:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        self._write = None
        self._reply(op)
        # Both "reboot" (0) and "run user code" (1) leave the loader.
        self.left_loader = True

    def _md5(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 16:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        addr, size, _, _ = struct.unpack("<IIII", data)
        if addr + size > self.flash_limit:
            self._reply(op, error=ERR_FLASH_READ)
            return
        digest = hashlib.md5(self.flash[addr : addr + size]).hexdigest().encode()
        self._reply(op, data=digest)  # ROM: 32 hex ASCII characters

    def _read_slow(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 8:
            self._reply(op, error=ERR_INVALID_MESSAGE)
            return
        addr, size = struct.unpack("<II", data)
        if size > READ_SLOW_BLOCK:
            self._reply(op, error=ERR_READ_LENGTH)
            return
        if addr + size > self.flash_limit:
            self._reply(op, error=ERR_FLASH_READ)
            return
        block = bytes(self.flash[addr : addr + size]).ljust(READ_SLOW_BLOCK, b"\x00")
        self._reply(op, data=block)  # always a 64-byte buffer

    _HANDLERS = {
        SYNC: _sync,
        READ_REG: _cmd_read_reg,
        WRITE_REG: _cmd_write_reg,
        GET_SECURITY_INFO: _security_info,
        SPI_ATTACH: _spi_attach,
        SPI_SET_PARAMS: _spi_set_params,
        CHANGE_BAUDRATE: _change_baud,
        FLASH_BEGIN: _flash_begin,
        FLASH_DATA: _flash_data,
        FLASH_END: _flash_end,
        FLASH_DEFL_BEGIN: _flash_begin,
        FLASH_DEFL_DATA: _flash_data,
        FLASH_DEFL_END: _flash_end,
        SPI_FLASH_MD5: _md5,
        READ_FLASH_SLOW: _read_slow,
    }
