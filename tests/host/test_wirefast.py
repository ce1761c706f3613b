"""The bridge's CPython fast paths give exactly what twproto gives (hypothesis)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tagweigh.wirefast import ack_frame, tag_text, unpack_reading
from twproto import frame as F
from twproto import messages as M
from twproto.errors import MessageError
from twproto.mac import DIR_BRIDGE, Mac
from twproto.tags import fallback_text

MAC = Mac(bytes(range(32)))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 15), st.one_of(
    st.binary(max_size=70),
    st.text(max_size=70).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.from_regex(r"\s*SK[0-9A-Z]{8}\s*", fullmatch=True).map(str.encode),
))
def test_tag_text_is_fallback_text(kind, tag):
    assert tag_text(kind, tag) == fallback_text(kind, tag)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2**32 - 1), st.integers(0, 2).flatmap(
    lambda v: st.integers(0, 63).map(lambda r: v | (r << 2)))), max_size=M.ACK_MAX), st.binary(min_size=8, max_size=8))
def test_ack_frame_is_twproto_ack(entries, nonce):
    a, b = bytearray(F.MAX_FRAME), bytearray(F.MAX_FRAME)
    n = ack_frame(a, entries, MAC, nonce)
    m = M.encode_message(b, M.Ack(entries), MAC, DIR_BRIDGE, nonce)
    assert a[:n] == b[:m]


def _frame(body: bytes) -> bytes:
    return bytes([F.SOF, len(body), F.T_READING]) + body + bytes(18)


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=F.MAX_BODY), st.booleans())
def test_unpack_reading_matches_twproto_on_any_body(body, synced):
    if len(body) > 4:  # steer half the cases to the other time layout
        body = body[:4] + bytes([(body[4] | 0x10) if synced else (body[4] & ~0x10)]) + body[5:]
    try:
        want = M.unpack_reading(memoryview(body))
    except MessageError as exc:
        want = exc.args
    try:
        got = unpack_reading(_frame(body))
    except MessageError as exc:
        assert want == exc.args
        return
    assert not isinstance(want, tuple), want
    for name in M.Reading.NAMES:
        if name in ("boot", "uptime_ms") and want.time is not None:
            continue  # not on the wire for a synced reading
        assert getattr(got, name) == getattr(want, name), name
    assert (got.stable, got.out_of_range, got.time_synced) == (want.stable, want.out_of_range, want.time_synced)


def test_unpack_reading_real_frame_and_mac():
    buf = bytearray(F.MAX_FRAME)
    r = M.Reading(seq=7, flags=M.F_STABLE, step=2, tag_kind=3, time=1790000000, net_g=-1234, tare_g=5,
                  e_g=20, operator=201, cal_id=3, ruleset_id=0xDEADBEEF, prev=0x01020304, tag=b"SK0010001X")
    n = M.encode_message(buf, r, MAC)
    got = unpack_reading(bytes(buf[:n]))
    assert (got.seq, got.net_g, got.e_g, got.tag, got.ruleset_id) == (7, -1234, 20, b"SK0010001X", 0xDEADBEEF)
    assert got.mac == bytes(buf[n - 18 : n - 2])
    assert struct.unpack_from("<I", got.mac)[0] == M.chain_link(got.mac)
