"""tagweigh.flashing and tagweigh.espimage: image checks, esptool flashing, advice messages."""

import json
import os

import pytest
import serial

from tagweigh.errors import TagweighError
from tagweigh.espimage import build_firmware, build_image, parse_image
from tagweigh.flashing import ADVICE, FlashError, advise, flash_firmware, inspect_image
from tagweigh.romemu import RomBootloaderEmulator

FLASH_BEGIN = 0x02
FW = build_firmware()


def flash(emu, image=FW, **kw):
    kw.setdefault("before", "no-reset")
    kw.setdefault("connect_attempts", 1)
    kw.setdefault("after", "no-reset")  # stay in the loader so a test can flash again
    return flash_firmware(emu.port, image, **kw)


# -- image inspection -------------------------------------------------------------------------


def test_inspect_reads_chip_layout_and_app_version(tmp_path):
    path = tmp_path / "micropython-esp32.bin"
    path.write_bytes(FW)
    info = inspect_image(path)
    assert (info.chip, info.chip_id, info.flash_offset) == ("esp32", 0, 0x1000)
    assert (info.flash_mode, info.flash_size, info.flash_freq) == ("dio", "4MB", "40m")
    assert info.is_merged and [p.label for p in info.partitions][:3] == ["nvs", "phy_init", "factory"]
    assert info.app.project_name == "micropython" and info.app.version == "v1.24.1"
    assert len(info.segments) == 2 and info.sha256_appended


def test_s3_firmware_goes_at_zero():
    info = parse_image(build_firmware(chip_id=9))
    assert (info.chip_name, info.flash_offset) == ("ESP32-S3", 0)
    assert info.app is not None


def test_built_images_pass_esptools_own_checks():
    from esptool.bin_image import LoadFirmwareImage

    image = LoadFirmwareImage("esp32", FW)
    assert image.chip_id == 0
    assert image.checksum == image.calculate_checksum()
    assert image.stored_digest == image.calc_digest


@pytest.mark.parametrize(
    "data, match",
    [
        (b"\x7fELF" + b"\x00" * 100, "not the ESP image magic"),
        (b"", "too short"),
        (FW[:200], "past the end of the file"),
        (FW[:0x50] + bytes([FW[0x50] ^ 1]) + FW[0x51:], "checksum|SHA-256"),
        (build_image([(0, b"abcd")], chip_id=77), "not a known ESP32-family chip"),
    ],
)
def test_bad_images_are_refused_with_a_reason(data, match):
    with pytest.raises(FlashError, match=match) as exc:
        inspect_image(data)
    assert "micropython.org" in exc.value.hint
    assert isinstance(exc.value, TagweighError)


def test_corrupted_segment_fails_the_checksum():
    image = bytearray(build_image([(0, b"\x01" * 64)], sha256=False))
    image[40] ^= 0xFF
    with pytest.raises(FlashError, match="checksum"):
        inspect_image(bytes(image))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FlashError, match="cannot read") as exc:
        inspect_image(tmp_path / "nope.bin")
    assert "--firmware" in exc.value.hint


# -- flashing through the emulator -----------------------------------------------------------


def test_flash_writes_verifies_and_reports_progress():
    events = []
    with RomBootloaderEmulator() as emu:
        result = flash(emu, baud=460800, progress=lambda *e: events.append(e))
        assert bytes(emu.flash[0x1000 : 0x1000 + len(FW)]) == FW
        assert emu.baud == 460800
    assert result.chip == "ESP32" and result.written and result.flash_size == "4MB"
    assert result.mac == "24:0a:c4:12:34:56"
    writes = [e for e in events if e[0] == "write"]
    assert writes[-1] == ("write", len(FW), len(FW))
    assert [d for _, d, _ in writes] == sorted(d for _, d, _ in writes)
    assert ("verify", 1, 1) == events[-1]


def test_soft_reset_leaves_the_loader_to_run_the_firmware():
    with RomBootloaderEmulator() as emu:
        result = flash_firmware(emu.port, FW, before="no-reset", connect_attempts=1, baud=115200)
        assert result.reset == "soft-reset"
        assert emu.left_loader  # FLASH_END "run user code" was sent last
        assert emu.commands[-2:] == [FLASH_BEGIN, 0x04]


def test_rerun_skips_the_write_and_keeps_the_filesystem():
    with RomBootloaderEmulator() as emu:
        flash(emu, baud=115200)
        emu.flash[0x200000:0x200010] = b"journal records!"
        begins = emu.commands.count(FLASH_BEGIN)
        again = flash(emu, baud=115200)
        assert not again.written
        assert emu.commands.count(FLASH_BEGIN) == begins  # nothing erased the second time
        assert bytes(emu.flash[0x200000:0x200010]) == b"journal records!"


def test_erase_all_wipes_the_filesystem_too():
    with RomBootloaderEmulator() as emu:
        emu.flash[0x300000:0x300004] = b"old!"
        flash(emu, baud=115200, erase_all=True)
        assert bytes(emu.flash[0x300000:0x300004]) == b"\xff" * 4
        assert bytes(emu.flash[0x1000 : 0x1000 + len(FW)]) == FW


def test_half_written_flash_is_rewritten_on_rerun():
    with RomBootloaderEmulator() as emu:
        flash(emu, baud=115200)
        emu.flash[0x10100:0x10500] = b"\xff" * 0x400  # the app, as after an interrupted write
        assert flash(emu, baud=115200).written
        assert bytes(emu.flash[0x1000 : 0x1000 + len(FW)]) == FW


def test_wrong_chip_is_refused_before_anything_is_erased():
    with RomBootloaderEmulator(fail="wrong_chip") as emu:
        with pytest.raises(FlashError, match="for ESP32 but the board is an ESP32-S3") as exc:
            flash(emu)
        assert FLASH_BEGIN not in emu.commands
        assert set(emu.flash[:0x20000]) == {0xFF}
    assert "another chip" in exc.value.hint


def test_image_too_big_for_the_flash_is_refused_before_erasing():
    big = build_firmware(app_size=256 * 1024)
    with RomBootloaderEmulator(flash_size=256 * 1024) as emu:
        with pytest.raises(FlashError, match="does not fit in 256KB"):
            flash(emu, big, baud=115200)
        assert FLASH_BEGIN not in emu.commands


# -- advice for esptool's failures -------------------------------------------------------------


@pytest.mark.parametrize(
    "fail, advice",
    [
        ("no_sync", "USB cable carries data"),
        ("app_running", "hold BOOT, tap EN"),
        ("bad_checksum", "lower --baud"),
        ("timeout_after_n", "lower --baud"),
    ],
)
def test_emulated_failures_map_to_advice(fail, advice):
    with RomBootloaderEmulator(fail=fail, fail_after=12) as emu:
        with pytest.raises(FlashError) as exc:
            flash(emu, baud=115200)
    assert advice in exc.value.hint
    assert exc.value.exit_code == 3


def test_bad_checksum_says_the_flash_was_touched():
    with RomBootloaderEmulator(fail="bad_checksum") as emu:
        with pytest.raises(FlashError) as exc:
            flash(emu, baud=115200)
    assert "run the same command again" in exc.value.hint


def test_missing_port_advice():
    with pytest.raises(FlashError) as exc:
        flash_firmware("/dev/tagweigh-no-such-port", FW, before="no-reset", connect_attempts=1)
    assert "tagweigh ports" in exc.value.hint
    assert "nothing on the board was changed" in exc.value.hint


def test_busy_port_advice():
    with RomBootloaderEmulator() as emu:
        holder = serial.Serial(emu.port, exclusive=True)
        try:
            with pytest.raises(FlashError) as exc:
                flash(emu)
        finally:
            holder.close()
    assert "another program holds the port" in exc.value.hint


def test_permission_denied_advice_names_dialout():
    """A pty nobody may open, tried by an unprivileged child process (root ignores modes)."""
    with RomBootloaderEmulator() as emu:
        os.chmod(emu.port, 0)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop root, try to flash, report through the pipe
            try:
                os.close(r)
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                try:
                    flash(emu)
                    out = {"hint": None}
                except FlashError as exc:
                    out = {"hint": exc.hint}
                os.write(w, json.dumps(out).encode())
            finally:
                os._exit(0)
        os.close(w)
        reply = b""
        while chunk := os.read(r, 4096):
            reply += chunk
        os.close(r)
        os.waitpid(pid, 0)
    assert "dialout" in json.loads(reply)["hint"]


@pytest.mark.parametrize(
    "message",
    [
        "[Errno 13] could not open port /dev/ttyUSB0: [Errno 13] Permission denied",
        "could not open port /dev/ttyUSB9: [Errno 2] No such file or directory",
        "Could not exclusively lock port /dev/ttyUSB0: [Errno 11] Resource temporarily unavailable",
        "Wrong boot mode detected (0x13)! The chip needs to be in download mode.",
        "Failed to connect to ESP32: No serial data received.",
        "Failed to write to target flash after seq 3 (result was 0107: Checksum error)",
        "Serial data stream stopped: Possible serial noise or corruption.",
        "MD5 of file does not match data in flash!",
        "This chip is ESP32-S3, not ESP32. Wrong chip argument?",
        "File 'x' (length 5000000) at offset 0x00001000 will not fit in 4194304 bytes of flash.",
    ],
)
def test_every_advice_entry_is_reachable(message):
    assert advise(message) is not None


def test_advice_table_entries_each_match_one_sample():
    samples = test_every_advice_entry_is_reachable.pytestmark[0].args[1]
    used = {ADVICE.index(next(a for a in ADVICE if a[0].search(m))) for m in samples}
    assert used == set(range(len(ADVICE)))


def test_unknown_message_has_no_advice():
    assert advise("the moon is made of cheese") is None
