# READING bodies unpacked (SPEC.md 5.3): what the bridge and the tools receive, and what the
# station reads back from its own journal once per boot (twstation.assemble replays the pending
# readings into the rule state). Not in twproto.bodies: that module stays resident in the
# station's heap and the station never unpacks a READING while it runs; this one is imported at
# boot, then forgotten (twstation.COLD). The host reaches it as twproto.messages.unpack_reading
# (its Reading class) and bodies.unpack_reading.
import struct

from twproto.bodies import E_CODES, Reading
from twproto.errors import MessageError
from twproto.port import const

# Private copies (inlined), checked against the public numbers by
# tests/protocol/test_bodies_numbers.py and against twproto.bodies' by test_bodies_layout.py.
_REJECT = const(2)
_F_E_MASK = const(0x07)
_F_TIME_SYNCED = const(0x10)
_F_STATUS_MASK = const(0xE8)
_TAG_BARCODE = const(4)
_TAG_MAX = const(64)
# fixed part of a synced (time u32) and an unsynced (boot u16 + uptime u32) reading
_R_SYNC = const("<IBBBIHbHHHII")
_R_BOOT = const("<IBBBHIHbHHHII")
_R_FIXED_SYNC = const(28)
_R_FIXED_BOOT = const(30)


def unpack_reading(buf, cls=Reading):
    """Parse a READING body (`buf` a memoryview of it) into a `cls` (Reading's constructor
    arguments); strict bounds and field checks (MessageError)."""
    mv = buf
    n = len(mv)
    if n < 5:
        raise MessageError("truncated")
    flags = mv[4]
    if flags & _F_TIME_SYNCED:
        fixed = _R_FIXED_SYNC
        if n < fixed:
            raise MessageError("truncated")
        seq, f, sk, v, t, lo, hi, tare, op, cal, rs, prev = struct.unpack_from(_R_SYNC, mv, 0)
        boot = ms = None
    else:
        fixed = _R_FIXED_BOOT
        if n < fixed:
            raise MessageError("truncated")
        seq, f, sk, v, boot, ms, lo, hi, tare, op, cal, rs, prev = struct.unpack_from(
            _R_BOOT, mv, 0)
        t = None
    if n == fixed:
        raise MessageError("tag_empty")
    if n - fixed > _TAG_MAX:
        raise MessageError("tag_too_long")
    if seq == 0:
        raise MessageError("bad_field", "seq")
    if sk & 0x0F > _TAG_BARCODE:
        raise MessageError("bad_field", "tag_kind")
    if v & 3 > _REJECT:
        raise MessageError("bad_field", "verdict")
    return cls(seq, flags & _F_STATUS_MASK, sk >> 4, sk & 0x0F, v & 3, v >> 2, t, boot, ms,
               (hi << 16) | lo, tare, E_CODES[flags & _F_E_MASK], op, cal, rs, prev,
               bytes(mv[fixed:n]))
