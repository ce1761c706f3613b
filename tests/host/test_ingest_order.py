"""SPEC 10 "In order", in the ingest step alone (no threads, no links): a reading that overtook a
predecessor the station still holds is held back (NACK out_of_order, nothing stored) and stored
in order once the predecessor is in; a real gap (the station's HELLO says its journal starts
after the missing readings, or the bridge refused them in this session) is stored at once and
flagged SEQ-GAP; no reading is ever held back longer than hold_s."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from bridge_fakestation import RS, FakeStation

from tagweigh.ingest import NACK_RESULT_OUT_OF_ORDER, Ingestor, Item
from tagweigh.queue import Queue
from tagweigh.wirefast import unpack_reading
from twproto import messages as M
from twproto import reasons as R
from twproto.mac import DIR_STATION

GAP = R.pack_verdict(R.WARN, R.SEQ_GAP)


@pytest.fixture
def ing(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    yield Ingestor(q, RS, provisioned=lambda d: 1767225600.0, hold_s=30.0)
    q.close()


def _session(st: FakeStation, refused: set[int] | None = None) -> SimpleNamespace:
    """What the ingestor reads from a session: the station's latest HELLO and the seqs the
    bridge refused in this session."""
    hello = M.decode_frame(memoryview(st.hello()), st.mac, DIR_STATION)[1]
    return SimpleNamespace(hello=hello, refused=refused or set())


def _items(session, frames: list[bytes], at: float) -> list[Item]:
    return [Item(session, "17", raw, unpack_reading(raw), at, "test") for raw in frames]


def _rows(ing: Ingestor) -> list[tuple]:
    return ing.queue.rows("SELECT seq, chain_ok, reason FROM readings ORDER BY id")


def test_a_reading_ahead_of_its_predecessor_is_held_then_stored_in_order(ing):
    st = FakeStation(17, b"k" * 32)
    st.backlog = 3
    r1, r2, r3 = (st.reading() for _ in range(3))  # the journal holds 1..3
    s = _session(st)
    t = time.time()
    assert ing.process(_items(s, [r2, r3], t)) == [NACK_RESULT_OUT_OF_ORDER] * 2
    assert _rows(ing) == [] and ing.counters["held"] == 2
    assert ing.process(_items(s, [r1, r2, r3], t + 5)) == [0, 0, 0]  # the station's resend, in order
    assert _rows(ing) == [(1, 1, "NONE"), (2, 1, "NONE"), (3, 1, "NONE")]


def test_readings_reordered_within_one_batch_are_stored_in_seq_order_without_a_nack(ing):
    st = FakeStation(17, b"k" * 32)
    st.backlog = 3
    r1, r2, r3 = (st.reading() for _ in range(3))
    assert ing.process(_items(_session(st), [r3, r1, r2], time.time())) == [0, 0, 0]
    assert _rows(ing) == [(1, 1, "NONE"), (2, 1, "NONE"), (3, 1, "NONE")]


def test_a_real_gap_is_stored_at_once_and_flagged(ing):
    st = FakeStation(17, b"k" * 32)
    st.backlog = 2
    r1, r2 = st.reading(), st.reading()
    assert ing.process(_items(_session(st), [r1, r2], time.time())) == [0, 0]
    r5 = st.reading(seq=5)
    st.backlog = 1  # seq 3 and 4 are no longer in the journal: they will never come
    assert ing.process(_items(_session(st), [r5], time.time())) == [GAP]
    assert _rows(ing)[-1] == (5, None, "SEQ-GAP")


def test_a_predecessor_refused_in_this_session_is_not_waited_for(ing):
    st = FakeStation(17, b"k" * 32)
    st.backlog = 2
    _r1, r2 = st.reading(), st.reading()
    assert ing.process(_items(_session(st, refused={1}), [r2], time.time())) == [0]  # first contact
    assert _rows(ing) == [(2, None, "NONE")]


def test_no_reading_is_held_back_longer_than_hold_s(ing):
    st = FakeStation(17, b"k" * 32)
    st.backlog = 3
    r1, r2, r3 = (st.reading() for _ in range(3))
    s = _session(st)
    t = time.time()
    assert ing.process(_items(s, [r1], t)) == [0]
    assert ing.process(_items(s, [r3], t)) == [NACK_RESULT_OUT_OF_ORDER]
    assert ing.process(_items(s, [r3], t + 29.0)) == [NACK_RESULT_OUT_OF_ORDER]
    assert ing.process(_items(s, [r3], t + 30.0)) == [GAP]  # seq 2 never came: stored as a gap
    assert ing.process(_items(s, [r2], t + 31.0)) == [0]  # late, below the head: still checked
    assert _rows(ing) == [(1, 1, "NONE"), (3, None, "SEQ-GAP"), (2, 1, "NONE")]


def test_readings_without_a_session_are_never_held(ing):
    st = FakeStation(17, b"k" * 32)
    st.reading()
    r2 = st.reading()
    assert ing.process([Item(None, "17", r2, unpack_reading(r2), time.time(), None)]) == [0]
