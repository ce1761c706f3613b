"""The demo: simulated stations and a real bridge on one machine, shown live in the terminal.

Everything is real except the hardware: each station is the firmware running against modelled
load cell, HX711, RFID reader and QR scanner in its own process, behind a pseudo-terminal that
the bridge opens with pyserial; readings are signed, journaled, sent, verified, validated,
committed to a fresh SQLite queue and acknowledged. At the end the demo compares what arrived
with what the script says should have happened, bag by bag.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tagweigh.errors import TagweighError
from tagweigh.sim import scenarios as S
from tagweigh.sim.supervisor import REPO, Simulator, StationSpec

VERDICT_STYLE = {"accept": "bold green", "warn": "bold yellow", "reject": "bold red"}
VERDICT_WORD = {
    "en": {"accept": "ACCEPTED", "warn": "FLAGGED", "reject": "REJECTED"},
    "fr": {"accept": "ACCEPTÉ", "warn": "SIGNALÉ", "reject": "REFUSÉ"},
}
FIRST_DEVICE_ID = 1001


@dataclass
class DemoResult:
    workdir: Path
    readings: list[dict[str, Any]]
    scripts: list[S.StationScript]
    mismatches: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches


def reason_text(rule_id: str | None, lang: str) -> str:
    from twproto import reasons

    if not rule_id or rule_id == "NONE":
        return ""
    try:
        return reasons.message(reasons.code_of(rule_id), lang)
    except (KeyError, ValueError, IndexError):
        return rule_id


def mpe_g(mass_g: int, e_g: int) -> float:
    """Maximum permissible error of a class III (trade) scale at initial verification, OIML R 76:
    0.5 e up to 500 e, 1 e up to 2,000 e, 1.5 e up to 10,000 e (the bag scales here have 6,000 e)."""
    n = mass_g / e_g
    return e_g * (0.5 if n <= 500 else 1.0 if n <= 2000 else 1.5)


def check_against_script(scripts: list[S.StationScript], readings: list[dict[str, Any]],
                         device_ids: dict[str, str]) -> list[str]:
    """Bag by bag: every bag the script expects to be recorded arrived exactly once, in order,
    with the expected verdict; bags the script expects no reading for left none."""
    problems = []
    for sc in scripts:
        dev = device_ids[sc.name]
        got = [r for r in readings if r["device_id"] == dev]
        want = [b for b in sc.bags if b.expect != S.EXPECT_NONE]
        seqs = [r["seq"] for r in got]
        if seqs != sorted(set(seqs)):
            problems.append(f"{sc.name}: readings duplicated or out of order: seq {seqs}")
        if len(got) != len(want):
            problems.append(f"{sc.name}: {len(got)} readings arrived, the script expects {len(want)}")
        for b, r in zip(want, got):
            if r["tag_text"] != b.tag:
                problems.append(f"{sc.name}: seq {r['seq']} has tag {r['tag_text']}, expected {b.tag}")
            elif b.expect == S.EXPECT_REJECT and r["verdict"] != "reject":
                problems.append(f"{sc.name}: {b.tag} should be rejected ({b.reason}), got {r['verdict']}")
            elif b.expect == S.EXPECT_ACCEPT and r["verdict"] == "reject":
                problems.append(f"{sc.name}: {b.tag} should be accepted, got rejected ({r['reason']})")
            elif abs(r["net_g"] - b.mass_g) > mpe_g(b.mass_g, r["e_g"]):
                problems.append(f"{sc.name}: {b.tag} weighed {r['net_g']} g, true mass {b.mass_g} g "
                                f"(more than the {mpe_g(b.mass_g, r['e_g'])} g a class III scale may err)")
    return problems


class Demo:
    def __init__(self, *, stations: int = 3, bags: int = 6, seed: int = 1, incidents: bool = True,
                 speed: float = 1.0, workdir: Path | None = None, lang: str = "en",
                 console: Console | None = None):
        if not 1 <= stations <= 8:
            raise TagweighError("--stations must be 1..8")
        if not 1 <= bags <= 50:
            raise TagweighError("--bags must be 1..50")
        self.console = console or Console()
        self.lang = lang
        self.speed = speed
        self.keep = workdir is not None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="tagweigh-demo-"))
        self.scripts = S.depot_shift(stations=stations, bags_per_station=bags, seed=seed, incidents=incidents)
        self.specs = [StationSpec(sc.name, FIRST_DEVICE_ID + i, reader=sc.reader, step=sc.step, seed=seed + i)
                      for i, sc in enumerate(self.scripts)]
        self.device_ids = {sp.name: str(sp.device_id) for sp in self.specs}
        self.names = {str(sp.device_id): sp.name for sp in self.specs}
        self.sim: Simulator | None = None
        self.bridge = None
        self._events: list[str] = []

    # ---- running ------------------------------------------------------------------------------
    def run(self) -> DemoResult:
        t0 = time.monotonic()
        self._quiet_logs()
        try:
            self._start()
            self._play()
            readings = self._drain()
        finally:
            self._stop()
        result = DemoResult(self.workdir, readings, self.scripts,
                            check_against_script(self.scripts, readings, self.device_ids),
                            time.monotonic() - t0)
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return result

    def _quiet_logs(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.workdir / "bridge.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root = logging.getLogger("tagweigh")
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        root.propagate = False

    def _start(self) -> None:
        from tagweigh.bridge import Bridge
        from tagweigh.config import from_dict

        c = self.console
        with c.status("provisioning stations (key, site, step, calibration, rule set)..."):
            self.sim = Simulator(self.workdir / "stations", self.specs, keys_path=self.workdir / "keys.json")
        with c.status("powering on stations (firmware on modelled hardware, one process each)..."):
            self.sim.start()
        for st in self.sim.stations:
            c.print(f"  [bold]{st.name}[/] device {st.spec.device_id}, {st.spec.reader.upper()} reader, "
                    f"step {st.spec.step}, serial port [cyan]{st.port}[/]")
        cfg = from_dict({
            "bridge": {"ports": [st.port for st in self.sim.stations], "metrics_listen": ""},
            "queue": {"path": str(self.workdir / "queue.db")},
            "keys": {"path": str(self.workdir / "keys.json")},
            "rules": {"ruleset": str(REPO / "protocol" / "rulesets" / "example-depot.json")},
        }, base_dir=self.workdir)
        self.bridge = Bridge(cfg).start()
        c.print(f"  [bold]bridge[/] queue [cyan]{self.workdir / 'queue.db'}[/], rule set "
                f"{self.bridge.ruleset.id:08x}\n")

    def _play(self) -> None:
        assert self.sim is not None
        total = max(sc.duration_s for sc in self.scripts) / self.speed
        progress = Progress(TextColumn("[bold]depot shift[/]"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TimeRemainingColumn(), console=self.console)
        task = progress.add_task("shift", total=total)
        t0 = time.monotonic()
        live_ok = self.console.is_terminal
        seen: set[int] = set()

        def on_action(st: Any, action: S.Action) -> None:
            if action.kind in (S.POWER_CUT, S.BRIDGE_AWAY):
                what = "power cut" if action.kind == S.POWER_CUT else "cable to the bridge pulled"
                self._event(f"{st.name}: {what} for {action.args.get('off_s', 0):.0f} s")

        if live_ok:
            with Live(self._view(progress), console=self.console, refresh_per_second=6, transient=False) as live:
                def tick() -> None:
                    progress.update(task, completed=min(total, time.monotonic() - t0))
                    live.update(self._view(progress))

                self.sim.play(self.scripts, on_action=on_action, on_tick=_throttle(tick, 0.15), speed=self.speed,
                              tail_s=2.0)
        else:
            def tick_plain() -> None:
                for r in self._rows(newest_first=False):
                    if r["id"] not in seen:
                        seen.add(r["id"])
                        self.console.print(self._line(r))

            self.sim.play(self.scripts, on_action=on_action, on_tick=_throttle(tick_plain, 0.25), speed=self.speed,
                          tail_s=2.0)

    def _drain(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Wait for backlogs (a pulled cable, a power cut) to arrive: until every bag the script
        expects is in the queue, or the stations stop sending, or the deadline passes."""
        assert self.sim is not None
        want = sum(1 for sc in self.scripts for b in sc.bags if b.expect != S.EXPECT_NONE)
        end = time.monotonic() + timeout_s
        with self.console.status("waiting for the stations' journals to drain to the bridge..."):
            while time.monotonic() < end:
                self.sim.poll()
                if len(self._rows()) >= want and all(st.link_up for st in self.sim.stations):
                    time.sleep(1.0)  # anything else in flight
                    break
                time.sleep(0.1)
        return self._rows(newest_first=False)

    def _stop(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
        if self.sim is not None:
            self.sim.close()

    # ---- views ----------------------------------------------------------------------------------
    def _rows(self, newest_first: bool = True, limit: int = 10_000) -> list[dict[str, Any]]:
        if self.bridge is None:
            return []
        return self.bridge.queue.readings(limit=limit, newest_first=newest_first)

    def _event(self, text: str) -> None:
        self._events.append(time.strftime("%H:%M:%S ") + text)

    def _line(self, r: dict[str, Any]) -> str:
        v = r["verdict"]
        why = reason_text(r.get("reason"), self.lang)
        return (f"{_hms(r)}  {self.names.get(r['device_id'], r['device_id']):<10} #{r['seq']:<3} "
                f"{r['tag_text']:<16} {r['net_g'] / 1000:>7.2f} kg  "
                f"[{VERDICT_STYLE.get(v, '')}]{VERDICT_WORD[self.lang].get(v, v)}[/] {why}")

    def _view(self, progress: Progress) -> Group:
        assert self.bridge is not None and self.sim is not None
        stations = Table(title="stations", expand=True, title_justify="left")
        for col in ("station", "link", "on the scale", "journal", "readings"):
            stations.add_column(col)
        snaps = [s.snapshot() for s in self.bridge.sessions()]
        sessions = {snap.get("device_id"): snap for snap in snaps}
        for st in self.sim.stations:
            snap = sessions.get(str(st.spec.device_id), {})
            if not st.powered:
                link = "[red]power off[/]"
            elif not st.link_up:
                link = "[yellow]cable pulled[/]"
            elif snap.get("state") == "online":
                link = "[green]online[/]"
            else:
                link = f"[yellow]{snap.get('state', 'connecting')}[/]"
            live = snap.get("live") or {}
            weight = ""
            if live:
                stable = bool(live.get("flags", 0) & 0x08)
                weight = f"{live.get('net_g', 0) / 1000:7.2f} kg " + ("[green]stable[/]" if stable else "[yellow]moving[/]")
            status = snap.get("status") or {}
            journal = f"{status.get('journal_used', 0)} unsent" if status else ""
            stations.add_row(st.name, link, weight, journal, str(snap.get("readings", 0)))
        readings = Table(title="readings (newest first)", expand=True, title_justify="left")
        for col, just in (("time", "left"), ("station", "left"), ("seq", "right"), ("tag", "left"),
                          ("net", "right"), ("verdict", "left"), ("reason", "left")):
            readings.add_column(col, justify=just)  # type: ignore[arg-type]
        for r in self._rows(limit=12):
            v = r["verdict"]
            readings.add_row(_hms(r), self.names.get(r["device_id"], r["device_id"]), str(r["seq"]), r["tag_text"],
                             f"{r['net_g'] / 1000:.2f} kg", f"[{VERDICT_STYLE.get(v, '')}]{VERDICT_WORD[self.lang].get(v, v)}[/]",
                             reason_text(r.get("reason"), self.lang) + (" (time estimated)" if r.get("time_estimated") else ""))
        parts: list[Any] = [progress, stations, readings]
        if self._events:
            parts.append(Panel("\n".join(self._events[-4:]), title="incidents", title_align="left"))
        return Group(*parts)


def summary(result: DemoResult, console: Console, names: dict[str, str], lang: str = "en") -> None:
    rows = result.readings
    t = Table(title="summary per station", title_justify="left")
    for col, just in (("station", "left"), ("bags", "right"), ("accepted", "right"), ("flagged", "right"),
                      ("rejected", "right"), ("accepted net", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for dev, name in names.items():
        mine = [r for r in rows if r["device_id"] == dev]
        acc = [r for r in mine if r["verdict"] == "accept"]
        t.add_row(name, str(len(mine)), str(len(acc)), str(sum(r["verdict"] == "warn" for r in mine)),
                  str(sum(r["verdict"] == "reject" for r in mine)),
                  f"{sum(r['net_g'] for r in acc if r['verdict'] != 'reject') / 1000:.2f} kg")
    console.print(t)
    bad = [r for r in rows if r["verdict"] in ("reject", "warn")]
    if bad:
        b = Table(title="needs attention", title_justify="left")
        for col in ("station", "tag", "verdict", "reason"):
            b.add_column(col)
        for r in bad:
            b.add_row(names.get(r["device_id"], r["device_id"]), r["tag_text"],
                      f"[{VERDICT_STYLE[r['verdict']]}]{VERDICT_WORD[lang][r['verdict']]}[/]",
                      reason_text(r.get("reason"), lang))
        console.print(b)
    expected = sum(1 for sc in result.scripts for bg in sc.bags if bg.expect != S.EXPECT_NONE)
    if result.ok:
        console.print(f"[bold green]All {expected} bags the script expects were recorded once, in order, "
                      f"verified, with the expected verdicts[/] ({result.duration_s:.0f} s).")
    else:
        console.print("[bold red]The run differs from the script:[/]")
        for m in result.mismatches:
            console.print(f"  - {m}")


def _hms(r: dict[str, Any]) -> str:
    t = r.get("time") or r.get("received_at") or 0
    return time.strftime("%H:%M:%S", time.localtime(t))


def _throttle(fn: Any, every_s: float) -> Any:
    last = [0.0]

    def wrapped() -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            fn()

    return wrapped
