"""Read an ESP firmware file (as MicroPython ships it) without trusting it.

A MicroPython ``firmware.bin`` for the ESP32 is a merged flash image written at the chip's
bootloader offset (0x1000 on the ESP32, 0x0 on the ESP32-S3): the second-stage bootloader
(an ESP image: magic 0xE9, segments, XOR checksum, optional SHA-256), the partition table at
flash 0x8000 and the application (another ESP image whose first segment starts with the
``esp_app_desc_t`` record: version, project name, IDF version).

``parse_image(data)`` checks every length against the file before reading and raises
``ImageError`` with a precise message; nothing here touches a serial port. Layouts: ESP-IDF
"App Image Format" and "Partition Tables" documentation.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

__all__ = [
    "ImageError",
    "Segment",
    "Partition",
    "AppDescription",
    "ImageInfo",
    "CHIPS",
    "parse_image",
    "build_image",
    "build_partition_table",
    "build_app_description",
]

ESP_IMAGE_MAGIC = 0xE9
CHECKSUM_SEED = 0xEF
APP_DESC_MAGIC = 0xABCD5432
PARTITION_MAGIC = b"\xaa\x50"
PARTITION_MD5_MAGIC = b"\xeb\xeb"
PARTITION_TABLE_OFFSET = 0x8000
MAX_SEGMENTS = 16
MAX_PARTITIONS = 95  # 3 KB table / 32-byte entries, minus the MD5 entry

# IMAGE_CHIP_ID -> (short name, esptool CHIP_NAME, flash offset of the bootloader).
CHIPS: dict[int, tuple[str, str, int]] = {
    0: ("esp32", "ESP32", 0x1000),
    2: ("esp32s2", "ESP32-S2", 0x1000),
    5: ("esp32c3", "ESP32-C3", 0x0),
    9: ("esp32s3", "ESP32-S3", 0x0),
    12: ("esp32c2", "ESP32-C2", 0x0),
    13: ("esp32c6", "ESP32-C6", 0x0),
    16: ("esp32h2", "ESP32-H2", 0x0),
}

FLASH_MODES = {0: "qio", 1: "qout", 2: "dio", 3: "dout"}
FLASH_SIZES = {0: "1MB", 1: "2MB", 2: "4MB", 3: "8MB", 4: "16MB", 5: "32MB", 6: "64MB", 7: "128MB"}
FLASH_FREQS = {0x0: "40m", 0x1: "26m", 0x2: "20m", 0xF: "80m"}

_HEADER = struct.Struct("<BBBBI")  # magic, segment count, flash mode, size|freq, entry
_EXT_HEADER = struct.Struct("<B3sHBHH4sB")  # wp pin, drive, chip id, min rev, rev range, hash
_SEGMENT = struct.Struct("<II")  # load address, length
_PARTITION = struct.Struct("<2sBBII16sI")
_APP_DESC = struct.Struct("<III8s32s32s16s16s32s")  # magic .. idf_ver (first 144 bytes)


class ImageError(ValueError):
    """The file is not a usable ESP firmware image; the message says exactly why."""


@dataclass(frozen=True)
class Segment:
    load_address: int
    length: int
    file_offset: int


@dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int


@dataclass(frozen=True)
class AppDescription:
    project_name: str
    version: str
    idf_version: str
    date: str
    time: str


@dataclass(frozen=True)
class ImageInfo:
    size: int
    chip_id: int
    chip: str  # short name, "esp32"
    chip_name: str  # esptool's CHIP_NAME, "ESP32"
    flash_offset: int  # where the file goes in flash
    flash_mode: str
    flash_size: str
    flash_freq: str
    entry: int
    segments: tuple[Segment, ...]
    sha256_appended: bool
    partitions: tuple[Partition, ...] = field(default=())
    app: AppDescription | None = None
    app_chip_id: int | None = None

    @property
    def is_merged(self) -> bool:
        """True when the file holds bootloader + partition table + app (a full firmware)."""
        return bool(self.partitions)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")


def _parse_one(data: bytes, start: int, what: str) -> tuple[dict, int]:
    """Parse one ESP image at ``data[start:]``; return its fields and its end offset."""
    end_of_file = len(data)
    if start + _HEADER.size + _EXT_HEADER.size > end_of_file:
        raise ImageError(f"{what}: file too short for an ESP image header")
    magic, count, mode, size_freq, entry = _HEADER.unpack_from(data, start)
    if magic != ESP_IMAGE_MAGIC:
        raise ImageError(
            f"{what}: first byte is {magic:#04x}, not the ESP image magic 0xe9 "
            "(not an ESP firmware image)"
        )
    if not 1 <= count <= MAX_SEGMENTS:
        raise ImageError(f"{what}: {count} segments (an ESP image has 1 to {MAX_SEGMENTS})")
    _wp, _drive, chip_id, _min_rev, _rmin, _rmax, _res, hash_appended = _EXT_HEADER.unpack_from(
        data, start + _HEADER.size
    )
    if hash_appended not in (0, 1):
        raise ImageError(f"{what}: bad 'hash appended' flag {hash_appended}")
    pos = start + _HEADER.size + _EXT_HEADER.size
    segments = []
    checksum = CHECKSUM_SEED
    for i in range(count):
        if pos + _SEGMENT.size > end_of_file:
            raise ImageError(f"{what}: segment {i} header runs past the end of the file")
        load, length = _SEGMENT.unpack_from(data, pos)
        pos += _SEGMENT.size
        if pos + length > end_of_file:
            raise ImageError(
                f"{what}: segment {i} ({length} bytes at {load:#010x}) runs past the end "
                "of the file (truncated download?)"
            )
        segments.append(Segment(load, length, pos - start))
        for b in data[pos : pos + length]:
            checksum ^= b
        pos += length
    pos += 15 - (pos - start) % 16  # pad so the checksum byte ends a 16-byte line
    if pos >= end_of_file:
        raise ImageError(f"{what}: checksum byte missing (truncated file?)")
    if data[pos] != checksum:
        raise ImageError(
            f"{what}: checksum {data[pos]:#04x} does not match the segments ({checksum:#04x}); "
            "the file is corrupted"
        )
    pos += 1
    if hash_appended:
        if pos + 32 > end_of_file:
            raise ImageError(f"{what}: SHA-256 digest missing (truncated file?)")
        if hashlib.sha256(data[start:pos]).digest() != data[pos : pos + 32]:
            raise ImageError(f"{what}: SHA-256 digest does not match; the file is corrupted")
        pos += 32
    fields = {
        "chip_id": chip_id,
        "flash_mode": FLASH_MODES.get(mode, f"unknown({mode})"),
        "flash_size": FLASH_SIZES.get(size_freq >> 4, f"unknown({size_freq >> 4})"),
        "flash_freq": FLASH_FREQS.get(size_freq & 0xF, f"unknown({size_freq & 0xF})"),
        "entry": entry,
        "segments": tuple(segments),
        "sha256_appended": bool(hash_appended),
    }
    return fields, pos


def _parse_partitions(data: bytes, at: int) -> tuple[Partition, ...]:
    parts = []
    for i in range(MAX_PARTITIONS):
        pos = at + i * _PARTITION.size
        if pos + _PARTITION.size > len(data):
            break
        magic, ptype, subtype, offset, size, label, _flags = _PARTITION.unpack_from(data, pos)
        if magic != PARTITION_MAGIC:
            break  # 0xFFFF end marker or the MD5 entry
        parts.append(Partition(_cstr(label), ptype, subtype, offset, size))
    return tuple(parts)


def parse_image(data: bytes) -> ImageInfo:
    """Describe a firmware file: chip, flash settings, segments, partitions, app version."""
    boot, _ = _parse_one(data, 0, "image")
    chip_id = boot["chip_id"]
    if chip_id not in CHIPS:
        raise ImageError(f"image: chip ID {chip_id} in the header is not a known ESP32-family chip")
    chip, chip_name, offset = CHIPS[chip_id]
    partitions: tuple[Partition, ...] = ()
    app = None
    app_chip_id = None
    table_at = PARTITION_TABLE_OFFSET - offset
    if len(data) >= table_at + _PARTITION.size:
        partitions = _parse_partitions(data, table_at)
    apps = [p for p in partitions if p.type == 0]  # factory or ota_N
    if apps:
        app_at = apps[0].offset - offset
        if 0 < app_at < len(data):
            fields, _ = _parse_one(data, app_at, f"application at {apps[0].offset:#x}")
            app_chip_id = fields["chip_id"]
            first = fields["segments"][0]
            desc_at = app_at + first.file_offset
            if first.length >= _APP_DESC.size:
                magic, _sv, _r1, _r2, ver, proj, time_, date, idf = _APP_DESC.unpack_from(
                    data, desc_at
                )
                if magic == APP_DESC_MAGIC:
                    app = AppDescription(_cstr(proj), _cstr(ver), _cstr(idf), _cstr(date), _cstr(time_))
    if app_chip_id is not None and app_chip_id != chip_id:
        raise ImageError(
            f"image: bootloader is for chip ID {chip_id} but the application for {app_chip_id}"
        )
    return ImageInfo(
        size=len(data),
        chip_id=chip_id,
        chip=chip,
        chip_name=chip_name,
        flash_offset=offset,
        partitions=partitions,
        app=app,
        app_chip_id=app_chip_id,
        **{k: v for k, v in boot.items() if k != "chip_id"},
    )


# -- builders (tests, the demo and the emulator use them to make small, valid firmware) ------


def build_image(
    segments: list[tuple[int, bytes]],
    *,
    chip_id: int = 0,
    flash_mode: int = 2,
    size_freq: int = 0x20,
    entry: int = 0x40080000,
    sha256: bool = True,
) -> bytes:
    """An ESP image: header, extended header, segments, checksum and (optionally) SHA-256."""
    out = bytearray(_HEADER.pack(ESP_IMAGE_MAGIC, len(segments), flash_mode, size_freq, entry))
    out += _EXT_HEADER.pack(0xEE, b"\x00\x00\x00", chip_id, 0, 0, 0xFFFF, b"\x00" * 4, int(sha256))
    checksum = CHECKSUM_SEED
    for load, payload in segments:
        payload = payload + b"\x00" * (-len(payload) % 4)
        out += _SEGMENT.pack(load, len(payload)) + payload
        for b in payload:
            checksum ^= b
    out += b"\x00" * (15 - len(out) % 16)
    out.append(checksum)
    if sha256:
        out += hashlib.sha256(out).digest()
    return bytes(out)


def build_app_description(project: str, version: str, idf: str = "v5.2.2") -> bytes:
    return _APP_DESC.pack(
        APP_DESC_MAGIC, 0, 0, b"\x00" * 8, version.encode(), project.encode(),
        b"12:00:00", b"Jan  1 2025", idf.encode(),
    ) + b"\x00" * 112  # app_elf_sha256 + reserved, to the full 256-byte record


def build_partition_table(parts: list[tuple[str, int, int, int, int]]) -> bytes:
    """Entries (label, type, subtype, offset, size) followed by the 0xFF end marker."""
    out = bytearray()
    for label, ptype, subtype, offset, size in parts:
        out += _PARTITION.pack(PARTITION_MAGIC, ptype, subtype, offset, size, label.encode(), 0)
    return bytes(out) + b"\xff" * 32


def build_firmware(
    *, chip_id: int = 0, project: str = "micropython", version: str = "v1.24.1",
    app_size: int = 4096,
) -> bytes:
    """A small merged firmware laid out like MicroPython's: bootloader, table, factory app."""
    _, _, offset = CHIPS[chip_id]
    boot = build_image([(0x3FFF0000, b"\x11" * 64), (0x40078000, b"\x22" * 256)], chip_id=chip_id)
    app_offset = 0x10000
    table = build_partition_table([
        ("nvs", 1, 0x02, 0x9000, 0x6000),
        ("phy_init", 1, 0x01, 0xF000, 0x1000),
        ("factory", 0, 0x00, app_offset, 0x1F0000),
        ("vfs", 1, 0x81, 0x200000, 0x200000),
    ])
    desc = build_app_description(project, version)
    app = build_image(
        [(0x3F400020, desc + b"\x33" * 64), (0x400D0020, bytes(range(256)) * (app_size // 256))],
        chip_id=chip_id,
    )
    out = bytearray(b"\xff" * (app_offset - offset))
    out[0 : len(boot)] = boot
    t = PARTITION_TABLE_OFFSET - offset
    out[t : t + len(table)] = table
    return bytes(out) + app
