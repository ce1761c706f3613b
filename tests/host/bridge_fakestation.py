"""A tiny test-only station: builds real, signed frames with twproto and reads the bridge's
answers (verifying the bridge's MACs against the session nonce). Not the simulator: no scale, no
journal, just the protocol a test needs to drive the bridge."""

from __future__ import annotations

import os
import time
from pathlib import Path

from twproto import frame as F
from twproto import messages as M
from twproto import ruleset, tags
from twproto.errors import ProtocolError
from twproto.mac import DIR_BRIDGE, DIR_STATION, Mac

EXAMPLE_RULESET = Path(__file__).resolve().parents[2] / "protocol" / "rulesets" / "example-depot.json"
RS = ruleset.load_file(str(EXAMPLE_RULESET))


def label(n: int) -> bytes:
    """A valid mine label allocated in the example rule set (SK0010000..SK0014999 are tin)."""
    code = "SK%07d" % n
    return (code + tags.mod37_2_check(code)).encode()


class FakeStation:
    def __init__(self, device_id: int, key: bytes, *, boot: int = 1, uptime_ms: int = 5000,
                 ruleset_id: int | None = None, nonce: bytes | None = None):
        self.device_id = device_id
        self.mac = Mac(key)
        self.boot = boot
        self.uptime_ms = uptime_ms
        self.ruleset_id = RS.id if ruleset_id is None else ruleset_id
        self.nonce = nonce or os.urandom(8)
        self.seq = 0
        self.prev = 0
        self.backlog = 0  # what the next HELLO says the journal holds unacknowledged
        self.buf = bytearray(F.MAX_FRAME)
        self.decoder = F.Decoder()

    def _frame(self, msg) -> bytes:
        n = M.encode_message(self.buf, msg, self.mac, DIR_STATION)
        return bytes(self.buf[:n])

    def hello(self, *, backlog: int | None = None, uptime_ms: int | None = None, boot: int | None = None,
              nonce: bytes | None = None) -> bytes:
        if nonce is not None:
            self.nonce = nonce
        return self._frame(M.Hello(
            device_id=self.device_id, fw_major=0, fw_minor=1, fw_patch=0, proto_min=1, proto_max=1,
            ruleset_id=self.ruleset_id, ruleset_version=1, config_hash=0, last_seq=self.seq,
            backlog=self.backlog if backlog is None else backlog, journal_pct=0, boot=self.boot if boot is None else boot, boot_first_seq=1,
            uptime_ms=self.uptime_ms if uptime_ms is None else uptime_ms, flags=0, nonce=self.nonce,
            chain_head=self.prev,
        ))

    def reading(self, tag: bytes | None = None, *, net_g: int = 30000, step: int = 2, kind: int = 3,
                operator: int = 201, t: int | None | str = "now", stable: bool = True,
                seq: int | None = None, prev: int | None = None, uptime_ms: int = 1234,
                verdict: int = 0, reason: int = 0) -> bytes:
        """A signed READING; advances seq and the chain unless seq/prev are given."""
        seq = self.seq + 1 if seq is None else seq
        r = M.Reading(
            seq=seq, flags=M.F_STABLE if stable else 0, step=step, tag_kind=kind, verdict=verdict,
            reason=reason, time=int(time.time()) if t == "now" else t, boot=self.boot,
            uptime_ms=uptime_ms, net_g=net_g, tare_g=500, e_g=20, operator=operator, cal_id=1,
            ruleset_id=self.ruleset_id, prev=self.prev if prev is None else prev,
            tag=label(10000 + seq) if tag is None else tag,
        )
        raw = self._frame(r)
        if seq > self.seq:
            self.seq = seq
        self.prev = M.chain_link(raw[-18:-2])
        return raw

    def parse(self, data: bytes) -> list[tuple[int, object]]:
        """Decode the bridge's frames; MACs verified with this station's key and nonce."""
        out = []
        for kind, frame in self.decoder.decode(data):
            if kind != F.FRAME:
                out.append((-1, frame))
                continue
            t, msg = M.decode_frame(frame, None if frame[2] == F.T_NACK else self.mac, DIR_BRIDGE, self.nonce)
            out.append((t, msg))
        return out


class StationEnd:
    """The station side of a link: send frames, collect the bridge's answers with deadlines."""

    def __init__(self, link, station: FakeStation):
        self.link = link
        self.st = station
        self.frames: list[tuple[int, object]] = []

    def send(self, data: bytes) -> None:
        self.link.write(data)

    def collect(self, until, timeout: float = 5.0) -> list[tuple[int, object]]:
        """Read answers until until(self.frames) is true; returns all frames so far."""
        deadline = time.monotonic() + timeout
        while not until(self.frames):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; got {self.frames}"
            data = self.link.read(4096, min(left, 0.05))
            if data:
                self.frames.extend(self.st.parse(data))
        return self.frames

    def acked(self) -> dict[int, int]:
        """seq -> verdict byte over every ACK received."""
        out = {}
        for t, msg in self.frames:
            if t == F.T_ACK:
                for seq, v in msg.entries:
                    out[seq] = v
        return out

    def nacks(self) -> list:
        return [msg for t, msg in self.frames if t == F.T_NACK]

    def welcome(self, timeout: float = 10.0, retry_s: float = 1.0):
        """HELLO until a WELCOME (or NACK) answers, as a station does (SPEC 9.1: repeat with a
        fresh nonce; only a WELCOME for the latest nonce counts). A HELLO written before the
        bridge opened its port can be flushed by the open, hence the repeats."""
        deadline = time.monotonic() + timeout
        first = True
        while True:
            if not first:
                self.st.nonce = os.urandom(8)
            first = False
            self.frames.clear()
            self.send(self.st.hello())
            end = time.monotonic() + retry_s
            while time.monotonic() < end:
                data = self.link.read(4096, 0.05)
                for kind, frame in self.st.decoder.decode(data):
                    if kind != F.FRAME:
                        continue
                    try:
                        t, msg = M.decode_frame(frame, None if frame[2] == F.T_NACK else self.st.mac,
                                                DIR_BRIDGE, self.st.nonce)
                    except ProtocolError:
                        continue  # a WELCOME for an older nonce
                    self.frames.append((t, msg))
                    if t == F.T_WELCOME or (t == F.T_NACK and msg.ref_type == F.T_HELLO):
                        return msg
            assert time.monotonic() < deadline, f"no WELCOME; got {self.frames}"
