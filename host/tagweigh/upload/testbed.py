"""Realistic queue contents for tests, benchmarks and the integrator's guide.

Readings are real signed READING frames (twproto, with each device's key from a KeyRegistry),
linked in a hash chain, stored through the bridge's own ingest path (`tagweigh.ingest.Ingestor`):
exactly what a depot's queue holds after a shift.
"""

from __future__ import annotations

import time
from typing import Any

from twproto.frame import MAX_FRAME
from twproto.mac import Mac
from twproto.messages import Reading, chain_link, decode_frame, encode_message

from tagweigh.ingest import Ingestor, Item
from tagweigh.keys import KeyRegistry
from tagweigh.queue import Queue

__all__ = ["StationSim", "fill_queue"]

T0 = 1_714_557_600  # 2024-05-01T10:00:00Z


class StationSim:
    """Signs readings for one device like a station does (seq, hash chain)."""

    def __init__(self, device_id: str, key: bytes, step: int = 2, site: str = "depot-1"):
        self.device_id = device_id
        self.mac = Mac(key)
        self.step = step
        self.site = site
        self.seq = 0
        self.head = b""
        self._buf = bytearray(MAX_FRAME)

    def reading(self, *, tag: bytes | None = None, tag_kind: int = 3, net_g: int = 25_000,
                t: int | None = T0, boot: int = 1, uptime_ms: int = 0, verdict: int = 0,
                reason: int = 0, tare_g: int = 120, e_g: int = 10, flags: int = 0x08,
                operator: int = 7, cal_id: int = 3, ruleset_id: int = 0x1234ABCD) -> tuple[bytes, Any]:
        """(frame, decoded Reading) of the next reading."""
        self.seq += 1
        r = Reading(seq=self.seq, flags=flags, step=self.step, tag_kind=tag_kind, verdict=verdict,
                    reason=reason, time=t, boot=boot, uptime_ms=uptime_ms, net_g=net_g, tare_g=tare_g,
                    e_g=e_g, operator=operator, cal_id=cal_id, ruleset_id=ruleset_id,
                    prev=0 if self.seq == 1 else chain_link(self.head),
                    tag=tag if tag is not None else b"BAG-%06d" % self.seq)
        n = encode_message(self._buf, r, self.mac)
        raw = bytes(self._buf[:n])
        _t, decoded = decode_frame(raw, self.mac, 0x53)
        self.head = decoded.mac
        return raw, decoded


def fill_queue(queue: Queue, keys: KeyRegistry, *, devices: int = 2, per_device: int = 10,
               site: str = "depot-1", step: int = 2, batch: int = 2000, unsynced_every: int = 0,
               start_time: int = T0, ruleset: Any = None,
               first_device: int = 1001) -> list[StationSim]:
    """Store devices × per_device readings through the bridge's ingest path. Device ids are
    first_device, +1, ...; keys are added to `keys` if missing. Readings alternate between devices,
    one minute apart. unsynced_every=k: every k-th reading carries boot+uptime instead of a time."""
    now = time.time()
    stations = []
    for i in range(devices):
        dev = str(first_device + i)
        key = keys.get(dev) or keys.add(dev, site=site)
        stations.append(StationSim(dev, key, step=step, site=site))
    with queue.transaction() as db:
        for s in stations:
            Queue.record_hello(db, s.device_id, now=now, boot=1, uptime_ms=60_000, port="sim",
                               hello={"device_id": s.device_id}, site=s.site, step=s.step)
    ingest = Ingestor(queue, ruleset)
    items: list[Item] = []
    k = 0
    for n in range(per_device):
        for s in stations:
            k += 1
            synced = not (unsynced_every and k % unsynced_every == 0)
            raw, r = s.reading(net_g=20_000 + 10 * ((k * 37) % 1000), t=start_time + 60 * k if synced else None,
                               uptime_ms=5_000 + k)
            items.append(Item(None, s.device_id, raw, r, now, "sim"))
            if len(items) >= batch:
                ingest.process(items)
                items = []
    if items:
        ingest.process(items)
    return stations
