"""The durable queue: every reading the bridge receives, with its verdict, in one SQLite file.

SQLite in WAL mode with ``synchronous=FULL``: a COMMIT returns only after the WAL is fsync'd, so
the bridge may acknowledge a reading as soon as `Queue.transaction()` exits (invariant 1). The
bridge's committer thread is the only writer of readings; the uploader, the status command and
the operator page open their own `Queue` on the same file (WAL lets them read while it writes).

Every reading is kept with its raw frame and verdict, rejected ones too (invariant 4). Upload
state is per sink (HTTP, EPCIS, MQTT... each uploads independently) in `deliveries`.

Storage failures (disk full, database locked by another program, corrupt file, I/O error)
become `QueueError` with a `kind` and a message that says what to do; nothing is half-written
(the transaction rolls back) and the bridge stops acknowledging until the queue works again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from tagweigh.errors import TagweighError

__all__ = ["Queue", "QueueError", "READING_COLUMNS", "SCHEMA_VERSION", "UPLOAD_STATES"]

UPLOAD_STATES = ("uploaded", "rejected", "retry")


class QueueError(TagweighError):
    """The queue database cannot be used. `kind`: full, locked, corrupt, io, readonly, newer,
    cantopen, other."""

    exit_code = 3

    def __init__(self, message: str, *, kind: str = "other", hint: str | None = None):
        super().__init__(message, hint=hint)
        self.kind = kind


# Columns of `readings` the ingest path writes, in this order (one tuple per reading).
READING_COLUMNS = (
    "device_id", "seq", "raw", "received_at", "time", "time_estimated", "boot", "uptime_ms",
    "step", "tag_kind", "tag_text", "tag_key", "mineral", "net_g", "tare_g", "e_g", "flags", "operator", "cal_id",
    "ruleset_id", "prev", "station_verdict", "station_reason", "verdict", "reason", "rule_id",
    "findings", "chain_ok", "site", "port",
)  # fmt: skip

# Versioned migrations: (version, description, SQL). Applied in order, each in its own
# transaction with its row in schema_migrations. Never edit a released entry: append a new one.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "initial schema",
        """
        CREATE TABLE readings (
            id INTEGER PRIMARY KEY,
            device_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            raw BLOB NOT NULL,                 -- the frame exactly as received (evidence)
            received_at REAL NOT NULL,         -- bridge clock, Unix seconds
            time REAL,                         -- reading time, Unix seconds (NULL: unknown)
            time_estimated INTEGER NOT NULL DEFAULT 0,  -- 0 station-synced, 1 from boot table, 2 unknown boot
            boot INTEGER,                      -- unsynced readings: boot counter
            uptime_ms INTEGER,                 -- unsynced readings: ms since that boot
            step INTEGER NOT NULL,
            tag_kind INTEGER NOT NULL,
            tag_text TEXT NOT NULL,            -- canonical text (UID as upper-case hex)
            tag_key TEXT NOT NULL,             -- identity the rules used (format code or text)
            mineral TEXT,                      -- from the tag's allocation in the rule set
            net_g INTEGER NOT NULL,
            tare_g INTEGER NOT NULL,
            e_g INTEGER NOT NULL,
            flags INTEGER NOT NULL,
            operator INTEGER NOT NULL,
            cal_id INTEGER NOT NULL,
            ruleset_id TEXT NOT NULL,          -- hex of the 4-byte rule set hash prefix
            prev TEXT NOT NULL,                -- hex of the 4-byte chain link
            station_verdict TEXT NOT NULL,
            station_reason TEXT NOT NULL,
            verdict TEXT NOT NULL,             -- the bridge's verdict: accept, warn, reject
            reason TEXT NOT NULL,              -- rule ID, NONE when accepted
            rule_id TEXT,                      -- rule entry that decided (rule set's own id)
            findings TEXT,                     -- JSON [[reason, entry, severity, detail], ...]
            chain_ok INTEGER,                  -- 1 linked to seq-1, 0 broken, NULL not checkable
            site TEXT,
            port TEXT,
            voided INTEGER NOT NULL DEFAULT 0,
            void_reason TEXT,
            UNIQUE (device_id, seq)
        );
        CREATE INDEX readings_tag ON readings (tag_key, step);
        CREATE INDEX readings_received ON readings (received_at);
        CREATE TABLE deliveries (
            reading_id INTEGER NOT NULL REFERENCES readings(id),
            sink TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('uploaded', 'rejected', 'retry')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            updated_at REAL NOT NULL,
            uploaded_at REAL,
            PRIMARY KEY (reading_id, sink)
        ) WITHOUT ROWID;
        CREATE TABLE uploads (
            id INTEGER PRIMARY KEY,
            sink TEXT NOT NULL,
            batch_id TEXT,
            at REAL NOT NULL,
            count INTEGER NOT NULL,
            uploaded INTEGER NOT NULL,
            rejected INTEGER NOT NULL,
            retry INTEGER NOT NULL,
            state TEXT NOT NULL                -- ok (all final), partial, failed (all retry)
        );
        CREATE TABLE devices (
            device_id TEXT PRIMARY KEY,
            site TEXT,
            step INTEGER,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            last_seq INTEGER NOT NULL DEFAULT 0,
            chain_head BLOB,                   -- MAC of the reading with seq = last_seq
            last_reading_at REAL,
            boot INTEGER,
            port TEXT,
            ruleset_id TEXT,
            config_version INTEGER,
            provisioned_at REAL,
            hello TEXT                         -- JSON of the latest HELLO
        );
        CREATE TABLE boots (
            device_id TEXT NOT NULL,
            boot INTEGER NOT NULL,
            origin REAL NOT NULL,              -- bridge time of that boot's t=0 (hello_at - uptime)
            hello_at REAL NOT NULL,
            uptime_ms INTEGER NOT NULL,        -- station uptime at that first HELLO
            last_uptime_ms INTEGER NOT NULL,   -- at the latest HELLO of this boot
            PRIMARY KEY (device_id, boot)
        ) WITHOUT ROWID;
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            kind TEXT NOT NULL,                -- tamper, chain_break, bad_mac, unknown_device, ...
            device_id TEXT,
            seq INTEGER,
            port TEXT,
            detail TEXT NOT NULL,              -- JSON
            raw BLOB,
            acknowledged_at REAL
        );
        CREATE INDEX alerts_at ON alerts (at);
        CREATE TABLE unknown_devices (
            device_id TEXT PRIMARY KEY,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            attempts INTEGER NOT NULL,
            port TEXT,
            hello TEXT
        );
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _classify(exc: BaseException, path: Path) -> QueueError:
    """Translate an sqlite3/OS error into a QueueError that says what happened and what to do."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    low = text.lower()
    if name.startswith("SQLITE_FULL") or "disk is full" in low or getattr(exc, "errno", None) == 28:
        return QueueError(
            f"queue {path}: disk full ({text}); readings are not acknowledged, stations keep them",
            kind="full",
            hint=f"free space on the disk holding {path.parent}",
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in low:
        return QueueError(
            f"queue {path}: database is locked by another program ({text})",
            kind="locked",
            hint="is another bridge, or a tool holding a write transaction, using this file?",
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in low or "not a database" in low:
        return QueueError(
            f"queue {path}: database file is corrupt ({text}); nothing more is acknowledged",
            kind="corrupt",
            hint=f"stop the bridge, keep {path} for recovery (sqlite3 .recover), start with a new path",
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in low:
        return QueueError(f"queue {path}: database is read-only ({text})", kind="readonly",
                          hint=f"check the permissions of {path} and its directory")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in low:
        return QueueError(f"queue {path}: cannot open ({text})", kind="cantopen",
                          hint=f"check that {path.parent} exists and is writable")
    if name.startswith("SQLITE_IOERR") or "disk i/o" in low or isinstance(exc, OSError):
        return QueueError(f"queue {path}: I/O error ({text})", kind="io",
                          hint="check the disk (dmesg) and free space")
    return QueueError(f"queue {path}: {text}", kind="other")


def _local_midnight(now: float) -> float:
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


class Queue:
    """One connection to the queue database. Thread-safe (one lock per Queue); open one Queue per
    process part (the bridge's committer, the uploader, a status command)."""

    def __init__(self, path: str | os.PathLike, *, busy_timeout_ms: int = 2000, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._low: dict[str, int] = {}  # per sink: every reading below this id is final there
        self._insert_sql = (
            f"INSERT INTO readings ({', '.join(READING_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(READING_COLUMNS))})"
        )
        try:
            if readonly:
                if not self.path.exists():
                    raise QueueError(f"queue {self.path} does not exist", kind="cantopen",
                                     hint="start the bridge once, or check [queue] path in the config")
                uri = f"file:{self.path}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if not readonly:
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise QueueError(f"queue {self.path}: cannot switch to WAL mode (got {mode})", kind="io")
                # FULL: in WAL mode the WAL is fsync'd at every COMMIT, which is what makes
                # "acknowledged" mean "on disk" (NORMAL would only sync at checkpoints).
                self._db.execute("PRAGMA synchronous = FULL")
                self._db.execute("PRAGMA foreign_keys = ON")
                self._migrate()
            else:
                self._check_version(self.schema_version())
        except sqlite3.Error as exc:
            raise _classify(exc, self.path) from exc

    def __repr__(self) -> str:
        return f"<Queue {self.path}>"

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- schema ---------------------------------------------------------------------------------
    def schema_version(self) -> int:
        db = self._db
        has = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
        ).fetchone()
        if not has:
            return 0
        row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def _check_version(self, current: int) -> None:
        if current > SCHEMA_VERSION:
            raise QueueError(
                f"queue {self.path} has schema version {current}, this tagweigh knows up to "
                f"{SCHEMA_VERSION}",
                kind="newer",
                hint="upgrade tagweigh; the database was written by a newer version",
            )

    def _migrate(self) -> None:
        db = self._db
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        current = self.schema_version()
        self._check_version(current)
        for version, description, sql in MIGRATIONS:
            if version <= current:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, description, time.time())
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # ---- transactions -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT. When the block exits normally the data is durable (WAL
        fsync'd). Any sqlite error rolls back and is raised as QueueError."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _classify(exc, self.path) from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise _classify(exc, self.path) from exc
                raise

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                cur = self._db.execute(sql, tuple(params))
                cols = [c[0] for c in cur.description] if cur.description else []
                return [dict(zip(cols, row)) for row in cur.fetchall()]
            except sqlite3.Error as exc:
                raise _classify(exc, self.path) from exc

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        """Run a read-only query and return plain tuples (errors as QueueError)."""
        with self._lock:
            try:
                return self._db.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise _classify(exc, self.path) from exc

    def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        with self.transaction() as db:
            return db.execute(sql, tuple(params)).lastrowid or 0

    # ---- ingest (the bridge's committer; call inside transaction()) -------------------------------
    def insert_readings(self, db: sqlite3.Connection, rows: list[tuple]) -> None:
        """Insert reading rows (tuples in READING_COLUMNS order) inside an open transaction."""
        db.executemany(self._insert_sql, rows)

    def find_reading(self, device_id: str, seq: int) -> dict[str, Any] | None:
        """The stored reading (id, raw, verdict, reason) for (device, seq), or None."""
        rows = self._read(
            "SELECT id, raw, verdict, reason, rule_id FROM readings WHERE device_id=? AND seq=?",
            (device_id, seq),
        )
        return rows[0] if rows else None

    # ---- devices, boots, alerts -------------------------------------------------------------------
    def device(self, device_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM devices WHERE device_id=?", (device_id,))
        return rows[0] if rows else None

    def devices(self) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM devices ORDER BY device_id")

    def boots(self, device_id: str) -> dict[int, float]:
        """boot counter -> origin (bridge time of that boot's uptime 0) for one device."""
        rows = self._read("SELECT boot, origin FROM boots WHERE device_id=?", (device_id,))
        return {r["boot"]: r["origin"] for r in rows}

    @staticmethod
    def latest_boot(db: sqlite3.Connection, device_id: str) -> tuple[int, int] | None:
        """(boot, uptime_ms at its latest HELLO) of the device's most recent boot, or None."""
        return db.execute(
            "SELECT boot, last_uptime_ms FROM boots WHERE device_id=? ORDER BY boot DESC LIMIT 1",
            (device_id,),
        ).fetchone()

    @staticmethod
    def record_hello(db: sqlite3.Connection, device_id: str, *, now: float, boot: int, uptime_ms: int,
                     port: str | None, hello: dict[str, Any], site: str | None = None,
                     step: int | None = None, ruleset_id: str | None = None,
                     config_version: int | None = None, provisioned_at: float | None = None,
                     update_boot: bool = True) -> float | None:
        """Inside a transaction: upsert the device and (if update_boot) its boot-table entry.
        Returns the boot origin (bridge time at the station's uptime 0 for this boot), or None."""
        if update_boot:
            # The first HELLO of a boot defines its origin; a later one (reconnect) keeps it.
            db.execute(
                """INSERT INTO boots VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, boot)
                   DO UPDATE SET last_uptime_ms = MAX(boots.last_uptime_ms, excluded.last_uptime_ms)""",
                (device_id, boot, now - uptime_ms / 1000.0, now, uptime_ms, uptime_ms),
            )
        row = db.execute("SELECT origin FROM boots WHERE device_id=? AND boot=?", (device_id, boot)).fetchone()
        db.execute(
            """INSERT INTO devices (device_id, site, step, first_seen, last_seen, boot, port,
                   ruleset_id, config_version, provisioned_at, hello)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (device_id) DO UPDATE SET site=excluded.site, step=excluded.step,
                   last_seen=excluded.last_seen, boot=excluded.boot, port=excluded.port,
                   ruleset_id=excluded.ruleset_id, config_version=excluded.config_version,
                   provisioned_at=COALESCE(excluded.provisioned_at, devices.provisioned_at),
                   hello=excluded.hello""",
            (device_id, site, step, now, now, boot, port, ruleset_id, config_version,
             provisioned_at, json.dumps(hello, sort_keys=True, default=str)),
        )
        return row[0] if row else None

    @staticmethod
    def update_devices(db: sqlite3.Connection, heads: Iterable[tuple]) -> None:
        """Inside a transaction: (last_seq, chain_head, last_reading_at, last_seen, device_id)."""
        db.executemany(
            "UPDATE devices SET last_seq=MAX(last_seq, ?), chain_head=?, last_reading_at=?, "
            "last_seen=? WHERE device_id=?",
            heads,
        )

    @staticmethod
    def add_alerts(db: sqlite3.Connection, alerts: Iterable[tuple]) -> None:
        """Inside a transaction: (at, kind, device_id, seq, port, detail_json, raw)."""
        db.executemany(
            "INSERT INTO alerts (at, kind, device_id, seq, port, detail, raw) VALUES (?, ?, ?, ?, ?, ?, ?)",
            alerts,
        )

    @staticmethod
    def record_unknown(db: sqlite3.Connection, device_id: str, now: float, port: str | None,
                       hello: dict[str, Any]) -> None:
        db.execute(
            """INSERT INTO unknown_devices VALUES (?, ?, ?, 1, ?, ?)
               ON CONFLICT (device_id) DO UPDATE SET last_seen=excluded.last_seen,
                   attempts=unknown_devices.attempts + 1, port=excluded.port, hello=excluded.hello""",
            (device_id, now, now, port, json.dumps(hello, sort_keys=True, default=str)),
        )

    def alerts(self, since: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT * FROM alerts WHERE at >= ? ORDER BY id DESC LIMIT ?", (since or 0, limit)
        )
        for r in rows:
            r["detail"] = json.loads(r["detail"])
        return rows

    def unknown_devices(self) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM unknown_devices ORDER BY last_seen DESC")

    # ---- operators --------------------------------------------------------------------------------
    def audit(self, actor: str, action: str, detail: Any = "") -> int:
        """Record who did what (an operator or technician action). Returns the entry id."""
        text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True, default=str)
        return self._write(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            (time.time(), actor, action, text),
        )

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))

    def void(self, reading_id: int, reason: str, actor: str) -> None:
        """Mark a reading void (it stays stored, as evidence) and audit who did it."""
        if not reason:
            raise QueueError("voiding a reading needs a reason", kind="other")
        with self.transaction() as db:
            cur = db.execute("UPDATE readings SET voided=1, void_reason=? WHERE id=?", (reason, reading_id))
            if cur.rowcount != 1:
                raise QueueError(f"no reading with id {reading_id}", kind="other")
            db.execute(
                "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, 'void', ?)",
                (time.time(), actor, json.dumps({"reading_id": reading_id, "reason": reason})),
            )

    # ---- queries for the page, status and uploaders -----------------------------------------------
    def readings(self, since: float | None = None, site: str | None = None, limit: int = 1000,
                 *, device_id: str | None = None, verdict: str | None = None, tag: str | None = None,
                 after_id: int | None = None, newest_first: bool = True) -> list[dict[str, Any]]:
        """Readings whose time (or, if unknown, received time) is >= since, optionally of one
        site / device / verdict / tag (its key or its text), and with id > after_id (paging);
        newest first unless newest_first=False. raw is bytes."""
        where, params = ["COALESCE(time, received_at) >= ?"], [since or 0]
        if after_id is not None:
            where.append("id > ?")
            params.append(after_id)
        if tag is not None:
            where.append("(tag_key = ? OR tag_text = ?)")
            params += [tag, tag]
        if site is not None:
            where.append("site = ?")
            params.append(site)
        if device_id is not None:
            where.append("device_id = ?")
            params.append(device_id)
        if verdict is not None:
            where.append("verdict = ?")
            params.append(verdict)
        order = "DESC" if newest_first else "ASC"
        params.append(int(limit))
        return self._read(
            f"SELECT * FROM readings WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ?", params
        )

    def pending_upload(self, sink: str, limit: int, *, after_id: int | None = None) -> list[dict[str, Any]]:
        """Readings not yet final for `sink` (never sent, or marked 'retry'), oldest first, as
        dicts with every readings column (raw as bytes) plus this sink's upload_state,
        upload_attempts, upload_last_error and uploaded_at. after_id: only readings with a
        larger id (the batch after one still in flight, whose rows are not marked yet)."""
        low = self._low.get(sink, 0)
        if after_id is not None:
            low = max(low, after_id + 1)
        rows = self._read(
            """SELECT r.*, d.state AS upload_state, COALESCE(d.attempts, 0) AS upload_attempts,
                      d.last_error AS upload_last_error, d.uploaded_at AS uploaded_at
               FROM readings r LEFT JOIN deliveries d ON d.reading_id = r.id AND d.sink = ?
               WHERE r.id >= ? AND (d.state IS NULL OR d.state = 'retry')
               ORDER BY r.id LIMIT ?""",
            (sink, low, int(limit)),
        )
        for r in rows:
            r["upload_state"] = r["upload_state"] or "pending"
        if rows and after_id is None:
            self._low[sink] = rows[0]["id"]  # everything before the first pending row is final
        return rows

    def mark_uploaded(self, sink: str, results: list[tuple[int, str, str | None]],
                      batch_id: str | None = None) -> int:
        """Record the outcome of one upload batch for `sink`: (reading id, state, reason) with
        state 'uploaded' (the backend has it), 'rejected' (the backend refused it for good;
        reason says why) or 'retry' (try again later). Returns the uploads row id."""
        now = time.time()
        counts = {s: 0 for s in UPLOAD_STATES}
        rows = []
        for reading_id, state, reason in results:
            if state not in counts:
                raise QueueError(f"upload state must be one of {UPLOAD_STATES}, got {state!r}")
            counts[state] += 1
            rows.append((int(reading_id), sink, state, reason, now, now if state == "uploaded" else None))
        final = counts["uploaded"] + counts["rejected"]
        state = "ok" if not counts["retry"] else ("failed" if not final else "partial")
        with self.transaction() as db:
            db.executemany(
                """INSERT INTO deliveries (reading_id, sink, state, attempts, last_error, updated_at,
                       uploaded_at) VALUES (?, ?, ?, 1, ?, ?, ?)
                   ON CONFLICT (reading_id, sink) DO UPDATE SET state=excluded.state,
                       attempts=deliveries.attempts + 1, last_error=excluded.last_error,
                       updated_at=excluded.updated_at,
                       uploaded_at=COALESCE(excluded.uploaded_at, deliveries.uploaded_at)""",
                rows,
            )
            return db.execute(
                "INSERT INTO uploads (sink, batch_id, at, count, uploaded, rejected, retry, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sink, batch_id, now, len(rows), counts["uploaded"], counts["rejected"],
                 counts["retry"], state),
            ).lastrowid

    def depth(self, sink: str | None = None) -> int:
        """Readings not yet final for sink; with no sink: not final for at least one known sink
        (or all readings when nothing was ever uploaded)."""
        sinks = [sink] if sink else [r["sink"] for r in self._read("SELECT DISTINCT sink FROM uploads")]
        if not sinks:
            return self._read("SELECT COUNT(*) AS n FROM readings")[0]["n"]
        worst = 0
        for s in sinks:
            n = self._read(
                """SELECT COUNT(*) AS n FROM readings r WHERE NOT EXISTS (SELECT 1 FROM deliveries d
                   WHERE d.reading_id = r.id AND d.sink = ? AND d.state != 'retry')""",
                (s,),
            )[0]["n"]
            worst = max(worst, n)
        return worst

    def stats(self, now: float | None = None) -> dict[str, Any]:
        """What `tagweigh status` and the metrics show: queue depth, counts today, last
        reading, last upload per sink, stations, alerts, database size."""
        now = time.time() if now is None else now
        midnight = _local_midnight(now)
        counts = {r["verdict"]: r["n"] for r in self._read(
            "SELECT verdict, COUNT(*) AS n FROM readings WHERE received_at >= ? GROUP BY verdict",
            (midnight,))}
        total = self._read("SELECT COUNT(*) AS n, MAX(id) AS last FROM readings")[0]
        last = self._read(
            "SELECT id, device_id, seq, time, received_at, tag_text, net_g, verdict, reason "
            "FROM readings ORDER BY id DESC LIMIT 1"
        )
        uploads = self._read(
            "SELECT sink, MAX(at) AS at, SUM(uploaded) AS uploaded FROM uploads GROUP BY sink ORDER BY sink"
        )
        last_ok = self._read(
            "SELECT sink, MAX(at) AS at FROM uploads WHERE uploaded > 0 GROUP BY sink"
        )
        depth_by_sink = {u["sink"]: self.depth(u["sink"]) for u in uploads}
        try:
            size = sum(os.path.getsize(p) for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        except OSError:
            size = None
        return {
            "path": str(self.path),
            "schema_version": self.schema_version(),
            "readings_total": total["n"],
            "depth": max(depth_by_sink.values()) if depth_by_sink else total["n"],
            "depth_by_sink": depth_by_sink,
            "accepted_today": counts.get("accept", 0),
            "warned_today": counts.get("warn", 0),
            "rejected_today": counts.get("reject", 0),
            "alerts_today": self._read("SELECT COUNT(*) AS n FROM alerts WHERE at >= ?", (midnight,))[0]["n"],
            "last_reading": last[0] if last else None,
            "last_upload": {u["sink"]: u["at"] for u in uploads},
            "last_successful_upload": {u["sink"]: u["at"] for u in last_ok},
            "stations": self._read(
                "SELECT device_id, site, step, last_seen, last_seq, last_reading_at, port, boot "
                "FROM devices ORDER BY device_id"
            ),
            "unknown_devices": self._read("SELECT COUNT(*) AS n FROM unknown_devices")[0]["n"],
            "db_bytes": size,
        }
