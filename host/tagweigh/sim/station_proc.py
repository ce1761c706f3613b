"""One simulated station process: the real firmware (``twstation.app.build``) on modelled hardware.

Started by the supervisor as ``python -m tagweigh.sim.station_proc ROOT --tty-fd N --control-fd M``.
ROOT is the station's flash (station.json, key.bin, board.json, scale.json, ruleset.json,
journal/). The tty fd is the pty master: the station's USB/UART side. The control fd is a socket
on which the supervisor sends one JSON action per line ({"kind": "place", "args": {...}}, or
{"kind": "link", "args": {"up": false}} to pull the cable to the bridge); an action may carry
its scripted time "at" (seconds): it is then applied no sooner after the previous timed action
than the script says, so a supervisor held up by a busy machine cannot squeeze a tap and its
untap (or a lift and the next bag) into one instant the station never sees; the
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
    paced = _Paced()
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
            got = _apply_control(control, pending, paced)
            if got is None:
                return 0  # the supervisor went away
            pending = got
            paced.apply_due(world, stream, time.monotonic())
            time.sleep(0.001)
    except _Reboot:
        return EXIT_REBOOT
    finally:
        st.close()


def _state_name(state: int) -> str:
    from twstation.station import STATE_NAMES

    return STATE_NAMES[state] if 0 <= state < len(STATE_NAMES) else str(state)


class _Paced:
    """Control messages waiting to be applied: in arrival order, a timed one ("at") no sooner
    after the previous timed one than their scripted times differ."""

    def __init__(self) -> None:
        self.queue: list[dict] = []
        self.last_at: float | None = None  # scripted time of the last timed action applied
        self.last_wall = 0.0  # and when it was applied

    def apply_due(self, world, stream, now: float) -> None:
        while self.queue:
            msg = self.queue[0]
            at = msg.get("at")
            if at is not None and self.last_at is not None \
                    and now - self.last_wall < at - self.last_at - 1e-3:  # (1 ms: float slack)
                return
            self.queue.pop(0)
            if at is not None:
                self.last_at, self.last_wall = at, now
            try:
                if msg["kind"] == "link":
                    stream.set_connected(bool(msg["args"]["up"]))
                else:
                    world.apply(msg["kind"], msg.get("args", {}))
            except (ValueError, KeyError, TypeError) as exc:
                print(f"station: bad control message {msg!r:.80}: {exc}", file=sys.stderr)
                continue
            if os.environ.get("TAGWEIGH_SIM_TRACE") == "1":
                print(f"{now:.3f} action {msg['kind']} {msg.get('args', {})}", file=sys.stderr)


def _apply_control(control: socket.socket, pending: bytes, paced: _Paced) -> bytes | None:
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
            if not isinstance(msg, dict) or not isinstance(msg.get("kind"), str):
                raise ValueError("not an action")
        except ValueError as exc:
            print(f"station: bad control line {line[:80]!r}: {exc}", file=sys.stderr)
            continue
        paced.queue.append(msg)
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
