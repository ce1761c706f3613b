"""`tagweigh provision`: the REPL steps of a station without reflashing MicroPython.

Copy (or update) the app, change the site/role/settings or the board pin map, re-key or rotate
the key, then run the station's self-test and restart it. `tagweigh flash` runs the same steps
after esptool (``run_steps``). Every step is skipped when the board already has what it would
write, so running the command again is how a run cut short is finished.
"""

from __future__ import annotations

import argparse
from typing import Any

STEP_NAMES = ("connect", "app", "board", "settings", "key", "self-test", "restart")


def add_station_options(parser: argparse.ArgumentParser, *, flash: bool = False) -> None:
    """Options shared by `flash` (after esptool) and `provision`."""
    if not flash:
        parser.add_argument("--port", required=True, help="serial port (see 'tagweigh ports')")
        parser.add_argument("--site", help="site ID the station belongs to")
        parser.add_argument("--role", help="station role: mine_tagging, depot_receiving, "
                                           "depot_dispatch, processor_receiving, export (or 0..15)")
    parser.add_argument("--repl-port",
                        help="port where MicroPython's REPL appears, if not --port (boards with "
                             "native USB can come back under another name after a reset)")
    parser.add_argument("--config", help="bridge config naming the key registry "
                                         "(default: $TAGWEIGH_CONFIG or ./tagweigh.toml)")
    parser.add_argument("--device-id", type=int,
                        help="station device id (u32); default: kept, or from the chip's MAC")
    parser.add_argument("--board", help="pin map: a name from hardware/boards (esp32-devkitc, "
                                        "esp32-s3-devkitc) or a .json path; default: kept, or "
                                        "the DevKitC of the chip")
    parser.add_argument("--division-g", type=int, help="division e in grams (1, 2, 5, 10, 20, ...)")
    parser.add_argument("--capacity-g", type=int, help="capacity Max in grams")
    parser.add_argument("--reader", choices=("rfid", "qr", "both"), help="tag reader fitted")
    parser.add_argument("--operator", type=int, help="default operator ID")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="any other /station.json field (see firmware/README.md); repeatable")
    parser.add_argument("--ruleset", help="also copy this rule set file to the station")
    parser.add_argument("--py", action="store_true",
                        help="copy the app as .py source instead of compiled .mpy")
    parser.add_argument("--line-numbers", action="store_true",
                        help="keep source line numbers in the app's tracebacks (about 3 KB more "
                             "station RAM; for a bench session, not for the depot)")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--rotate-key", action="store_true",
                      help="give the station a fresh key (registry keeps the old fingerprint)")
    keys.add_argument("--rekey", action="store_true",
                      help="write the registry's key for this device to the board (replaced or "
                           "erased board)")
    parser.add_argument("--no-selftest", action="store_true", help="skip the station self-test")
    parser.add_argument("--no-restart", action="store_true",
                        help="leave the board at the REPL instead of starting the station")
    parser.add_argument("--timeout", type=float, default=15.0,
                        help="seconds to wait for the REPL (default 15)")


def configure(parser: argparse.ArgumentParser) -> None:
    add_station_options(parser)
    parser.add_argument("--app-only", action="store_true",
                        help="only update the app files; settings and key untouched")


class _Steps:
    """Prints each step as it finishes and, when one fails, tells what was done and what to run."""

    def __init__(self, console: Any, rerun: str):
        self.console = console
        self.rerun = rerun
        self.done: list[str] = []

    def ok(self, name: str, text: str) -> None:
        self.done.append(name)
        self.console.print(f"[green]✓[/] {name:<9} {text}", highlight=False)

    def fail(self, exc: Exception, name: str) -> None:
        from tagweigh.errors import TagweighError

        if getattr(exc, "_tw_steps", False):
            return  # already told
        exc._tw_steps = True  # type: ignore[attr-defined]
        done = ", ".join(self.done) or "nothing"
        note = f"done: {done}; failed at: {name}; run '{self.rerun}' again to finish (it skips what is done)"
        if isinstance(exc, TagweighError):
            exc.hint = f"{exc.hint}\n  next: {note}" if exc.hint else note


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    import json

    from tagweigh.errors import ConfigError
    from tagweigh.provisioning import parse_role

    ch: dict[str, Any] = {}
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            ch[field.strip()] = json.loads(value)
        except ValueError:
            ch[field.strip()] = value
    if getattr(args, "site", None):
        ch["site"] = args.site
    if getattr(args, "role", None):
        ch["step"] = parse_role(args.role)
    for opt, field in (("division_g", "division_g"), ("capacity_g", "capacity_g"),
                       ("reader", "reader"), ("operator", "operator"), ("device_id", "device_id")):
        v = getattr(args, opt, None)
        if v is not None:
            ch[field] = v
    return ch


def check_args(args: argparse.Namespace) -> None:
    """Validate what can be checked before the board is touched (flash calls it before esptool)."""
    from tagweigh.provisioning import board_spec

    _changes(args)
    if args.board:
        board_spec(args.board)


def run_steps(port: str, args: argparse.Namespace, console: Any, *, rerun: str,
              app_only: bool = False) -> int:
    """The REPL steps on the board at `port`. Returns 0, or 5 when the self-test found faults."""
    import time

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from tagweigh import config as C
    from tagweigh import provisioning as P
    from tagweigh.device import Device
    from tagweigh.errors import ConfigError
    from tagweigh.keys import KeyRegistry
    from twproto import messages as M

    changes = _changes(args)
    steps = _Steps(console, rerun)
    name = "connect"
    dev = Device(port, timeout=args.timeout)
    try:
        dev.open()
        console.print(f"waiting for the MicroPython REPL on {port} ...", highlight=False)
        dev.enter()
        info = dev.info()
        flash = f", flash {info.flash_size // (1024 * 1024)} MB" if info.flash_size else ""
        free = f", {info.fs_free // 1024} KB free" if info.fs_free is not None else ""
        fmt = (f".mpy v{info.mpy_version}.{info.mpy_sub}" + (f"/{info.mpy_arch}" if info.mpy_arch else "")
               if info.mpy_version is not None else "no .mpy version")
        stopped = " (station app stopped)" if dev.stopped_app else ""
        steps.ok(name, f"MicroPython {info.version_text} on {info.chip or info.machine} "
                       f"({fmt}){flash}{free}{stopped}")

        name = "app"
        plan = P.plan_app(info, force_py=args.py, line_numbers=args.line_numbers)
        with Progress(TextColumn("  {task.description:<34}"), BarColumn(), DownloadColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bars:
            task = bars.add_task("checking", total=None)

            def progress(dest: str, done: int, total: int) -> None:
                bars.update(task, description=dest or "app", completed=done, total=total or None)

            res = P.install_app(dev, plan, progress)
        steps.ok(name, f"tagweigh station {plan.version} as {plan.form}: {len(res.written)} "
                       f"file(s) copied ({res.bytes_written} bytes), {len(res.skipped)} unchanged"
                 + (f", {len(res.removed)} stale removed" if res.removed else ""))
        if app_only:
            settings, _ = P.read_settings(dev)
            raw = dev.read_file("/board.json", 16 * 1024)
            spec = P.board_spec_from_bytes(raw) if raw is not None and settings else None
            return _finish(dev, args, steps, console, spec, settings if spec else None)

        name = "board"
        existing, problem = P.read_settings(dev)
        old_board = dev.read_file("/board.json", 16 * 1024)
        board_name = args.board
        if board_name is None and old_board is not None:
            spec = P.board_spec_from_bytes(old_board)
        else:
            if board_name is None:
                board_name = {"esp32s3": "esp32-s3-devkitc"}.get(info.chip, "esp32-devkitc")
            spec = P.board_spec(board_name)
        if info.chip and spec.get("chip") != info.chip:
            raise ConfigError(f"the pin map {spec.get('board')} is for {spec.get('chip')}, "
                              f"the board is an {info.chip}",
                              hint="pass --board for this chip (see hardware/boards)")
        changed = P.write_board(dev, spec)
        steps.ok(name, f"{spec.get('board')} pin map " + ("written" if changed else "unchanged"))

        name = "settings"
        base = existing if existing is not None else None
        if base is None and problem not in ("missing", None):
            console.print(f"  /station.json on the board was unusable ({problem}): replacing it",
                          highlight=False)
        if "device_id" not in changes and not (base and "device_id" in base):
            changes["device_id"] = P.default_device_id(info)
        if base is None and ("site" not in changes or "step" not in changes):
            raise ConfigError("a new station needs --site and --role",
                              hint="e.g. --site CD-SK-012 --role depot_receiving")
        settings = P.compose_settings(base, changes)
        changed = P.write_settings(dev, settings)
        role = M.STEP_NAMES[settings["step"]] if settings["step"] < len(M.STEP_NAMES) else settings["step"]
        steps.ok(name, f"device {settings['device_id']}, site {settings['site']}, role {role}, "
                       f"e = {settings['division_g']} g, Max {settings['capacity_g']} g, "
                       f"reader {settings['reader']}: " + ("written" if changed else "unchanged"))
        if getattr(args, "ruleset", None):
            changed, rid = P.write_ruleset(dev, args.ruleset)
            steps.ok("rule set", f"{rid} " + ("written" if changed else "unchanged"))

        name = "key"
        cfg = C.load(args.config)
        registry = KeyRegistry(cfg.keys_path)
        kr = P.ensure_key(dev, registry, settings["device_id"], rotate=args.rotate_key,
                          rekey=args.rekey, info={"site": settings["site"], "step": settings["step"],
                                                  "provisioned_at": time.time()})
        words = {"kept": "board and registry already agree", "added": "new key on the board and in",
                 "rotated": "fresh key on the board and in", "rekeyed": "registry's key on the board, from"}
        where = "" if kr.action == "kept" else f" {registry.path}"
        steps.ok(name, f"{kr.key_id} ({words[kr.action]}{where})")
        return _finish(dev, args, steps, console, spec, settings)
    except Exception as exc:
        steps.fail(exc, name)
        raise
    finally:
        dev.close()


def _finish(dev: Any, args: argparse.Namespace, steps: _Steps, console: Any,
            spec: dict | None, settings: dict | None) -> int:
    from tagweigh import provisioning as P

    code = 0
    if not args.no_selftest and settings is not None:
        name = "self-test"
        try:
            with console.status("  running the station self-test ..."):
                r = dev.run_selftest()
        except Exception as exc:
            steps.fail(exc, name)
            raise
        summary = "  ".join(f"{k} {r.get(k)}" for k in ("hx", "rdr", "scn", "jnl", "key", "clk"))
        if r.get("ok"):
            steps.ok(name, summary)
        else:
            console.print(f"[red]✗[/] {name:<9} {summary}", highlight=False)
            for h in P.selftest_hints(r, spec):
                console.print(f"  hint: {h}", highlight=False)
            code = 5
    if not args.no_restart:
        dev.soft_reset(run_main=True)
        steps.ok("restart", "soft reset: boot.py and main.py run, the station starts")
    return code


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    check_args(args)
    code = run_steps(args.repl_port or args.port, args, console,
                     rerun="tagweigh provision" + (" --app-only" if args.app_only else ""),
                     app_only=args.app_only)
    if code == 5:
        console.print("provisioned, but the self-test found faults (hints above); "
                      "'tagweigh doctor' shows them again after a fix", highlight=False)
    return code
