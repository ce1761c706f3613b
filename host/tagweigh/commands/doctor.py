"""`tagweigh doctor`: look at a station without changing it, and say what to fix.

Ports, chip, MicroPython and app versions (with the app files checked against the manifest the
installer wrote), settings, pin map, key (fingerprint only, compared with the registry), free
flash, journal fill, calibration, the station's clock and its self-test with wiring hints. It
writes nothing to the station's settings, key, app or journal (the self-test writes and removes
its own probe file, as on every self-test); if the station app was running it is restarted.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", help="serial port; default: the only ESP-looking USB port")
    parser.add_argument("--config", help="bridge config naming the key registry "
                                         "(default: $TAGWEIGH_CONFIG or ./tagweigh.toml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    parser.add_argument("--no-selftest", action="store_true", help="skip the sensor self-test")
    parser.add_argument("--timeout", type=float, default=15.0,
                        help="seconds to wait for the REPL (default 15)")


class Report:
    """Findings in order: (section, status 'ok' | 'warn' | 'fail' | 'info', text)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []
        self.hints: list[str] = []
        self.data: dict[str, Any] = {}

    def add(self, section: str, status: str, text: str, hint: str | None = None) -> None:
        self.items.append((section, status, text))
        if hint:
            self.hints.append(hint)

    @property
    def worst(self) -> str:
        st = {s for _, s, _ in self.items}
        return "fail" if "fail" in st else "warn" if "warn" in st else "ok"


def _choose_port(args: argparse.Namespace, rep: Report) -> str | None:
    from tagweigh.commands.ports import ADAPTERS, list_ports

    infos = list_ports()
    known = {name for _, _, name in ADAPTERS}
    rep.data["ports"] = [i.device for i in infos]
    listing = ", ".join(f"{i.device} ({i.adapter})" for i in infos) or "none"
    rep.add("ports", "info", f"USB serial ports: {listing}")
    for i in infos:
        if i.advice:
            rep.add("ports", "warn", f"{i.device}: {i.advice}")
    if args.port:
        return args.port
    esp = [i for i in infos if i.adapter in known]
    if len(esp) == 1:
        return esp[0].device
    if not esp:
        rep.add("ports", "fail", "no ESP32 board found on USB",
                "plug the station in with a data USB cable (many cables only charge), or pass --port")
    else:
        rep.add("ports", "fail", "several boards are plugged in",
                "pass --port with one of: " + ", ".join(i.device for i in esp))
    return None


def examine(port: str, args: argparse.Namespace, rep: Report) -> None:
    """Fill the report from the board on `port`. Raises DeviceError if it cannot be reached."""
    from tagweigh import provisioning as P
    from tagweigh.device import Device, DeviceError
    from twproto import messages as M

    dev = Device(port, timeout=args.timeout)
    dev.open()
    restart = False
    try:
        dev.enter()
        restart = dev.stopped_app
        info = dev.info()
        rep.data["device"] = info.as_dict()
        rep.add("board", "ok", f"{info.chip or '?'} ({info.machine}), chip ID {info.unique_id}")
        fmt = (f".mpy v{info.mpy_version}.{info.mpy_sub}" + (f"/{info.mpy_arch}" if info.mpy_arch else "")
               if info.mpy_version is not None else "no .mpy version")
        rep.add("micropython", "ok", f"{info.version_text} ({info.release}), {fmt}")
        if info.fs_total and info.fs_free is not None:
            pct = 100 * info.fs_free // info.fs_total
            status = "ok" if pct >= 10 else "warn"
            rep.add("flash", status,
                    f"{info.fs_free // 1024} KB free of {info.fs_total // 1024} KB ({pct} %)"
                    + (f", chip {info.flash_size // (1024 * 1024)} MB" if info.flash_size else ""),
                    None if status == "ok" else "the filesystem is nearly full: the journal needs "
                    "room; remove stray files or reflash with --erase-all (wipes the journal)")
        if info.mem_free is not None:
            rep.add("ram", "info", f"{info.mem_free // 1024} KB heap free at the REPL")

        # app
        man = P.read_manifest(dev)
        if man is None:
            rep.add("app", "fail", "not installed (no " + P.MANIFEST + ")",
                    "install it: tagweigh provision --port PORT --site SITE --role ROLE")
        else:
            files = man.get("files") or {}
            have = dev.sha256_many(sorted(files))
            bad = [p for p, h in files.items() if have.get(p) != h]
            rep.data["app"] = {"version": man.get("app"), "form": man.get("form"), "damaged": bad}
            if bad:
                rep.add("app", "fail", f"tagweigh station {man.get('app')}: {len(bad)} file(s) "
                        f"missing or changed ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})",
                        "reinstall the app: tagweigh provision --port PORT --app-only")
            else:
                rep.add("app", "ok", f"tagweigh station {man.get('app')} as {man.get('form')}, "
                                     f"{len(files)} files intact")

        # pin map and settings
        raw = dev.read_file("/board.json", 16 * 1024)
        spec = None
        if raw is None:
            rep.add("pin map", "fail", "/board.json missing", "tagweigh provision --port PORT --board NAME")
        else:
            try:
                spec = P.board_spec_from_bytes(raw)
                rep.add("pin map", "ok", f"{spec.get('board')} ({spec.get('chip')})")
            except Exception as exc:  # a ConfigError naming the bad field
                rep.add("pin map", "fail", str(exc), "tagweigh provision --port PORT --board NAME")
        settings, problem = P.read_settings(dev)
        rep.data["settings"] = settings
        if settings is None or problem:
            rep.add("settings", "fail", f"/station.json {problem}",
                    "tagweigh provision --port PORT --site SITE --role ROLE")
        else:
            step = settings["step"]
            role = M.STEP_NAMES[step] if step < len(M.STEP_NAMES) else str(step)
            rep.add("settings", "ok", f"device {settings['device_id']}, site {settings['site']}, "
                                      f"role {role}, e = {settings['division_g']} g, Max "
                                      f"{settings['capacity_g']} g, reader {settings['reader']}")

        # key
        kid = dev.key_id("/key.bin")
        _check_key(kid, settings, args, rep)

        # calibration
        _calibration(dev, settings, rep)

        # journal
        if settings is not None:
            _journal(dev, settings, rep)

        # clock
        tm = dev.eval_json("list(__import__('time').gmtime())")
        rep.data["clock"] = tm
        if isinstance(tm, list) and len(tm) >= 6 and tm[0] >= 2023:
            import calendar

            off = time.time() - calendar.timegm(tuple(tm[:6]) + (0, 0, 0))
            rep.add("clock", "ok" if abs(off) < 120 else "info",
                    f"board clock {abs(off):.0f} s {'behind' if off > 0 else 'ahead of'} this computer")
        else:
            rep.add("clock", "info", "board clock not set (normal: the bridge gives the station "
                                     "the time at every session; until then readings carry boot "
                                     "number and uptime)")

        if not args.no_selftest and settings is not None and spec is not None and man is not None:
            r = dev.run_selftest()
            rep.data["selftest"] = r
            summary = "  ".join(f"{k} {r.get(k)}" for k in ("hx", "rdr", "scn", "jnl", "key", "clk"))
            hints = P.selftest_hints(r, spec)
            rep.add("self-test", "ok" if r.get("ok") else "fail", summary)
            rep.hints.extend(hints)
    except DeviceError:
        raise
    finally:
        if restart:
            try:
                dev.soft_reset(run_main=True)
                rep.add("station", "info", "the station app was running: restarted")
            except DeviceError:
                rep.add("station", "warn", "could not restart the station app", "press EN (reset)")
        dev.close()


def _check_key(kid: str | None, settings: dict | None, args: argparse.Namespace, rep: Report) -> None:
    from tagweigh import config as C
    from tagweigh.errors import TagweighError
    from tagweigh.keys import KeyRegistry, key_id

    if kid is None:
        rep.add("key", "fail", "/key.bin missing: the station cannot sign readings",
                "tagweigh provision --port PORT (makes and registers a key)")
        return
    if kid == "bad-length":
        rep.add("key", "fail", "/key.bin is not 32 bytes", "tagweigh provision --port PORT --rotate-key")
        return
    if settings is None:
        rep.add("key", "warn", f"present (fingerprint {kid}); no device id to compare with the registry")
        return
    try:
        cfg = C.load(args.config)
        if not cfg.keys_path.exists():
            rep.add("key", "warn", f"present (fingerprint {kid}); no key registry at {cfg.keys_path}",
                    "run doctor where the bridge's tagweigh.toml is, or pass --config")
            return
        have = KeyRegistry(cfg.keys_path, create=False).get(settings["device_id"])
    except TagweighError as exc:
        rep.add("key", "warn", f"present (fingerprint {kid}); registry unreadable: {exc}", exc.hint)
        return
    if have is None:
        rep.add("key", "fail", f"device {settings['device_id']} is not in the registry {cfg.keys_path}",
                "the bridge will refuse it (unknown device): tagweigh provision --port PORT --rotate-key")
    elif key_id(have) != kid:
        rep.add("key", "fail", f"board key {kid} differs from the registry's {key_id(have)}",
                "the bridge will refuse its readings (bad MAC): tagweigh provision --port PORT --rekey "
                "(or --rotate-key)")
    else:
        rep.add("key", "ok", f"fingerprint {kid} matches the registry")


def _calibration(dev: Any, settings: dict | None, rep: Report) -> None:
    raw = dev.read_file("/scale.json", 1024)
    if raw is None:
        rep.add("calibration", "warn", "not calibrated: the station takes no readings",
                "tagweigh calibrate --port PORT --mass GRAMS --operator ID")
        return
    try:
        d = json.loads(raw)["cal"]
        when = time.strftime("%Y-%m-%d", time.localtime(d["time"])) if d.get("time") else "date unknown"
        rep.data["calibration"] = d
        rep.add("calibration", "ok", f"ID {d['cal_id']}, reference {d['ref_mass_g']} g, {when}, "
                                     f"operator {d['operator']}, e = {d['e_g']} g, Max {d['capacity_g']} g")
        if settings and (d["e_g"], d["capacity_g"]) != (settings["division_g"], settings["capacity_g"]):
            rep.add("calibration", "info", "the calibration's e/Max (in force) differ from "
                    "/station.json's (used only before calibration)")
    except (ValueError, KeyError, TypeError):
        rep.add("calibration", "fail", "/scale.json is damaged: the station refuses to weigh",
                "recalibrate: tagweigh calibrate --port PORT --mass GRAMS --operator ID")


def _journal(dev: Any, settings: dict, rep: Report) -> None:
    from twstation.app import JOURNAL_SEGMENTS, RECORD, journal_bytes

    sizes = dev.dir_sizes("/journal") or []
    segs = [s for n, s in sizes if n.startswith("seg.") and s >= 0]
    used = sum(segs)
    cap = journal_bytes(settings["journal_capacity"])
    pct = min(100, 100 * used // cap) if cap else 0
    waiting = max(0, (used - 18 * len(segs)) // RECORD)
    rep.data["journal"] = {"bytes": used, "capacity_bytes": cap, "pct": pct, "segments": len(segs)}
    status = "ok" if pct < settings["journal_warn_pct"] else "warn"
    rep.add("journal", status, f"{pct} % full (about {waiting} reading(s) in {len(segs)} of "
                               f"{JOURNAL_SEGMENTS} segments)",
            None if status == "ok" else "connect the bridge so the station's readings are "
                                        "acknowledged and removed")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tagweigh.device import DeviceError

    rep = Report()
    port = _choose_port(args, rep)
    if port is not None:
        try:
            examine(port, args, rep)
        except DeviceError as exc:
            rep.add("connect", "fail", str(exc), exc.hint)
    if port is not None:
        rep.hints = [h.replace("--port PORT", f"--port {port}") for h in rep.hints]
    if args.json:
        out = dict(rep.data, port=port, result=rep.worst,
                   findings=[{"section": a, "status": b, "text": c} for a, b, c in rep.items],
                   hints=rep.hints)
        print(json.dumps(out, indent=1, default=str))
    else:
        con = Console(soft_wrap=True, highlight=False)
        marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]", "info": "·"}
        for section, status, text in rep.items:
            con.print(f"{marks[status]} {section:<11} {text}")
        for h in rep.hints:
            con.print(f"  hint: {h}")
        con.print({"ok": "[green]all checks passed[/]", "warn": "[yellow]usable, with warnings[/]",
                   "fail": "[red]problems found: see the hints[/]"}[rep.worst])
    return {"ok": 0, "warn": 0, "fail": 1}[rep.worst]
