# Station state machine: plain-assert scenarios with in-memory fakes at the hardware edge (an
# HX711 that answers from a load, a tag reader fed by the test, a memory byte stream and a test
# bridge that speaks the real protocol). Runs unchanged on CPython and in the MicroPython VM
# (collected twice by tests/conftest.py). The real twstation.scale engine does the weighing.
import hashlib
import json
import os

from twproto import frame as F
from twproto import messages as M
from twproto.mac import DIR_BRIDGE, Mac
from twstation import config as config_mod
from twstation.calib import Calibration
from twstation.link import Link
from twstation.scale import Scale
from twstation import station as S

KEY = bytes(range(32))
CPG = 20  # HX711 counts per gram in these fakes
OFFSET = 100000


class ST:
    """The station's states by name: twstation.station keeps their numbers private (inlined
    const) and publishes STATE_NAMES, the table tools read."""


for _i in range(len(S.STATE_NAMES)):
    setattr(ST, S.STATE_NAMES[_i].upper(), _i)
RULESET = {
    "format": "tagweigh-ruleset/1", "version": "7", "site": "T1", "steps": [2],
    "minerals": {"SN": {"en": "Tin", "fr": "Etain"}},
    "rules": [
        {"id": "stable", "kind": "NOT-STABLE", "severity": "reject"},
        {"id": "range", "kind": "OUT-OF-RANGE", "severity": "reject"},
        {"id": "dup", "kind": "DUPLICATE-STEP", "severity": "reject"},
        {"id": "w", "kind": "WEIGHT-RANGE", "severity": "reject",
         "params": {"ranges": [{"min_g": 1000, "max_g": 80000}]}},
    ],
}
_ROOTS = [0]


def _root():
    """A fresh writable directory in either interpreter."""
    _ROOTS[0] += 1
    try:
        import tempfile

        return tempfile.mkdtemp(prefix="vmst")
    except ImportError:
        p = "/vmst" + str(_ROOTS[0])
        try:
            os.mkdir(p)
        except OSError:
            pass
        return p


class Clock:
    def __init__(self):
        self.t = 1000

    def ticks_ms(self):
        return self.t & ((1 << 30) - 1)


class FakeHX:
    """10 conversions per second from `load_g`; `swing` counts of alternating motion."""

    def __init__(self, clock):
        self.clock = clock
        self.load_g = 0
        self.swing = 0
        self.alive = True
        self._next = clock.t
        self._n = 0

    def ready(self):
        return self.alive and self.clock.t - self._next >= 0

    def poll(self):
        return self.read_raw() if self.ready() else None

    def read_raw(self, timeout_ms=0):
        self._next = self.clock.t + 100
        self._n += 1
        w = self.swing if self._n & 1 else -self.swing
        return OFFSET + self.load_g * CPG + w


class FakeReader:
    """MFRC522 stand-in with the driver's poll() protocol: the test queues bytes (a UID, TAG),
    "multiple" (MULTIPLE), "gone" (GONE) or "chip" (ERROR with ERR_CHIP), one per call."""

    def __init__(self):
        self.q = []
        self.uid = b""
        self.ndef_kind = 0
        self.value = None
        self.error = 0

    def poll(self):
        if not self.q:
            return 0
        x = self.q.pop(0)
        if x == "multiple":
            return 2
        if x == "gone":
            return 4
        if x == "chip":
            self.error = 4
            return 3
        self.uid = x
        return 1

    version = 0x92

    def init(self):
        pass


class FakeScanner:
    def __init__(self):
        self.q = []

    def poll(self):
        return self.q.pop(0) if self.q else None


class FakeFeedback:
    """Records patterns by name (the numbers are twstation.feedback's)."""

    NAMES = ("off", "accepted", "rejected", "attention", "not_synced", "idle")

    def __init__(self):
        self.shown = []
        self.bg = None

    def show(self, pattern, now):
        self.shown.append(self.NAMES[pattern])

    def background(self, pattern, now):
        self.bg = self.NAMES[pattern]

    def tick(self, now):
        pass


class MemJournal:
    """In-memory journal with the real journal's interface (frames kept until ACK)."""

    def __init__(self, capacity=16, last_seq=0, chain=0):
        self.capacity = capacity
        self.frames = []
        self._head = (last_seq, chain)
        self.recovered = 0
        self.acked = []

    def head(self):
        return self._head

    @property
    def full(self):
        return len(self.frames) >= self.capacity

    @property
    def nearly_full(self):
        return len(self.frames) * 10 >= self.capacity * 9

    def fill_pct(self):
        return len(self.frames) * 100 // self.capacity

    def backlog(self):
        return len(self.frames)

    def append(self, frame):
        if self.full:
            from twstation.errors import StationError

            raise StationError("journal full")
        f = bytes(frame)
        self.frames.append(f)
        mac = f[3 + f[1] : 7 + f[1]]
        self._head = (M.struct.unpack_from("<I", f, 3)[0], M.chain_link(mac))

    def pending(self, after=0):
        return [f for f in self.frames if _seq(f) > after]

    def frame(self, seq):
        for f in self.frames:
            if _seq(f) == seq:
                return f
        return None

    def ack(self, seq):
        for f in self.frames:
            if M.struct.unpack_from("<I", f, 3)[0] == seq:
                self.frames.remove(f)
                self.acked.append(seq)
                return True
        return False

    def close(self):
        pass


class MemStream:
    def __init__(self):
        self.inbox = bytearray()
        self.outbox = bytearray()

    def any(self):
        return len(self.inbox)

    def readinto(self, buf):
        n = min(len(buf), len(self.inbox))
        for i in range(n):
            buf[i] = self.inbox[i]
        self.inbox = self.inbox[n:]
        return n

    def write(self, b):
        self.outbox.extend(b)
        return len(b)


class Bridge:
    """The test's bridge: decodes the station's frames, answers with real signed frames."""

    def __init__(self, stream, key=KEY):
        self.s = stream
        self.mac = Mac(key)
        self.dec = F.Decoder()
        self.nonce = None
        self.got = []  # (type, message)
        self.cmd_id = 0

    def pump(self):
        data = bytes(self.s.outbox)
        self.s.outbox = bytearray()
        for kind, v in self.dec.decode(data):
            if kind == F.FRAME:
                t, msg = M.decode_frame(v, self.mac, 0x53)
                if t == F.T_HELLO:
                    self.nonce = msg.nonce
                self.got.append((t, msg))

    def send(self, msg, nonce=None, key=None):
        buf = bytearray(F.MAX_FRAME)
        mac = self.mac if key is None else Mac(key)
        n = M.encode_message(buf, msg, mac, DIR_BRIDGE, self.nonce if nonce is None else nonce)
        self.s.inbox.extend(buf[:n])

    def welcome(self, time=0):
        self.send(M.Welcome(time=time, ms=0, ruleset_id=0, flags=M.WF_TIME_VALID if time else 0,
                            window=4))

    def of(self, t):
        return [m for (tt, m) in self.got if tt == t]

    def readings(self):
        """READINGs received, each seq once (resends dropped, as the bridge's queue does)."""
        out = {}
        for m in self.of(F.T_READING):
            out[m.seq] = m
        return [out[k] for k in sorted(out)]

    def command(self, op, cmd_id=None, **args):
        if cmd_id is None:
            self.cmd_id += 1
            cmd_id = self.cmd_id
        self.send(M.Command(cmd_id, op, args))
        return cmd_id


_RNG = [12345]


def _urandom(n):
    """os.urandom where the interpreter has it; the wasm VM has none (test only)."""
    u = getattr(os, "urandom", None)
    if u is not None:
        return u(n)
    out = bytearray(n)
    for i in range(n):
        _RNG[0] = (_RNG[0] * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = _RNG[0] >> 16 & 0xFF
    return bytes(out)


class Rig:
    def __init__(self, capacity=16, journal=None, root=None, ruleset=True, bind_ms=3000):
        from twproto import ruleset as ruleset_mod
        from twstation import assemble

        self.clock = Clock()
        self.hx = FakeHX(self.clock)
        self.reader = FakeReader()
        self.scanner = FakeScanner()
        self.fb = FakeFeedback()
        self.journal = journal if journal is not None else MemJournal(capacity)
        self.stream = MemStream()
        self.root = root if root is not None else _root()
        self.cfg = config_mod.Config({"device_id": 7, "site": "T1", "step": 2, "operator": 201,
                                      "bind_ms": bind_ms})
        self.link = Link(self.stream, Mac(KEY), self.clock, _urandom)
        self.scale = Scale(Calibration(1, OFFSET, 1, CPG, 10, 60000), sps=10)
        dev = assemble.Devices(self.hx, rfid=self.reader, scanner=self.scanner, feedback=self.fb)
        rs = ruleset_mod.load(RULESET) if ruleset else None
        self.st = assemble.station(dev, self.scale, self.journal, self.cfg, self.link,
                                   clock=self.clock, boot=3, root=self.root, ruleset=rs)
        self.bridge = Bridge(self.stream)

    def run(self, ms, step=10):
        end = self.clock.t + ms
        while self.clock.t < end:
            self.clock.t += step
            self.st.step()
            self.bridge.pump()

    def connect(self, time=0):
        self.run(50)
        assert self.bridge.nonce is not None
        self.bridge.welcome(time)
        self.run(50)
        assert self.st.session

    def until(self, state, ms=5000):
        end = self.clock.t + ms
        while self.clock.t < end and self.st.state != state:
            self.clock.t += 10
            self.st.step()
            self.bridge.pump()
        return self.st.state == state


def _seq(frame):
    return M.struct.unpack_from("<I", frame, 3)[0]


# ------------------------------------------------------------------------- binding scenarios


def test_weight_then_tag_gives_one_signed_reading_acked_and_removed():
    r = Rig()
    r.connect(time=1790000000)
    r.hx.load_g = 25000
    assert r.until(ST.STABLE)
    r.reader.q.append(b"\x04\xa1\xb2\xc3\xd4\xe5\x80")
    r.run(100)
    readings = r.bridge.of(F.T_READING)
    assert len(readings) == 1
    rd = readings[0]
    assert rd.seq == 1 and rd.prev == 0 and rd.net_g == 25000 and rd.stable
    assert rd.time is not None and abs(rd.time - 1790000000) < 5
    assert rd.tag == b"\x04\xa1\xb2\xc3\xd4\xe5\x80" and rd.tag_kind == M.TAG_RFID_UID
    assert rd.step == 2 and rd.operator == 201 and rd.verdict == M.ACCEPT
    assert len(r.journal.frames) == 1  # durable before acknowledged
    assert r.fb.bg == "not_synced"  # a reading waits for its ACK
    r.bridge.send(M.Ack([(1, 0)]))
    r.run(100)
    assert r.journal.frames == [] and r.journal.acked == [1]
    assert "accepted" in r.fb.shown and r.fb.bg == "idle"
    r.hx.load_g = 0
    assert r.until(ST.IDLE)


def test_tag_then_weight_binds_within_window():
    r = Rig()
    r.connect()
    r.scanner.q.append("SK00100015")
    r.run(50)
    assert r.st.state == ST.TAG
    r.hx.load_g = 30000
    r.run(1500)
    rs = r.bridge.of(F.T_READING)
    assert len(rs) == 1 and rs[0].tag == b"SK00100015" and rs[0].net_g == 30000
    assert rs[0].tag_kind == M.TAG_QR_TEXT and rs[0].stable


def test_tag_without_bag_is_dropped_after_window():
    r = Rig(bind_ms=1000)
    r.connect()
    r.scanner.q.append("SK00100015")
    r.run(1200)
    assert r.st.state == ST.IDLE and r.bridge.of(F.T_READING) == []
    assert "attention" in r.fb.shown


def test_bag_removed_before_tag_records_nothing():
    r = Rig()
    r.connect()
    r.hx.load_g = 20000
    assert r.until(ST.STABLE)
    r.hx.load_g = 0
    assert r.until(ST.IDLE)
    r.run(500)
    assert r.bridge.of(F.T_READING) == [] and r.journal.frames == []
    assert "attention" in r.fb.shown


def test_two_tags_bind_neither_and_raise_event():
    r = Rig()
    r.connect()
    r.hx.load_g = 20000
    assert r.until(ST.STABLE)
    r.reader.q.append("multiple")
    r.run(200)
    assert r.bridge.of(F.T_READING) == []
    evs = [e.code for e in r.bridge.of(F.T_EVENT)]
    assert M.EV_MULTIPLE_TAGS in evs
    # a different second tag while one is held: also a conflict
    r2 = Rig()
    r2.connect()
    r2.scanner.q.append("SK00100015")
    r2.run(30)
    r2.scanner.q.append("SK00100023")
    r2.hx.load_g = 20000
    r2.run(1500)
    assert r2.bridge.of(F.T_READING) == []
    assert M.EV_MULTIPLE_TAGS in [e.code for e in r2.bridge.of(F.T_EVENT)]


def test_still_moving_at_deadline_gives_rejected_unstable_reading():
    r = Rig(bind_ms=1500)
    r.connect()
    r.hx.load_g = 20000
    r.hx.swing = 3000  # 150 g peak: never stable
    r.run(300)
    assert r.st.state == ST.WEIGHING
    r.scanner.q.append("SK00100015")
    r.run(2200)
    rs = r.bridge.of(F.T_READING)
    assert len(rs) == 1
    assert not rs[0].stable and rs[0].verdict == M.REJECT and rs[0].reason == 5  # NOT-STABLE
    assert "rejected" in r.fb.shown


def test_weight_moving_again_drops_capture():
    r = Rig()
    r.connect()
    r.hx.load_g = 20000
    assert r.until(ST.STABLE)
    r.hx.swing = 3000
    assert r.until(ST.WEIGHING, 1000)


def test_duplicate_tag_at_step_is_rejected_and_kept():
    r = Rig()
    r.connect()
    for i in range(2):
        r.hx.load_g = 20000
        assert r.until(ST.STABLE)
        r.scanner.q.append("SK00100015")
        r.run(100)
        r.hx.load_g = 0
        assert r.until(ST.IDLE)
        r.run(1500)  # tag gone long enough to count as a new presentation
    rs = r.bridge.readings()
    assert [x.verdict for x in rs] == [M.ACCEPT, M.REJECT]
    assert rs[1].reason == 7  # DUPLICATE-STEP
    assert len(r.journal.frames) == 2  # the rejected one is evidence: kept until ACK


def test_rfid_repeats_of_the_same_tag_do_not_rebind():
    r = Rig()
    r.connect()
    r.hx.load_g = 20000
    assert r.until(ST.STABLE)
    for _ in range(30):  # the reader sees the sticker on every poll
        r.reader.q.append(b"\x04\x01\x02\x03")
        r.run(50)
    r.hx.load_g = 0
    for _ in range(10):
        r.reader.q.append(b"\x04\x01\x02\x03")
        r.run(50)
    assert len(r.bridge.of(F.T_READING)) == 1


def test_scanner_garbage_is_an_event_not_a_tag():
    r = Rig()
    r.connect()
    r.scanner.q.append(b"\x00\x01garbage")
    r.run(50)
    assert r.st.state == ST.IDLE
    assert M.EV_SCANNER_GARBAGE in [e.code for e in r.bridge.of(F.T_EVENT)]


# ------------------------------------------------------------------------- journal and chain


def test_seq_and_chain_continue_from_journal_head_across_reboot():
    j = MemJournal()
    r = Rig(journal=j)
    r.connect()
    r.hx.load_g = 20000
    assert r.until(ST.STABLE)
    r.scanner.q.append("SK00100015")
    r.run(100)
    first = r.bridge.of(F.T_READING)[0]
    # power cut before the ACK: the new boot resends it, then continues the chain
    r2 = Rig(journal=j, root=r.root)
    r2.connect()
    rs = r2.bridge.of(F.T_READING)
    assert len(rs) == 1 and rs[0].seq == 1 and rs[0].mac == first.mac  # resent verbatim
    hello = r2.bridge.of(F.T_HELLO)[0]
    assert hello.last_seq == 1 and hello.backlog == 1 and hello.boot_first_seq == 2
    assert hello.chain_head == M.chain_link(first.mac)
    r2.bridge.send(M.Ack([(1, 0)]))
    r2.hx.load_g = 30000
    assert r2.until(ST.STABLE)
    r2.scanner.q.append("SK00100023")
    r2.run(100)
    second = r2.bridge.of(F.T_READING)[-1]
    assert second.seq == 2 and second.prev == M.chain_link(first.mac)


def test_journal_full_refuses_reading_without_overwriting():
    r = Rig(capacity=1)
    r.hx.load_g = 20000
    assert r.until(ST.STABLE)
    r.scanner.q.append("SK00100015")
    r.run(100)
    assert len(r.journal.frames) == 1
    r.hx.load_g = 0
    assert r.until(ST.IDLE)
    r.run(1500)
    r.hx.load_g = 21000
    assert r.until(ST.STABLE)
    r.scanner.q.append("SK00100023")
    r.run(200)
    assert len(r.journal.frames) == 1 and _seq(r.journal.frames[0]) == 1
    assert r.fb.shown[-1] == "rejected"
    r.connect()  # the queued EVENTs go out once a session exists
    assert M.EV_JOURNAL_FULL in [e.code for e in r.bridge.of(F.T_EVENT)]


def test_unsynced_reading_carries_boot_and_uptime_then_synced():
    r = Rig()
    r.connect(time=0)  # bridge without a valid clock
    r.hx.load_g = 20000
    assert r.until(ST.STABLE)
    r.scanner.q.append("SK00100015")
    r.run(100)
    a = r.bridge.of(F.T_READING)[0]
    assert a.time is None and a.boot == 3 and a.uptime_ms > 0
    r.bridge.command(M.OP_SET_TIME, time=1790000000, ms=0)
    r.hx.load_g = 0
    assert r.until(ST.IDLE)
    r.run(1500)
    r.hx.load_g = 20000
    assert r.until(ST.STABLE)
    r.scanner.q.append("SK00100023")
    r.run(100)
    b = r.bridge.of(F.T_READING)[-1]
    assert b.time is not None and 1790000000 <= b.time < 1790000010


def test_backlog_resent_in_order_with_bounded_window():
    j = MemJournal(capacity=32)
    r = Rig(journal=j)
    for i in range(6):  # offline: six readings journaled
        r.hx.load_g = 20000 + 100 * i
        assert r.until(ST.STABLE)
        r.scanner.q.append("SK0010001" + str(i))
        r.run(100)
        r.hx.load_g = 0
        assert r.until(ST.IDLE)
        r.run(1100)
    assert len(j.frames) == 6 and r.bridge.of(F.T_READING) == []
    r.connect()
    seqs = [x.seq for x in r.bridge.of(F.T_READING)]
    assert seqs == [1, 2, 3, 4]  # window of 4 in flight
    r.bridge.send(M.Ack([(1, 0), (2, 0)]))
    r.run(50)
    seqs = [x.seq for x in r.bridge.of(F.T_READING)]
    assert seqs == [1, 2, 3, 4, 5, 6]
    # no ACK for 3..6: resent in order after the ack deadline (5 s, SPEC 10)
    r.bridge.got = []
    r.run(5100)
    assert [x.seq for x in r.bridge.of(F.T_READING)] == [3, 4, 5, 6]


# ------------------------------------------------------------------------- authentication


def test_forged_ack_never_deletes_a_reading():
    r = Rig()
    r.connect()
    r.hx.load_g = 20000
    assert r.until(ST.STABLE)
    r.scanner.q.append("SK00100015")
    r.run(100)
    assert len(r.journal.frames) == 1
    r.bridge.send(M.Ack([(1, 0)]), key=bytes(32))  # wrong key
    r.bridge.send(M.Ack([(1, 0)]), nonce=b"\x00" * 8)  # replay from another session
    r.run(100)
    assert len(r.journal.frames) == 1 and r.link.bad_mac == 2
    r.bridge.send(M.Ack([(1, 0)]))
    r.run(50)
    assert r.journal.frames == []


def test_stale_or_replayed_command_is_refused():
    r = Rig()
    r.connect()
    r.bridge.command(M.OP_SET_OPERATOR, cmd_id=5, operator=202)
    r.run(50)
    r.bridge.command(M.OP_SET_OPERATOR, cmd_id=5, operator=999)  # same id: a bridge retry
    r.bridge.command(M.OP_SET_OPERATOR, cmd_id=4, operator=999)  # stale id
    r.run(50)
    res = r.bridge.of(F.T_RESULT)
    # the retry gets the remembered RESULT and is not run again; the stale one is refused
    assert [(x.cmd_id, x.status) for x in res] == [
        (5, M.RS_OK), (5, M.RS_OK), (4, M.RS_STALE_COMMAND)]
    assert r.st.operator == 202
    # a command recorded in this session is refused in the next one (other nonce)
    old = r.bridge.nonce
    r.st._lose_session(r.clock.t)
    r.run(50)
    assert r.bridge.nonce != old
    r.bridge.send(M.Command(6, M.OP_SET_OPERATOR, {"operator": 999}), nonce=old)
    r.run(50)
    assert r.st.operator == 202 and r.link.bad_mac == 1


def test_tare_refused_in_motion_then_done_when_stable():
    r = Rig()
    r.connect()
    r.hx.load_g = 500
    r.hx.swing = 3000
    r.run(300)
    r.bridge.command(M.OP_TARE)
    r.run(50)
    assert r.bridge.of(F.T_RESULT)[-1].status == M.RS_REFUSED_MOTION
    r.hx.swing = 0
    r.run(1500)
    r.bridge.command(M.OP_TARE)
    r.run(50)
    res = r.bridge.of(F.T_RESULT)[-1]
    assert res.status == M.RS_OK and res.value == 500 and r.scale.tare_g == 500


def test_calibration_needs_maintenance_mode():
    r = Rig()
    r.connect()
    r.run(1000)
    r.bridge.command(M.OP_CAL_ZERO)
    r.run(50)
    assert r.bridge.of(F.T_RESULT)[-1].status == M.RS_NOT_IN_MAINTENANCE
    r.bridge.command(M.OP_MAINTENANCE, on=1)
    r.bridge.command(M.OP_CAL_ZERO)
    r.run(50)
    assert r.bridge.of(F.T_RESULT)[-1].status == M.RS_OK
    r.hx.load_g = 20000
    r.run(1500)
    r.bridge.command(M.OP_CAL_SPAN, mass_g=20000)
    r.run(50)
    res = r.bridge.of(F.T_RESULT)[-1]
    assert res.status == M.RS_OK and res.value == 20000  # counts per kg
    r.bridge.command(M.OP_CAL_CHECK, mass_g=20000)
    r.bridge.command(M.OP_CAL_COMMIT, cal_id=9, operator=202, time=1790000000)
    r.run(50)
    chk, com = r.bridge.of(F.T_RESULT)[-2:]
    assert chk.status == M.RS_OK and chk.value == 20000
    assert com.status == M.RS_OK and com.value == 9
    assert r.scale.cal.cal_id == 9 and r.scale.cal.operator == 202


def _push(r, data, digest):
    r.bridge.command(M.OP_MAINTENANCE, on=1)
    r.bridge.command(M.OP_RULESET_BEGIN, length=len(data), sha256=digest)
    for off in range(0, len(data), 200):
        r.bridge.command(M.OP_RULESET_CHUNK, offset=off, data=data[off : off + 200])
        r.run(20)
    r.bridge.command(M.OP_RULESET_END)
    r.run(50)
    return r.bridge.of(F.T_RESULT)[-1]


def test_ruleset_push_good_hash_replaces_file_atomically():
    from twproto import canon

    r = Rig(ruleset=False)
    r.connect()
    doc = dict(RULESET)
    doc["version"] = "8"
    data = canon.canonical_bytes(doc)
    res = _push(r, data, hashlib.sha256(data).digest())
    assert res.status == M.RS_OK
    assert r.st.ruleset is not None and r.st.ruleset.version == "8"
    assert res.value & 0xFFFFFFFF == r.st.ruleset.id
    with open(config_mod.join(r.st.root, "ruleset.json"), "rb") as f:
        assert f.read() == data


def test_ruleset_push_bad_hash_keeps_old_ruleset():
    from twproto import canon

    r = Rig()
    r.connect()
    old = r.st.ruleset
    data = canon.canonical_bytes(RULESET)
    res = _push(r, data, b"\x00" * 32)
    assert res.status == M.RS_BAD_HASH and r.st.ruleset is old
    try:
        os.stat(config_mod.join(r.st.root, "ruleset.json"))
        exists = True
    except OSError:
        exists = False
    assert not exists  # nothing half-written in place
    bad = b'{"format":"nope"}'
    res = _push(r, bad, hashlib.sha256(bad).digest())
    assert res.status == M.RS_BAD_ARGS and r.st.ruleset is old


def test_set_config_validates_and_persists():
    r = Rig()
    r.connect()
    r.bridge.command(M.OP_SET_CONFIG, key=0, value=b'{"bind_ms": 7000}')
    r.run(50)
    assert r.bridge.of(F.T_RESULT)[-1].status == M.RS_NOT_IN_MAINTENANCE
    r.bridge.command(M.OP_MAINTENANCE, on=1)
    r.bridge.command(M.OP_SET_CONFIG, key=0, value=b'{"bind_ms": 7000}')
    r.bridge.command(M.OP_SET_CONFIG, key=0, value=b'{"bind_ms": 5}')
    r.run(50)
    res = r.bridge.of(F.T_RESULT)[-2:]
    assert res[0].status == M.RS_OK and res[1].status == M.RS_BAD_ARGS
    assert b"bind_ms" in res[1].detail
    assert config_mod.load(r.root).bind_ms == 7000 and r.st.config.bind_ms == 7000


def test_ctrl_c_on_idle_line_exits_but_not_inside_a_frame():
    r = Rig()
    r.connect()
    # 0x03 inside a frame body (a command id of 3) is data, not Ctrl-C
    r.bridge.command(M.OP_GET_STATUS, cmd_id=3)
    r.run(50)
    assert r.st.running and r.bridge.of(F.T_RESULT)[-1].cmd_id == 3
    r.stream.inbox.extend(b"\r\x03")
    r.run(20)
    assert not r.st.running


def test_hx711_not_ready_raises_event():
    r = Rig()
    r.connect()
    r.hx.alive = False
    r.run(1500)
    assert M.EV_HX711_NOT_READY in [e.code for e in r.bridge.of(F.T_EVENT)]
    assert r.bridge.of(F.T_STATUS) != []


def test_live_frames_only_while_weight_changes():
    r = Rig()
    r.connect()
    r.run(2000)
    r.bridge.got = []
    r.run(2000)
    assert r.bridge.of(F.T_LIVE) == []  # nothing moves: no LIVE
    r.hx.load_g = 20000
    r.run(1000)
    n = len(r.bridge.of(F.T_LIVE))
    assert 1 <= n <= 1000 // 250 + 1


def test_nacks_are_advisory_busy_backs_off_conflict_stops_that_seq():
    r = Rig()
    r.connect()
    r.bridge.send(M.Command(3, M.OP_SET_OPERATOR, {"operator": 999}), key=bytes(32))
    r.run(30)
    nk = r.bridge.of(F.T_NACK)[-1]
    assert nk.reason == M.NACK_BAD_MAC and nk.ref_type == F.T_COMMAND and nk.ref_seq == 3
    assert r.st.operator == 201
    r.hx.load_g = 20000
    assert r.until(ST.STABLE)
    r.scanner.q.append("SK00100015")
    r.run(100)
    assert [x.seq for x in r.bridge.of(F.T_READING)] == [1]
    r.bridge.send(M.Nack(ref_type=F.T_READING, ref_seq=1, reason=M.NACK_BUSY))
    r.bridge.got = []
    r.run(5500)  # busy: the resend waits the back-off, then comes
    assert [x.seq for x in r.bridge.of(F.T_READING)] == [1]
    r.bridge.send(M.Nack(ref_type=F.T_READING, ref_seq=1, reason=M.NACK_CONFLICT))
    r.bridge.got = []
    r.run(11000)
    assert r.bridge.of(F.T_READING) == []  # not sent again this session...
    assert len(r.journal.frames) == 1  # ...but never deleted
    assert M.EV_TAMPER in [e.code for e in r.bridge.of(F.T_EVENT)]


def test_session_code_leaves_the_heap_after_hello_welcome_command_and_nack():
    # HELLO, WELCOME, COMMAND and NACK are handled by the cold twstation.session: on the
    # station (MicroPython) it is forgotten again after each use, and the session works as before
    import sys

    from twproto.port import MICROPYTHON

    r = Rig()
    r.run(50)
    assert len(r.bridge.of(F.T_HELLO)) == 1
    if MICROPYTHON:
        assert "twstation.session" not in sys.modules
    r.connect(time=1800000000)
    assert len(r.bridge.of(F.T_HELLO)) == 1 and r.st.utc() == 1800000000
    assert r.bridge.of(F.T_STATUS)  # the WELCOME is answered by a STATUS
    r.bridge.command(M.OP_SET_OPERATOR, operator=202)
    r.bridge.send(M.Nack(ref_type=F.T_READING, ref_seq=1, reason=M.NACK_BUSY))
    r.run(50)
    assert r.st.operator == 202 and r.st._backoff == 5000
    assert [(x.cmd_id, x.status) for x in r.bridge.of(F.T_RESULT)] == [(1, M.RS_OK)]
    if MICROPYTHON:
        assert "twstation.session" not in sys.modules
        assert "twstation.commands" not in sys.modules


def test_an_event_repeated_within_its_gap_reaches_no_session_code():
    # A fault can raise its event every few steps (a dead RFID reader: every ~40 ms). The 5 s
    # gap is checked by Station.event itself: a repeat neither imports the cold
    # twstation.session (which reads it from flash) nor sends anything.
    import sys

    import twstation

    r = Rig()
    r.connect()
    r.st.event(M.EV_READER_FAULT, M.SEV_ERROR, 4)
    r.run(20)
    assert [e.code for e in r.bridge.of(F.T_EVENT)].count(M.EV_READER_FAULT) == 1
    calls = []

    class Stand:  # in place of twstation.session: records what would have been imported
        @staticmethod
        def event(*args):
            calls.append(args)

    saved = sys.modules.get("twstation.session")
    sys.modules["twstation.session"] = twstation.session = Stand
    try:
        r.clock.t += 1000
        r.st.event(M.EV_READER_FAULT, M.SEV_ERROR, 4)
    finally:
        sys.modules.pop("twstation.session", None)
        if "session" in twstation.__dict__:
            delattr(twstation, "session")
        if saved is not None:
            sys.modules["twstation.session"] = twstation.session = saved
    assert calls == []
    r.run(20)
    assert [e.code for e in r.bridge.of(F.T_EVENT)].count(M.EV_READER_FAULT) == 1
