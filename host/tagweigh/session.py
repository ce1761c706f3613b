"""The protocol session on one link: the bridge's side of SPEC.md.

States (one session per link; a new HELLO restarts the session at any time)::

    AWAIT_HELLO  nothing authenticated yet. HELLO from a registered device with a good MAC
                 -> record it (device, boot table) durably -> WELCOME (bridge time, our rule set
                 id, flags; MAC bound to the station's session nonce) -> ONLINE.
                 HELLO from an unknown device -> NACK unknown_device, recorded (never dropped
                 silently). Any other frame -> NACK no_session.
    ONLINE       READING: MAC check with the device key -> decode -> committer (rules, group
                 commit) -> ACK with the bridge's verdict, sent only after the commit is durable.
                 The backlog the station replays after WELCOME is just readings. A reading
                 that overtook a predecessor the station still holds is answered NACK
                 out_of_order and sent again, in order (SPEC 10). A READING whose MAC fails
                 (altered on the line) -> NACK bad_mac, then NACK no_session: the station
                 starts a new session and sends the genuine reading again -> AWAIT_HELLO.
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

from tagweigh.ingest import NACK_RESULT_OUT_OF_ORDER, Ingestor, Item, Op
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
READ_TIMEOUT_S = 0.05  # short reads so stop requests are seen quickly
IDLE_ABANDON_S = 0.1  # SPEC 3 "Idle line": a partial frame with no input this long is abandoned
COMMAND_RETRY_S = 2.0  # SPEC 9: retry a COMMAND without RESULT after 2 s, at most 3 times
COMMAND_TRIES = 4
BAD_MAC_RESTARTS = 3  # SPEC 10: sessions ended for bad MACs on one seq before the bridge lets it be
ACK_MAX = M.ACK_MAX
_CHUNK = F.MAX_BODY - 7  # RULESET_CHUNK payload per COMMAND


class Session:
    """Protocol session for one link.

    committer: object with submit(list[Item]) and call(fn, timeout) -> result (bridge.Committer).
    keys: KeyRegistry. ruleset: a loaded twproto RuleSet or None. clock: Unix time source.
    window: readings the station may send ahead of ACKs (told in WELCOME, 1..255); more in
    flight are refused with NACK window_exceeded, which bounds what a peer can queue.
    time_valid: set WELCOME's time-valid flag (SPEC 11: only with a trustworthy clock).
    on_online: called with the session when a HELLO made it ONLINE (the bridge ends other
    sessions of the same device: a new HELLO replaces the previous session).
    """

    def __init__(self, link: Link, *, keys: KeyRegistry, committer: Any, ruleset: Any = None,
                 clock: Callable[[], float] = time.time, window: int = 32,
                 push_ruleset: bool = True, hello_wait_s: float = 5.0, time_valid: bool = True,
                 on_online: Callable[["Session"], None] | None = None):
        self.link = link
        self.port = link.description
        self.keys = keys
        self.committer = committer
        self.ruleset = ruleset
        self.clock = clock
        self.window = window
        self.push_ruleset = push_ruleset
        self.hello_wait_s = hello_wait_s
        self.time_valid = time_valid  # WELCOME bit 0: only when the bridge clock is trustworthy
        self.on_online = on_online
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
            "wrong_direction": 0, "window_exceeded": 0, "abandoned": 0, "out_of_order": 0,
            "sessions_ended": 0,
        }
        self._inflight = 0  # readings submitted and not yet answered (bounded by window)
        # seqs refused in this session (bad MAC, malformed): the station does not send them again
        # before its next session, so the ingestor does not wait for them (SPEC 10)
        self.refused: set[int] = set()
        self._restarts: dict[tuple[str, int], int] = {}  # (device, seq) -> sessions ended for it
        self._ended = False  # this bridge ended the session (bad MAC): no nonce, the key is kept
        self._flock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Session {self.port} {self.state} device={self.device_id}>"

    # ---- reading loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Read and handle frames until stop is set. Raises LinkLost when the link goes away."""
        link = self.link
        dec = self._decoder
        mono = time.monotonic
        last_input = mono()
        try:
            while not stop.is_set():
                data = link.read(READ_CHUNK, READ_TIMEOUT_S)
                if data:
                    last_input = mono()
                    self.feed(data)
                elif dec.pending() and mono() - last_input >= IDLE_ABANDON_S:
                    # Idle with a partial frame: it will never complete (torn by a reset or
                    # noise). Drop its first byte and resync on the next SOF.
                    dec.abandon()
                    self.counters["abandoned"] += 1
                    items: list[Item] = []
                    self._drain(self.clock(), items)
                    if items:
                        self._submit(items)
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
            self._submit(items)

    def _submit(self, items: list[Item]) -> None:
        with self._flock:
            self._inflight += len(items)
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
                    self._submit(items[:])
                    items.clear()
                self._other(bytes(frame), now)

    def _reading(self, frame: memoryview, now: float, items: list[Item]) -> None:
        end = F.HEADER + frame[1]
        if not self._mac.verify(DIR_STATION, None, frame[0:end], frame[end : end + 16]):
            self._bad_mac(bytes(frame), F.T_READING, now)
            return
        raw = bytes(frame)
        if self._inflight + len(items) >= self.window:
            self.counters["window_exceeded"] += 1
            self._send_nack(F.T_READING, int.from_bytes(raw[3:7], "little"), M.NACK_WINDOW_EXCEEDED)
            return
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
        if t not in F.STATION_TYPES:  # SPEC 4: a reflected/looped-back frame; drop silently
            self.counters["wrong_direction"] += 1
            return
        if self.state != ONLINE and not (self._ended and t in (F.T_EVENT, F.T_STATUS)):
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
        if t == F.T_READING:  # not reached: readings take the hot path in _drain
            items: list[Item] = []
            self._reading(memoryview(raw), now, items)
            if items:
                self._submit(items)
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
        """SPEC 9.2: key by device_id, MAC, body, version, last_seq check, WELCOME."""
        self.counters["hellos"] += 1
        if raw[1] < 4:
            self._malformed(raw, MessageError("truncated"), now)
            return
        dev_num = int.from_bytes(raw[3:7], "little")  # the one field read before the MAC (SPEC 2)
        dev = device_name(dev_num)
        key = self.keys.get(dev)
        if key is None:
            self._unknown(dev, dev_num, raw, now)
            return
        mac = Mac(key)
        try:
            F.verify(raw, mac, DIR_STATION)
        except ProtocolError:
            self._bad_mac(raw, F.T_HELLO, now, dev, ref=dev_num)
            return
        try:
            hello = M.unpack_hello(memoryview(raw)[F.HEADER : F.HEADER + raw[1]])
        except MessageError as exc:
            self._malformed(raw, exc, now, ref=dev_num, dev=dev)
            return
        if not hello.proto_min <= 1 <= hello.proto_max:
            log.warning("device %s on %s speaks protocol %d..%d, this bridge 1", dev, self.port,
                        hello.proto_min, hello.proto_max, extra={"event": "bad_version", "device": dev})
            self._send_nack(F.T_HELLO, dev_num, M.NACK_UNSUPPORTED_VERSION)
            return
        info = self.keys.info(dev) or {}
        try:
            summary = self.committer.call(self._hello_op(dev, hello, raw, now, info), self.hello_wait_s)
        except QueueError as exc:
            log.error("cannot record HELLO of %s: %s", dev, exc,
                      extra={"event": "storage_unavailable", "device": dev, "port": self.port})
            self._send_nack(F.T_HELLO, dev_num, M.NACK_STORAGE_UNAVAILABLE)
            return
        if summary["regressed"]:
            # SPEC 9.2: advisory NACK chain_break, then the session continues.
            self._send_nack(F.T_HELLO, dev_num, M.NACK_CHAIN_BREAK)
        self.device_id = dev
        self.hello = hello
        self._mac = mac
        self._nonce = bytes(hello.nonce)
        self._cmd_id = 0
        self.refused = set()
        self._ended = False
        self.state = ONLINE
        rs = self.ruleset
        update = rs is not None and hello.ruleset_id != rs.id
        flags = (M.WF_TIME_VALID if self.time_valid else 0) | (M.WF_RULESET_UPDATE if update else 0)
        t = self.clock()
        welcome = M.Welcome(time=int(t), ms=int((t % 1) * 1000), proto=1,
                            ruleset_id=rs.id if rs is not None else 0, flags=flags, window=self.window)
        self._send(welcome)
        if self.on_online is not None:
            self.on_online(self)
        log.info("station %s online on %s (boot %d, last seq %d, backlog %d)", dev, self.port,
                 hello.boot, hello.last_seq, hello.backlog,
                 extra={"event": "online", "device": dev, "port": self.port, "boot": hello.boot,
                        "backlog": hello.backlog, "stored_seq": summary["stored_seq"]})
        if update and self.push_ruleset:
            threading.Thread(target=self._push_ruleset, name=f"ruleset-push {dev}", daemon=True).start()

    def end(self, reason: str) -> None:
        """Forget the session (another link took over the device); the station must HELLO again."""
        if self.state == ONLINE:
            log.info("session of %s on %s ended: %s", self.device_id, self.port, reason,
                     extra={"event": "session_replaced", "device": self.device_id, "port": self.port})
            self.state = AWAIT_HELLO
            self._mac = None
            self._nonce = None
        self._ended = False

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
            regressed = state.seq is not None and hello.last_seq < state.seq
            if regressed:
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
            return {"stored_seq": state.seq, "fresh": fresh, "regressed": regressed}

        return op

    def _unknown(self, dev: str, dev_num: int, raw: bytes, now: float) -> None:
        self.counters["unknown_device"] += 1
        first = dev not in self._unknown_logged
        if first:
            self._unknown_logged.add(dev)
            log.warning("refused device %s on %s: it is not in the key registry "
                        "(add it with `tagweigh keys add %s` if it belongs here)", dev, self.port, dev,
                        extra={"event": "unknown_device", "device": dev, "port": self.port})
        port = self.port
        try:  # unauthenticated, so only informative: what the device says about itself
            claimed = M.unpack_hello(memoryview(raw)[F.HEADER : F.HEADER + raw[1]]).as_dict()
        except MessageError as exc:
            claimed = {"unparsable": str(exc)}
        claimed["frame"] = raw.hex()

        def op(db: Any, ing: Ingestor) -> None:
            ing.queue.record_unknown(db, dev, now, port, claimed)
            if first:
                ing.alert("unknown_device", dev, None, port,
                          {"what": "HELLO from a device that is not registered"}, raw, now)

        self.committer.call_async(Op(op))
        self._send_nack(F.T_HELLO, dev_num, M.NACK_UNKNOWN_DEVICE)

    # ---- problems -----------------------------------------------------------------------------------
    def _bad_mac(self, raw: bytes, t: int, now: float, dev: str | None = None, ref: int | None = None) -> None:
        self.counters["bad_mac"] += 1
        seq = int.from_bytes(raw[3:7], "little") if t == F.T_READING and raw[1] >= 4 else 0
        ref = seq if ref is None else ref
        dev, port = dev or self.device_id, self.port
        log.warning("bad MAC on %s from %s (%s seq %d): frame refused", port, dev,
                    F.TYPE_NAMES.get(t, t), seq,
                    extra={"event": "bad_mac", "device": dev, "port": port, "seq": seq})
        self.committer.call_async(Op(lambda db, ing: ing.alert(
            "bad_mac", dev, seq or None, port,
            {"what": "MAC does not verify with the registered key (forged or altered)",
             "type": F.TYPE_NAMES.get(t, t)}, raw, now)))
        self._send_nack(t, ref, M.NACK_BAD_MAC)
        if t == F.T_READING and self.state == ONLINE and seq:
            self._refused_reading(seq)

    def _refused_reading(self, seq: int) -> None:
        """SPEC 10: after NACK bad_mac the station stops sending `seq` for the rest of the
        session. The genuine reading is most likely still in its journal (the frame was altered
        on the line), so end the session (NACK no_session): the station says HELLO again and
        resends from its oldest unacknowledged reading, this one included. At most
        BAD_MAC_RESTARTS times per reading, so a reading whose MAC keeps failing cannot keep the
        link restarting; after that it is left for the station's next session and the readings
        after it are not held back for it."""
        key = (self.device_id or "", seq)
        n = self._restarts.get(key, 0)
        if n >= BAD_MAC_RESTARTS:
            self.refused.add(seq)
            return
        if len(self._restarts) >= 64:
            self._restarts.clear()
        self._restarts[key] = n + 1
        self.counters["sessions_ended"] += 1
        log.info("session of %s on %s ended after a bad MAC on seq %d: the station sends it again "
                 "in a new session", self.device_id, self.port, seq,
                 extra={"event": "session_ended", "device": self.device_id, "port": self.port, "seq": seq})
        # Nothing more goes out under this session's nonce (ACKs of readings still being
        # committed are dropped; the station resends them and they are answered as duplicates).
        # The key stays: station frames carry no nonce, so the tamper EVENT the station raises
        # for the NACK bad_mac still verifies and is recorded (see _other).
        self.state = AWAIT_HELLO
        self._nonce = None
        self._ended = True
        self._send_nack(F.T_READING, seq, M.NACK_NO_SESSION)

    def _malformed(self, raw: bytes, exc: Exception, now: float, ref: int | None = None,
                   dev: str | None = None) -> None:
        self.counters["malformed"] += 1
        t = raw[2]
        seq = int.from_bytes(raw[3:7], "little") if t == F.T_READING and raw[1] >= 4 else 0
        ref = seq if ref is None else ref
        dev, port = dev or self.device_id, self.port
        code = getattr(exc, "code", str(exc))
        log.warning("malformed %s on %s: %s", F.TYPE_NAMES.get(t, t), port, exc,
                    extra={"event": "malformed", "device": dev, "port": port})
        self.committer.call_async(Op(lambda db, ing: ing.alert(
            "malformed", dev, seq or None, port, {"type": F.TYPE_NAMES.get(t, t), "error": str(code)},
            raw, now)))
        self._send_nack(t, ref, M.NACK_MALFORMED)
        if t == F.T_READING and seq and self.state == ONLINE:
            self.refused.add(seq)  # the station skips it for the rest of the session (SPEC 10)

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
        with self._flock:
            self._inflight -= len(results)
        out = bytearray()
        acks: list[tuple[int, int]] = []
        mac, nonce = self._mac, self._nonce
        if mac is None or nonce is None:
            return  # session ended meanwhile: the station resends in its next session
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
                    if res == NACK_RESULT_OUT_OF_ORDER:
                        self.counters["out_of_order"] += 1
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
    def command(self, op: int, args: dict | None = None, timeout: float = COMMAND_RETRY_S,
                tries: int = COMMAND_TRIES) -> M.Result:
        """Send an authenticated COMMAND and wait for its RESULT, resending the same cmd_id
        when none comes within `timeout` (SPEC 9: the station answers a repeat without acting
        twice). TimeoutError after `tries` sends, or if there is no session."""
        if self.state != ONLINE:
            raise TimeoutError(f"{self.port}: no session")
        with self._wlock:
            self._cmd_id = (self._cmd_id % 0xFFFF) + 1
            cmd_id = self._cmd_id
        waiter: list = [threading.Event(), None]
        self._waiters[cmd_id] = waiter
        cmd = M.Command(cmd_id, op, args or {})
        try:
            for _ in range(tries):
                if self.state != ONLINE:
                    break
                self._send(cmd)
                if waiter[0].wait(timeout):
                    return waiter[1]
            raise TimeoutError(f"{self.port}: no RESULT for command {M.OP_NAMES.get(op, op)}")
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
