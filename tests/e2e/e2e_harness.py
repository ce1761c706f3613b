"""The end-to-end test bed: simulated stations (real firmware, real ptys), the real bridge (in this
process or as a `tagweigh bridge` process), and a cable with a hand on it.

- `Rig`: a Simulator of N stations plus a bridge on their ports (directly, or through a `Relay`
  each), with waits on conditions (never fixed sleeps), and readers of the queue file.
- `Relay`: copies bytes both ways between a station's pty and a fresh pty pair whose slave the
  bridge opens through a stable symlink (like /dev/serial/by-id/...). It can be unplugged (the
  bridge's port dies, the symlink dangles) and replugged (a new pty behind the same name), and
  it gives tests a hand on the station->bridge frames (drop, alter, replay, inject) or raw bytes.
- `script_bags`: a station script of (tag, mass) bags at a given pace (place, scan/tap, remove).
- `journal_snapshot`: what a station's flash journal holds (read from a copy, never the original).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path
from typing import Any, Callable

from tagweigh.config import from_dict
from tagweigh.keys import KeyRegistry
from tagweigh.queue import Queue
from tagweigh.sim import scenarios as S
from tagweigh.sim.supervisor import Simulator, StationSpec
from twproto import frame as F
from twproto.mac import DIR_STATION, Mac

REPO = Path(__file__).resolve().parents[2]
RULESET = REPO / "protocol" / "rulesets" / "example-depot.json"
E_G = 10  # the simulated stations' division (sim.supervisor.provision)
BOOT_SETTLE_S = 2.0  # after power-up, the time an operator leaves the scale to settle empty
LIFT_WAIT_S = 15.0  # the longest a scripted bag waits on the platform for the station's verdict


class Timeout(AssertionError):
    pass


def wait_for(cond: Callable[[], Any], timeout: float, what: str, tick: Callable[[], None] | None = None,
             every: float = 0.02) -> Any:
    """Call cond() until it returns something truthy (returned) or `timeout` s pass (fails with
    `what`). `tick` runs between tries (the simulator must be polled to restart stations)."""
    deadline = time.monotonic() + timeout
    while True:
        if tick is not None:
            tick()
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# ---- scripts ----------------------------------------------------------------------------------------


def script_bags(name: str, bags: list[tuple[str, int]], *, reader: str = "qr", start_s: float = 0.5,
                pace_s: float = 4.5, swing: float = 0.02) -> S.StationScript:
    """Place each bag (with a swing), scan/tap its tag 2 s later, lift it 1.2 s after that."""
    sc = S.StationScript(name=name, reader=reader, step=2)
    t = start_s
    for tag, mass in bags:
        sc.actions.append(S.Action(t, S.PLACE, {"mass_g": mass, "swing_g": round(mass * swing), "swing_hz": 1.2,
                                                "damping": 0.45}))
        if reader == "rfid":
            sc.actions.append(S.Action(t + 2.0, S.TAP, {"uid": tag}))
            sc.actions.append(S.Action(t + 2.8, S.UNTAP))
        else:
            sc.actions.append(S.Action(t + 2.0, S.SCAN, {"text": tag}))
        sc.actions.append(S.Action(t + 3.2, S.REMOVE))
        sc.bags.append(S.Bag(tag, mass, S.EXPECT_ACCEPT))
        t += pace_s
    return sc


# ---- the cable with a hand on it -----------------------------------------------------------------------


def _raw_pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, slave


class Relay:
    """Station pty <-> relay <-> bridge pty (through the symlink `path`).

    Hooks (set by tests, called on the relay thread):
      on_frame(frame: bytes) -> list[bytes]   station->bridge, whole frames (default: forward)
      on_bytes(data: bytes) -> bytes          station->bridge, raw bytes (then on_frame is unused)
      on_reply(data: bytes) -> bytes          bridge->station, raw bytes
    `frames` records every station->bridge frame seen (before hooks) as (time, bytes).
    """

    def __init__(self, station_port: str, path: Path):
        self.path = Path(path)
        self.station_port = station_port
        self.st_fd = os.open(station_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.st_fd)
        self._lock = threading.RLock()  # hooks on the relay thread may unplug/plug/inject
        self.master: int | None = None
        self.slave: int | None = None
        self.on_frame: Callable[[bytes], list[bytes]] | None = None
        self.on_bytes: Callable[[bytes], bytes] | None = None
        self.on_reply: Callable[[bytes], bytes] | None = None
        self.frames: list[tuple[float, bytes]] = []
        self.replies: list[tuple[float, bytes]] = []  # bridge->station frames seen (before on_reply)
        self._dec = F.Decoder()
        self._rdec = F.Decoder()
        self._stop = False
        self.error: BaseException | None = None
        self.plug()
        self._thread = threading.Thread(target=self._run, name=f"relay {path.name}", daemon=True)
        self._thread.start()

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def plug(self) -> None:
        """Plug the cable in: a new pty behind the same symlink."""
        with self._lock:
            assert self.master is None
            self.master, self.slave = _raw_pty()
            tmp = self.path.with_name(self.path.name + ".new")
            if tmp.is_symlink():
                tmp.unlink()
            os.symlink(os.ttyname(self.slave), tmp)
            os.replace(tmp, self.path)

    def unplug(self) -> None:
        """Pull the cable: the bridge's port fails (EIO), the name dangles, bytes are lost."""
        with self._lock:
            if self.master is None:
                return
            self.path.unlink()
            os.close(self.master)
            os.close(self.slave)
            self.master = self.slave = None
            self._dec = F.Decoder()
            self._rdec = F.Decoder()

    def inject(self, data: bytes) -> None:
        """Put bytes on the line towards the bridge (as if the station had sent them)."""
        with self._lock:
            if self.master is not None:
                self._write(self.master, data)

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 1.0
        while view:
            try:
                n = os.write(fd, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # nobody reads: a UART would lose the bytes too
                select.select([], [fd], [], 0.05)
            except OSError:
                return

    def _run(self) -> None:
        try:
            while not self._stop:
                fds = [self.st_fd] + ([self.master] if self.master is not None else [])
                try:
                    readable, _, _ = select.select(fds, [], [], 0.02)
                except (OSError, ValueError):
                    continue  # the bridge side was closed under us (unplug): try again
                with self._lock:
                    if self.st_fd in readable:
                        self._from_station()
                    m = self.master
                    if m is not None and m in readable:
                        try:
                            data = os.read(m, 4096)
                        except (BlockingIOError, OSError):
                            data = b""
                        if data:
                            now = time.monotonic()
                            self.replies += [(now, bytes(fr)) for kind, fr in self._rdec.decode(data)
                                             if kind == F.FRAME]
                            if self.on_reply is not None:
                                data = self.on_reply(data)
                            self._write(self.st_fd, data)
        except BaseException as exc:  # reported by Rig.check()
            self.error = exc

    def _from_station(self) -> None:
        try:
            data = os.read(self.st_fd, 4096)
        except (BlockingIOError, OSError):
            return
        if not data or self.master is None:
            return  # cable out: the station's bytes go nowhere
        out = bytearray()
        for kind, fr in self._dec.decode(data):
            if kind != F.FRAME:
                continue
            raw = bytes(fr)
            self.frames.append((time.monotonic(), raw))
            if self.on_bytes is None:
                for piece in (self.on_frame(raw) if self.on_frame is not None else [raw]):
                    out += piece
        if self.on_bytes is not None:
            out = bytearray(self.on_bytes(data))
        if out and self.master is not None:  # a hook may have pulled the cable meanwhile
            self._write(self.master, bytes(out))

    def acked(self, since: float = 0.0) -> list[int]:
        """Seqs in the ACK frames the bridge sent since `since` (monotonic), in order."""
        return [seq for t, fr in list(self.replies) if t >= since for seq, _v in ack_entries(fr)]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.unplug()
        os.close(self.st_fd)


def ack_entries(frame: bytes) -> list[tuple[int, int]]:
    """(seq, verdict byte) entries of an ACK frame (not authenticated here: for observing), [] for
    any other frame."""
    from twproto import messages as M

    if frame[2] != F.T_ACK:
        return []
    _, ack = M.decode_frame(memoryview(frame))
    return list(ack.entries)


# ---- the rig ----------------------------------------------------------------------------------------


class Rig:
    """Stations + bridge. `relay=True` puts a Relay on every station's line."""

    def __init__(self, workdir: Path, specs: list[StationSpec], *, relay: bool = False,
                 keys_path: Path | None = None):
        os.environ["TAGWEIGH_SIM_TRACE"] = "1"  # state transitions in each station.log
        self.dir = Path(workdir)
        self.keys_path = keys_path or self.dir / "keys.json"
        self.queue_path = self.dir / "queue.db"
        self.sim = Simulator(self.dir / "stations", specs, keys_path=self.keys_path)
        self.sim.start()
        self.relays: list[Relay] = []
        if relay:
            for st in self.sim.stations:
                self.relays.append(Relay(st.port, self.dir / f"tty-{st.name}"))
        self.ports = [str(r.path) for r in self.relays] or [st.port for st in self.sim.stations]
        self.bridge: Any = None
        self.proc: subprocess.Popen | None = None
        self.on_tick: Callable[[], None] | None = None  # run at every poll (tests' hands)
        self._trace = [StateTrace(st.root / "station.log") for st in self.sim.stations]
        self._pids: list[int | None] = [None] * len(self.sim.stations)
        self._booted_at = [0.0] * len(self.sim.stations)
        self._log = open(self.dir / "bridge.log", "ab")

    # -- bridge in this process ---------------------------------------------------------------
    def config_doc(self, **bridge: Any) -> dict:
        b = {"ports": self.ports, "metrics_listen": "", "reconnect_initial_s": 0.05,
             "reconnect_max_s": 0.5, "status_interval_s": 1.0}
        b.update(bridge)
        return {"bridge": b, "queue": {"path": str(self.queue_path)}, "keys": {"path": str(self.keys_path)},
                "rules": {"ruleset": str(RULESET)}, "log": {"format": "text"}}

    def start_bridge(self, clock: Callable[[], float] | None = None, **bridge: Any):
        from tagweigh.bridge import Bridge

        cfg = from_dict(self.config_doc(**bridge), base_dir=self.dir)
        kw = {"clock": clock} if clock is not None else {}
        self.bridge = Bridge(cfg, **kw).start()
        return self.bridge

    def wait_online(self, device_id: int, timeout: float = 15.0):
        """The in-process bridge's session with device_id once the station accepted its WELCOME
        (it answers a WELCOME with a STATUS)."""
        def online():
            b = self.bridge
            return next((s for s in (b.sessions() if b is not None else ())
                         if s.device_id == str(device_id) and s.state == "online" and s.last_status), None)
        return self.wait(online, timeout, f"device {device_id} online")

    def stop_bridge(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None

    # -- bridge as a process (for SIGKILL) --------------------------------------------------------
    def spawn_bridge(self, **bridge: Any) -> subprocess.Popen:
        path = self.dir / "tagweigh.toml"
        path.write_text(_toml(self.config_doc(**bridge)))
        self.proc = subprocess.Popen([sys.executable, "-m", "tagweigh", "bridge", "--config", str(path),
                                      "--log-level", "info", "--no-web"], stdout=self._log, stderr=self._log)
        return self.proc

    def kill_bridge(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    # -- driving --------------------------------------------------------------------------------
    def poll(self) -> None:
        if self.on_tick is not None:
            self.on_tick()
        self.sim.poll()
        for i, st in enumerate(self.sim.stations):
            pid = st.proc.pid if st.powered and st.proc is not None else None
            if pid != self._pids[i]:
                self._pids[i] = pid
                self._booted_at[i] = time.monotonic()
        for r in self.relays:
            if r.error is not None:
                raise AssertionError(f"relay failed: {r.error!r}")
        if self.bridge is not None:
            assert self.bridge.committer.alive, "the bridge's committer thread died"

    def wait(self, cond: Callable[[], Any], timeout: float, what: str) -> Any:
        return wait_for(cond, timeout, what, tick=self.poll)

    def ready(self, i: int) -> bool:
        """Station i is idle and has had time to settle since it was powered up."""
        return self.state(i) == "idle" and time.monotonic() - self._booted_at[i] >= BOOT_SETTLE_S

    def play(self, scripts: list[S.StationScript | None], *, on_tick: Callable[[], None] | None = None,
             tail_s: float = 0.5) -> None:
        """Play one script per station (None: nothing to do there) in real time, paced like
        people are: a new bag (its first PLACE or SCAN/TAP after a REMOVE) waits until that
        station is ready, and a bag whose tag was read is lifted (UNTAP/REMOVE) only once the
        station has shown its verdict (at most LIFT_WAIT_S); the rest of that station's script
        shifts by each wait. The script's times alone would lift a bag that is still swinging
        whenever the machine is slow for a moment (the scale models run in real time): no
        reading, and a test that waits for one fails although nothing is wrong downstream."""
        queues = [list(sc.actions) if sc is not None else [] for sc in scripts]
        n = len(queues)
        shift = [0.0] * n
        in_bag = [False] * n  # a bag is being handled (placed and/or its tag read)
        placed = [False] * n
        shown: list[Callable[[], bool] | None] = [None] * n  # "its verdict is shown", once its tag was read
        lift_wait = [0.0] * n  # when this bag's lift started waiting for the verdict
        t0 = time.monotonic()
        while True:
            now = time.monotonic() - t0
            for i, q in enumerate(queues):
                st = self.sim.stations[i]
                while q and q[0].at_s + shift[i] <= now:
                    a = q[0]
                    if a.kind in (S.PLACE, S.SCAN, S.TAP) and not in_bag[i]:
                        if not self.ready(i):
                            shift[i] = now - a.at_s + 0.01
                            break
                        in_bag[i] = True
                    elif a.kind in (S.UNTAP, S.REMOVE) and placed[i] and shown[i] is not None \
                            and not shown[i]():
                        if not lift_wait[i]:
                            lift_wait[i] = now
                        if now - lift_wait[i] < LIFT_WAIT_S:
                            shift[i] = now - a.at_s + 0.01
                            break
                    if a.kind == S.PLACE:
                        placed[i] = True
                    elif a.kind in (S.SCAN, S.TAP):
                        shown[i] = self._verdict_shown(i)
                    elif a.kind == S.REMOVE:
                        in_bag[i] = placed[i] = False
                        shown[i] = None
                        lift_wait[i] = 0.0
                    st.act(a.kind, a.args)
                    q.pop(0)
            if on_tick is not None:
                on_tick()
            self.poll()
            if not any(queues):
                break
            time.sleep(0.005)
        end = time.monotonic() + tail_s
        while time.monotonic() < end:
            self.poll()
            time.sleep(0.005)

    def _verdict_shown(self, i: int) -> Callable[[], bool]:
        """From now on: has station i shown a verdict (or lost power, or rebooted)?"""
        st = self.sim.stations[i]
        trace = self._trace[i]
        mark, boots = trace.count, st.restarts
        return lambda: trace.seen_since(mark, ("feedback", "remove")) or not st.powered or st.restarts > boots

    def state(self, i: int = 0) -> str:
        """Station i's current state, from its trace log (TAGWEIGH_SIM_TRACE)."""
        return self._trace[i].state()

    def weigh(self, i: int, tag: str, mass_g: int, *, reader: str = "qr", timeout: float = 20.0) -> None:
        """One bag the way an operator does it, paced by what the station shows rather than by a
        clock (so a loaded test machine cannot make bags overlap): wait until the station is
        idle, place the bag, scan/tap once it is stable, lift it once the station has shown its
        verdict (or rebooted). Returns when the bag is off the platform."""
        st = self.sim.stations[i]
        # A bag put on in the first moments after power-up would be the first stable load the
        # station sees, which it takes for its boot zero (see the report): wait as an operator
        # waits for the display to settle after switching on.
        self.wait(lambda: self.ready(i), timeout, f"station {st.name} idle")
        st.act(S.PLACE, {"mass_g": mass_g, "swing_g": round(mass_g * 0.02), "swing_hz": 1.2, "damping": 0.45})
        self.wait(lambda: self.state(i) == "stable", timeout, f"bag {tag} stable on {st.name}")
        shown = self._verdict_shown(i)
        st.act(S.TAP if reader == "rfid" else S.SCAN, {"uid": tag} if reader == "rfid" else {"text": tag})
        self.wait(shown, timeout, f"the verdict for {tag} on {st.name}")
        if reader == "rfid":
            st.act(S.UNTAP)
        st.act(S.REMOVE)

    def cut_power_now(self, i: int, off_s: float) -> None:
        """SIGKILL station i's process at this instant (any thread); it boots again off_s later
        (when the simulator is polled)."""
        st = self.sim.stations[i]
        st.power_back_at = time.monotonic() + off_s  # first, so a concurrent poll sees a power cut
        st.power_cut(off_s)

    # -- what the bridge stored -------------------------------------------------------------------
    def _q(self) -> Queue:
        return Queue(self.queue_path, readonly=True)

    def readings(self, device_id: int | None = None) -> list[dict]:
        if not self.queue_path.exists():
            return []
        with self._q() as q:
            return q.readings(limit=100000, newest_first=False,
                              device_id=None if device_id is None else str(device_id))

    def alerts(self) -> list[dict]:
        if not self.queue_path.exists():
            return []
        with self._q() as q:
            return list(reversed(q.alerts(limit=10000)))

    def unknown_devices(self) -> list[dict]:
        with self._q() as q:
            return q.unknown_devices()

    def wait_readings(self, device_id: int, n: int, timeout: float) -> list[dict]:
        try:
            return self.wait(lambda: (lambda rows: rows if len(rows) >= n else None)(self.readings(device_id)),
                             timeout, f"{n} readings of device {device_id}")
        except Timeout as exc:  # say where they are: never taken, in the journal, or stored
            seen = self.bridge.counters() if self.bridge is not None else {}
            made = "?"
            for st in self.sim.stations:
                if st.spec.device_id == device_id:
                    scratch = self.dir / f"journal-at-timeout-{device_id}"
                    last, pending = journal_snapshot(st.root, scratch)
                    made = f"{last} (of which {len(pending)} still in its journal)"
            raise Timeout(f"{exc}: the queue shows {len(self.readings(device_id))}; the station made "
                          f"{made}; the bridge counted {seen.get('readings', '?')} received, "
                          f"{seen.get('readings_stored', '?')} stored (all devices)") from None

    def key(self, device_id: int) -> bytes:
        k = KeyRegistry(self.keys_path).get(device_id)
        assert k is not None
        return k

    def station_log(self, i: int = 0) -> str:
        return (self.sim.stations[i].root / "station.log").read_text(errors="replace")

    def close(self) -> None:
        for r in self.relays:
            r.close()
            with open(self.dir / f"relay-{r.path.name}.log", "w") as f:  # for post-mortems
                for direction, frames in (("S>B", r.frames), ("B>S", r.replies)):
                    for t, fr in frames:
                        seq = int.from_bytes(fr[3:7], "little") if fr[2] == F.T_READING else ""
                        f.write(f"{t:.3f} {direction} {F.TYPE_NAMES.get(fr[2], fr[2])} {seq} {fr.hex()}\n")
        try:
            self.stop_bridge()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            self.sim.close()
            self._log.close()


class StateTrace:
    """Follows a station's trace log ("<t> state <name> net=... stable=..." lines)."""

    def __init__(self, path: Path):
        self.path = path
        self._f = None
        self._part = b""
        self.states: list[str] = []

    def _read(self) -> None:
        if self._f is None:
            if not self.path.exists():
                return
            self._f = open(self.path, "rb")
        data = self._part + self._f.read()
        lines = data.split(b"\n")
        self._part = lines.pop()
        for line in lines:
            parts = line.split()
            if len(parts) >= 3 and parts[1] == b"state":
                self.states.append(parts[2].decode(errors="replace"))

    @property
    def count(self) -> int:
        self._read()
        return len(self.states)

    def state(self) -> str:
        self._read()
        return self.states[-1] if self.states else "?"

    def seen_since(self, mark: int, names: tuple[str, ...]) -> bool:
        self._read()
        return any(s in names for s in self.states[mark:])


def _toml(doc: dict) -> str:
    import json

    lines = []
    for sec, table in doc.items():
        lines.append(f"[{sec}]")
        for k, v in table.items():
            lines.append(f"{k} = {json.dumps(v)}")  # JSON scalars/lists are valid TOML here
    return "\n".join(lines) + "\n"


# ---- checks -----------------------------------------------------------------------------------------


def journal_snapshot(root: Path, scratch: Path) -> tuple[int, list[bytes]]:
    """(last seq, pending frames) of a station's journal, read from a copy (opening a journal
    may repair it, which must stay the station's own doing)."""
    from twstation.app import journal_bytes
    from twstation.journal import Journal

    for attempt in range(20):
        if scratch.exists():
            shutil.rmtree(scratch)
        try:
            shutil.copytree(root / "journal", scratch)
            break
        except (shutil.Error, FileNotFoundError):
            # the running station renamed or removed a file (ack-log rewrite, compaction)
            # while it was being copied: copy again
            if attempt == 19:
                raise
            time.sleep(0.01)
    j = Journal(str(scratch), journal_bytes(2000))
    return j.head()[0], [bytes(f) for f in j.pending(0)]


def resign(raw: bytes, key: bytes, **changes: Any) -> bytes:
    """A READING frame with some fields changed, signed again with `key` (a forger holding the
    device key), with a correct CRC."""
    from twproto import messages as M

    _, r = M.decode_frame(memoryview(raw))
    for name, value in changes.items():
        setattr(r, name, value)
    buf = bytearray(F.MAX_FRAME)
    n = M.encode_message(buf, r, Mac(key), DIR_STATION)
    return bytes(buf[:n])


def recrc(frame: bytes | bytearray) -> bytes:
    """The frame with its CRC made right again (what a forger without the key can do)."""
    from twproto.crc import crc16

    f = bytearray(frame)
    c = crc16(bytes(f[:-2]))
    f[-2:] = bytes((c & 0xFF, c >> 8))
    return bytes(f)


def check_stored(rows: list[dict], key: bytes) -> None:
    """Every stored reading verifies with the device key, fields as signed; seqs are 1..n with no
    hole or repeat, stored in seq order (the bridge holds back a reading that overtook its
    predecessor on a lossy line until the predecessor is in, SPEC 10), and each links to its
    predecessor (chain_ok 1: every link was checkable and checked)."""
    mac = Mac(key)
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(1, len(rows) + 1)), f"seqs not 1..n in the order stored: {seqs}"
    for r in rows:
        raw = bytes(r["raw"])
        F.verify(raw, mac, DIR_STATION)  # raises if the stored bytes are not what the station signed
        assert int.from_bytes(raw[3:7], "little") == r["seq"]
        assert r["chain_ok"] == 1, f"seq {r['seq']}: chain_ok={r['chain_ok']}"
