"""Message bodies: exact layouts, round trips, and the checks on both pack and unpack."""

import struct

import pytest

from twproto import frame as F
from twproto import messages as M
from twproto.errors import MessageError
from twproto.mac import DIR_BRIDGE, DIR_STATION, Mac

KEY = bytes(range(32))
NONCE = bytes(8)


def reading(**kw):
    base = dict(seq=5, flags=M.F_STABLE, step=2, tag_kind=M.TAG_QR_TEXT, verdict=M.WARN,
                reason=7, time=1_767_225_600, net_g=25_340, tare_g=150, e_g=10, operator=17,
                cal_id=3, ruleset_id=0x9C3E51A7, prev=0x2B7F0D44, tag=b"ITSCI-000123456")
    base.update(kw)
    return M.Reading(**base)


def body(msg):
    buf = bytearray(F.MAX_FRAME)
    return bytes(buf[: msg.pack(buf, 0)])


def roundtrip(msg, direction=None):
    direction = direction or (DIR_STATION if msg.TYPE in F.STATION_TYPES else DIR_BRIDGE)
    nonce = NONCE if direction == DIR_BRIDGE else None
    buf = bytearray(F.MAX_FRAME)
    n = M.encode_message(buf, msg, Mac(KEY), direction, nonce)
    t, back = M.decode_frame(memoryview(buf)[:n], Mac(KEY), direction, nonce)
    assert t == msg.TYPE
    return back, n


def test_reading_synced_layout_matches_spec_table():
    b = body(reading())
    assert len(b) == 28 + 15
    seq, flags, sk, v, t, lo, hi, tare, op, cal, rs, prev = struct.unpack_from("<IBBBIHbHHHII", b)
    assert seq == 5
    assert flags == M.F_STABLE | M.F_TIME_SYNCED | 3  # e = 10 g is code 3
    assert sk == (2 << 4) | M.TAG_QR_TEXT
    assert v == M.WARN | (7 << 2)
    assert t == 1_767_225_600 and (hi << 16 | lo) == 25_340
    assert (tare, op, cal, rs, prev) == (150, 17, 3, 0x9C3E51A7, 0x2B7F0D44)
    assert b[28:] == b"ITSCI-000123456"


def test_reading_unsynced_layout():
    b = body(reading(time=None, boot=9, uptime_ms=123_456))
    assert len(b) == 30 + 15 and not b[4] & M.F_TIME_SYNCED
    assert struct.unpack_from("<HI", b, 7) == (9, 123_456)


def test_qr15_reading_frame_is_64_bytes():
    _, n = roundtrip(reading())
    assert n == 64


def test_reading_roundtrip_and_properties():
    r = reading(flags=M.F_STABLE | M.F_ZERO_TRACKED | M.F_PRESET_TARE | M.F_OUT_OF_RANGE)
    back, _ = roundtrip(r)
    assert back == r
    assert back.stable and back.zero_tracked and back.preset_tare and back.out_of_range
    assert back.time_synced and back.mac is not None and len(back.mac) == 16
    back2, _ = roundtrip(reading(time=None, boot=3, uptime_ms=77, flags=0))
    assert not back2.time_synced and (back2.boot, back2.uptime_ms) == (3, 77)
    assert not (back2.stable or back2.zero_tracked or back2.preset_tare or back2.out_of_range)


@pytest.mark.parametrize("net", [-0x800000, -1, 0, 1, 0xFFFF, 0x10000, 0x7FFFFF])
def test_net_is_signed_24_bit(net):
    back, _ = roundtrip(reading(net_g=net))
    assert back.net_g == net


@pytest.mark.parametrize("e", M.E_CODES)
def test_every_division(e):
    back, _ = roundtrip(reading(e_g=e))
    assert back.e_g == e


def test_flags_bits_derived_from_e_and_time_are_ignored_on_pack():
    b = body(reading(flags=0xFF, e_g=1, time=None))
    assert b[4] == M.F_STATUS_MASK  # e code 0, not synced


@pytest.mark.parametrize(
    "kw,code",
    [
        ({"tag": b""}, "tag_empty"),
        ({"tag": b"x" * 65}, "tag_too_long"),
        ({"seq": 0}, "bad_field"),
        ({"seq": 1 << 32}, "bad_field"),
        ({"net_g": 0x800000}, "bad_field"),
        ({"net_g": -0x800001}, "bad_field"),
        ({"tare_g": -1}, "bad_field"),
        ({"e_g": 3}, "bad_field"),
        ({"step": 16}, "bad_field"),
        ({"tag_kind": 5}, "bad_field"),
        ({"verdict": 3}, "bad_field"),
        ({"reason": 64}, "bad_field"),
        ({"time": -1}, "bad_field"),
        ({"time": None, "boot": 0x10000}, "bad_field"),
        ({"operator": "17"}, "bad_field"),
        ({"tag": "text"}, "bad_field"),
    ],
)
def test_reading_pack_rejects(kw, code):
    with pytest.raises(MessageError) as e:
        body(reading(**kw))
    assert e.value.code == code


def test_reading_max_tag():
    back, n = roundtrip(reading(tag=b"t" * 64))
    assert back.tag == b"t" * 64 and n == 3 + 28 + 64 + 16 + 2


def test_unpack_reading_bounds():
    b = body(reading())
    assert M.unpack_reading(memoryview(b)) == reading()
    for cut in (0, 4, 5, 27):
        with pytest.raises(MessageError) as e:
            M.unpack_reading(memoryview(b[:cut]))
        assert e.value.code == "truncated"
    with pytest.raises(MessageError) as e:
        M.unpack_reading(memoryview(b[:28]))
    assert e.value.code == "tag_empty"
    with pytest.raises(MessageError) as e:
        M.unpack_reading(memoryview(b[:28] + b"x" * 65))
    assert e.value.code == "tag_too_long"


def test_chain_link_is_first_four_mac_bytes_le():
    r, _ = roundtrip(reading())
    assert M.chain_link(r.mac) == int.from_bytes(r.mac[:4], "little")


HELLO = M.Hello(device_id=0xC0FFEE, fw_major=1, fw_minor=2, fw_patch=3, proto_min=1,
                proto_max=2, ruleset_id=7, ruleset_version=3, config_hash=9, last_seq=100,
                backlog=4, journal_pct=55, boot=6, boot_first_seq=97, uptime_ms=1000,
                flags=M.SF_TIME_SYNCED | M.SF_MAINTENANCE, nonce=b"abcdefgh", chain_head=0xAABB)

EXAMPLES = [
    HELLO,
    M.Welcome(time=1_767_225_600, ms=999, proto=1, ruleset_id=7, flags=M.WF_TIME_VALID,
              window=8),
    M.Ack([(1, M.ACCEPT), (2, M.REJECT | (63 << 2))]),
    M.Ack([(i + 1, M.WARN) for i in range(M.ACK_MAX)]),
    M.Nack(ref_type=F.T_READING, ref_seq=9, reason=M.NACK_CONFLICT),
    M.Status(raw=-(1 << 31), zero_raw=(1 << 31) - 1, counts_per_kg=20_000, noise_rms=3,
             rate_hz=80, flags=0xFF, hx711_timeouts=1, spikes=2, journal_used=3,
             journal_capacity=4, free_heap=5, uptime_ms=6, boot=7, cal_id=8),
    M.Live(net_g=-0x800000, tare_g=0xFFFF, flags=0xFF, tag_state=M.TS_MULTIPLE),
    M.Event(code=M.EV_TAMPER, severity=M.SEV_CRITICAL, detail=-(1 << 31), uptime_ms=1),
    M.Result(cmd_id=0xFFFF, status=M.RS_BAD_HASH, value=-1, detail=b"x" * (F.MAX_BODY - 7)),
    M.Command(1, M.OP_RULESET_CHUNK, {"offset": 4096, "data": b"d" * (F.MAX_BODY - 7)}),
    M.Command(2, M.OP_SET_CONFIG, {"key": 1, "value": b""}),
    M.Command(3, 200, {"data": b"future"}),
] + [M.Command(10 + op, op, {n: 1 for n in M.CMD_ARGS[op][1]}) for op in M.CMD_ARGS
     if op not in (M.OP_RULESET_BEGIN, M.OP_SET_CONFIG, M.OP_RULESET_CHUNK)]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_roundtrip_examples(msg):
    back, n = roundtrip(msg)
    assert back == msg and n <= F.MAX_FRAME
    assert type(msg).from_dict(msg.as_dict()) == msg


def test_body_sizes():
    assert len(body(HELLO)) == 49
    assert len(body(EXAMPLES[1])) == 13
    assert len(body(M.Nack())) == 6
    assert len(body(EXAMPLES[5])) == 36
    assert len(body(M.Live())) == 7
    assert len(body(M.Event())) == 10
    assert len(body(M.Ack([(1, 0)] * 32))) == 161


@pytest.mark.parametrize(
    "msg,code",
    [
        (M.Hello(proto_min=2, proto_max=1, nonce=bytes(8)), "bad_field"),
        (M.Hello(journal_pct=101, nonce=bytes(8)), "bad_field"),
        (M.Hello(nonce=b"short"), "bad_field"),
        (M.Welcome(ms=1000), "bad_field"),
        (M.Ack([(1, 0)] * 33), "bad_count"),
        (M.Ack([(0, 0)]), "bad_field"),
        (M.Ack([(1, 3)]), "bad_field"),
        (M.Event(severity=4), "bad_field"),
        (M.Live(net_g=1 << 23), "bad_field"),
        (M.Nack(reason=256), "bad_field"),
        (M.Command(1, M.OP_CAL_SPAN, {}), "bad_field"),
        (M.Command(1, M.OP_MAINTENANCE, {"on": 2}), "bad_field"),
        (M.Command(1, M.OP_SET_TIME, {"time": 1, "ms": 1000}), "bad_field"),
        (M.Command(1, M.OP_RULESET_BEGIN, {"length": 1, "sha256": b"x"}), "bad_field"),
        (M.Command(1, M.OP_RULESET_CHUNK, {"offset": 0, "data": b""}), "bad_field"),
        (M.Result(detail=b"x" * 226), "bad_field"),
    ],
)
def test_pack_rejects(msg, code):
    with pytest.raises(MessageError) as e:
        body(msg)
    assert e.value.code == code


def test_unknown_keyword_rejected():
    with pytest.raises(MessageError):
        M.Nack(reson=1)


def test_fixed_bodies_reject_wrong_length():
    for msg in (HELLO, M.Nack(), M.Live(), M.Event(), M.Welcome()):
        b = body(msg)
        for bad, code in ((b[:-1], "truncated"), (b + b"\0", "bad_length")):
            with pytest.raises(MessageError) as e:
                M.unpack(msg.TYPE, memoryview(bad))
            assert e.value.code == code, type(msg).__name__


def test_unknown_command_op_decodes_for_an_unsupported_result():
    back = M.Command.unpack(memoryview(b"\x05\x00\xee\x01\x02"))
    assert (back.cmd_id, back.op, back.args) == (5, 0xEE, {"data": b"\x01\x02"})


def test_unpack_unknown_type():
    with pytest.raises(MessageError) as e:
        M.unpack(0x7F, memoryview(b""))
    assert e.value.code == "bad_type"


def test_decode_frame_checks_direction_without_key():
    buf = bytearray(F.MAX_FRAME)
    n = M.encode_message(buf, reading(), Mac(KEY))
    t, msg = M.decode_frame(bytes(buf[:n]))  # no key: parse only (e.g. HELLO before key lookup)
    assert t == F.T_READING and msg == reading()
    with pytest.raises(Exception) as e:
        M.decode_frame(bytes(buf[:n]), None, DIR_BRIDGE)
    assert e.value.code == "wrong_direction"


def test_codes_are_documented_constants():
    assert M.E_CODES == (1, 2, 5, 10, 20, 50, 100, 200)
    assert (M.ACCEPT, M.WARN, M.REJECT) == (0, 1, 2)
    assert len(M.TAG_KIND_NAMES) == M.TAG_BARCODE + 1
    assert M.STEP_NAMES[M.STEP_EXPORT] == "export"
    assert set(M.OP_NAMES) == set(M.CMD_ARGS)
    assert len(M.RESULT_NAMES) == M.RS_NO_SPACE + 1
    assert max(M.NACK_NAMES) == M.NACK_OUT_OF_ORDER and max(M.EVENT_NAMES) == M.EV_MOTION_TIMEOUT
