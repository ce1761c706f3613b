"""`tagweigh demo`: simulated stations and a bridge, end to end, no hardware."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stations", type=int, default=3, help="simulated stations (1-8, default 3)")
    p.add_argument("--bags", type=int, default=6, help="bags per station (default 6)")
    p.add_argument("--seed", type=int, default=1, help="scenario seed: same seed, same shift")
    p.add_argument("--no-incidents", action="store_true",
                   help="a quiet shift: no duplicates, foreign tags, power cuts or pulled cables")
    p.add_argument("--speed", type=float, default=1.0,
                   help="play the script faster (>1) or slower; the scale's physics stays real-time")
    p.add_argument("--lang", choices=("en", "fr"), default="en", help="language of verdict reasons")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="keep the stations' flash, keys and queue in DIR (default: a temporary folder)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tagweigh.demo import Demo, summary

    console = Console()
    console.rule("[bold]tagweigh demo[/]: simulated depot, real firmware, real bridge")
    console.print("Each station runs the real firmware on modelled hardware behind its own serial port; "
                  "the bridge verifies, validates and stores every signed reading.\n")
    demo = Demo(stations=args.stations, bags=args.bags, seed=args.seed, incidents=not args.no_incidents,
                speed=args.speed, workdir=args.keep, lang=args.lang, console=console)
    result = demo.run()
    console.print()
    summary(result, console, demo.names, args.lang)
    if args.keep:
        console.print(f"\nKept in {args.keep}: `tagweigh status --config ...` or open {args.keep / 'queue.db'} "
                      "with sqlite3.")
    return 0 if result.ok else 1
