# Golden-vector checks in plain-assert style, with no pytest/hypothesis imports: the harness in
# tests/conftest.py runs every test_* here under CPython and inside the MicroPython VM, setting
# VECTORS_DIR to an absolute path first. Elsewhere call run_all() after setting VECTORS_DIR.
import json
from binascii import hexlify, unhexlify

from twproto.crc import crc16, crc16_table
from twproto.errors import ProtocolError
from twproto.frame import ERROR, FRAME, MAX_FRAME, NEED_MORE, Decoder, TYPE_NAMES
from twproto.mac import DIR_BRIDGE, DIR_STATION, Mac
from twproto.messages import CLASSES, decode_frame, encode_message

VECTORS_DIR = "protocol/vectors"  # relative to the repository root unless a harness sets it

_BY_NAME = {}
for _t in TYPE_NAMES:
    _BY_NAME[TYPE_NAMES[_t]] = _t
_DIRS = {"S": DIR_STATION, "B": DIR_BRIDGE}


def load(name):
    with open(VECTORS_DIR + "/" + name) as f:
        return json.load(f)


def _h(s):
    return None if s is None else unhexlify(s)


def _frames(stream, chunk):
    """Decode stream fed in pieces of `chunk` bytes (0 = whole): (frames as bytes, error codes)."""
    d = Decoder()
    frames = []
    errors = []
    step = len(stream) if chunk == 0 else chunk
    pos = 0
    while True:
        if pos < len(stream):
            piece = stream[pos : pos + step]
            taken = d.feed(piece)
            pos += taken
        r = d.poll()
        if r == FRAME:
            frames.append(bytes(d.frame))
        elif r == ERROR:
            errors.append(d.error)
        elif pos >= len(stream):
            return frames, errors


def first_error(stream, direction, key, nonce):
    """The receiver pipeline: decoder, direction + MAC check, body parse. First failure code."""
    d = Decoder()
    mac = Mac(key)
    for kind, val in d.decode(stream):
        if kind == ERROR:
            return val
        if kind == FRAME:
            try:
                decode_frame(val, mac, direction, nonce)
            except ProtocolError as e:
                return e.code
            return "ok"
    return "incomplete" if d.pending() else "nothing"


def test_crc():
    assert crc16(b"123456789") == 0x29B1
    assert crc16_table(b"123456789") == 0x29B1
    assert crc16(b"xx123456789", 2) == 0x29B1
    assert crc16(b"12345", 0, None, crc16(b"6789x", 0, 0)) != 0  # chaining accepted


def test_frames_encode():
    """fields + key (+ nonce) -> exactly the committed frame bytes."""
    buf = bytearray(MAX_FRAME)
    n_checked = 0
    for v in load("frames.json")["frames"]:
        cls = CLASSES[_BY_NAME[v["type"]]]
        msg = cls.from_dict(v["fields"])
        n = encode_message(buf, msg, Mac(_h(v["key"])), _DIRS[v["direction"]], _h(v["nonce"]))
        got = hexlify(buf[:n]).decode()
        assert got == v["frame"], (v["name"], got)
        n_checked += 1
    assert n_checked >= 30


def test_frames_decode():
    """frame bytes -> the committed fields, after CRC and MAC checks, fed whole and bytewise."""
    for v in load("frames.json")["frames"]:
        fr = unhexlify(v["frame"])
        for chunk in (0, 1):
            frames, errors = _frames(fr, chunk)
            assert frames == [fr] and errors == [], (v["name"], chunk, errors)
        t, msg = decode_frame(fr, Mac(_h(v["key"])), _DIRS[v["direction"]], _h(v["nonce"]))
        assert TYPE_NAMES[t] == v["type"], v["name"]
        assert msg.as_dict() == v["fields"], (v["name"], msg.as_dict())


def test_streams():
    """Garbage + frames: the same frames and error sequence whole, bytewise and in 7-byte chunks."""
    for s in load("frames.json")["streams"]:
        stream = unhexlify(s["stream"])
        want = [unhexlify(f) for f in s["frames"]]
        for chunk in (0, 1, 7):
            frames, errors = _frames(stream, chunk)
            assert frames == want, (s["name"], chunk)
            assert errors == s["errors"], (s["name"], chunk, errors)


def test_negative():
    """Each bad stream fails with exactly the documented code."""
    cases = load("negative.json")["cases"]
    for c in cases:
        got = first_error(unhexlify(c["stream"]), _DIRS[c["direction"]], _h(c["key"]),
                          _h(c["nonce"]))
        assert got == c["error"], (c["name"], got, c["error"])
    assert len(cases) >= 20


def test_decoder_bounded():
    """A long garbage stream never grows the decoder's window."""
    d = Decoder()
    junk = bytes(range(256)) * 8
    for _ in range(4):
        pos = 0
        while pos < len(junk):
            pos += d.feed(junk[pos:])
            while d.poll() != NEED_MORE:
                pass
        assert len(d._buf) == 2 * MAX_FRAME
        assert d.pending() <= 2 * MAX_FRAME


ALL = (test_crc, test_frames_encode, test_frames_decode, test_streams, test_negative,
       test_decoder_bounded)


def run_all():
    """Run every check; return the number that ran (raises AssertionError on the first failure)."""
    for f in ALL:
        f()
    return len(ALL)
