"""Backlog drain: 100,000 queued readings uploaded to the reference receiver over loopback HTTP.

The queue is filled through the bridge's real ingest path with signed frames (a depot that was
offline for weeks); the receiver runs as its own process (`tagweigh receiver`) and re-verifies
every MAC. Figures: drain_records_per_s (goal >= 6,000), rss_mb of the uploading process,
duplicates (records the receiver saw twice; goal 0), batch_ms_p50 (one batch's round trip: POST
to answer), and the CPU each side spent per record (client_cpu_us, receiver_cpu_us), which say
more than the rate when the machine is shared.

    python bench/drain.py [--records N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "host"), str(ROOT / "protocol")]

from tagweigh.keys import KeyRegistry  # noqa: E402
from tagweigh.queue import Queue  # noqa: E402
from tagweigh.upload.http import HttpSink  # noqa: E402
from tagweigh.upload.testbed import fill_queue  # noqa: E402
from tagweigh.upload.uploader import Uploader  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(who: int) -> float:
    use = resource.getrusage(who)
    return use.ru_utime + use.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        queue, keys = Queue(root / "queue.sqlite3"), KeyRegistry(root / "keys.json")
        t = time.perf_counter()
        fill_queue(queue, keys, devices=args.devices, per_device=args.records // args.devices, batch=5000)
        print(f"filled {args.records} readings in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        keys.export_keys(root / "receiver-keys.json")
        port = free_port()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "protocol")]))
        recv = subprocess.Popen([sys.executable, "-m", "tagweigh", "receiver", "--keys", str(root / "receiver-keys.json"),
                                 "--db", str(root / "receiver.sqlite3"), "--listen", f"127.0.0.1:{port}"],
                                stdout=subprocess.PIPE, env=env, text=True)
        try:
            recv.stdout.readline()  # listening
            sink = HttpSink(f"http://127.0.0.1:{port}/v1/batches")
            round_trips = []
            deliver = sink.deliver

            def timed(rows, prepared):
                t0 = time.perf_counter()
                try:
                    return deliver(rows, prepared)
                finally:
                    round_trips.append(time.perf_counter() - t0)

            sink.deliver = timed  # type: ignore[method-assign]
            up = Uploader(queue, sink, batch_size=args.batch_size, disk_warn_free_mb=0)
            cpu0, t = cpu_s(resource.RUSAGE_SELF), time.perf_counter()
            report = up.run_once(force=True)["http"]
            elapsed, client_cpu = time.perf_counter() - t, cpu_s(resource.RUSAGE_SELF) - cpu0
            up.close()
        finally:
            recv.terminate()
            recv.wait(30)
        receiver_cpu = cpu_s(resource.RUSAGE_CHILDREN)  # the receiver is our only child
        db = sqlite3.connect(root / "receiver.sqlite3")
        stored = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        duplicates = sum(1 for (resp,) in db.execute("SELECT response FROM batches")
                         for r in json.loads(resp)["results"] if r["status"] != "accepted")
        db.close()
        left = queue.depth("http")
        queue.close()
    if report["last_error"] or stored != args.records or left:
        print(f"drain incomplete: stored={stored} left={left} error={report['last_error']}", file=sys.stderr)
        sys.exit(1)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{stored} records in {elapsed:.2f} s, {report['batches']} batches of {args.batch_size}", file=sys.stderr)
    print(f"drain_records_per_s={stored / elapsed:.0f} rss_mb={rss_mb:.0f} duplicates={duplicates} "
          f"batch_ms_p50={statistics.median(round_trips) * 1000:.1f} "
          f"client_cpu_us={client_cpu / stored * 1e6:.0f} receiver_cpu_us={receiver_cpu / stored * 1e6:.0f}")


if __name__ == "__main__":
    main()
