"""A depot on one machine for the operator page's browser tests and bench/page.py: simulated
stations behind ptys, a real bridge on them, the page served on a free loopback port, and the
headless Chromium that Debian's `chromium` package installs (never a downloaded browser).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from tagweigh.bridge import Bridge
from tagweigh.config import from_dict
from tagweigh.web.auth import hash_pin, web_config
from tagweigh.web.server import WebServer

__all__ = ["CHROMIUM_ARGS", "Depot", "chromium_path", "launch_chromium"]

REPO = Path(__file__).resolve().parents[3]
RULESET = REPO / "protocol" / "rulesets" / "example-depot.json"
PIN = "2468"  # the test operator's PIN
OPERATOR = "Amani"

# Headless and quiet: no GPU, no QUIC, no first-run, no background traffic (component updates,
# sync, safe browsing lists): the page must work with no internet, so the browser gets none.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--mute-audio"]


def chromium_path() -> str | None:
    """$TAGWEIGH_CHROMIUM, else Debian's chromium (/usr/bin/chromium), else None."""
    env = os.environ.get("TAGWEIGH_CHROMIUM")
    if env:
        return env if os.path.exists(env) else None
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


def launch_chromium(playwright: Any, user_data_dir: str, **context: Any) -> Any:
    """A persistent Chromium context on a fresh profile directory, with the system binary."""
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("chromium not found (apt-get install chromium)")
    return playwright.chromium.launch_persistent_context(
        user_data_dir, executable_path=exe, headless=True, args=CHROMIUM_ARGS, **context)


class Depot:
    """Simulated stations, a bridge and its operator page under one temporary directory."""

    def __init__(self, stations: list[tuple[str, int, str]] | None = None, *, workdir: Path | None = None,
                 operators: dict[str, str] | None = None, hub_interval_s: float = 0.05):
        from tagweigh.sim.supervisor import Simulator, StationSpec

        logging.getLogger("tagweigh").setLevel(logging.ERROR)
        self._tmp = None if workdir else tempfile.mkdtemp(prefix="tw-depot-")
        self.workdir = Path(workdir) if workdir is not None else Path(str(self._tmp))
        specs = [StationSpec(name, dev, reader=reader, seed=i)
                 for i, (name, dev, reader) in enumerate(stations or [("Receiving A", 1001, "qr")])]
        self.sim = Simulator(self.workdir / "stations", specs, keys_path=self.workdir / "keys.json")
        self.sim.start()
        ops = operators if operators is not None else {OPERATOR: PIN}
        self.doc: dict[str, Any] = {
            "bridge": {"ports": [s.port for s in self.sim.stations], "metrics_listen": "",
                       "status_interval_s": 60.0},
            "queue": {"path": str(self.workdir / "queue.sqlite3")},
            "keys": {"path": str(self.workdir / "keys.json")},
            "rules": {"ruleset": str(RULESET)},
            "web": {"listen": "127.0.0.1:0",
                    "operators": [{"name": n, "pin": hash_pin(p)} for n, p in ops.items()]},
        }
        self.hub_interval_s = hub_interval_s
        self.bridge: Bridge | None = None
        self.web: WebServer | None = None
        self.port = 0
        self.start_bridge()

    @property
    def url(self) -> str:
        assert self.web is not None
        return self.web.url

    def start_bridge(self) -> None:
        doc = dict(self.doc, web=dict(self.doc["web"], listen=f"127.0.0.1:{self.port}"))
        cfg = from_dict(doc, base_dir=self.workdir)
        self.bridge = Bridge(cfg).start()
        self.web = WebServer(self.bridge, web_config(cfg), hub_interval_s=self.hub_interval_s).start()
        assert self.web.address is not None
        self.port = self.web.address[1]

    def stop_bridge(self) -> None:
        if self.web is not None:
            self.web.stop()
            self.web = None
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None

    def wait(self, cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        """Poll the simulator until cond() is truthy (returns it) or raise TimeoutError."""
        end = time.monotonic() + timeout
        while True:
            self.sim.poll()
            v = cond()
            if v:
                return v
            if time.monotonic() > end:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.01)

    def online(self, timeout: float = 15.0) -> None:
        n = len(self.sim.stations)
        bridge = self.bridge
        assert bridge is not None
        self.wait(lambda: sum(1 for s in bridge.sessions() if s.state == "online") >= n, timeout, "stations online")

    def readings(self) -> list[dict[str, Any]]:
        assert self.bridge is not None
        return self.bridge.queue.readings(newest_first=False)

    def weigh(self, station: int, mass_g: int, label: str, *, swing_g: int = 0, settle_s: float = 1.2,
              timeout: float = 10.0) -> dict[str, Any]:
        """Place a bag, scan its label once it has settled, return the stored reading."""
        st = self.sim.stations[station]
        before = len(self.readings())
        st.act("place", {"mass_g": mass_g, "swing_g": swing_g})
        end = time.monotonic() + settle_s
        while time.monotonic() < end:
            self.sim.poll()
            time.sleep(0.02)
        deadline = time.monotonic() + timeout
        while True:  # like an operator: scan, and scan again if the station did not take it
            st.act("scan", {"text": label})
            try:
                rows = self.wait(lambda: self.readings()[before:], min(4.0, deadline - time.monotonic()),
                                 f"a reading of {label}")
                return rows[-1]
            except TimeoutError:
                if time.monotonic() >= deadline:
                    log = (st.root / "station.log").read_text(errors="replace")[-2000:]
                    raise TimeoutError(f"no reading of {label} within {timeout} s; station log:\n{log}") from None

    def lift(self, station: int, wait_s: float = 1.5) -> None:
        self.sim.stations[station].act("remove")
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            self.sim.poll()
            time.sleep(0.02)

    def close(self) -> None:
        try:
            self.stop_bridge()
        finally:
            self.sim.close()
            if self._tmp:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "Depot":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
