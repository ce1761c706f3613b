"""One simulated station process: the real firmware (``twstation.app.build``) on modelled hardware.

Started by the supervisor as ``python -m tagweigh.sim.station_proc ROOT --tty-fd N --control-fd M``.
ROOT is the station's flash (station.json, key.bin, board.json, scale.json, ruleset.json,
journal/). The tty fd is the pty master: the station's USB/UART side. The control fd is a socket
on which the supervisor sends one JSON action per line ({"kind": "place", "args": {...}}, or
{"kind": "link", "args": {"up": false}} to pull the cable to the bridge); the
station answers nothing on it except one line {"ready": true} once it runs, and
{"feedback": ...} lines when the station shows a verdict to the operator.

Exit codes: 0 stopped, 75 the firmware asked for a reboot (the supervisor starts it again).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import time

EXIT_REBOOT = 75


class _Reboot(Exception):
    pass


def _reboot() -> None:
    raise _Reboot()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tagweigh.sim.station_proc")
    p.add_argument("root")
    p.add_argument("--tty-fd", type=int, required=True)
    p.add_argument("--control-fd", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restore-mass-g", type=float, default=0.0)
    args = p.parse_args(argv)

    from tagweigh.sim.pty import FdStream
    from tagweigh.sim.world import World

    with open(os.path.join(args.root, "board.json")) as f:
        spec = json.load(f)
    world = World(spec, seed=args.seed)  # installs the fake machine and wires the models first
    world.restore(args.restore_mass_g)

    from twstation import app
    from twstation import board as board_mod

    board = board_mod.load(os.path.join(args.root, "board.json"))
    stream = FdStream(args.tty_fd)
    control = socket.socket(fileno=args.control_fd)
    control.setblocking(False)
    st = app.build(args.root, board=board, stream=stream, reboot=_reboot, urandom=os.urandom)
    _send(control, {"ready": True, "pid": os.getpid()})
    _watch_feedback(st, control)
    pending = b""
    trace = os.environ.get("TAGWEIGH_SIM_TRACE") == "1"
    last_state = None
    try:
        while True:
            if not st.step():
                return 0
            if trace and st.state != last_state:
                last_state = st.state
                print(f"{time.monotonic():.3f} state {_state_name(st.state)} net={st.scale.net_g} "
                      f"stable={st.scale.stable}", file=sys.stderr)
            pending = _apply_control(control, pending, world, stream)
            if pending is None:
                return 0  # the supervisor went away
            time.sleep(0.001)
    except _Reboot:
        return EXIT_REBOOT
    finally:
        st.close()


def _state_name(state: int) -> str:
    from twstation.station import STATE_NAMES

    return STATE_NAMES[state] if 0 <= state < len(STATE_NAMES) else str(state)


def _apply_control(control: socket.socket, pending: bytes, world, stream) -> bytes | None:
    readable, _, _ = select.select([control], [], [], 0)
    if not readable:
        return pending
    try:
        data = control.recv(4096)
    except BlockingIOError:
        return pending
    if not data:
        return None
    pending += data
    if len(pending) > 65536:  # a runaway sender: drop what we cannot parse
        pending = pending[-4096:]
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        try:
            msg = json.loads(line)
            if msg["kind"] == "link":
                stream.set_connected(bool(msg["args"]["up"]))
            else:
                world.apply(msg["kind"], msg.get("args", {}))
            if os.environ.get("TAGWEIGH_SIM_TRACE") == "1":
                print(f"{time.monotonic():.3f} action {msg['kind']} {msg.get('args', {})}", file=sys.stderr)
        except (ValueError, KeyError) as exc:
            print(f"station: bad control line {line[:80]!r}: {exc}", file=sys.stderr)
    return pending


def _send(control: socket.socket, msg: dict) -> None:
    try:
        control.sendall((json.dumps(msg) + "\n").encode())
    except OSError:
        pass


def _watch_feedback(st, control: socket.socket) -> None:
    """Tell the supervisor what the operator sees (lights/buzzer pattern), for the console."""
    fb = st.dev.feedback
    if fb is None or not hasattr(fb, "show"):
        return
    show = fb.show

    def show_and_tell(pattern, *a, **kw):
        _send(control, {"feedback": pattern})
        return show(pattern, *a, **kw)

    fb.show = show_and_tell


if __name__ == "__main__":
    raise SystemExit(main())
