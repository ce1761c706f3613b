# Flash journal checks that run in CPython and in the MicroPython VM (plain asserts, no pytest).
# FakeFS models a flash file system where a power cut lets a write land only its first k bytes
# (and a rename, remove or create happen entirely or not at all); tests cut the power at every
# byte of every write of an operation, "reboot" (reopen the journal) and check what survived.
import os

from twproto import messages as M
from twproto.mac import Mac
from twstation import journal as J

TMP_DIR = "/tmp"
_MAC = Mac(bytes(range(32)))
_BUF = bytearray(253)


class PowerCut(Exception):
    pass


class FakeFile:
    def __init__(self, fs, path, data, writable):
        self.fs = fs
        self.path = path
        self.data = data
        self.pos = len(data) if writable == "a" else 0
        self.writable = writable

    def read(self, n=-1):
        end = len(self.data) if n < 0 else min(len(self.data), self.pos + n)
        b = bytes(self.data[self.pos : end])
        self.pos = end
        return b

    def write(self, b):
        if not self.writable:
            raise OSError(9)
        b = bytes(b)
        fs = self.fs
        k = len(b)
        if fs.budget is not None and fs.budget < k:
            k = fs.budget
        self.data[self.pos : self.pos + k] = b[:k]
        self.pos += k
        fs.spend(k)
        if k < len(b):
            raise PowerCut()
        return k

    def seek(self, off, whence=0):
        self.pos = off if whence == 0 else (self.pos + off if whence == 1 else len(self.data) + off)
        return self.pos

    def tell(self):
        return self.pos

    def flush(self):
        pass

    def close(self):
        pass


class FakeFS:
    """In-memory files. `budget`: units left before the power is cut (None: no cut). A byte
    written costs 1; creating/truncating a file, rename, remove and mkdir cost 1 and are atomic."""

    def __init__(self):
        self.files = {}
        self.dirs = set()
        self.budget = None
        self.used = 0

    def clone(self):
        c = FakeFS()
        for p in self.files:
            c.files[p] = bytearray(self.files[p])
        c.dirs = set(self.dirs)
        return c

    def spend(self, n):
        self.used += n
        if self.budget is not None:
            self.budget -= n

    def op(self):
        if self.budget is not None and self.budget < 1:
            raise PowerCut()
        self.spend(1)

    def open(self, path, mode):
        if "r" in mode:
            if path not in self.files:
                raise OSError(2)
            return FakeFile(self, path, self.files[path], None)
        if "w" in mode or path not in self.files:
            self.op()
            self.files[path] = bytearray()
        return FakeFile(self, path, self.files[path], "a" if "a" in mode else "w")

    def sync(self, f):
        pass

    def listdir(self, path):
        if path not in self.dirs:
            raise OSError(2)
        pre = path + "/"
        return [p[len(pre):] for p in self.files if p.startswith(pre) and "/" not in p[len(pre):]]

    def remove(self, path):
        if path not in self.files:
            raise OSError(2)
        self.op()
        del self.files[path]

    def rename(self, a, b):
        if a not in self.files:
            raise OSError(2)
        self.op()
        self.files[b] = self.files.pop(a)

    def mkdir(self, path):
        if path in self.dirs:
            raise OSError(17)
        self.op()
        self.dirs.add(path)

    def size(self, path):
        if path not in self.files:
            raise OSError(2)
        return len(self.files[path])


def reading(seq, tag=b"QR-TW2024-00017"):
    """A real signed READING frame (synced time; a 15-char QR tag gives 64 bytes)."""
    r = M.Reading(seq=seq, flags=8, step=1, tag_kind=3, time=1700000000 + seq, net_g=25000 + seq,
                  tare_g=0, e_g=10, operator=4, cal_id=2, ruleset_id=0x01020304, prev=seq * 7,
                  tag=tag)
    n = M.encode_message(_BUF, r, mac=_MAC)
    return bytes(_BUF[:n])


def _mac4(fr):
    n = len(fr)
    return fr[n - 18 : n - 14]


def _seqs(j):
    return [J._u32(f, 3) for f in j.pending()]


# -- basic behaviour on the real file system -------------------------------------------------------


def _fresh_dir(name):
    try:
        os.mkdir(TMP_DIR)
    except OSError:
        pass
    d = TMP_DIR + "/" + name
    try:
        for n in os.listdir(d):
            os.remove(d + "/" + n)
        os.rmdir(d)
    except OSError:
        pass
    return d


def test_append_ack_reopen_on_real_files():
    d = _fresh_dir("vm_journal_real")
    j = J.Journal(d, 8 * 1024, segments=4)
    assert j.head() == (0, b"\x00\x00\x00\x00") and j.backlog() == 0 and not j.full
    frames = [reading(s) for s in range(1, 61)]
    for fr in frames:
        j.append(fr)
    assert j.backlog() == 60
    assert list(j.pending()) == frames  # exact signed bytes, in order
    assert j.head() == (60, _mac4(frames[-1]))
    for s in range(1, 41):
        assert j.ack(s)
    assert not j.ack(5)  # already acknowledged
    j2 = J.Journal(d, 8 * 1024, segments=4)
    assert _seqs(j2) == list(range(41, 61))
    assert j2.head() == (60, _mac4(frames[-1])) and j2.recovered == 0
    names = os.listdir(d)
    assert len([n for n in names if n.startswith("seg.")]) < 4  # acknowledged segments deleted


def test_refuses_bad_frames_and_old_seq():
    fs = FakeFS()
    j = J.Journal("/j", 4096, fs=fs, segments=4)
    j.append(reading(5))
    for bad in (reading(5), reading(4), reading(6)[:-1], b"\xa0" + reading(6)[1:],
                reading(6)[:-1] + b"\x00"):
        try:
            j.append(bad)
            assert False, bad
        except J.JournalError:
            pass
    j.append(memoryview(bytearray(reading(6))))
    assert _seqs(j) == [5, 6]


def test_refusals_say_why_and_write_nothing():
    # one error class for every refusal (JournalFull and JournalCorrupt are names for it): the
    # message says which check failed, in the order append() checks them
    fs = FakeFS()
    j = J.Journal("/j", 4 * 300, fs=fs, segments=4)
    j.append(reading(5))
    before = dict((k, bytes(v)) for k, v in fs.files.items())
    nack = bytearray(reading(6))
    nack[2] = 0x12
    for bad, why in ((reading(6)[:-1], "journal: not a frame"), (b"\xa1", "journal: not a frame"),
                     (bytes(nack), "journal: unauthenticated frame"),
                     (reading(6)[:-1] + b"\x00", "journal: bad frame CRC"),
                     (reading(5), "journal: seq 5 not above 5"),
                     (reading(4), "journal: seq 4 not above 5")):
        try:
            j.append(bad)
            assert False, why
        except J.JournalError as e:
            assert str(e) == why, (str(e), why)
    assert dict((k, bytes(v)) for k, v in fs.files.items()) == before
    assert J.JournalFull is J.JournalError and J.JournalCorrupt is J.JournalError
    seq = 5
    while not j.full:
        seq += 1
        j.append(reading(seq))
    big = reading(seq + 1, tag=b"QR-TW2024-00017-LONGER-TAG")  # no room for it either
    try:
        j.append(big)
        assert False, "full"
    except J.JournalFull as e:
        assert str(e) == "journal full: " + str(seq - 4) + " readings not sent", str(e)
    assert _seqs(j)[-1] == seq


def test_ack_log_is_rewritten_when_it_reaches_its_limit():
    # the ack log's length is kept in RAM (set at open from the file): it grows by one 6-byte
    # entry per in-order ack and is replaced by a single entry once it reaches _ACK_MAX, also
    # across reopens; the first ack creates it
    fs = FakeFS()
    j = J.Journal("/j", 4096, fs=fs, segments=4)
    assert "/j/ack" not in fs.files
    sizes = []
    for s in range(1, 201):
        j.append(reading(s))
        j.ack(s)
        n = len(fs.files["/j/ack"])
        sizes.append(n)
        assert n % 6 == 0 and 6 <= n < J._ACK_MAX + 6, (s, n)
        if s in (50, 51, 130):
            j = J.Journal("/j", 4096, fs=fs, segments=4)
            assert len(fs.files["/j/ack"]) == n  # a clean log is not rewritten at open
    assert sizes.count(6) >= 2 and max(sizes) >= J._ACK_MAX
    j = J.Journal("/j", 4096, fs=fs, segments=4)
    assert _seqs(j) == [] and j.head()[0] == 200 and j.backlog() == 0


def test_newest_segment_stays_open_between_appends():
    # one open per segment, not per reading; each record is on "flash" (the file data) as soon
    # as append() returns; after close() the next append reopens the segment
    fs = FakeFS()
    opened = []
    real_open = fs.open

    def spy(path, mode):
        if "a" in mode:
            opened.append(path)
        return real_open(path, mode)

    fs.open = spy
    j = J.Journal("/j", 4 * 300, fs=fs, segments=4)
    for s in range(1, 9):  # 4 records per segment: seg 1 and seg 2
        j.append(reading(s))
        segs = sorted(p for p in fs.files if "/seg." in p)
        assert bytes(fs.files[segs[-1]]).endswith(reading(s)[1:]), s
    assert opened == ["/j/seg.00000001", "/j/seg.00000002"], opened
    j.close()
    j.append(reading(9))
    assert opened[-1] == "/j/seg.00000003" and len(opened) == 3
    j.close()
    j.close()  # twice is harmless
    j.append(reading(10))
    assert len(opened) == 4
    assert _seqs(J.Journal("/j", 4 * 300, fs=fs, segments=4)) == list(range(1, 11))


def test_full_never_overwrites_and_warns_first():
    fs = FakeFS()
    j = J.Journal("/j", 4 * 300, fs=fs, segments=4, warn_pct=75)
    seq = 0
    warned_at = None
    while True:
        fr = reading(seq + 1)
        try:
            j.append(fr)
        except J.JournalFull:
            break
        seq += 1
        if j.nearly_full and warned_at is None:
            warned_at = seq
    assert j.full and seq == 17  # 4 segments of 18 + 4 x 63 bytes, a 5th with one record
    assert warned_at is not None and warned_at < seq
    assert _seqs(j) == list(range(1, 18))
    for s in range(1, 5):  # the bridge takes the first segment: room again
        j.ack(s)
    assert not j.full
    j.append(reading(18))
    assert _seqs(j)[-1] == 18 and j.head()[0] == 18


def test_out_of_order_acks():
    fs = FakeFS()
    j = J.Journal("/j", 4096, fs=fs, segments=4)
    for s in range(1, 9):
        j.append(reading(s))
    assert j.ack(3) and j.ack(4)
    assert _seqs(j) == [1, 2, 5, 6, 7, 8] and j.backlog() == 6
    j.ack(1)
    assert _seqs(j) == [2, 5, 6, 7, 8]
    j.ack(2)  # W jumps over 3 and 4
    assert _seqs(j) == [5, 6, 7, 8] and j.backlog() == 4
    j.ack(7)
    j2 = J.Journal("/j", 4096, fs=fs, segments=4)
    # the out-of-order ack of 7 lived in RAM only: 7 is sent again (the bridge dedupes)
    assert _seqs(j2) == [5, 6, 7, 8]
    assert list(j.pending(6)) == [reading(8)]
    assert j.frame(6) == reading(6) and j.frame(7) is None and j.frame(3) is None


def test_head_survives_when_everything_is_acknowledged():
    fs = FakeFS()
    j = J.Journal("/j", 4 * 300, fs=fs, segments=4)
    for s in range(1, 14):
        j.append(reading(s))
    for s in range(1, 14):
        j.ack(s)
    segs = [p for p in fs.files if "/seg." in p]
    assert len(segs) == 1
    j2 = J.Journal("/j", 4 * 300, fs=fs, segments=4)
    assert j2.head() == (13, _mac4(reading(13))) and j2.backlog() == 0
    for s in range(14, 40):  # fills and rotates: the head moves into the new segment headers
        j2.append(reading(s))
        j2.ack(s)
    j3 = J.Journal("/j", 4 * 300, fs=fs, segments=4)
    assert j3.head() == (39, _mac4(reading(39))) and list(j3.pending()) == []


def test_corruption_is_reported_not_deleted():
    fs = FakeFS()
    j = J.Journal("/j", 4 * 300, fs=fs, segments=4)
    for s in range(1, 10):
        j.append(reading(s))
    p = "/j/seg.00000001"
    fs.files[p][40] ^= 0x01  # a bit flips in the middle of the oldest segment
    before = dict((k, bytes(v)) for k, v in fs.files.items())
    try:
        J.Journal("/j", 4 * 300, fs=fs, segments=4)
        assert False, "corruption not seen"
    except J.JournalCorrupt as e:
        assert "seg.00000001" in str(e)
    assert dict((k, bytes(v)) for k, v in fs.files.items()) == before


# -- power cuts --------------------------------------------------------------------------------------


def _script(n_app, acks):
    """Steps: ('a', seq) append, ('k', seq) ack; small segments so rotation and compaction and
    the ack log rewrite all happen."""
    steps = []
    for s in range(1, n_app + 1):
        steps.append(("a", s))
        if s in acks:
            for a in acks[s]:
                steps.append(("k", a))
    return steps


def _run(j, step):
    kind, s = step
    if kind == "a":
        j.append(reading(s))
    else:
        j.ack(s)


def _check_after_cut(fs, model, step):
    """Reopen after a power cut during `step`. `model` is what must be pending before the step
    (each step runs on a freshly opened journal, so an out-of-order ack lives in RAM only and is
    forgotten: the reading is sent again, and the bridge dedupes). After the cut: every completed
    append is there with its exact bytes; the interrupted append is all there or absent; an
    interrupted ack landed or not; nothing acknowledged in order comes back; the head matches the
    last record; the journal takes the next reading and reopens clean."""
    fs.budget = None
    j = J.Journal("/j", 4 * 300, fs=fs, segments=4)
    pend = list(j.pending())
    seqs = [J._u32(f, 3) for f in pend]
    kind, s = step
    if kind == "a":
        assert seqs == model or seqs == model + [s], (step, seqs, model)
    else:
        assert seqs == model or seqs == _acked(model, s), (step, seqs, model)
    for f in pend:
        assert f == reading(J._u32(f, 3))
    last = _last[0]
    if kind == "a" and s in seqs:
        last = s
    assert j.head() == (last, _mac4(reading(last)) if last else b"\x00\x00\x00\x00"), step
    j.append(reading(last + 1))
    j2 = J.Journal("/j", 4 * 300, fs=fs, segments=4)
    assert [J._u32(f, 3) for f in j2.pending()][-1] == last + 1
    assert j2.recovered == 0


_last = [0]


def _acked(model, s):
    return model[1:] if model and model[0] == s else model


def _power_cut_every_byte(steps):
    base = FakeFS()
    J.Journal("/j", 4 * 300, fs=base, segments=4)
    model = []
    _last[0] = 0
    cuts = 0
    for step in steps:
        k = 0
        while True:
            fs = base.clone()
            j = J.Journal("/j", 4 * 300, fs=fs, segments=4)
            fs.budget = k  # opening a clean journal writes nothing; the cut is in the step
            try:
                _run(j, step)
            except PowerCut:
                _check_after_cut(fs, model, step)
                cuts += 1
                k += 1
                continue
            break  # k was enough for the whole step
        j = J.Journal("/j", 4 * 300, fs=base, segments=4)
        _run(j, step)
        if step[0] == "a":
            model = model + [step[1]]
            _last[0] = step[1]
        else:
            model = _acked(model, step[1])
        j = J.Journal("/j", 4 * 300, fs=base, segments=4)
        assert [J._u32(f, 3) for f in j.pending()] == model and j.recovered == 0
    return cuts


def test_power_cut_at_every_byte_of_appends_acks_rotation_and_compaction():
    saved = J._ACK_MAX
    J._ACK_MAX = 18  # rewrite the ack log every 3 entries so that step is cut too
    try:
        # appends across 4 segment rotations, in-order and out-of-order acks, segment deletions
        # and ack-log rewrites: ~960 cut points
        steps = _script(14, {4: (1, 2), 6: (4, 3), 9: (5, 6, 7, 8), 13: (9, 10, 11, 12)})
        cuts = _power_cut_every_byte(steps)
    finally:
        J._ACK_MAX = saved
    assert cuts > 64 * 14


def test_torn_tail_is_cut_and_counted():
    fs = FakeFS()
    j = J.Journal("/j", 4096, fs=fs, segments=4)
    for s in range(1, 4):
        j.append(reading(s))
    p = "/j/seg.00000001"
    full = bytes(fs.files[p])
    for k in range(1, 63):
        fs.files[p] = bytearray(full + reading(4)[1 : 1 + k])
        j2 = J.Journal("/j", 4096, fs=fs, segments=4)
        assert j2.recovered == k and j2.discarded == 1, k
        assert bytes(fs.files[p]) == full
        assert _seqs(j2) == [1, 2, 3]


def test_pending_after_resumes_where_it_stopped():
    fs = FakeFS()
    j = J.Journal("/j", 4 * 300, fs=fs, segments=4)
    for s in range(1, 15):
        j.append(reading(s))
    sent = 0
    out = []
    while True:  # the station's pump: one frame at a time, after the last one sent
        fr = None
        for fr in j.pending(sent):
            break
        if fr is None:
            break
        sent = J._u32(fr, 3)
        out.append(sent)
        if sent == 6:
            j.ack(1)
            j.ack(2)
            j.ack(3)
            j.ack(4)  # the first segment goes
    assert out == list(range(1, 15))
    assert _seqs(j) == list(range(5, 15))
    assert list(j.pending(9))[0] == reading(10)
    assert [J._u32(f, 3) for f in j.pending(0)] == list(range(5, 15))  # hint ignored: before it
