"""The rules engine over many generated readings (CPython). The station's bounded state must give
the same verdicts as a complete, database-like state while nothing has been evicted, and after
eviction it may only miss findings, never invent them. Plain checks shared with MicroPython are
in vm_rules.py (collected for both interpreters by tests/conftest.py)."""

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from twproto import reasons, rules, ruleset, tags
from twproto.rules import MemoryRuleState, RuleState, evaluate
from vm_rules import FakeReading

EXAMPLE = Path(__file__).resolve().parents[2] / "protocol" / "rulesets" / "example-depot.json"
RS = ruleset.load_file(str(EXAMPLE))
T0 = 1790000000


def reading(seq, step, kind, tag, time, net_g, operator, stable=True):
    """A reading of the example rule set, as the station would send it."""
    return FakeReading(seq=seq, step=step, tag_kind=kind, tag=tag, time=time, net_g=net_g,
                       operator=operator, stable=stable, tare_g=0, uptime_ms=0, ruleset_id=RS.id)


class ReferenceState(RuleState):
    """What the bridge does over its database, written the plain way: keep every record."""

    def __init__(self, provisioned=None):
        self.records = []  # (key, step, net) of non-rejected readings, in order
        self.seqs = []
        self.prov = provisioned

    def record(self, reading, verdict):
        self.seqs.append(reading.seq)
        if verdict.verdict != reasons.REJECT:
            self.records.append((verdict.tag_key, reading.step, reading.net_g))

    def seen_at_step(self, key, step):
        return any(k == key and s == step for k, s, _ in self.records)

    def last_seq(self):
        return max(self.seqs) if self.seqs else None

    def earlier_weight(self, key, step):
        earlier = [(s, i, w) for i, (k, s, w) in enumerate(self.records) if k == key and s < step]
        return max(earlier)[2] if earlier else None

    def provisioned_at(self):
        return self.prov


def _label(n):
    code = "SK%07d" % n
    return (code + tags.mod37_2_check(code)).encode()


TAG_POOL = [_label(10000 + i) for i in range(6)] + [
    _label(20001),
    _label(30000),  # not allocated
    b"SK0010001B",  # bad check
    b"061512340000000015",  # dispatch lot, step 3 only
]
def _mostly(good, *rare):
    # Valid values most of the time, so that readings get recorded and the stateful rules work.
    return st.one_of(st.just(good), st.just(good), st.just(good), st.sampled_from(rare))


readings = st.tuples(
    st.one_of(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.sampled_from([0, 4])),
    st.one_of(st.sampled_from(TAG_POOL[:3]), st.sampled_from(TAG_POOL)),
    st.one_of(st.integers(-1000, 90000), st.sampled_from([40000, 40200, 40400, 41000])),
    _mostly(201, 0, 101, 202, 999),
    st.one_of(st.integers(-300, 300), st.integers(-400, 400)),
    _mostly(True, False),
    _mostly(True, False),
)


def _make(seq, spec):
    step, tag, net, op, dt, stable, synced = spec
    kind = 4 if tag.startswith(b"0615") else 3
    return reading(seq, step, kind, tag, T0 + dt if synced else None, net, op, stable)


def _ids(v):
    return [(f.entry, f.reason) for f in v.findings]


@settings(max_examples=120, deadline=None)
@given(st.lists(readings, min_size=1, max_size=25), st.lists(st.integers(1, 3), min_size=25, max_size=25))
def test_station_state_matches_reference_until_eviction_then_only_misses(specs, gaps):
    big = MemoryRuleState(64, provisioned_at=T0 - 100)
    small = MemoryRuleState(3, provisioned_at=T0 - 100)
    ref = ReferenceState(T0 - 100)
    seq = 0
    for spec, gap in zip(specs, gaps):
        seq += gap
        r = _make(seq, spec)
        vr = evaluate(RS, r, ref, now=T0)
        vb = evaluate(RS, r, big, now=T0)
        vs = evaluate(RS, r, small, now=T0)
        assert _ids(vb) == _ids(vr)
        assert (vb.verdict, vb.reason, vb.tag_key) == (vr.verdict, vr.reason, vr.tag_key)
        assert set(_ids(vs)) <= set(_ids(vr))  # eviction forgets, never invents
        # the verdict is the worst severity; its reason is the first finding with that severity
        worst = max([f.severity for f in vr.findings], default=0)
        assert vr.verdict == worst
        if worst:
            assert vr.reason == [f.reason for f in vr.findings if f.severity == worst][0]
        assert reasons.unpack_verdict(vr.byte()) == (vr.verdict, vr.reason)
        # reproducible: same inputs, same answer
        assert _ids(evaluate(RS, r, ref, now=T0)) == _ids(vr)
        ref.record(r, vr)
        big.record(r, vb)
        small.record(r, vs)


@settings(max_examples=200, deadline=None)
@given(readings, st.integers(0, 15), st.integers(0, 0xFFFFFFFF))
def test_every_verdict_has_a_stable_reason_and_both_languages(spec, step, rid):
    r = _make(7, spec)
    r.step = step
    r.ruleset_id = rid
    v = evaluate(RS, r, RuleState(), now=None)
    assert 0 <= v.byte() <= 255
    assert reasons.code_of(v.rule_id) == v.reason
    for f in v.findings:
        assert reasons.code_of(f.rule_id) == f.reason and f.severity in (1, 2)
    for lang in ("en", "fr"):
        assert reasons.message(v.reason, lang) and reasons.hint(v.reason, lang)
    assert (v.verdict == 0) == (v.findings == [])


def test_reloaded_rule_set_gives_the_same_verdicts():
    again = ruleset.load(RS.canonical())
    st_a, st_b = MemoryRuleState(8), MemoryRuleState(8)
    for seq, net in enumerate([40000, 90000, 41000, 15000], 1):
        r = reading(seq, 2, 3, TAG_POOL[seq % 3], T0, net, 201)
        a, b = evaluate(RS, r, st_a, T0), evaluate(again, r, st_b, T0)
        assert _ids(a) == _ids(b) and a.byte() == b.byte()
        st_a.record(r, a)
        st_b.record(r, b)


def test_rejected_reading_does_not_block_a_reweigh():
    st_ = MemoryRuleState(8)
    unstable = reading(1, 2, 3, TAG_POOL[0], T0, 40000, 201, stable=False)
    v = evaluate(RS, unstable, st_, T0)
    assert v.rule_id == "NOT-STABLE" and v.verdict == reasons.REJECT
    st_.record(unstable, v)
    again = reading(2, 2, 3, TAG_POOL[0], T0, 40000, 201)
    assert evaluate(RS, again, st_, T0).verdict == reasons.ACCEPT
    assert rules.Verdict([], "k", None, 0).byte() == 0


def test_public_api_is_pinned():
    from twproto import canon, reasons, rules, ruleset, tags

    expected = {
        canon: {"MAX_BYTES", "MAX_DEPTH", "MAX_INT", "loads", "dumps", "canonical_bytes", "ruleset_hash",
                "ruleset_id", "utf8_valid"},
        tags: {"MAX_TAG", "KIND_UID", "KIND_NDEF_TEXT", "KIND_NDEF_URI", "KIND_QR", "KIND_BARCODE", "OK",
               "BAD_SYNTAX", "BAD_CHECK", "mod37_2_check", "mod37_2_valid", "luhn_check", "luhn_valid",
               "luhn36_check", "luhn36_valid", "gs1_check", "gs1_valid", "uid_problem", "canonical",
               "fallback_text", "TagFormat", "identify"},
        ruleset: {"FORMAT", "KINDS", "RuleSet", "Rule", "Allocation", "load", "load_file"},
        rules: {"Finding", "Verdict", "RuleState", "MemoryRuleState", "evaluate"},
    }
    for mod, names in expected.items():
        assert set(mod.__all__) == names, mod.__name__
        assert all(hasattr(mod, n) for n in names)
    assert {"rule_id", "code_of", "message", "hint", "pack_verdict", "unpack_verdict"} <= set(reasons.__all__)
    for row in reasons.TABLE:  # every named code constant is exported and matches the table
        name = row[1].replace("-", "_")
        assert name in reasons.__all__ and getattr(reasons, name) == row[0]
    assert set(RuleState.__dict__) >= {"seen_at_step", "last_seq", "earlier_weight", "provisioned_at"}


def test_host_half_reaches_through_rules_and_the_station_state_answers_the_same_methods():
    from twproto import ruleshost

    assert rules.RuleState is ruleshost.RuleState and rules.__all__ is ruleshost.__all__
    assert not hasattr(rules, "no_such_name") and not hasattr(rules, "__path__")
    for name in ("seen_at_step", "last_seq", "earlier_weight", "provisioned_at"):
        assert callable(getattr(MemoryRuleState, name)), name


def test_private_copies_match_the_reason_codes_and_the_rule_kinds():
    # evaluate() uses private const() copies (inlined on the station): the reason codes must be
    # reasons' numbers and the kind numbers the kinds' indexes in ruleset.KINDS.
    codes = [n[1:] for n in vars(rules) if n.startswith("_") and n[1:2].isupper() and not n.startswith("_K_")
             and not n.startswith("_TAG_OK") and not n.startswith("_TAG_BAD")]
    assert len(codes) == 17
    for name in codes:
        assert getattr(rules, "_" + name) == getattr(reasons, name), name
    kinds = [n for n in vars(rules) if n.startswith("_K_")]
    assert len(kinds) == len(ruleset.KINDS) == 14
    for i, kind in enumerate(ruleset.KINDS):
        assert getattr(rules, "_K_" + kind.replace("-", "_")) == i, kind


def test_station_state_keeps_negative_and_extreme_weights_with_their_step():
    # MemoryRuleState packs net << 4 | step in one 32-bit slot: the wire's whole signed 24-bit
    # range and every step come back unchanged.
    class V:
        verdict = 0
        tag_key = "T"

    class Rd:
        def __init__(self, seq, step, net):
            self.seq, self.step, self.net_g = seq, step, net

    for net in (-(1 << 23), -1, 0, 1, (1 << 23) - 1):
        for step in (0, 7, 14):
            s = MemoryRuleState(4)
            s.record(Rd(1, step, net), V())
            assert s.earlier_weight("T", step + 1) == net
            assert s.seen_at_step("T", step) and not s.seen_at_step("T", step + 1)
            assert s.earlier_weight("T", step) is None and s.last_seq() == 1


def test_rule_kinds_are_pinned():
    # ruleset.KINDS is taken from reasons.RULE_IDS: the order is part of the engine (evaluate()'s
    # kind numbers) and the kinds are the rule set format's names.
    assert ruleset.KINDS == (
        "TAG-SYNTAX", "TAG-SITE", "WEIGHT-RANGE", "NOT-STABLE", "OUT-OF-RANGE", "DUPLICATE-STEP",
        "TIME-FUTURE", "TIME-BEFORE-PROVISIONING", "TIME-NOT-SYNCED", "SEQ-GAP", "OPERATOR",
        "MASS-BALANCE", "STEP-UNKNOWN", "RULESET-MISMATCH",
    )
    assert all(k is reasons.RULE_IDS[reasons.RULE_IDS.index(k)] for k in ruleset.KINDS)
