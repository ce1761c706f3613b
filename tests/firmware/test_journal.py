"""Journal against a model under random operation sequences, with power cuts and reboots
(hypothesis), plus CPython-only checks: fsync on the real file system, OSError mid-write."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twstation import journal as J
from vm_journal import FakeFS, PowerCut, reading

CAP = 4 * 300


def _open(fs):
    return J.Journal("/j", CAP, fs=fs, segments=4)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 3)),  # seq gap before this reading
        st.tuples(st.just("ack"), st.integers(0, 6)),  # index into what is pending
        st.tuples(st.just("reboot"), st.just(0)),
        st.tuples(st.just("cut"), st.integers(0, 90)),  # next append/ack dies after k units
    ),
    max_size=60,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_random_operations_match_a_model(script):
    fs = FakeFS()
    j = _open(fs)
    pending = []  # seqs that must be pending (in order)
    maybe = set()  # seqs acknowledged out of order or by an interrupted ack: may come back
    last = 0
    cut = None
    for kind, arg in script:
        if kind == "cut":
            cut = arg
            continue
        if kind == "reboot":
            j = _open(fs)
        else:
            fs.budget = cut
            try:
                if kind == "append":
                    seq = last + arg
                    try:
                        j.append(reading(seq))
                    except J.JournalFull:
                        assert j.full or j._over(63)
                    else:
                        pending.append(seq)
                        last = seq
                elif pending:
                    seq = pending[min(arg, len(pending) - 1)]
                    j.ack(seq)
                    pending.remove(seq)
                    maybe.add(seq)
            except PowerCut:
                fs.budget = None
                j = _open(fs)
                got = [J._u32(f, 3) for f in j.pending()]
                if kind == "append" and got and got[-1] == seq:
                    pending.append(seq)
                    last = seq
                elif kind == "ack":
                    pending.remove(seq)
                    maybe.add(seq)
            finally:
                fs.budget = None
            cut = None
        got = [J._u32(f, 3) for f in j.pending()]
        # everything that must be there is there, in order; the rest may only be seqs that were
        # acknowledged without reaching the persisted low-water mark
        assert [s for s in got if s not in maybe] == pending
        assert got == sorted(got)
        assert j.head()[0] == last
        if last:
            fr = reading(last)
            assert j.head()[1] == fr[-18:-14]
        assert j.backlog() == len(got)
    j = _open(fs)
    got = [J._u32(f, 3) for f in j.pending()]
    assert [s for s in got if s not in maybe] == pending
    assert j.recovered == 0  # every cut was already repaired by the reopen after it


def test_real_files_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(fd)
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    j = J.Journal(str(tmp_path / "j"), 8192, segments=4)
    n0 = len(synced)  # the first segment's header
    j.append(reading(1))
    assert len(synced) == n0 + 1
    j.ack(1)
    assert len(synced) == n0 + 2


class _FailingFs(J.OsFs):
    """A file system that refuses a write half-way (flash worn out, fs full)."""

    fail = False

    def sync(self, f):
        f.flush()

    def open(self, path, mode):
        f = open(path, mode)
        if "a" not in mode:
            return f
        outer = self

        class F:
            def write(self, b):
                if outer.fail:
                    f.write(bytes(b)[:10])
                    f.flush()
                    raise OSError(28, "no space")
                return f.write(b)

            def __getattr__(self, name):
                return getattr(f, name)

        return F()


def test_failed_write_is_cut_back_and_reported(tmp_path):
    fs = _FailingFs()
    d = str(tmp_path / "j")
    j = J.Journal(d, 8192, fs=fs, segments=4)
    j.append(reading(1))
    fs.fail = True
    with pytest.raises(J.JournalError):
        j.append(reading(2))
    fs.fail = False
    j.append(reading(2))
    j2 = J.Journal(d, 8192, fs=fs, segments=4)
    assert [J._u32(f, 3) for f in j2.pending()] == [1, 2] and j2.recovered == 0


def test_capacity_too_small_is_refused():
    with pytest.raises(J.JournalError):
        J.Journal("/j", 1000, fs=FakeFS(), segments=8)


def test_inlined_constants_match_what_they_stand_for():
    from twproto.crc import crc16
    from twstation import jrecover as R

    assert R._CRC_SOF == crc16(b"\xa1")
    # defined in both files (a segment is the list [_NO, _SIZE, _COUNT, _LAST] in both)
    for name in ("_NACK", "_MAX_BODY", "_EXTRA", "_HDR", "_CHUNK", "_NO", "_SIZE", "_COUNT",
                 "_LAST", "_SOF", "_TYPICAL", "_ACK_ENTRY"):
        assert getattr(R, name) == getattr(J, name), name
