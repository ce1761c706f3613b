"""Hostile and broken input on a live line, each refused with its reason while the real station
keeps working: a replayed reading (acknowledged again, stored once), a forged MAC, a weight
altered in flight (MAC fails; the bridge ends the session and the genuine reading arrives at
once), a forgery signed with the
device key (same seq, other bytes: conflict, tamper alert, stored reading untouched), an
unknown device (refused with a clear message, recorded, accepted once registered), and station
clocks set wrong (readings in the future / before provisioning: rejected with their reason)."""

from __future__ import annotations

import logging
import os
import time

from e2e_harness import check_stored, journal_snapshot, recrc, resign

from tagweigh.keys import KeyRegistry
from tagweigh.sim import scenarios as S
from tagweigh.sim.supervisor import StationSpec
from twproto import frame as F
from twproto import messages as M


def _nacks(relay, since: float) -> list[tuple[int, int, int]]:
    """(ref_type, ref_seq, reason) of NACKs the bridge sent since `since`."""
    out = []
    for t, fr in list(relay.replies):
        if t >= since and fr[2] == F.T_NACK:
            _, n = M.decode_frame(memoryview(fr))
            out.append((n.ref_type, n.ref_seq, n.reason))
    return out


def _alter(raw: bytes, **changes) -> bytes:
    """The frame with fields changed but the original MAC kept (a forger without the key), CRC
    made right so only the MAC can tell."""
    _, r = M.decode_frame(memoryview(raw))
    for k, v in changes.items():
        setattr(r, k, v)
    buf = bytearray(raw)
    n = M.pack_reading(buf, F.BODY, r)
    assert n == raw[1]
    return recrc(buf)


def test_replayed_forged_and_altered_readings_are_refused_with_their_reason(rig):
    dev = 1006
    r = rig([StationSpec("st", dev, seed=17)], relay=True)
    relay = r.relays[0]
    key = r.key(dev)
    bridge = r.start_bridge()
    labels = [S.label(10600 + i) for i in range(3)]
    masses = [30000, 31000, 32000]
    altered: list[bytes] = []
    altered_at: list[float] = []

    def on_frame(raw: bytes) -> list[bytes]:
        # Bag 2's reading, the first time it is sent: 5 kg more, original MAC, right CRC.
        if raw[2] == F.T_READING and int.from_bytes(raw[3:7], "little") == 2 and not altered:
            _, rd = M.decode_frame(memoryview(raw))
            altered.append(_alter(raw, net_g=rd.net_g + 5000))
            altered_at.append(time.time())
            return [altered[0]]
        return [raw]

    relay.on_frame = on_frame
    r.weigh(0, labels[0], masses[0])
    r.weigh(0, labels[1], masses[1])
    # Refused (NACK bad_mac), and the bridge ends the session (NACK no_session): the station
    # says HELLO again and sends the genuine reading at once, no cable reseat, no 30 s wait.
    rows = r.wait_readings(dev, 2, 5)
    assert altered, "the reading was never altered"
    assert rows[1]["received_at"] - altered_at[0] < 3.0
    r.weigh(0, labels[2], masses[2])
    rows = r.wait_readings(dev, 3, 20)
    alerts = r.alerts()
    bad = [a for a in alerts if a["kind"] == "bad_mac"]
    assert len(bad) == 1 and bad[0]["seq"] == 2 and bytes(bad[0]["raw"]) == altered[0]
    assert any(a["kind"] == "tamper" and a["detail"].get("event") == "tamper" for a in alerts)  # station's EVENT
    # The genuine reading arrived: its weight, not the altered one, and the chain is whole.
    assert [x["tag_text"] for x in rows] == labels
    check_stored(rows, key)
    for row, mass in zip(rows, masses):
        assert abs(row["net_g"] - mass) <= 20 and row["verdict"] == "accept"

    # Replay: the very bytes of reading 1 again -> acknowledged again with the stored verdict.
    before = bridge.counters()
    since = time.monotonic()
    first = bytes(rows[0]["raw"])
    relay.inject(first)
    r.wait(lambda: bridge.counters()["duplicates"] > before["duplicates"], 5, "the replay answered")
    r.wait(lambda: 1 in relay.acked(since), 5, "an ACK for the replayed seq 1")

    # Forged MAC (a key that is not the device's): NACK bad_mac, alert, nothing stored.
    since = time.monotonic()
    forged = resign(first, os.urandom(32), seq=1000, net_g=12340)
    ended = bridge.counters()["sessions_ended"]
    relay.inject(forged)
    r.wait(lambda: (F.T_READING, 1000, M.NACK_BAD_MAC) in _nacks(relay, since), 5, "NACK bad_mac for seq 1000")
    r.wait(lambda: any(a["kind"] == "bad_mac" and a["seq"] == 1000 for a in r.alerts()), 5, "bad_mac alert")
    # that too ended the session (the bridge cannot tell a forgery from an alteration): the
    # station is back online at once
    r.wait(lambda: bridge.counters()["sessions_ended"] > ended and all(s.state == "online" for s in bridge.sessions()),
           5, "the station online again")

    # Signed with the device key (a stolen key) but seq 2 already holds other bytes: conflict.
    since = time.monotonic()
    second = bytes(rows[1]["raw"])
    conflicting = resign(second, key, net_g=rows[1]["net_g"] + 5000)
    relay.inject(conflicting)
    r.wait(lambda: (F.T_READING, 2, M.NACK_CONFLICT) in _nacks(relay, since), 5, "NACK conflict for seq 2")
    tamper = [a for a in r.alerts() if a["kind"] == "tamper" and a["seq"] == 2 and a["raw"] is not None
              and bytes(a["raw"]) == conflicting]
    assert len(tamper) == 1 and tamper[0]["detail"]["stored_frame"] == second.hex()  # both versions kept

    after = r.readings(dev)
    assert [bytes(x["raw"]) for x in after] == [bytes(x["raw"]) for x in rows]  # nothing stored or changed
    c = bridge.counters()
    assert c["readings_stored"] == 3 and c["conflicts"] == 1 and c["bad_mac"] >= 2


def test_unknown_device_is_refused_with_a_clear_message_recorded_then_accepted_once_registered(rig, tmp_path,
                                                                                               caplog):
    known, stranger = 1007, 7007
    r = rig([StationSpec("known", known, seed=19), StationSpec("stranger", stranger, seed=23)])
    reg = KeyRegistry(r.keys_path)
    key = reg.get(stranger)
    reg.remove(stranger)  # the stranger was flashed with a key this depot never registered
    caplog.set_level(logging.WARNING, logger="tagweigh.session")
    bridge = r.start_bridge()
    labels = [S.label(10700), S.label(10701)]
    r.weigh(0, labels[0], 26000)
    r.weigh(1, labels[1], 27000)
    r.wait_readings(known, 1, 10)
    unknown = r.wait(lambda: [u for u in r.unknown_devices() if u["device_id"] == str(stranger)
                              and u["attempts"] >= 2], 10, "the stranger's HELLOs recorded")
    assert unknown[0]["port"] == r.sim.stations[1].port
    assert [a["kind"] for a in r.alerts() if a["device_id"] == str(stranger)] == ["unknown_device"]  # once
    msgs = [rec.getMessage() for rec in caplog.records if getattr(rec, "event", None) == "unknown_device"]
    assert len(msgs) == 1 and "not in the key registry" in msgs[0] and f"tagweigh keys add {stranger}" in msgs[0]
    assert r.readings(stranger) == []
    _, pending = journal_snapshot(r.sim.stations[1].root, tmp_path / "j")
    assert len(pending) == 1  # the station keeps its reading while it is refused
    assert bridge.counters()["unknown_device"] >= 2

    reg.add(stranger, key, name="stranger")  # `tagweigh keys add`: the running bridge picks it up
    rows = r.wait_readings(stranger, 1, 15)
    check_stored(rows, key)
    assert rows[0]["tag_text"] == labels[1]
    assert rows[0]["verdict"] == "warn" and rows[0]["reason"] == "TIME-NOT-SYNCED"  # taken before any WELCOME
    assert [x["tag_text"] for x in r.readings(known)] == [labels[0]]


def test_readings_with_a_stale_station_clock_are_rejected_with_their_reason(rig):
    # A station's clock set from a bad source (a bridge two days ahead, then one two days
    # behind), then served by a bridge whose clock is right but not trusted to set stations
    # (so it does not correct them): its readings carry the wrong time, signed.
    dev = 1008
    r = rig([StationSpec("st", dev, seed=29)])
    st = r.sim.stations[0]
    day = 86400.0

    def synced_by(offset_s: float) -> None:
        r.start_bridge(clock=lambda: time.time() + offset_s)
        st.act(S.PLACE, {"mass_g": 100, "swing_g": 0})  # the display changes: the station talks, HELLO
        r.wait_online(dev)  # its STATUS answered the wrong bridge's WELCOME: it took the time
        st.act(S.REMOVE)
        r.stop_bridge()

    def weigh(tag: str, mass: int) -> dict:
        n = len(r.readings(dev))
        r.start_bridge(clock_trusted=False)  # right clock, but not trusted to set stations
        r.weigh(0, tag, mass)
        row = r.wait_readings(dev, n + 1, 20)[n]
        r.stop_bridge()
        return row

    synced_by(+2 * day)
    ahead = weigh(S.label(10800), 33000)
    synced_by(-2 * day)
    behind = weigh(S.label(10801), 34000)

    assert ahead["verdict"] == "reject" and ahead["reason"] == "TIME-FUTURE"
    assert ahead["time"] > time.time() + day and ahead["time_estimated"] == 0
    assert behind["verdict"] == "reject" and behind["reason"] == "TIME-BEFORE-PROVISIONING"
    assert behind["time"] < time.time() - day and behind["time_estimated"] == 0
    for row in (ahead, behind):
        assert row["station_verdict"] == "accept"  # the station cannot know its clock is wrong
    check_stored(r.readings(dev), r.key(dev))
