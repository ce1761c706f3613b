"""twproto.frame keeps only what the station runs; the host half (twproto.framehost) stays
reachable as frame.X. The private numbers frame and the station link inline must equal the
protocol's public ones (SPEC 1-4)."""

from __future__ import annotations

import sys
from pathlib import Path

from twproto import crc, framehost, mac, port
from twproto import frame as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))


def test_private_copies_match_the_protocol():
    assert F._SOF == framehost.SOF == 0xA1
    assert F._MAC_LEN == mac.MAC_LEN == 16
    assert F._DIR_STATION == mac.DIR_STATION == 0x53
    assert (F._NEED_MORE, F._FRAME, F._ERROR) == (framehost.NEED_MORE, framehost.FRAME,
                                                   framehost.ERROR) == (0, 1, 2)
    assert F.BODY == F._BODY == framehost.HEADER == 3
    assert F._MAX_BODY == F.MAX_BODY and F._T_NACK == F.T_NACK == 0x12
    assert (mac._DIR_STATION, mac._DIR_BRIDGE) == (mac.DIR_STATION, mac.DIR_BRIDGE) == (0x53, 0x42)
    assert (mac._MAC_LEN, mac._KEY_LEN, mac._NONCE_LEN) == (mac.MAC_LEN, mac.KEY_LEN,
                                                            mac.NONCE_LEN) == (16, 32, 8)
    assert F.MAX_FRAME == 3 + F.MAX_BODY + 16 + 2 == 253
    assert sorted(F._TYPES) == sorted(framehost.TYPE_NAMES)
    assert set(F._FROM_STATION) == {F.T_HELLO, F.T_READING, F.T_NACK, F.T_STATUS, F.T_LIVE,
                                    F.T_EVENT, F.T_RESULT}
    assert set(F._FROM_BRIDGE) == {F.T_WELCOME, F.T_ACK, F.T_NACK, F.T_COMMAND}
    assert (tuple(F._FROM_STATION), tuple(F._FROM_BRIDGE)) == (framehost.STATION_TYPES,
                                                              framehost.BRIDGE_TYPES)


def test_link_inlines_the_same_numbers():
    from twstation import link

    assert link._DIR_STATION == mac.DIR_STATION and link._DIR_BRIDGE == mac.DIR_BRIDGE
    assert link._NONCE_LEN == mac.NONCE_LEN
    assert link._FRAME == framehost.FRAME and link._NEED_MORE == framehost.NEED_MORE
    assert link._SOF == framehost.SOF


def test_host_names_reach_through_frame_and_are_the_same_objects():
    for name in ("SOF", "HEADER", "TYPE_NAMES", "STATION_TYPES", "BRIDGE_TYPES", "NEED_MORE",
                 "FRAME", "ERROR", "Decoder", "is_known", "is_authenticated", "frame_len",
                 "frame_type", "frame_mac", "check_direction", "frame_body", "T_READING",
                 "MAX_BODY", "BODY"):
        assert getattr(F, name) is getattr(framehost, name), name
    assert issubclass(F.Decoder, F.Rx)
    try:
        F.no_such_name  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("unknown names must still raise AttributeError")
    for name in ("DIR_STATION", "DIR_BRIDGE", "MAC_LEN", "KEY_LEN", "NONCE_LEN"):
        assert getattr(mac, name) is getattr(framehost, name), name
    assert not hasattr(mac, "no_such_name") and not hasattr(mac, "__path__")


def test_crc_and_port_choose_one_implementation_each():
    assert crc.crc16(b"123456789") == crc.crc16_table(b"123456789") == 0x29B1
    if not port.MICROPYTHON:
        assert crc.crc16 is not crc.crc16_table  # the C one on CPython
        assert port.crc_hqx is not None


def test_reasons_host_half_reaches_through_and_station_half_is_local():
    from twproto import reasons, reasontext

    for name in reasontext.HOST_NAMES:
        assert getattr(reasons, name) is getattr(reasontext, name), name
    assert reasons.rule_id(5) == "NOT-STABLE" and reasons.rule_id(99) == "UNKNOWN-99"
    assert reasons.rule_id(5.0) == "NOT-STABLE"  # equality, as before
    assert reasons.code_of("NOT-STABLE") == 5 and reasons.unpack_verdict(0x16) == (2, 5)
    for bad in ("no_such_name", "_private", "__path__"):
        assert not hasattr(reasons, bad), bad
    assert not hasattr(F, "__path__")


def test_reasons_private_copies_match_the_public_numbers():
    from twproto import reasons, reasontext

    assert (reasons._ACCEPT, reasons._WARN, reasons._REJECT) == (0, 1, 2) == (
        reasons.ACCEPT, reasons.WARN, reasons.REJECT)
    assert reasons.VERDICT_NAMES[reasons._REJECT] == "reject"
    # every public reason code (served from reasontext) is its rule ID's index in RULE_IDS
    codes = [n for n in reasontext.__all__ if n not in ("ACCEPT", "WARN", "REJECT", "MAX_CODE")
             and isinstance(getattr(reasons, n), int)]
    assert len(codes) == len(reasons.RULE_IDS) == 17
    for n in codes:
        assert reasons.RULE_IDS[getattr(reasons, n)] == n.replace("_", "-"), n
        assert getattr(reasons, n) is getattr(reasontext, n)
    assert reasons.VERDICT_NAMES[reasons._ACCEPT] == "accept"
    assert reasons.VERDICT_NAMES[reasons._WARN] == "warn"
    assert reasons._NONE == reasontext.NONE == 0 and reasons.RULE_IDS[reasons._NONE] == "NONE"
    assert reasons._MAX_CODE == reasontext.MAX_CODE == 63
    assert (reasons.ACCEPT, reasons.WARN) == (reasontext.ACCEPT, reasontext.WARN) == (0, 1)
    assert reasons.pack_verdict(2, 63) == 0xFE
    from twproto.reasons import MAX_CODE, NONE  # from-import reaches through too

    assert (MAX_CODE, NONE) == (63, 0)
