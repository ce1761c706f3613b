"""The upload loop: oldest first, one batch at a time, per sink, with backoff.

Crash safety comes from the queue: a reading is final for a sink only once `mark_uploaded` has
committed its result, so after a crash the next run starts again at the oldest reading that is not
final. A batch that reached the backend but whose answer was lost is sent again with the same
idempotency key (it is derived from the batch content, see records.batch_key) and the backend
answers it from its idempotency record or by (device, seq): no duplicates either way.

Whole-batch failures write nothing to the queue (no wear on a depot's SD card while a backend is
down for days); they only move the sink's next attempt: exponential backoff with jitter, or the
backend's Retry-After. The same `Uploader` runs inside the bridge (`run(stop)` on a thread) and
in `tagweigh upload --once` (`run_once()`).

Throughput: while a batch is in flight, a helper thread reads the next one from the queue and
builds its body (`Sink.prepare`: records, JSON, gzip), so the bridge's work overlaps the round
trip instead of adding to it. Only one request is ever outstanding and marking is unchanged.
"""

from __future__ import annotations

import logging
import random
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from tagweigh.queue import Queue, QueueError
from tagweigh.upload.sink import BatchRejected, BatchTooLarge, Result, Sink, SinkError

__all__ = ["SinkState", "Uploader"]

log = logging.getLogger("tagweigh.upload")


class SinkState:
    """What the uploader knows about one sink between attempts (in memory only)."""

    def __init__(self, sink: Sink, batch_size: int):
        self.sink = sink
        self.batch_size = batch_size
        self.failures = 0  # consecutive whole-batch failures
        self.next_at = 0.0  # clock time of the next attempt
        self.last_error: str | None = None
        self.fatal = False
        self.last_success: float | None = None
        self.uploaded = self.rejected = self.retried = self.batches = 0

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "sink": self.sink.name, "target": self.sink.describe(), "batch_size": self.batch_size,
            "failures": self.failures, "next_attempt_in_s": max(0.0, self.next_at - now),
            "last_error": self.last_error, "fatal": self.fatal, "uploaded": self.uploaded,
            "rejected": self.rejected, "retried": self.retried, "batches": self.batches,
        }


class Uploader:
    """Drains `queue` into each sink.

    batch_size: rows per batch (a 413 halves it for that sink, down to 1).
    backoff_initial_s / backoff_max_s: delay after the first failure, doubling up to the cap;
      equal jitter (half fixed, half random) so a fleet of depots does not retry in step.
    retry_after_max_s: the longest Retry-After honoured (a backend cannot park us for a year).
    disk_warn_free_mb: warn when the queue's disk has less free space than this.
    clock/rng/disk_usage: injectable for tests (simulated days of outage).
    """

    def __init__(self, queue: Queue, sinks: Sink | list[Sink], *, batch_size: int = 500,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 300.0,
                 retry_after_max_s: float = 3600.0, disk_warn_free_mb: float = 200.0,
                 clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random,
                 disk_usage: Callable[[str], Any] = shutil.disk_usage):
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be 1..10000")
        self.queue = queue
        self.sinks = [sinks] if isinstance(sinks, Sink) else list(sinks)
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"two sinks share a name: {names}")
        self.states = {s.name: SinkState(s, batch_size) for s in self.sinks}
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self.disk_warn_free_bytes = int(disk_warn_free_mb * 1e6)
        self.clock = clock
        self.rng = rng
        self._disk_usage = disk_usage
        self._kick = threading.Event()  # "retry now" from the operator page or a signal
        self.disk_warning: str | None = None

    # ---- one pass ---------------------------------------------------------------------------
    def run_once(self, *, force: bool = False, max_batches: int = 100_000,
                 time_budget_s: float | None = None) -> dict[str, dict[str, Any]]:
        """Upload every due sink until its backlog is empty, a batch fails, or the budget is used.
        force: ignore backoff (the CLI's --once). Returns each sink's state (see SinkState)."""
        self.check_disk()
        start = self.clock()
        for st in self.states.values():
            if not force and self.clock() < st.next_at:
                continue
            self._drain(st, start, max_batches, time_budget_s)
        now = self.clock()
        return {name: st.as_dict(now) for name, st in self.states.items()}

    def _drain(self, st: SinkState, start: float, max_batches: int, time_budget_s: float | None) -> None:
        """Send batches one at a time, oldest first, until there are none, one fails or the budget
        is used. While a batch is in flight a helper thread reads and prepares the next one (the
        rows after it, same size), so our encoding overlaps the backend's work. That batch is sent
        only when the one before it came back with a final answer for every row; otherwise it is
        dropped and the queue read again. Marking is unchanged: a batch after its answer."""
        with ThreadPoolExecutor(1, thread_name_prefix=f"tagweigh-upload-{st.sink.name}") as helper:
            ahead: Future | None = None
            for n in range(max_batches):
                if time_budget_s is not None and self.clock() - start > time_budget_s:
                    break
                rows, prepared = ahead.result() if ahead is not None else self._prepare(st, None)
                ahead = None
                if not rows:
                    break
                if n + 1 < max_batches:
                    ahead = helper.submit(self._prepare, st, rows[-1]["id"])
                outcome = self._one_batch(st, rows, prepared)
                if outcome == "stop":
                    break
                if outcome == "again":  # not every row was sent: the batch read ahead skips some
                    ahead = None

    def _prepare(self, st: SinkState, after_id: int | None) -> tuple[list[dict[str, Any]], Any]:
        """The next batch's rows (after after_id, if given) and the sink's wire form of them."""
        rows = self.queue.pending_upload(st.sink.name, st.batch_size, after_id=after_id)
        return rows, (st.sink.prepare(rows) if rows else None)

    def _one_batch(self, st: SinkState, rows: list[dict[str, Any]], prepared: Any) -> str:
        """Send one batch and mark its results. Returns 'next' (every row has a final answer: the
        batch after it may be sent), 'again' (only part was sent, the batch size shrank: read the
        queue again) or 'stop' (the batch failed or the backend asked for a retry: back off)."""
        try:
            results = self._send(st, rows, prepared)
        except SinkError as exc:
            self._failed(st, exc)
            return "stop"
        self.queue.mark_uploaded(st.sink.name, results)
        counts = {"uploaded": 0, "rejected": 0, "retry": 0}
        for _id, state, _reason in results:
            counts[state] += 1
        st.uploaded += counts["uploaded"]
        st.rejected += counts["rejected"]
        st.retried += counts["retry"]
        st.batches += 1
        if counts["rejected"]:
            log.warning("%s: backend rejected %d record(s), e.g. %s", st.sink.name, counts["rejected"],
                        next(r for _i, s, r in results if s == "rejected"))
        if counts["retry"]:  # the backend wants some again: back off before re-sending them
            self._failed(st, SinkError(f"backend asked to retry {counts['retry']} record(s)"))
            return "stop"
        st.failures = 0
        st.fatal = False
        st.last_error = None
        st.last_success = self.clock()
        st.next_at = 0.0
        return "next" if len(results) == len(rows) else "again"

    def _send(self, st: SinkState, rows: list[dict[str, Any]], prepared: Any = None) -> list[Result]:
        """sink.send with the two whole-batch refusals handled: 413 shrinks the batch, 400/422
        splits it until the refused records are found (each marked 'rejected' with the reason).
        prepared: the sink's wire form of exactly these rows, if already built."""
        try:
            return st.sink.deliver(rows, prepared) if prepared is not None else st.sink.send(rows)
        except BatchTooLarge as exc:
            if len(rows) == 1:
                return [(rows[0]["id"], "rejected", f"too large for the backend: {exc}")]
            st.batch_size = max(1, len(rows) // 2)
            log.warning("%s: backend refused the batch size, now %d per batch", st.sink.name, st.batch_size)
            return self._send(st, rows[: st.batch_size])
        except BatchRejected as exc:
            if len(rows) == 1:
                return [(rows[0]["id"], "rejected", exc.reason)]
            half = len(rows) // 2
            return self._send(st, rows[:half]) + self._send(st, rows[half:])

    def _failed(self, st: SinkState, exc: SinkError) -> None:
        st.failures += 1
        st.fatal = exc.fatal
        st.last_error = str(exc) + (f" ({exc.hint})" if exc.hint else "")
        if exc.retry_after is not None:
            delay = min(max(exc.retry_after, 0.0), self.retry_after_max_s)
            delay += self.rng() * min(delay * 0.1, 5.0)  # a little spread so depots do not align
        else:
            cap = self.backoff_max_s if exc.fatal else min(
                self.backoff_max_s, self.backoff_initial_s * 2 ** min(st.failures - 1, 40))
            delay = cap / 2 + self.rng() * cap / 2
        st.next_at = self.clock() + delay
        level = logging.ERROR if exc.fatal else logging.WARNING
        log.log(level, "%s: upload failed (%s); next attempt in %.1f s", st.sink.name, st.last_error, delay,
                extra={"event": "upload_failed", "sink": st.sink.name, "failures": st.failures})

    # ---- the loop the bridge runs -----------------------------------------------------------
    def next_due(self) -> float:
        """Seconds until the earliest sink is due (0 if one is due now)."""
        now = self.clock()
        return max(0.0, min((st.next_at for st in self.states.values()), default=0.0) - now)

    def run(self, stop: threading.Event, *, idle_s: float = 5.0, time_budget_s: float = 30.0) -> None:
        """Loop until `stop` is set: upload what is due, then wait until the next sink is due or
        idle_s passes (new readings). Never raises on upload or queue errors; logs them."""
        while not stop.is_set():
            force = self._kick.is_set()
            self._kick.clear()
            try:
                self.run_once(force=force, time_budget_s=time_budget_s)
            except QueueError as exc:
                log.error("upload: queue unavailable: %s", exc)
            except Exception:  # a bug in a sink must not kill the bridge's uploader thread
                log.exception("upload: unexpected error")
            due = self.next_due()
            deadline = time.monotonic() + (min(idle_s, due) if due > 0 else idle_s)
            while not stop.is_set() and not self._kick.is_set() and time.monotonic() < deadline:
                stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))

    def kick(self) -> None:
        """Try every sink now, ignoring backoff (the operator's "retry upload now"). The running
        loop does it on its own thread, so two uploads of the same batch never race."""
        for state in self.states.values():
            state.next_at = 0.0  # backoff cleared: next_due() is 0 at once
        self._kick.set()

    def close(self) -> None:
        for s in self.sinks:
            s.close()

    # ---- health -----------------------------------------------------------------------------
    def check_disk(self) -> str | None:
        """Warn (log + `disk_warning`) when the queue's disk is nearly full."""
        try:
            usage = self._disk_usage(str(self.queue.path.parent))
        except OSError:
            return self.disk_warning
        if usage.free < self.disk_warn_free_bytes:
            msg = (f"disk holding the queue ({self.queue.path.parent}) is nearly full: "
                   f"{usage.free / 1e6:.0f} MB free (warning below {self.disk_warn_free_bytes / 1e6:.0f} MB); "
                   "readings stop being acknowledged when it is full")
            if msg != self.disk_warning:
                log.warning(msg, extra={"event": "disk_nearly_full"})
            self.disk_warning = msg
        else:
            self.disk_warning = None
        return self.disk_warning

    def status(self) -> dict[str, Any]:
        now = self.clock()
        return {"sinks": {n: st.as_dict(now) for n, st in self.states.items()},
                "disk_warning": self.disk_warning}
