"""What stays in a booted station's heap, in the real MicroPython VM, from .mpy files: the boot's
and the commands' code (cold modules) and the host-only halves of the shared modules must be gone
once the station runs, and the whole station must stay inside the RAM budget of an ESP32 without
PSRAM (firmware/MEMORY.md). Uses bench/firmware_memory.py's boot, the scenario its figures come
from: a provisioned flash (RFID + QR reader, the example depot rule set)."""

from __future__ import annotations

import pytest

# Modules a station needs only at boot or for a command, and the host-side halves of the shared
# modules (reached through module __getattr__ on the host). None may stay resident.
NOT_RESIDENT = {
    "twproto.canon", "twproto.rsload", "twproto.rsbin", "twproto.messages", "twproto.reasontext",
    "twproto.framehost", "twproto.cpython", "twproto.tagshost", "twproto.ruleshost",
    "twstation.settings", "twstation.board", "twstation.commands", "twstation.selftest",
    "twstation.jrecover", "twstation.assemble", "twstation.calwork", "twstation.rfdiag",
    "twstation.gm65", "twstation.display", "twstation.session", "twstation.drvwork",
    "twproto.readingbody", "twproto.reasons",
}
# A booted station's heap (modules, interned names, rule set, buffers, journal, rule state).
# A stock ESP32-WROOM gives MicroPython ~100 KB; a reading, a command and a rule-set push need
# ~25 KB on top for a moment. Measured 77.4 KB, then 65.4 KB after the fifth memory pass
# (2026-11-22); the budget keeps room for the conservative collector's layout noise.
BUDGET = 75_000


@pytest.mark.parametrize("compact", [True, False], ids=["provisioned", "validating"])
def test_booted_station_keeps_no_cold_or_host_module(bench, compact):
    resident, held = bench.boot_station(compact=compact)
    assert "twstation.station" in resident and "twproto.rules" in resident
    assert not NOT_RESIDENT & set(resident), sorted(NOT_RESIDENT & set(resident))
    assert held <= BUDGET, held
