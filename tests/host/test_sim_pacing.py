"""The simulated station applies the supervisor's scripted actions with the script's spacing:
a supervisor held up by a busy machine sends a tap and its untap late and together, and the
station must still see the card for as long as the script holds it (tagweigh.sim.station_proc)."""

from __future__ import annotations

from tagweigh.sim.station_proc import _Paced


class World:
    def __init__(self):
        self.done = []

    def apply(self, kind, args):
        self.done.append(kind)


class Stream:
    def __init__(self):
        self.up = []

    def set_connected(self, up):
        self.up.append(up)


def test_tap_and_untap_delivered_together_keep_their_scripted_spacing():
    p, w, s = _Paced(), World(), Stream()
    p.queue += [{"kind": "tap", "args": {"uid": "04"}, "at": 12.0},
                {"kind": "untap", "args": {}, "at": 12.8},
                {"kind": "remove", "args": {}, "at": 16.5}]
    p.apply_due(w, s, 100.0)
    assert w.done == ["tap"]
    p.apply_due(w, s, 100.7)
    assert w.done == ["tap"]  # the card stays in the field 0.8 s of the station's time
    p.apply_due(w, s, 100.8)
    assert w.done == ["tap", "untap"]
    p.apply_due(w, s, 104.0)
    assert w.done == ["tap", "untap"]
    p.apply_due(w, s, 104.5)
    assert w.done == ["tap", "untap", "remove"] and not p.queue


def test_untimed_and_link_messages_apply_at_once_in_order():
    p, w, s = _Paced(), World(), Stream()
    p.queue += [{"kind": "place", "args": {"mass_g": 1000}}, {"kind": "link", "args": {"up": False}},
                {"kind": "bogus-without-args"}, {"kind": "remove", "args": {}}]
    p.apply_due(w, s, 5.0)
    assert w.done == ["place", "bogus-without-args", "remove"] and s.up == [False]


def test_a_late_action_is_not_delayed_further():
    p, w, s = _Paced(), World(), Stream()
    p.queue.append({"kind": "place", "args": {}, "at": 1.0})
    p.apply_due(w, s, 50.0)
    p.queue.append({"kind": "scan", "args": {}, "at": 3.0})
    p.apply_due(w, s, 55.0)  # arrived 5 s after the place, the script says 2 s: apply now
    assert w.done == ["place", "scan"]
