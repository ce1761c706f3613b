"""Hardware at the edge, modelled: fake ``machine``/``micropython``/``framebuf`` modules and
faithful device models (HX711, MFRC522 + ISO 14443A cards, GM65-class scanner, SSD1306) that the
real firmware drivers run against, in tests and in the simulator.

    from tagweigh import hw
    hw.install_fakes()            # before importing twstation modules that import machine
    bench = hw.reset_bench()      # fresh lines/buses for one station
    clock = hw.VirtualClock()
    scale = hw.HX711Model(source=lambda t: 12345, clock=clock)
    drv = twstation.hx711.HX711(scale.dout, scale.pd_sck)

The models live in submodules (``hw.hx711``, ``hw.mfrc522``, ``hw.scanner``, ``hw.ssd1306``);
the names below are re-exported lazily so ``import tagweigh.hw`` stays cheap.
"""

from __future__ import annotations

import sys
from typing import Any

from tagweigh.hw import fake_framebuf, fake_machine, fake_micropython
from tagweigh.hw.clock import VirtualClock

__all__ = [
    "install_fakes", "reset_bench", "VirtualClock", "HX711Model", "MFRC522Model", "Card",
    "ntag_memory", "ndef_text", "ndef_uri", "ScannerModel", "SSD1306Model",
    "constant", "ramp", "noisy",
]  # fmt: skip

_LAZY = {
    "HX711Model": "tagweigh.hw.hx711",
    "constant": "tagweigh.hw.hx711",
    "ramp": "tagweigh.hw.hx711",
    "noisy": "tagweigh.hw.hx711",
    "MFRC522Model": "tagweigh.hw.mfrc522",
    "Card": "tagweigh.hw.mfrc522",
    "ntag_memory": "tagweigh.hw.mfrc522",
    "ndef_text": "tagweigh.hw.mfrc522",
    "ndef_uri": "tagweigh.hw.mfrc522",
    "ScannerModel": "tagweigh.hw.scanner",
    "SSD1306Model": "tagweigh.hw.ssd1306",
}


def install_fakes(*, framebuf: bool = True) -> None:
    """Register the fake ``machine`` and ``micropython`` (and ``framebuf``) modules.

    Idempotent. Never replaces a real module (on CPython there is none to replace).
    """
    sys.modules.setdefault("machine", fake_machine)
    sys.modules.setdefault("micropython", fake_micropython)
    if framebuf:
        sys.modules.setdefault("framebuf", fake_framebuf)


def reset_bench() -> fake_machine.Bench:
    """A clean bench: forget every line and bus built so far (one simulated station per bench)."""
    return fake_machine.reset_bench()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)
