"""The bridge hosts the uploader: committed readings reach the reference receiver over real
HTTP on loopback with only `tagweigh bridge` running, and "retry now" (Bridge.upload_now) wakes
an uploader that is backing off after the backend was down."""

import time

from tagweigh.bridge import Bridge
from tagweigh.config import from_dict
from uploadkit import Depot, Receiver


def _bridge(depot, url, tmp_path):
    cfg = from_dict({"bridge": {"metrics_listen": ""},
                     "queue": {"path": str(depot.queue.path)},
                     "keys": {"path": str(depot.keys.path)},
                     "upload": {"sinks": ["http"], "backoff_initial_s": 60.0,
                                "http": {"url": url}}}, base_dir=tmp_path)
    return Bridge(cfg, ruleset=None)


def _wait(cond, s=10.0):
    end = time.monotonic() + s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_bridge_uploads_committed_readings_and_retry_now_skips_the_backoff(tmp_path):
    depot = Depot(tmp_path)
    depot.fill(devices=2, per_device=3)
    receiver = Receiver(tmp_path, depot.export)
    receiver.start()
    url = receiver.url
    receiver.stop()  # the backend is down when the bridge starts: first attempt fails, 60 s backoff
    depot.queue.close()
    bridge = _bridge(depot, url, tmp_path).start()
    try:
        assert bridge.uploader is not None
        assert _wait(lambda: bridge.uploader.status()["sinks"]["http"]["failures"] >= 1)
        receiver.start()  # back, same port
        time.sleep(1.0)
        assert receiver.store.count() == 0  # still backing off: nothing retried by itself yet
        bridge.upload_now()
        assert _wait(lambda: receiver.store.count() == 6), receiver.store.count()
        # the sink's failure count is cleared when the batch's response is handled, which can
        # come a moment after the receiver stored the rows
        assert _wait(lambda: bridge.snapshot()["upload"]["sinks"]["http"]["failures"] == 0)
    finally:
        bridge.stop()
        receiver.stop()
