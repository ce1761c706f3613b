# Setup commands of GM65-class scanner modules (technician tooling and tests; the station does
# not load this module, so it takes no RAM while the station runs).
#
#   from twstation import gm65
#   gm65.set_mode(sc, gm65.MODE_CONTINUOUS); gm65.set_same_code_delay(sc, 2000)  # blocking
#   gm65.trigger(sc)       # command mode: ask for one scan (non-blocking)
#
# Command frames (GM65 manual, "serial port instruction"): 7E 00 | type | len | addr(2, big
# endian) | data | CRC(2), CRC-16/XMODEM (poly 0x1021, init 0, big endian) over type..data.
# Types: 0x07 read zone bits, 0x08 write zone bits, 0x09 save zone bits to EEPROM. The module
# answers 02 00 | 00 | 01 | data | CRC (7 bytes; a write is acknowledged with 02 00 00 01 00 33 31)
# and stays silent on a bad CRC; Scanner.poll() collects the replies. Zone 0x0000: bit 7 LED on
# success, bit 6 sound on, bits 5-4 aim (01 standard), bits 3-2 illumination (01 standard), bits
# 1-0 mode (00 manual, 01 command, 10 continuous, 11 sensor). Checked against the manual: the
# frame format, the CRC (its examples) and zone 0x0000. NOT checked on a module: the trigger
# (zone 0x0002 bit 0) and the same-code delay zone (0x0013: bit 7 enable, bits 6-0 delay in
# 100 ms) are from other Grow manuals.
from micropython import const

from twproto.port import sleep_ms, ticks_diff, ticks_ms
from twstation.errors import ConfigError, DriverTimeout
from twstation.scanner import crc_gm65

MODE_MANUAL = 0
MODE_COMMAND = 1
MODE_CONTINUOUS = 2
MODE_SENSOR = 3

_ZONE_MODE = const(0x0000)
_ZONE_TRIGGER = const(0x0002)
_ZONE_SAME_DELAY = const(0x0013)
_MODE_BITS = const(0xD4)  # LED on success, sound on, standard aiming and illumination
_T_READ = const(0x07)
_T_WRITE = const(0x08)
_T_SAVE = const(0x09)


def send(sc, kind, addr, data):
    """Write one zone-bit command frame to the scanner's UART (no wait)."""
    b = bytearray((0x7E, 0x00, kind, 0x01, addr >> 8, addr & 0xFF, data, 0, 0))
    crc = crc_gm65(b, 2, 5)
    b[7] = crc >> 8
    b[8] = crc & 0xFF
    sc._io.write(b)


def command(sc, kind, addr, data, timeout_ms=500):
    """Send one zone-bit command and wait for the module's reply. Returns the reply data byte.

    Lines decoded while waiting are dropped (setup runs before the station takes readings).
    """
    before = sc.replies
    send(sc, kind, addr, data)
    start = ticks_ms()
    while sc.replies == before:
        sc.poll()
        if ticks_diff(ticks_ms(), start) > timeout_ms:
            raise DriverTimeout("scanner: no reply to command 0x%02x @0x%04x" % (kind, addr))
        sleep_ms(2)
    return sc.reply_data


def set_mode(sc, mode):
    if not 0 <= mode <= 3:
        raise ConfigError("scanner mode must be 0..3")
    command(sc, _T_WRITE, _ZONE_MODE, _MODE_BITS | mode)


def set_same_code_delay(sc, ms):
    """0 disables the delay; otherwise the same code is not sent again within `ms`."""
    steps = min((ms + 99) // 100, 127)
    command(sc, _T_WRITE, _ZONE_SAME_DELAY, 0x80 | steps if steps else 0)


def read_zone(sc, addr):
    return command(sc, _T_READ, addr, 1)


def save(sc):
    command(sc, _T_SAVE, 0x0000, 0x00)


def trigger(sc):
    """Command mode: start one scan. The module's reply is consumed by Scanner.poll()."""
    send(sc, _T_WRITE, _ZONE_TRIGGER, 0x01)
