"""Operator page figures, measured in a real browser (headless Chromium) against a bridge fed by
simulated stations.

update_latency_ms_p95: from the moment the bridge wrote the station's ACK (the reading is durable
  and the station has been told) to the moment the page rendered that reading on the station's
  card (performance.timeOrigin + performance.now() in a requestAnimationFrame after the DOM
  update; the browser and the bridge share this machine's clock). Goal <= 500.
page_weight_kb: every byte the browser downloaded for a first load on a fresh profile (HTML, JS,
  CSS, icon, the reason table; not the event stream, which is data). Goal <= 300.

Usage: python bench/page.py [--rounds N]   (needs chromium and the playwright package)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=8, help="bags per station (2 stations)")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from tagweigh import session as session_mod
    from tagweigh.sim.scenarios import label
    from tagweigh.web.testbed import Depot, chromium_path, launch_chromium

    if chromium_path() is None:
        print("chromium not found (apt-get install chromium)", file=sys.stderr)
        return 2

    # When each ACK left the bridge: wrap Session.deliver (the committer calls it after commit).
    acks: dict[tuple[str, int], float] = {}
    lock = threading.Lock()
    deliver = session_mod.Session.deliver

    def timed_deliver(self, results):  # type: ignore[no-untyped-def]
        deliver(self, results)
        now = time.time()
        with lock:
            for seq, _res in results:
                acks[(self.device_id, seq)] = now

    session_mod.Session.deliver = timed_deliver  # type: ignore[method-assign]

    with Depot([("Receiving A", 1001, "qr"), ("Receiving B", 1002, "qr")]) as depot, sync_playwright() as p, \
            tempfile.TemporaryDirectory(prefix="tw-bench-chromium-") as profile:
        depot.online()
        ctx = launch_chromium(p, profile, viewport={"width": 1024, "height": 600})
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        sizes: dict[str, int] = {}

        def on_response(r):  # type: ignore[no-untyped-def]
            if "/api/events" in r.url:
                return
            try:
                sizes[r.url] = len(r.body()) + sum(len(k) + len(v) + 4 for k, v in r.headers.items())
            except Exception:
                pass

        page.on("response", on_response)
        page.goto(depot.url)
        page.wait_for_selector(".card[data-device]")
        page.wait_for_load_state("networkidle")
        page.remove_listener("response", on_response)
        weight_kb = sum(sizes.values()) / 1024.0

        stations = depot.sim.stations
        n = 0
        for i in range(args.rounds):
            before = len(depot.readings())
            for k, st in enumerate(stations):
                st.act("place", {"mass_g": 20000 + 1000 * i + 100 * k, "swing_g": 200})
            end = time.monotonic() + 1.3
            while time.monotonic() < end:
                depot.sim.poll()
                time.sleep(0.02)
            for k, st in enumerate(stations):
                st.act("scan", {"text": label(10100 + 2 * i + k)})
            try:
                depot.wait(lambda: len(depot.readings()) >= before + len(stations), 8.0, "readings")
            except TimeoutError:
                for k, st in enumerate(stations):  # scan again, as an operator would
                    st.act("scan", {"text": label(10100 + 2 * i + k)})
                depot.wait(lambda: len(depot.readings()) >= before + len(stations), 8.0, "readings")
            n = len(depot.readings())
            for st in stations:
                st.act("remove")
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                depot.sim.poll()
                time.sleep(0.02)

        time.sleep(0.5)
        shown = dict(page.evaluate("[...window.tw.shown.entries()]"))
        lat = []
        for r in depot.readings():
            ack = acks.get((r["device_id"], r["seq"]))
            s = shown.get(f"card:{r['device_id']}:{r['seq']}")
            if ack and s:
                lat.append(s - ack * 1000.0)
        ctx.close()

    session_mod.Session.deliver = deliver  # type: ignore[method-assign]
    if not lat:
        print("no reading was seen on the page", file=sys.stderr)
        return 1
    lat.sort()
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
    print(f"readings={n} measured={len(lat)} latency_ms min={lat[0]:.0f} median={statistics.median(lat):.0f} "
          f"max={lat[-1]:.0f}; first load {len(sizes)} responses")
    print(f"update_latency_ms_p95={p95:.0f} page_weight_kb={weight_kb:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
