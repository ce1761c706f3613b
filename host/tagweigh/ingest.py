"""The ingest step the committer thread runs for each group commit.

For a batch of MAC-verified readings (from every link) it decides, in arrival order: duplicate
(same device and sequence number, same bytes: answer the stored verdict again), conflict (same
sequence number, different bytes: refuse and raise a tamper alert), held back (it overtook a
predecessor the station is still sending: NACK out_of_order, stored nothing, so readings are
stored in sequence order and every chain link is checked; SPEC 10), or new. For a new reading it
checks the hash chain, runs the shared rules with the bridge's state, assigns a time to readings
taken before the station's clock was set, and builds the row. Then it writes every row, device
update, alert and queued operation in ONE transaction. Only when that transaction has committed
(fsync'd) does the caller release the ACKs.

Results are small ints per reading: 0..255 is the ACK verdict byte; a negative value -N means
"answer NACK with reason N" (twproto.messages.NACK_*).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable

from twproto import reasons as R
from twproto.messages import NACK_CONFLICT, NACK_OUT_OF_ORDER, NACK_STORAGE_UNAVAILABLE, chain_link
from twproto.frame import frame_mac
from twproto.rules import evaluate

from tagweigh.bridge_state import BridgeState
from tagweigh.queue import Queue, QueueError
from tagweigh.wirefast import tag_text as _tag_text

__all__ = ["Ingestor", "Item", "Op", "NACK_RESULT_STORAGE", "NACK_RESULT_OUT_OF_ORDER", "HOLD_MAX_S"]

log = logging.getLogger("tagweigh.ingest")

NACK_RESULT_STORAGE = -NACK_STORAGE_UNAVAILABLE
NACK_RESULT_OUT_OF_ORDER = -NACK_OUT_OF_ORDER
# SPEC 10: the longest the bridge holds back one reading while it waits for a predecessor the
# station should still send (6 of the station's 5 s resend rounds). After that the reading is
# stored as a gap: a journal with a hole the station's HELLO could not show never blocks delivery.
HOLD_MAX_S = 30.0
_VERDICT_NAMES = R.VERDICT_NAMES
_REJECT = R.REJECT
_RULE_IDS = {row[0]: row[1] for row in R.TABLE}


class Item:
    """One verified reading on its way to the queue."""

    __slots__ = ("session", "device_id", "raw", "reading", "received_at", "port")

    def __init__(self, session: Any, device_id: str, raw: bytes, reading: Any, received_at: float,
                 port: str | None):
        self.session = session
        self.device_id = device_id
        self.raw = raw
        self.reading = reading
        self.received_at = received_at
        self.port = port


class Op:
    """Work to run inside the next group-commit transaction: fn(db, ingestor) -> result.
    `done` is set after the transaction committed (result) or failed (error)."""

    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn: Callable[[Any, "Ingestor"], Any]):
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def wait(self, timeout: float | None = None) -> Any:
        if not self.done.wait(timeout):
            raise QueueError("the queue did not answer in time (committer busy or stopped)", kind="other")
        if self.error is not None:
            raise self.error
        return self.result


def _rule_id(code: int) -> str:
    return _RULE_IDS.get(code) or R.rule_id(code)


class Ingestor:
    """Decides and stores batches of readings. Not thread-safe: the committer thread owns it."""

    def __init__(self, queue: Queue, ruleset: Any = None,
                 provisioned: Callable[[str], float | None] = lambda d: None,
                 clock: Callable[[], float] = time.time, hold_s: float = HOLD_MAX_S):
        self.queue = queue
        self.ruleset = ruleset
        self.clock = clock
        self.hold_s = hold_s
        self._held: dict[tuple[str, int], float] = {}  # (device, seq) -> first held back at
        self.state = BridgeState(queue, provisioned)
        self.counters = {
            "readings_stored": 0, "accepted": 0, "warned": 0, "rejected": 0, "duplicates": 0,
            "conflicts": 0, "chain_breaks": 0, "commits": 0, "commit_failures": 0, "alerts": 0,
            "held": 0,
        }
        self.pending_alerts: list[tuple] = []  # alerts raised by ops, written in the same transaction
        self._stale = False  # the cached state ran ahead of a rolled-back transaction

    def reopen(self, queue: Queue) -> None:
        """Use a freshly opened queue (after an I/O or corruption error) and rebuild the state."""
        self.queue = queue
        self.state = BridgeState(queue, self.state._provisioned)

    # ---- helpers for ops ----
    def alert(self, kind: str, device_id: str | None, seq: int | None, port: str | None,
              detail: dict[str, Any], raw: bytes | None = None, now: float | None = None) -> None:
        """Queue an alert row for the current transaction (call from an Op or inside process)."""
        self.pending_alerts.append(
            (self.clock() if now is None else now, kind, device_id, seq, port,
             json.dumps(detail, sort_keys=True, default=str), raw)
        )

    # ---- the batch ----
    def process(self, items: list[Item], ops: list[Op] = ()) -> list[int]:
        """Store a batch durably; return one result per item (see module doc). Raises QueueError
        (after resetting the cached state) if the transaction could not be committed."""
        if self._stale:
            self.state.reset()  # raises QueueError while the database is still unusable
            self._stale = False
        now = self.clock()
        inow = int(now)
        state = self.state
        ruleset = self.ruleset
        rows: list[tuple] = []
        heads: dict[str, tuple] = {}
        local: dict[tuple[str, int], tuple[bytes, int]] = {}
        results = [0] * len(items)
        counters = self.counters
        alert = self.alert
        accepted = warned = rejected = 0
        held = self._held
        work: Any = range(len(items))
        while True:
            # In arrival order; then again for the readings held back, as long as the round
            # before stored something (a reading that overtook its predecessor in this batch is
            # stored right after it instead of being sent back).
            waiting: list[int] = []
            stored = len(rows)
            for i in work:
                it = items[i]
                r = it.reading
                dev_id = it.device_id
                dev = state.device(dev_id)
                seq = r.seq
                last = dev.seq
                if last is not None and seq <= last:
                    prior = local.get((dev_id, seq))
                    if prior is None:
                        found = self.queue.find_reading(dev_id, seq)
                        if found is not None:
                            prior = (found["raw"], self._stored_byte(found))
                    if prior is not None:
                        if prior[0] == it.raw:
                            counters["duplicates"] += 1
                            results[i] = prior[1]
                        else:
                            counters["conflicts"] += 1
                            alert("tamper", dev_id, seq, it.port,
                                  {"what": "same sequence number, different signed bytes",
                                   "stored_frame": prior[0].hex()}, it.raw, now)
                            log.warning("tamper: device %s seq %d arrived with different bytes", dev_id, seq,
                                        extra={"event": "tamper", "device": dev_id, "seq": seq, "port": it.port})
                            results[i] = -NACK_CONFLICT
                        continue
                if seq > (last or 0) + 1 and it.session is not None and self._must_wait(it, seq, last):
                    waiting.append(i)  # a predecessor is still on its way: not stored yet
                    results[i] = NACK_RESULT_OUT_OF_ORDER
                    continue
                held.pop((dev_id, seq), None)
                # hash chain: prev must be the first 4 bytes of the previous reading's MAC
                # SPEC 11: the link is checked when seq - 1 is held; else it is recorded as unknown.
                if seq == 1:
                    expected = 0
                elif last is not None and seq == last + 1:
                    expected = chain_link(dev.head)
                elif last is not None and seq <= last:  # late arrival below the head: look it up
                    before = local.get((dev_id, seq - 1))
                    if before is None:
                        found = self.queue.find_reading(dev_id, seq - 1)
                        before = (found["raw"], 0) if found is not None else None
                    expected = chain_link(frame_mac(before[0])) if before is not None else None
                else:
                    expected = None  # predecessor not held: first contact, or a gap (SEQ-GAP)
                if expected is None:
                    chain = None
                elif r.prev == expected:
                    chain = 1
                else:
                    chain = 0
                    counters["chain_breaks"] += 1
                    alert("chain_break", dev_id, seq, it.port,
                          {"prev": "%08x" % r.prev, "expected": "%08x" % expected,
                           "what": "reading does not link to the previous one (deleted, reordered or replaced?)"},
                          it.raw, now)
                if ruleset is not None:
                    v = evaluate(ruleset, r, dev, inow)
                    verdict = v.verdict
                    reason_code = v.reason
                    tag_key = v.tag_key
                    mineral = v.mineral
                    if v.findings:
                        entry = next((f.entry for f in v.findings if f.severity == verdict), None)
                        findings = json.dumps([[f.rule_id, f.entry, f.severity, f.detail] for f in v.findings])
                    else:
                        entry = findings = None
                    tag_text = _tag_text(r.tag_kind, r.tag)
                else:  # no rule set configured: keep the station's verdict
                    verdict = r.verdict
                    reason_code = r.reason
                    tag_key = tag_text = _tag_text(r.tag_kind, r.tag)
                    mineral = entry = findings = None
                if r.time is not None:
                    t = r.time
                    est = 0
                else:
                    origin = dev.boots.get(r.boot)
                    if origin is None:
                        t, est = None, 2
                    else:
                        t, est = origin + r.uptime_ms / 1000.0, 1
                vbyte = verdict | (reason_code << 2)
                rows.append((
                    dev_id, seq, it.raw, it.received_at, t, est,
                    None if est == 0 else r.boot, None if est == 0 else r.uptime_ms,
                    r.step, r.tag_kind, tag_text, tag_key, mineral, r.net_g, r.tare_g, r.e_g, r.flags,
                    r.operator, r.cal_id, "%08x" % r.ruleset_id, "%08x" % r.prev,
                    _VERDICT_NAMES[r.verdict], _rule_id(r.reason),
                    _VERDICT_NAMES[verdict], _rule_id(reason_code), entry, findings, chain, dev.site,
                    it.port,
                ))
                if verdict == _REJECT:
                    rejected += 1
                else:
                    state.record(tag_key, r.step, r.net_g)
                    if verdict:
                        warned += 1
                    else:
                        accepted += 1
                if last is None or seq > last:
                    dev.seq = seq
                    dev.head = r.mac
                    heads[dev_id] = (seq, r.mac, it.received_at, now, dev_id)
                local[(dev_id, seq)] = (it.raw, vbyte)
                results[i] = vbyte
            if not waiting or len(rows) == stored:
                break
            work = waiting
        if waiting:
            counters["held"] += len(waiting)
        try:
            q = self.queue
            with q.transaction() as db:
                if rows:
                    q.insert_readings(db, rows)
                if heads:
                    q.update_devices(db, heads.values())
                for op in ops:
                    op.result = op.fn(db, self)
                if self.pending_alerts:
                    q.add_alerts(db, self.pending_alerts)
        except BaseException as exc:
            counters["commit_failures"] += 1
            self.pending_alerts = []
            self._stale = True  # rebuilt from disk before the next batch
            err = exc if isinstance(exc, QueueError) else QueueError(f"ingest failed: {exc!r}")
            for op in ops:
                op.error = err
                op.done.set()
            raise err from (None if err is exc else exc)
        counters["commits"] += 1
        counters["alerts"] += len(self.pending_alerts)
        counters["readings_stored"] += len(rows)
        counters["accepted"] += accepted
        counters["warned"] += warned
        counters["rejected"] += rejected
        self.pending_alerts = []
        for op in ops:
            op.done.set()
        return results

    def _must_wait(self, it: Item, seq: int, last: int | None) -> bool:
        """SPEC 10 "In order": hold back reading `seq` (answer NACK out_of_order, store nothing)
        while the station should still send one of the readings between the device's highest
        stored seq `last` and it in this session. It should, unless its HELLO says its journal
        starts after them (they are really gone: a gap, stored and flagged) or the bridge
        refused them in this session (the station skips those until its next session). Never
        longer than hold_s for one reading."""
        session = it.session
        hello = getattr(session, "hello", None)
        if hello is None:
            return False
        lo = (last or 0) + 1
        first = hello.last_seq - hello.backlog + 1  # the oldest reading the journal holds
        if first > lo:
            lo = first
        missing = seq - lo
        if missing <= 0:
            return False
        refused = getattr(session, "refused", None)
        if refused:
            missing -= sum(1 for s in refused if lo <= s < seq)
            if missing <= 0:
                return False
        held = self._held
        key = (it.device_id, seq)
        since = held.get(key)
        if since is None:
            if len(held) >= 4096:  # bounded: readings the station never sent again
                held.clear()
            held[key] = it.received_at
            return True
        return it.received_at - since < self.hold_s

    @staticmethod
    def _stored_byte(found: dict[str, Any]) -> int:
        v = _VERDICT_NAMES.index(found["verdict"])
        code = R.code_of(found["reason"])
        return v | ((code or 0) << 2)
