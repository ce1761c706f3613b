"""The station's compact tables in twproto.bodies read back as the layouts SPEC.md fixes."""
import struct

import pytest

from twproto import bodies, messages
from twproto.errors import MessageError

# SPEC 9 (COMMAND arguments), written out: the table bodies keeps as one string must decode to
# exactly this (the host's messages.CMD_ARGS is built from it).
SPEC_CMD_ARGS = {
    1: ("<", (), None),
    2: ("<", (), None),
    3: ("<H", ("tare_g",), None),
    4: ("<", (), None),
    5: ("<I", ("mass_g",), None),
    6: ("<I", ("mass_g",), None),
    7: ("<HHI", ("cal_id", "operator", "time"), None),
    8: ("<B", ("key",), ("value", 0, 228)),
    9: ("<I32s", ("length", "sha256"), None),
    10: ("<I", ("offset",), ("data", 1, 225)),
    11: ("<", (), None),
    12: ("<", (), None),
    13: ("<B", ("on",), None),
    14: ("<H", ("operator",), None),
    15: ("<IH", ("time", "ms"), None),
    16: ("<", (), None),
    17: ("<", (), None),
}


def test_command_layouts_are_the_spec_ones():
    assert messages.CMD_ARGS == SPEC_CMD_ARGS
    assert bodies.CMD_ARGS is messages.CMD_ARGS  # host name still reachable through bodies
    for op, spec in SPEC_CMD_ARGS.items():
        assert bodies.cmd_layout(op) == spec
        fmt, names, tail = spec
        assert len(names) == len(struct.unpack(fmt, bytes(struct.calcsize(fmt))))
        if tail is not None:  # a byte string fills the rest of the body (MAX_BODY - 3)
            assert struct.calcsize(fmt) + tail[2] == messages.MAX_BODY - 3


@pytest.mark.parametrize("op", [0, 18, 255])
def test_unknown_ops_have_no_layout_and_unpack_as_data(op):
    assert bodies.cmd_layout(op) is None
    assert bodies.unpack_command(memoryview(b"\x05\x00" + bytes([op]) + b"xyz")) == (
        5, op, {"data": b"xyz"})


def test_unpack_command_reads_each_layout():
    body = struct.pack("<HB", 9, 7) + struct.pack("<HHI", 3, 201, 1790000000)
    assert bodies.unpack_command(memoryview(body)) == (
        9, 7, {"cal_id": 3, "operator": 201, "time": 1790000000})
    body = struct.pack("<HBI", 4, 10, 64) + b"chunk"
    assert bodies.unpack_command(memoryview(body)) == (4, 10, {"offset": 64, "data": b"chunk"})
    with pytest.raises(MessageError) as e:  # RULESET_CHUNK needs at least one data byte
        bodies.unpack_command(memoryview(struct.pack("<HBI", 4, 10, 64)))
    assert e.value.code == "bad_length" and str(e.value) == "bad_length: data"
    body = struct.pack("<HBB", 2, 8, 1)  # SET_CONFIG: an empty value is allowed
    assert bodies.unpack_command(memoryview(body)) == (2, 8, {"key": 1, "value": b""})


def test_reading_formats_agree_between_packer_and_unpacker():
    from twproto import readingbody

    for name in ("_R_SYNC", "_R_BOOT", "_R_FIXED_SYNC", "_R_FIXED_BOOT"):
        assert getattr(readingbody, name) == getattr(bodies, name), name
    assert struct.calcsize(bodies._R_SYNC) == messages.R_FIXED_SYNC
    assert struct.calcsize(bodies._R_BOOT) == messages.R_FIXED_BOOT


def test_unpack_reading_still_reachable_through_bodies():
    r = messages.Reading(seq=3, step=2, tag_kind=1, time=1790000000, net_g=-5, e_g=20,
                         tag=b"T1")
    buf = bytearray(64)
    n = bodies.pack_reading(buf, 0, r)
    from twproto import readingbody

    back = readingbody.unpack_reading(memoryview(buf)[0:n])
    assert type(back) is bodies.Reading and messages.Reading(**vars(back)) == r
    assert bodies.unpack_reading(memoryview(buf)[0:n]) == r  # the host's, messages.Reading


def test_fixed_layouts_and_host_names_stay_aligned():
    assert set(bodies.LAYOUTS) | {messages.T_EVENT} == set(messages.FIELDS) == set(
        messages.LAYOUTS)
    for t, fmt in bodies.LAYOUTS.items():
        n = len(struct.unpack(fmt, bytes(struct.calcsize(fmt))))
        assert len(messages.FIELDS[t].split()) == n, t
        assert messages.LAYOUTS[t][0] == fmt
    tails = {t: v[2] for t, v in messages.LAYOUTS.items() if v[2] is not None}
    assert tails == {messages.T_RESULT: ("detail", 0, 225)} and 7 + 225 == messages.MAX_BODY


def test_result_detail_bounds_are_the_same_on_the_station():
    buf = bytearray(300)
    n = bodies.pack_fixed(buf, 0, messages.T_RESULT, (1, 0, -2), b"d" * 225)
    assert n == 232
    assert bodies.unpack_fixed(messages.T_RESULT, memoryview(buf)[0:n]) == (1, 0, -2, b"d" * 225)
    assert bodies.pack_fixed(buf, 0, messages.T_RESULT, (1, 0, -2)) == 7  # no detail
    with pytest.raises(MessageError) as e:
        bodies.pack_fixed(buf, 0, messages.T_RESULT, (1, 0, -2), b"d" * 226)
    assert str(e.value) == "bad_field: detail"
    with pytest.raises(MessageError) as e:
        bodies.unpack_fixed(messages.T_RESULT, memoryview(bytes(7 + 226)))
    assert str(e.value) == "bad_length: detail"
    with pytest.raises(MessageError) as e:  # the other types take no trailing bytes
        bodies.unpack_fixed(messages.T_NACK, memoryview(bytes(7)))
    assert str(e.value) == "bad_length"


def _bounds(code):
    if code.endswith("s"):
        return None
    bits = {"B": 8, "H": 16, "I": 32}[code.upper()]
    lo = -(1 << (bits - 1)) if code.islower() else 0
    return lo, lo + (1 << bits) - 1


@pytest.mark.parametrize("t", sorted(bodies.LAYOUTS))
def test_pack_fixed_checks_every_field_by_its_struct_code(t):
    # the station's own guard (the host's message classes check with names before it)
    fmt = bodies.LAYOUTS[t]
    codes = messages._codes(fmt)
    good = [bytes(int(c[:-1])) if c.endswith("s") else _bounds(c)[0] for c in codes]
    buf = bytearray(300)
    assert bodies.pack_fixed(buf, 0, t, tuple(good)) == struct.calcsize(fmt)
    for i, c in enumerate(codes):
        b = _bounds(c)
        if b is None:
            bad = [bytes(int(c[:-1]) + 1), bytes(int(c[:-1]) - 1), "x" * int(c[:-1]), 0]
            ok = [bytearray(int(c[:-1]))]
        else:
            bad = [b[0] - 1, b[1] + 1, "1", None, 1.0]
            ok = [b[1], True]
        for v in ok:
            vals = list(good)
            vals[i] = v
            bodies.pack_fixed(buf, 0, t, tuple(vals))
        for v in bad:
            vals = list(good)
            vals[i] = v
            with pytest.raises(MessageError) as e:
                bodies.pack_fixed(buf, 0, t, tuple(vals))
            assert str(e.value) == "bad_field: field %d" % i, (c, v)
