"""Scripted depot shifts for simulated stations.

A scenario is a list of timed :class:`Action` for each station. Actions are what people and
the environment do: place or lift a bag (with a swing), scan a label, tap an RFID sticker, cut
the power, take the bridge away. The same scenario with the same seed always produces the same
actions, so a test can state exactly which readings must arrive and with which verdicts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from twproto import tags

# What a person does to one station. `at_s` is seconds from the start of the scenario.
PLACE = "place"  # args: mass_g, swing_g, swing_hz
REMOVE = "remove"  # lift the bag off the scale
SCAN = "scan"  # args: text (a QR / barcode label read by the UART scanner)
TAP = "tap"  # args: uid (hex), ndef_text (optional): an RFID sticker enters the reader's field
UNTAP = "untap"  # the sticker leaves the field
POWER_CUT = "power_cut"  # args: off_s: the station loses power, then boots again
BRIDGE_AWAY = "bridge_away"  # args: off_s: the bridge stops reading this port for a while

# What the bridge should decide for the bag this action completes (for tests and the summary).
EXPECT_ACCEPT = "accept"
EXPECT_WARN = "warn"
EXPECT_REJECT = "reject"
EXPECT_NONE = "none"  # no reading at all (bag lifted before the tag, ...)


@dataclass
class Action:
    at_s: float
    kind: str
    args: dict = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict:
        return {"at_s": round(self.at_s, 3), "kind": self.kind, "args": self.args, "note": self.note}


@dataclass
class Bag:
    """One bag in the script, with what should happen to it."""

    tag: str
    mass_g: int
    expect: str
    reason: str = ""  # the rule ID expected to decide a reject/warn, e.g. 'DUPLICATE-STEP'


@dataclass
class StationScript:
    name: str
    reader: str  # 'qr' or 'rfid'
    step: int
    actions: list[Action] = field(default_factory=list)
    bags: list[Bag] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return max((a.at_s for a in self.actions), default=0.0)


def label(number: int, prefix: str = "SK") -> str:
    """A mine label as printed on the bag: prefix, 7 digits, ISO 7064 MOD 37-2 check char."""
    body = f"{prefix}{number:07d}"
    return body + tags.mod37_2_check(body)


def corrupt_check(text: str) -> str:
    """The same label with a wrong check character (a mistyped or forged label)."""
    good = text[-1]
    for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if c != good:
            return text[:-1] + c
    raise AssertionError("unreachable")


# Numbers allocated to the example depot's mine sites (protocol/rulesets/example-depot.json).
ALLOCATED = {"SN": (10000, 14999), "TA": (20000, 22999)}
UNALLOCATED = 99000  # a label from another site's batch
RFID_STICKERS = ["04A1B2C3D4E580", "04A1B2C3D4E581", "04A1B2C3D4E582", "04A1B2C3D4E583"]


def depot_shift(
    stations: int = 3,
    bags_per_station: int = 6,
    seed: int = 1,
    step: int = 2,
    pace_s: float = 8.0,
    incidents: bool = True,
) -> list[StationScript]:
    """A shift at a depot receiving bags (step 2 by default).

    Each station weighs ``bags_per_station`` bags. With ``incidents``, the script also contains,
    spread over the stations: a label scanned before the bag is placed (tag first), a bag
    weighed twice (second time rejected as a duplicate at this step), a label from another
    site (rejected), a label with a bad check character (rejected), a bag lifted before its
    label was scanned (no reading), a power cut between two bags, and the bridge away for a
    while (readings wait in the station's journal and arrive later, in order).
    Station 0 reads RFID stickers when ``stations`` > 1; the others scan QR labels.
    """
    rng = random.Random(seed)
    scripts: list[StationScript] = []
    next_number = {m: lo + rng.randrange(0, 500) for m, (lo, _hi) in ALLOCATED.items()}
    for s in range(stations):
        reader = "rfid" if (stations > 1 and s == 0) else "qr"
        script = StationScript(name=f"station-{s + 1}", reader=reader, step=step)
        t = 1.0 + 0.7 * s  # stations do not all start at the same instant
        for b in range(bags_per_station):
            mineral = "TA" if rng.random() < 0.35 else "SN"
            mass_g = rng.randrange(22000, 48000) if mineral == "SN" else rng.randrange(12000, 42000)
            if reader == "rfid":
                tag = RFID_STICKERS[b % len(RFID_STICKERS)]
                mass_g = rng.randrange(22000, 48000)
            else:
                tag = label(next_number[mineral])
                next_number[mineral] += 1
            expect, reason = EXPECT_ACCEPT, ""
            if reader == "rfid" and b >= len(RFID_STICKERS):
                expect, reason = EXPECT_REJECT, "DUPLICATE-STEP"
            swing = rng.uniform(0.005, 0.02) * mass_g  # the load-cell model's envelope (bench/settle.py)
            incident = _incident_for(s, b) if incidents else None
            if incident == "tag_first" and reader == "qr":
                _scan_or_tap(script, t, reader, tag)
                script.actions.append(Action(t + 0.8, PLACE, _place(mass_g, swing, rng), "tag first"))
                script.actions.append(Action(t + pace_s - 1.5, REMOVE))
            elif incident == "lifted_early":
                script.actions.append(Action(t, PLACE, _place(mass_g, swing, rng), "lifted before the tag"))
                script.actions.append(Action(t + 0.4, REMOVE))
                _scan_or_tap(script, t + 1.6, reader, tag)
                expect, reason = EXPECT_NONE, ""
                script.bags.append(Bag(tag, mass_g, expect, reason))
                t += pace_s
                continue
            else:
                if incident == "duplicate" and script.bags:
                    first = next((x for x in script.bags if x.expect == EXPECT_ACCEPT), None)
                    if first is not None:
                        tag, expect, reason = first.tag, EXPECT_REJECT, "DUPLICATE-STEP"
                elif incident == "other_site" and reader == "qr":
                    tag, expect, reason = label(UNALLOCATED + b), EXPECT_REJECT, "TAG-SITE"
                elif incident == "bad_check" and reader == "qr":
                    tag, expect, reason = corrupt_check(tag), EXPECT_REJECT, "TAG-CHECK"
                script.actions.append(Action(t, PLACE, _place(mass_g, swing, rng)))
                _scan_or_tap(script, t + 2.0, reader, tag)
                script.actions.append(Action(t + pace_s - 1.5, REMOVE))
            script.bags.append(Bag(tag, mass_g, expect, reason))
            t += pace_s
            if incidents and incident == "power_cut_after":
                script.actions.append(Action(t - 0.3, POWER_CUT, {"off_s": 1.0}, "power cut"))
                t += 2.5
            if incidents and incident == "bridge_away_after":
                script.actions.append(Action(t - 0.3, BRIDGE_AWAY, {"off_s": 2 * pace_s}, "bridge away"))
        scripts.append(script)
    for script in scripts:
        script.actions.sort(key=lambda a: a.at_s)
    return scripts


def _incident_for(station: int, bag: int) -> str | None:
    table = {
        (0, 4): "duplicate",
        (1, 0): "tag_first",
        (1, 2): "other_site",
        (1, 3): "power_cut_after",
        (1, 5): "duplicate",
        (2, 1): "bad_check",
        (2, 2): "lifted_early",
        (2, 3): "bridge_away_after",
    }
    return table.get((station % 3, bag))


def _place(mass_g: int, swing_g: float, rng: random.Random) -> dict:
    return {"mass_g": mass_g, "swing_g": round(swing_g), "swing_hz": round(rng.uniform(1.4, 2.5), 2),
            "damping": round(rng.uniform(0.3, 0.5), 2)}


def _scan_or_tap(script: StationScript, t: float, reader: str, tag: str) -> None:
    if reader == "rfid":
        script.actions.append(Action(t, TAP, {"uid": tag}))
        script.actions.append(Action(t + 0.8, UNTAP))
    else:
        script.actions.append(Action(t, SCAN, {"text": tag}))
