# Frame codec (SPEC.md "Frame"): SOF LEN TYPE BODY [MAC] CRC.
# encode() writes header, MAC and CRC around a body already placed at buf[3:3+N]; Decoder is an
# incremental decoder over a fixed window that resynchronises on the next SOF after any garbage.
from twproto.crc import _hqx, crc16
from twproto.errors import FrameError, MacError
from twproto.mac import DIR_STATION, MAC_LEN

SOF = 0xA1  # start of frame, protocol version 1; 0xA0..0xAF are reserved for versions
MAX_BODY = 232
HEADER = 3
MAX_FRAME = HEADER + MAX_BODY + MAC_LEN + 2  # 253: the hard cap a peer cannot raise
BODY = HEADER  # offset of the body in a frame

T_HELLO = 0x01
T_WELCOME = 0x02
T_READING = 0x10
T_ACK = 0x11
T_NACK = 0x12
T_STATUS = 0x20
T_LIVE = 0x21
T_EVENT = 0x22
T_COMMAND = 0x30
T_RESULT = 0x31

TYPE_NAMES = {
    T_HELLO: "HELLO", T_WELCOME: "WELCOME", T_READING: "READING", T_ACK: "ACK", T_NACK: "NACK",
    T_STATUS: "STATUS", T_LIVE: "LIVE", T_EVENT: "EVENT", T_COMMAND: "COMMAND", T_RESULT: "RESULT",
}
# Types each side may send. NACK is the only unauthenticated type and may go either way.
STATION_TYPES = (T_HELLO, T_READING, T_NACK, T_STATUS, T_LIVE, T_EVENT, T_RESULT)
BRIDGE_TYPES = (T_WELCOME, T_ACK, T_NACK, T_COMMAND)

NEED_MORE = 0
FRAME = 1
ERROR = 2


def is_known(t):
    return t in TYPE_NAMES


def is_authenticated(t):
    return t != T_NACK


def frame_len(t, body_len):
    return HEADER + body_len + (MAC_LEN if t != T_NACK else 0) + 2


def encode(buf, t, body_len, mac=None, direction=DIR_STATION, nonce=None):
    """Complete the frame whose body is already at buf[3:3+body_len]; return its length.

    Writes SOF/LEN/TYPE, the MAC (authenticated types; needs `mac`, a twproto.mac.Mac) and the
    CRC. Allocates nothing but the digest inside the MAC computation.
    """
    if body_len < 0 or body_len > MAX_BODY:
        raise FrameError("too_long")
    if t not in TYPE_NAMES:
        raise FrameError("bad_type")
    n = frame_len(t, body_len)
    if len(buf) < n:
        raise FrameError("buffer", "buffer too small")
    buf[0] = SOF
    buf[1] = body_len
    buf[2] = t
    end = HEADER + body_len
    if t != T_NACK:
        if mac is None:
            raise MacError("no_key")
        mv = memoryview(buf)
        mac.sign_into(mv[end : end + MAC_LEN], direction, nonce, mv[0:end])
        end += MAC_LEN
    c = crc16(buf, 0, end)
    buf[end] = c & 0xFF
    buf[end + 1] = c >> 8
    return n


def frame_type(frame):
    return frame[2]


def frame_body(frame):
    """memoryview of the body of a decoded frame."""
    return memoryview(frame)[HEADER : HEADER + frame[1]]


def frame_mac(frame):
    end = HEADER + frame[1]
    return memoryview(frame)[end : end + MAC_LEN]


def check_direction(t, direction):
    """Raise FrameError('wrong_direction') if type t may not be sent by `direction`."""
    if t not in (STATION_TYPES if direction == DIR_STATION else BRIDGE_TYPES):
        raise FrameError("wrong_direction")


def verify(frame, mac, direction, nonce=None):
    """Check a decoded frame's type against its sender's direction, then its MAC.

    direction is the SENDER's (DIR_STATION when the bridge receives). Raises FrameError
    'wrong_direction' or MacError 'bad_mac'; NACK frames carry no MAC and always pass.
    """
    t = frame[2]
    if t not in (STATION_TYPES if direction == DIR_STATION else BRIDGE_TYPES):
        raise FrameError("wrong_direction")
    if t == T_NACK:
        return
    end = HEADER + frame[1]
    if not mac.verify(direction, nonce, frame[0:end], frame[end : end + MAC_LEN]):
        raise MacError("bad_mac")


_HAS_FIND = hasattr(bytearray, "find")
_SOF_BYTES = bytes((SOF,))


class Decoder:
    """Incremental, bounded frame decoder.

    feed(data) copies bytes into a fixed window (2 * max_frame) and returns how many it took;
    poll() returns NEED_MORE, FRAME (self.frame: memoryview of the whole frame, valid until the
    next feed/poll) or ERROR (self.error: code of the discarded garbage). self.dropped counts
    discarded bytes, self.errors error outcomes, self.frames good frames.
    """

    def __init__(self, max_frame=MAX_FRAME, capacity=0):
        if max_frame < HEADER + 2 or max_frame > MAX_FRAME:
            raise FrameError("bad_max_frame")
        self.max_frame = max_frame
        # At least two frames; a host may choose more (fewer, larger copies), still fixed.
        self.capacity = capacity if capacity > 2 * max_frame else 2 * max_frame
        self._buf = bytearray(self.capacity)
        self._mv = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self.frame = None
        self.error = None
        self.dropped = 0
        self.errors = 0
        self.frames = 0
        self._hunting = False

    def pending(self):
        """Bytes held but not yet decoded."""
        return self._end - self._start

    def _compact(self):
        s = self._start
        if s:
            n = self._end - s
            if n:
                self._mv[0:n] = self._mv[s : s + n]
            self._start = 0
            self._end = n

    def space(self):
        """Writable memoryview of the free tail (for uart.readinto); then call commit(n)."""
        if self._end == self.capacity:
            self._compact()
        return self._mv[self._end : self.capacity]

    def commit(self, n):
        self._end += n

    def feed(self, data):
        """Copy as much of data as fits; return the count taken (poll() to make room)."""
        self.frame = None
        free = self.capacity - self._end
        n = len(data)
        if n > free:
            self._compact()
            free = self.capacity - self._end
            if n > free:
                n = free
        if n:
            e = self._end
            if n == len(data):
                self._mv[e : e + n] = data
            else:
                self._mv[e : e + n] = memoryview(data)[0:n]
            self._end = e + n
        return n

    def abandon(self):
        """The line went idle: give up a partial candidate frame (drop its SOF). True if any."""
        if self._end > self._start:
            self._drop(1)
            self.errors += 1
            self.error = "timeout"
            return True
        return False

    def _drop(self, n):
        self._start += n
        self.dropped += n
        if self._start == self._end:
            self._start = self._end = 0

    def _fail(self, code, n):
        self._drop(n)
        self.error = code
        self.errors += 1
        self.frame = None
        return ERROR

    def poll(self):
        """Decode the next outcome: NEED_MORE, FRAME or ERROR (see the class doc)."""
        self.frame = None
        buf = self._buf
        while True:
            s = self._start
            end = self._end
            if s == end:
                self._start = self._end = 0
                return NEED_MORE
            b = buf[s]
            if b == SOF:
                break
            # Garbage: skip to the next SOF in the window (or drop all of it). A run of garbage
            # is one ERROR however it was chunked: later parts of the run drop silently.
            if _HAS_FIND:
                i = buf.find(_SOF_BYTES, s, end)
                if i < 0:
                    i = end
            else:
                i = s + 1
                while i < end and buf[i] != SOF:
                    i += 1
            if not self._hunting:
                self._hunting = True
                return self._fail("bad_version" if b & 0xF0 == 0xA0 else "bad_sof", i - s)
            self._drop(i - s)
        self._hunting = False
        avail = end - s
        if avail < 2:
            return NEED_MORE
        n = buf[s + 1]
        if n > MAX_BODY:
            return self._fail("too_long", 1)
        if avail < 3:
            return NEED_MORE
        t = buf[s + 2]
        if t not in TYPE_NAMES:
            return self._fail("bad_type", 1)
        total = n + (5 if t == T_NACK else 21)  # header 3 + body + MAC 16 + CRC 2
        if total > self.max_frame:
            return self._fail("too_long", 1)
        if avail < total:
            if end == self.capacity:
                self._compact()
            return NEED_MORE
        e = s + total - 2
        if _hqx is None:
            c = crc16(buf, s, e)
        else:
            c = _hqx(self._mv[s:e], 0xFFFF)
        if buf[e] | (buf[e + 1] << 8) != c:
            return self._fail("bad_crc", 1)
        self.frame = self._mv[s : s + total]
        self._start = s + total
        self.frames += 1
        return FRAME

    def decode(self, data):
        """Generator for hosts: feed all of data, yield (FRAME, frame_mv) / (ERROR, code)."""
        mv = memoryview(data)
        pos = 0
        total = len(data)
        while True:
            if pos < total:
                pos += self.feed(mv[pos:])
            r = self.poll()
            if r == FRAME:
                yield r, self.frame
            elif r == ERROR:
                yield r, self.error
            elif pos >= total:
                return
