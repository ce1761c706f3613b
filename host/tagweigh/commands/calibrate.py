"""`tagweigh calibrate`: guided zero and span with a reference mass, a linearity check with a
second mass, and a calibration record with an ID, the masses, the date and the operator.

Design: calibrate talks to the running station itself, over the authenticated protocol, with the
bridge's own code: a `Bridge` with no ports of its own (same key registry, same queue, same HELLO
handling; readings the station sends meanwhile are stored and acknowledged as usual, nothing is
lost) and one `Session` on the station's port. The station's port can have one owner, so a
running bridge must be stopped first (the queue lock says so). Steps, each an authenticated
COMMAND (protocol/SPEC.md 5.9):

    GET_STATUS           calibration in force (cal_id) -> new ID = cal_id + 1 unless --cal-id
    MAINTENANCE on       the station takes no readings while it is calibrated
    CAL_ZERO             platform empty and stable
    CAL_SPAN(mass)       reference mass on, stable: the station computes, applies and stores it
    CAL_CHECK(mass2)     second mass: measured value, must be within one division (e)
    CAL_COMMIT(id, operator, time)   stamps the calibration; station raises calibration_changed
    MAINTENANCE off

The station refuses CAL_ZERO/SPAN/CHECK while the scale is in motion (``refused_motion``); the
command then waits and retries, showing the live weight, until ``--settle-timeout``, and stops
with an error if the scale never settles. A failed linearity check is not committed and the
station is left in maintenance mode (it takes no readings with a calibration that failed its
check); run calibrate again after fixing the mounting. The record is written to the queue's
audit log (action "calibration") whatever the outcome, with the outcome.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any, Callable

from tagweigh.errors import TagweighError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="the station's serial port")
    parser.add_argument("--mass", type=int, required=True,
                        help="reference mass for the span, grams (at least 10 %% of Max; "
                             "2/3 of Max recommended, OIML M1 or better)")
    parser.add_argument("--check-mass", type=int,
                        help="second, different mass for the linearity check, grams")
    parser.add_argument("--operator", type=int, required=True, help="operator ID (0..65535)")
    parser.add_argument("--cal-id", type=int, help="calibration ID (default: the current + 1)")
    parser.add_argument("--mass-id", help="reference mass ID / certificate number, for the record")
    parser.add_argument("--config", help="bridge config (key registry, queue)")
    parser.add_argument("--yes", action="store_true",
                        help="do not wait for Enter: each step starts when the platform has "
                             "changed and settled (hands-free)")
    parser.add_argument("--settle-timeout", type=float, default=60.0,
                        help="seconds a step waits for a stable scale (default 60)")
    parser.add_argument("--connect-timeout", type=float, default=15.0,
                        help="seconds to wait for the station's HELLO (default 15)")


class CalibrateError(TagweighError):
    """A calibration step failed or was refused; nothing was committed."""

    exit_code = 6


def _error(msg: str, hint: str | None = None) -> CalibrateError:
    return CalibrateError(msg, hint=hint)


class Guide:
    """One calibration run on an online session. `ask(text)` waits for the operator."""

    def __init__(self, session: Any, console: Any, args: argparse.Namespace,
                 ask: Callable[[str], None]):
        self.s = session
        self.con = console
        self.args = args
        self.ask = ask
        self.e_g = 0
        self.record: dict[str, Any] = {}

    def cmd(self, op: int, args: dict | None = None) -> Any:
        from twproto import messages as M

        try:
            return self.s.command(op, args or {}, timeout=2.0)
        except TimeoutError as exc:
            raise _error(f"the station did not answer {M.OP_NAMES.get(op, op)}: {exc}",
                         "check the cable; run the same command again") from None

    def live(self) -> int | None:
        lv = self.s.last_live
        if lv is None:
            return None
        self.e_g = lv.get("e_g") or self.e_g
        return lv.get("net_g")

    def until_settled(self, what: str, op: int, args: dict | None = None,
                      moved_from: int | None = None, expect_g: int = 0) -> Any:
        """Send op until the station stops answering refused_motion. With `moved_from`, first
        wait until the live weight has moved from it by about `expect_g` (the load really was
        put on: an operator pressing Enter as the mass lands must not capture the empty
        platform). Returns the RESULT."""
        from twproto import messages as M

        change = min(max(20 * (self.e_g or 10), expect_g // 50), expect_g // 2)

        deadline = time.monotonic() + self.args.settle_timeout
        shown = None
        with self.con.status(f"  {what}: waiting for a stable scale ...") as status:
            while True:
                if moved_from is not None:
                    w = self.live()
                    if w is None or abs(w - moved_from) < change:
                        if time.monotonic() > deadline:
                            raise _error(f"{what}: the platform did not change within "
                                         f"{self.args.settle_timeout:g} s (live {w} g)",
                                         "put the mass on the platform, then run the same "
                                         "command again")
                        status.update(f"  {what}: place the load ... (live {w} g)")
                        time.sleep(0.2)
                        continue
                    moved_from = None
                res = self.cmd(op, args)
                if res.status != M.RS_REFUSED_MOTION:
                    return res
                w = self.live()
                if w != shown:
                    status.update(f"  {what}: scale in motion, waiting (live {w} g) ...")
                    shown = w
                if time.monotonic() > deadline:
                    raise _error(f"{what}: refused by the station: the scale is in motion "
                                 f"(still moving after {self.args.settle_timeout:g} s)",
                                 "stop the platform swinging (nothing touching it, no draught, "
                                 "level feet), then run the same command again")
                time.sleep(0.5)

    @staticmethod
    def _check(res: Any, what: str) -> None:
        from twproto import messages as M

        if res.status != M.RS_OK:
            name = M.RESULT_NAMES[res.status] if res.status < len(M.RESULT_NAMES) else str(res.status)
            detail = bytes(res.detail).decode("utf-8", "replace") if res.detail else ""
            raise _error(f"{what}: the station refused ({name}{': ' + detail if detail else ''})",
                         "the reference mass must be 10..100 % of Max and add at least 10 counts "
                         "per division" if res.status == M.RS_BAD_ARGS else None)

    def run(self) -> dict[str, Any]:
        from twproto import messages as M

        a = self.args
        self.cmd(M.OP_GET_STATUS)
        st = self._wait_status()
        old = st.get("cal_id", 0)
        cal_id = a.cal_id if a.cal_id is not None else (old % 0xFFFF) + 1
        uncal = bool(st.get("flags", 0) & M.SF_UNCALIBRATED)
        self.record.update(device_id=self.s.device_id, previous_cal_id=old, cal_id=cal_id,
                           ref_mass_g=a.mass, check_mass_g=a.check_mass, operator=a.operator,
                           mass_id=a.mass_id, port=self.s.port, outcome="started")
        self.con.print(f"station {self.s.device_id}: calibration {old}"
                       f"{' (uncalibrated)' if uncal else ''} in force; new calibration ID {cal_id}",
                       highlight=False)
        self._check(self.cmd(M.OP_MAINTENANCE, {"on": 1}), "maintenance mode")
        self.con.print("✓ maintenance mode: the station takes no readings until the end")
        committed = applied = False
        try:
            self.ask("1/3 zero: empty the platform, nothing touching it")
            res = self.until_settled("zero", M.OP_CAL_ZERO)
            self._check(res, "zero")
            base = self.live() or 0
            self.con.print(f"✓ zero captured ({res.value} counts)", highlight=False)

            self.ask(f"2/3 span: put the reference mass of {a.mass} g at the centre of the platform")
            res = self.until_settled("span", M.OP_CAL_SPAN, {"mass_g": a.mass},
                                     moved_from=base, expect_g=a.mass)
            self._check(res, "span")
            applied = True  # the station computed, applied and stored the new span
            self.record["counts_per_kg"] = res.value
            self.con.print(f"✓ span: {res.value} counts per kg", highlight=False)
            if a.check_mass is not None:
                before = self.live() or 0
                self.ask(f"3/3 linearity: replace it with the second mass of {a.check_mass} g")
                res = self.until_settled("check", M.OP_CAL_CHECK, {"mass_g": a.check_mass},
                                         moved_from=before, expect_g=abs(a.check_mass - a.mass))
                self._check(res, "linearity check")
                err = res.value - a.check_mass
                e = self.e_g or 10
                self.record.update(check_measured_g=res.value, check_error_g=err, e_g=e)
                if abs(err) > e:
                    self.record["outcome"] = "check_failed"
                    raise _error(f"linearity check failed: {res.value} g shown for {a.check_mass} g "
                                 f"({err:+d} g, more than one division e = {e} g); not committed",
                                 "check the platform rests only on the load cell and the cell's "
                                 "mounting, then run the same command again")
                self.con.print(f"✓ linearity: {res.value} g for {a.check_mass} g ({err:+d} g, "
                               f"within e = {e} g)", highlight=False)
            now = int(time.time())
            res = self.cmd(M.OP_CAL_COMMIT, {"cal_id": cal_id, "operator": a.operator, "time": now})
            self._check(res, "commit")
            committed = True
            self.record.update(time=now, outcome="committed")
            self.con.print(f"✓ calibration {cal_id} stored on the station (operator {a.operator}, "
                           f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(now))})", highlight=False)
        finally:
            if committed or not applied:
                try:
                    self.cmd(M.OP_MAINTENANCE, {"on": 0})
                except TagweighError:  # the error being raised says more
                    pass
            else:  # a new span is in force but was not confirmed: no readings with it
                self.con.print("! the new span is applied but not committed: the station stays "
                               "in maintenance mode (no readings) until a calibration passes",
                               highlight=False)
        self.con.print("✓ maintenance mode off: the station weighs again")
        return self.record

    def _wait_status(self, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.s.last_status is not None:
                return self.s.last_status
            time.sleep(0.05)
        raise _error("the station sent no STATUS", "run the same command again")


def _wait_online(session: Any, timeout: float) -> None:
    from tagweigh.session import ONLINE

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if session.state == ONLINE:
            return
        c = session.counters
        if c["unknown_device"]:
            raise _error("the station's device id is not in the key registry",
                         "provision it first: tagweigh provision --port PORT (or run calibrate "
                         "with the --config of the bridge that knows it)")
        if c["bad_mac"]:
            raise _error("the station's key does not match the registry's (bad MAC)",
                         "tagweigh provision --port PORT --rekey")
        time.sleep(0.05)
    raise _error(f"no HELLO from a station on {session.port} within {timeout:g} s",
                 "is the station app running? 'tagweigh doctor --port PORT' checks it")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tagweigh import config as C
    from tagweigh.bridge import Bridge
    from tagweigh.config import Discovery
    from tagweigh.link import LinkLost, SerialLink
    from tagweigh.queue import Queue, QueueError

    con = Console(stderr=True, soft_wrap=True)
    if args.check_mass is not None and args.check_mass == args.mass:
        raise _error("--check-mass must differ from --mass (linearity needs a second point)")
    cfg = replace(C.load(args.config), ports=(), metrics_listen="", discovery=Discovery())
    try:
        bridge = Bridge(cfg)
    except QueueError as exc:
        if exc.kind == "locked":
            raise _error("the bridge is running: it owns the stations' ports and the queue",
                         "stop 'tagweigh bridge' for the calibration, then start it again") from None
        raise
    record: dict[str, Any] = {"port": args.port, "outcome": "not_started"}
    try:
        bridge.start()
        try:
            link = SerialLink(args.port, baudrate=cfg.baudrate)
        except LinkLost as exc:
            raise _error(str(exc), "check the port ('tagweigh ports')") from None
        session = bridge.attach(link)
        with con.status(f"waiting for the station's HELLO on {args.port} ..."):
            _wait_online(session, args.connect_timeout)

        def ask(text: str) -> None:
            if args.yes:
                con.print(text, highlight=False)
            else:
                con.print(text + ", then press Enter", highlight=False)
                input()

        guide = Guide(session, con, args, ask)
        try:
            record = guide.run()
        finally:
            record = guide.record or record
    finally:
        bridge.stop()
        if record.get("outcome") not in (None, "not_started"):
            if record.get("outcome") == "started":
                record["outcome"] = "failed"
            try:
                with Queue(cfg.queue_path) as q:
                    q.audit(f"operator {args.operator}", "calibration", record)
            except QueueError as exc:
                con.print(f"warning: calibration record not written to the queue: {exc}")
    print(f"calibration {record['cal_id']} of station {record['device_id']}: reference "
          f"{record['ref_mass_g']} g, operator {record['operator']}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(record['time']))}"
          + (f", check {record['check_measured_g']} g for {record['check_mass_g']} g"
             if record.get("check_mass_g") is not None else ""))
    return 0
