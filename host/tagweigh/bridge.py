"""The bridge: sessions on N links, one committer doing group commit, metrics and status.

Threads, and why:
  - one reader thread per link. pyserial's URL backends (loop://, rfc2217://, spy://) have no
    selectable file descriptor, so a selector loop could not serve every kind of port; a thread
    blocked in a short read (50 ms) costs nothing while idle and the decode/MAC work it does
    between reads is small. Each thread reopens its port after an unplug with capped
    exponential backoff (link.Backoff).
  - ONE committer thread owns the queue's write connection and the rule state. It takes
    everything that arrived (readings from all links, plus small operations such as recording a
    HELLO or an alert), waits at most `group_commit_ms` for more, runs the rules in arrival order
    and commits the lot in one transaction (fsync'd: synchronous=FULL), then writes the ACKs. One
    writer means no lock contention in SQLite and a rule state that is never stale; one commit
    for many readings is what makes 30k readings/s possible where one commit per reading
    manages a few thousand.
  - metrics: a tiny HTTP server on loopback (`/metrics` in the Prometheus text format, `/status`
    as JSON), because that is what monitoring systems scrape without extra agents; plus a status
    snapshot file next to the queue that `tagweigh status` reads even when no HTTP is allowed.

When the queue fails (disk full, locked, corrupt), the committer answers NACK
storage_unavailable to every reading (stations keep them in their journals) and retries the
database with backoff; it never acknowledges what it could not store.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue as _q
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from tagweigh.config import Config
from tagweigh.errors import ConfigError
from tagweigh.ingest import NACK_RESULT_STORAGE, Ingestor, Op
from tagweigh.keys import KeyRegistry
from tagweigh.link import Backoff, Link, LinkLost, open_link
from tagweigh.queue import Queue, QueueError
from tagweigh.session import CLOSED, ONLINE, Session

__all__ = ["Bridge", "Committer", "discover_ports", "load_ruleset"]

log = logging.getLogger("tagweigh.bridge")


def load_ruleset(path: Path | None) -> Any:
    """Load the bridge's rule set file (None -> None: the station's verdicts are kept)."""
    if path is None:
        return None
    from twproto.errors import ProtocolError
    from twproto.ruleset import load_file

    try:
        return load_file(str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read rule set {path}: {exc.strerror}") from exc
    except ProtocolError as exc:
        raise ConfigError(f"rule set {path} is invalid: {exc}") from exc


class Committer:
    """The single writer. `submit(items)` queues verified readings; `call(fn)` runs fn(db,
    ingestor) inside the next transaction and returns its result once committed."""

    def __init__(self, ingestor: Ingestor, *, window_s: float = 0.002, max_items: int = 1024,
                 retry_initial_s: float = 0.5, retry_max_s: float = 10.0,
                 reopen: Callable[[], Queue] | None = None):
        self.ingestor = ingestor
        self.window_s = window_s
        self.max_items = max_items
        self._inbox: _q.SimpleQueue = _q.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._retry = Backoff(retry_initial_s, retry_max_s)
        self._retry_at = 0.0
        self._reopen = reopen
        self.error: QueueError | None = None  # set while the queue is failing
        self.batches = 0
        self.batch_items = 0
        self.commit_seconds = 0.0

    @property
    def storage_ok(self) -> bool:
        return self.error is None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="committer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop = True
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, items: list) -> None:
        self._inbox.put(items)

    def call_async(self, op: Op) -> Op:
        self._inbox.put(op)
        return op

    def call(self, fn: Callable, timeout: float | None = 5.0) -> Any:
        return self.call_async(Op(fn)).wait(timeout)

    def _loop(self) -> None:
        inbox = self._inbox
        window = self.window_s
        limit = self.max_items
        mono = time.monotonic
        while True:
            first = inbox.get()
            if first is None:
                break
            batch = [first]
            n = len(first) if type(first) is list else 1
            deadline = mono() + window
            stopping = False
            while n < limit:
                try:
                    x = inbox.get_nowait()
                except _q.Empty:
                    rem = deadline - mono()
                    if rem <= 0:
                        break
                    try:
                        x = inbox.get(timeout=rem)
                    except _q.Empty:
                        break
                if x is None:
                    stopping = True
                    break
                batch.append(x)
                n += len(x) if type(x) is list else 1
            self._run(batch)
            if stopping or self._stop and inbox.empty():
                break

    def _run(self, batch: list) -> None:
        readings: list = []
        ops: list[Op] = []
        for x in batch:
            if type(x) is list:
                readings.extend(x)
            else:
                ops.append(x)
        limit = self.max_items
        if len(readings) <= limit:
            self._commit(readings, ops)
        else:  # one transaction holds at most max_items readings
            for i in range(0, len(readings), limit):
                self._commit(readings[i : i + limit], ops if i == 0 else [])

    def _commit(self, readings: list, ops: list[Op]) -> None:
        t0 = time.monotonic()
        if self.error is not None and t0 < self._retry_at:
            results = [NACK_RESULT_STORAGE] * len(readings)
            for op in ops:
                op.error = self.error
                op.done.set()
        else:
            try:
                if self.error is not None and self._reopen is not None and self.error.kind in ("corrupt", "io", "cantopen"):
                    self.ingestor.queue.close()
                    self.ingestor.reopen(self._reopen())
                results = self.ingestor.process(readings, ops)
            except QueueError as exc:
                if self.error is None or str(exc) != str(self.error):
                    log.error("queue unavailable, not acknowledging: %s", exc,
                              extra={"event": "storage_unavailable", "kind": exc.kind, "hint": exc.hint})
                self.error = exc
                self._retry_at = time.monotonic() + self._retry.next_delay()
                results = [NACK_RESULT_STORAGE] * len(readings)
                for op in ops:  # ops that failed before process() had a chance to fail them
                    if not op.done.is_set():
                        op.error = exc
                        op.done.set()
            else:
                if self.error is not None:
                    log.warning("queue works again, acknowledging", extra={"event": "storage_recovered"})
                    self.error = None
                    self._retry.reset()
        self.commit_seconds += time.monotonic() - t0
        self.batches += 1
        self.batch_items += len(readings)
        if not readings:
            return
        # Release the ACKs, per session, in arrival order.
        per: dict[Any, list] = {}
        for it, res in zip(readings, results):
            lst = per.get(it.session)
            if lst is None:
                per[it.session] = lst = []
            lst.append((it.reading.seq, res))
        for session, lst in per.items():
            try:
                session.deliver(lst)
            except Exception:  # one broken link must not stop the others' ACKs
                log.exception("delivering ACKs on %s failed", getattr(session, "port", "?"))


def discover_ports(vid: int | None, pid: int | None, serial_number: str | None) -> list[str]:
    """Device paths of USB serial ports matching vid/pid/serial number (None = any)."""
    from serial.tools import list_ports

    out = []
    for p in list_ports.comports():
        if vid is not None and p.vid != vid:
            continue
        if pid is not None and p.pid != pid:
            continue
        if serial_number is not None and serial_number not in (p.serial_number or ""):
            continue
        out.append(p.device)
    return sorted(out)


class Bridge:
    """The bridge service. Typical use: ``Bridge(config).run_forever()``; tests and the
    simulator demo use ``start()``, ``attach(link)`` / ``add_port(url)`` and ``stop()``.

    keys, queue and ruleset default to what the config names; clock is the Unix time source.
    """

    def __init__(self, config: Config, *, keys: KeyRegistry | None = None, queue: Queue | None = None,
                 ruleset: Any = None, clock: Callable[[], float] = time.time,
                 link_opener: Callable[[str, int], Link] = open_link):
        self.config = config
        self.clock = clock
        self.keys = keys if keys is not None else KeyRegistry(config.keys_path)
        self.ruleset = ruleset if ruleset is not None else load_ruleset(config.ruleset_path)
        self._lockfile = self._lock(config.queue_path if queue is None else queue.path)
        try:
            self.queue = queue if queue is not None else Queue(config.queue_path)
        except BaseException:
            os.close(self._lockfile)
            raise
        self.link_opener = link_opener
        self.ingestor = Ingestor(self.queue, self.ruleset, provisioned=self._provisioned, clock=clock)
        qpath = self.queue.path
        self.committer = Committer(
            self.ingestor, window_s=config.group_commit_ms / 1000.0, max_items=config.group_commit_max,
            reopen=lambda: Queue(qpath),
        )
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._workers: dict[str, threading.Thread] = {}
        self._sessions: dict[int, Session] = {}
        self._closed_counters: dict[str, int] = {}
        self._slock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None
        self.metrics_address: tuple[str, int] | None = None
        self.status_path = Path(f"{self.queue.path}.status.json")
        self.uploader: Any = None  # built in start() from the [upload] section (None: no sink)
        self._depth_cache: dict[str, Any] = {}
        self.started_at = clock()

    # ---- lifecycle --------------------------------------------------------------------------------
    @staticmethod
    def _lock(path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise QueueError(
                f"another bridge is already using the queue {path}", kind="locked",
                hint="stop the other `tagweigh bridge`, or give this one its own [queue] path",
            ) from None
        return fd

    def _provisioned(self, device_id: str) -> float | None:
        info = self.keys.info(device_id)
        if info is None:
            return None
        return info["info"].get("provisioned_at") or info.get("added_at")

    def start(self) -> "Bridge":
        self.committer.start()
        for url in self.config.ports:
            self.add_port(url)
        d = self.config.discovery
        if d.enabled:
            self._spawn(self._discovery_loop, "discovery")
        if self.config.metrics_listen:
            self._start_http(self.config.metrics_listen)
        self._spawn(self._status_loop, "status")
        self._start_uploader()
        log.info("bridge started: queue %s, %d key(s), rule set %s", self.queue.path, len(self.keys),
                 "%08x" % self.ruleset.id if self.ruleset is not None else "none (station verdicts kept)",
                 extra={"event": "started", "ports": list(self.config.ports)})
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for t in list(self._threads):
            t.join(timeout)
        if self.uploader is not None:
            self.uploader.close()
        self.committer.stop(max(timeout, 30.0))
        if self.committer.alive:
            log.error("committer still busy after stop; leaving the queue open for it")
            return
        try:
            self._write_status()
        except (OSError, QueueError):
            pass
        self.queue.close()
        self.ingestor.queue.close()
        try:
            os.close(self._lockfile)
        except OSError:
            pass
        log.info("bridge stopped", extra={"event": "stopped"})

    def _start_uploader(self) -> None:
        """Upload in the background when the config names a sink. The uploader has its own
        connection to the queue file: it reads what is committed and records delivery states; the
        committer stays the only writer of readings."""
        from tagweigh.upload.settings import build_uploader

        self.uploader = build_uploader(self.config, queue=Queue(self.queue.path))
        if self.uploader is not None:
            self._spawn(self.uploader.run, "uploader", self.stop_event)

    def upload_now(self) -> None:
        """Ask the uploader to try every sink now, ignoring backoff (the operator's 'retry now')."""
        if self.uploader is not None:
            self.uploader.kick()

    def run_forever(self) -> None:
        """Start, run until SIGINT/SIGTERM, stop gracefully."""
        def _handler(signum: int, _frame: Any) -> None:
            log.info("signal %d: stopping", signum)
            self.stop_event.set()

        old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not self.stop_event.wait(1.0):
                pass
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.stop()

    def _spawn(self, fn: Callable, name: str, *args: Any) -> threading.Thread:
        t = threading.Thread(target=fn, args=args, name=name, daemon=True)
        self._threads.append(t)
        t.start()
        return t

    # ---- links ------------------------------------------------------------------------------------
    def add_port(self, url: str, discovered: bool = False) -> None:
        """Serve a serial port / pyserial URL, reopening it whenever it goes away."""
        with self._slock:
            if url in self._workers and self._workers[url].is_alive():
                return
            self._workers[url] = self._spawn(self._port_loop, f"port {url}", url, discovered)

    def attach(self, link: Link) -> Session:
        """Serve an already-open link (memory link, simulator) until it is lost; no reopening."""
        session = self._new_session(link)
        self._spawn(self._attached_loop, f"link {link.description}", session)
        return session

    def _new_session(self, link: Link) -> Session:
        # SPEC 11: never tell stations to take the time from a clock that is not trusted or is
        # obviously unset (before 2023-11-14).
        time_valid = self.config.clock_trusted and self.clock() >= 1_700_000_000
        s = Session(link, keys=self.keys, committer=self.committer, ruleset=self.ruleset,
                    clock=self.clock, window=self.config.window, time_valid=time_valid,
                    on_online=self._online)
        with self._slock:
            self._sessions[id(s)] = s
        return s

    def _online(self, session: Session) -> None:
        """A new HELLO replaces the device's previous session, on whatever link it was."""
        for other in self.sessions():
            if other is not session and other.device_id == session.device_id:
                other.end(f"device said HELLO again on {session.port}")

    def _end_session(self, s: Session) -> None:
        s.state = CLOSED
        with self._slock:
            self._sessions.pop(id(s), None)
            for k, v in s.counters.items():
                self._closed_counters[k] = self._closed_counters.get(k, 0) + v
            self._closed_counters["decoder_errors"] = self._closed_counters.get("decoder_errors", 0) + s._decoder.errors

    def _attached_loop(self, session: Session) -> None:
        try:
            session.run(self.stop_event)
        except LinkLost as exc:
            log.info("link %s lost: %s", session.port, exc, extra={"event": "link_lost", "port": session.port})
        finally:
            self._end_session(session)
            session.link.close()

    def _port_loop(self, url: str, discovered: bool) -> None:
        cfg = self.config
        backoff = Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s)
        down_logged = False
        while not self.stop_event.is_set():
            try:
                link = self.link_opener(url, cfg.baudrate)
            except LinkLost as exc:
                if discovered:
                    log.info("discovered port %s is gone", url, extra={"event": "port_gone", "port": url})
                    return
                if not down_logged:
                    log.warning("port %s not available (%s); retrying with backoff", url, exc,
                                extra={"event": "port_down", "port": url})
                    down_logged = True
                self.stop_event.wait(backoff.next_delay())
                continue
            down_logged = False
            log.info("port %s open", url, extra={"event": "port_open", "port": url})
            session = self._new_session(link)
            started = time.monotonic()
            try:
                session.run(self.stop_event)
            except LinkLost as exc:
                log.warning("port %s lost (unplugged or station reset): %s", url, exc,
                            extra={"event": "link_lost", "port": url, "device": session.device_id})
            except Exception:
                log.exception("session on %s failed", url)
            finally:
                self._end_session(session)
                link.close()
            if time.monotonic() - started > 5.0:
                backoff.reset()
            self.stop_event.wait(backoff.next_delay())

    def _discovery_loop(self) -> None:
        d = self.config.discovery
        while not self.stop_event.is_set():
            try:
                for path in discover_ports(d.vid, d.pid, d.serial_number):
                    self.add_port(path, discovered=True)
            except Exception:  # list_ports reads sysfs; never let a hiccup kill discovery
                log.exception("port discovery failed")
            self.stop_event.wait(d.interval_s)

    def sessions(self) -> list[Session]:
        with self._slock:
            return list(self._sessions.values())

    # ---- status and metrics -----------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """Session counters summed over open and closed sessions, plus the committer's."""
        with self._slock:
            total = dict(self._closed_counters)
            live = list(self._sessions.values())
        for s in live:
            for k, v in s.counters.items():
                total[k] = total.get(k, 0) + v
            total["decoder_errors"] = total.get("decoder_errors", 0) + s._decoder.errors
        for k, v in self.ingestor.counters.items():
            total[k] = v
        return total

    def snapshot(self) -> dict[str, Any]:
        return {
            "written_at": self.clock(),
            "running": not self.stop_event.is_set(),
            "started_at": self.started_at,
            "pid": os.getpid(),
            "storage_ok": self.committer.storage_ok,
            "storage_error": str(self.committer.error) if self.committer.error else None,
            "ruleset_id": "%08x" % self.ruleset.id if self.ruleset is not None else None,
            "metrics": list(self.metrics_address) if self.metrics_address else None,
            "sessions": [s.snapshot() for s in self.sessions()],
            "counters": self.counters(),
            "queue": self._depth_cache,
            "upload": self.uploader.status() if self.uploader is not None else None,
        }

    def _write_status(self) -> None:
        try:
            with Queue(self.queue.path, readonly=True) as q:
                st = q.stats()
            self._depth_cache = {k: st[k] for k in ("depth", "readings_total", "rejected_today",
                                                       "last_upload", "db_bytes")}
        except QueueError:
            pass
        tmp = self.status_path.with_name(self.status_path.name + ".tmp")
        tmp.write_text(json.dumps(self.snapshot(), default=str, indent=1))
        os.replace(tmp, self.status_path)

    def _status_loop(self) -> None:
        while not self.stop_event.wait(self.config.status_interval_s):
            try:
                self._write_status()
            except (OSError, QueueError) as exc:
                log.warning("cannot write status file: %s", exc)

    def metrics_text(self) -> str:
        """Counters and gauges in the Prometheus text exposition format."""
        c = self.counters()
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {value}")

        metric("tagweigh_readings_stored_total", "counter", "Readings committed to the queue, by bridge verdict.",
               [('{verdict="accept"}', c.get("accepted", 0)), ('{verdict="warn"}', c.get("warned", 0)),
                ('{verdict="reject"}', c.get("rejected", 0))])
        for key, help_ in (
            ("frames", "Frames with a good CRC received."),
            ("readings", "Readings with a good MAC received (before duplicate checks)."),
            ("duplicates", "Retransmitted readings answered again (same sequence, same bytes)."),
            ("conflicts", "Same sequence number with different bytes (tamper alerts)."),
            ("chain_breaks", "Readings whose prev link did not match the previous reading."),
            ("bad_mac", "Frames refused for a MAC that does not verify."),
            ("malformed", "Frames with a good CRC and MAC but an invalid body."),
            ("unknown_device", "HELLOs from devices not in the key registry."),
            ("decoder_errors", "Garbage or damaged frames skipped while resynchronising."),
            ("acks_sent", "Readings acknowledged."),
            ("nacks_sent", "NACK frames sent."),
            ("commits", "Group-commit transactions."),
            ("commit_failures", "Transactions that failed (queue unavailable)."),
            ("alerts", "Alerts recorded."),
            ("hellos", "HELLO frames received."),
        ):
            metric(f"tagweigh_{key}_total", "counter", help_, [("", c.get(key, 0))])
        sessions = self.sessions()
        metric("tagweigh_sessions", "gauge", "Open links by session state.",
               [('{state="online"}', sum(1 for s in sessions if s.state == ONLINE)),
                ('{state="await_hello"}', sum(1 for s in sessions if s.state != ONLINE))])
        metric("tagweigh_storage_ok", "gauge", "1 while the queue accepts commits, 0 while failing.",
               [("", 1 if self.committer.storage_ok else 0)])
        metric("tagweigh_commit_seconds_total", "counter", "Time spent in group commits.",
               [("", round(self.committer.commit_seconds, 6))])
        if self._depth_cache:
            metric("tagweigh_queue_depth", "gauge", "Readings not yet uploaded (worst sink).",
                   [("", self._depth_cache.get("depth", 0))])
        last = max((s.last_reading_at or 0 for s in sessions), default=0)
        if last:
            metric("tagweigh_last_reading_timestamp_seconds", "gauge", "When the latest reading arrived.",
                   [("", last)])
        return "\n".join(out) + "\n"

    def _start_http(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                if self.path == "/metrics":
                    body, ctype = bridge.metrics_text().encode(), "text/plain; version=0.0.4"
                elif self.path == "/status":
                    body, ctype = json.dumps(bridge.snapshot(), default=str).encode(), "application/json"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        try:
            self._http = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as exc:
            raise ConfigError(f"cannot listen for metrics on {listen}: {exc.strerror}",
                              hint="set [bridge] metrics_listen to a free port, or \"\" to disable") from exc
        self._http.daemon_threads = True
        self.metrics_address = self._http.server_address[:2]
        self._spawn(self._http.serve_forever, "metrics")
