"""A station that boots with readings still pending in its journal replays them into its rule
state (so a duplicate weighed before the reboot is still seen), in the real MicroPython VM from
.mpy files: the READING unpacker it imports for that (twproto.readingbody) leaves the heap after
the boot, like the boot's other cold modules (firmware/MEMORY.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# after the first boot: one signed READING appended to the journal, as Station.commit does
APPEND = """
from twproto import bodies as M
r = M.Reading(seq=st.seq + 1, step=2, tag_kind=3, time=1790000000, net_g=25000, e_g=10,
              operator=201, cal_id=1, prev=st.prev, tag=b'SK00100015ABCDE')
n = st.link.seal(0x10, M.pack_reading(st.link.tx, 3, r))
st.journal.append(memoryview(st.link.tx)[0:n])
st.journal.close()
del st, r, n, M
for m in [m for m in sys.modules if m.startswith('tw')]:
    del sys.modules[m]
"""


# the unpacker, the host modules that also have one, and the boot code itself
GONE = ["twproto.readingbody", "twproto.messages", "twproto.framehost", "twstation.assemble"]


def test_pending_reading_is_replayed_and_the_unpacker_dropped(bench):
    vm = bench._vm(True)
    try:
        text, bin_ = bench._ruleset_files(True)
        vm.write("/st/station.json", bench.json.dumps(bench.STATION_JSON))
        vm.write("/st/key.bin", bytes(range(32)))
        vm.write("/st/board.json",
                 (ROOT / "hardware" / "boards" / "esp32-devkitc.json").read_bytes())
        vm.write("/st/ruleset.json", text)
        vm.write("/st/ruleset.bin", bin_)
        vm.exec(bench.BOOT)
        vm.exec(APPEND)
        vm.exec(bench.BOOT)  # the reboot
        got = vm.eval_json("[st.seq, st.journal.backlog(), st.rule_state.last_seq()]")
        assert got == [1, 1, 1], got  # the pending reading went through the rule state
        left = vm.eval_json("sorted(m for m in sys.modules if m in %r)" % (GONE,))
        assert left == [], left
    finally:
        vm.close()
