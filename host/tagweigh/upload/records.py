"""One queue row -> one uploaded record (schema `tagweigh-record/1`, see record.schema.json).

The record carries every reading field, the raw signed frame (so a backend can re-verify the MAC
and the hash chain itself), both verdicts (the station's and the bridge's), the rule-set hash
prefix and how the time was obtained. Field names are stable: a new field gets a new name, a
changed meaning gets a new schema version.
"""

from __future__ import annotations

import hashlib
import json
import time as _time
from importlib import resources
from typing import Any, Iterable

from twproto.frame import frame_mac
from twproto.messages import F_OUT_OF_RANGE as _F_OUT_OF_RANGE, F_PRESET_TARE as _F_PRESET_TARE
from twproto.messages import F_STABLE as _F_STABLE, F_ZERO_TRACKED as _F_ZERO_TRACKED
from twproto.messages import STEP_NAMES, TAG_KIND_NAMES

__all__ = [
    "BATCH_SCHEMA", "RECORD_FIELDS", "RECORD_SCHEMA", "batch_body", "batch_key",
    "load_schema", "record_from_row", "record_id", "rfc3339",
]

RECORD_SCHEMA = "tagweigh-record/1"
BATCH_SCHEMA = "tagweigh-batch/1"
TIME_SOURCES = ("station", "boot_table", "received")

# Every field of a record, in the order exports use for columns.
RECORD_FIELDS = (
    "schema", "record_id", "device_id", "seq", "site", "step", "step_name", "tag_kind", "tag_text",
    "tag_key", "mineral", "net_g", "tare_g", "e_g", "flags", "stable", "out_of_range",
    "zero_tracked", "preset_tare", "operator", "cal_id", "time", "time_estimated", "time_source",
    "boot", "uptime_ms", "received_at", "ruleset_id", "prev", "mac", "frame", "station_verdict",
    "station_reason", "verdict", "reason", "rule_id", "findings", "chain_ok", "voided",
    "void_reason", "bridge_id",
)  # fmt: skip


def rfc3339(t: float | None) -> str | None:
    """Unix seconds -> '2024-05-01T10:00:00.250Z' (UTC, milliseconds), None stays None."""
    if t is None:
        return None
    ms = int(round(t * 1000))
    s, frac = divmod(ms, 1000)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(s)) + ".%03dZ" % frac


def record_id(device_id: str, seq: int) -> str:
    """The record's identity and per-record idempotency key: '<device>:<seq>'."""
    return f"{device_id}:{seq}"


def _findings(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    out = []
    for f in json.loads(text):
        reason, entry, severity, detail = (list(f) + [None] * 4)[:4]
        out.append({"reason": reason, "entry": entry, "severity": severity, "detail": detail})
    return out


def record_from_row(row: dict[str, Any], bridge_id: str | None = None) -> dict[str, Any]:
    """The upload record of one `Queue.pending_upload()` / `Queue.readings()` row."""
    raw = bytes(row["raw"])
    flags = row["flags"]
    est = row["time_estimated"]
    t = row["time"]
    if t is None:  # no station time and no boot table entry: the bridge's receive time stands in
        source, t = "received", row["received_at"]
    else:
        source = "station" if est == 0 else "boot_table"
    step = row["step"]
    kind = row["tag_kind"]
    chain = row["chain_ok"]
    return {
        "schema": RECORD_SCHEMA,
        "record_id": record_id(row["device_id"], row["seq"]),
        "device_id": row["device_id"],
        "seq": row["seq"],
        "site": row["site"],
        "step": step,
        "step_name": STEP_NAMES[step] if step < len(STEP_NAMES) else f"step{step}",
        "tag_kind": TAG_KIND_NAMES[kind] if kind < len(TAG_KIND_NAMES) else f"kind{kind}",
        "tag_text": row["tag_text"],
        "tag_key": row["tag_key"],
        "mineral": row["mineral"],
        "net_g": row["net_g"],
        "tare_g": row["tare_g"],
        "e_g": row["e_g"],
        "flags": flags,
        "stable": bool(flags & _F_STABLE),
        "out_of_range": bool(flags & _F_OUT_OF_RANGE),
        "zero_tracked": bool(flags & _F_ZERO_TRACKED),
        "preset_tare": bool(flags & _F_PRESET_TARE),
        "operator": row["operator"],
        "cal_id": row["cal_id"],
        "time": rfc3339(t),
        "time_estimated": source != "station",
        "time_source": source,
        "boot": row["boot"],
        "uptime_ms": row["uptime_ms"],
        "received_at": rfc3339(row["received_at"]),
        "ruleset_id": row["ruleset_id"],
        # the queue keeps prev as the u32 the frame carries; the record gives the 4 bytes in frame
        # order, i.e. exactly the first 8 hex digits of the previous record's `mac`
        "prev": bytes.fromhex(row["prev"])[::-1].hex(),
        "mac": frame_mac(raw).hex(),
        "frame": raw.hex(),
        "station_verdict": row["station_verdict"],
        "station_reason": row["station_reason"],
        "verdict": row["verdict"],
        "reason": row["reason"],
        "rule_id": row["rule_id"],
        "findings": _findings(row["findings"]),
        "chain_ok": None if chain is None else bool(chain),
        "voided": bool(row.get("voided") or 0),
        "void_reason": row.get("void_reason"),
        "bridge_id": bridge_id,
    }


def batch_key(sink: str, records_json: bytes, attempts: Iterable[int]) -> str:
    """The batch's idempotency key: a digest of what is sent, so a retry of the same batch (after a
    timeout, a crash, a lost reply) carries the same key, and a batch re-sent after the backend
    asked to retry some records (their attempt counters moved on) carries a new one."""
    h = hashlib.sha256(sink.encode() + b"\n" + records_json + b"\n")
    h.update(",".join(str(a) for a in attempts).encode())
    return "tw1-" + h.hexdigest()[:40]


def batch_body(batch_id: str, bridge_id: str | None, records_json: bytes, sent_at: float) -> bytes:
    """The JSON body of one HTTP batch, built around already-serialised records (a JSON array)."""
    head = json.dumps({"schema": BATCH_SCHEMA, "batch_id": batch_id, "bridge_id": bridge_id,
                       "sent_at": rfc3339(sent_at)})
    return head[:-1].encode() + b', "records": ' + records_json + b"}"


def load_schema(name: str = "record.schema.json") -> dict[str, Any]:
    """A JSON Schema shipped with this package: record.schema.json or batch.schema.json."""
    return json.loads(resources.files("tagweigh.upload").joinpath(name).read_text(encoding="utf-8"))
