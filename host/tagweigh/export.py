"""Exports for audits and regulators: the readings, totals per tag and step, and the chain of
custody of each tag, as CSV (UTF-8, stable column names), JSON Lines or EPCIS 2.0.

Column names are the upload record's field names (upload/record.schema.json) so a CSV, a JSON
Lines file and what the backend received say the same thing in the same words. Every reading is
exported, rejected and voided ones too (with their verdict): evidence is never left out.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from typing import Any, Iterable, Iterator, TextIO

from tagweigh.errors import ConfigError
from tagweigh.queue import Queue
from tagweigh.upload.records import RECORD_FIELDS, record_from_row

__all__ = ["CUSTODY_FIELDS", "TOTALS_FIELDS", "custody", "iter_records", "parse_since", "totals", "write"]

TOTALS_FIELDS = ("tag_key", "tag_text", "mineral", "step", "step_name", "readings", "accepted", "warned",
                 "rejected", "voided", "net_g_total", "first_time", "last_time", "sites", "stations")
CUSTODY_FIELDS = ("tag_key", "tag_text", "mineral", "position", "step", "step_name", "time", "time_source",
                  "site", "device_id", "seq", "operator", "net_g", "change_g", "station_verdict", "verdict",
                  "reason", "chain_ok", "voided", "record_id")
_PAGE = 5000


def parse_since(text: str | None) -> float | None:
    """'2024-05-01', '2024-05-01T10:00:00+02:00' (UTC when no offset) or Unix seconds."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since {text!r}: expected a date (2024-05-01), an ISO date-time or Unix seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def iter_records(queue: Queue, *, since: float | None = None, site: str | None = None,
                 tag: str | None = None, bridge_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Upload records of every matching reading in queue order, page by page (bounded memory)."""
    last = 0
    while True:
        page = queue.readings(since, site, _PAGE, tag=tag, after_id=last, newest_first=False)
        for row in page:
            yield record_from_row(row, bridge_id)
        if len(page) < _PAGE:
            return
        last = page[-1]["id"]


def totals(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (tag, step): counts per verdict and the net weight of the readings that count
    (not rejected by the bridge, not voided)."""
    acc: dict[tuple[str, int], dict[str, Any]] = {}
    for r in records:
        k = (r["tag_key"], r["step"])
        t = acc.get(k)
        if t is None:
            t = acc[k] = {"tag_key": r["tag_key"], "tag_text": r["tag_text"], "mineral": r["mineral"],
                          "step": r["step"], "step_name": r["step_name"], "readings": 0, "accepted": 0,
                          "warned": 0, "rejected": 0, "voided": 0, "net_g_total": 0, "first_time": r["time"],
                          "last_time": r["time"], "sites": set(), "stations": set()}
        t["readings"] += 1
        t[{"accept": "accepted", "warn": "warned", "reject": "rejected"}[r["verdict"]]] += 1
        if r["voided"]:
            t["voided"] += 1
        elif r["verdict"] != "reject":
            t["net_g_total"] += r["net_g"]
        t["first_time"] = min(t["first_time"], r["time"])
        t["last_time"] = max(t["last_time"], r["time"])
        t["sites"].add(r["site"] or "")
        t["stations"].add(r["device_id"])
    out = []
    for k in sorted(acc):
        t = acc[k]
        t["sites"] = " ".join(sorted(t["sites"]))
        t["stations"] = " ".join(sorted(t["stations"]))
        out.append(t)
    return out


def custody(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every reading of each tag in chain-of-custody order (step, then time), with the weight
    change since the tag's previous counted reading."""
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_tag.setdefault(r["tag_key"], []).append(r)
    out = []
    for tag in sorted(by_tag):
        prev_g = None
        for pos, r in enumerate(sorted(by_tag[tag], key=lambda r: (r["step"], r["time"], r["record_id"])), 1):
            counts = r["verdict"] != "reject" and not r["voided"]
            row = {k: r[k] for k in CUSTODY_FIELDS if k in r}
            row.update(position=pos, change_g=None if prev_g is None or not counts else r["net_g"] - prev_g)
            out.append(row)
            if counts:
                prev_g = r["net_g"]
    return out


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return v


def write(out: TextIO, fmt: str, view: str, records: Iterable[dict[str, Any]], *, namespace: str | None = None) -> int:
    """Write the export; returns the number of rows (or events) written."""
    if view == "totals":
        rows, fields = totals(records), TOTALS_FIELDS
    elif view == "custody":
        rows, fields = custody(records), CUSTODY_FIELDS
    elif view == "readings":
        rows, fields = records, RECORD_FIELDS
    else:
        raise ConfigError(f"unknown view {view!r}: readings, totals or custody")
    if fmt == "epcis":
        if view != "readings":
            raise ConfigError("--format epcis exports readings (one ObjectEvent each); use csv or jsonl for "
                              f"the {view} view")
        from tagweigh.upload.epcis import DEFAULT_NAMESPACE, document, event_from_record

        events = [event_from_record(r) for r in rows]
        json.dump(document(events, namespace=namespace or DEFAULT_NAMESPACE), out, ensure_ascii=False, indent=1)
        out.write("\n")
        return len(events)
    n = 0
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(fields)
        for r in rows:
            w.writerow([_cell(r.get(f)) for f in fields])
            n += 1
    elif fmt == "jsonl":
        for r in rows:
            out.write(json.dumps({f: r.get(f) for f in fields}, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    else:
        raise ConfigError(f"unknown format {fmt!r}: csv, jsonl or epcis")
    return n


def export_text(queue: Queue, fmt: str, view: str = "readings", **filters: Any) -> str:
    buf = io.StringIO()
    write(buf, fmt, view, iter_records(queue, **filters))
    return buf.getvalue()
