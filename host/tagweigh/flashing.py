"""Flash MicroPython onto a station with the esptool v5 Python API (the esptool half of
``tagweigh flash``; the REPL half — app, config, key, self-test — runs afterwards).

Order of work, chosen so that a mistake never costs a working board:

1. read and check the firmware file (``inspect_image``) — before the port is even opened;
2. connect and detect the chip; refuse an image built for another chip *before erasing*;
3. attach the SPI flash, read its size, refuse an image that does not fit;
4. erase (only the image's region by default: the station's filesystem, which holds the
   reading journal, survives a re-flash; ``erase_all=True`` for a brand-new station);
5. write (skipped when the flash already holds the same bytes: re-running is cheap), then
   verify by MD5.

Every esptool failure becomes a ``FlashError`` whose ``hint`` says in plain words what to do
(``ADVICE``) and whether anything on the board was changed yet.
"""

from __future__ import annotations

import collections
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tagweigh.errors import TagweighError
from tagweigh.espimage import ImageError, ImageInfo, parse_image

__all__ = [
    "FlashError",
    "ADVICE",
    "advise",
    "inspect_image",
    "check_image_for_chip",
    "flash_firmware",
    "FlashResult",
    "MAX_IMAGE_BYTES",
]

#: A firmware file larger than this is not an ESP32 firmware (the biggest flash is 16 MB).
MAX_IMAGE_BYTES = 16 * 1024 * 1024

#: progress(stage, done, total): stage is "connect", "erase", "write", "verify".
Progress = Callable[[str, int, int], None]


class FlashError(TagweighError):
    """Flashing failed; ``hint`` tells the technician what to do next."""

    exit_code = 3


# (pattern over esptool's message, advice). First match wins; order from most to least specific.
ADVICE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Permission denied|Errno 13", re.I),
     "you may not open this serial port: add yourself to the 'dialout' group "
     "(sudo usermod -aG dialout $USER), then log out and in again"),
    (re.compile(r"No such file|Errno 2\b|FileNotFoundError|could not open port", re.I),
     "that serial port does not exist: check the cable is plugged in and run "
     "'tagweigh ports' to see the ports present"),
    (re.compile(r"busy|Resource temporarily unavailable|Errno 11|Errno 16", re.I),
     "another program holds the port (a serial monitor, the bridge, mpremote): close it"),
    (re.compile(r"Wrong boot mode|Invalid head of packet|waiting for download", re.I),
     "the board is running its program, not the ROM bootloader: hold BOOT, tap EN (reset), "
     "release BOOT, then run the same command again"),
    (re.compile(r"No serial data received", re.I),
     "nothing answered on this port: check it is the right port ('tagweigh ports') and that "
     "the USB cable carries data (many are charge-only); if it is, hold BOOT and tap EN to "
     "enter the bootloader, then retry"),
    (re.compile(r"Checksum error|Invalid CRC|result was 0107", re.I),
     "data arrived corrupted at the board: use a shorter or better USB cable, avoid hubs, "
     "and retry with a lower --baud (e.g. --baud 115200)"),
    (re.compile(r"Serial data stream stopped|Packet content transfer stopped|Timed out|"
                r"timeout|Lost connection", re.I),
     "the link stopped answering mid-way, usually too high a baud rate for this cable or "
     "adapter: retry with a lower --baud (e.g. --baud 115200)"),
    (re.compile(r"MD5 of file does not match|Verification failed|written flash region is empty", re.I),
     "the flash did not keep what was written: check the board's 3.3 V supply (use a powered "
     "port, not a hub), then retry; if it repeats, the flash chip or module is faulty"),
    (re.compile(r"This chip is|not an? ESP32|is for ESP|Unexpected chip|Wrong chip", re.I),
     "the firmware file is for another chip: download the MicroPython build for this board "
     "(ESP32 generic vs ESP32-S3) from micropython.org/download"),
    (re.compile(r"will not fit|larger than the available flash", re.I),
     "the image is larger than the board's flash: use the firmware build for this flash size"),
]


def advise(message: str) -> str | None:
    """Plain-words advice for an esptool error message, or None if none applies."""
    for pattern, hint in ADVICE:
        if pattern.search(message):
            return hint
    return None


def inspect_image(path: str | Path | bytes) -> ImageInfo:
    """Read and check a firmware file; FlashError (with a hint) if it is not an ESP image."""
    if isinstance(path, bytes):
        data = path
        where = "firmware"
    else:
        p = Path(path)
        where = str(p)
        try:
            size = p.stat().st_size
            if size > MAX_IMAGE_BYTES:
                raise FlashError(f"{where}: {size} bytes, larger than any ESP32 flash",
                                 hint="pass the MicroPython .bin file for the board")
            data = p.read_bytes()
        except OSError as exc:
            raise FlashError(f"cannot read {where}: {exc.strerror or exc}",
                             hint="check the --firmware path") from exc
    try:
        return parse_image(data)
    except ImageError as exc:
        raise FlashError(
            f"{where}: {exc}",
            hint="download the .bin firmware for your board from micropython.org/download "
            "(not the .elf, .uf2, .app-bin or a zip)",
        ) from exc


def check_image_for_chip(info: ImageInfo, chip_name: str) -> None:
    """Refuse an image built for another chip. ``chip_name`` is esptool's ("ESP32")."""
    if info.chip_name != chip_name:
        raise FlashError(
            f"the firmware is for {info.chip_name} but the board is an {chip_name}; "
            "nothing was erased",
            hint=advise("is for ESP"),
        )


@dataclass
class FlashResult:
    chip: str
    description: str
    mac: str
    flash_size: str | None
    offset: int
    written: bool  # False when the flash already held this image
    md5: str
    reset: str  # how the board was left: "hard-reset", "soft-reset" or "no-reset"
    log: list[str]


class _EsptoolLog:
    """An esp-pylib logger that feeds esptool's progress to ``progress`` and keeps its text.

    esptool v5 sends all output through one replaceable logger (``EspLog.set_logger``); its
    progress bars call ``progress_bar(cur, total, prefix=...)``. The last lines are kept so an
    error can be explained with what esptool said just before it.
    """

    def __init__(self, progress: Progress | None, keep: int = 200):
        from esp_pylib.logger import EspLogBase

        outer = self

        class _Log(EspLogBase):
            def print(self, *args, **kwargs):
                outer._line(" ".join(str(a) for a in args))

            def err(self, *args, suggestion=None):
                outer._line("error: " + " ".join(str(a) for a in args))

            def warn(self, *args, suggestion=None):
                outer._line("warning: " + " ".join(str(a) for a in args))

            warning = warn
            error = err

            def note(self, *args):
                outer._line("note: " + " ".join(str(a) for a in args))

            def hint(self, *args):
                outer._line(" ".join(str(a) for a in args))

            def debug(self, *args):
                pass

            def set_verbosity(self, mode):
                pass

            def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
                outer._bar(cur_iter, total_iters)

        self.logger = _Log()
        self.progress = progress
        self.stage = "connect"
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)

    def _line(self, text: str) -> None:
        text = text.strip()
        if text:
            self.lines.append(text)

    def _bar(self, cur: int, total: int) -> None:
        if self.progress is not None:
            self.progress(self.stage, cur, total)

    def step(self, stage: str, done: int, total: int) -> None:
        self.stage = stage
        if self.progress is not None:
            self.progress(stage, done, total)

    def __enter__(self) -> "_EsptoolLog":
        from esp_pylib.logger import EspLog

        self._saved = EspLog.instance
        EspLog.set_logger(self.logger)
        return self

    def __exit__(self, *exc) -> None:
        from esp_pylib.logger import EspLog

        EspLog.instance = self._saved


def flash_firmware(
    port: str,
    image: str | Path | bytes,
    *,
    baud: int = 460800,
    progress: Progress | None = None,
    before: str = "default-reset",
    after: str | None = None,
    connect_attempts: int = 4,
    erase_all: bool = False,
    force_write: bool = False,
    expect_chip: str | None = None,
) -> FlashResult:
    """Detect the chip on ``port``, check ``image`` matches it, erase, write and verify.

    ``before``: esptool's reset mode ("default-reset" uses DTR/RTS; "no-reset" when the board
    was put in the bootloader by hand). ``after``: "hard-reset" (RTS), "soft-reset" (the ROM's
    "run user code", works without reset lines) or "no-reset"; by default hard-reset after a
    default-reset, soft-reset otherwise, so MicroPython is running for the REPL steps.
    ``expect_chip``: esptool CHIP_NAME the caller requires.
    """
    if after is None:
        after = "soft-reset" if before == "no-reset" else "hard-reset"
    import serial
    from esptool import cmds
    from esptool.util import FatalError

    info = inspect_image(image)  # before anything touches the board
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    touched = False  # has anything on the board been erased or written yet?

    def fail(exc: BaseException, doing: str) -> FlashError:
        message = " ".join(str(exc).split("\n")[0:1]) or type(exc).__name__
        hint = advise(str(exc)) or "run the same command again with --trace and keep its output"
        state = (
            "the flash was partly written: the board will not boot until you run the same "
            "command again"
            if touched
            else "nothing on the board was changed"
        )
        return FlashError(f"{doing}: {message}", hint=f"{hint} ({state})")

    log = _EsptoolLog(progress)
    esp = None
    with log:
        try:
            log.step("connect", 0, 1)
            try:
                esp = cmds.detect_chip(port, 115200, before, connect_attempts=connect_attempts)
            except (FatalError, serial.SerialException, OSError) as exc:
                raise fail(exc, f"cannot talk to the bootloader on {port}") from exc
            chip_name = esp.CHIP_NAME
            if expect_chip is not None and chip_name != expect_chip:
                raise FlashError(f"the board is an {chip_name}, expected {expect_chip}; "
                                 "nothing was erased", hint="check the --port")
            check_image_for_chip(info, chip_name)
            try:
                description = esp.get_chip_description()
                mac = ":".join(f"{b:02x}" for b in esp.read_mac())
                if baud != 115200:
                    esp.change_baud(baud)
                cmds.attach_flash(esp)
                flash_size = cmds.detect_flash_size(esp)
                log.step("connect", 1, 1)
            except (FatalError, serial.SerialException, OSError) as exc:
                raise fail(exc, "reading the chip") from exc
            if flash_size and info.flash_offset + len(data) > _size_bytes(flash_size):
                raise FlashError(
                    f"the image ({len(data)} bytes at {info.flash_offset:#x}) does not fit in "
                    f"{flash_size} of flash; nothing was erased",
                    hint=advise("will not fit"),
                )
            try:
                md5 = _md5(data)
                written = True
                if not force_write and not erase_all:
                    log.step("verify", 0, 1)
                    if esp.flash_md5sum(info.flash_offset, len(_padded(data))) == md5:
                        written = False
                    log.step("verify", 1, 1)
                if written:
                    if erase_all:
                        log.step("erase", 0, 1)
                        touched = True
                        _erase_all(esp, cmds, flash_size)
                        log.step("erase", 1, 1)
                    log.stage = "write"
                    touched = True
                    cmds.write_flash(
                        esp,
                        [(info.flash_offset, data)],
                        flash_size="keep",
                        force=False,
                    )
                log.step("verify", 0, 1)
                cmds.verify_flash(esp, [(info.flash_offset, data)], flash_size="keep")
                log.step("verify", 1, 1)
                cmds.reset_chip(esp, after)
            except FlashError:
                raise
            except (FatalError, serial.SerialException, OSError) as exc:
                raise fail(exc, "flashing") from exc
            return FlashResult(
                chip=chip_name,
                description=description,
                mac=mac,
                flash_size=flash_size,
                offset=info.flash_offset,
                written=written,
                md5=md5,
                reset=after,
                log=list(log.lines),
            )
        finally:
            if esp is not None:
                try:
                    esp._port.close()
                except Exception:  # closing a port that already failed: nothing to add
                    pass


def _size_bytes(size: str) -> int:
    """esptool's size names ("256KB", "4MB") in bytes."""
    unit = 1024 * 1024 if size.endswith("MB") else 1024
    return int(size[:-2]) * unit


def _padded(data: bytes) -> bytes:
    return data + b"\xff" * (-len(data) % 4)  # esptool pads to 4 bytes before writing


def _md5(data: bytes) -> str:
    return hashlib.md5(_padded(data)).hexdigest()


def _erase_all(esp, cmds, flash_size: str | None) -> None:
    """Erase the whole chip. The ROM has no chip-erase command (ERASE_FLASH is stub-only):
    it erases a region as part of FLASH_BEGIN, which esptool's erase_region uses."""
    if esp.IS_STUB:
        cmds.erase_flash(esp)
    else:
        cmds.erase_region(esp, 0, _size_bytes(flash_size or "4MB"))
