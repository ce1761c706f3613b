# UART QR / barcode scanner (GM65-class modules): decoded text arrives as terminated lines.
#
#   sc = Scanner(uart, terminator=b"\r", max_line=64)
#   line = sc.poll()       # station loop: bytes of one complete, valid line, or None
#
# Lines are assembled in a fixed buffer. A line longer than max_line is dropped whole (counted in
# `overlong`); a line with control characters or invalid UTF-8, or a partial line that stays
# unterminated for 300 ms (_LINE_MS: wrong terminator, noise, baud mismatch) is dropped (counted in
# `garbage`). The station turns counter changes into EVENTs. poll() reads at most one chunk of
# 64 bytes per call, so one call is bounded however much arrives.
#
# The module's setup commands (mode, same-code delay, trigger, save) are in twstation.gm65, which
# the station does not load. Their replies arrive in the same byte stream as the lines, so poll()
# recognises them here: 02 00 | 00 | 01 | data | CRC (7 bytes), CRC-16/XMODEM (crc_gm65) over
# bytes 2..4; a good one is counted in `replies` with its data byte in `reply_data`, a broken one
# in `reply_errors`; neither is ever taken for a line. The constructor's checks and set-up run in
# the cold twstation.drvwork (boot only).
from micropython import const

from twproto.port import ticks_diff, ticks_ms
from twproto.tags import utf8_valid

_LINE_MS = const(300)  # a partial line left unterminated this long is dropped as garbage


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
    # Attributes twstation.drvwork.scanner() sets (declarations for mypy: the compiler emits
    # nothing for them). _buf the line being assembled, _rx the chunk read from the UART, _i/_end
    # the read position and end in _rx, _reply/_len a module reply frame and its bytes collected,
    # _term the terminator's last byte, _pre its first (-1: one-byte terminator).
    _buf: bytearray
    _rx: bytearray
    _reply: bytearray
    _i: int
    _end: int
    _term: int
    _pre: int
    max_line: int
    lines: int
    overlong: int
    garbage: int
    replies: int
    reply_errors: int
    reply_data: int

    def __init__(self, uart, terminator=b"\r", max_line=64):
        # argument checks, buffers and counters: boot only, in the cold twstation.drvwork
        from twstation import drvwork

        self._io = uart
        drvwork.scanner(self, terminator, max_line)
        self._t0 = ticks_ms()

    def reset(self):
        """Forget the partial line (and a partial module reply)."""
        self._n = 0
        self._drop = 0  # 1: bad byte (garbage), 2: past max_line (overlong)
        self._cont = 0  # 1: the first byte of a CR LF terminator was seen
        self._len = 0  # > 0 while a module reply frame is being collected

    def poll(self):
        """One complete valid line (bytes), or None. Never waits; reads at most one chunk."""
        fresh = False
        while True:
            if self._i >= self._end:
                if fresh:
                    return None
                fresh = True
                n = self._io.readinto(self._rx)
                if not n:
                    stale = ticks_diff(ticks_ms(), self._t0) > _LINE_MS
                    if (self._n or self._len) and stale:
                        self.garbage += 1  # a partial line nobody terminated
                        self.reset()
                    return None
                self._i = 0
                self._end = n
                self._t0 = ticks_ms()
            c = self._rx[self._i]
            self._i += 1
            if self._len:  # collecting a module reply frame
                r = self._reply
                r[self._len] = c
                self._len += 1
                if self._len != 2 or c == 0x00:
                    if self._len == 7:
                        self._len = 0
                        if r[3] == 1 and crc_gm65(r, 2, 3) == (r[5] << 8) | r[6]:
                            self.replies += 1
                            self.reply_data = r[4] if r[2] == 0 else -1
                        else:
                            self.reply_errors += 1
                    continue
                # not a reply after all: 0x02 then text is garbage; c is a line byte below
                self._len = 0
                self._buf[0] = 0x02
                self._n = 1
                self._drop = 1
            if c == self._term:
                n = self._n
                if self._cont:
                    n -= 1  # the CR of CR LF
                drop = self._drop
                if drop == 2:
                    self.overlong += 1
                elif drop:
                    self.garbage += 1
                elif n > 0:
                    line = bytes(self._buf[:n])
                    # well-formed UTF-8: twproto.tags' strict check, one validator for the station
                    if utf8_valid(line):
                        self.lines += 1
                        self.reset()
                        return line
                    self.garbage += 1
                self.reset()
                continue
            if self._n == 0 and c == 0x02 and not self._drop:
                self._reply[0] = c  # start of a module reply frame (02 00 ...)
                self._len = 1
                continue
            if self._drop == 2:
                continue
            if self._n >= self.max_line:
                self._drop = 2
                continue
            self._buf[self._n] = c
            self._n += 1
            if self._cont:
                self._drop = 1  # a byte after the CR of a CR LF line: CR in the middle
            if c == self._pre:
                self._cont = 1
            elif c < 0x20 or c == 0x7F:
                self._drop = 1
