"""HTTP batch upload to the reference receiver over real loopback HTTP, and every failure mode
the issue lists: 500s, timeouts, slow answers, connections closed mid-body, accept-then-crash,
bad TLS certificates, 413/400/401/429, a backend down for days (simulated clock), a nearly full
disk, and a crash of the uploader process itself."""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from tagweigh.receiver import ReceiverHandler
from tagweigh.upload.http import HttpSink, parse_retry_after
from tagweigh.upload.records import load_schema
from tagweigh.upload.uploader import Uploader

from uploadkit import REPO_ROOT, FakeClock, free_port


def uploader(depot, sink, **kw) -> Uploader:
    kw.setdefault("disk_warn_free_mb", 0)
    return Uploader(depot.queue, sink, **kw)


def stored(receiver) -> int:
    return receiver.store.count()


def states(depot, sink="http") -> dict[str, int]:
    return dict(depot.queue.rows("SELECT state, COUNT(*) FROM deliveries WHERE sink=? GROUP BY state", (sink,)))


def test_drain_verifies_every_record_and_stores_each_once(depot, receiver):
    depot.fill(devices=3, per_device=40, unsynced_every=7)
    receiver.start(token="t0ken")
    up = uploader(depot, HttpSink(receiver.url, token="t0ken", bridge_id="depot-1-bridge"), batch_size=25)
    report = up.run_once()["http"]
    assert report["uploaded"] == 120 and report["rejected"] == 0 and report["batches"] == 5
    assert stored(receiver) == 120 and receiver.store.counters["accepted"] == 120
    assert depot.queue.depth("http") == 0 and states(depot) == {"uploaded": 120}
    # what the backend got is valid against the published schema, chain links checked
    validator = jsonschema.Draft202012Validator(load_schema())
    for (text,) in receiver.store.query("SELECT record FROM records"):
        validator.validate(json.loads(text))
    assert receiver.store.query("SELECT COUNT(*) FROM records WHERE chain_ok = 1")[0][0] == 120
    # oldest first: the receiver got them in queue order
    qid = {(d, s): i for i, d, s in depot.queue.rows("SELECT id, device_id, seq FROM readings")}
    spans = []
    for (batch_id,) in receiver.store.query("SELECT batch_id FROM batches ORDER BY received_at"):
        ids = [qid[(d, s)] for d, s in receiver.store.query(
            "SELECT device_id, seq FROM records WHERE batch_id=?", (batch_id,))]
        spans.append((min(ids), max(ids)))
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])) and len(spans) == 5
    # nothing left: a second pass sends nothing
    before = receiver.store.counters["batches"]
    up.run_once()
    assert receiver.store.counters["batches"] == before


def test_new_readings_after_a_drain_are_sent_next(depot, receiver):
    depot.fill(devices=1, per_device=5)
    receiver.start()
    up = uploader(depot, HttpSink(receiver.url))
    up.run_once()
    depot.fill(devices=2, per_device=3, first_device=2001)  # two more stations report
    up.run_once()
    assert stored(receiver) == 11 and depot.queue.depth("http") == 0


def test_backend_rejection_is_final_and_keeps_the_backend_reason(depot, receiver):
    depot.fill(devices=2, per_device=5)
    depot.keys.export_keys(depot.export, devices=["1001"])  # the backend does not know 1002
    receiver.start()
    up = uploader(depot, HttpSink(receiver.url))
    assert up.run_once()["http"]["rejected"] == 5
    rows = depot.queue.rows("SELECT r.device_id, d.state, d.last_error FROM deliveries d "
                            "JOIN readings r ON r.id = d.reading_id WHERE d.sink='http'")
    assert {(dev, st, err) for dev, st, err in rows} == {("1001", "uploaded", None),
                                                        ("1002", "rejected", "unknown_device")}
    batches = receiver.store.counters["batches"]
    up.run_once(force=True)  # not retried
    assert receiver.store.counters["batches"] == batches and depot.queue.depth("http") == 0


class Flaky(ReceiverHandler):
    """Fails the first `fail` batch requests in the way `mode` says, then behaves."""

    fail = 0
    mode = "500"
    seen = 0
    delay = 0.0

    def handle_batch(self, doc):
        cls = type(self)
        cls.seen += 1
        if cls.seen > cls.fail:
            time.sleep(cls.delay)
            return super().handle_batch(doc)
        if cls.mode == "500":
            self._error(500, "database unavailable")
        elif cls.mode == "503":
            self._error(503, "maintenance", {"Retry-After": "120"})
        elif cls.mode == "crash-after-commit":  # stored, then dies before answering
            self.server.store.ingest_batch(self.headers["Idempotency-Key"], doc)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif cls.mode == "late":  # stored, answers after the client gave up
            self.server.store.ingest_batch(self.headers["Idempotency-Key"], doc)
            time.sleep(0.8)
            self.close_connection = True
        elif cls.mode == "mid-body":  # answer cut off mid-body
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b'{"batch_id": "x", "results": [')
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


def flaky(mode: str, fail: int, delay: float = 0.0) -> type:
    return type("Flaky_" + mode.replace("-", "_"), (Flaky,), {"mode": mode, "fail": fail, "seen": 0, "delay": delay})


def drain_with_clock(up: Uploader, clock: FakeClock, max_rounds: int = 50) -> int:
    """Run passes, jumping the simulated clock to each next attempt, until the queue is empty."""
    for rounds in range(1, max_rounds + 1):
        up.run_once()
        if up.queue.depth("http") == 0:
            return rounds
        clock.t += up.next_due() + 0.001
    raise AssertionError("did not drain")


@pytest.mark.parametrize("mode", ["500", "crash-after-commit", "mid-body"])
def test_failures_are_retried_with_backoff_and_nothing_is_stored_twice(depot, receiver, mode):
    depot.fill(devices=2, per_device=10)
    handler = flaky(mode, fail=2)
    receiver.start(handler=handler)
    clock = FakeClock()
    up = uploader(depot, HttpSink(receiver.url, timeout_s=5), batch_size=50, clock=clock,
                  rng=lambda: 0.5, backoff_initial_s=2, backoff_max_s=60)
    t0 = clock.t
    assert drain_with_clock(up, clock) == 3
    assert clock.t - t0 == pytest.approx(1.5 + 3.0, abs=0.01)  # 2 s then 4 s, equal jitter at 0.5
    assert stored(receiver) == 20 and states(depot) == {"uploaded": 20}
    if mode == "crash-after-commit":  # the retry carried the same key: answered from the record
        assert receiver.store.counters["replayed"] == 2 and receiver.store.counters["accepted"] == 20


def test_timeout_then_the_late_batch_is_answered_from_its_idempotency_record(depot, receiver):
    depot.fill(devices=1, per_device=8)
    receiver.start(handler=flaky("late", fail=1))
    clock = FakeClock()
    up = uploader(depot, HttpSink(receiver.url, timeout_s=0.3), clock=clock)
    t = time.monotonic()
    up.run_once()
    assert time.monotonic() - t < 0.8 + 0.5  # bounded by the client timeout, not the server
    st = up.states["http"]
    assert st.failures == 1 and "no answer in time" in st.last_error
    assert depot.queue.depth("http") == 8 and stored(receiver) == 8  # the backend has it already
    clock.t += up.next_due()
    up.run_once()
    assert depot.queue.depth("http") == 0
    assert receiver.store.counters["replayed"] == 1 and receiver.store.counters["accepted"] == 8


def test_slow_backend_within_the_timeout_is_fine(depot, receiver):
    depot.fill(devices=1, per_device=4)
    receiver.start(handler=flaky("500", fail=0, delay=0.3))
    up = uploader(depot, HttpSink(receiver.url, timeout_s=5))
    assert up.run_once()["http"]["uploaded"] == 4


def test_503_retry_after_is_honoured(depot, receiver):
    depot.fill(devices=1, per_device=3)
    receiver.start(handler=flaky("503", fail=1))
    clock = FakeClock()
    up = uploader(depot, HttpSink(receiver.url), clock=clock, rng=lambda: 0.0, backoff_max_s=10)
    up.run_once()
    assert up.next_due() == pytest.approx(120.0)  # the backend's wish, not our 10 s cap
    clock.t += 119
    up.run_once()
    assert receiver.server.RequestHandlerClass.seen == 1  # not due yet: nothing sent
    clock.t += 1.01
    up.run_once()
    assert depot.queue.depth("http") == 0


def test_retry_after_forms():
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == pytest.approx(60.0)


def test_backend_down_for_days_then_back(depot, receiver):
    depot.fill(devices=2, per_device=50)
    port = free_port()  # nothing listens here for three simulated days
    clock = FakeClock()
    up = uploader(depot, HttpSink(f"http://127.0.0.1:{port}/v1/batches", connect_timeout_s=1),
                  batch_size=40, clock=clock, backoff_initial_s=1, backoff_max_s=600)
    delays, start = [], clock.t
    while clock.t - start < 3 * 86400:
        up.run_once()
        delays.append(up.next_due())
        clock.t += delays[-1]
    assert depot.queue.depth("http") == 100
    assert max(delays) <= 600 and min(delays[12:]) >= 300  # capped, and no tight loop
    assert 3 * 86400 / 600 <= len(delays) <= 3 * 86400 / 300 + 12
    assert depot.queue.rows("SELECT COUNT(*) FROM deliveries")[0][0] == 0  # no disk writes meanwhile
    assert "ConnectError" in up.states["http"].last_error
    receiver.port = port
    receiver.start()
    clock.t += up.next_due()
    up.run_once()
    assert depot.queue.depth("http") == 0 and stored(receiver) == 100
    assert receiver.store.counters["duplicate"] == 0


def test_413_shrinks_batches_and_400_isolates_the_bad_record(depot, receiver):
    depot.fill(devices=1, per_device=30)

    class Picky(ReceiverHandler):
        def handle_batch(self, doc):
            ids = [r["record_id"] for r in doc["records"]]
            if len(ids) > 8:
                return self._error(413, "at most 8 records")
            if "1001:13" in ids:
                return self._error(400, "record 1001:13 has a field we cannot parse")
            return super().handle_batch(doc)

    receiver.start(handler=Picky)
    up = uploader(depot, HttpSink(receiver.url), batch_size=30)
    up.run_once()
    assert up.states["http"].batch_size <= 8
    assert depot.queue.depth("http") == 0 and stored(receiver) == 29
    bad = depot.queue.rows("SELECT r.seq, d.last_error FROM deliveries d JOIN readings r ON r.id=d.reading_id "
                           "WHERE d.state='rejected'")
    assert bad == [(13, "HTTP 400: record 1001:13 has a field we cannot parse")]


def test_wrong_token_is_a_clear_fatal_error_and_marks_nothing(depot, receiver):
    depot.fill(devices=1, per_device=3)
    receiver.start(token="right")
    up = uploader(depot, HttpSink(receiver.url, token="wrong"))
    up.run_once()
    st = up.states["http"]
    assert st.fatal and "401" in st.last_error and "token" in st.last_error
    assert depot.queue.rows("SELECT COUNT(*) FROM deliveries")[0][0] == 0


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tagweigh test backend")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_untrusted_certificate_is_refused_with_a_clear_error(depot, receiver, tmp_path):
    depot.fill(devices=1, per_device=3)
    cert, key = _self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    receiver.start(ssl_context=ctx)
    assert receiver.url.startswith("https://")
    up = uploader(depot, HttpSink(receiver.url))  # system CAs only: must refuse
    up.run_once()
    st = up.states["http"]
    assert st.fatal and "TLS verification failed" in st.last_error and "ca_bundle" in st.last_error
    assert "certificate" in st.last_error.lower()
    assert stored(receiver) == 0
    up2 = uploader(depot, HttpSink(receiver.url, ca_bundle=cert))  # the integrator's CA bundle
    assert up2.run_once()["http"]["uploaded"] == 3


def test_nearly_full_disk_warns(depot, caplog):
    depot.fill(devices=1, per_device=1)
    sink = HttpSink(f"http://127.0.0.1:{free_port()}/v1/batches")
    up = Uploader(depot.queue, sink, disk_warn_free_mb=10**12)  # more than any disk here
    with caplog.at_level(logging.WARNING, logger="tagweigh.upload"):
        up.run_once()
    assert "nearly full" in (up.status()["disk_warning"] or "")
    assert any("nearly full" in r.getMessage() for r in caplog.records)
    assert Uploader(depot.queue, sink, disk_warn_free_mb=0).check_disk() is None


def test_bridge_thread_loop_uploads_new_readings(depot, receiver):
    depot.fill(devices=1, per_device=2)
    receiver.start()
    up = uploader(depot, HttpSink(receiver.url))
    stop = threading.Event()
    t = threading.Thread(target=up.run, args=(stop,), kwargs={"idle_s": 0.05}, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while stored(receiver) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        depot.fill(devices=1, per_device=3, first_device=2001)
        while stored(receiver) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(5)
    assert not t.is_alive() and stored(receiver) == 5


CHILD = """
import sys, time
from tagweigh.queue import Queue
from tagweigh.upload.http import HttpSink
from tagweigh.upload.uploader import Uploader
up = Uploader(Queue(sys.argv[1]), HttpSink(sys.argv[2]), batch_size=20, disk_warn_free_mb=0)
print("ready", flush=True)
up.run_once(force=True)
"""


def test_killed_uploader_resumes_where_it_stopped(depot, receiver):
    depot.fill(devices=2, per_device=100)
    receiver.start(handler=flaky("500", fail=0, delay=0.03))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "host"), str(REPO_ROOT / "protocol")]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(depot.queue.path), receiver.url],
                             stdout=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 20
        while receiver.store.counters["batches"] < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(10)
    got = stored(receiver)
    assert 40 <= got < 200, got  # killed mid-drain
    up = uploader(depot, HttpSink(receiver.url), batch_size=20)
    up.run_once()
    assert depot.queue.depth("http") == 0 and stored(receiver) == 200
    # at most the one batch in flight at the kill was sent twice, and it was recognised
    assert receiver.store.counters["duplicate"] + 20 * receiver.store.counters["replayed"] <= 20
