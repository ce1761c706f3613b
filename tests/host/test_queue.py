"""The durable queue on real SQLite files: schema versions, durability settings, upload
bookkeeping per sink, stats, audit, and clear errors for full, locked, corrupt and newer files."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tagweigh.queue import READING_COLUMNS, SCHEMA_VERSION, Queue, QueueError


def _row(seq: int, device: str = "17", verdict: str = "accept", reason: str = "NONE", received=None, **kw):
    values = dict(
        device_id=device, seq=seq, raw=b"\xa1frame%d" % seq, received_at=received or time.time(),
        time=int(time.time()), time_estimated=0, boot=None, uptime_ms=None, step=2, tag_kind=3,
        tag_text=f"SK{seq:08d}", tag_key=f"SK{seq:08d}", mineral="SN", net_g=30000 + seq, tare_g=500,
        e_g=20, flags=8, operator=201, cal_id=1, ruleset_id="0a0b0c0d", prev="00000000",
        station_verdict="accept", station_reason="NONE", verdict=verdict, reason=reason, rule_id=None,
        findings=None, chain_ok=1, site="CD-SK-012", port="memory://x",
    )
    values.update(kw)
    return tuple(values[c] for c in READING_COLUMNS)


def _insert(q: Queue, rows):
    with q.transaction() as db:
        q.insert_readings(db, rows)


def test_new_queue_has_versioned_schema_wal_and_full_sync(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    assert q.schema_version() == SCHEMA_VERSION
    assert q.rows("SELECT version FROM schema_migrations") == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    assert q.rows("PRAGMA journal_mode") == [("wal",)]
    assert q.rows("PRAGMA synchronous") == [(2,)]  # FULL: the WAL is fsync'd at every commit
    q.close()
    again = Queue(tmp_path / "q.sqlite3")  # reopening applies nothing twice
    assert again.rows("SELECT COUNT(*) FROM schema_migrations") == [(SCHEMA_VERSION,)]


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    Queue(tmp_path / "q.sqlite3").close()
    db = sqlite3.connect(tmp_path / "q.sqlite3")
    db.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    db.commit()
    db.close()
    with pytest.raises(QueueError) as exc:
        Queue(tmp_path / "q.sqlite3")
    assert exc.value.kind == "newer" and "upgrade tagweigh" in exc.value.hint


def test_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "q.sqlite3"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    with pytest.raises(QueueError) as exc:
        Queue(path)
    assert exc.value.kind == "corrupt"
    assert "corrupt" in str(exc.value) and "keep" in exc.value.hint


def test_locked_database_gives_a_clear_error_and_no_partial_write(tmp_path):
    q = Queue(tmp_path / "q.sqlite3", busy_timeout_ms=50)
    other = sqlite3.connect(tmp_path / "q.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    with pytest.raises(QueueError) as exc:
        _insert(q, [_row(1)])
    assert exc.value.kind == "locked" and "another" in exc.value.hint
    other.execute("ROLLBACK")
    other.close()
    assert q.rows("SELECT COUNT(*) FROM readings") == [(0,)]
    _insert(q, [_row(1)])
    assert q.rows("SELECT COUNT(*) FROM readings") == [(1,)]


def test_disk_full_rolls_back_the_whole_batch(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    pages = q.rows("PRAGMA page_count")[0][0]
    q._db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(QueueError) as exc:
        _insert(q, [_row(i, raw=b"x" * 200) for i in range(1, 200)])
    assert exc.value.kind == "full" and "free space" in exc.value.hint
    assert q.rows("SELECT COUNT(*) FROM readings") == [(0,)]


def test_same_device_and_seq_cannot_be_stored_twice(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    _insert(q, [_row(1)])
    with pytest.raises(QueueError):
        _insert(q, [_row(2), _row(1)])
    assert q.rows("SELECT seq FROM readings") == [(1,)]  # the batch with the duplicate rolled back
    assert q.find_reading("17", 1)["raw"] == b"\xa1frame1"
    assert q.find_reading("17", 2) is None


def test_pending_upload_and_mark_uploaded_per_sink(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    _insert(q, [_row(i) for i in range(1, 6)])
    pend = q.pending_upload("http", 3)
    assert [r["seq"] for r in pend] == [1, 2, 3]
    assert pend[0]["raw"] == b"\xa1frame1" and pend[0]["upload_state"] == "pending"
    assert set(READING_COLUMNS) <= set(pend[0])
    ids = [r["id"] for r in pend]
    batch = q.mark_uploaded("http", [(ids[0], "uploaded", None), (ids[1], "rejected", "schema: net_g"),
                                     (ids[2], "retry", "HTTP 503")], batch_id="b-1")
    assert batch > 0
    again = q.pending_upload("http", 10)
    assert [r["seq"] for r in again] == [3, 4, 5]
    assert (again[0]["upload_state"], again[0]["upload_attempts"], again[0]["upload_last_error"]) == (
        "retry", 1, "HTTP 503")
    assert [r["seq"] for r in q.pending_upload("mqtt", 10)] == [1, 2, 3, 4, 5]  # sinks are independent
    q.mark_uploaded("http", [(r["id"], "uploaded", None) for r in again])
    assert q.pending_upload("http", 10) == []
    assert q.depth("http") == 0 and q.depth("mqtt") == 5
    with pytest.raises(QueueError):
        q.mark_uploaded("http", [(ids[0], "done", None)])
    uploads = q.rows("SELECT sink, batch_id, count, uploaded, rejected, retry, state FROM uploads ORDER BY id")
    assert uploads == [("http", "b-1", 3, 1, 1, 1, "partial"), ("http", None, 3, 3, 0, 0, "ok")]


def test_stats_counts_today_and_last_reading(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    yesterday = time.time() - 2 * 86400
    _insert(q, [_row(1, verdict="reject", reason="WEIGHT-RANGE", received=yesterday),
                _row(2, verdict="reject", reason="TAG-SITE"), _row(3), _row(4, verdict="warn")])
    st = q.stats()
    assert (st["rejected_today"], st["accepted_today"], st["warned_today"]) == (1, 1, 1)
    assert st["readings_total"] == 4 and st["depth"] == 4
    assert st["last_reading"]["seq"] == 4 and st["schema_version"] == SCHEMA_VERSION
    q.mark_uploaded("http", [(1, "uploaded", None)])
    st = q.stats()
    assert st["depth"] == 3 and "http" in st["last_upload"] and st["depth_by_sink"] == {"http": 3}


def test_readings_filters(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    _insert(q, [_row(1, site="A"), _row(2, site="B"), _row(1, device="18", site="A", verdict="reject")])
    assert [r["seq"] for r in q.readings(site="A")] == [1, 1]
    assert [r["device_id"] for r in q.readings(site="A", newest_first=False)] == ["17", "18"]
    assert len(q.readings(verdict="reject")) == 1
    assert q.readings(since=time.time() + 3600) == []
    assert len(q.readings(limit=2)) == 2


def test_audit_and_void_keep_evidence(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    _insert(q, [_row(1)])
    q.audit("operator:201", "login", {"station": "17"})
    q.void(1, "bag weighed with the wrong tag", actor="supervisor:7")
    row = q.readings()[0]
    assert row["voided"] == 1 and row["void_reason"] == "bag weighed with the wrong tag"
    log = q.audit_log()
    assert [e["action"] for e in log] == ["void", "login"]
    assert json.loads(log[0]["detail"]) == {"reading_id": 1, "reason": "bag weighed with the wrong tag"}
    assert log[0]["actor"] == "supervisor:7"
    with pytest.raises(QueueError):
        q.void(1, "", actor="x")


def test_readonly_queue_for_status(tmp_path):
    with pytest.raises(QueueError) as exc:
        Queue(tmp_path / "missing.sqlite3", readonly=True)
    assert exc.value.kind == "cantopen"
    Queue(tmp_path / "q.sqlite3").close()
    with Queue(tmp_path / "q.sqlite3", readonly=True) as ro:
        assert ro.stats()["readings_total"] == 0
