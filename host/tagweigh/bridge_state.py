"""The bridge's state for the shared rules (twproto.rules.RuleState), backed by the queue.

The station keeps a bounded ring of recent tags; the bridge answers from every reading ever
stored. To keep rule evaluation cheap (the ingest budget is a few tens of microseconds per
reading), the answers come from memory: at start the tag index is loaded from SQLite once
(about 200 bytes per distinct tag, so a million bags fit in a few hundred MB) and from then on
the committer thread, the only writer, updates it as it stores readings. If a transaction fails
the caller calls `reset()` and the state is rebuilt from what is really on disk.

Answers follow twproto.rules.RuleState: they are about readings recorded before the one being
evaluated, counting only readings whose bridge verdict was not reject (voided readings are left
out when the index is loaded).
"""

from __future__ import annotations

from typing import Any, Callable

from twproto.frame import frame_mac
from twproto.rules import RuleState

from tagweigh.queue import Queue

__all__ = ["BridgeState", "DeviceState"]


class DeviceState(RuleState):
    """One station as the bridge knows it; also the RuleState the rules see for its readings."""

    __slots__ = ("device_id", "_tags", "seq", "head", "boots", "_prov", "site")

    def __init__(self, device_id: str, tags: dict[str, dict[int, int]], seq: int | None,
                 head: bytes | None, boots: dict[int, float], provisioned: float | None):
        self.device_id = device_id
        self._tags = tags
        self.seq = seq  # highest sequence number stored (any verdict), None: nothing yet
        self.head = head  # MAC of the reading with that sequence number
        self.boots = boots  # boot counter -> bridge time of that boot's uptime 0
        self._prov = provisioned
        self.site: str | None = None

    # ---- twproto.rules.RuleState ----
    def seen_at_step(self, tag_key: str, step: int) -> bool:
        steps = self._tags.get(tag_key)
        return steps is not None and step in steps

    def last_seq(self) -> int | None:
        return self.seq

    def earlier_weight(self, tag_key: str, step: int) -> int | None:
        steps = self._tags.get(tag_key)
        if not steps:
            return None
        best = -1
        weight = None
        for s, w in steps.items():
            if best < s < step:
                best, weight = s, w
        return weight

    def provisioned_at(self) -> int | None:
        return None if self._prov is None else int(self._prov)


class BridgeState:
    """Tag index (tag_key -> {step: latest net grams}) and per-device states, for one queue.

    `provisioned` maps a device id to its provisioning time (from the key registry) or None.
    """

    def __init__(self, queue: Queue, provisioned: Callable[[str], float | None] = lambda d: None):
        self.queue = queue
        self._provisioned = provisioned
        self.tags: dict[str, dict[int, int]] = {}
        self.devices: dict[str, DeviceState] = {}
        self.reset()

    def reset(self) -> None:
        """Forget everything cached and reload the tag index from the database."""
        tags: dict[str, dict[int, int]] = {}
        self.tags = tags
        self.devices = {}
        rows = self.queue.rows(
            "SELECT tag_key, step, net_g FROM readings WHERE verdict != 'reject' AND voided = 0 ORDER BY id"
        )
        for key, step, net in rows:
            steps = tags.get(key)
            if steps is None:
                tags[key] = {step: net}
            else:
                steps[step] = net  # later rows win: "latest record at that step"

    def device(self, device_id: str) -> DeviceState:
        """The device's state, loaded from the database on first use."""
        dev = self.devices.get(device_id)
        if dev is None:
            q = self.queue
            last = q.rows("SELECT seq, raw FROM readings WHERE device_id=? ORDER BY seq DESC LIMIT 1",
                          (device_id,))
            boots = dict(q.rows("SELECT boot, origin FROM boots WHERE device_id=?", (device_id,)))
            site = q.rows("SELECT site FROM devices WHERE device_id=?", (device_id,))
            seq, head = (last[0][0], bytes(frame_mac(last[0][1]))) if last else (None, None)
            dev = DeviceState(device_id, self.tags, seq, head, boots, self._provisioned(device_id))
            dev.site = site[0][0] if site else None
            self.devices[device_id] = dev
        return dev

    def record(self, tag_key: str, step: int, net_g: int) -> None:
        """A non-rejected reading was stored (call in commit order)."""
        steps = self.tags.get(tag_key)
        if steps is None:
            self.tags[tag_key] = {step: net_g}
        else:
            steps[step] = net_g

    def summary(self) -> dict[str, Any]:
        return {"tags": len(self.tags), "devices": len(self.devices)}
