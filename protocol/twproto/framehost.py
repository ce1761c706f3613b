# The host half of twproto.frame: what the bridge, the tools and the tests use and the station
# never runs (it would only take room in the station's heap). Reached as twproto.frame.X too
# (frame's module __getattr__), so code keeps importing everything from twproto.frame.
from twproto import frame as _F
from twproto.errors import FrameError
from twproto.frame import MAX_FRAME, T_COMMAND, Rx, encode, verify  # noqa: F401  (re-exported)

# The public protocol numbers the station does not name (it uses frame's private copies;
# tests/protocol/test_frame.py checks they agree).
MAX_BODY = 232
BODY = 3  # offset of the body in a frame (= the header's length)
T_HELLO = 0x01
T_WELCOME = 0x02
T_READING = 0x10
T_ACK = 0x11
T_NACK = 0x12
T_STATUS = 0x20
T_LIVE = 0x21
T_EVENT = 0x22
T_RESULT = 0x31
# twproto.mac's public numbers (the station uses mac's private copies; reached as mac.X)
DIR_STATION = 0x53  # 'S': frame sent by the station
DIR_BRIDGE = 0x42  # 'B': frame sent by the bridge (its MAC input also carries the session nonce)
MAC_LEN = 16
KEY_LEN = 32
NONCE_LEN = 8

SOF = 0xA1  # start of frame, protocol version 1; 0xA0..0xAF are reserved for versions
HEADER = BODY  # SOF LEN TYPE

TYPE_NAMES = {
    T_HELLO: "HELLO", T_WELCOME: "WELCOME", T_READING: "READING", T_ACK: "ACK", T_NACK: "NACK",
    T_STATUS: "STATUS", T_LIVE: "LIVE", T_EVENT: "EVENT", T_COMMAND: "COMMAND", T_RESULT: "RESULT",
}
# Types each side may send. NACK is the only unauthenticated type and may go either way.
# (frame.py's private const copies _FROM_STATION / _FROM_BRIDGE are not module attributes on
# MicroPython; tests/protocol/test_frame_split.py checks these equal them.)
STATION_TYPES = (T_HELLO, T_READING, T_NACK, T_STATUS, T_LIVE, T_EVENT, T_RESULT)
BRIDGE_TYPES = (T_WELCOME, T_ACK, T_NACK, T_COMMAND)

# Decoder.poll() outcomes.
NEED_MORE = 0
FRAME = 1
ERROR = 2


def frame_body(frame):
    """memoryview of the body of a decoded frame."""
    return memoryview(frame)[BODY : BODY + frame[1]]


def sign(mac, direction, nonce, data):
    """The 16-byte MAC of data (bytes-like) sent in `direction` (a twproto.mac.Mac's key)."""
    out = bytearray(MAC_LEN)
    mac.sign_into(out, direction, nonce, data)
    return bytes(out)


def is_known(t):
    return t in TYPE_NAMES


def is_authenticated(t):
    return t != T_NACK


def frame_len(t, body_len):
    return HEADER + body_len + (MAC_LEN if t != T_NACK else 0) + 2


def frame_type(frame):
    return frame[2]


def frame_mac(frame):
    end = HEADER + frame[1]
    return memoryview(frame)[end : end + MAC_LEN]


def check_direction(t, direction):
    """Raise FrameError('wrong_direction') if type t may not be sent by `direction`."""
    if t not in (STATION_TYPES if direction == DIR_STATION else BRIDGE_TYPES):
        raise FrameError("wrong_direction")


class Decoder(Rx):
    """Incremental, bounded frame decoder (twproto.frame.Rx) plus what hosts use.

    feed(data) copies bytes into the fixed window (2 * max_frame) and returns how many it took;
    decode(data) feeds all of data and yields the outcomes. poll() returns NEED_MORE, FRAME
    (self.frame: memoryview of the whole frame, valid until the next feed/poll) or ERROR
    (self.error: code of the discarded garbage). self.dropped counts discarded bytes,
    self.errors error outcomes, self.frames good frames.
    """

    def __init__(self, max_frame=MAX_FRAME, capacity=0):
        if max_frame < HEADER + 2 or max_frame > MAX_FRAME:
            raise FrameError("bad_max_frame")
        super().__init__(max_frame, capacity)

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
                self._rx[e : e + n] = data
            else:
                self._rx[e : e + n] = memoryview(data)[0:n]
            self._end = e + n
        return n

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
