"""The bridge end to end over in-memory links, with real signed frames and a real SQLite file:
handshake, ACK after commit, duplicates, conflicts, forged and altered frames, unknown devices,
stale time, resync after garbage, time assignment, chain breaks, window, storage failure."""

from __future__ import annotations

import sqlite3
import time

import pytest
from bridge_fakestation import RS, FakeStation, StationEnd, label

from tagweigh import config as C
from tagweigh.bridge import Bridge
from tagweigh.keys import KeyRegistry
from tagweigh.link import MemoryLink
from tagweigh.queue import Queue
from twproto import frame as F
from twproto import messages as M
from twproto import reasons as R
from twproto.crc import crc16

PROVISIONED = 1767225600  # 2026-01-01, the example rule set's not_before


@pytest.fixture
def env(tmp_path):
    cfg = C.from_dict({"bridge": {"metrics_listen": "", "status_interval_s": 3600, "window": 8}}, None, tmp_path)
    keys = KeyRegistry(cfg.keys_path)
    bridges = []

    class Env:
        def __init__(self):
            self.cfg, self.keys, self.tmp = cfg, keys, tmp_path

        def bridge(self, **kw) -> Bridge:
            b = Bridge(cfg, keys=keys, ruleset=kw.pop("ruleset", RS), **kw).start()
            bridges.append(b)
            return b

        def station(self, bridge: Bridge, device_id: int = 17, **kw) -> StationEnd:
            key = keys.get(device_id) or keys.add(device_id, provisioned_at=PROVISIONED)
            bl, sl = MemoryLink.pair(f"dev{device_id}")
            bridge.attach(bl)
            return StationEnd(sl, FakeStation(device_id, key, **kw))

        def rows(self, sql: str, params=()):
            db = sqlite3.connect(cfg.queue_path)
            try:
                return db.execute(sql, params).fetchall()
            finally:
                db.close()

    yield Env()
    for b in bridges:
        b.stop()


def _acked(end: StationEnd, n: int):
    end.collect(lambda fr: len(end.acked()) >= n)
    return end.acked()


def test_handshake_then_readings_acked_after_commit_with_bridge_verdicts(env):
    b = env.bridge()
    end = env.station(b)
    w = end.welcome()
    assert isinstance(w, M.Welcome)  # its MAC verified with the session nonce (FakeStation.parse)
    assert w.flags & M.WF_TIME_VALID and w.ruleset_id == RS.id and w.window == 8
    assert abs(w.time - time.time()) < 5
    end.send(end.st.reading())
    end.send(end.st.reading(net_g=999_999))  # outside the rule set's weight limits
    acks = _acked(end, 2)
    assert acks == {1: 0, 2: R.pack_verdict(R.REJECT, R.WEIGHT_RANGE)}
    rows = env.rows("SELECT seq, verdict, reason, rule_id, raw, chain_ok, time_estimated FROM readings ORDER BY seq")
    assert [r[:4] for r in rows] == [(1, "accept", "NONE", None), (2, "reject", "WEIGHT-RANGE", "weight-limits")]
    assert all(r[5] == 1 and r[6] == 0 for r in rows)  # chained, station time
    assert rows[1][4][:3] == bytes([F.SOF, rows[1][4][1], F.T_READING])  # the raw frame is kept


def test_retransmitted_reading_is_acked_again_with_stored_verdict_and_stored_once(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    frame = end.st.reading(net_g=999_999)
    end.send(frame)
    _acked(end, 1)
    end.frames.clear()
    end.send(frame)  # same seq, same bytes (a lost ACK, or a replay of a recorded frame)
    assert _acked(end, 1) == {1: R.pack_verdict(R.REJECT, R.WEIGHT_RANGE)}
    assert env.rows("SELECT COUNT(*) FROM readings") == [(1,)]
    assert b.counters()["duplicates"] == 1


def test_replayed_frame_in_a_later_session_is_not_stored_twice(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    recorded = end.st.reading()
    end.send(recorded)
    _acked(end, 1)
    end.frames.clear()
    end.st.nonce = b"\x01" * 8
    end.welcome()  # a new session
    end.send(recorded)
    assert _acked(end, 1) == {1: 0}
    assert env.rows("SELECT COUNT(*) FROM readings") == [(1,)]


def test_same_seq_different_bytes_is_refused_as_conflict_with_tamper_alert(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    end.send(end.st.reading(net_g=30000))
    _acked(end, 1)
    end.send(end.st.reading(seq=1, prev=0, net_g=31000))  # validly signed, same seq, other weight
    end.collect(lambda fr: end.nacks())
    nack = end.nacks()[0]
    assert (nack.ref_type, nack.ref_seq, nack.reason) == (F.T_READING, 1, M.NACK_CONFLICT)
    assert env.rows("SELECT net_g FROM readings") == [(30000,)]  # never overwritten
    alerts = env.rows("SELECT kind, device_id, seq, raw FROM alerts")
    assert [(a[0], a[1], a[2]) for a in alerts] == [("tamper", "17", 1)]
    assert alerts[0][3] is not None  # the other version is kept as evidence


def test_forged_mac_is_refused_and_recorded_nothing_stored(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    good = end.st
    forger = FakeStation(17, b"\x00" * 32, nonce=good.nonce)
    forger.seq, forger.prev = good.seq, good.prev
    end.send(forger.reading())
    end.collect(lambda fr: end.nacks())
    nack = end.nacks()[0]
    assert (nack.ref_type, nack.ref_seq, nack.reason) == (F.T_READING, 1, M.NACK_BAD_MAC)
    time.sleep(0.05)
    assert env.rows("SELECT COUNT(*) FROM readings") == [(0,)]
    assert b.counters()["bad_mac"] == 1
    end.collect(lambda fr: env.rows("SELECT kind FROM alerts") == [("bad_mac",)])


def _altered(frame: bytes, offset: int, value: int) -> bytes:
    """Change one body byte and fix the CRC (what an attacker on the wire can do; the MAC he
    cannot)."""
    f = bytearray(frame)
    f[offset] = value
    c = crc16(f, 0, len(f) - 2)
    f[-2], f[-1] = c & 0xFF, c >> 8
    return bytes(f)


def test_altered_weight_fails_the_mac(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    frame = end.st.reading(net_g=30000)
    net_lo = F.HEADER + 11  # seq 4, flags, step_kind, verdict, time 4 -> net u16 at body offset 11
    assert int.from_bytes(frame[net_lo : net_lo + 2], "little") == 30000
    end.send(_altered(frame, net_lo, frame[net_lo] ^ 0x10))
    end.collect(lambda fr: len(end.nacks()) >= 2)
    # SPEC 10: refused, then the session is ended so the station resends the genuine reading
    # at once in a new session (in this one it stops sending that seq).
    assert [(n.ref_type, n.ref_seq, n.reason) for n in end.nacks()] == [
        (F.T_READING, 1, M.NACK_BAD_MAC), (F.T_READING, 1, M.NACK_NO_SESSION)]
    assert b.sessions()[0].state == "await_hello"
    # the station's tamper EVENT for that NACK still counts (station frames carry no nonce)
    end.send(end.st._frame(M.Event(code=M.EV_TAMPER, severity=M.SEV_ERROR, detail=1, uptime_ms=6000)))
    end.collect(lambda fr: ("tamper",) in env.rows("SELECT kind FROM alerts"))
    assert len(end.nacks()) == 2  # ...and is not answered NACK no_session
    end.st.nonce = b"\x02" * 8
    end.st.backlog = 1
    assert isinstance(end.welcome(), M.Welcome)
    end.send(frame)  # the genuine frame goes through in the new session
    assert _acked(end, 1) == {1: 0}
    assert env.rows("SELECT net_g, chain_ok FROM readings") == [(30000, 1)]
    assert b.counters()["sessions_ended"] == 1


def test_a_reading_whose_mac_keeps_failing_ends_the_session_a_bounded_number_of_times(env):
    from tagweigh.session import BAD_MAC_RESTARTS

    b = env.bridge()
    end = env.station(b)
    end.welcome()
    bad = _altered(end.st.reading(), F.HEADER + 11, 0x55)  # seq 1, altered on the line every time
    good2 = end.st.reading()
    end.st.backlog = 2  # the journal holds seq 1 and 2
    for k in range(BAD_MAC_RESTARTS):
        end.send(bad)
        end.collect(lambda fr: any(n.reason == M.NACK_NO_SESSION for n in end.nacks()))
        end.st.nonce = bytes([k + 3]) * 8
        end.welcome()
    end.send(bad)  # once more: refused, but the session stays up...
    end.send(good2)  # ...and seq 2 is not held back for seq 1, which the station now skips
    assert _acked(end, 1) == {2: 0}  # nothing stored before it: no SEQ-GAP to flag
    assert [n.reason for n in end.nacks()] == [M.NACK_BAD_MAC]
    assert b.sessions()[0].state == "online" and b.counters()["sessions_ended"] == BAD_MAC_RESTARTS
    assert env.rows("SELECT seq, chain_ok FROM readings") == [(2, None)]


def test_a_reading_that_overtook_its_predecessor_waits_for_it(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    r1, r2, r3 = (end.st.reading() for _ in range(3))
    end.send(r2)  # r1 lost on the line: r2 overtook it
    end.collect(lambda fr: end.nacks())
    assert [(n.ref_type, n.ref_seq, n.reason) for n in end.nacks()] == [(F.T_READING, 2, M.NACK_OUT_OF_ORDER)]
    assert env.rows("SELECT COUNT(*) FROM readings") == [(0,)]  # nothing stored ahead of seq 1
    end.send(r1)  # the station's resend, oldest first
    end.send(r2)
    end.send(r3)
    assert _acked(end, 3) == {1: 0, 2: 0, 3: 0}  # no SEQ-GAP: nothing was missing
    assert env.rows("SELECT seq, chain_ok, reason FROM readings ORDER BY id") == [
        (1, 1, "NONE"), (2, 1, "NONE"), (3, 1, "NONE")]  # stored in order, every link checked
    assert b.counters()["out_of_order"] == 1


def test_unknown_device_is_refused_with_a_clear_record(env, caplog):
    b = env.bridge()
    bl, sl = MemoryLink.pair("stranger")
    b.attach(bl)
    end = StationEnd(sl, FakeStation(999, b"\x07" * 32))
    with caplog.at_level("WARNING", logger="tagweigh"):
        n = end.welcome()
    assert isinstance(n, M.Nack) and n.reason == M.NACK_UNKNOWN_DEVICE and n.ref_seq == 999
    end.collect(lambda fr: env.rows("SELECT device_id, attempts FROM unknown_devices") == [("999", 1)])
    assert any("tagweigh keys add 999" in r.getMessage() for r in caplog.records)
    end.collect(lambda fr: env.rows("SELECT kind, device_id FROM alerts") == [("unknown_device", "999")])
    end.send(end.st.reading())  # readings without a session are not silently dropped either
    end.collect(lambda fr: any(m.reason == M.NACK_NO_SESSION for m in end.nacks()))


def test_stale_and_future_times_are_rejected_with_their_reasons(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    end.send(end.st.reading(t=PROVISIONED - 86400))  # a day before the station was provisioned
    end.send(end.st.reading(t=int(time.time()) + 3600))  # an hour ahead of the bridge
    acks = _acked(end, 2)
    assert acks[1] == R.pack_verdict(R.REJECT, R.TIME_BEFORE_PROVISIONING)
    assert acks[2] == R.pack_verdict(R.REJECT, R.TIME_FUTURE)
    assert env.rows("SELECT reason FROM readings ORDER BY seq") == [("TIME-BEFORE-PROVISIONING",), ("TIME-FUTURE",)]


def test_garbage_on_the_line_resyncs_without_losing_frames(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    r1, r2, r3 = (end.st.reading() for _ in range(3))
    torn = r2[:20]  # a frame cut short by a reset
    noise = bytes([0xA1, 0xE8, 0x10, 0x00, 0xA1, 0x05, 0xFF]) + bytes(range(256))
    flipped = _altered(r3, 9, r3[9] ^ 0xFF)[:-2] + b"\x00\x00"  # bad CRC
    end.send(noise + r1 + torn + flipped + r2 + noise[:3])
    assert _acked(end, 2) == {1: 0, 2: 0}
    end.send(r3)  # after an idle gap the half candidate at the end is abandoned
    assert _acked(end, 3)[3] == 0
    snap = b.sessions()[0].snapshot()
    assert snap["decoder_errors"] > 0 and snap["dropped_bytes"] > 0


def test_unsynced_reading_gets_time_from_the_boot_table_marked_estimated(env):
    b = env.bridge()
    end = env.station(b, uptime_ms=60_000)
    hello_at = time.time()
    end.welcome()
    end.send(end.st.reading(t=None, uptime_ms=30_000))  # taken 30 s before the HELLO
    end.send(end.st.reading(t=None, uptime_ms=10_000))
    _acked(end, 2)
    rows = env.rows("SELECT seq, time, time_estimated, boot, uptime_ms, reason FROM readings ORDER BY seq")
    (s1, t1, est1, boot1, up1, reason1), _ = rows
    assert est1 == 1 and boot1 == 1 and up1 == 30_000
    assert abs(t1 - (hello_at - 30.0)) < 2.0
    assert reason1 == "TIME-NOT-SYNCED"  # the shared rule still sees "not synced" (warn)


def test_reading_from_an_unknown_boot_keeps_time_unknown(env):
    b = env.bridge()
    end = env.station(b, boot=7)
    end.welcome()
    end.st.boot = 6  # journalled during an earlier run that never met this bridge
    end.send(end.st.reading(t=None))
    _acked(end, 1)
    assert env.rows("SELECT time, time_estimated, boot FROM readings") == [(None, 2, 6)]


def test_chain_break_is_recorded_but_reading_stored_and_acked(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    end.send(end.st.reading())
    end.send(end.st.reading(prev=0xDEADBEEF))  # seq 2 does not link to seq 1
    assert set(_acked(end, 2)) == {1, 2}
    five = end.st.reading(seq=5)
    end.st.backlog = 1  # seq 3, 4 are gone: the journal holds only seq 5 (a real gap)
    end.st.nonce = b"\x03" * 8
    end.st.uptime_ms += 1000
    end.welcome()
    end.send(five)
    assert set(_acked(end, 1)) == {5}  # not held back: the HELLO says 3 and 4 will not come
    assert env.rows("SELECT seq, chain_ok FROM readings ORDER BY seq") == [(1, 1), (2, 0), (5, None)]
    assert env.rows("SELECT kind, seq FROM alerts") == [("chain_break", 2)]
    assert env.rows("SELECT reason FROM readings WHERE seq=5") == [("SEQ-GAP",)]


def test_hello_with_last_seq_below_stored_gets_advisory_chain_break_then_welcome(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    for _ in range(3):
        end.send(end.st.reading())
    _acked(end, 3)
    end.frames.clear()
    end.st.seq = 1  # journal rolled back
    end.send(end.st.hello())
    end.collect(lambda fr: any(t == F.T_WELCOME for t, _ in fr))
    assert [m.reason for m in end.nacks()] == [M.NACK_CHAIN_BREAK]
    end.collect(lambda fr: ("seq_regression",) in env.rows("SELECT kind FROM alerts"))


def test_frames_before_hello_get_no_session(env):
    b = env.bridge()
    end = env.station(b)
    end.send(end.st.reading())
    end.collect(lambda fr: end.nacks())
    n = end.nacks()[0]
    assert (n.ref_type, n.ref_seq, n.reason) == (F.T_READING, 1, M.NACK_NO_SESSION)


def test_more_than_window_in_flight_is_refused(env):
    b = env.bridge()
    b.committer.window_s = 0.2  # hold commits back so the window fills
    end = env.station(b)
    end.welcome()
    frames = [end.st.reading() for _ in range(12)]
    end.send(b"".join(frames))  # window is 8
    end.collect(lambda fr: len(end.acked()) + len(end.nacks()) >= 12)
    assert sorted(end.acked()) == list(range(1, 9))
    assert [(n.ref_seq, n.reason) for n in end.nacks()] == [(s, M.NACK_WINDOW_EXCEEDED) for s in range(9, 13)]


def test_reflected_bridge_frame_is_dropped_silently(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    buf = bytearray(F.MAX_FRAME)
    n = M.encode_message(buf, M.Ack([(1, 0)]), end.st.mac, 0x42, end.st.nonce)
    end.send(bytes(buf[:n]) + end.st.reading())
    assert _acked(end, 1) == {1: 0}
    assert end.nacks() == [] and b.counters()["wrong_direction"] == 1


def test_new_hello_on_another_link_replaces_the_session(env):
    b = env.bridge()
    a = env.station(b)
    a.welcome()
    bl, sl = MemoryLink.pair("dev17-second")
    b.attach(bl)
    second = StationEnd(sl, FakeStation(17, env.keys.get(17)))
    second.welcome()
    deadline = time.monotonic() + 5
    while [s.state for s in b.sessions() if s.port == a.link.description.replace("station", "bridge")] != ["await_hello"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_storage_failure_nacks_and_recovers_without_acking_lost_data(env):
    b = env.bridge()
    b.committer._retry.initial = b.committer._retry._next = 0.05
    end = env.station(b)
    end.welcome()
    end.send(end.st.reading())
    _acked(end, 1)
    # Fill the "disk": SQLite refuses to grow the file past its current number of pages.
    db = b.ingestor.queue._db
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    frames: dict[int, bytes] = {}
    for _ in range(100):  # until the free space in the last pages is used up
        batch = [end.st.reading(tag=b"X" * 64, kind=3) for _ in range(4)]
        frames.update((int.from_bytes(f[3:7], "little"), f) for f in batch)
        end.send(b"".join(batch))
        end.collect(lambda fr: len(end.acked()) + len(end.nacks()) >= len(frames))
        if end.nacks():
            break
    nacked = {n.ref_seq for n in end.nacks()}
    assert nacked and all(n.reason == M.NACK_STORAGE_UNAVAILABLE for n in end.nacks())
    assert not b.committer.storage_ok and b.committer.error.kind == "full"
    assert "tagweigh_storage_ok 0" in b.metrics_text()
    stored = {s for (s,) in env.rows("SELECT seq FROM readings")}
    assert set(end.acked()) <= stored and not (nacked & stored)  # ACK only what is on disk
    db.execute("PRAGMA max_page_count = 1073741823")  # space freed
    time.sleep(0.1)
    end.frames.clear()
    end.send(b"".join(frames[s] for s in sorted(nacked)))  # the station retries from its journal
    end.collect(lambda fr: set(end.acked()) >= nacked)
    assert b.committer.storage_ok
    assert {s for (s,) in env.rows("SELECT seq FROM readings")} == set(range(1, max(frames) + 1))


def test_ruleset_is_pushed_to_a_station_with_an_older_one(env):
    b = env.bridge()
    end = env.station(b, ruleset_id=0x11111111)
    w = end.welcome()
    assert w.flags & M.WF_RULESET_UPDATE
    received = bytearray()
    buf = bytearray(F.MAX_FRAME)

    def answered(frames):
        for t, msg in frames:
            if t == F.T_COMMAND and getattr(msg, "_answered", False) is False:
                msg._answered = True
                value = 0
                if msg.op == M.OP_RULESET_CHUNK:
                    assert msg.args["offset"] == len(received)
                    received.extend(msg.args["data"])
                    value = len(received)
                n = M.encode_message(buf, M.Result(cmd_id=msg.cmd_id, status=M.RS_OK, value=value, detail=b""),
                                     end.st.mac)
                end.send(bytes(buf[:n]))
                if msg.op == M.OP_RULESET_END:
                    return True
        return False

    end.collect(answered)
    assert bytes(received) == RS.canonical().encode()
    ops = [m.op for t, m in end.frames if t == F.T_COMMAND]
    assert ops[0] == M.OP_RULESET_BEGIN and ops[-1] == M.OP_RULESET_END
    ids = [m.cmd_id for t, m in end.frames if t == F.T_COMMAND]
    assert ids == sorted(ids) and ids[0] == 1


def test_metrics_text_counts_what_happened(env):
    b = env.bridge()
    end = env.station(b)
    end.welcome()
    end.send(end.st.reading())
    end.send(end.st.reading(net_g=999_999))
    _acked(end, 2)
    text = b.metrics_text()
    assert 'tagweigh_readings_stored_total{verdict="accept"} 1' in text
    assert 'tagweigh_readings_stored_total{verdict="reject"} 1' in text
    assert 'tagweigh_sessions{state="online"} 1' in text
    assert "tagweigh_storage_ok 1" in text
