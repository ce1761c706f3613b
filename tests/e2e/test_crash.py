"""Crashes at the worst instants, through real ptys:

- a `tagweigh bridge` process SIGKILLed right after a READING reached it, right after it sent
  an ACK that never reached the station, and right after an ACK that did: restarted each time,
  nothing acknowledged is lost and nothing is stored twice;
- a station losing power (SIGKILL of the firmware process) while it journals a reading, right
  after the reading was journaled and before it was sent, and while it records an ACK: the
  journal recovery brings it back and every journaled reading arrives exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from e2e_harness import ack_entries, check_stored, journal_snapshot

from tagweigh.sim import scenarios as S
from tagweigh.sim.supervisor import StationSpec
from twproto import frame as F


def test_bridge_sigkilled_mid_stream_loses_nothing_acknowledged_and_duplicates_nothing(rig, tmp_path):
    dev = 1002
    r = rig([StationSpec("st", dev, seed=5)], relay=True)
    relay = r.relays[0]
    plan = ["reading", "ack_held", "ack_passed"]  # where to kill, bag by bag (bag 4: no kill)
    kills: list[tuple[str, int, float]] = []
    lock = threading.Lock()

    def kill(where: str, seq: int) -> None:
        with lock:
            proc = r.proc
            if proc is None or proc.poll() is not None:
                return
            os.kill(proc.pid, signal.SIGKILL)  # now, from the relay thread: no scheduling delay
            kills.append((where, seq, time.monotonic()))

    def due() -> str | None:
        return plan[len(kills)] if len(kills) < len(plan) else None

    def on_frame(raw: bytes) -> list[bytes]:
        if raw[2] == F.T_READING and due() == "reading" and r.proc is not None:
            relay._write(relay.master, raw)  # the bridge gets the whole reading, then dies
            kill("reading", int.from_bytes(raw[3:7], "little"))
            return []
        return [raw]

    rdec = F.Decoder()

    def on_reply(data: bytes) -> bytes:
        acks = [e for kind, fr in rdec.decode(data) if kind == F.FRAME for e in ack_entries(bytes(fr))]
        if acks and due() == "ack_held":
            kill("ack_held", acks[0][0])
            return b""  # committed and acknowledged, but the ACK never reaches the station
        if acks and due() == "ack_passed":
            relay._write(relay.st_fd, data)
            kill("ack_passed", acks[0][0])
            return b""
        return data

    relay.on_frame = on_frame
    relay.on_reply = on_reply
    r.spawn_bridge()

    def respawn() -> None:
        with lock:
            if r.proc is not None and r.proc.poll() is not None:
                r.proc.wait()
                r.spawn_bridge()

    r.on_tick = respawn
    labels = [S.label(10300 + i) for i in range(4)]
    for i, tag in enumerate(labels):
        r.weigh(0, tag, 30000 + 1000 * i)
        if i < len(plan):  # the kill for this bag happened before the next bag comes
            r.wait(lambda: len(kills) > i, 20, f"the {plan[i]} kill")
    rows = r.wait(lambda: (lambda rows: rows if len(rows) == 4 and not journal_snapshot(
        r.sim.stations[0].root, tmp_path / "j")[1] else None)(r.readings(dev)),
        30, "4 readings stored and the station's journal empty")
    assert [w for w, _, _ in kills] == plan
    assert [row["tag_text"] for row in rows] == labels
    check_stored(rows, r.key(dev))
    # The ACK of the "ack_held" kill never reached the station: it sent that reading again and
    # a later bridge acknowledged it again (a duplicate), without storing it twice.
    _, held_seq, held_at = kills[1]
    assert held_seq in relay.acked(since=held_at + 0.001)
    assert len(rows) == len({row["seq"] for row in rows})
    last_seq, pending = journal_snapshot(r.sim.stations[0].root, tmp_path / "end")
    assert (last_seq, pending) == (4, [])
    assert r.proc is not None and r.proc.poll() is None


class PowerCutter(threading.Thread):
    """Cuts a station's power the moment its trace log shows a state, or its ack log grows;
    snapshots the journal right after the cut (before the station boots again)."""

    def __init__(self, r, scratch):
        super().__init__(daemon=True)
        self.r = r
        self.scratch = scratch
        st = r.sim.stations[0]
        self.log = open(st.root / "station.log", "r", errors="replace")
        self.log.seek(0, os.SEEK_END)
        self.ack_path = st.root / "journal" / "ack"
        self.armed: str | None = None
        self.ack_size = 0
        self.cuts: list[tuple[str, int, list[bytes]]] = []  # (trigger, journal last seq, pending)
        self.stop = False

    def arm(self, trigger: str) -> None:
        self.ack_size = self.ack_path.stat().st_size if self.ack_path.exists() else 0
        self.log.seek(0, os.SEEK_END)
        self.armed = trigger

    def run(self) -> None:
        while not self.stop:
            trig = self.armed
            hit = False
            if trig == "ack":
                hit = self.ack_path.exists() and self.ack_path.stat().st_size > self.ack_size
            elif trig is not None:
                line = self.log.readline()
                while line and not hit:
                    hit = trig in line
                    line = "" if hit else self.log.readline()
            if hit:
                self.r.cut_power_now(0, 0.3)
                self.cuts.append((trig, *journal_snapshot(self.r.sim.stations[0].root,
                                                          self.scratch / f"cut{len(self.cuts)}")))
                self.armed = None  # after the append: arm() counts cuts + armed
            time.sleep(0.0003)


def test_station_power_cut_mid_write_recovers_and_delivers_every_journaled_reading(rig, tmp_path):
    dev = 1003
    r = rig([StationSpec("st", dev, seed=7)])
    bridge = r.start_bridge()
    r.wait(lambda: any(s.device_id == str(dev) and s.state == "online" for s in bridge.sessions()), 10,
           "the station online")
    cutter = PowerCutter(r, tmp_path)
    cutter.start()
    # bags 1-3; bag 4 is weighed undisturbed. "state sign": the next step signs and journals
    # the reading (one step: the signed bytes sit in the shared TX buffer until journaled)
    triggers = ["state sign", "state send", "ack"]
    labels = [S.label(10400 + i) for i in range(4)]
    try:
        for i, tag in enumerate(labels):
            if i < len(triggers):
                # everything earlier delivered first, so the trigger can only be this bag's
                r.wait(lambda: not journal_snapshot(r.sim.stations[0].root, tmp_path / "d")[1], 20, "journal drained")
                cutter.arm(triggers[i])
            r.weigh(0, tag, 25000 + 1000 * i)
            if i < len(triggers):
                r.wait(lambda: len(cutter.cuts) > i and r.sim.stations[0].powered, 20, f"cut {i + 1} survived")
    finally:
        cutter.stop = True
    assert [c[0] for c in cutter.cuts] == triggers
    # What the journal held right after each cut is what must arrive; after "state send" the
    # reading was journaled (not yet sent); the ack cut comes after the bridge stored it.
    journaled = set()
    for trig, _last, pending in cutter.cuts:
        journaled |= {bytes(f[:-2]) for f in pending}
    _, last_after_send, pending_after_send = cutter.cuts[1]
    assert any(labels[1].encode() in f for f in pending_after_send), "the reading journaled before the cut"
    expected = [t for t in labels if t != labels[0]]
    rows = r.wait(lambda: (lambda rows: rows if {labels[1], labels[2], labels[3]} <= {x["tag_text"] for x in rows}
                           else None)(r.readings(dev)), 20, "the journaled readings")
    r.wait(lambda: not journal_snapshot(r.sim.stations[0].root, tmp_path / "j")[1], 10, "an empty journal")
    rows = r.readings(dev)
    tags = [x["tag_text"] for x in rows]
    # Bag 1 was cut while journaling: it is there if and only if it made it into the journal.
    first_journaled = cutter.cuts[0][1] >= 1
    assert tags == ([labels[0]] if first_journaled else []) + expected
    check_stored(rows, r.key(dev))
    for f in journaled:  # every frame any journal snapshot held was stored, byte for byte
        assert any(bytes(x["raw"])[:-2] == f for x in rows)
    last_seq, pending = journal_snapshot(r.sim.stations[0].root, tmp_path / "end")
    assert (last_seq, pending) == (len(rows), [])
    assert r.sim.stations[0].restarts == 3
    c = bridge.counters()
    assert c["conflicts"] == 0 and c["chain_breaks"] == 0 and c["bad_mac"] == 0
