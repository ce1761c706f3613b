# Station side of the serial link: frames out (one preallocated TX buffer), frames in (one
# preallocated decoder), MAC on both, and the session nonce of the latest HELLO.
#
# The link takes a byte stream with non-blocking semantics:
#   any() -> number of bytes readable now (0 if none)
#   readinto(buf) -> bytes copied into buf (never waits for more than any() promised)
#   write(buf) -> bytes written
# On the ESP32 that is UsbStream (the USB console); the simulator passes a pty-backed object.
#
# Technicians' tools keep the REPL: a Ctrl-C byte (0x03) received while NO frame is in progress
# (the decoder holds no partial frame) sets `exit_requested`; the app then restores kbd_intr(3),
# closes the journal and returns to the REPL. Bytes inside a frame are never taken as Ctrl-C.
from twproto.errors import ProtocolError
from twproto.frame import Rx, encode, verify
from twproto.port import const, ticks_diff

_CTRL_C = const(0x03)
_SOF = const(0xA1)
_CHUNK = const(64)  # bytes read per poll: bounds the time one poll takes
_IDLE_MS = const(250)  # a partial frame with no new byte for this long is abandoned (line noise)
# The protocol's numbers, inlined (tests/firmware/test_station.py checks them against twproto):
_DIR_STATION = const(0x53)  # twproto.mac.DIR_STATION
_DIR_BRIDGE = const(0x42)  # twproto.mac.DIR_BRIDGE
_NONCE_LEN = const(8)  # twproto.mac.NONCE_LEN
_FRAME = const(1)  # twproto.frame.FRAME
_NEED_MORE = const(0)  # twproto.frame.NEED_MORE
_MAX_FRAME = const(253)  # twproto.frame.MAX_FRAME
_T_COMMAND = const(0x30)  # twproto.frame.T_COMMAND
_NACK_BAD_MAC = const(2)  # twproto.messages.NACK_BAD_MAC


class Link:
    # Buffers (all allocated once, here): tx, one MAX_FRAME (253 B) frame being sent, whose body
    # the station packs at tx[3:]; the decoder's window, 2 x MAX_FRAME (506 B, the SPEC 3 minimum:
    # a bridge COMMAND can be a full 253-byte frame); the 8-byte session nonce.

    def __init__(self, stream, mac, clock, urandom=None):
        # urandom(n) -> n random bytes: os.urandom (the ESP32's hardware RNG) unless given.
        # No weak fallback: a predictable nonce would let old bridge frames be replayed.
        # Attribute names reuse names the app already interns (firmware/MEMORY.md): urandom,
        # mac and clock as the arguments, _s the stream.
        if urandom is None:
            import os

            urandom = os.urandom
        self.urandom = urandom
        self._s = stream
        self.mac = mac
        self.clock = clock
        self.tx = bytearray(_MAX_FRAME)
        self._rx = Rx()
        self.nonce = bytearray(_NONCE_LEN)  # set for each HELLO by twstation.session.hello
        self.exit_requested = False
        self.nack_due = None  # (type, ref, NACK_BAD_MAC): the NACK owed for a frame with a bad MAC
        self._t0 = clock.ticks_ms()
        self.bad_mac = 0  # bridge frames refused for their MAC (diagnostics, tests)

    def seal(self, t, body_len):
        """Frame and sign the body packed at self.tx[3:3+body_len] without sending; return the
        frame length (a READING is journaled before it is sent)."""
        return encode(self.tx, t, body_len, self.mac, _DIR_STATION)

    def send(self, t, body_len):
        """Frame, sign and write the body already packed at self.tx[3:3+body_len]."""
        return self.send_frame(self.tx, self.seal(t, body_len))

    def send_frame(self, frame, n=-1):
        """Write an already complete frame (a journaled READING being resent), or its first n
        bytes; returns the length."""
        if n < 0:
            n = len(frame)
        mv = memoryview(frame)
        off = 0
        tries = 0
        # Bounded: a stalled stream gives up after a few zero-length writes (the frame is then
        # lost on the wire only; readings stay in the journal and are resent).
        while off < n and tries < 8:
            w = self._s.write(mv[off:n])
            if not w:
                tries += 1
                continue
            off += w
        return n

    def poll(self):
        """One non-blocking step. Returns a verified bridge frame (memoryview, valid until the next
        poll) or None. Frames with a bad MAC, CRC or direction are dropped (bad MACs counted)."""
        dec = self._rx
        r = dec.poll()
        if r == _NEED_MORE:
            now = self.clock.ticks_ms()
            n = self._s.any()
            if not n:
                if dec.pending() and ticks_diff(now, self._t0) > _IDLE_MS:
                    dec.abandon()
                    self._t0 = now
                return None
            idle = dec.pending() == 0
            space = dec.space()
            if n > _CHUNK:
                n = _CHUNK
            if n > len(space):
                n = len(space)
            got = self._s.readinto(space[0:n]) or 0
            if idle:
                # Ctrl-C counts only before the first SOF of an idle line.
                for i in range(got):
                    b = space[i]
                    if b == _SOF:
                        break
                    if b == _CTRL_C:
                        self.exit_requested = True
                        return None
            dec.commit(got)
            self._t0 = now
            r = dec.poll()
        f = dec.frame
        if r != _FRAME or f is None:  # an error (counted by the decoder) or more bytes needed
            return None
        try:
            verify(f, self.mac, _DIR_BRIDGE, self.nonce)
        except ProtocolError as e:
            if e.code == "bad_mac":
                self.bad_mac += 1
                t = f[2]
                ref = (f[3] | (f[4] << 8)) if t == _T_COMMAND and f[1] >= 2 else 0
                self.nack_due = (t, ref, _NACK_BAD_MAC)
            return None
        return f


class UsbStream:
    """The ESP32 USB console as a non-blocking byte stream (select.poll on sys.stdin)."""

    def __init__(self):
        import sys
        import select

        # names the app already interns: _rx stdin, _w stdout, _s the poll object, _buf 1 byte
        self._rx = sys.stdin.buffer
        self._w = sys.stdout.buffer
        self._s = select.poll()
        self._s.register(sys.stdin, select.POLLIN)
        self._buf = bytearray(1)

    def any(self):
        return 1 if self._s.poll(0) else 0

    def readinto(self, buf):
        # One byte per ready poll: stdin.read(n) would wait for all n bytes.
        n = 0
        one = self._buf
        while n < len(buf) and self._s.poll(0):
            if not self._rx.readinto(one):
                break
            buf[n] = one[0]
            n += 1
        return n

    def write(self, buf):
        return self._w.write(buf)
