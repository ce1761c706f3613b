"""What the operator page shows, as plain JSON-ready dicts, and the hub that pushes changes.

`PageData` reads the bridge (sessions: live weight, status, online) and the queue (today's
readings, totals, what needs attention, upload backlog). `Hub` runs one thread that looks for
changes every `interval_s` (0.1 s) and hands small messages to every connected page:

    stations   the station cards (sent when anything on them changed)
    readings   new readings, newest first (the queue's PRAGMA data_version says when to look)
    day        today's totals, readings needing attention, voided ids (after any queue change)
    sync       upload backlog, last successful upload, the uploader's last error (every 2 s)

A page that connects (or reconnects after a bridge restart) first gets one `state` message
with everything, so no message is ever needed twice. Texts the operator reads are not built
here: the page translates reason codes, results and alert kinds itself (English, French).

The uploader hook: if the bridge object has an ``uploader`` attribute (a
`tagweigh.upload.Uploader` or anything with ``status()`` -> {"sinks": {name: {"last_error",
...}}, "disk_warning"}), its state is shown and "retry upload now" calls
``bridge.upload_now()``, which clears the backoff and wakes the uploader's loop. Without one, the page shows the queue-derived backlog
and last successful upload and says that no uploader runs in this bridge.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Any, Callable

from twproto import messages as M
from twproto import reasons as R

from tagweigh.queue import Queue, QueueError, _local_midnight
from tagweigh.session import ONLINE

__all__ = ["Hub", "PageData", "reasons_table"]

log = logging.getLogger("tagweigh.web")

TODAY_LIMIT = 500  # readings a page keeps in its list (the newest of today)
ATTENTION_LIMIT = 100
_EARLY_S = 600.0  # station clocks a little ahead: readings received this long before midnight

# Columns the page needs (raw frames and findings stay in the queue).
_COLS = ("id", "device_id", "seq", "received_at", "time", "time_estimated", "step", "tag_text",
         "mineral", "net_g", "tare_g", "e_g", "flags", "verdict", "reason", "station_verdict",
         "station_reason", "voided", "void_reason", "chain_ok")
_SELECT = f"SELECT {', '.join(_COLS)} FROM readings"


def reasons_table() -> dict[str, Any]:
    """Reason codes, rule IDs, messages and hints in every language (twproto.reasons is the
    one source: the station's display and the page say the same thing)."""
    out = {}
    for code, rid, *_ in R.TABLE:
        out[rid] = {"code": code, "en": R.message(code, "en"), "fr": R.message(code, "fr"),
                    "hint_en": R.hint(code, "en"), "hint_fr": R.hint(code, "fr")}
    return out


def _flag_list(flags: int) -> list[str]:
    names = ((M.SF_MAINTENANCE, "maintenance"), (M.SF_ZERO_OUT_OF_RANGE, "zero_out_of_range"),
             (M.SF_UNCALIBRATED, "uncalibrated"), (M.SF_JOURNAL_FULL, "journal_full"),
             (M.SF_NO_RULESET, "no_ruleset"), (M.SF_SCALE_FAULT, "scale_fault"),
             (M.SF_READER_FAULT, "reader_fault"))
    return [n for bit, n in names if flags & bit]


class PageData:
    """Builds the page's data from a bridge and the page's own queue connection."""

    def __init__(self, bridge: Any, queue: Queue, *, site_name: str = "",
                 clock: Callable[[], float] = time.time):
        self.bridge = bridge
        self.queue = queue
        self.clock = clock
        rs = getattr(bridge, "ruleset", None)
        self.site = rs.site if rs is not None else None
        self.site_name = site_name or (rs.doc.get("title", "") if rs is not None else "")
        self.minerals = dict(rs.minerals) if rs is not None else {}
        self._last: dict[str, dict[str, Any]] = {}  # device -> its latest reading (page form)

    # ---- readings ---------------------------------------------------------------------------
    @staticmethod
    def reading(row: tuple | dict) -> dict[str, Any]:
        r = dict(zip(_COLS, row)) if not isinstance(row, dict) else {k: row.get(k) for k in _COLS}
        r["tag"] = r.pop("tag_text")
        r["stable"] = bool((r.get("flags") or 0) & M.F_STABLE)
        r["voided"] = bool(r["voided"])
        r["code"] = R.code_of(r["reason"])
        return r

    def midnight(self) -> float:
        return _local_midnight(self.clock())

    def today(self, limit: int = TODAY_LIMIT) -> list[dict[str, Any]]:
        return self.filtered(limit=limit)

    def since(self, last_id: int, limit: int = TODAY_LIMIT) -> list[dict[str, Any]]:
        """Readings stored after id last_id, newest first (at most limit)."""
        rows = self.queue.rows(f"{_SELECT} WHERE id > ? ORDER BY id DESC LIMIT ?", (last_id, int(limit)))
        return [self.reading(r) for r in rows]

    def max_id(self) -> int:
        return int(self.queue.rows("SELECT COALESCE(MAX(id), 0) FROM readings")[0][0])

    def filtered(self, *, verdict: str | None = None, device_id: str | None = None,
                 limit: int = TODAY_LIMIT) -> list[dict[str, Any]]:
        m = self.midnight()
        where = ["received_at >= ?", "COALESCE(time, received_at) >= ?"]
        params: list[Any] = [m - _EARLY_S, m]
        if verdict == "voided":
            where.append("voided = 1")
        elif verdict:
            where.append("verdict = ?")
            params.append(verdict)
        if device_id:
            where.append("device_id = ?")
            params.append(device_id)
        params.append(int(limit))
        rows = self.queue.rows(f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", params)
        return [self.reading(r) for r in rows]

    def last_of(self, device_id: str) -> dict[str, Any] | None:
        """The device's latest reading (any day), cached; new readings update the cache."""
        if device_id not in self._last:
            rows = self.queue.rows(f"{_SELECT} WHERE device_id = ? ORDER BY seq DESC LIMIT 1", (device_id,))
            self._last[device_id] = self.reading(rows[0]) if rows else None  # type: ignore[assignment]
        return self._last[device_id]

    def note_new(self, readings: list[dict[str, Any]]) -> None:
        for r in reversed(readings):  # oldest first: the newest wins
            cur = self._last.get(r["device_id"])
            if cur is None or r["seq"] >= cur["seq"]:
                self._last[r["device_id"]] = r

    def day(self) -> dict[str, Any]:
        """Today's totals per step and mineral, counts per verdict, what needs attention."""
        m = self.midnight()
        window = "received_at >= ? AND COALESCE(time, received_at) >= ?"
        groups = self.queue.rows(
            f"SELECT step, COALESCE(mineral, ''), verdict, COUNT(*), COALESCE(SUM(net_g), 0) FROM readings "
            f"WHERE {window} AND voided = 0 GROUP BY step, COALESCE(mineral, ''), verdict",
            (m - _EARLY_S, m))
        totals: dict[tuple[int, str], dict[str, Any]] = {}
        counts = {"accept": 0, "warn": 0, "reject": 0}
        for step, mineral, verdict, n, grams in groups:
            t = totals.setdefault((step, mineral), {"step": step, "mineral": mineral, "bags": 0,
                                                    "net_g": 0, "rejected": 0})
            counts[verdict] = counts.get(verdict, 0) + n
            if verdict == "reject":
                t["rejected"] += n
            else:  # accepted and accepted-with-warning bags count towards the weight
                t["bags"] += n
                t["net_g"] += grams
        voided = [r[0] for r in self.queue.rows(
            f"SELECT id FROM readings WHERE {window} AND voided = 1 ORDER BY id DESC LIMIT ?",
            (m - _EARLY_S, m, TODAY_LIMIT))]
        attention = [self.reading(r) for r in self.queue.rows(
            f"{_SELECT} WHERE {window} AND voided = 0 AND verdict != 'accept' ORDER BY id DESC LIMIT ?",
            (m - _EARLY_S, m, ATTENTION_LIMIT))]
        alerts = []
        for a in self.queue.alerts(since=m, limit=50):
            if a.get("acknowledged_at"):
                continue
            detail = a["detail"] if isinstance(a["detail"], dict) else {}
            alerts.append({"id": a["id"], "at": a["at"], "kind": a["kind"], "device_id": a["device_id"],
                           "seq": a["seq"], "event": detail.get("event")})
        return {"midnight": m, "totals": sorted(totals.values(), key=lambda t: (t["step"], t["mineral"])),
                "counts": counts, "voided": voided, "attention": attention, "alerts": alerts}

    # ---- stations ---------------------------------------------------------------------------
    def _info(self, device_id: str | None) -> dict[str, Any]:
        """What the key registry says about a device (name, site, step), {} if nothing."""
        keys = getattr(self.bridge, "keys", None)
        if device_id is None or keys is None:
            return {}
        try:
            info = keys.info(device_id) or {}
        except Exception:  # a key file being rewritten: the name can wait for the next look
            return {}
        return dict(info.get("info") or {}, **({"name": info["name"]} if info.get("name") else {}))

    def _name(self, device_id: str | None) -> str | None:
        return self._info(device_id).get("name")

    def stations(self) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        waiting = []
        for s in self.bridge.sessions():
            dev = s.device_id
            if dev is None:
                waiting.append({"device_id": None, "key": f"port:{s.port}", "port": s.port, "online": False,
                                "state": s.state})
                continue
            if dev in out and out[dev]["online"]:
                continue  # the device's current session wins over an older one
            out[dev] = self._station(s)
        try:
            known = self.queue.devices()
        except QueueError:
            known = []
        for d in known:  # stations seen before that are not connected now
            dev = d["device_id"]
            if dev not in out:
                out[dev] = {"device_id": dev, "key": dev, "name": self._name(dev), "online": False,
                            "state": "offline", "port": d.get("port"), "step": d.get("step"),
                            "last_seen": d.get("last_seen"), "last": self.last_of(dev), "weight": None,
                            "clock_synced": None, "journal": None, "faults": []}
        return sorted(out.values(), key=lambda x: (x.get("name") or x["device_id"])) + waiting

    def _station(self, s: Any) -> dict[str, Any]:
        dev = s.device_id
        online = s.state == ONLINE
        status = s.last_status or {}
        hello = s.hello
        flags = status.get("flags", hello.flags if hello is not None else 0)
        last = self.last_of(dev)
        live = s.last_live
        weight = None
        # The station sends LIVE only while the weight changes; the READING it sends once the
        # bag is settled and tagged carries the stable weight, so it wins when it is newer.
        if last is not None and (live is None or last["received_at"] >= live["at"]) and online:
            weight = {"net_g": last["net_g"], "e_g": last["e_g"], "stable": last["stable"],
                      "out_of_range": bool(last["flags"] & M.F_OUT_OF_RANGE), "tare_g": last["tare_g"],
                      "at": last["received_at"], "from": "reading"}
        elif live is not None:
            weight = {"net_g": live["net_g"], "e_g": live["e_g"], "stable": bool(live["flags"] & M.F_STABLE),
                      "out_of_range": bool(live["flags"] & M.F_OUT_OF_RANGE), "tare_g": live["tare_g"],
                      "at": live["at"], "from": "live", "tag_state": live.get("tag_state", 0)}
        journal = None
        if "journal_capacity" in status:
            journal = {"used": status["journal_used"], "capacity": status["journal_capacity"]}
        elif hello is not None:
            journal = {"pct": hello.journal_pct, "backlog": hello.backlog}
        return {"device_id": dev, "key": dev, "name": self._name(dev), "online": online, "state": s.state,
                "port": s.port, "step": last["step"] if last else self._info(dev).get("step"), "weight": weight,
                "clock_synced": bool(flags & M.SF_TIME_SYNCED), "journal": journal,
                "faults": _flag_list(flags), "last": last}

    # ---- sync -------------------------------------------------------------------------------
    def sync(self) -> dict[str, Any]:
        up = getattr(self.bridge, "uploader", None)
        out: dict[str, Any] = {"uploader": up is not None, "storage_ok": True, "storage_error": None}
        committer = getattr(self.bridge, "committer", None)
        if committer is not None:
            out["storage_ok"] = committer.storage_ok
            out["storage_error"] = str(committer.error) if committer.error else None
        try:
            out["backlog"] = self.queue.depth()
            rows = self.queue.rows("SELECT MAX(at) FROM uploads WHERE uploaded > 0")
            out["last_success"] = rows[0][0] if rows else None
            rows = self.queue.rows("SELECT MAX(at) FROM uploads")
            out["last_attempt"] = rows[0][0] if rows else None
        except QueueError as exc:
            out["backlog"] = None
            out["queue_error"] = str(exc)
        out["last_error"] = None
        out["sinks"] = []
        out["disk_warning"] = None
        if up is not None:
            try:
                st = up.status()
            except Exception as exc:  # the page must keep working whatever the uploader does
                st = {"sinks": {}, "disk_warning": None}
                out["last_error"] = f"uploader status unavailable: {exc}"
            for name, s in sorted(st.get("sinks", {}).items()):
                out["sinks"].append({"name": name, "target": s.get("target"), "last_error": s.get("last_error"),
                                     "failures": s.get("failures", 0),
                                     "next_attempt_in_s": s.get("next_attempt_in_s")})
                if s.get("last_error") and not out["last_error"]:
                    out["last_error"] = s["last_error"]
            out["disk_warning"] = st.get("disk_warning")
        return out

    def state(self) -> dict[str, Any]:
        return {"site": self.site, "site_name": self.site_name, "minerals": self.minerals,
                "now": self.clock(), "stations": self.stations(), "readings": self.today(),
                "day": self.day(), "sync": self.sync()}


class Subscriber:
    """One connected page: a bounded queue of (event, json) messages. A page that cannot keep
    up (its queue overflows) is told to reload its state instead of growing memory."""

    MAX = 256

    def __init__(self) -> None:
        self.items: deque[tuple[str, str]] = deque()
        self.cond = threading.Condition()
        self.overflow = False
        self.closed = False

    def put(self, event: str, data: str) -> None:
        with self.cond:
            if len(self.items) >= self.MAX:
                self.items.clear()
                self.overflow = True
            else:
                self.items.append((event, data))
            self.cond.notify()

    def get(self, timeout: float) -> list[tuple[str, str]] | None:
        """Waiting messages ([] on timeout); None when the page must get a fresh state."""
        with self.cond:
            if not self.items and not self.overflow and not self.closed:
                self.cond.wait(timeout)
            if self.overflow:
                self.overflow = False
                return None
            out = list(self.items)
            self.items.clear()
            return out

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()


class Hub:
    """Watches the bridge and the queue and publishes changes to subscribers."""

    MAX_SUBSCRIBERS = 32

    def __init__(self, data: PageData, *, interval_s: float = 0.1, sync_every_s: float = 2.0):
        self.data = data
        self.interval_s = interval_s
        self.sync_every_s = sync_every_s
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._data_version: int | None = None
        self._last_id = 0
        self._stations = ""
        self._sync = ""
        self._sync_at = 0.0
        self._midnight = 0.0
        self._force = False
        self.published = 0

    def start(self) -> None:
        self._last_id = self.data.max_id()
        self._midnight = self.data.midnight()
        self._thread = threading.Thread(target=self._loop, name="web-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            subs, self._subs = self._subs, []
        for s in subs:
            s.close()
        if self._thread is not None:
            self._thread.join(5.0)

    def poke(self) -> None:
        """Look for changes now: the page itself changed something (its own writes do not move
        its connection's data_version, so the next step treats the queue as changed)."""
        self._force = True
        self._sync_at = 0.0
        self._wake.set()

    def subscribe(self) -> Subscriber | None:
        with self._lock:
            if len(self._subs) >= self.MAX_SUBSCRIBERS:
                return None
            sub = Subscriber()
            self._subs.append(sub)
            return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(self, event: str, payload: Any) -> None:
        data = json.dumps(payload, separators=(",", ":"), default=str)
        with self._lock:
            subs = list(self._subs)
        for s in subs:
            s.put(event, data)
        self.published += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except QueueError as exc:
                log.warning("operator page: queue unavailable: %s", exc)
                self._stop.wait(1.0)
            except Exception:  # the page's watcher must never die
                log.exception("operator page: watcher failed")
                self._stop.wait(1.0)
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def step(self) -> None:
        """One look for changes (the thread calls it every interval_s; tests may call it)."""
        d = self.data
        midnight = d.midnight()
        if midnight != self._midnight:  # a new day: every page starts its list again
            self._midnight = midnight
            self.publish("reset", {})
        version = d.queue.rows("PRAGMA data_version")[0][0]
        changed = version != self._data_version or self._force
        self._data_version = version
        self._force = False
        if changed:
            new = d.since(self._last_id)
            if new:
                self._last_id = new[0]["id"]
                d.note_new(new)
                self.publish("readings", new)
            self.publish("day", d.day())
        stations = d.stations()
        text = json.dumps(stations, sort_keys=True, default=str)
        if text != self._stations:
            self._stations = text
            self.publish("stations", stations)
        now = time.monotonic()
        if changed or now - self._sync_at >= self.sync_every_s:
            self._sync_at = now
            sync = d.sync()
            text = json.dumps(sync, sort_keys=True, default=str)
            if text != self._sync:
                self._sync = text
                self.publish("sync", sync)
