"""Station scenarios against the modelled hardware (tagweigh.hw: HX711 + load cell, MFRC522 +
ISO 14443A cards) with the real drivers, the real scale engine and the real flash journal in a
temp directory, all on a virtual clock. The station is built by twstation.app.build from files,
exactly as main.py builds it on the ESP32. The transition logic itself is covered in
vm_station.py (CPython and MicroPython VM); this file covers what needs the real parts."""

from __future__ import annotations

import hashlib
import json

import pytest

from tagweigh import hw

hw.install_fakes()

from tagweigh.hw import fake_machine as fm  # noqa: E402
from tagweigh.hw.loadcell import LoadCell  # noqa: E402
from twproto import canon  # noqa: E402
from twproto import frame as F  # noqa: E402
from twproto import messages as M  # noqa: E402
from twproto.mac import Mac  # noqa: E402
from twstation import app, config, feedback, hx711, link, mfrc522, scanner, selftest  # noqa: E402
from twstation import session  # noqa: E402
from twstation import station as S  # noqa: E402
from twstation.board import Board  # noqa: E402
from twstation.calib import CalStore, Calibration  # noqa: E402
from twstation.errors import ConfigError  # noqa: E402
from twstation.journal import Journal  # noqa: E402

from vm_station import KEY, RULESET, ST, Bridge, FakeFeedback, MemStream, _urandom  # noqa: E402

BOARD = {
    "chip": "esp32",
    "console": {"uart": 0, "tx": 1, "rx": 3},
    "hx711": {"dout": 34, "sck": 33},
    "mfrc522": {"spi": 2, "sck": 18, "mosi": 23, "miso": 19, "cs": 4, "rst": 27},
}
CPG_NUM, CPG_DEN = 100000, 4294967  # 42.95 counts per gram: the 100 kg 2 mV/V cell model
ZERO = 150_000
UID7 = b"\x04\xa1\xb2\xc3\xd4\xe5\x80"
BOARD_QR = {
    "chip": "esp32",
    "hx711": {"dout": 34, "sck": 33},
    "scanner": {"uart": 2, "tx": 25, "rx": 35, "baud": 9600},
    "leds": {"ok": 26, "bad": 13, "attn": 14},
    "buzzer": {"pin": 32},
}


class Rig:
    """Files on a temp 'flash', models wired to the board's pins, a station built by app.build."""

    def __init__(self, root, *, cell_zero=ZERO, stored_zero=ZERO, settings=None, version=0x92,
                 journal_prefill=0, board=BOARD):
        self.root = str(root)
        self.board_spec = board
        self.clock = hw.VirtualClock(start_us=5_000_000)
        self._undo = self.clock.bind(hx711, mfrc522, selftest, scanner, feedback)
        hw.reset_bench()
        self.cell = LoadCell(zero_counts=cell_zero, seed=3)
        self.hxm = hw.HX711Model(self.cell.counts, clock=self.clock, dout=fm.Pin(34),
                                 pd_sck=fm.Pin(33))
        self.rfm = hw.MFRC522Model(clock=self.clock, spi=fm.SPI(2), cs=fm.Pin(4), rst=fm.Pin(27),
                                   version=version)
        self.qr = hw.ScannerModel(fm.UART(2, 9600), clock=self.clock)
        self.settings = {"device_id": 77, "site": "T1", "step": 2, "operator": 201,
                         "reader": "rfid", "journal_capacity": 50}
        self.settings.update(settings or {})
        self._write_flash(stored_zero)
        if journal_prefill:
            self._prefill(journal_prefill)
        self.stream = MemStream()
        self.boot()

    def _write_flash(self, stored_zero):
        with open(self.root + "/station.json", "w") as f:
            json.dump(self.settings, f)
        with open(self.root + "/key.bin", "wb") as f:
            f.write(KEY)
        with open(self.root + "/ruleset.json", "wb") as f:
            f.write(canon.canonical_bytes(RULESET))
        cal = Calibration(1, ZERO, CPG_NUM, CPG_DEN, 10, 60000)
        CalStore(self.root + "/scale.json").save(cal, stored_zero)

    def _prefill(self, n):
        """Readings from an earlier life of the station that the bridge never acknowledged."""
        j = self.journal()
        mac = Mac(KEY)
        buf = bytearray(F.MAX_FRAME)
        prev = 0
        for i in range(n):
            if j.full:
                return i
            r = M.Reading(seq=i + 1, flags=M.F_STABLE, step=2, tag_kind=M.TAG_QR_TEXT,
                          boot=1, uptime_ms=1000 * i, net_g=20000, e_g=10, operator=201,
                          prev=prev, tag=b"SK0010%04d" % i)
            n_ = M.encode_message(buf, r, mac)
            j.append(memoryview(buf)[:n_])
            prev = M.chain_link(buf[n_ - 18 : n_ - 14])
        return n

    def journal(self):
        cfg = config.load(self.root)
        return Journal(self.root + "/journal", app.journal_bytes(cfg.journal_capacity),
                       warn_pct=cfg.journal_warn_pct, segments=app.JOURNAL_SEGMENTS)

    def boot(self):
        """Power on: a new station from what the flash holds (new journal object, boot + 1)."""
        self.board = Board(dict(self.board_spec))
        self.st = app.build(self.root, board=self.board, stream=self.stream, clock=self.clock,
                            reboot=lambda: None, urandom=_urandom)
        if self.st.dev.feedback is None:
            self.fb = FakeFeedback()
            self.st.dev.feedback = self.fb
        self.bridge = Bridge(self.stream)

    def close(self):
        self._undo()

    @property
    def t(self):
        return self.clock.now_us / 1e6

    def run(self, ms, step_ms=5):
        for _ in range(int(ms // step_ms)):
            self.clock.advance_ms(step_ms)
            self.st.step()
            self.bridge.pump()

    def until(self, cond, ms=10_000, step_ms=5, pump=True):
        for _ in range(int(ms // step_ms)):
            if cond():
                return True
            self.clock.advance_ms(step_ms)
            self.st.step()
            if pump:
                self.bridge.pump()
        return cond()

    def connect(self, time=1790000000):
        assert self.until(lambda: self.bridge.nonce is not None, 3000)
        self.bridge.welcome(time)
        assert self.until(lambda: self.st.session, 500)

    def events(self):
        return [e.code for e in self.bridge.of(F.T_EVENT)]


@pytest.fixture
def rig(tmp_path):
    made = []

    def make(**kw):
        r = Rig(tmp_path, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def test_swinging_bag_then_ndef_card_gives_reading_at_settled_weight(rig):
    r = rig()
    r.connect()
    assert r.until(lambda: r.st.scale.stable, 3000)
    r.cell.place(25_000, r.t, swing_amplitude_g=400, swing_hz=1.5, damping=0.15)
    r.run(300)
    assert r.st.state in (ST.WEIGHING, ST.IDLE)  # still swinging: nothing captured
    assert r.until(lambda: r.st.state == ST.STABLE, 15_000)
    r.rfm.add_card(hw.Card.ntag(UID7, hw.ndef_text("SK00100015")))
    assert r.until(lambda: r.bridge.of(F.T_READING), 2000)
    rd = r.bridge.of(F.T_READING)[0]
    assert rd.tag_kind == M.TAG_NDEF_TEXT and rd.tag == b"SK00100015"
    assert rd.stable and abs(rd.net_g - 25_000) <= 10 and rd.e_g == 10
    assert rd.seq == 1 and rd.time is not None and rd.cal_id == 1
    assert r.st.ruleset is not None and rd.ruleset_id == r.st.ruleset.id


def test_two_cards_in_the_field_bind_nothing(rig):
    r = rig()
    r.connect()
    r.cell.place(20_000, r.t)
    assert r.until(lambda: r.st.state == ST.STABLE, 5000)
    r.rfm.add_card(hw.Card(UID7))
    r.rfm.add_card(hw.Card(b"\x04\x11\x22\x33\x44\x55\x66"))
    assert r.until(lambda: M.EV_MULTIPLE_TAGS in r.events(), 2000)
    r.run(1000)
    assert r.bridge.of(F.T_READING) == [] and r.st.journal.backlog() == 0
    assert "attention" in r.fb.shown


def test_tag_held_for_a_bag_lifted_before_it_settles_never_binds_to_the_next_bag(rig):
    # Tag first, then a bag that swings and is lifted before it settles, then another bag:
    # the held tag belonged to the first bag, so nothing may be recorded for it.
    r = rig()
    r.connect()
    uid_b = b"\x04\x11\x22\x33\x44\x55\x66"
    card = r.rfm.add_card(hw.Card(UID7))
    assert r.until(lambda: r.st.state == ST.TAG, 2000)
    r.rfm.remove_card(card)
    r.cell.place(30_000, r.t, swing_amplitude_g=3000, swing_hz=1.0, damping=0.25)
    r.run(600)
    assert not r.st.scale.stable
    r.cell.remove(r.t)
    assert r.until(lambda: r.st.state == ST.IDLE, 3000)
    assert "attention" in r.fb.shown
    r.cell.place(22_000, r.t + 0.3)
    r.run(8000)  # longer than the bind window: the old tag must not turn into a reading
    assert r.bridge.of(F.T_READING) == [] and r.st.journal.backlog() == 0
    r.rfm.add_card(hw.Card(uid_b))
    assert r.until(lambda: r.bridge.of(F.T_READING), 3000)
    rd = r.bridge.of(F.T_READING)[0]
    assert rd.tag == uid_b and rd.stable and abs(rd.net_g - 22_000) <= 10


def test_tag_first_window_starts_when_the_bag_lands(rig):
    # The label is scanned 4 s before the bag is put down (bind window 5 s); the bag then needs
    # a few seconds to settle. The reading must bind the settled weight, not an unstable one.
    r = rig()
    r.connect()
    card = r.rfm.add_card(hw.Card(UID7))
    assert r.until(lambda: r.st.state == ST.TAG, 2000)
    r.rfm.remove_card(card)
    r.run(4000)
    r.cell.place(26_000, r.t, swing_amplitude_g=600, swing_hz=1.2, damping=0.3)
    assert r.until(lambda: r.bridge.of(F.T_READING), 6000)
    rd = r.bridge.of(F.T_READING)[0]
    assert rd.tag == UID7 and rd.stable and abs(rd.net_g - 26_000) <= 10


def test_live_frame_follows_the_stable_flag_when_the_weight_does_not_move(rig):
    # A bag put down gently: its weight reaches its final value (a LIVE says so, "moving")
    # before the scale declares it stable. The operator page must still get a LIVE saying
    # "stable" although the weight did not change by a division since.
    r = rig(settings={"live_ms": 100})  # one LIVE per HX711 sample at most
    r.connect()
    assert r.until(lambda: r.st.scale.stable, 3000)
    r.cell.place(25_000, r.t)
    assert r.until(lambda: not r.st.scale.stable, 1000)
    assert r.until(lambda: r.st.scale.stable, 5000)
    r.run(2 * r.st.config.live_ms)
    live = r.bridge.of(F.T_LIVE)[-1]
    assert abs(live.net_g - r.st.scale.net_g) < r.st.config.division_g
    assert live.flags & M.F_STABLE
    assert [m.flags & M.F_STABLE for m in r.bridge.of(F.T_LIVE)].count(0) >= 1  # moving shown


def test_frames_sent_while_a_reading_is_signed_do_not_corrupt_it(rig):
    # The signed READING sits in the link's TX buffer until it is journaled; LIVE, STATUS and
    # EVENT frames use the same buffer. Send one between every two steps of the reading's path.
    r = rig()
    r.connect()
    r.cell.place(20_000, r.t)
    assert r.until(lambda: r.st.state == ST.STABLE, 5000)
    r.rfm.add_card(hw.Card(UID7))
    for i in range(400):
        if r.st.state in (ST.VALIDATE, ST.SIGN, ST.JOURNAL):
            r.st.event(M.EV_SCANNER_GARBAGE + i % 2, M.SEV_WARNING, i)  # a frame out meanwhile
            r.st._at[S._AT_STATUS] = r.clock.ticks_ms()  # and a STATUS in the next step
        r.clock.advance_ms(5)
        r.st.step()
        r.bridge.pump()
        if r.bridge.of(F.T_READING):
            break
    assert M.EV_JOURNAL_FULL not in r.events() and r.st.journal.backlog() == 1
    rd = r.bridge.of(F.T_READING)[0]
    assert rd.seq == 1 and rd.tag == UID7 and abs(rd.net_g - 20_000) <= 10


def test_power_cut_between_journal_append_and_send_resends_after_reboot(rig):
    r = rig()
    r.connect()
    r.cell.place(20_000, r.t)
    assert r.until(lambda: r.st.state == ST.STABLE, 5000)
    r.rfm.add_card(hw.Card(UID7))
    # the power goes as the reading is committed: the journal has it, the wire never did
    r.bridge.pump()
    sent = len(r.stream.outbox)
    assert r.until(lambda: r.st.journal.backlog() == 1, 2000, step_ms=1, pump=False)
    del r.stream.outbox[sent:]
    assert r.bridge.of(F.T_READING) == []
    r.st = None
    r.stream.inbox.clear()
    r.stream.outbox.clear()
    r.boot()
    r.connect()
    hello = r.bridge.of(F.T_HELLO)[0]
    assert hello.last_seq == 1 and hello.backlog == 1 and hello.boot == 2
    assert r.until(lambda: r.bridge.of(F.T_READING), 500)
    rd = r.bridge.of(F.T_READING)[0]
    assert rd.seq == 1 and rd.tag == UID7 and M.chain_link(rd.mac) == hello.chain_head
    r.bridge.send(M.Ack([(1, 0)]))
    r.run(50)
    assert r.st.journal.backlog() == 0
    assert r.journal().backlog() == 0  # the ACK is durable too


def test_journal_full_refuses_reading_and_keeps_unsent_ones(rig):
    r = rig(settings={"journal_capacity": 8}, journal_prefill=0)
    r.st = None
    cap = r._prefill(10_000)  # until it is full
    r.boot()
    j = r.st.journal
    assert j.full and j.backlog() == cap
    r.cell.place(20_000, r.t)
    assert r.until(lambda: r.st.state == ST.STABLE, 5000)
    r.rfm.add_card(hw.Card(UID7))
    assert r.until(lambda: "rejected" in r.fb.shown, 2000)
    assert j.backlog() == cap and j.head()[0] == cap  # nothing overwritten, no new seq
    r.connect()
    assert M.EV_JOURNAL_FULL in r.events()
    assert r.bridge.of(F.T_HELLO)[0].flags & M.SF_JOURNAL_FULL


def test_zero_out_of_range_at_boot_is_reported_never_rezeroed(rig):
    r = rig(cell_zero=ZERO + 130_000)  # ~3 kg left on the platform, > 2 % of Max
    r.connect()
    assert r.until(lambda: M.EV_ZERO_OUT_OF_RANGE in r.events(), 5000)
    assert r.st.scale.zero_counts == ZERO  # the stored zero is untouched
    r.bridge.command(M.OP_GET_STATUS)
    assert r.until(lambda: r.bridge.of(F.T_STATUS) and
                   r.bridge.of(F.T_STATUS)[-1].flags & M.SF_ZERO_OUT_OF_RANGE, 500)


def test_bag_on_the_platform_at_power_up_is_reported_then_clears_when_lifted(rig):
    # A bag left on the scale through a power cut: at boot the live zero is 24 kg off the stored
    # zero. That is reported (event + STATUS flag), never re-zeroed; once the bag is lifted the
    # platform is back at its stored zero and the flag clears by itself.
    r = rig()
    r.cell.place(24_000, r.t - 30.0)  # settled long before power-up
    r.boot()
    r.connect()
    assert r.until(lambda: M.EV_ZERO_OUT_OF_RANGE in r.events(), 5000)
    assert session.flags(r.st) & M.SF_ZERO_OUT_OF_RANGE
    zero_before = r.st.scale.zero_counts
    r.cell.remove(r.t)
    assert r.until(lambda: not session.flags(r.st) & M.SF_ZERO_OUT_OF_RANGE, 8000)
    assert r.st.scale.zero_counts == zero_before  # nothing was re-zeroed


def test_hx711_unplugged_raises_event_and_status_flag(rig):
    r = rig()
    r.connect()
    r.run(1000)
    r.hxm.dout_stuck = 1
    assert r.until(lambda: M.EV_HX711_NOT_READY in r.events(), 3000)
    assert session.flags(r.st) & M.SF_SCALE_FAULT
    r.hxm.dout_stuck = None
    assert r.until(lambda: not session.flags(r.st) & M.SF_SCALE_FAULT, 3000)


def test_selftest_over_the_link_and_from_the_repl(rig):
    r = rig()
    r.connect()
    r.bridge.command(M.OP_SELF_TEST)
    assert r.until(lambda: r.bridge.of(F.T_RESULT), 3000)
    res = r.bridge.of(F.T_RESULT)[-1]
    d = json.loads(res.detail)
    assert res.status == M.RS_OK and d["ok"] is True
    assert d["hx"] == "ok" and d["rdr"] == "ok" and d["key"] == "ok" and d["jnl"] == "ok"
    assert KEY.hex() not in res.detail.decode() and KEY not in r.stream.outbox
    d2 = app.selftest(r.root, r.board, r.clock)
    assert d2["ok"] is True, d2


def test_dead_reader_does_not_stop_the_station_and_selftest_says_so(rig, tmp_path):
    r = rig(version=0x00)  # the MFRC522 does not answer its VersionReg
    assert r.st.dev.rfid is None and session.flags(r.st) & M.SF_READER_FAULT
    r.connect()
    assert M.EV_READER_FAULT in r.events()
    (tmp_path / "key.bin").unlink()
    r.hxm.dout_stuck = 1
    d = app.selftest(r.root, r.board, r.clock)
    assert d["ok"] is False and d["key"] == "missing" and d["hx"] == "timeout"
    assert d["rdr"] == "not_found" and d["jnl"] == "ok"


def _push_ruleset(r, data):
    """The bridge pushes canonical rule-set bytes as COMMANDs (maintenance, BEGIN, CHUNKs, END)."""
    r.bridge.command(M.OP_MAINTENANCE, on=1)
    r.bridge.command(M.OP_RULESET_BEGIN, length=len(data), sha256=hashlib.sha256(data).digest())
    for off in range(0, len(data), 180):
        r.bridge.command(M.OP_RULESET_CHUNK, offset=off, data=data[off : off + 180])
        r.run(10)
    r.bridge.command(M.OP_RULESET_END)
    r.run(20)


def test_rule_set_pushed_over_link_survives_reboot(rig):
    r = rig()
    r.connect()
    doc = dict(RULESET, version="9")
    data = canon.canonical_bytes(doc)
    _push_ruleset(r, data)
    assert r.bridge.of(F.T_RESULT)[-1].status == M.RS_OK
    r.boot()
    assert r.st.ruleset.version == "9"
    r.connect()
    assert r.bridge.of(F.T_HELLO)[0].ruleset_id == r.st.ruleset.id


def test_pushed_rule_set_gets_its_compact_boot_copy_at_once(rig, monkeypatch):
    # RULESET_END writes ruleset.bin with the pushed bytes' SHA-256 (RULES.md section 9): the
    # next boot takes the fast path of ruleset.load_file and never imports the validator.
    import sys

    from twproto import ruleset as rs_mod

    r = rig()
    r.connect()
    data = canon.canonical_bytes(dict(RULESET, version="11"))
    _push_ruleset(r, data)
    assert r.bridge.of(F.T_RESULT)[-1].status == M.RS_OK
    path = config.join(r.st.root, "ruleset.json")
    with open(path[:-5] + ".bin", "rb") as f:
        assert f.read(36)[4:] == hashlib.sha256(data).digest()  # made from the pushed bytes
    monkeypatch.setitem(sys.modules, "twproto.rsload", None)  # importing it now fails
    got = rs_mod.load_file(path, cache=True)
    assert got.version == "11" and got.id == r.st.ruleset.id


def test_qr_station_with_scanner_leds_and_buzzer_built_from_the_board(rig):
    r = rig(settings={"reader": "qr"}, board=BOARD_QR)
    assert r.st.dev.rfid is None and r.st.dev.scanner is not None
    ok_led, bad_led, attn_led = fm.Pin(26), fm.Pin(13), fm.Pin(14)
    r.connect()
    r.qr.scan("SK00100015")  # tag first, then the bag
    r.run(50)
    assert r.st.state == ST.TAG
    r.cell.place(30_000, r.t)
    assert r.until(lambda: r.bridge.of(F.T_READING), 5000)
    rd = r.bridge.of(F.T_READING)[0]
    assert rd.tag_kind == M.TAG_QR_TEXT and rd.tag == b"SK00100015" and abs(rd.net_g - 30_000) <= 10
    r.bridge.send(M.Ack([(rd.seq, 0)]))
    assert r.until(lambda: r.st.state == ST.FEEDBACK, 1000)
    r.run(20)
    assert ok_led.value() == 1 and bad_led.value() == 0
    # noise on the scanner line: dropped by the driver, reported, never a tag
    r.qr.send_garbage(b"\x00\x01\x02" * 5 + b"\r")
    assert r.until(lambda: M.EV_SCANNER_GARBAGE in r.events(), 1000)
    assert attn_led.value() == 1 or r.st.dev.feedback.pattern == 3
    assert len(r.bridge.readings()) == 1


# -------------------------------------------------------------------- config store and link


def test_config_validation_names_the_field(tmp_path):
    good = {"device_id": 1, "site": "A", "step": 1}
    assert config.Config(good).bind_ms == 5000
    for bad, word in (
        ({"site": "A", "step": 1}, "'device_id' is required"),
        (dict(good, step=16), "'step' must be an integer 0..15"),
        (dict(good, reader="nfc"), "'reader' must be one of"),
        (dict(good, bind_ms=True), "'bind_ms'"),
        (dict(good, colour="red"), "unknown field 'colour'"),
        (dict(good, empty_g=70000), "'empty_g' must be below 'capacity_g'"),
    ):
        with pytest.raises(ConfigError) as e:
            config.Config(bad)
        assert word in str(e.value)
    root = str(tmp_path)
    with pytest.raises(ConfigError, match="missing"):
        config.load(root)
    (tmp_path / "station.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        config.load(root)
    (tmp_path / "key.bin").write_bytes(b"k" * 31)
    with pytest.raises(ConfigError) as e:
        config.load_key(root)
    assert "32 bytes" in str(e.value) and "kkkk" not in str(e.value)
    assert [config.next_boot(root) for _ in range(3)] == [1, 2, 3]
    a = config.Config(good)
    assert a.hash == config.Config(dict(good, operator=0)).hash != config.Config(
        dict(good, operator=5)).hash


def test_ctrl_c_inside_partial_frame_is_data_until_line_idles():
    clock = hw.VirtualClock()
    s = MemStream()
    lk = link.Link(s, Mac(KEY), clock, _urandom)
    s.inbox.extend(b"\xa1\x10\x30\x03")  # a frame has started: 0x03 is one of its bytes
    assert lk.poll() is None and not lk.exit_requested
    clock.advance_ms(300)  # nothing more arrives: the partial frame is abandoned
    for _ in range(5):
        lk.poll()
    s.inbox.extend(b"\x03")
    for _ in range(3):
        lk.poll()
    assert lk.exit_requested


def test_assemble_state_copy_and_timer_slots(rig):
    # assemble.station() starts the state machine with its private copy of IDLE; the ten
    # deadline/last-seen slots of Station._at and the last LIVE's net and flags are distinct
    # indices inside the list; the private booleans in _sf are distinct bits above the
    # HELLO/STATUS flag byte
    from twstation import assemble

    assert S.STATE_NAMES[assemble._IDLE] == "idle"
    slots = [v for k, v in vars(S).items() if k.startswith("_AT_")]
    assert sorted(slots) == list(range(12))
    bits = [v for k, v in vars(S).items() if k.startswith("_B_")]
    assert len(bits) == 7 and all(b > 0xFF and b & (b - 1) == 0 for b in bits)
    assert len(set(bits)) == 7
    r = rig()
    assert len(r.st._at) == 12 and r.st.dev is r.st and r.st.feedback is r.st.dev.feedback
    assert r.st._at[S._AT_LIVE_NET] is None  # no LIVE sent yet
    r.st._sf |= sum(bits)
    assert session.flags(r.st) & ~0xFF == 0  # HELLO/STATUS never carry the private bits
    # twstation.commands clears the boot zero fault through its own copy of the private bit
    from twstation import commands

    assert commands._B_ZERO_CHECKED == S._B_ZERO_CHECKED
    assert commands._SF_ZERO_OUT_OF_RANGE == S._SF_ZERO_OUT_OF_RANGE
    r.st._sf = S._SF_ZERO_OUT_OF_RANGE | S._SF_SCALE_FAULT
    commands._zero_cleared(r.st)
    assert r.st._sf == S._SF_SCALE_FAULT | S._B_ZERO_CHECKED
