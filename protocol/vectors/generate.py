"""Regenerate the golden vectors: `python protocol/vectors/generate.py` (writes frames.json and
negative.json next to this file). Tests never regenerate: they check the committed JSON against
every implementation, so a change here that alters bytes shows up as a reviewed diff.

Frames are built with twproto; the negative cases that twproto refuses to build (bad lengths,
out-of-range fields) are assembled by hand from a good body, then given a valid MAC and CRC so
each one fails at exactly the check it is named after.
"""

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from twproto import frame as F  # noqa: E402
from twproto import messages as M  # noqa: E402
from twproto.crc import crc16  # noqa: E402
from twproto.mac import DIR_BRIDGE, DIR_STATION, MAC_LEN, Mac  # noqa: E402

KEY = bytes(range(0x20, 0x40))
OTHER_KEY = bytes(range(0x60, 0x80))
NONCE = bytes.fromhex("5a17c0ffee0b0e01")
OLD_NONCE = bytes.fromhex("0011223344556677")
DIRS = {DIR_STATION: "S", DIR_BRIDGE: "B"}
QR = b"ITSCI-000123456"  # 15 characters: the size the frame-size goal is measured on

T0 = 1767225600  # 2026-01-01T00:00:00Z


def reading(**kw):
    base = dict(seq=1042, flags=M.F_STABLE, step=M.STEP_DEPOT_RECEIVING, tag_kind=M.TAG_QR_TEXT,
                verdict=M.ACCEPT, reason=0, time=T0 + 3725, net_g=25340, tare_g=150, e_g=10,
                operator=17, cal_id=3, ruleset_id=0x9C3E51A7, prev=0x2B7F0D44, tag=QR)
    base.update(kw)
    return M.Reading(**base)


def positives():
    v = []

    def add(name, msg, direction=DIR_STATION, note=""):
        v.append((name, msg, direction, note))

    add("reading_synced_qr15", reading(), note="the frame-size reference: 64 bytes")
    add("reading_unsynced", reading(time=None, boot=7, uptime_ms=86_399_123, seq=1043,
                                    flags=M.F_STABLE | M.F_ZERO_TRACKED),
        note="not time-synced since power-up: boot counter + ms since boot")
    add("reading_rfid_uid4", reading(seq=1, prev=0, tag_kind=M.TAG_RFID_UID,
                                     tag=bytes.fromhex("04a1b2c3"), step=M.STEP_MINE_TAGGING),
        note="first reading of a device: prev = 0")
    add("reading_rfid_uid7", reading(tag_kind=M.TAG_RFID_UID, tag=bytes.fromhex("04a23b4c5d6e80"),
                                     e_g=20, net_g=49_980))
    add("reading_max_tag", reading(tag_kind=M.TAG_NDEF_URI, tag=b"https://t.example/" + b"x" * 46),
        note="64-byte tag, the maximum")
    add("reading_negative_net_reject", reading(net_g=-1234, verdict=M.REJECT, reason=5,
                                               flags=M.F_OUT_OF_RANGE, e_g=1, tag_kind=M.TAG_BARCODE,
                                               tag=b"5901234123457"),
        note="underload: out of range with net < 0; station verdict reject, reason 5")
    add("reading_extremes", reading(seq=0xFFFFFFFF, net_g=0x7FFFFF, tare_g=0xFFFF, e_g=200,
                                    flags=M.F_STATUS_MASK, step=15, verdict=M.WARN, reason=63,
                                    operator=0xFFFF, cal_id=0xFFFF, ruleset_id=0xFFFFFFFF,
                                    prev=0xFFFFFFFF, time=0xFFFFFFFF, tag_kind=M.TAG_NDEF_TEXT,
                                    tag=b"\xc3\xa9"))
    add("reading_net_min", reading(net_g=-0x800000, time=None, boot=0, uptime_ms=0))
    add("hello", M.Hello(device_id=0x00C0FFEE, fw_major=1, fw_minor=4, fw_patch=2, proto_min=1,
                         proto_max=1, ruleset_id=0x9C3E51A7, ruleset_version=12,
                         config_hash=0x5EED1234, last_seq=1041, backlog=3, journal_pct=2, boot=7,
                         boot_first_seq=1040, uptime_ms=12_345, flags=M.SF_TIME_SYNCED,
                         nonce=NONCE, chain_head=0x2B7F0D44))
    add("welcome", M.Welcome(time=T0 + 3600, ms=250, proto=1, ruleset_id=0x9C3E51A7,
                             flags=M.WF_TIME_VALID, window=8), DIR_BRIDGE)
    add("ack_two", M.Ack([(1042, M.ACCEPT), (1043, M.WARN | (9 << 2))]), DIR_BRIDGE,
        "the bridge's verdict per reading, same encoding as READING.verdict")
    add("ack_empty", M.Ack([]), DIR_BRIDGE)
    add("ack_max", M.Ack([(1000 + i, i % 3) for i in range(32)]), DIR_BRIDGE, "32 entries")
    add("nack_from_bridge", M.Nack(ref_type=F.T_READING, ref_seq=1042,
                                   reason=M.NACK_STORAGE_UNAVAILABLE), DIR_BRIDGE, "no MAC")
    add("nack_from_station", M.Nack(ref_type=F.T_COMMAND, ref_seq=5, reason=M.NACK_BAD_MAC))
    add("status", M.Status(raw=-8_123_456, zero_raw=-8_200_000, counts_per_kg=21_550,
                           noise_rms=14, rate_hz=10, flags=M.SF_TIME_SYNCED, hx711_timeouts=2,
                           spikes=5, journal_used=40, journal_capacity=2000, free_heap=61_440,
                           uptime_ms=3_600_000, boot=7, cal_id=3))
    add("live", M.Live(net_g=-20, tare_g=150, flags=3 | M.F_STABLE, tag_state=M.TS_PRESENT))
    add("event_overload", M.Event(code=M.EV_OVERLOAD, severity=M.SEV_WARNING, detail=152_300,
                                  uptime_ms=99_000))
    add("event_hx711", M.Event(code=M.EV_HX711_NOT_READY, severity=M.SEV_ERROR, detail=-1,
                               uptime_ms=5))
    add("event_tamper", M.Event(code=M.EV_TAMPER, severity=M.SEV_CRITICAL, detail=0,
                                uptime_ms=0xFFFFFFFF))
    cmds = [
        (M.OP_TARE, {}), (M.OP_ZERO, {}), (M.OP_TARE_PRESET, {"tare_g": 150}),
        (M.OP_CAL_ZERO, {}), (M.OP_CAL_SPAN, {"mass_g": 20_000}),
        (M.OP_CAL_CHECK, {"mass_g": 10_000}),
        (M.OP_CAL_COMMIT, {"cal_id": 4, "operator": 17, "time": T0 + 4000}),
        (M.OP_SET_CONFIG, {"key": 3, "value": b"\x0a\x00"}),
        (M.OP_RULESET_BEGIN, {"length": 1500, "sha256": bytes(range(32))}),
        (M.OP_RULESET_CHUNK, {"offset": 0, "data": b'{"v":1,"rules":[]}'}),
        (M.OP_RULESET_END, {}), (M.OP_REBOOT, {}), (M.OP_MAINTENANCE, {"on": 1}),
        (M.OP_SET_OPERATOR, {"operator": 17}), (M.OP_SET_TIME, {"time": T0 + 3600, "ms": 999}),
        (M.OP_SELF_TEST, {}), (M.OP_GET_STATUS, {}),
    ]
    for i, (op, args) in enumerate(cmds):
        add("command_" + M.OP_NAMES[op], M.Command(i + 1, op, args), DIR_BRIDGE)
    add("command_unknown_op", M.Command(40, 0xEE, {"data": b"\x01\x02"}), DIR_BRIDGE,
        "an op this version does not know: decodes, station answers RESULT unsupported")
    add("result_ok", M.Result(cmd_id=5, status=M.RS_OK, value=20_010, detail=b""))
    add("result_detail", M.Result(cmd_id=6, status=M.RS_REFUSED_MOTION, value=-3,
                                  detail=b"not stable"))
    return v


def frame_of(msg, direction, key=KEY, nonce=NONCE):
    buf = bytearray(F.MAX_FRAME)
    n = M.encode_message(buf, msg, Mac(key), direction, nonce if direction == DIR_BRIDGE else None)
    return bytes(buf[:n])


def raw_frame(t, body, direction=DIR_STATION, key=KEY, nonce=NONCE, mac_dir=None):
    """A frame around an arbitrary body (may be invalid for its type), valid MAC and CRC."""
    buf = bytearray(3 + len(body) + MAC_LEN + 2)
    buf[3 : 3 + len(body)] = body
    d = direction if mac_dir is None else mac_dir
    n = F.encode(buf, t, len(body), Mac(key), d, nonce if d == DIR_BRIDGE else None)
    return bytes(buf[:n])


def recrc(frame):
    b = bytearray(frame)
    c = crc16(b, 0, len(b) - 2)
    b[-2] = c & 0xFF
    b[-1] = c >> 8
    return bytes(b)


def body_of(msg):
    buf = bytearray(F.MAX_FRAME)
    n = msg.pack(buf, 0)
    return bytes(buf[:n])


def negatives():
    good = frame_of(reading(), DIR_STATION)
    body = body_of(reading())
    v = []

    def add(name, stream, error, direction=DIR_STATION, note="", nonce=NONCE):
        v.append({"name": name, "note": note, "direction": DIRS[direction], "key": KEY.hex(),
                  "nonce": nonce.hex() if direction == DIR_BRIDGE else None,
                  "stream": stream.hex(), "error": error})

    flip = bytearray(good)
    flip[-1] ^= 0x01
    add("bad_crc_trailer", bytes(flip), "bad_crc")
    flip = bytearray(good)
    flip[20] ^= 0x40
    add("bad_crc_body_bit", bytes(flip), "bad_crc", note="one flipped bit in the body")
    add("bad_sof", b"\x55" + good[1:], "bad_sof", note="no SOF anywhere: dropped as garbage")
    add("bad_version", recrc(b"\xa2" + good[1:]), "bad_version",
        note="SOF of a future protocol version 0xA2")
    add("too_long", recrc(good[:1] + bytes([F.MAX_BODY + 1]) + good[2:]), "too_long",
        note="LEN 233 > MAX_BODY, rejected before waiting for 250+ bytes")
    add("unknown_type", recrc(good[:2] + b"\x7f" + good[3:]), "bad_type")
    add("incomplete", good[:-5], "incomplete",
        note="stream ends mid-frame: the decoder reports NEED_MORE, not an error")
    flip = bytearray(good)
    flip[3 + len(body) + 2] ^= 0x80
    add("bad_mac", recrc(bytes(flip)), "bad_mac", note="MAC byte altered, CRC recomputed")
    add("wrong_key", frame_of(reading(), DIR_STATION, key=OTHER_KEY), "bad_mac")
    add("reflected_frame", good, "wrong_direction", DIR_BRIDGE,
        "the station's own READING echoed back to it: not a type the bridge sends")
    add("mac_with_bridge_direction", raw_frame(F.T_READING, body, mac_dir=DIR_BRIDGE), "bad_mac",
        note="READING whose MAC input used DIR 'B' + nonce")
    cmd = M.Command(7, M.OP_TARE, {})
    add("command_signed_as_station", raw_frame(F.T_COMMAND, body_of(cmd), mac_dir=DIR_STATION),
        "bad_mac", DIR_BRIDGE, "MAC input used DIR 'S' and no nonce")
    add("command_old_nonce", frame_of(cmd, DIR_BRIDGE, nonce=OLD_NONCE), "bad_mac", DIR_BRIDGE,
        "replayed from an earlier session: MAC bound to another nonce")
    add("welcome_from_station", raw_frame(F.T_WELCOME, body_of(M.Welcome(window=8))),
        "wrong_direction", note="WELCOME is bridge-to-station only")
    long_tag = body_of(reading(tag=b"T" * 64)) + b"T"
    add("tag_too_long", raw_frame(F.T_READING, long_tag), "tag_too_long")
    add("tag_empty", raw_frame(F.T_READING, body[: M.R_FIXED_SYNC]), "tag_empty")
    add("reading_truncated", raw_frame(F.T_READING, body[:20]), "truncated")
    unsynced = body_of(reading(time=None, boot=1, uptime_ms=2))
    add("reading_unsynced_truncated", raw_frame(F.T_READING, unsynced[:29]), "truncated",
        note="flags say not synced: the fixed part is 30 bytes")
    b = bytearray(body)
    b[5] = (b[5] & 0xF0) | 7
    add("reading_bad_tag_kind", raw_frame(F.T_READING, bytes(b)), "bad_field")
    b = bytearray(body)
    b[6] = (b[6] & 0xFC) | 3
    add("reading_bad_verdict", raw_frame(F.T_READING, bytes(b)), "bad_field")
    add("reading_seq_zero", raw_frame(F.T_READING, b"\0\0\0\0" + body[4:]), "bad_field")
    add("hello_extra_byte", raw_frame(F.T_HELLO, body_of(M.Hello(nonce=NONCE)) + b"\0"),
        "bad_length")
    add("hello_truncated", raw_frame(F.T_HELLO, body_of(M.Hello(nonce=NONCE))[:-1]), "truncated")
    add("ack_count_33", raw_frame(F.T_ACK, b"\x21" + b"\x01\0\0\0\0" * 33, mac_dir=DIR_BRIDGE),
        "bad_count", DIR_BRIDGE)
    add("ack_count_mismatch", raw_frame(F.T_ACK, b"\x02\x01\0\0\0\0", mac_dir=DIR_BRIDGE),
        "truncated", DIR_BRIDGE)
    add("ack_bad_verdict", raw_frame(F.T_ACK, b"\x01\x01\0\0\0\x03", mac_dir=DIR_BRIDGE),
        "bad_field", DIR_BRIDGE)
    add("welcome_ms_1000", raw_frame(F.T_WELCOME, struct.pack("<IHBIBB", T0, 1000, 1, 0, 0, 8),
                                     mac_dir=DIR_BRIDGE), "bad_field", DIR_BRIDGE)
    add("command_maintenance_2", raw_frame(F.T_COMMAND, struct.pack("<HBB", 3, M.OP_MAINTENANCE, 2),
                                           mac_dir=DIR_BRIDGE), "bad_field", DIR_BRIDGE)
    add("command_chunk_empty", raw_frame(F.T_COMMAND, struct.pack("<HBI", 3, M.OP_RULESET_CHUNK, 0),
                                         mac_dir=DIR_BRIDGE), "bad_length", DIR_BRIDGE)
    add("command_truncated", raw_frame(F.T_COMMAND, b"\x03\x00", mac_dir=DIR_BRIDGE), "truncated",
        DIR_BRIDGE)
    add("event_bad_severity", raw_frame(F.T_EVENT, struct.pack("<BBiI", 1, 4, 0, 0)), "bad_field")
    add("nack_truncated", raw_frame(F.T_NACK, b"\x10\x01\x00\x00\x00"), "truncated",
        note="NACK carries no MAC, so only CRC protects it")
    add("live_extra_byte", raw_frame(F.T_LIVE, body_of(M.Live()) + b"\0"), "bad_length")
    return v


def streams():
    """Byte streams mixing garbage and frames: the frames and the error sequence are normative."""
    r1 = frame_of(reading(), DIR_STATION)
    r2 = frame_of(reading(seq=1043, tag=b"ITSCI-000123457"), DIR_STATION)
    live = frame_of(M.Live(net_g=5, flags=3), DIR_STATION)
    nack = frame_of(M.Nack(ref_type=0x10, ref_seq=9, reason=1), DIR_STATION)
    bad = bytearray(r1)
    bad[10] ^= 1
    out = []

    def add(name, parts, note=""):
        out.append({"name": name, "note": note, "stream": b"".join(parts).hex()})

    add("mid_stream_start", [r1[17:], r2], "receiver powered up in the middle of a frame")
    add("garbage_between", [b"\x00\xff\x13", r1, b"\xa1", b"\xa1\x05", r2, b"zz", live])
    add("corrupt_then_good", [bytes(bad), r2], "one bit flipped in the first frame")
    add("false_sof_in_garbage", [b"\xa1\x03\x12\x00", nack, r1],
        "a SOF in the garbage looks like a short NACK; its CRC fails, resync finds the real one")
    add("back_to_back", [r1, r2, live, nack, r1])
    add("version_byte_garbage", [b"\xa2\x01\x02", r2])
    return out


def main():
    from twproto.frame import Decoder, ERROR, FRAME

    vectors = []
    for name, msg, direction, note in positives():
        fr = frame_of(msg, direction)
        vectors.append({"name": name, "note": note, "type": F.TYPE_NAMES[msg.TYPE],
                        "direction": DIRS[direction], "key": KEY.hex(),
                        "nonce": NONCE.hex() if direction == DIR_BRIDGE else None,
                        "fields": msg.as_dict(), "frame": fr.hex()})
    sts = []
    for s in streams():
        d = Decoder()
        frames, errors = [], []
        for kind, val in d.decode(bytes.fromhex(s["stream"])):
            if kind == FRAME:
                frames.append(bytes(val).hex())
            elif kind == ERROR:
                errors.append(val)
        s["frames"] = frames
        s["errors"] = errors
        s["dropped"] = d.dropped
        sts.append(s)
    doc = {"protocol": 1, "comment": "Golden vectors: fields + key (+ nonce) -> frame hex. "
           "See protocol/SPEC.md section 'Golden vectors'.", "frames": vectors, "streams": sts}
    with open(os.path.join(HERE, "frames.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    neg = {"protocol": 1, "comment": "Negative vectors: stream -> the first error code the "
           "receiver pipeline (decoder, direction+MAC check, body parse) reports.",
           "cases": negatives()}
    with open(os.path.join(HERE, "negative.json"), "w") as f:
        json.dump(neg, f, indent=1)
        f.write("\n")
    print("wrote %d frame vectors, %d streams, %d negative cases"
          % (len(vectors), len(sts), len(neg["cases"])))


if __name__ == "__main__":
    main()
