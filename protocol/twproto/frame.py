# Frame codec (SPEC.md "Frame"): SOF LEN TYPE BODY [MAC] CRC.
# encode() writes header, MAC and CRC around a body already placed at buf[3:3+N]; Rx is the
# incremental decoder over a fixed window that resynchronises on the next SOF after any garbage.
#
# This module is resident in the station's heap, so it holds only what the station runs:
# encode, verify, Rx (filled by readinto: space/commit), the numbers the station
# code uses. What only hosts use (Decoder with feed/decode, TYPE_NAMES, the type tuples,
# accessors, frame_body, the type numbers but T_COMMAND, MAX_BODY, BODY, SOF, HEADER,
# NEED_MORE/FRAME/ERROR) lives in twproto.framehost and is reachable
# here as before (module __getattr__ below), so host code and tests keep `frame.X`.
from twproto.crc import crc16
from twproto.errors import FrameError, MacError
from twproto.port import const

MAX_FRAME = const(253)  # header 3 + MAX_BODY + MAC 16 + CRC 2: the hard cap a peer cannot raise
T_COMMAND = const(0x30)  # the one type number the station's link names (it receives commands)
# The other numbers are private here (inlined, no interned name on the station); their public
# names (MAX_BODY, BODY, T_HELLO...) live in framehost and are reached as frame.X (below).
_MAX_BODY = const(232)
_BODY = const(3)  # offset of the body in a frame (= the header's length)
_T_NACK = const(0x12)

# Private copies (inlined by the compiler; tests/protocol/test_frame.py checks them against
# framehost's public names and twproto.mac).
_SOF = const(0xA1)  # start of frame, protocol version 1; 0xA0..0xAF are reserved for versions
_MAC_LEN = const(16)
_DIR_STATION = const(0x53)
_NEED_MORE = const(0)
_FRAME = const(1)
_ERROR = const(2)
# Every type, and the types each side may send (SPEC 4). NACK is the only unauthenticated type
# and may go either way. bytes: `t in` works on both platforms and costs a few bytes; const():
# inlined where used (no global, no interned name on the station; framehost reads them on CPython).
_TYPES = const(b"\x01\x02\x10\x11\x12\x20\x21\x22\x30\x31")
_FROM_STATION = const(b"\x01\x10\x12\x20\x21\x22\x31")
_FROM_BRIDGE = const(b"\x02\x11\x12\x30")
_HAS_FIND = hasattr(bytearray, "find")


def __getattr__(name):
    # Host-only names (see the top): loaded on first use, then kept in this module's globals.
    if name[:2] == "__":  # a probe for a module dunder (__path__, ...): not ours to load
        raise AttributeError(name)
    from twproto import framehost

    v = getattr(framehost, name)
    globals()[name] = v
    return v


def encode(buf, t, body_len, mac=None, direction=_DIR_STATION, nonce=None):
    """Complete the frame whose body is already at buf[3:3+body_len]; return its length.

    Writes SOF/LEN/TYPE, the MAC (authenticated types; needs `mac`, a twproto.mac.Mac) and the
    CRC. Allocates nothing but the digest inside the MAC computation.
    """
    if body_len < 0 or body_len > _MAX_BODY:
        raise FrameError("too_long")
    if t not in _TYPES:
        raise FrameError("bad_type")
    end = _BODY + body_len
    n = end + (2 if t == _T_NACK else _MAC_LEN + 2)
    if len(buf) < n:
        raise FrameError("buffer", "buffer too small")
    buf[0] = _SOF
    buf[1] = body_len
    buf[2] = t
    if t != _T_NACK:
        if mac is None:
            raise MacError("no_key")
        mv = memoryview(buf)
        mac.sign_into(mv[end : end + _MAC_LEN], direction, nonce, mv[0:end])
        end += _MAC_LEN
    c = crc16(buf, 0, end)
    buf[end] = c & 0xFF
    buf[end + 1] = c >> 8
    return n


def verify(frame, mac, direction, nonce=None):
    """Check a decoded frame's type against its sender's direction, then its MAC.

    direction is the SENDER's (DIR_STATION when the bridge receives). Raises FrameError
    'wrong_direction' or MacError 'bad_mac'; NACK frames carry no MAC and always pass.
    """
    t = frame[2]
    if t not in (_FROM_STATION if direction == _DIR_STATION else _FROM_BRIDGE):
        raise FrameError("wrong_direction")
    if t == _T_NACK:
        return
    end = _BODY + frame[1]
    if not mac.verify(direction, nonce, frame[0:end], frame[end : end + _MAC_LEN]):
        raise MacError("bad_mac")


class Rx:
    """Incremental, bounded frame decoder (the station's; hosts use framehost.Decoder, which
    adds feed() and decode()).

    Bytes go into a fixed window (2 * max_frame: space() + commit(n), e.g. uart.readinto);
    poll() returns NEED_MORE (0), FRAME (1: self.frame is a memoryview of the whole frame, valid
    until the next commit/poll) or ERROR (2: self.error is the code of the discarded garbage).
    self.dropped counts discarded bytes, self.errors error outcomes, self.frames good frames.
    """

    def __init__(self, max_frame=MAX_FRAME, capacity=0):
        self.max_frame = max_frame
        # At least two frames; a host may choose more (fewer, larger copies), still fixed.
        self.capacity = capacity if capacity > 2 * max_frame else 2 * max_frame
        self._buf = bytearray(self.capacity)
        self._rx = memoryview(self._buf)  # names the app already interns: _rx, _hold
        self._start = 0
        self._end = 0
        self.frame = None
        self.error = None
        self.dropped = 0
        self.errors = 0
        self.frames = 0
        self._hold = False  # True while a run of garbage is dropped (one ERROR per run)

    def pending(self):
        """Bytes held but not yet decoded."""
        return self._end - self._start

    def _compact(self):
        s = self._start
        if s:
            n = self._end - s
            if n:
                self._rx[0:n] = self._rx[s : s + n]
            self._start = 0
            self._end = n

    def space(self):
        """Writable memoryview of the free tail (for uart.readinto); then call commit(n)."""
        if self._end == self.capacity:
            self._compact()
        return self._rx[self._end : self.capacity]

    def commit(self, n):
        self._end += n

    def abandon(self):
        """The line went idle: give up a partial candidate frame (drop its SOF). True if any."""
        if self._end > self._start:
            self._fail("timeout", 1)
            return True
        return False

    def _fail(self, code, n):
        # drop n bytes and report code
        self._start += n
        self.dropped += n
        if self._start == self._end:
            self._start = self._end = 0
        self.error = code
        self.errors += 1
        self.frame = None
        return _ERROR

    def poll(self):
        """Decode the next outcome: NEED_MORE, FRAME or ERROR (see the class doc)."""
        self.frame = None
        buf = self._buf
        while True:
            s = self._start
            end = self._end
            if s == end:
                self._start = self._end = 0
                return _NEED_MORE
            b = buf[s]
            if b == _SOF:
                break
            # Garbage: skip to the next SOF in the window (or drop all of it). A run of garbage
            # is one ERROR however it was chunked: later parts of the run drop silently.
            if _HAS_FIND:
                i = buf.find(b"\xa1", s, end)
                if i < 0:
                    i = end
            else:  # a port built without bytearray.find
                i = s + 1
                while i < end and buf[i] != _SOF:
                    i += 1
            if not self._hold:
                self._hold = True
                return self._fail("bad_version" if b & 0xF0 == 0xA0 else "bad_sof", i - s)
            self._start = i
            self.dropped += i - s
        self._hold = False
        avail = end - s
        if avail < 2:
            return _NEED_MORE
        n = buf[s + 1]
        if n > _MAX_BODY:
            return self._fail("too_long", 1)
        if avail < 3:
            return _NEED_MORE
        t = buf[s + 2]
        if t not in _TYPES:
            return self._fail("bad_type", 1)
        total = n + (5 if t == _T_NACK else 21)  # header 3 + body + MAC 16 + CRC 2
        if total > self.max_frame:
            return self._fail("too_long", 1)
        if avail < total:
            if end == self.capacity:
                self._compact()
            return _NEED_MORE
        e = s + total - 2
        if buf[e] | (buf[e + 1] << 8) != crc16(buf, s, e):
            return self._fail("bad_crc", 1)
        self.frame = self._rx[s : s + total]
        self._start = s + total
        self.frames += 1
        return _FRAME
