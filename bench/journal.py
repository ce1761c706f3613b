"""Flash journal density and costs, measured on real files with real signed READING frames.

A 1 MiB journal (8 segments, the station's layout) is filled with synced READINGs carrying a
15-character QR tag (64-byte frames) until append() refuses with JournalFull. Figures:
- journal_bytes_per_record: bytes of all journal files / readings stored (headers included)
- records_per_mib: readings a 1 MiB journal holds (goal >= 16,000)
- frame_bytes: the READING on the wire, for comparison
- ack_bytes_per_record: ack-log bytes written per acknowledged reading (log rewrites included)
- open_ms_full: recovery scan of the full 1 MiB journal at open (CPython on this machine; every
  record's length and CRC is checked)
- append_us: mean time of one append (write + flush; fsync is skipped here because it measures the
  disk of this machine, not the journal: on the ESP32 littlefs commits at flush/close)
- vm_open_ms_per_1000: the boot scan (Journal open) of 1,000 readings in the MicroPython VM
  (the station's interpreter; bytecode from mpy-cross), fastest of 15 runs (the machine's load
  makes single runs noisy). Skipped (-1) when node/the VM is not installed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for sub in ("protocol", "firmware"):
    sys.path.insert(0, str(ROOT / sub))

from twproto import messages as M  # noqa: E402
from twproto.mac import Mac  # noqa: E402
from twstation import journal as J  # noqa: E402

MIB = 1 << 20


class _NoFsync(J.OsFs):
    def sync(self, f):
        f.flush()


class _CountingFs(_NoFsync):
    def __init__(self):
        self.written = 0

    def open(self, path, mode):
        f = open(path, mode)
        if "r" in mode:
            return f
        fs = self

        class W:
            def write(self, b):
                fs.written += len(b)
                return f.write(b)

            def __getattr__(self, name):
                return getattr(f, name)

        return W()


def frame(mac, buf, seq):
    r = M.Reading(seq=seq, flags=8 | 3, step=2, tag_kind=3, verdict=0, time=1_700_000_000 + seq,
                  net_g=25_000 + seq % 1000, tare_g=0, e_g=10, operator=12, cal_id=3,
                  ruleset_id=0xA1B2C3D4, prev=seq * 2654435761 & 0xFFFFFFFF,
                  tag=b"TW-24-%09d" % seq)
    n = M.encode_message(buf, r, mac=mac)
    return bytes(buf[:n])


def vm_open_ms(mac, buf, n=1000):
    sys.path.insert(0, str(ROOT / "host"))
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import firmware_memory as FM
        vm = FM._vm(True)  # the station's modules as .mpy, as deployed
    except Exception:  # no node / no VM build here
        return -1
    try:
        vm.write("/frames.bin", b"".join(frame(mac, buf, s) for s in range(1, n + 1)))
        vm.exec("import time\nfrom twstation.journal import Journal\n"
                "f = open('/frames.bin', 'rb')\nd = memoryview(f.read())\nf.close()\n"
                "j = Journal('/jb', 200000, segments=8)\npos = 0\n"
                "while pos < len(d):\n    j.append(d[pos : pos + d[pos + 1] + 21])\n"
                "    pos += d[pos + 1] + 21\nj.close()\n")
        best = None
        for _ in range(15):
            out = vm.exec("gc.collect()\nt = time.ticks_ms()\nj = Journal('/jb', 200000, segments=8)\n"
                          "print(time.ticks_diff(time.ticks_ms(), t), j.backlog())").split()
            assert int(out[1]) == n
            best = int(out[0]) if best is None else min(best, int(out[0]))
        return best * 1000 // n
    finally:
        vm.close()


def main():
    mac = Mac(bytes(range(32)))
    buf = bytearray(253)
    sample = frame(mac, buf, 1)
    assert len(sample) == 64 and len(b"TW-24-%09d" % 1) == 15
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "journal")
        j = J.Journal(d, MIB, fs=_NoFsync(), segments=8)
        n = 0
        t0 = time.perf_counter()
        while True:
            try:
                j.append(frame(mac, buf, n + 1))
            except J.JournalFull:
                break
            n += 1
        t_append = time.perf_counter() - t0
        files = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        t0 = time.perf_counter()
        j2 = J.Journal(d, MIB, fs=_NoFsync(), segments=8)
        open_ms = (time.perf_counter() - t0) * 1000
        assert j2.backlog() == n and j2.recovered == 0
        # ack cost: every reading acknowledged in order
        cfs = _CountingFs()
        j3 = J.Journal(d, MIB, fs=cfs, segments=8)
        for s in range(1, n + 1):
            j3.ack(s)
        ack_bytes = cfs.written / n
        assert j3.backlog() == 0 and j3.head()[0] == n
    frame_seconds = t_append - 0  # includes frame building
    print(f"{n} readings of {len(sample)}-byte frames in {files} bytes of journal files; "
          f"open (scan) {open_ms:.0f} ms; append incl. signing {frame_seconds / n * 1e6:.0f} us")
    print(f"journal_bytes_per_record={files / n:.2f} records_per_mib={n} frame_bytes={len(sample)} "
          f"ack_bytes_per_record={ack_bytes:.2f} open_ms_full={open_ms:.0f} "
          f"append_us={frame_seconds / n * 1e6:.0f} vm_open_ms_per_1000={vm_open_ms(mac, buf)}")


if __name__ == "__main__":
    main()
