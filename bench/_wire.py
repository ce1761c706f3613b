"""Shared by the protocol benchmarks: the reference READING (15-character QR tag) and a signed
MAVLink 2 frame carrying the same body, built with pymavlink's own API."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "protocol"))

from twproto import messages as M  # noqa: E402
from twproto.frame import MAX_FRAME  # noqa: E402
from twproto.mac import DIR_STATION, Mac  # noqa: E402

KEY = bytes(range(0x20, 0x40))
QR = b"ITSCI-000123456"


def reading(seq=1042, tag=QR):
    return M.Reading(seq=seq, flags=M.F_STABLE, step=M.STEP_DEPOT_RECEIVING,
                     tag_kind=M.TAG_QR_TEXT, verdict=M.ACCEPT, time=1767229325, net_g=25340,
                     tare_g=150, e_g=10, operator=17, cal_id=3, ruleset_id=0x9C3E51A7,
                     prev=0x2B7F0D44, tag=tag)


def reading_frame(r, mac=None):
    buf = bytearray(MAX_FRAME)
    n = M.encode_message(buf, r, mac or Mac(KEY), DIR_STATION)
    return bytes(buf[:n])


def reading_body(r):
    buf = bytearray(MAX_FRAME)
    return bytes(buf[: r.pack(buf, 0)])


def mavlink_sender():
    """A MAVLink 2 endpoint that signs outgoing frames (ardupilotmega dialect, DATA64 message)."""
    from pymavlink.dialects.v20 import ardupilotmega as mavlink

    mav = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    mav.signing.secret_key = KEY
    mav.signing.sign_outgoing = True
    mav.signing.link_id = 0
    mav.signing.timestamp = 1
    return mavlink, mav


def mavlink_frame(mavlink, mav, body):
    """DATA64 carrying body (type u8, len u8, data[64]; MAVLink 2 trims trailing zeros)."""
    msg = mavlink.MAVLink_data64_message(0, len(body), body + bytes(64 - len(body)))
    frame = msg.pack(mav)
    mav.seq = (mav.seq + 1) % 256
    return bytes(frame)
