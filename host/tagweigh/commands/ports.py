"""`tagweigh ports`: the serial ports present, what adapter each is, and whether you may open it."""

from __future__ import annotations

import argparse
import grp
import json
import os
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

# (VID, PID or None for "any") -> adapter kind. The USB-UART bridges found on ESP32 boards.
ADAPTERS: list[tuple[int, int | None, str]] = [
    (0x10C4, 0xEA60, "CP210x (Silicon Labs)"),
    (0x10C4, 0xEA70, "CP2105 (Silicon Labs)"),
    (0x1A86, 0x7523, "CH340 (WCH)"),
    (0x1A86, 0x5523, "CH341 (WCH)"),
    (0x1A86, 0x55D4, "CH9102 (WCH)"),
    (0x1A86, 0x55D3, "CH343 (WCH)"),
    (0x0403, 0x6001, "FTDI FT232R"),
    (0x0403, 0x6010, "FTDI FT2232"),
    (0x0403, 0x6014, "FTDI FT232H"),
    (0x0403, 0x6015, "FTDI FT231X"),
    (0x303A, 0x1001, "Espressif native USB (USB-Serial/JTAG)"),
    (0x303A, None, "Espressif native USB"),
]

DIALOUT_ADVICE = (
    "you may not open it: add yourself to the '{group}' group "
    "(sudo usermod -aG {group} $USER), then log out and in again"
)


@dataclass
class PortInfo:
    device: str
    vid: str | None  # "10C4"
    pid: str | None
    serial_number: str | None
    adapter: str
    description: str
    accessible: bool
    advice: str | None


def adapter_kind(vid: int | None, pid: int | None) -> str:
    """The adapter name for a USB VID:PID; 'not USB' or 'unknown USB serial' otherwise."""
    if vid is None:
        return "not USB"
    for v, p, name in ADAPTERS:
        if v == vid and (p is None or p == pid):
            return name
    return "unknown USB serial"


def _group_of(path: str) -> str:
    try:
        return grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):
        return "dialout"


def describe(port, *, can_open: Callable[[str], bool] | None = None) -> PortInfo:
    """One pyserial ``ListPortInfo`` as a PortInfo; ``can_open`` defaults to os.access R/W."""
    check = can_open or (lambda path: os.access(path, os.R_OK | os.W_OK))
    ok = check(port.device)
    return PortInfo(
        device=port.device,
        vid=None if port.vid is None else f"{port.vid:04X}",
        pid=None if port.pid is None else f"{port.pid:04X}",
        serial_number=port.serial_number,
        adapter=adapter_kind(port.vid, port.pid),
        description=port.description if port.description != "n/a" else "",
        accessible=ok,
        advice=None if ok else DIALOUT_ADVICE.format(group=_group_of(port.device)),
    )


def list_ports(ports: Iterable | None = None, *, include_all: bool = False, can_open=None) -> list[PortInfo]:
    """USB serial ports (all ports with ``include_all``), ESP-looking adapters first."""
    if ports is None:
        from serial.tools import list_ports as lp

        ports = lp.comports()
    infos = [describe(p, can_open=can_open) for p in ports]
    if not include_all:
        infos = [i for i in infos if i.vid is not None]
    known = {name for _, _, name in ADAPTERS}
    return sorted(infos, key=lambda i: (i.adapter not in known, i.device))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--all", action="store_true", help="include non-USB ports (ttyS*)")


def run(args: argparse.Namespace) -> int:
    infos = list_ports(include_all=args.all)
    if args.json:
        print(json.dumps([asdict(i) for i in infos], indent=2))
        return 0
    if not infos:
        print("no USB serial ports found: plug the board in with a data cable "
              "(some cables only charge)")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="serial ports")
    for col in ("port", "VID:PID", "serial", "adapter", "access"):
        table.add_column(col)
    for i in infos:
        vidpid = f"{i.vid}:{i.pid}" if i.vid else "-"
        access = "[green]ok[/]" if i.accessible else "[red]denied[/]"
        table.add_row(i.device, vidpid, i.serial_number or "-", i.adapter, access)
    console = Console()
    console.print(table)
    for i in infos:
        if i.advice:
            console.print(f"{i.device}: {i.advice}", markup=False)
    return 0
