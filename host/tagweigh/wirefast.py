"""CPython fast paths for the two per-reading encode/decode steps the bridge does most.

twproto is written for MicroPython first (allocation-free loops, range checks on every field);
on the bridge those same loops are the largest cost after the rules. These two functions give
byte-for-byte the same results as twproto (tests/host/test_wirefast.py checks them against
twproto with hypothesis) using CPython's C-level str/bytes/struct methods:

- `tag_text(kind, tag)` == twproto.tags.fallback_text(kind, tag)
- `ack_frame(buf, entries, mac, nonce)` == encode_message(buf, Ack(entries), mac, DIR_BRIDGE, nonce)
  for entries the bridge built itself (seq 1..2^32-1, verdict bytes from the rules engine).
- `unpack_reading(frame)` == twproto.messages.unpack_reading(body) (same fields, same errors).
"""

from __future__ import annotations

import struct
from itertools import chain

from twproto import frame as F
from twproto.errors import MessageError
from twproto.mac import DIR_BRIDGE
from twproto.messages import ACK_MAX, E_CODES as _E_CODES, F_E_MASK as _F_E_MASK
from twproto.messages import F_OUT_OF_RANGE as _F_OUT_OF_RANGE, F_STABLE as _F_STABLE
from twproto.messages import F_STATUS_MASK as _F_STATUS, F_TIME_SYNCED as _F_SYNCED
from twproto.messages import TAG_MAX as _TAG_MAX

__all__ = ["FastReading", "ack_frame", "tag_text", "unpack_reading"]

_BLANKS = " \t\r\n"
_ACK_STRUCTS = [struct.Struct("<B" + "IB" * n) for n in range(ACK_MAX + 1)]


def tag_text(kind: int, tag: bytes) -> str:
    """Canonical tag text (UID as upper-case hex, text kinds stripped UTF-8), or '?'+hex."""
    if 0 < len(tag) <= _TAG_MAX:
        if kind == 0:
            return tag.hex().upper()
        try:
            s = tag.decode("utf-8").strip(_BLANKS)
        except UnicodeDecodeError:  # CPython's strict decoder refuses what canon.utf8_valid refuses
            s = ""
        if s:
            return s
    return "?" + tag[:_TAG_MAX].hex().upper()


def ack_frame(buf: bytearray, entries: list[tuple[int, int]], mac, nonce: bytes) -> int:
    """Write a complete, signed ACK frame for up to ACK_MAX (seq, verdict byte) entries into buf;
    return its length."""
    n = len(entries)
    _ACK_STRUCTS[n].pack_into(buf, F.HEADER, n, *chain.from_iterable(entries))
    return F.encode(buf, F.T_ACK, 1 + 5 * n, mac, DIR_BRIDGE, nonce)


_R_SYNC = struct.Struct("<IBBBIHbHHHII")  # SPEC.md READING body, time synced
_R_BOOT = struct.Struct("<IBBBHIHbHHHII")  # not synced: boot counter + uptime


class FastReading:
    """The attributes of twproto.messages.Reading that the bridge and the rules read."""

    __slots__ = ("seq", "flags", "step", "tag_kind", "verdict", "reason", "time", "boot", "uptime_ms",
                 "net_g", "tare_g", "e_g", "operator", "cal_id", "ruleset_id", "prev", "tag", "mac")

    @property
    def stable(self) -> bool:
        return bool(self.flags & _F_STABLE)

    @property
    def out_of_range(self) -> bool:
        return bool(self.flags & _F_OUT_OF_RANGE)

    @property
    def time_synced(self) -> bool:
        return self.time is not None


def unpack_reading(frame: bytes) -> FastReading:
    """Parse the READING body of a complete frame (CRC already checked). Same results and same
    MessageError codes as twproto.messages.unpack_reading on the body."""
    n = frame[1]
    if n < 5:
        raise MessageError("truncated")
    flags = frame[7]
    r = FastReading()
    if flags & _F_SYNCED:
        fixed = 28
        if n < fixed:
            raise MessageError("truncated")
        (r.seq, f, sk, v, r.time, lo, hi, r.tare_g, r.operator, r.cal_id, r.ruleset_id,
         r.prev) = _R_SYNC.unpack_from(frame, 3)
        r.boot = 0
        r.uptime_ms = 0
    else:
        fixed = 30
        if n < fixed:
            raise MessageError("truncated")
        (r.seq, f, sk, v, r.boot, r.uptime_ms, lo, hi, r.tare_g, r.operator, r.cal_id,
         r.ruleset_id, r.prev) = _R_BOOT.unpack_from(frame, 3)
        r.time = None
    if n == fixed:
        raise MessageError("tag_empty")
    if n - fixed > _TAG_MAX:
        raise MessageError("tag_too_long")
    if r.seq == 0:
        raise MessageError("bad_field", "seq")
    kind = sk & 0x0F
    if kind > 4:
        raise MessageError("bad_field", "tag_kind")
    if v & 3 > 2:
        raise MessageError("bad_field", "verdict")
    r.flags = flags & _F_STATUS
    r.e_g = _E_CODES[flags & _F_E_MASK]
    r.step = sk >> 4
    r.tag_kind = kind
    r.verdict = v & 3
    r.reason = v >> 2
    r.net_g = (hi << 16) | lo
    r.tag = frame[3 + fixed : 3 + n]
    end = 3 + n
    r.mac = frame[end : end + 16]
    return r
