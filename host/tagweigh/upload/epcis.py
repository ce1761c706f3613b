"""GS1 EPCIS 2.0: each reading as an ObjectEvent, events grouped into EPCISDocuments, event IDs
as the canonical event hash, and a sink that POSTs documents to an EPCIS capture endpoint.

Mapping (docs/INTEGRATORS.md shows a full document made from a real reading):

- `action` OBSERVE; `bizStep` from the station's role (BIZSTEPS): commissioning at mine tagging,
  receiving at depot or processor receiving, shipping at depot dispatch, departing at export,
  inspecting otherwise.
- `epcList`: the tag as a URI in the tag namespace, `urn:tagweigh:tag:<kind>:<tag key>`
  (percent-encoded), the same bag keeps the same URI at every step.
- `readPoint`: the station, `urn:tagweigh:site:<site>:station:<device>`; `bizLocation`: the
  site, `urn:tagweigh:site:<site>`.
- Weight: one `sensorElementList` entry whose report is of type Mass in KGM (the net weight);
  the sensor is the station. (`quantityList` needs a class-level `epcClass`; our bags have
  instance-level tags, so the mass is a sensor report.)
- Evidence, as extension fields in the `tw:` namespace: device, seq, net/tare/division in grams,
  both verdicts and reasons, the rule-set hash prefix, the time source, the chain check and the
  signed frame (hex), so an EPCIS repository keeps what is needed to re-verify the reading.

Event IDs follow the EPCIS 2.0 / CBV 2.0 event hash algorithm: a pre-hash string built from the
event's fields in the canonical order with canonical values (UTC times with milliseconds, CBV
web-vocabulary URIs for bare words, numbers without redundant digits, extension fields as
`{namespace}name=value` sorted), hashed with SHA-256 and written `ni:///sha-256;<hex>?ver=CBV2.0`.
This module implements the algorithm for the fields it emits (and fails loudly on others); the
tests check it against the published reference generator (`epcis-event-hash-generator`).
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import time
from typing import Any, Iterable
from urllib.parse import quote

from tagweigh.errors import TagweighError
from tagweigh.upload.records import record_from_row, rfc3339
from tagweigh.upload.sink import Result, Sink, SinkError

__all__ = [
    "BIZSTEPS", "DEFAULT_NAMESPACE", "EPCIS_CONTEXT", "EpcisError", "EpcisSink", "document",
    "event_from_record", "event_hash", "prehash",
]

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
DEFAULT_NAMESPACE = "urn:tagweigh:epcis:1:"
TAG_PREFIX = "urn:tagweigh:tag:"
SITE_PREFIX = "urn:tagweigh:site:"
STATION_PREFIX = "urn:tagweigh:station:"

# Station step (SPEC.md 5.1) -> CBV bizStep.
BIZSTEPS = {1: "commissioning", 2: "receiving", 3: "shipping", 4: "receiving", 5: "departing"}
DEFAULT_BIZSTEP = "inspecting"
_KIND_SHORT = {"rfid_uid": "uid", "ndef_text": "text", "ndef_uri": "uri", "qr_text": "qr", "barcode": "barcode"}


class EpcisError(TagweighError):
    """An event this implementation cannot map or hash."""


def _q(text: str) -> str:
    return quote(str(text), safe="-._~")


def event_from_record(rec: dict[str, Any], *, prefix: str = "tw") -> dict[str, Any]:
    """The ObjectEvent (with its eventID) of one upload record (records.record_from_row)."""
    site = rec["site"]
    station = f"{SITE_PREFIX}{_q(site)}:station:{_q(rec['device_id'])}" if site else \
        f"{STATION_PREFIX}{_q(rec['device_id'])}"
    chain = rec["chain_ok"]
    ev: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": rec["time"],
        "eventTimeZoneOffset": "+00:00",
        "epcList": [f"{TAG_PREFIX}{_KIND_SHORT.get(rec['tag_kind'], 'tag')}:{_q(rec['tag_key'])}"],
        "action": "OBSERVE",
        "bizStep": BIZSTEPS.get(rec["step"], DEFAULT_BIZSTEP),
        "readPoint": {"id": station},
    }
    if site:
        ev["bizLocation"] = {"id": f"{SITE_PREFIX}{_q(site)}"}
    ev["sensorElementList"] = [{
        "sensorMetadata": {"time": rec["time"], "deviceID": f"{STATION_PREFIX}{_q(rec['device_id'])}"},
        "sensorReport": [{"type": "Mass", "value": rec["net_g"] / 1000, "uom": "KGM"}],
    }]
    p = prefix + ":"
    ev.update({
        p + "device": rec["device_id"], p + "seq": rec["seq"], p + "netGrams": rec["net_g"],
        p + "tareGrams": rec["tare_g"], p + "divisionGrams": rec["e_g"],
        p + "stationVerdict": rec["station_verdict"], p + "stationReason": rec["station_reason"],
        p + "verdict": rec["verdict"], p + "reason": rec["reason"],
        p + "ruleset": "sha256:" + rec["ruleset_id"], p + "timeSource": rec["time_source"],
        p + "chain": "unchecked" if chain is None else ("linked" if chain else "broken"),
        p + "frame": rec["frame"],
    })
    if rec["voided"]:
        ev[p + "voided"] = "void: " + (rec["void_reason"] or "")
    return ev


def document(events: list[dict[str, Any]], *, namespace: str = DEFAULT_NAMESPACE, prefix: str = "tw",
             created: float | None = None) -> dict[str, Any]:
    """An EPCISDocument holding `events`; each event gets its canonical eventID."""
    context: list[Any] = [EPCIS_CONTEXT, {prefix: namespace}]
    for ev in events:
        ev.pop("eventID", None)
        ev["eventID"] = event_hash(ev, context)
    return {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": rfc3339(time.time() if created is None else created),
        "epcisBody": {"eventList": events},
    }


# ---- the canonical event hash -------------------------------------------------------------------
_SENSOR_METADATA = ("time", "startTime", "endTime", "deviceID", "deviceMetadata", "rawData",
                    "dataProcessingMethod", "bizRules")
_SENSOR_REPORT = ("type", "exception", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod",
                  "time", "microorganism", "chemicalSubstance", "value", "component", "stringValue",
                  "booleanValue", "hexBinaryValue", "uriValue", "minValue", "maxValue", "meanValue",
                  "sDev", "percRank", "percValue", "uom", "coordinateReferenceSystem")
_QUANTITY = (("epcClass", None), ("quantity", None), ("uom", None))
_SENSOR_ELEMENT = (("sensorMetadata", tuple((k, None) for k in _SENSOR_METADATA)),
                   ("sensorReport", tuple((k, None) for k in _SENSOR_REPORT)))
# The canonical order of an event's standard fields. For lists: (list name, (element name, order)).
_ORDER: tuple[tuple[str, Any], ...] = (
    ("eventTime", None), ("eventTimeZoneOffset", None), ("certificationInfo", None), ("parentID", None),
    ("epcList", ("epc", None)), ("inputEPCList", ("epc", None)), ("childEPCs", ("epc", None)),
    ("quantityList", ("quantityElement", _QUANTITY)),
    ("childQuantityList", ("quantityElement", _QUANTITY)),
    ("inputQuantityList", ("quantityElement", _QUANTITY)),
    ("outputEPCList", ("epc", None)), ("outputQuantityList", ("quantityElement", _QUANTITY)),
    ("action", None), ("transformationID", None), ("bizStep", None), ("disposition", None),
    ("readPoint", (("id", None),)), ("bizLocation", (("id", None),)),
    ("sensorElementList", ("sensorElement", _SENSOR_ELEMENT)),
)
_LISTS = {name for name, sub in _ORDER if name.endswith(("List", "EPCs"))}
_IGNORED = {"eventID", "recordTime", "type", "@context", "errorDeclaration"}
_UNSUPPORTED = {"persistentDisposition", "bizTransactionList", "sourceList", "destinationList",
                "ilmd", "certificationInfo"}
# Bare CBV words -> web vocabulary, per field.
_VOCAB = {"bizStep": "https://ref.gs1.org/cbv/BizStep-", "disposition": "https://ref.gs1.org/cbv/Disp-"}
_OLD_URNS = (("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-"),
             ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
             ("urn:epcglobal:cbv:btt:", "https://ref.gs1.org/cbv/BTT-"),
             ("urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-"),
             ("urn:epcglobal:cbv:er:", "https://ref.gs1.org/cbv/ER-"))


def _time(text: str) -> str:
    """A timestamp in UTC with exactly three fraction digits and 'Z'."""
    s = text.strip()
    try:
        dt = datetime.datetime.fromisoformat(s[:-1] + "+00:00" if s[-1:] in "Zz" else s)
    except ValueError as exc:
        raise EpcisError(f"not an ISO 8601 date-time: {text!r}") from exc
    if dt.tzinfo is None:
        raise EpcisError(f"date-time without a time zone: {text!r}")
    dt = dt.astimezone(datetime.timezone.utc)
    us = round(dt.microsecond, -3)  # round half to even, to the millisecond
    dt = dt.replace(microsecond=0) + datetime.timedelta(microseconds=us)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise EpcisError(f"expected a simple value, got {type(value).__name__}")
    return str(value).strip()


def _canon(text: str) -> str:
    """Canonical form of a value: CBV 1.x URNs as web vocabulary, numbers without redundant
    digits or signs. GS1 keys (EPC URIs, Digital Link) would need the GS1 Digital Link
    normalisation, which this implementation does not do: refuse them instead of hashing wrong."""
    for old, new in _OLD_URNS:
        text = text.replace(old, new)
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number != number:  # NaN: left as written
            pass
        elif number in (float("inf"), float("-inf")):
            raise EpcisError(f"value {text!r} reads as an infinite number")
        else:
            text = str(int(number)) if int(number) == number else str(number)
    if text.startswith("urn:epc:") or (text.startswith(("http://", "https://")) and "." in text
                                         and not text.startswith(("https://ref.gs1.org/cbv/", "https://gs1.org/voc/"))):
        raise EpcisError(f"GS1 key normalisation is not implemented for {text!r}")
    return text


def _element(name: str, value: Any, sub: Any, parent: str) -> str:
    """One element's pre-hash text ('' when empty)."""
    if sub is None:
        text = _text(value)
        if "time" in name.lower() and "offset" not in name.lower():
            text = _time(text)
        else:
            if name in _VOCAB and ":" not in text:
                text = _VOCAB[name] + text
            elif name == "type" and parent == "sensorReport" and ":" not in text:
                text = "https://gs1.org/voc/" + text
            text = _canon(text)
        return f"{name}={text}" if text else ""
    if not isinstance(value, dict):
        raise EpcisError(f"{name} must be an object")
    extra = set(value) - {k for k, _ in sub}
    if extra:
        raise EpcisError(f"{name}: fields {sorted(extra)} are not supported by this hash implementation")
    inner = _ordered(value, sub, name)
    return name + inner if inner else ""


def _ordered(obj: dict[str, Any], order: Iterable[tuple[str, Any]], parent: str) -> str:
    out = []
    for name, sub in order:
        if name not in obj:
            continue
        value = obj[name]
        values = value if isinstance(value, list) else [value]
        texts = sorted(t for t in (_element(name, v, sub, parent) for v in values) if t)
        out.append("".join(texts))
    return "".join(out)


def prehash(event: dict[str, Any], context: Any) -> str:
    """The canonical pre-hash string of an event (what event_hash hashes)."""
    namespaces: dict[str, str] = {}
    for c in context if isinstance(context, list) else [context]:
        if isinstance(c, dict):
            namespaces.update({k: v for k, v in c.items() if isinstance(v, str)})
    unknown = set(event) & _UNSUPPORTED
    if unknown:
        raise EpcisError(f"fields {sorted(unknown)} are not supported by this hash implementation")
    parts = ["eventType=" + _text(event["type"])]
    for name, sub in _ORDER:
        if name not in event:
            continue
        if name in _LISTS:
            elem, elem_sub = sub
            if not isinstance(event[name], list):
                raise EpcisError(f"{name} must be a list")
            texts = sorted(t for t in (_element(elem, v, elem_sub, name) for v in event[name]) if t)
            if texts:
                parts.append(name + "".join(texts))
        else:
            parts.append(_element(name, event[name], sub, "event"))
    ext = []
    standard = {n for n, _ in _ORDER} | _IGNORED
    for key, value in event.items():
        if key in standard:
            continue
        pfx, sep, local = key.partition(":")
        if not sep or pfx not in namespaces:
            raise EpcisError(f"field {key!r} is neither standard nor a namespaced extension")
        text = _canon(_text(value))
        ext.append("{%s}%s" % (namespaces[pfx], local) + (f"={text}" if text else ""))
    return "".join(parts) + "".join(sorted(ext))


def event_hash(event: dict[str, Any], context: Any) -> str:
    """The EPCIS 2.0 canonical event hash: 'ni:///sha-256;<hex>?ver=CBV2.0'."""
    return "ni:///sha-256;" + hashlib.sha256(prehash(event, context).encode("utf-8")).hexdigest() + "?ver=CBV2.0"


# ---- the capture sink ---------------------------------------------------------------------------
class EpcisSink(Sink):
    """POSTs one EPCISDocument per batch to an EPCIS 2.0 capture endpoint (`POST /capture`).
    202/201/200 means captured (EPCIS capture is all or nothing); the document's idempotency key
    is a digest of its event IDs, sent as `Idempotency-Key` (repositories that support it use it;
    event IDs let any repository recognise repeated events)."""

    def __init__(self, url: str, *, token: str | None = None, ca_bundle: str | None = None,
                 verify_tls: bool = True, timeout_s: float = 30.0, connect_timeout_s: float = 10.0,
                 bridge_id: str | None = None, namespace: str = DEFAULT_NAMESPACE, name: str = "epcis"):
        from tagweigh.upload.http import HttpSink

        # Reuse the HTTP sink's client, TLS and error translation; only the body and the
        # meaning of the answer differ.
        self._http = HttpSink(url, token=token, ca_bundle=ca_bundle, verify_tls=verify_tls,
                              timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
                              bridge_id=bridge_id, name=name)
        self.name = name
        self.url = url
        self.namespace = namespace
        self.bridge_id = bridge_id

    def describe(self) -> str:
        return self.url

    def close(self) -> None:
        self._http.close()

    def encode(self, rows: list[dict[str, Any]]) -> tuple[str, bytes]:
        events = [event_from_record(record_from_row(r, self.bridge_id)) for r in rows]
        doc = document(events, namespace=self.namespace)
        key = "tw1-epcis-" + hashlib.sha256(
            "\n".join(e["eventID"] for e in events).encode()).hexdigest()[:40]
        return key, gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), 5, mtime=0)

    def prepare(self, rows: list[dict[str, Any]]) -> tuple[str, bytes]:
        return self.encode(rows)  # the uploader builds the next document while one is in flight

    def send(self, rows: list[dict[str, Any]]) -> list[Result]:
        return self.deliver(rows, self.encode(rows))

    def deliver(self, rows: list[dict[str, Any]], prepared: tuple[str, bytes]) -> list[Result]:
        httpx = self._http._httpx
        key, body = prepared
        headers = {"Idempotency-Key": key, "Content-Type": "application/ld+json",
                   "GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"}
        try:
            resp = self._http._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self._http_error(exc) from exc
        if resp.status_code in (200, 201, 202, 204):
            return [(r["id"], "uploaded", None) for r in rows]
        raise self._http._refusal(resp.status_code, resp.headers, resp.content[:4096])

    def _http_error(self, exc: Exception) -> SinkError:
        from tagweigh.upload.http import _is_tls_error

        if _is_tls_error(exc):
            return SinkError(f"{self.url}: TLS verification failed, nothing sent: {exc}", fatal=True,
                             hint="set upload.epcis.ca_bundle to the CA that signed the server's certificate")
        if isinstance(exc, self._http._httpx.TimeoutException):
            return SinkError(f"{self.url}: no answer in time ({type(exc).__name__})")
        return SinkError(f"{self.url}: {type(exc).__name__}: {exc or 'connection failed'}")
