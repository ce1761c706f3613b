"""`tagweigh flash`: install MicroPython on a station, then provision it over the REPL.

The esptool half (detect, check image, erase, write, verify) lives in tagweigh.flashing; the
REPL half (copy the app, config, key, self-test) runs in ``after_esptool``.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="serial port (see 'tagweigh ports')")
    parser.add_argument("--firmware", help="MicroPython .bin for the board (not needed with "
                                           "--skip-esptool)")
    parser.add_argument("--site", help="site ID the station belongs to")
    parser.add_argument("--role", help="station role: mine_tagging, depot_receiving, "
                                       "depot_dispatch, processor_receiving, export (or 0..15)")
    parser.add_argument("--baud", type=int, default=460800,
                        help="baud rate for writing (default 460800; try 115200 on a bad cable)")
    parser.add_argument("--before", choices=("default-reset", "no-reset"), default="default-reset",
                        help="no-reset if you put the board in the bootloader by hand "
                             "(hold BOOT, tap EN)")
    parser.add_argument("--erase-all", action="store_true",
                        help="erase the whole flash first (a new station: this also wipes the "
                             "station's journal of readings)")
    parser.add_argument("--force-write", action="store_true",
                        help="write even when the flash already holds this firmware")
    parser.add_argument("--skip-esptool", action="store_true",
                        help="MicroPython is already installed: only do the REPL steps")
    from tagweigh.commands.provision import add_station_options

    add_station_options(parser, flash=True)


def after_esptool(port: str, args: argparse.Namespace) -> int:
    """The REPL half: app, board pin map, settings, key, self-test, restart (the same steps as
    `tagweigh provision`, see there). MicroPython is running after esptool's reset; its REPL
    may appear on --repl-port instead of `port`. Returns an exit code (5: self-test faults)."""
    from rich.console import Console

    from tagweigh.commands.provision import run_steps

    console = Console(stderr=True, soft_wrap=True)
    code = run_steps(args.repl_port or port, args, console,
                     rerun="tagweigh flash ... --skip-esptool")
    if code == 5:
        console.print("flashed and provisioned, but the self-test found faults (hints above); "
                      "fix the wiring, then run 'tagweigh doctor'", highlight=False)
    return code


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from tagweigh.flashing import flash_firmware, inspect_image

    from tagweigh.commands.provision import check_args

    console = Console(stderr=True, soft_wrap=True)
    check_args(args)  # a bad --role or --board is refused before the board is touched
    if not args.skip_esptool and not args.firmware:
        from tagweigh.errors import ConfigError

        raise ConfigError("--firmware is required (or --skip-esptool when MicroPython is "
                          "already installed)")
    if not args.skip_esptool:
        info = inspect_image(args.firmware)
        app = f"{info.app.project_name} {info.app.version}" if info.app else "no app description"
        console.print(f"firmware: {info.chip_name}, {info.size} bytes at {info.flash_offset:#x}, "
                      f"{info.flash_mode}/{info.flash_size}, {app}", markup=False)
        labels = {"connect": "connect", "erase": "erase", "write": "write", "verify": "verify"}
        with Progress(TextColumn("{task.description:<8}"), BarColumn(), DownloadColumn(),
                      TimeElapsedColumn(), console=console, transient=False) as bars:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bars.add_task(labels.get(stage, stage), total=total)
                bars.update(tasks[stage], completed=done, total=total)

            result = flash_firmware(
                args.port, args.firmware, baud=args.baud, progress=progress,
                before=args.before, erase_all=args.erase_all, force_write=args.force_write,
            )
        what = "written and verified" if result.written else "already on the board (verified)"
        console.print(f"{result.description} {result.mac}, flash {result.flash_size}: "
                      f"firmware {what}", markup=False)
        if result.reset == "no-reset":
            console.print("press EN (reset) on the board to start MicroPython")
    return after_esptool(args.port, args)
