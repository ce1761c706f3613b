"""Runs simulated stations as processes behind ptys, and plays scenarios on them.

Each :class:`SimStation` owns a pty (the path the bridge opens stays valid while the station
process is killed and started again, like a USB-UART bridge chip whose ESP32 reboots), a
directory that is the station's flash, and a control socket to its process. A power cut is a
SIGKILL at whatever instant the script says: the firmware's journal recovery is what brings the
station back, as on the real device.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagweigh.errors import TagweighError
from tagweigh.sim import scenarios as S
from tagweigh.sim.pty import open_pty
from tagweigh.sim.world import ZERO_COUNTS, calibration_ratio

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 20.0


class SimError(TagweighError):
    """A simulated station could not be set up or started."""


def _data_file(*parts: str) -> Path:
    """A file of the repository's protocol/ or hardware/ folder (the simulator runs from a
    checkout or an editable install)."""
    p = REPO.joinpath(*parts)
    if not p.exists():
        raise SimError(f"{p} not found", hint="run the simulator from a tagweigh checkout (pip install -e .)")
    return p


@dataclass
class StationSpec:
    name: str
    device_id: int
    reader: str = "qr"  # 'qr' or 'rfid'
    step: int = 2
    site: str = "CD-SK-012"
    board: str = "esp32-devkitc"
    seed: int = 0
    settings: dict = field(default_factory=dict)  # extra station.json fields


def provision(root: Path, spec: StationSpec, key: bytes, ruleset: Path | None = None) -> None:
    """Write what a technician's `tagweigh flash` leaves on a station's flash."""
    from twstation.calib import Calibration, CalStore

    root.mkdir(parents=True, exist_ok=True)
    settings = {"device_id": spec.device_id, "site": spec.site, "step": spec.step, "operator": 201,
                "reader": spec.reader, "division_g": 10, "capacity_g": 60000, "journal_capacity": 2000}
    settings.update(spec.settings)
    (root / "station.json").write_text(json.dumps(settings, indent=1))
    key_path = root / "key.bin"
    key_path.write_bytes(key)
    key_path.chmod(0o600)
    shutil.copyfile(_data_file("hardware", "boards", f"{spec.board}.json"), root / "board.json")
    num, den = calibration_ratio()
    cal = Calibration(1, ZERO_COUNTS, num, den, settings["division_g"], settings["capacity_g"],
                      ref_mass_g=20000, time=int(time.time()), operator=101)
    CalStore(str(root / "scale.json")).save(cal, ZERO_COUNTS)
    src = ruleset if ruleset is not None else _data_file("protocol", "rulesets", "example-depot.json")
    from twproto import canon

    (root / "ruleset.json").write_bytes(canon.canonical_bytes(json.loads(Path(src).read_text())))


class SimStation:
    """One station: its pty, its flash directory and (while powered) its process."""

    def __init__(self, spec: StationSpec, root: Path):
        self.spec = spec
        self.root = root
        self.master_fd, self.port = open_pty()
        self.proc: subprocess.Popen | None = None
        self.control: socket.socket | None = None
        self.mass_on_platform_g = 0.0  # what a power cut leaves lying on the scale
        self.power_back_at: float | None = None
        self.link_back_at: float | None = None
        self.link_up = True
        self.feedback: list[tuple[float, str]] = []
        self.restarts = 0
        self._buf = b""
        self._log = open(root / "station.log", "ab")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def powered(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        parent, child = socket.socketpair()
        cmd = [sys.executable, "-m", "tagweigh.sim.station_proc", str(self.root), "--tty-fd", str(self.master_fd),
               "--control-fd", str(child.fileno()), "--seed", str(self.spec.seed + self.restarts),
               "--restore-mass-g", str(self.mass_on_platform_g)]
        self.proc = subprocess.Popen(cmd, pass_fds=(self.master_fd, child.fileno()), stdout=self._log,
                                     stderr=self._log, env=_child_env())
        child.close()
        self.control = parent
        parent.settimeout(START_TIMEOUT_S)
        try:
            line = self._readline()
        except (socket.timeout, OSError) as exc:
            self.kill()
            raise SimError(f"{self.name}: station process did not start ({exc}); see {self.root / 'station.log'}")
        if not line or not json.loads(line).get("ready"):
            code = self.proc.poll() if self.proc else None
            self.kill()
            raise SimError(f"{self.name}: station process failed to start (exit {code}); "
                           f"see {self.root / 'station.log'}")
        parent.setblocking(False)

    def _readline(self) -> bytes:
        assert self.control is not None
        while b"\n" not in self._buf:
            data = self.control.recv(4096)
            if not data:
                return b""
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def act(self, kind: str, args: dict | None = None, at: float | None = None) -> None:
        """Do one scenario action on this station now. ``at``: its scripted time (s, already
        scaled by the speed); the station process keeps the script's spacing between timed
        actions even when this process was held up and sends them late (station_proc)."""
        args = args or {}
        if kind == S.POWER_CUT:
            self.power_cut(args.get("off_s", 1.0))
            return
        if kind == S.BRIDGE_AWAY:
            self.set_link(False)
            self.link_back_at = time.monotonic() + args.get("off_s", 10.0)
            return
        if kind == S.PLACE:
            self.mass_on_platform_g += args["mass_g"]
        elif kind == S.REMOVE:
            self.mass_on_platform_g = 0.0
        if not self.powered:
            return  # nobody is at a dead station's display; the bag still moves (tracked above)
        assert self.control is not None
        msg: dict[str, Any] = {"kind": kind, "args": args}
        if at is not None:
            msg["at"] = at
        try:
            self.control.sendall((json.dumps(msg) + "\n").encode())
        except OSError:
            pass

    def set_link(self, up: bool) -> None:
        """Pull (False) or plug back (True) the cable between this station and the bridge."""
        self.link_up = up
        if self.powered and self.control is not None:
            try:
                self.control.sendall((json.dumps({"kind": "link", "args": {"up": up}}) + "\n").encode())
            except OSError:
                pass

    def power_cut(self, off_s: float) -> None:
        self.kill()
        self.power_back_at = time.monotonic() + off_s

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.control is not None:
            self.control.close()
            self.control = None
        self._buf = b""

    def poll(self) -> None:
        """Service the station: read what it reports, restore power, restart after a reboot."""
        now = time.monotonic()
        if self.link_back_at is not None and now >= self.link_back_at:
            self.link_back_at = None
            self.set_link(True)
        if self.power_back_at is not None and now >= self.power_back_at:
            self.power_back_at = None
            self.restarts += 1
            self.start()
            if not self.link_up:
                self.set_link(False)
            return
        if self.proc is not None and self.proc.poll() is not None and self.power_back_at is None:
            code = self.proc.returncode
            self.kill()
            if code == 75:  # the firmware asked for a reboot
                self.restarts += 1
                self.start()
                return
            raise SimError(f"{self.name}: station process exited with code {code}; see {self.root / 'station.log'}")
        if self.control is None:
            return
        try:
            data = self.control.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            return
        self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "feedback" in msg:
                self.feedback.append((now, str(msg["feedback"])))

    def close(self) -> None:
        self.kill()
        self._log.close()


def _child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Simulator:
    """Several stations with their flash under ``workdir`` and their keys in a registry file."""

    def __init__(self, workdir: Path, specs: list[StationSpec], *, keys_path: Path | None = None,
                 ruleset: Path | None = None):
        from tagweigh.keys import KeyRegistry

        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keys_path = keys_path or (self.workdir / "keys.json")
        self.registry = KeyRegistry(self.keys_path)
        self.stations: list[SimStation] = []
        for spec in specs:
            root = self.workdir / spec.name
            key = self.registry.get(spec.device_id)
            if key is None:
                key = secrets.token_bytes(32)
                self.registry.add(spec.device_id, key, name=spec.name, site=spec.site, step=spec.step)
            if not (root / "station.json").exists():
                provision(root, spec, key, ruleset)
            self.stations.append(SimStation(spec, root))

    def start(self) -> None:
        for st in self.stations:
            st.start()

    def poll(self) -> None:
        for st in self.stations:
            st.poll()

    def play(self, scripts: list[S.StationScript], *, on_action=None, on_tick=None, speed: float = 1.0,
             tail_s: float = 3.0) -> None:
        """Play scripts (one per station, in order) in real time (``speed`` > 1 is faster).
        ``on_action(station, action)`` is called after each action is done; ``on_tick()`` every
        few milliseconds (the demo refreshes its table there)."""
        timeline = sorted(((a.at_s, i, a) for i, sc in enumerate(scripts) for a in sc.actions),
                          key=lambda x: (x[0], x[1]))
        t0 = time.monotonic()
        end = (timeline[-1][0] if timeline else 0.0) / speed + tail_s
        k = 0
        while True:
            now = time.monotonic() - t0
            while k < len(timeline) and timeline[k][0] / speed <= now:
                at, i, action = timeline[k]
                st = self.stations[i]
                st.act(action.kind, action.args, at=at / speed)
                if on_action is not None:
                    on_action(st, action)
                k += 1
            self.poll()
            if on_tick is not None:
                on_tick()
            if k >= len(timeline) and now >= end:
                return
            time.sleep(0.005)

    def close(self) -> None:
        for st in self.stations:
            st.close()
