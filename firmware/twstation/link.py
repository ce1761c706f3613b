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
import os

from twproto.frame import (
    Decoder, FRAME, ERROR, NEED_MORE, MAX_FRAME, MAX_BODY, BODY, T_COMMAND,
    encode, verify,
)
from twproto.mac import DIR_BRIDGE, DIR_STATION, NONCE_LEN
from twproto.errors import ProtocolError
from twproto.port import ticks_diff

_CTRL_C = 0x03
_SOF = 0xA1
_CHUNK = 64  # bytes read per poll: bounds the time one poll takes
_IDLE_MS = 250  # a partial frame with no new byte for this long is abandoned (line noise)


class Link:
    def __init__(self, stream, mac, clock, urandom=None):
        # urandom(n) -> n random bytes: os.urandom (the ESP32's hardware RNG) unless given.
        # No weak fallback: a predictable nonce would let old bridge frames be replayed.
        self._urandom = urandom if urandom is not None else os.urandom
        self._s = stream
        self._mac = mac
        self._clock = clock
        self.tx = bytearray(MAX_FRAME)
        self.body = memoryview(self.tx)[BODY : BODY + MAX_BODY]  # pack outgoing bodies here
        self._dec = Decoder()
        self.nonce = bytearray(NONCE_LEN)
        self.exit_requested = False
        self.nack_due = None  # (type, ref) of the last frame that failed its MAC
        self._last_rx = clock.ticks_ms()
        # counters for STATUS / diagnostics
        self.bad_mac = 0
        self.bad_frames = 0
        self.sent = 0
        self.received = 0

    def new_nonce(self):
        """Fresh random session nonce (for a new HELLO). Bridge frames must carry a MAC over it."""
        r = self._urandom(NONCE_LEN)
        for i in range(NONCE_LEN):
            self.nonce[i] = r[i]

    def seal(self, t, body_len):
        """Frame and sign the body packed at self.tx[3:3+body_len] without sending; return the
        frame length (a READING is journaled before it is sent)."""
        return encode(self.tx, t, body_len, self._mac, DIR_STATION, None)

    def send(self, t, body_len):
        """Frame, sign and write the body already packed at self.tx[3:3+body_len]."""
        n = encode(self.tx, t, body_len, self._mac, DIR_STATION, None)
        self._write(self.tx, n)
        return n

    def send_frame(self, frame):
        """Write an already complete frame (a journaled READING being resent)."""
        self._write(frame, len(frame))

    def _write(self, buf, n):
        mv = memoryview(buf)
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
        self.sent += 1

    def poll(self):
        """One non-blocking step. Returns a verified bridge frame (memoryview, valid until the next
        poll) or None. Frames with a bad MAC, CRC or direction are dropped and counted."""
        dec = self._dec
        r = dec.poll()
        if r == NEED_MORE:
            now = self._clock.ticks_ms()
            n = self._s.any()
            if not n:
                if dec.pending() and ticks_diff(now, self._last_rx) > _IDLE_MS:
                    dec.abandon()
                    self._last_rx = now
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
            self._last_rx = now
            r = dec.poll()
        if r == ERROR:
            self.bad_frames += 1
            return None
        if r != FRAME:
            return None
        f = dec.frame
        if f is None:  # FRAME always sets it; says so to the type checker
            return None
        try:
            verify(f, self._mac, DIR_BRIDGE, self.nonce)
        except ProtocolError as e:
            if getattr(e, "code", "") == "bad_mac":
                self.bad_mac += 1
                t = f[2]
                ref = (f[3] | (f[4] << 8)) if t == T_COMMAND and f[1] >= 2 else 0
                self.nack_due = (t, ref)
            else:
                self.bad_frames += 1
            return None
        self.received += 1
        return f


class UsbStream:
    """The ESP32 USB console as a non-blocking byte stream (select.poll on sys.stdin)."""

    def __init__(self):
        import sys
        import select

        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._p = select.poll()
        self._p.register(sys.stdin, select.POLLIN)
        self._one = bytearray(1)

    def any(self):
        return 1 if self._p.poll(0) else 0

    def readinto(self, buf):
        # One byte per ready poll: stdin.read(n) would wait for all n bytes.
        n = 0
        one = self._one
        while n < len(buf) and self._p.poll(0):
            if not self._in.readinto(one):
                break
            buf[n] = one[0]
            n += 1
        return n

    def write(self, buf):
        return self._out.write(buf)
