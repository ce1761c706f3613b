"""The uploader prepares the next batch while one is in flight, without changing what is sent,
in which order, or when a batch is marked (real queue, real receiver over loopback HTTP)."""

from __future__ import annotations

import socket
import threading

from tagweigh.receiver import ReceiverHandler
from tagweigh.upload.http import HttpSink
from tagweigh.upload.uploader import Uploader

from uploadkit import FakeClock


def batches_in_order(receiver, depot) -> list[list[int]]:
    """Queue ids of each batch the receiver stored, in the order it stored them."""
    qid = {(d, s): i for i, d, s in depot.queue.rows("SELECT id, device_id, seq FROM readings")}
    out = []
    for (batch_id,) in receiver.store.query("SELECT batch_id FROM batches ORDER BY rowid"):
        out.append(sorted(qid[(d, s)] for d, s in receiver.store.query(
            "SELECT device_id, seq FROM records WHERE batch_id=?", (batch_id,))))
    return out


def test_next_batch_is_prepared_while_one_is_in_flight(depot, receiver):
    depot.fill(devices=2, per_device=15)
    overlapped: list[bool] = []
    prepared: list[int] = []
    second_ready = threading.Event()

    def prepare(rows):
        prepared.append(rows[0]["id"])
        if len(prepared) == 2:
            second_ready.set()
        return encode(rows)

    class Waits(ReceiverHandler):
        def handle_batch(self, doc):
            if not overlapped:  # hold the first batch until the client has built the second
                overlapped.append(second_ready.wait(5))
            return super().handle_batch(doc)

    receiver.start(handler=Waits)
    sink = HttpSink(receiver.url)
    encode = sink.prepare
    sink.prepare = prepare  # type: ignore[method-assign]
    report = Uploader(depot.queue, sink, batch_size=10, disk_warn_free_mb=0).run_once()["http"]
    assert overlapped == [True]
    assert prepared == [1, 11, 21]  # each batch built once
    assert report["uploaded"] == 30 and report["batches"] == 3
    assert batches_in_order(receiver, depot) == [list(range(1, 11)), list(range(11, 21)), list(range(21, 31))]


def test_a_failed_batch_drops_the_batch_read_ahead_and_is_resent_with_its_key(depot, receiver):
    depot.fill(devices=2, per_device=15)
    keys: list[str] = []
    marked_when_sent: list[int] = []

    class FailsSecond(ReceiverHandler):
        def handle_batch(self, doc):
            keys.append(self.headers["Idempotency-Key"])
            marked_when_sent.append(depot.queue.rows("SELECT COUNT(*) FROM deliveries")[0][0])
            if len(keys) == 2:
                return self._error(500, "database unavailable")
            return super().handle_batch(doc)

    receiver.start(handler=FailsSecond)
    clock = FakeClock()
    up = Uploader(depot.queue, HttpSink(receiver.url), batch_size=10, disk_warn_free_mb=0, clock=clock)
    up.run_once()
    # the third batch, read ahead while the second was in flight, was never sent
    assert len(keys) == 2 and receiver.store.count() == 10
    assert depot.queue.rows("SELECT COUNT(*) FROM deliveries")[0][0] == 10  # only the first batch
    clock.t += up.next_due()
    up.run_once()
    assert keys[2] == keys[1]  # the same batch again, so the same idempotency key
    assert len(keys) == 4 and depot.queue.depth("http") == 0 and receiver.store.count() == 30
    assert marked_when_sent == [0, 10, 10, 20]  # each batch sent only after the one before was marked
    assert batches_in_order(receiver, depot) == [list(range(1, 11)), list(range(11, 21)), list(range(21, 31))]
    assert receiver.store.counters["duplicate"] == 0


def test_pending_upload_after_id_leaves_the_low_water_mark_alone(depot):
    depot.fill(devices=1, per_device=12)
    q = depot.queue
    assert [r["id"] for r in q.pending_upload("http", 4, after_id=5)] == [6, 7, 8, 9]
    assert [r["id"] for r in q.pending_upload("http", 3)] == [1, 2, 3]
    q.mark_uploaded("http", [(i, "uploaded", None) for i in (1, 2, 3)])
    q.mark_uploaded("http", [(4, "retry", "later")])
    assert [r["id"] for r in q.pending_upload("http", 3)] == [4, 5, 6]
    assert [r["id"] for r in q.pending_upload("http", 3, after_id=4)] == [5, 6, 7]
    assert q.pending_upload("http", 3, after_id=12) == []


def test_receiver_answers_with_nagle_off(depot, receiver):
    """An answer is two writes (headers, body); with Nagle's algorithm on, the body would wait for
    the client's delayed ACK of the headers (~40 ms per batch on Linux)."""
    depot.fill(devices=1, per_device=3)
    nodelay: list[int] = []

    class Records(ReceiverHandler):
        def handle_batch(self, doc):
            nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            return super().handle_batch(doc)

    receiver.start(handler=Records)
    assert Uploader(depot.queue, HttpSink(receiver.url), disk_warn_free_mb=0).run_once()["http"]["uploaded"] == 3
    assert len(nodelay) == 1 and nodelay[0] != 0
