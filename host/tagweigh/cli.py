"""The `tagweigh` command. One table maps each subcommand to the module that implements it.

A command module defines ``configure(parser)`` (adds its arguments) and ``run(args) -> int``.
Modules are imported only when their command runs, so ``tagweigh --help`` stays fast and heavy
libraries (esptool, mpremote, httpx) load only where they are used.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tagweigh import __version__
from tagweigh.errors import TagweighError

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("tagweigh.commands.demo", "run simulated stations and a bridge end to end (no hardware)"),
    "sim": ("tagweigh.commands.sim", "run simulated stations behind serial ports (scripted or interactive)"),
    "vectors": ("tagweigh.commands.vectors", "decode and check the protocol's golden test vectors"),
    "ports": ("tagweigh.commands.ports", "list serial ports: adapter kind, VID:PID, serial, access"),
    "flash": ("tagweigh.commands.flash", "install MicroPython on a station and provision it"),
    "init": ("tagweigh.commands.init", "write a commented tagweigh.toml with working defaults"),
    "bridge": ("tagweigh.commands.bridge", "run the bridge: station sessions, durable queue, metrics"),
    "status": ("tagweigh.commands.status", "stations seen, last reading, queue depth, uploads, rejects"),
    "keys": ("tagweigh.commands.keys", "station key registry: list, add, rotate, remove, export"),
    "pin": ("tagweigh.commands.pin", "hash an operator PIN for the operator page ([web] operators)"),
    "provision": ("tagweigh.commands.provision", "update a station's app, settings or key over the REPL (no reflash)"),
    "calibrate": ("tagweigh.commands.calibrate", "guided zero/span/linearity calibration with reference masses"),
    "doctor": ("tagweigh.commands.doctor", "read-only check of a station: versions, config, flash, sensors, wiring hints"),
    "upload": ("tagweigh.commands.upload", "send queued readings to the backends now (--once) or keep sending"),
    "receiver": ("tagweigh.commands.receiver", "run the reference receiver: an example backend that re-verifies MACs"),
    "export": ("tagweigh.commands.export", "readings, totals per tag/step or chain of custody as CSV, JSONL or EPCIS"),
}


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="tagweigh",
        description="Signed bag weighing stations: simulator, bridge, flashing and upload.",
    )
    parser.add_argument("--version", action="version", version=f"tagweigh {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {}
    for name, (_module, help_text) in COMMANDS.items():
        subparsers[name] = sub.add_parser(name, help=help_text, description=help_text)
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, subparsers = _parser()
    # Find the chosen command before full parsing, so only its module is imported.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    module = None
    if chosen in COMMANDS:
        module = importlib.import_module(COMMANDS[chosen][0])
        module.configure(subparsers[chosen])
    args = parser.parse_args(argv)
    if module is None:
        parser.print_help()
        return 0 if not argv else 2
    try:
        return int(module.run(args) or 0)
    except TagweighError as exc:
        print(f"tagweigh {chosen}: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"tagweigh {chosen}: interrupted", file=sys.stderr)
        return 130
