"""The protocol session on one link: the bridge's side of SPEC.md.

States (one session per link; a new HELLO restarts the session at any time)::

    AWAIT_HELLO  nothing authenticated yet. HELLO from a registered device with a good MAC
                 -> record it (device, boot table) durably -> WELCOME (bridge time, our rule set
                 id, flags; MAC bound to the station's session nonce) -> ONLINE.
                 HELLO from an unknown device -> NACK unknown_device, recorded (never dropped
                 silently). Any other frame -> NACK no_session.
    ONLINE       READING: MAC check with the device key -> decode -> committer (rules, group
                 commit) -> ACK with the bridge's verdict, sent only after the commit is durable.
                 The backlog the station replays after WELCOME is just readings.
                 STATUS / LIVE / EVENT: kept for status; tamper and errors raise alerts.
                 RESULT: answers to COMMANDs (rule-set push).
    CLOSED       the link was lost (unplugged, station rebooting); the bridge reopens the port.

The reader thread runs `run()`; the committer calls `deliver()` from its own thread, so every
write goes through one lock. Nothing here touches SQLite directly: durable work goes through
the committer (`submit` for readings, `call` for operations that need an answer).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from twproto import frame as F
from twproto import messages as M
from twproto.errors import MacError, MessageError, ProtocolError
from twproto.mac import DIR_BRIDGE, DIR_STATION, Mac

from tagweigh.ingest import Ingestor, Item, Op
from tagweigh.keys import KeyRegistry, device_name
from tagweigh.link import Link, LinkLost
from tagweigh.queue import QueueError
from tagweigh.wirefast import ack_frame, unpack_reading

__all__ = ["Session", "AWAIT_HELLO", "ONLINE", "CLOSED"]

log = logging.getLogger("tagweigh.session")

AWAIT_HELLO = "await_hello"
ONLINE = "online"
CLOSED = "closed"

READ_CHUNK = 4096
IDLE_S = 0.05  # read timeout; a partial frame idle this long is abandoned (resync)
ACK_MAX = M.ACK_MAX
_CHUNK = F.MAX_BODY - 7  # RULESET_CHUNK payload per COMMAND


class Session:
    """Protocol session for one link.

    committer: object with submit(list[Item]) and call(fn, timeout) -> result (bridge.Committer).
    keys: KeyRegistry. ruleset: a loaded twproto RuleSet or None. clock: Unix time source.
    window: readings the station may send ahead of ACKs (told in WELCOME).
    """

    def __init__(self, link: Link, *, keys: KeyRegistry, committer: Any, ruleset: Any = None,
                 clock: Callable[[], float] = time.time, window: int = 32,
                 push_ruleset: bool = True, hello_wait_s: float = 5.0):
        self.link = link
        self.port = link.description
        self.keys = keys
        self.committer = committer
        self.ruleset = ruleset
        self.clock = clock
        self.window = window
        self.push_ruleset = push_ruleset
        self.hello_wait_s = hello_wait_s
        self.state = AWAIT_HELLO
        self.device_id: str | None = None
        self.hello: M.Hello | None = None
        self._mac: Mac | None = None
        self._nonce: bytes | None = None
        self._decoder = F.Decoder()
        self._wlock = threading.Lock()
        self._wbuf = bytearray(F.MAX_FRAME)
        self._cmd_id = 0
        self._waiters: dict[int, list] = {}
        self._unknown_logged: set[str] = set()
        self.last_status: dict[str, Any] | None = None
        self.last_live: dict[str, Any] | None = None
        self.last_frame_at: float | None = None
        self.last_reading_at: float | None = None
        self.storage_ok = True
        self.counters = {
            "frames": 0, "readings": 0, "acks_sent": 0, "nacks_sent": 0, "bad_mac": 0,
            "malformed": 0, "unknown_device": 0, "no_session": 0, "hellos": 0, "events": 0,
        }

    def __repr__(self) -> str:
        return f"<Session {self.port} {self.state} device={self.device_id}>"

    # ---- reading loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Read and handle frames until stop is set. Raises LinkLost when the link goes away."""
        link = self.link
        dec = self._decoder
        try:
            while not stop.is_set():
                data = link.read(READ_CHUNK, IDLE_S)
                if data:
                    self.feed(data)
                elif dec.pending():
                    # Idle with a partial frame: it will never complete (torn by a reset or
                    # noise). Drop its first byte and resync on the next SOF.
                    dec.abandon()
                    self._drain(self.clock(), [])
        finally:
            if stop.is_set():
                self.state = CLOSED

    def feed(self, data: bytes) -> None:
        """Decode bytes from the link and handle every complete frame."""
        now = self.clock()
        self.last_frame_at = now
        dec = self._decoder
        mv = memoryview(data)
        pos, total = 0, len(data)
        items: list[Item] = []
        while pos < total:
            pos += dec.feed(mv[pos:])
            self._drain(now, items)
        if items:
            self.committer.submit(items)

    def _drain(self, now: float, items: list[Item]) -> None:
        dec = self._decoder
        while True:
            r = dec.poll()
            if r == F.NEED_MORE:
                return
            if r == F.ERROR:
                continue  # garbage skipped; dec.errors/dec.dropped count it
            frame = dec.frame
            self.counters["frames"] += 1
            if frame[2] == F.T_READING and self.state == ONLINE:
                self._reading(frame, now, items)  # the hot path
            else:
                if items:  # keep order: readings before this frame go first
                    self.committer.submit(items[:])
                    items.clear()
                self._other(bytes(frame), now)

    def _reading(self, frame: memoryview, now: float, items: list[Item]) -> None:
        end = F.HEADER + frame[1]
        if not self._mac.verify(DIR_STATION, None, frame[0:end], frame[end : end + 16]):
            self._bad_mac(bytes(frame), F.T_READING, now)
            return
        raw = bytes(frame)
        try:
            reading = unpack_reading(raw)
        except MessageError as exc:
            self._malformed(raw, exc, now)
            return
        self.counters["readings"] += 1
        self.last_reading_at = now
        items.append(Item(self, self.device_id, raw, reading, now, self.port))

    def _other(self, raw: bytes, now: float) -> None:
        t = raw[2]
        if t == F.T_HELLO:
            self._handle_hello(raw, now)
            return
        if t == F.T_NACK:
            try:
                nack = M.unpack_nack(memoryview(raw)[F.HEADER : F.HEADER + raw[1]])
            except MessageError as exc:
                self._malformed(raw, exc, now)
                return
            log.warning("station on %s refused our %s (seq %d): %s", self.port,
                        F.TYPE_NAMES.get(nack.ref_type, nack.ref_type), nack.ref_seq,
                        M.NACK_NAMES.get(nack.reason, nack.reason),
                        extra={"event": "station_nack", "port": self.port, "device": self.device_id})
            return
        if t not in F.STATION_TYPES:
            self._send_nack(t, 0, M.NACK_UNEXPECTED)
            return
        if self.state != ONLINE:
            self.counters["no_session"] += 1
            seq = int.from_bytes(raw[3:7], "little") if t == F.T_READING and raw[1] >= 4 else 0
            self._send_nack(t, seq, M.NACK_NO_SESSION)
            return
        try:
            t, msg = M.decode_frame(memoryview(raw), self._mac, DIR_STATION)
        except MacError:
            self._bad_mac(raw, t, now)
            return
        except ProtocolError as exc:
            self._malformed(raw, exc, now)
            return
        if t == F.T_READING:  # only when a HELLO arrived in the same chunk before it
            items: list[Item] = []
            self._reading(memoryview(raw), now, items)
            if items:
                self.committer.submit(items)
        elif t == F.T_STATUS:
            self.last_status = dict(msg.as_dict(), at=now)
        elif t == F.T_LIVE:
            self.last_live = dict(msg.as_dict(), e_g=msg.e_g, at=now)
        elif t == F.T_EVENT:
            self._event(msg, raw, now)
        elif t == F.T_RESULT:
            waiter = self._waiters.get(msg.cmd_id)
            if waiter is not None:
                waiter[1] = msg
                waiter[0].set()
            else:
                log.info("RESULT for unknown command %d on %s", msg.cmd_id, self.port)

    # ---- HELLO / WELCOME ----------------------------------------------------------------------------
    def _handle_hello(self, raw: bytes, now: float) -> None:
        self.counters["hellos"] += 1
        body = memoryview(raw)[F.HEADER : F.HEADER + raw[1]]
        try:
            hello = M.unpack_hello(body)
        except MessageError as exc:
            self._malformed(raw, exc, now)
            return
        dev = device_name(hello.device_id)
        key = self.keys.get(dev)
        if key is None:
            self._unknown(dev, hello, raw, now)
            return
        mac = Mac(key)
        try:
            F.verify(raw, mac, DIR_STATION)
        except ProtocolError:
            self._bad_mac(raw, F.T_HELLO, now, dev)
            return
        if not hello.proto_min <= 1 <= hello.proto_max:
            log.warning("device %s on %s speaks protocol %d..%d, this bridge 1", dev, self.port,
                        hello.proto_min, hello.proto_max, extra={"event": "bad_version", "device": dev})
            self._send_nack(F.T_HELLO, 0, M.NACK_UNSUPPORTED_VERSION)
            return
        info = self.keys.info(dev) or {}
        try:
            summary = self.committer.call(self._hello_op(dev, hello, raw, now, info), self.hello_wait_s)
        except QueueError as exc:
            log.error("cannot record HELLO of %s: %s", dev, exc,
                      extra={"event": "storage_unavailable", "device": dev, "port": self.port})
            self._send_nack(F.T_HELLO, 0, M.NACK_STORAGE_UNAVAILABLE)
            return
        self.device_id = dev
        self.hello = hello
        self._mac = mac
        self._nonce = bytes(hello.nonce)
        self.state = ONLINE
        rs = self.ruleset
        update = rs is not None and hello.ruleset_id != rs.id
        flags = M.WF_TIME_VALID | (M.WF_RULESET_UPDATE if update else 0)
        t = self.clock()
        welcome = M.Welcome(time=int(t), ms=int((t % 1) * 1000), proto=1,
                            ruleset_id=rs.id if rs is not None else 0, flags=flags, window=self.window)
        self._send(welcome)
        log.info("station %s online on %s (boot %d, last seq %d, backlog %d)", dev, self.port,
                 hello.boot, hello.last_seq, hello.backlog,
                 extra={"event": "online", "device": dev, "port": self.port, "boot": hello.boot,
                        "backlog": hello.backlog, "stored_seq": summary["stored_seq"]})
        if update and self.push_ruleset:
            threading.Thread(target=self._push_ruleset, name=f"ruleset-push {dev}", daemon=True).start()

    def _hello_op(self, dev: str, hello: M.Hello, raw: bytes, now: float, info: dict) -> Callable:
        port = self.port
        site = (info.get("info") or {}).get("site") or (self.ruleset.site if self.ruleset is not None else None)

        def op(db: Any, ing: Ingestor) -> dict[str, Any]:
            q = ing.queue
            state = ing.state.device(dev)
            latest = q.latest_boot(db, dev)
            fresh = latest is None or hello.boot > latest[0] or (
                hello.boot == latest[0] and hello.uptime_ms > latest[1])
            if not fresh:
                ing.alert("stale_hello", dev, None, port,
                          {"what": "HELLO older than one already seen (replayed?)",
                           "boot": hello.boot, "uptime_ms": hello.uptime_ms,
                           "latest_boot": latest[0], "latest_uptime_ms": latest[1]}, raw, now)
            if state.seq is not None and hello.last_seq < state.seq:
                ing.alert("seq_regression", dev, hello.last_seq, port,
                          {"what": "station reports a last sequence number below one already stored "
                                   "(journal lost, restored or cloned station)",
                           "station_last_seq": hello.last_seq, "stored_seq": state.seq}, raw, now)
            origin = q.record_hello(
                db, dev, now=now, boot=hello.boot, uptime_ms=hello.uptime_ms, port=port,
                hello=hello.as_dict(), site=site, step=None, ruleset_id="%08x" % hello.ruleset_id,
                config_version=hello.config_hash, update_boot=fresh,
            )
            if origin is not None:
                state.boots[hello.boot] = origin
            state.site = site
            return {"stored_seq": state.seq, "fresh": fresh}

        return op

    def _unknown(self, dev: str, hello: M.Hello, raw: bytes, now: float) -> None:
        self.counters["unknown_device"] += 1
        first = dev not in self._unknown_logged
        if first:
            self._unknown_logged.add(dev)
            log.warning("refused device %s on %s: it is not in the key registry "
                        "(add it with `tagweigh keys add %s` if it belongs here)", dev, self.port, dev,
                        extra={"event": "unknown_device", "device": dev, "port": self.port})
        port = self.port

        def op(db: Any, ing: Ingestor) -> None:
            ing.queue.record_unknown(db, dev, now, port, hello.as_dict())
            if first:
                ing.alert("unknown_device", dev, None, port,
                          {"what": "HELLO from a device that is not registered"}, raw, now)

        self.committer.call_async(Op(op))
        self._send_nack(F.T_HELLO, 0, M.NACK_UNKNOWN_DEVICE)

    # ---- problems -----------------------------------------------------------------------------------
    def _bad_mac(self, raw: bytes, t: int, now: float, dev: str | None = None) -> None:
        self.counters["bad_mac"] += 1
        seq = int.from_bytes(raw[3:7], "little") if t == F.T_READING and raw[1] >= 4 else 0
        dev, port = dev or self.device_id, self.port
        log.warning("bad MAC on %s from %s (%s seq %d): frame refused", port, dev,
                    F.TYPE_NAMES.get(t, t), seq,
                    extra={"event": "bad_mac", "device": dev, "port": port, "seq": seq})
        self.committer.call_async(Op(lambda db, ing: ing.alert(
            "bad_mac", dev, seq or None, port,
            {"what": "MAC does not verify with the registered key (forged or altered)",
             "type": F.TYPE_NAMES.get(t, t)}, raw, now)))
        self._send_nack(t, seq, M.NACK_BAD_MAC)

    def _malformed(self, raw: bytes, exc: Exception, now: float) -> None:
        self.counters["malformed"] += 1
        t = raw[2]
        seq = int.from_bytes(raw[3:7], "little") if t == F.T_READING and raw[1] >= 4 else 0
        dev, port = self.device_id, self.port
        code = getattr(exc, "code", str(exc))
        log.warning("malformed %s on %s: %s", F.TYPE_NAMES.get(t, t), port, exc,
                    extra={"event": "malformed", "device": dev, "port": port})
        self.committer.call_async(Op(lambda db, ing: ing.alert(
            "malformed", dev, seq or None, port, {"type": F.TYPE_NAMES.get(t, t), "error": str(code)},
            raw, now)))
        self._send_nack(t, seq, M.NACK_MALFORMED)

    def _event(self, ev: M.Event, raw: bytes, now: float) -> None:
        self.counters["events"] += 1
        name = M.EVENT_NAMES.get(ev.code, str(ev.code))
        level = logging.WARNING if ev.severity >= M.SEV_WARNING else logging.INFO
        log.log(level, "station %s event %s (detail %d)", self.device_id, name, ev.detail,
                extra={"event": "station_event", "device": self.device_id, "code": name,
                       "severity": ev.severity})
        if ev.code == M.EV_TAMPER or ev.severity >= M.SEV_ERROR:
            dev, port = self.device_id, self.port
            kind = "tamper" if ev.code == M.EV_TAMPER else "station_event"
            self.committer.call_async(Op(lambda db, ing: ing.alert(
                kind, dev, None, port, {"event": name, "severity": ev.severity, "detail": ev.detail},
                raw, now)))

    # ---- sending ------------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        with self._wlock:
            self.link.write(data)

    def _send(self, msg: Any) -> None:
        with self._wlock:
            n = M.encode_message(self._wbuf, msg, self._mac, DIR_BRIDGE, self._nonce)
            self.link.write(bytes(self._wbuf[:n]))

    def _send_nack(self, ref_type: int, ref_seq: int, reason: int) -> None:
        self.counters["nacks_sent"] += 1
        nack = M.Nack(ref_type=ref_type, ref_seq=ref_seq, reason=reason)
        try:
            with self._wlock:
                n = M.encode_message(self._wbuf, nack)
                self.link.write(bytes(self._wbuf[:n]))
        except LinkLost:
            raise
        except ProtocolError as exc:  # a field out of range: our bug, never the station's
            log.error("cannot encode NACK: %s", exc)

    def deliver(self, results: list[tuple[int, int]]) -> None:
        """Called by the committer after a durable commit: (seq, result) pairs, result >= 0 is
        the ACK verdict byte, < 0 a NACK reason. Writes the ACK/NACK frames."""
        out = bytearray()
        acks: list[tuple[int, int]] = []
        mac, nonce = self._mac, self._nonce
        if mac is None:
            return
        buf = self._wbuf
        nacks = 0
        with self._wlock:
            for seq, res in results:
                if res >= 0:
                    acks.append((seq, res))
                    if len(acks) == ACK_MAX:
                        n = ack_frame(buf, acks, mac, nonce)
                        out += buf[:n]
                        acks = []
                else:
                    nacks += 1
                    n = M.encode_message(buf, M.Nack(ref_type=F.T_READING, ref_seq=seq, reason=-res))
                    out += buf[:n]
            if acks:
                n = ack_frame(buf, acks, mac, nonce)
                out += buf[:n]
            self.counters["acks_sent"] += len(results) - nacks
            self.counters["nacks_sent"] += nacks
            try:
                self.link.write(bytes(out))
            except LinkLost:
                self.state = CLOSED  # the reader thread sees it too and the port is reopened

    # ---- commands -----------------------------------------------------------------------------------
    def command(self, op: int, args: dict | None = None, timeout: float = 5.0) -> M.Result:
        """Send an authenticated COMMAND and wait for its RESULT (TimeoutError if none comes in
        time, or if there is no session)."""
        if self.state != ONLINE:
            raise TimeoutError(f"{self.port}: no session")
        self._cmd_id = (self._cmd_id % 0xFFFF) + 1
        cmd_id = self._cmd_id
        waiter = [threading.Event(), None]
        self._waiters[cmd_id] = waiter
        try:
            self._send(M.Command(cmd_id, op, args or {}))
            if not waiter[0].wait(timeout):
                raise TimeoutError(f"{self.port}: no RESULT for command {M.OP_NAMES.get(op, op)}")
            return waiter[1]
        finally:
            self._waiters.pop(cmd_id, None)

    def _push_ruleset(self) -> None:
        """Send our rule set to the station (BEGIN, CHUNKs, END), stopping at the first refusal."""
        rs = self.ruleset
        data = rs.canonical().encode("utf-8")
        try:
            res = self.command(M.OP_RULESET_BEGIN, {"length": len(data), "sha256": rs.hash})
            for off in range(0, len(data), _CHUNK):
                if res.status != M.RS_OK:
                    break
                res = self.command(M.OP_RULESET_CHUNK, {"offset": off, "data": data[off : off + _CHUNK]})
            if res.status == M.RS_OK:
                res = self.command(M.OP_RULESET_END)
            status = M.RESULT_NAMES[res.status] if res.status < len(M.RESULT_NAMES) else res.status
            log.info("rule set %08x push to %s: %s", rs.id, self.device_id, status,
                     extra={"event": "ruleset_push", "device": self.device_id, "status": status})
        except (TimeoutError, LinkLost, ProtocolError) as exc:
            log.warning("rule set push to %s failed: %s", self.device_id, exc,
                        extra={"event": "ruleset_push", "device": self.device_id, "status": "failed"})

    def snapshot(self) -> dict[str, Any]:
        """What status and metrics show about this session."""
        return {
            "port": self.port, "state": self.state, "device_id": self.device_id,
            "boot": self.hello.boot if self.hello else None,
            "last_frame_at": self.last_frame_at, "last_reading_at": self.last_reading_at,
            "decoder_errors": self._decoder.errors, "dropped_bytes": self._decoder.dropped,
            "status": self.last_status, "live": self.last_live, **self.counters,
        }
