"""`tagweigh status`: stations seen, last reading, queue depth, last upload, rejected today."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $TAGWEIGH_CONFIG or ./tagweigh.toml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")


def _ago(t: float | None, now: float) -> str:
    if not t:
        return "never"
    d = max(0.0, now - t)
    if d < 90:
        return f"{d:.0f} s ago"
    if d < 5400:
        return f"{d / 60:.0f} min ago"
    if d < 172800:
        return f"{d / 3600:.1f} h ago"
    return f"{d / 86400:.0f} days ago"


def collect(cfg) -> dict:
    """Queue statistics plus the running bridge's snapshot (if its status file is fresh)."""
    import json
    import time
    from pathlib import Path

    from tagweigh.queue import Queue

    now = time.time()
    with Queue(cfg.queue_path, readonly=True) as q:
        out = q.stats(now)
        out["alerts"] = q.alerts(limit=5)
    for a in out["alerts"]:
        a.pop("raw", None)
    snap_path = Path(f"{cfg.queue_path}.status.json")
    bridge = None
    try:
        snap = json.loads(snap_path.read_text())
        if snap.get("running") and now - snap.get("written_at", 0) <= max(3 * cfg.status_interval_s, 15):
            bridge = snap
    except (OSError, ValueError):
        pass
    out["bridge"] = bridge
    out["bridge_running"] = bridge is not None
    return out


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from tagweigh import config as C

    cfg = C.load(args.config)
    st = collect(cfg)
    if args.json:
        print(json.dumps(st, default=lambda o: o.hex() if isinstance(o, bytes) else str(o), indent=1))
        return 0

    from rich.console import Console
    from rich.table import Table

    now = time.time()
    con = Console()
    b = st["bridge"]
    if b is None:
        con.print("[yellow]bridge: not running[/] (no fresh status file)")
    else:
        ok = "[green]storage ok[/]" if b["storage_ok"] else f"[red]storage FAILING: {b['storage_error']}[/]"
        con.print(f"bridge: running (pid {b['pid']}), {ok}, rule set {b['ruleset_id'] or 'none'}")
    online = {s["device_id"]: s for s in (b or {}).get("sessions", []) if s.get("device_id")}
    t = Table(title="Stations")
    for col in ("device", "site", "link", "last seen", "last reading", "last seq"):
        t.add_column(col)
    for s in st["stations"]:
        live = online.get(s["device_id"])
        link = f"[green]{live['state']}[/] {live['port']}" if live else "[dim]offline[/]"
        t.add_row(s["device_id"], s["site"] or "", link, _ago(s["last_seen"], now),
                  _ago(s["last_reading_at"], now), str(s["last_seq"]))
    con.print(t)
    last = st["last_reading"]
    if last:
        con.print(f"last reading: {last['tag_text']} {last['net_g']} g from {last['device_id']} "
                  f"(seq {last['seq']}) {last['verdict']} {last['reason']}, {_ago(last['received_at'], now)}")
    uploads = ", ".join(f"{k} {_ago(v, now)}" for k, v in st["last_upload"].items()) or "never"
    con.print(f"queue: {st['readings_total']} readings, depth {st['depth']} not uploaded; last upload: {uploads}")
    con.print(f"today: {st['accepted_today']} accepted, {st['warned_today']} warned, "
              f"[{'red' if st['rejected_today'] else 'default'}]{st['rejected_today']} rejected[/], "
              f"{st['alerts_today']} alerts; unknown devices: {st['unknown_devices']}")
    for a in st["alerts"]:
        con.print(f"  alert {a['kind']} device {a['device_id']} seq {a['seq']}: "
                  f"{a['detail'].get('what', '')} ({_ago(a['at'], now)})")
    return 0
