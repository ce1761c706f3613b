"""Invariant 1 under a hard crash: a real `tagweigh bridge` process on ptys is SIGKILLed while two
stations stream readings, then restarted. Every reading that was ever acknowledged must be in
the queue, with the bytes the station sent, and nothing may be stored twice."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tty

from bridge_fakestation import EXAMPLE_RULESET, FakeStation

from tagweigh.keys import KeyRegistry
from twproto import frame as F
from twproto import messages as M
from twproto.errors import ProtocolError
from twproto.mac import DIR_BRIDGE

N = 300  # readings per station
WINDOW = 16


class JournalStation(threading.Thread):
    """A station that behaves per SPEC 9-10: HELLO until WELCOME (new nonce each time), send the
    oldest unacknowledged readings with at most WINDOW in flight, delete only on ACK, and start a
    new session after 1 s without a valid frame from the bridge."""

    def __init__(self, device_id: int, key: bytes):
        super().__init__(daemon=True)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # kept open by the test, so the bridge's crash is no hang-up here
        self.path = os.ttyname(self.slave)
        self.st = FakeStation(device_id, key)
        self.journal = {}
        for _ in range(N):
            raw = self.st.reading()
            self.journal[self.st.seq] = raw
        self.acked: dict[int, int] = {}
        self.first_ack_at: dict[int, float] = {}
        self.stop = False
        self.error: BaseException | None = None

    def _read(self, timeout: float) -> bytes:
        r, _, _ = select.select([self.master], [], [], timeout)
        return os.read(self.master, 4096) if r else b""

    def _frames(self, dec: F.Decoder, data: bytes):
        for kind, fr in dec.decode(data):
            if kind != F.FRAME:
                continue
            try:
                yield M.decode_frame(fr, None if fr[2] == F.T_NACK else self.st.mac, DIR_BRIDGE, self.st.nonce)
            except ProtocolError:
                continue  # e.g. a WELCOME for an older nonce: not for this session

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self) -> None:
        dec = F.Decoder()
        while not self.stop and len(self.acked) < N:
            self.st.nonce = os.urandom(8)
            os.write(self.master, self.st.hello(backlog=N - len(self.acked)))
            deadline = time.monotonic() + 2.0
            online = False
            while not online and time.monotonic() < deadline:
                for t, _msg in self._frames(dec, self._read(0.1)):
                    online = online or t == F.T_WELCOME
            if not online:
                continue
            inflight: set[int] = set()
            quiet_since = time.monotonic()
            while not self.stop and len(self.acked) < N and time.monotonic() - quiet_since < 1.0:
                for seq in sorted(set(self.journal) - set(self.acked) - inflight)[: WINDOW - len(inflight)]:
                    os.write(self.master, self.journal[seq])
                    inflight.add(seq)
                for t, msg in self._frames(dec, self._read(0.05)):
                    quiet_since = time.monotonic()
                    if t == F.T_ACK:
                        for seq, v in msg.entries:
                            self.acked.setdefault(seq, v)
                            self.first_ack_at.setdefault(seq, time.monotonic())
                            inflight.discard(seq)
                    elif t == F.T_NACK and msg.ref_type == F.T_READING:
                        inflight.discard(msg.ref_seq)


def _start_bridge(cfg_path, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tagweigh", "bridge", "--config", str(cfg_path), "--log-format", "text",
         "--no-web"],  # the operator page's default port 8080 may be taken (parallel tests)
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def test_sigkill_mid_stream_loses_nothing_acknowledged_and_duplicates_nothing(tmp_path):
    keys = KeyRegistry(tmp_path / "keys.json")
    stations = [JournalStation(d, keys.add(d, provisioned_at=1767225600)) for d in (21, 22)]
    ports = ", ".join(f'"{s.path}"' for s in stations)
    cfg = tmp_path / "tagweigh.toml"
    cfg.write_text(
        f'[bridge]\nports = [{ports}]\nwindow = {WINDOW}\nmetrics_listen = ""\nreconnect_initial_s = 0.05\n'
        f'[queue]\npath = "queue.sqlite3"\n[keys]\npath = "keys.json"\n'
        f'[rules]\nruleset = "{EXAMPLE_RULESET}"\n'
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    bridge = _start_bridge(cfg, env)
    try:
        for s in stations:
            s.start()
        deadline = time.monotonic() + 60
        while sum(len(s.acked) for s in stations) < N // 2:  # mid-stream
            assert time.monotonic() < deadline and bridge.poll() is None, bridge.stderr.read().decode()[-2000:]
            time.sleep(0.005)
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(10)
        acked_before = {(s.st.device_id, seq) for s in stations for seq in s.acked}
        assert 0 < len(acked_before) < 2 * N
        bridge = _start_bridge(cfg, env)
        for s in stations:
            s.join(120)
            assert not s.is_alive() and s.error is None, s.error
        assert all(len(s.acked) == N for s in stations)
    finally:
        for s in stations:
            s.stop = True
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(20)
    db = sqlite3.connect(tmp_path / "queue.sqlite3")
    rows = db.execute("SELECT device_id, seq, raw, verdict, reason FROM readings").fetchall()
    stored = {(int(d), seq): (raw, verdict, reason) for d, seq, raw, verdict, reason in rows}
    assert len(stored) == len(rows) == 2 * N  # nothing stored twice
    assert acked_before <= set(stored)  # nothing acknowledged before the crash was lost
    for s in stations:
        for seq, v in s.acked.items():
            raw, verdict, reason = stored[(s.st.device_id, seq)]
            assert raw == s.journal[seq]  # the bytes the station signed
            assert ["accept", "warn", "reject"][v & 3] == verdict  # the ACK said what was stored
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
