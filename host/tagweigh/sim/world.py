"""The hardware of one simulated station and the things people do to it.

Models from :mod:`tagweigh.hw` are wired to the pins of the board's pin map (the same JSON the
firmware reads), so the firmware's ``board.py`` builds ``Pin``/``SPI``/``UART`` objects that reach
the models exactly as real ones reach the chips.
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Callable

from tagweigh import hw
from tagweigh.hw import fake_machine as fm
from tagweigh.hw.loadcell import COUNTS_PER_G_100KG_2MVV, LoadCell
from tagweigh.hw.mfrc522 import Card, ndef_text
from tagweigh.sim import scenarios as S

ZERO_COUNTS = 150_000  # the platform's dead load in counts (what calibration stores as zero)


def calibration_ratio(counts_per_g: float = COUNTS_PER_G_100KG_2MVV) -> tuple[int, int]:
    """grams per count as the exact integer ratio the firmware's Calibration stores."""
    f = Fraction(1 / counts_per_g).limit_denominator(100_000)
    return f.numerator, f.denominator


class World:
    """Load cell + HX711 + MFRC522 (+ cards) + QR scanner for one station, on one fake bench."""

    def __init__(self, board_spec: dict, *, seed: int = 0, clock: Callable[[], float] = time.monotonic):
        hw.install_fakes()
        hw.reset_bench()
        self.clock = clock
        self.spec = board_spec
        rate = board_spec["hx711"].get("rate_sps", 10)
        self.cell = LoadCell(zero_counts=ZERO_COUNTS, sps=rate, seed=seed)
        hxp = board_spec["hx711"]
        # strict_timing=False: on a loaded host a thread switch can stretch a clock-high phase
        # past 60 us; the model counts those instead of powering down mid-shift.
        self.hx711 = hw.HX711Model(self.cell.counts, clock=clock, rate_sps=rate, dout=fm.Pin(hxp["dout"]),
                                   pd_sck=fm.Pin(hxp["sck"]), strict_timing=False)
        self.rfid = None
        self.scanner = None
        if "mfrc522" in board_spec:
            m = board_spec["mfrc522"]
            rst = fm.Pin(m["rst"]) if "rst" in m else None
            self.rfid = hw.MFRC522Model(clock=clock, spi=fm.SPI(m["spi"]), cs=fm.Pin(m["cs"]), rst=rst)
        if "scanner" in board_spec:
            s = board_spec["scanner"]
            self.scanner = hw.ScannerModel(fm.UART(s["uart"], s.get("baud", 9600)), baudrate=s.get("baud", 9600),
                                           clock=clock)
        self._card: Card | None = None

    @property
    def on_platform_g(self) -> float:
        """What lies on the platform now (once settled), in grams."""
        return self.cell.static_g(self.clock())

    def apply(self, kind: str, args: dict) -> None:
        """Do one scenario action now."""
        t = self.clock()
        if kind == S.PLACE:
            self.cell.place(args["mass_g"], t, args.get("swing_g", 0.0), args.get("swing_hz", 1.2),
                            args.get("damping", 0.25))
        elif kind == S.REMOVE:
            if self.cell.static_g(t) > 0:
                self.cell.remove(t)
        elif kind == S.SCAN:
            if self.scanner is None:
                raise ValueError("this station has no QR scanner")
            self.scanner.scan(args["text"])
        elif kind == S.TAP:
            if self.rfid is None:
                raise ValueError("this station has no RFID reader")
            uid = bytes.fromhex(args["uid"])
            ndef = ndef_text(args["ndef_text"]) if args.get("ndef_text") else b""
            self._untap()
            self._card = self.rfid.add_card(Card.ntag(uid, ndef))
        elif kind == S.UNTAP:
            self._untap()
        else:
            raise ValueError(f"not a hardware action: {kind}")

    def restore(self, mass_g: float) -> None:
        """After a power cut: the bag that was on the platform is still there, at rest."""
        if mass_g > 0:
            self.cell.place(mass_g, self.clock() - 60.0)

    def _untap(self) -> None:
        if self._card is not None and self.rfid is not None:
            self.rfid.remove_card(self._card)
            self._card = None
