# UART QR / barcode scanner (GM65-class modules): decoded text arrives as terminated lines.
#
#   sc = Scanner(uart, terminator=b"\r", max_line=64)
#   line = sc.poll()       # station loop: bytes of one complete, valid line, or None
#   sc.set_mode(MODE_CONTINUOUS); sc.set_same_code_delay(2000)   # setup, blocking < timeout_ms
#   sc.trigger()           # MODE_COMMAND: ask for one scan (non-blocking)
#
# Lines are assembled in a fixed buffer. A line longer than max_line is dropped whole (counted in
# `overlong`); a line with control characters or invalid UTF-8, or a partial line that stays
# unterminated for line_timeout_ms (wrong terminator, noise, baud mismatch) is dropped (counted in
# `garbage`). The station turns counter changes into EVENTs. poll() reads at most one chunk of
# 64 bytes per call, so one call is bounded however much arrives.
#
# Setup commands (GM65 manual, "serial port instruction"): 7E 00 | type | len | addr(2, big
# endian) | data | CRC(2), CRC-16/XMODEM (poly 0x1021, init 0, big endian) over type..data.
# Types: 0x07 read zone bits, 0x08 write zone bits, 0x09 save zone bits to EEPROM. The module
# answers 02 00 | 00 | 01 | data | CRC (7 bytes; a write is acknowledged with 02 00 00 01 00 33 31)
# and stays silent on a bad CRC. Zone 0x0000: bit 7 LED on success, bit 6 sound on, bits 5-4 aim
# (01 standard), bits 3-2 illumination (01 standard), bits 1-0 mode (00 manual, 01 command,
# 10 continuous, 11 sensor). Checked against the manual: the frame format, the CRC (its examples)
# and zone 0x0000. NOT checked on a module: the trigger (zone 0x0002 bit 0) and the same-code
# delay zone (0x0013: bit 7 enable, bits 6-0 delay in 100 ms) are from other Grow manuals.
from micropython import const

from twproto.port import sleep_ms, ticks_diff, ticks_ms
from twstation.errors import ConfigError, DriverTimeout

MODE_MANUAL = const(0)
MODE_COMMAND = const(1)
MODE_CONTINUOUS = const(2)
MODE_SENSOR = const(3)

_ZONE_MODE = const(0x0000)
_ZONE_TRIGGER = const(0x0002)
_ZONE_SAME_DELAY = const(0x0013)
_MODE_BITS = const(0xD4)  # LED on success, sound on, standard aiming and illumination
_T_READ = const(0x07)
_T_WRITE = const(0x08)
_T_SAVE = const(0x09)
_CHUNK = const(64)


def crc_gm65(buf, start, n):
    """CRC-16/XMODEM over buf[start:start+n] (the GM65 command checksum)."""
    crc = 0
    for i in range(start, start + n):
        crc ^= buf[i] << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


class Scanner:
    def __init__(self, uart, terminator=b"\r", max_line=64, line_timeout_ms=300):
        if len(terminator) not in (1, 2):
            raise ConfigError("scanner terminator must be 1 or 2 bytes (e.g. CR or CR LF)")
        if not 1 <= max_line <= 256:
            raise ConfigError("scanner max_line must be 1..256")
        self._uart = uart
        self._term = terminator[-1]
        self._pre = terminator[0] if len(terminator) == 2 else -1
        self.max_line = max_line
        self.line_timeout_ms = line_timeout_ms
        self._line = bytearray(max_line)
        self._chunk = bytearray(_CHUNK)
        self._pos = 0
        self._end = 0
        self._reply = bytearray(7)
        self._cmd = bytearray(9)
        self.lines = 0
        self.overlong = 0
        self.garbage = 0
        self.replies = 0
        self.reply_errors = 0
        self.reply_data = 0
        self._reset_line()
        self._t_last = ticks_ms()

    def _reset_line(self):
        self._n = 0
        self._over = False
        self._bad = False
        self._cont = 0  # UTF-8 continuation bytes still expected
        self._pre_seen = False
        self._rn = 0  # > 0 while a module reply frame is being collected

    # -- line assembly ---------------------------------------------------------------------------
    def poll(self):
        """One complete valid line (bytes), or None. Never waits; reads at most one chunk."""
        fresh = False
        while True:
            if self._pos >= self._end:
                if fresh:
                    return None
                fresh = True
                n = self._uart.readinto(self._chunk)
                if not n:
                    stale = ticks_diff(ticks_ms(), self._t_last) > self.line_timeout_ms
                    if (self._n or self._rn) and stale:
                        self.garbage += 1  # a partial line nobody terminated
                        self._reset_line()
                    return None
                self._pos = 0
                self._end = n
                self._t_last = ticks_ms()
            c = self._chunk[self._pos]
            self._pos += 1
            line = self._feed(c)
            if line is not None:
                return line

    def _feed(self, c):
        if self._rn:
            return self._feed_reply(c)
        if c == self._term:
            n = self._n
            if self._pre_seen:
                n -= 1  # the CR of CR LF
            if self._over:
                self.overlong += 1
            elif self._bad or self._cont:
                self.garbage += 1
            elif n > 0:
                self.lines += 1
                line = bytes(self._line[:n])
                self._reset_line()
                return line
            self._reset_line()
            return None
        if self._n == 0 and c == 0x02 and not self._over and not self._bad:
            self._reply[0] = c  # start of a module reply frame (02 00 ...)
            self._rn = 1
            return None
        if self._over:
            return None
        if self._n >= self.max_line:
            self._over = True
            return None
        self._line[self._n] = c
        self._n += 1
        if self._pre_seen:
            self._bad = True  # CR in the middle of a CR LF line
        if self._cont:
            if c & 0xC0 != 0x80:
                self._bad = True
            self._cont -= 1
        elif c == self._pre:
            self._pre_seen = True
        elif c < 0x20 or c == 0x7F:
            self._bad = True
        elif c >= 0x80:
            if 0xC2 <= c <= 0xDF:
                self._cont = 1
            elif 0xE0 <= c <= 0xEF:
                self._cont = 2
            elif 0xF0 <= c <= 0xF4:
                self._cont = 3
            else:
                self._bad = True
        return None

    def _feed_reply(self, c):
        r = self._reply
        r[self._rn] = c
        self._rn += 1
        if self._rn == 2 and c != 0x00:  # not a reply after all: 0x02 then text is garbage
            self._rn = 0
            self._line[0] = 0x02
            self._n = 1
            self._bad = True
            return self._feed(c)
        if self._rn < 7:
            return None
        self._rn = 0
        if r[3] == 1 and crc_gm65(r, 2, 3) == (r[5] << 8) | r[6]:
            self.replies += 1
            self.reply_data = r[4] if r[2] == 0 else -1
        else:
            self.reply_errors += 1
        return None

    # -- module commands (setup: blocking with a deadline) ---------------------------------------
    def _send(self, kind, addr, data):
        b = self._cmd
        b[0] = 0x7E
        b[1] = 0x00
        b[2] = kind
        b[3] = 0x01
        b[4] = addr >> 8
        b[5] = addr & 0xFF
        b[6] = data
        crc = crc_gm65(b, 2, 5)
        b[7] = crc >> 8
        b[8] = crc & 0xFF
        self._uart.write(b)

    def command(self, kind, addr, data, timeout_ms=500):
        """Send one zone-bit command and wait for the module's reply. Returns the reply data byte.

        Lines decoded while waiting are dropped (setup runs before the station takes readings).
        """
        before = self.replies
        self._send(kind, addr, data)
        start = ticks_ms()
        while self.replies == before:
            self.poll()
            if ticks_diff(ticks_ms(), start) > timeout_ms:
                raise DriverTimeout("scanner: no reply to command 0x%02x @0x%04x" % (kind, addr))
            sleep_ms(2)
        return self.reply_data

    def set_mode(self, mode):
        if not 0 <= mode <= 3:
            raise ConfigError("scanner mode must be 0..3")
        self.command(_T_WRITE, _ZONE_MODE, _MODE_BITS | mode)

    def set_same_code_delay(self, ms):
        """0 disables the delay; otherwise the same code is not sent again within `ms`."""
        steps = min((ms + 99) // 100, 127)
        self.command(_T_WRITE, _ZONE_SAME_DELAY, 0x80 | steps if steps else 0)

    def read_zone(self, addr):
        return self.command(_T_READ, addr, 1)

    def save(self):
        self.command(_T_SAVE, 0x0000, 0x00)

    def trigger(self):
        """Command mode: start one scan. The module's reply is consumed by poll()."""
        self._send(_T_WRITE, _ZONE_TRIGGER, 0x01)
