"""The cable between a station and the bridge: pulled out (the bridge's port disappears) while a
reading is on the wire and while the station weighs, then plugged back (a new pty behind the same
name, like /dev/serial/by-id/...): the bridge reopens it and the readings resume, in order. And a
noisy line (flipped bits, bursts of garbage both ways): the bridge resynchronises, nothing
crashes, damaged frames are resent by the station and every reading arrives once."""

from __future__ import annotations

import random
import time

from e2e_harness import check_stored, journal_snapshot

from tagweigh.sim import scenarios as S
from tagweigh.sim.supervisor import StationSpec
from twproto import frame as F
from twproto import messages as M


def test_port_unplugged_and_replugged_resumes(rig, tmp_path):
    dev = 1004
    r = rig([StationSpec("st", dev, seed=11)], relay=True)
    relay = r.relays[0]
    bridge = r.start_bridge()
    labels = [S.label(10500 + i) for i in range(3)]
    events: list[tuple[str, float]] = []
    unplugged_seq: list[int] = []

    def on_frame(raw: bytes) -> list[bytes]:
        # Bag 2's reading is on the wire when the cable comes out: it never reaches the bridge.
        if raw[2] == F.T_READING and int.from_bytes(raw[3:7], "little") == 2 and not unplugged_seq:
            unplugged_seq.append(2)
            relay.unplug()
            events.append(("unplugged", time.monotonic()))
            return []
        return [raw]

    relay.on_frame = on_frame
    r.weigh(0, labels[0], 28000)
    r.wait_readings(dev, 1, 15)
    r.weigh(0, labels[1], 29000)  # its reading pulls the cable out on its way
    r.wait(lambda: not relay.plugged, 10, "the cable pulled")
    r.weigh(0, labels[2], 30000)  # weighed while the cable is out: it waits in the journal
    assert len(r.readings(dev)) == 1
    relay.plug()
    events.append(("replugged", time.monotonic()))
    rows = r.wait_readings(dev, 3, 25)
    assert [e for e, _ in events] == ["unplugged", "replugged"]
    assert [x["tag_text"] for x in rows] == labels
    check_stored(rows, r.key(dev))
    replugged_at = time.time() - (time.monotonic() - events[1][1])
    assert rows[1]["received_at"] >= replugged_at - 0.5  # resent after the replug, not before
    assert rows[2]["received_at"] >= replugged_at - 0.5
    r.wait(lambda: not journal_snapshot(r.sim.stations[0].root, tmp_path / "j")[1], 10, "an empty journal")
    assert bridge.counters()["conflicts"] == 0


def test_corrupted_bytes_on_the_line_resync_without_crash(rig, tmp_path):
    dev = 1005
    r = rig([StationSpec("st", dev, seed=13)], relay=True)
    relay = r.relays[0]
    rng = random.Random(2024)
    damage = {"flipped": 0, "garbage": 0, "replies_flipped": 0, "ack_hit": 0}

    def noisy(data: bytes, p_flip: float, key: str) -> bytes:
        out = bytearray(data)
        for i in range(len(out)):
            if rng.random() < p_flip:
                out[i] ^= 1 << rng.randrange(8)
                damage[key] += 1
        return bytes(out)

    def on_bytes(data: bytes) -> bytes:
        out = noisy(data, 1 / 150, "flipped")
        if rng.random() < 0.1:  # a burst of line noise, now and then with SOFs and big LENs in it
            burst = bytes(rng.choice((0xA1, 0xE8, 0x00, rng.randrange(256))) for _ in range(rng.randrange(1, 60)))
            damage["garbage"] += len(burst)
            cut = rng.randrange(len(out) + 1)
            out = out[:cut] + burst + out[cut:]
        return bytes(out)

    def on_reply(data: bytes) -> bytes:
        out = bytearray(noisy(data, 1 / 150, "replies_flipped"))
        at = out.find(bytes((F.SOF,)))
        if not damage["ack_hit"] and at >= 0 and len(out) > at + 6 and out[at + 2] == F.T_ACK:
            out[at + 5] ^= 0x10  # the first ACK always arrives damaged: the station must resend
            damage["ack_hit"] = 1
        return bytes(out)

    relay.on_bytes = on_bytes
    relay.on_reply = on_reply
    bridge = r.start_bridge()
    r.wait_online(dev, 30)  # through the noise: then every reading is taken with the time set
    labels = [S.label(20100 + i) for i in range(3)]
    for i, tag in enumerate(labels):
        r.weigh(0, tag, 20000 + 1000 * i)
    rows = r.wait_readings(dev, 3, 40)
    r.wait(lambda: not journal_snapshot(r.sim.stations[0].root, tmp_path / "j")[1], 30, "an empty journal")
    rows = r.readings(dev)
    # The station has several readings in flight, so one lost on the line can be overtaken by
    # the next: the bridge holds that one back (NACK out_of_order) until the lost one is resent,
    # so readings are stored in seq order, every chain link is checked, and nothing is taken for
    # a gap (SPEC 10).
    check_stored(rows, r.key(dev))
    assert [x["tag_text"] for x in rows] == labels
    for row, mass in zip(rows, (20000, 21000, 22000)):
        assert abs(row["net_g"] - mass) <= 20
        assert row["verdict"] == "accept" and row["reason"] == "NONE", row["reason"]
    c = bridge.counters()
    assert damage["flipped"] > 0 and damage["garbage"] > 0 and damage["ack_hit"]
    assert c["duplicates"] >= 1  # the reading whose ACK was damaged came again: answered, not stored
    assert c["decoder_errors"] > 0  # the damage was seen and skipped...
    assert c["conflicts"] == 0 and c["readings_stored"] == 3  # ...and never taken for a reading
    assert r.sim.stations[0].restarts == 0 and r.sim.stations[0].powered  # the station never crashed
    assert bridge.committer.alive and all(t.is_alive() for t in bridge._workers.values())


def test_a_reading_overtaken_on_the_line_is_held_back_then_stored_in_order(rig):
    # Reading 1 is lost on the line (every try) until reading 2 has gone by: 2 reaches the bridge
    # first. The bridge holds it back (NACK out_of_order) instead of storing it with a gap; the
    # station resends both, oldest first, at its resend deadline: stored in order, chain checked,
    # no SEQ-GAP.
    dev = 1010
    r = rig([StationSpec("st", dev, seed=31)], relay=True)
    relay = r.relays[0]
    bridge = r.start_bridge()
    passed: list[int] = []
    lost: list[int] = []

    def on_frame(raw: bytes) -> list[bytes]:
        if raw[2] == F.T_READING:
            seq = int.from_bytes(raw[3:7], "little")
            if seq == 1 and 2 not in passed:
                lost.append(seq)
                return []
            passed.append(seq)
        return [raw]

    relay.on_frame = on_frame
    labels = [S.label(20200), S.label(20201)]
    r.weigh(0, labels[0], 25000)
    r.weigh(0, labels[1], 26000)
    rows = r.wait_readings(dev, 2, 20)
    assert lost and passed[0] == 2  # it did overtake
    nacks = [M.decode_frame(memoryview(fr))[1] for _t, fr in list(relay.replies) if fr[2] == F.T_NACK]
    assert (F.T_READING, 2, M.NACK_OUT_OF_ORDER) in [(n.ref_type, n.ref_seq, n.reason) for n in nacks]
    check_stored(rows, r.key(dev))
    assert [x["tag_text"] for x in rows] == labels
    assert all(x["verdict"] == "accept" and x["reason"] == "NONE" for x in rows), [x["reason"] for x in rows]
    assert bridge.counters()["readings_stored"] == 2
