"""The reference receiver: a small backend integrators can read, run and copy.

It implements the endpoint contract of `tagweigh/upload/openapi.yaml`:

- `POST /v1/batches`: a gzip'd JSON batch (upload/batch.schema.json). For each record it
  re-verifies the signed frame with the device key (from `tagweigh keys export`), checks that
  the record's fields say what the frame says, checks the hash chain against the previous
  reading it holds, and stores it once per (device_id, seq). Answers one result per record.
- `Idempotency-Key`: the answer to a batch is stored in the same transaction as its records, so
  a batch sent again (the sender timed out, or we crashed before replying) gets the same answer
  again and nothing is stored twice.
- `POST /epcis/capture`: an EPCIS 2.0 capture endpoint (JSON-LD documents); events are
  re-hashed and stored once per eventID. `GET /v1/health`, `GET /openapi.yaml`.

Run it with `tagweigh receiver --keys exported-keys.json --db receiver.sqlite3`.
"""

from __future__ import annotations

import gzip
import hmac
import json
import sqlite3
import ssl
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from twproto.crc import crc16
from twproto.errors import ProtocolError
from twproto.frame import T_READING, verify
from twproto.mac import DIR_STATION, Mac
from twproto.messages import STEP_NAMES, TAG_KIND_NAMES, VERDICT_NAMES, unpack_reading
from twproto.tags import fallback_text

from tagweigh.errors import TagweighError
from tagweigh.keys import KeyRegistry
from tagweigh.upload.records import RECORD_SCHEMA, rfc3339

__all__ = ["ReceiverHandler", "ReceiverServer", "ReceiverStore", "make_server", "verify_record"]

MAX_BODY = 64 * 1024 * 1024  # compressed request body: a batch of 10,000 records is ~3 MB gzip'd
MAX_INFLATED = 256 * 1024 * 1024  # decompressed: a gzip bomb stops here
MAX_RECORDS = 10_000
_compact_json = json.JSONEncoder(separators=(",", ":")).encode  # one encoder for every stored record

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    frame BLOB NOT NULL,
    mac BLOB NOT NULL,
    chain_ok INTEGER,               -- 1 linked to seq-1, 0 broken, NULL predecessor not held
    record TEXT NOT NULL,           -- the record as received (JSON)
    batch_id TEXT,
    received_at REAL NOT NULL,
    PRIMARY KEY (device_id, seq)    -- rows are ~1 KB: a rowid table appends them, its index stays small
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,      -- the Idempotency-Key
    response TEXT NOT NULL,         -- the answer given (replayed for a repeated key)
    received_at REAL NOT NULL,
    count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS conflicts (
    device_id TEXT NOT NULL, seq INTEGER NOT NULL, frame BLOB NOT NULL, received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS epcis_events (
    event_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    capture_id INTEGER NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS epcis_captures (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, events INTEGER NOT NULL, new INTEGER NOT NULL
);
"""


class ReceiverError(TagweighError):
    pass


def verify_record(rec: Any, key: bytes | Mac | None) -> tuple[Any, str | None]:
    """Check one record against its own signed frame. Returns (reading, None) or (None, reason).

    What a backend should check: the frame is a well-formed READING (CRC), its MAC verifies
    with the device's key, and every field the record states is what the signed frame says."""
    if not isinstance(rec, dict):
        return None, "not_an_object"
    if rec.get("schema") != RECORD_SCHEMA:
        return None, f"schema: expected {RECORD_SCHEMA}"
    device, seq = rec.get("device_id"), rec.get("seq")
    if not isinstance(device, str) or not isinstance(seq, int) or isinstance(seq, bool):
        return None, "bad_identity: device_id must be a string, seq an integer"
    if key is None:
        return None, "unknown_device"
    try:
        raw = bytes.fromhex(rec["frame"])
    except (KeyError, TypeError, ValueError):
        return None, "bad_frame: not hex"
    if len(raw) < 3 + 16 + 2 or raw[0] != 0xA1 or raw[2] != T_READING or len(raw) != 3 + raw[1] + 16 + 2:
        return None, "bad_frame: not a READING frame"
    if crc16(raw, 0, len(raw) - 2) != raw[-2] | (raw[-1] << 8):
        return None, "bad_frame: CRC"
    mac = key if isinstance(key, Mac) else Mac(key)
    try:
        verify(raw, mac, DIR_STATION)
    except ProtocolError:
        return None, "bad_mac"
    end = 3 + raw[1]
    try:
        r = unpack_reading(memoryview(raw)[3:end])
    except ProtocolError as exc:
        return None, f"bad_frame: {exc.code}"
    expect = {
        "seq": r.seq, "net_g": r.net_g, "tare_g": r.tare_g, "e_g": r.e_g, "step": r.step,
        "operator": r.operator, "cal_id": r.cal_id, "ruleset_id": "%08x" % r.ruleset_id,
        "prev": r.prev.to_bytes(4, "little").hex(), "mac": raw[end : end + 16].hex(), "tag_kind": TAG_KIND_NAMES[r.tag_kind],
        "tag_text": fallback_text(r.tag_kind, r.tag), "station_verdict": VERDICT_NAMES[r.verdict],
        "stable": r.stable, "out_of_range": r.out_of_range,
    }
    if r.time is not None:
        expect.update(time=rfc3339(r.time), time_source="station", boot=None, uptime_ms=None)
    else:
        expect.update(boot=r.boot, uptime_ms=r.uptime_ms)
    for name, value in expect.items():
        if rec.get(name) != value:
            return None, f"field_mismatch: {name} is {rec.get(name)!r}, the signed frame says {value!r}"
    if r.step < len(STEP_NAMES) and rec.get("step_name") != STEP_NAMES[r.step]:
        return None, "field_mismatch: step_name"
    return r, None


class ReceiverStore:
    """The receiver's SQLite database and the batch logic (no HTTP here)."""

    def __init__(self, path: str | Path, keys: KeyRegistry | dict[str, bytes]):
        self.path = Path(path)
        self.keys = keys
        self._macs: dict[str, tuple[bytes, Mac]] = {}
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")  # an answer is only given for what is on disk
        self._db.executescript(_SCHEMA)
        self.counters = {"batches": 0, "replayed": 0, "accepted": 0, "duplicate": 0, "rejected": 0}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _mac(self, device_id: str) -> Mac | None:
        key = self.keys.get(device_id)
        if key is None:
            return None
        cached = self._macs.get(device_id)
        if cached is None or cached[0] != key:
            cached = (key, Mac(key))
            self._macs[device_id] = cached
        return cached[1]

    def stored_answer(self, batch_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM batches WHERE batch_id=?", (batch_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def ingest_batch(self, batch_id: str, doc: Any) -> tuple[dict[str, Any], bool]:
        """Store a batch; return (answer, replayed). The answer and the records are committed
        together, so a repeated batch_id is answered from the database."""
        if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
            raise ReceiverError("body must be a batch object with a 'records' array")
        records = doc["records"]
        if not 1 <= len(records) <= MAX_RECORDS:
            raise ReceiverError(f"a batch holds 1..{MAX_RECORDS} records")
        macs: dict[str, Mac | None] = {}  # one key lookup per device and batch
        checked = []
        for rec in records:
            device = rec.get("device_id") if isinstance(rec, dict) else None
            if isinstance(device, str) and device not in macs:
                macs[device] = self._mac(device)
            reading, reason = verify_record(rec, macs.get(device) if isinstance(device, str) else None)
            checked.append((rec, reading, reason))
        now = time.time()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT response FROM batches WHERE batch_id=?", (batch_id,)).fetchone()
                if row is not None:
                    db.execute("ROLLBACK")
                    self.counters["replayed"] += 1
                    return json.loads(row[0]), True
                results = self._store_all(db, checked, batch_id, now)
                answer = {"batch_id": batch_id, "results": results}
                db.execute("INSERT INTO batches VALUES (?, ?, ?, ?)",
                           (batch_id, json.dumps(answer, separators=(",", ":")), now, len(records)))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        self.counters["batches"] += 1
        for r in results:
            self.counters[r["status"]] += 1
        return answer, False

    @staticmethod
    def _known(db: sqlite3.Connection, wanted: dict[str, set[int]]) -> dict[tuple[str, int], list]:
        """(device, seq) -> [frame, mac, chain_ok] for the stored readings among `wanted`."""
        known: dict[tuple[str, int], list] = {}
        for device, seqs in wanted.items():
            seqs_l = sorted(seqs)
            for i in range(0, len(seqs_l), 500):
                part = seqs_l[i : i + 500]
                for seq, frame, mac, chain in db.execute(
                        f"SELECT seq, frame, mac, chain_ok FROM records WHERE device_id=? AND seq IN "
                        f"({','.join('?' * len(part))})", (device, *part)):
                    known[(device, seq)] = [bytes(frame), bytes(mac), chain]
        return known

    def _store_all(self, db: sqlite3.Connection, checked: list, batch_id: str, now: float) -> list[dict[str, Any]]:
        """Dedupe by (device, seq), check the chain, insert: a few queries per batch, not per record."""
        wanted: dict[str, set[int]] = {}
        for rec, reading, reason in checked:
            if reason is None:
                wanted.setdefault(rec["device_id"], set()).update((reading.seq - 1, reading.seq, reading.seq + 1))
        known = self._known(db, wanted)
        inserts, conflicts, relinks, results = [], [], [], []
        for rec, reading, reason in checked:
            rid = rec.get("record_id") if isinstance(rec, dict) else None
            if reason is not None:
                results.append({"record_id": rid, "status": "rejected", "reason": reason})
                continue
            device, seq = rec["device_id"], reading.seq
            frame = bytes.fromhex(rec["frame"])
            have = known.get((device, seq))
            if have is not None:
                if have[0] == frame:
                    results.append({"record_id": rid, "status": "duplicate", "reason": None})
                else:
                    conflicts.append((device, seq, frame, now))
                    results.append({"record_id": rid, "status": "rejected", "reason":
                                    "conflict: this (device_id, seq) is stored with different signed bytes"})
                continue
            mac = frame[3 + frame[1] : 3 + frame[1] + 16]
            if seq == 1:
                chain = int(reading.prev == 0)
            else:
                before = known.get((device, seq - 1))
                chain = None if before is None else int(reading.prev == int.from_bytes(before[1][:4], "little"))
            known[(device, seq)] = [frame, mac, chain]
            inserts.append((device, seq, frame, mac, chain, _compact_json(rec), batch_id, now))
            after = known.get((device, seq + 1))
            if after is not None and after[2] is None:  # the successor came first: checkable now
                nxt = after[0]
                prev = unpack_reading(memoryview(nxt)[3 : 3 + nxt[1]]).prev
                after[2] = int(prev == int.from_bytes(mac[:4], "little"))
                relinks.append((after[2], device, seq + 1))
            results.append({"record_id": rid, "status": "accepted", "reason": None})
        db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", inserts)
        db.executemany("INSERT INTO conflicts VALUES (?, ?, ?, ?)", conflicts)
        db.executemany("UPDATE records SET chain_ok=? WHERE device_id=? AND seq=? AND chain_ok IS NULL", relinks)
        return results

    # ---- EPCIS capture ------------------------------------------------------------------------
    def capture_epcis(self, doc: Any) -> tuple[int, int]:
        """Store the events of an EPCIS document once per eventID, after checking each eventID
        is the event's canonical hash. Returns (capture id, new events)."""
        from tagweigh.upload.epcis import EpcisError, event_hash

        if not isinstance(doc, dict) or doc.get("type") != "EPCISDocument":
            raise ReceiverError("not an EPCISDocument")
        events = (doc.get("epcisBody") or {}).get("eventList")
        if not isinstance(events, list) or len(events) > MAX_RECORDS:
            raise ReceiverError(f"epcisBody.eventList must be a list of at most {MAX_RECORDS} events")
        context = doc.get("@context")
        for ev in events:
            try:
                computed = event_hash(ev, context)
            except EpcisError as exc:
                raise ReceiverError(f"event {ev.get('eventID')!r}: {exc}") from exc
            if ev.get("eventID") != computed:
                raise ReceiverError(f"eventID {ev.get('eventID')!r} is not the event's hash {computed}")
        now = time.time()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                cid = db.execute("INSERT INTO epcis_captures (received_at, events, new) VALUES (?, ?, 0)",
                                 (now, len(events))).lastrowid
                new = 0
                for ev in events:
                    cur = db.execute("INSERT OR IGNORE INTO epcis_events VALUES (?, ?, ?, ?)",
                                     (ev["eventID"], json.dumps(ev), cid, now))
                    new += cur.rowcount
                db.execute("UPDATE epcis_captures SET new=? WHERE id=?", (new, cid))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return cid, new

    # ---- queries --------------------------------------------------------------------------------
    def count(self, table: str = "records") -> int:
        if table not in ("records", "batches", "conflicts", "epcis_events", "epcis_captures"):
            raise ValueError(table)
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()


def _inflate(body: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(body, MAX_INFLATED)
    if d.unconsumed_tail:
        raise ReceiverError(f"decompressed body larger than {MAX_INFLATED} bytes")
    if not d.eof:
        raise ReceiverError("truncated gzip body")
    return out


class ReceiverHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive. Subclass and override `handle_batch` etc. to inject faults."""

    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the headers and the body of an answer are two writes; with Nagle's algorithm
    # the body waits for the client's (delayed, up to 40 ms) ACK of the headers, on every batch.
    disable_nagle_algorithm = True
    server: "ReceiverServer"

    def log_message(self, *args: Any) -> None:  # quiet by default; the CLI turns it on
        if self.server.verbose:
            super().log_message(*args)

    def _reply(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(doc, separators=(",", ":")).encode() if not isinstance(doc, bytes) else doc
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._reply(status, {"error": message}, headers)

    def _authorised(self) -> bool:
        token = self.server.token
        if not token:
            return True
        got = self.headers.get("Authorization", "")
        ok = got.startswith("Bearer ") and hmac.compare_digest(got[7:].encode(), token.encode())
        if not ok:
            self._error(401, "missing or wrong bearer token", {"WWW-Authenticate": 'Bearer realm="tagweigh"'})
        return ok

    def _body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._error(411, "Content-Length required")
            return None
        n = int(length)
        if n > MAX_BODY:
            self.close_connection = True
            self._error(413, f"body larger than {MAX_BODY} bytes")
            return None
        body = self.rfile.read(n)
        if len(body) != n:
            self.close_connection = True
            return None
        if self.headers.get("Content-Encoding", "identity").lower() == "gzip":
            body = _inflate(body)
        return body

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/v1/health":
            store = self.server.store
            self._reply(200, {"ok": True, "records": store.count(), "batches": store.count("batches")})
        elif self.path == "/openapi.yaml":
            text = resources.files("tagweigh.upload").joinpath("openapi.yaml").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/yaml")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
        elif self.path.startswith("/epcis/capture/") and self.path[15:].isdigit():
            self._reply(200, {"captureID": self.path[15:], "running": False, "success": True, "errors": []})
        else:
            self._error(404, "no such resource")

    def do_POST(self) -> None:  # noqa: N802
        if self.path not in ("/v1/batches", "/epcis/capture"):
            self._error(404, "no such resource")
            return
        if not self._authorised():
            return
        try:
            body = self._body()
            if body is None:
                return
            doc = json.loads(body)
        except (ReceiverError, ValueError, zlib.error) as exc:
            self._error(400, f"unreadable body: {exc}")
            return
        if self.path == "/epcis/capture":
            self.handle_capture(doc)
        else:
            self.handle_batch(doc)

    def handle_batch(self, doc: Any) -> None:
        key = self.headers.get("Idempotency-Key", "")
        if not 1 <= len(key) <= 128:
            self._error(400, "Idempotency-Key header required (1..128 characters)")
            return
        if isinstance(doc, dict) and doc.get("batch_id") not in (None, key):
            self._error(400, "batch_id differs from the Idempotency-Key header")
            return
        try:
            answer, replayed = self.server.store.ingest_batch(key, doc)
        except ReceiverError as exc:
            self._error(422, str(exc))
            return
        self._reply(200, answer, {"Idempotent-Replayed": "true"} if replayed else None)

    def handle_capture(self, doc: Any) -> None:
        try:
            cid, _new = self.server.store.capture_epcis(doc)
        except ReceiverError as exc:
            self._error(400, str(exc))
            return
        self.send_response(202)
        self.send_header("Location", f"/epcis/capture/{cid}")
        self.send_header("Content-Length", "0")
        self.end_headers()


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: ReceiverStore, *, token: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, handler: type = ReceiverHandler,
                 verbose: bool = False):
        self.store = store
        self.token = token
        self.verbose = verbose
        self.scheme = "https" if ssl_context else "http"
        super().__init__(address, handler)
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> "ReceiverServer":
        """Serve on a daemon thread (tests, benchmarks)."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="tagweigh-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def make_server(store: ReceiverStore, host: str = "127.0.0.1", port: int = 0, **kw: Any) -> ReceiverServer:
    return ReceiverServer((host, port), store, **kw)


def load_keys(path: str | Path) -> KeyRegistry:
    """The key export written by `KeyRegistry.export_keys` (same 0600 file format)."""
    return KeyRegistry(path, create=False)


def gzip_json(doc: Any) -> bytes:
    return gzip.compress(json.dumps(doc).encode(), mtime=0)
