"""The emulated ESP32 ROM bootloader, driven by the real esptool v5 API (ROM mode, no reset)."""

import hashlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagweigh.espimage import build_firmware
from tagweigh.romemu import RomBootloaderEmulator, SlipDecoder, slip_encode

esptool_cmds = pytest.importorskip("esptool.cmds")
from esptool.util import FatalError, NotImplementedInROMError  # noqa: E402

FLASH_BEGIN, FLASH_DATA, SPI_FLASH_MD5, READ_FLASH_SLOW = 0x02, 0x03, 0x13, 0x0E


def connect(emu, attempts=1):
    return esptool_cmds.detect_chip(emu.port, 115200, "no-reset", connect_attempts=attempts)


@pytest.fixture
def emu():
    with RomBootloaderEmulator() as e:
        yield e


@pytest.fixture
def esp(emu):
    loader = connect(emu)
    yield loader
    loader._port.close()


# -- SLIP framing --------------------------------------------------------------------------


@settings(max_examples=60)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5))
def test_slip_round_trip_whole_and_byte_by_byte(packets):
    wire = b"".join(slip_encode(p) for p in packets)
    assert SlipDecoder().feed(wire) == packets
    dec = SlipDecoder()
    got = []
    for i in range(len(wire)):
        got += dec.feed(wire[i : i + 1])
    assert got == packets


def test_slip_drops_oversized_frame_and_counts_noise():
    dec = SlipDecoder(limit=10)
    out = dec.feed(b"junk" + slip_encode(b"x" * 11) + slip_encode(b"ok"))
    assert out == [b"ok"]
    assert dec.noise == 4 and dec.dropped == 1


def test_slip_drops_frame_with_bad_escape():
    assert SlipDecoder().feed(b"\xc0ab\xdb\x01cd\xc0" + slip_encode(b"next")) == [b"next"]


# -- esptool against the emulator ----------------------------------------------------------


def test_detect_chip_finds_an_esp32_rom_loader(emu, esp):
    assert esp.CHIP_NAME == "ESP32"
    assert not esp.IS_STUB and not esp.sync_stub_detected
    assert esp.get_chip_description() == "ESP32-D0WD-V3 (revision v3.0)"
    assert esp.read_mac() == (0x24, 0x0A, 0xC4, 0x12, 0x34, 0x56)
    # The ESP32 ROM does not know GET_SECURITY_INFO: esptool falls back to the magic register.
    assert emu.commands[:2] == [0x08, 0x14]


def test_write_verify_and_read_back_a_firmware_image_at_0x1000(emu, esp):
    image = build_firmware()
    esptool_cmds.attach_flash(esp)
    assert esptool_cmds.detect_flash_size(esp) == "4MB"
    esptool_cmds.write_flash(esp, [(0x1000, image)], flash_size="keep")
    esptool_cmds.verify_flash(esp, [(0x1000, image)])
    assert bytes(emu.flash[0x1000 : 0x1000 + len(image)]) == image
    assert emu.flash[0x1000 + len(image)] == 0xFF  # nothing written past the image
    assert FLASH_BEGIN in emu.commands and SPI_FLASH_MD5 in emu.commands
    back = esptool_cmds.read_flash(esp, 0x1000, 300)  # READ_FLASH_SLOW, 64 bytes at a time
    assert back == image[:300]
    assert emu.commands.count(READ_FLASH_SLOW) == 5


def test_md5_is_rom_style_32_hex_characters(emu, esp):
    esptool_cmds.attach_flash(esp)
    emu.flash[0:4] = b"abcd"
    assert esp.flash_md5sum(0, 4096) == hashlib.md5(bytes(emu.flash[0:4096])).hexdigest()


def test_verify_flash_notices_a_changed_byte(emu, esp):
    image = build_firmware(app_size=1024)
    esptool_cmds.attach_flash(esp)
    esptool_cmds.write_flash(esp, [(0x1000, image)])
    emu.flash[0x1000 + 100] ^= 0xFF
    with pytest.raises(FatalError, match="Verification failed"):
        esptool_cmds.verify_flash(esp, [(0x1000, image)])


def test_compressed_write_works_on_the_esp32_rom(emu, esp):
    data = b"\x00" * 20000 + bytes(range(256)) * 8
    esptool_cmds.attach_flash(esp)
    esptool_cmds.write_flash(esp, [(0x20000, data)], compress=True)
    assert bytes(emu.flash[0x20000 : 0x20000 + len(data)]) == data
    assert 0x10 in emu.commands and 0x11 in emu.commands  # FLASH_DEFL_BEGIN / DATA


def test_erase_region_goes_through_flash_begin_and_chip_erase_needs_the_stub(emu, esp):
    esptool_cmds.attach_flash(esp)
    emu.flash[0x3000:0x5000] = b"\x00" * 0x2000
    esptool_cmds.erase_region(esp, 0x3000, 0x1000)
    assert set(emu.flash[0x3000:0x4000]) == {0xFF}
    assert set(emu.flash[0x4000:0x5000]) == {0x00}  # only the asked sector
    with pytest.raises(NotImplementedInROMError):
        esptool_cmds.erase_flash(esp)  # ERASE_FLASH is a stub-only command


def test_flash_begin_before_spi_attach_is_refused(esp):
    with pytest.raises(FatalError, match="0106"):
        esp.flash_begin(4096, 0)


def test_data_packet_checksum_is_checked(emu, esp):
    esptool_cmds.attach_flash(esp)
    esp.flash_begin(1024, 0x8000)
    block = bytes(range(256)) * 4
    with pytest.raises(FatalError, match="0107"):
        esp.check_command("write", FLASH_DATA, b"\x00\x04\x00\x00" + b"\x00" * 12 + block,
                          esp.checksum(block) ^ 1)
    esp.flash_block(block, 0)  # the right checksum is accepted
    assert bytes(emu.flash[0x8000:0x8400]) == block


def test_flash_programming_only_clears_bits_like_nor_flash(emu, esp):
    esptool_cmds.attach_flash(esp)
    esp.flash_begin(1024, 0x9000)
    esp.flash_block(b"\x0f" * 1024, 0)
    emu._write = [0x9000, 1024, 0, 1, None, 0x9000]  # a second pass without erasing
    esp.flash_block(b"\xf3" * 1024, 0)
    assert set(emu.flash[0x9000:0x9400]) == {0x03}


def test_change_baud_is_recorded(emu, esp):
    esp.change_baud(460800)
    assert emu.baud == 460800
    assert esp.read_reg(0x40001000) == 0x00F01D83  # still talking after the switch


def test_flash_beyond_rom_default_2mb_needs_spi_set_params(emu, esp):
    esp.flash_spi_attach(0)
    with pytest.raises(FatalError):
        esp.flash_begin(4096, 0x300000)  # the ROM assumes 2 MB until told
    esp.flash_set_parameters(4 * 1024 * 1024)
    esp.flash_begin(4096, 0x300000)


# -- failure injection ---------------------------------------------------------------------


def test_no_sync_gives_no_serial_data():
    with RomBootloaderEmulator(fail="no_sync") as emu:
        with pytest.raises(FatalError, match="No serial data received"):
            connect(emu)


def test_app_running_gives_invalid_packet_head():
    with RomBootloaderEmulator(fail="app_running") as emu:
        with pytest.raises(FatalError, match="Invalid head of packet"):
            connect(emu)


def test_wrong_chip_answers_as_esp32_s3():
    with RomBootloaderEmulator(fail="wrong_chip") as emu:
        esp = connect(emu)
        assert esp.CHIP_NAME == "ESP32-S3"
        esp._port.close()


def test_bad_checksum_fails_the_first_data_packet():
    with RomBootloaderEmulator(fail="bad_checksum") as emu:
        esp = connect(emu)
        esptool_cmds.attach_flash(esp)
        with pytest.raises(FatalError, match="Checksum error"):
            esptool_cmds.write_flash(esp, [(0x10000, b"\x55" * 2048)])
        esp._port.close()


def test_timeout_after_n_commands_stops_the_stream():
    with RomBootloaderEmulator(fail="timeout_after_n", fail_after=5) as emu:
        esp = connect(emu)
        t = time.monotonic()
        with pytest.raises(FatalError, match="Serial data stream stopped"):
            for _ in range(20):
                esp.read_reg(0x40001000)
        assert time.monotonic() - t < 10
        esp._port.close()


def test_unknown_fail_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown fail mode"):
        RomBootloaderEmulator(fail="gremlins")
