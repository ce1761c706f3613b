"""`tagweigh sim`: simulated stations behind serial ports, for a bridge you run yourself.

    tagweigh sim --stations 2                 # print the ports, play a depot shift, repeat
    tagweigh sim --interactive                # you are the operator: place bags, scan tags
    tagweigh bridge --port /dev/pts/N ...     # in another terminal, with --keys from the sim

Interactive commands (one per line; STATION is 1-based, default 1):
    place KG [SWING_KG] [STATION]   put a bag on the scale (optionally swinging)
    remove [STATION]                lift it off
    scan TEXT [STATION]             the QR scanner reads TEXT
    tap UID_HEX [STATION]           an RFID sticker enters the reader's field (untap to remove)
    untap [STATION]
    label N                         print the valid depot label number N (e.g. 10100)
    cut SECONDS [STATION]           power cut
    unplug SECONDS [STATION]        pull the cable to the bridge for a while
    quit
"""

from __future__ import annotations

import argparse
import select
import sys
import tempfile
import time
from pathlib import Path

from tagweigh.errors import TagweighError


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stations", type=int, default=1, help="how many stations (default 1)")
    p.add_argument("--reader", choices=("qr", "rfid"), default="qr", help="tag reader of every station")
    p.add_argument("--step", type=int, default=2, help="station step/role (default 2, depot receiving)")
    p.add_argument("--workdir", type=Path, help="stations' flash and keys.json (default: a temp folder)")
    p.add_argument("--interactive", "-i", action="store_true", help="type actions instead of a script")
    p.add_argument("--bags", type=int, default=6, help="bags per station per shift (scripted mode)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--once", action="store_true", help="play one shift and stop (scripted mode)")


def run(args: argparse.Namespace) -> int:
    from tagweigh.sim import scenarios as S
    from tagweigh.sim.supervisor import Simulator, StationSpec

    if not 1 <= args.stations <= 16:
        raise TagweighError("--stations must be 1..16")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tagweigh-sim-"))
    specs = [StationSpec(f"station-{i + 1}", 1001 + i, reader=args.reader, step=args.step, seed=args.seed + i)
             for i in range(args.stations)]
    sim = Simulator(workdir, specs)
    sim.start()
    print(f"stations' flash and keys: {workdir}  (bridge: --keys {sim.keys_path})")
    for st in sim.stations:
        print(f"  {st.name}: device {st.spec.device_id}, {st.spec.reader} reader, port {st.port}")
    sys.stdout.flush()
    try:
        if args.interactive:
            _interactive(sim, S)
        else:
            while True:
                scripts = S.depot_shift(stations=args.stations, bags_per_station=args.bags, seed=args.seed)
                for sc, st in zip(scripts, sim.stations):
                    sc.reader = st.spec.reader
                print(f"playing a depot shift ({max(s.duration_s for s in scripts):.0f} s)...", flush=True)
                sim.play(scripts, on_action=lambda st, a: print(f"  {st.name}: {a.kind} {a.args or ''} {a.note}",
                                                                flush=True))
                if args.once:
                    break
                args.seed += 1
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
    return 0


def _interactive(sim, S) -> None:  # noqa: N803 (module passed in to keep imports lazy)
    print("type 'help' for commands", flush=True)
    while True:
        sys.stdout.write("sim> ")
        sys.stdout.flush()
        line = ""
        while not line:
            sim.poll()
            ready, _, _ = select.select([sys.stdin], [], [], 0.05)
            if ready:
                line = sys.stdin.readline()
                if not line:
                    return
                line = line.strip() or " "
        words = line.split()
        if not words:
            continue
        cmd, rest = words[0], words[1:]
        try:
            if cmd in ("quit", "exit", "q"):
                return
            if cmd == "help":
                print(__doc__.split("Interactive commands", 1)[1])
                continue
            if cmd == "label":
                print(S.label(int(rest[0])))
                continue
            st = sim.stations[_station(rest, cmd) - 1]
            if cmd == "place":
                swing = float(rest[1]) * 1000 if len(rest) > 1 and _is_num(rest[1]) else 0.0
                st.act(S.PLACE, {"mass_g": int(float(rest[0]) * 1000), "swing_g": swing, "swing_hz": 1.2})
            elif cmd == "remove":
                st.act(S.REMOVE)
            elif cmd == "scan":
                st.act(S.SCAN, {"text": rest[0]})
            elif cmd == "tap":
                st.act(S.TAP, {"uid": rest[0]})
            elif cmd == "untap":
                st.act(S.UNTAP)
            elif cmd == "cut":
                st.act(S.POWER_CUT, {"off_s": float(rest[0])})
            elif cmd == "unplug":
                st.act(S.BRIDGE_AWAY, {"off_s": float(rest[0])})
            else:
                print(f"unknown command {cmd!r}: type 'help'")
                continue
            t = time.monotonic()
            while time.monotonic() - t < 0.3:
                sim.poll()
                time.sleep(0.02)
            for at, pattern in st.feedback[-3:]:
                if at >= t - 0.05:
                    print(f"  {st.name} shows: {_PATTERNS.get(pattern, pattern)}")
        except (IndexError, ValueError) as exc:
            print(f"bad arguments for {cmd}: {exc}; type 'help'")


_PATTERNS = {"1": "ACCEPTED (green)", "2": "REJECTED (red)", "3": "ATTENTION (amber)", "4": "NOT SYNCED",
             "5": "idle"}


def _is_num(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _station(rest: list[str], cmd: str) -> int:
    takes = {"place": 2, "scan": 1, "tap": 1, "cut": 1, "unplug": 1, "remove": 0, "untap": 0}
    n = takes.get(cmd, 0)
    if cmd == "place" and len(rest) == 2 and not _is_num(rest[1]):
        n = 1
    if len(rest) > n and rest[-1].isdigit():
        return int(rest[-1])
    return 1
