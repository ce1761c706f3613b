"""docs/INTEGRATORS.md must stay true: its example record is valid and re-verifies with the
standard-library snippet it gives, its EPCIS example validates and carries the right event ID,
and the OpenAPI file parses."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from uploadkit import REPO_ROOT

from tagweigh.upload.epcis import event_hash
from tagweigh.upload.records import load_schema

DOC = REPO_ROOT / "docs" / "INTEGRATORS.md"
EXAMPLE_KEY = bytes(range(32))  # the key the doc's example reading was signed with


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def example_record() -> dict:
    return next(json.loads(b) for b in blocks("json") if '"schema": "tagweigh-record/1"' in b)


def test_example_record_is_valid_and_the_snippet_verifies_it():
    rec = example_record()
    jsonschema.Draft202012Validator(load_schema()).validate(rec)
    ns: dict = {}
    exec(next(b for b in blocks("python") if "def verify" in b), ns)
    verify = ns["verify"]
    previous = dict(rec, seq=rec["seq"] - 1, mac=rec["prev"] + "00" * 12)
    assert verify(rec, EXAMPLE_KEY, previous) is None
    assert verify(rec, bytes(32), previous) == "bad MAC"
    assert verify(dict(rec, net_g=rec["net_g"] + 10), EXAMPLE_KEY, previous).startswith("record fields differ")
    assert verify(rec, EXAMPLE_KEY, dict(previous, mac="ff" * 16)).startswith("hash chain broken")
    # the receiver's full check agrees
    from tagweigh.receiver import verify_record
    assert verify_record(rec, EXAMPLE_KEY)[1] is None


def test_example_epcis_document_is_current():
    doc = next(json.loads(b) for b in blocks("json") if '"EPCISDocument"' in b)
    ev = doc["epcisBody"]["eventList"][0]
    assert ev["eventID"] == event_hash(ev, doc["@context"])
    assert ev["tw:frame"] == example_record()["frame"]


def test_openapi_parses():
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load((REPO_ROOT / "host" / "tagweigh" / "upload" / "openapi.yaml").read_text())
    assert spec["openapi"].startswith("3.1") and "/v1/batches" in spec["paths"]
    statuses = spec["components"]["schemas"]["BatchResult"]["properties"]["results"]["items"]["properties"]["status"]
    assert statuses["enum"] == ["accepted", "duplicate", "rejected", "retry"]
