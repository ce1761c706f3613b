"""An independent, declarative description of the tagweigh wire protocol v1 (protocol/SPEC.md),
written with construct and compiled. It shares no code with twproto: it cross-checks the golden
vectors (``tagweigh vectors``) and serves tools that want a field-by-field view of a frame.

As construct's docs advise for compiled parsers, length, CRC and MAC are checked before a body
is parsed; the body structs then end in ``Terminated`` so a body with extra bytes fails.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from binascii import crc_hqx
from typing import Any

from construct import (
    Bytes, Check, Const, Container, GreedyBytes, If, Int8ul, Int16ul, Int24sl, Int32sl, Int32ul,
    ListContainer, PrefixedArray, Struct, Switch, Terminated, len_, this,
)
from construct.core import CheckError, ConstructError, StreamError, TerminatedError

from tagweigh.errors import TagweighError

SOF = 0xA1
MAX_BODY = 232
MAC_LEN = 16
DIRECTION = {"S": b"S", "B": b"B"}

TYPES = {
    0x01: "HELLO", 0x02: "WELCOME", 0x10: "READING", 0x11: "ACK", 0x12: "NACK",
    0x20: "STATUS", 0x21: "LIVE", 0x22: "EVENT", 0x30: "COMMAND", 0x31: "RESULT",
}
SENDERS = {"S": {"HELLO", "READING", "NACK", "STATUS", "LIVE", "EVENT", "RESULT"},
           "B": {"WELCOME", "ACK", "NACK", "COMMAND"}}
E_CODES = (1, 2, 5, 10, 20, 50, 100, 200)


class WireError(TagweighError):
    """A frame the construct description refuses; ``code`` matches twproto's error codes."""

    def __init__(self, code: str, message: str = ""):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


# -- frame -----------------------------------------------------------------------------------------

Header = Struct("sof" / Const(SOF, Int8ul), "len" / Int8ul, "type" / Int8ul)

# -- bodies ----------------------------------------------------------------------------------------

Reading = Struct(
    "seq" / Int32ul,
    Check(this.seq >= 1),
    "flags" / Int8ul,
    "step_kind" / Int8ul,
    Check((this.step_kind & 0x0F) <= 4),
    "verdict" / Int8ul,
    Check((this.verdict & 3) <= 2),
    "time" / If(this.flags & 0x10, Int32ul),
    "boot" / If(this.flags & 0x10 == 0, Int16ul),
    "uptime_ms" / If(this.flags & 0x10 == 0, Int32ul),
    "net_g" / Int24sl,
    "tare_g" / Int16ul,
    "operator" / Int16ul,
    "cal_id" / Int16ul,
    "ruleset_id" / Int32ul,
    "prev" / Int32ul,
    "tag" / GreedyBytes,
)

Hello = Struct(
    "device_id" / Int32ul, "fw_major" / Int8ul, "fw_minor" / Int8ul, "fw_patch" / Int8ul,
    "proto_min" / Int8ul, "proto_max" / Int8ul, Check(this.proto_min <= this.proto_max),
    "ruleset_id" / Int32ul, "ruleset_version" / Int16ul, "config_hash" / Int32ul,
    "last_seq" / Int32ul, "backlog" / Int16ul, "journal_pct" / Int8ul, Check(this.journal_pct <= 100),
    "boot" / Int16ul, "boot_first_seq" / Int32ul, "uptime_ms" / Int32ul, "flags" / Int8ul,
    "nonce" / Bytes(8), "chain_head" / Int32ul, Terminated,
)

Welcome = Struct(
    "time" / Int32ul, "ms" / Int16ul, Check(this.ms <= 999), "proto" / Int8ul,
    "ruleset_id" / Int32ul, "flags" / Int8ul, "window" / Int8ul, Terminated,
)

AckEntry = Struct("seq" / Int32ul, Check(this.seq >= 1), "verdict" / Int8ul,
                  Check((this.verdict & 3) <= 2))
Ack = Struct("entries" / PrefixedArray(Int8ul, AckEntry), Check(len_(this.entries) <= 32),
             Terminated)

Nack = Struct("ref_type" / Int8ul, "ref_seq" / Int32ul, "reason" / Int8ul, Terminated)

Status = Struct(
    "raw" / Int32sl, "zero_raw" / Int32sl, "counts_per_kg" / Int32sl, "noise_rms" / Int16ul,
    "rate_hz" / Int8ul, "flags" / Int8ul, "hx711_timeouts" / Int16ul, "spikes" / Int16ul,
    "journal_used" / Int16ul, "journal_capacity" / Int16ul, "free_heap" / Int32ul,
    "uptime_ms" / Int32ul, "boot" / Int16ul, "cal_id" / Int16ul, Terminated,
)

Live = Struct("net_g" / Int24sl, "tare_g" / Int16ul, "flags" / Int8ul, "tag_state" / Int8ul,
              Terminated)

Event = Struct("code" / Int8ul, "severity" / Int8ul, Check(this.severity <= 3),
               "detail" / Int32sl, "uptime_ms" / Int32ul, Terminated)

Result = Struct("cmd_id" / Int16ul, "status" / Int8ul, "value" / Int32sl, "detail" / GreedyBytes)

# COMMAND arguments by op; an op not listed keeps its arguments as raw bytes ("data").
CommandArgs = {
    1: Struct(Terminated),  # TARE
    2: Struct(Terminated),  # ZERO
    3: Struct("tare_g" / Int16ul, Terminated),  # TARE_PRESET
    4: Struct(Terminated),  # CAL_ZERO
    5: Struct("mass_g" / Int32ul, Terminated),  # CAL_SPAN
    6: Struct("mass_g" / Int32ul, Terminated),  # CAL_CHECK
    7: Struct("cal_id" / Int16ul, "operator" / Int16ul, "time" / Int32ul, Terminated),
    8: Struct("key" / Int8ul, "value" / GreedyBytes),  # SET_CONFIG
    9: Struct("length" / Int32ul, "sha256" / Bytes(32), Terminated),  # RULESET_BEGIN
    10: Struct("offset" / Int32ul, "data" / GreedyBytes, Check(len_(this.data) >= 1)),
    11: Struct(Terminated),  # RULESET_END
    12: Struct(Terminated),  # REBOOT
    13: Struct("on" / Int8ul, Check(this.on <= 1), Terminated),  # MAINTENANCE
    14: Struct("operator" / Int16ul, Terminated),  # SET_OPERATOR
    15: Struct("time" / Int32ul, "ms" / Int16ul, Check(this.ms <= 999), Terminated),  # SET_TIME
    16: Struct(Terminated),  # SELF_TEST
    17: Struct(Terminated),  # GET_STATUS
}
Command = Struct(
    "cmd_id" / Int16ul,
    "op" / Int8ul,
    "args" / Switch(this.op, CommandArgs, Struct("data" / GreedyBytes)),
)

_SOURCE = {
    "HELLO": Hello, "WELCOME": Welcome, "READING": Reading, "ACK": Ack, "NACK": Nack,
    "STATUS": Status, "LIVE": Live, "EVENT": Event, "COMMAND": Command, "RESULT": Result,
}
BODIES = {name: s.compile() for name, s in _SOURCE.items()}
HEADER = Header.compile()


# -- decoding --------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Container -> dict without construct's private keys; bytes -> hex, like the vectors."""
    if isinstance(value, (Container, dict)):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, (ListContainer, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def fields(type_name: str, body: Any) -> dict[str, Any]:
    """The vector-style field dict of a parsed body (same names and units as twproto)."""
    d = _plain(body)
    if type_name == "READING":
        flags = d["flags"]
        d = {"seq": d["seq"], "flags": flags & 0xE8, "step": d["step_kind"] >> 4,
             "tag_kind": d["step_kind"] & 0x0F, "verdict": d["verdict"] & 3,
             "reason": d["verdict"] >> 2, "time": d["time"], "boot": d["boot"],
             "uptime_ms": d["uptime_ms"], "net_g": d["net_g"], "tare_g": d["tare_g"],
             "e_g": E_CODES[flags & 7], "operator": d["operator"], "cal_id": d["cal_id"],
             "ruleset_id": d["ruleset_id"], "prev": d["prev"], "tag": d["tag"]}
    elif type_name == "ACK":
        d = {"entries": [[e["seq"], e["verdict"]] for e in d["entries"]]}
    return d


def parse_frame(frame: bytes, key: bytes | None = None, sender: str | None = None,
                nonce: bytes | None = None) -> tuple[str, dict[str, Any]]:
    """Check one whole frame (SOF, LEN, type, CRC, then direction and MAC when a key is given)
    and parse its body. Returns (type name, fields); raises WireError with twproto's codes."""
    if len(frame) < 3:
        raise WireError("incomplete")
    try:
        h = HEADER.parse(frame)
    except ConstructError:
        raise WireError("bad_version" if frame[0] & 0xF0 == 0xA0 else "bad_sof") from None
    if h.len > MAX_BODY:
        raise WireError("too_long")
    name = TYPES.get(h.type)
    if name is None:
        raise WireError("bad_type")
    mac_len = 0 if name == "NACK" else MAC_LEN
    total = 3 + h.len + mac_len + 2
    if len(frame) < total:
        raise WireError("incomplete")
    if crc_hqx(frame[: total - 2], 0xFFFF) != int.from_bytes(frame[total - 2 : total], "little"):
        raise WireError("bad_crc")
    if sender is not None and name not in SENDERS[sender]:
        raise WireError("wrong_direction")
    end = 3 + h.len
    if key is not None and mac_len:
        prefix = DIRECTION[sender or "S"] + (nonce or b"" if sender == "B" else b"")
        want = hmac.digest(key, prefix + frame[:end], hashlib.sha256)[:MAC_LEN]
        if not hmac.compare_digest(want, frame[end : end + MAC_LEN]):
            raise WireError("bad_mac")
    try:
        body = BODIES[name].parse(frame[3:end])
    except (StreamError, struct.error):  # compiled parsers read with struct directly
        raise WireError("truncated") from None
    except TerminatedError:
        raise WireError("bad_length") from None
    except CheckError:
        raise WireError("bad_field") from None
    except ConstructError as exc:
        raise WireError("malformed", str(exc).splitlines()[0]) from None
    if name == "READING" and not 1 <= len(body.tag) <= 64:
        raise WireError("tag_empty" if not body.tag else "tag_too_long")
    return name, fields(name, body)
