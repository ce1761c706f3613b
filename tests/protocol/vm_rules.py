# Rules engine, rule sets, tags and canonical JSON: plain-assert checks that run unchanged on
# CPython and inside the MicroPython VM (no pytest, no hypothesis).
# Collected twice by the vm_*.py harness in tests/conftest.py: [cpython] and [micropython].
from twproto import canon, reasons, rules, ruleset, tags
from twproto.errors import ProtocolError, RuleSetError

RULESETS_DIR = "protocol/rulesets"  # the harness (tests/conftest.py) makes it absolute

T0 = 1790000000  # 2026-09-21, after the example's not_before (2026-01-01)


class FakeReading:
    """Stand-in for twproto.messages.Reading (the rules only read attributes)."""

    def __init__(self, **kw):
        self.seq = 10
        self.flags = 0
        self.step = 2
        self.tag_kind = 3
        self.tag = b"SK0010001A"
        self.time = T0
        self.boot = 1
        self.uptime_ms = 5000
        self.net_g = 42000
        self.tare_g = 300
        self.e_g = 20
        self.operator = 201
        self.cal_id = 1
        self.ruleset_id = 0
        self.prev = 0
        self.stable = True
        self.out_of_range = False
        for k in kw:
            setattr(self, k, kw[k])
        self.time_synced = self.time is not None


_RS = []


def example():
    if not _RS:
        _RS.append(ruleset.load_file(RULESETS_DIR + "/example-depot.json"))
    return _RS[0]


def reading(**kw):
    r = FakeReading(**kw)
    if "ruleset_id" not in kw:
        r.ruleset_id = example().id
    return r


def raises(exc, fn, *a):
    try:
        fn(*a)
    except exc as e:
        return e
    raise AssertionError("expected " + exc.__name__)


# --- tags ---------------------------------------------------------------------------------------
def test_mod37_2_published_example():
    assert tags.mod37_2_check("G123489654321") == "Y"
    assert tags.mod37_2_valid("G123489654321Y")
    assert not tags.mod37_2_valid("G123489654321Z")
    assert not tags.mod37_2_valid("G123489654312Y")  # adjacent transposition
    assert tags.mod37_2_check("SK0010417") == "*"
    assert tags.mod37_2_valid("SK0010417*")
    assert not tags.mod37_2_valid("SK00104*17")


def test_luhn_and_gs1_vectors():
    assert tags.luhn_check("7992739871") == "3"
    assert tags.luhn_valid("79927398713")
    assert not tags.luhn_valid("79927398731")
    assert tags.gs1_check("400638133393") == "1"  # EAN-13 4006381333931
    assert tags.gs1_valid("4006381333931")
    assert tags.gs1_check("10614141123456789") == "7"  # SSCC
    assert not tags.gs1_valid("4006381333913")
    assert tags.luhn36_valid("ABC" + tags.luhn36_check("ABC"))


def test_check_functions_refuse_long_or_foreign_input():
    e = raises(ProtocolError, tags.mod37_2_check, "A" * 65)
    assert e.code == "tag_too_long"
    assert raises(ProtocolError, tags.luhn_check, "12a").code == "bad_char"
    assert raises(ProtocolError, tags.mod37_2_valid, "1" * 65).code == "tag_too_long"
    assert not tags.mod37_2_valid("sk0010001A")  # lower case is not in the alphabet
    assert not tags.luhn_valid("")


def test_uid_sanity():
    assert tags.uid_problem(bytes([0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0x80])) is None
    assert tags.uid_problem(bytes([0xDE, 0xAD, 0xBE, 0xEF])) is None
    assert tags.uid_problem(bytes(4)) == "blank"
    assert tags.uid_problem(b"\xff" * 7) == "blank"
    assert tags.uid_problem(bytes([0x88, 1, 2, 3])) == "cascade"
    assert tags.uid_problem(bytes([4, 1, 2, 0x88, 5, 6, 7])) == "cascade"
    assert tags.uid_problem(bytes([4, 1, 2, 3, 4, 5, 0x88, 7, 8, 9])) == "cascade"
    assert tags.uid_problem(bytes([4, 1, 2, 0x88, 4, 5, 6, 7, 8, 9])) is None
    assert tags.uid_problem(bytes([0x08, 1, 2, 3])) == "random"
    assert tags.uid_problem(bytes(5)) == "length"


def test_canonical_text():
    assert tags.canonical(0, b"\x04\xa1\x0f") == "04A10F"
    assert tags.canonical(3, b"  SK0010001A\r\n") == "SK0010001A"
    assert tags.canonical(3, b"\xed\xa0\x80") is None  # encoded surrogate: not UTF-8
    assert tags.canonical(3, b"\r\n") is None
    assert tags.canonical(3, b"A" * 65) is None
    assert tags.fallback_text(3, b"\xff") == "?FF"


def test_identify_against_example_formats():
    fs = example().formats
    assert tags.identify(fs, 3, b"SK0010001A")[0] == tags.OK
    assert tags.identify(fs, 3, b"SK0010001B")[0] == tags.BAD_CHECK
    assert tags.identify(fs, 3, b"SK001000A")[0] == tags.BAD_SYNTAX
    res, f, key = tags.identify(fs, 2, b"https://trace.example.org/t/SK0010001A")
    assert res == tags.OK and f.name == "mine-label-link" and key == "SK0010001A"
    assert tags.identify(fs, 0, bytes([4, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0x80]))[0] == tags.OK
    assert tags.identify(fs, 0, bytes([5, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0x80]))[0] == tags.BAD_SYNTAX
    assert tags.identify(fs, 4, b"061512340000000015")[0] == tags.OK
    assert tags.identify(fs, 4, b"061512340000000016")[0] == tags.BAD_CHECK
    assert tags.identify(fs, 1, b"061512340000000015")[0] == tags.BAD_SYNTAX  # wrong kind


# --- canonical JSON -----------------------------------------------------------------------------
def test_canonical_json_form():
    assert canon.dumps({"b": [1, -2, True, None], "a": "x\"\\\n\u0001é"}) == '{"a":"x\\"\\\\\\n\\u0001é","b":[1,-2,true,null]}'
    assert canon.dumps(canon.loads(' { "z" : 1 , "a" : { "y" : [ ] , "b" : "\\u00e9\\/" } } ')) == '{"a":{"b":"é/","y":[]},"z":1}'
    assert canon.loads('"\\ud83d\\ude00"') == "\U0001F600"


def test_canonical_json_refusals():
    for text, code in (
        ('{"a": 1.5}', "bad_json"),
        ('{"a": 1e3}', "bad_json"),
        ('{"a": 1, "a": 2}', "bad_json"),
        ('{"a": 01}', "bad_json"),
        ("[1,]", "bad_json"),
        ('{"a": 1} x', "bad_json"),
        ('"\\ud800"', "bad_json"),
        ('"a\tb"', "bad_json"),
        ("[" * 9 + "]" * 9, "too_deep"),
        ("9" * 17, "bad_json"),
        (" " * (canon.MAX_BYTES + 1), "too_large"),
        (b"\"\xed\xa0\x80\"", "bad_json"),
    ):
        e = raises(RuleSetError, canon.loads, text)
        assert e.code == code, (text, e.code)
    assert canon.loads("[" * 8 + "]" * 8) == [[[[[[[[]]]]]]]]
    assert raises(RuleSetError, canon.dumps, {"a": 0.5}).code == "bad_json"
    assert raises(RuleSetError, canon.dumps, {1: 2}).code == "bad_json"


def test_hash_and_id():
    h = canon.ruleset_hash({"b": 1, "a": 2})
    assert h == canon.ruleset_hash({"a": 2, "b": 1})
    assert len(h) == 32
    assert canon.ruleset_id(b"\x12\x34\x56\x78" + bytes(28)) == 0x12345678
    assert canon.ruleset_id(b"\xff\xff\xff\xff") == 0xFFFFFFFF


# --- rule-set loading ---------------------------------------------------------------------------
def test_example_loads_and_hash_covers_canonical_form():
    rs = example()
    assert rs.site == "CD-SK-012" and rs.steps == (1, 2, 3)
    import hashlib

    assert rs.hash == hashlib.sha256(rs.canonical().encode("utf-8")).digest()
    assert rs.id == canon.ruleset_id(rs.hash)
    again = ruleset.load(rs.canonical())
    assert again.hash == rs.hash
    assert ruleset.load(rs.doc).hash == rs.hash


def _base():
    return {
        "format": "tagweigh-ruleset/1", "version": "1", "site": "S1", "steps": [1, 2],
        "minerals": {"SN": {"en": "Tin", "fr": "Étain"}},
        "rules": [{"id": "w", "kind": "WEIGHT-RANGE", "severity": "reject",
                   "params": {"ranges": [{"min_g": 1, "max_g": 10}]}}],
    }


def test_malformed_entries_are_named():
    cases = (
        (("rules", 0, "params", "ranges", 0, "max_g"), 0, "rules[0].params.ranges[0].max_g"),
        (("rules", 0, "severity"), "fatal", "rules[0].severity"),
        (("rules", 0, "kind"), "NOPE", "rules[0].kind"),
        (("format",), "tagweigh-ruleset/2", "format"),
        (("steps",), [1, 16], "steps[1]"),
        (("minerals", "SN", "fr"), 3, "minerals.SN.fr"),
        (("rules", 0, "params", "ranges", 0, "extra"), 1, "rules[0].params.ranges[0].extra"),
        (("rules", 0, "steps"), [3], "rules[0].steps[0]"),
    )
    for path, value, named in cases:
        d = _base()
        o = d
        for p in path[:-1]:
            o = o[p]
        o[path[-1]] = value
        e = raises(RuleSetError, ruleset.load, d)
        assert e.code == "bad_ruleset"
        assert e.path == named, (e.path, named)
        assert named in str(e)
    d = _base()
    d["rules"].append(dict(d["rules"][0]))
    assert raises(RuleSetError, ruleset.load, d).path == "rules[1].id"
    d = _base()
    d["rules"][0]["kind"] = "TAG-SITE"
    del d["rules"][0]["params"]
    assert raises(RuleSetError, ruleset.load, d).path == "rules[0]"  # no allocations


def test_load_does_not_touch_its_input():
    d = _base()
    before = canon.dumps(d)
    d["rules"][0]["params"]["ranges"][0]["max_g"] = -5
    raises(RuleSetError, ruleset.load, d)
    assert canon.dumps(d) != before and d["rules"][0]["params"]["ranges"][0]["max_g"] == -5
    good = ruleset.load(_base())
    d2 = _base()
    rs = ruleset.load(d2)
    d2["version"] = "changed"
    assert rs.hash == good.hash and rs.version == "1"


# --- evaluation ---------------------------------------------------------------------------------
def test_clean_reading_is_accepted():
    rs = example()
    st = rules.MemoryRuleState(16, provisioned_at=T0 - 86400)
    v = rules.evaluate(rs, reading(), st, now=T0)
    assert v.verdict == reasons.ACCEPT and v.reason == 0 and v.findings == []
    assert v.byte() == 0 and v.tag_key == "SK0010001A" and v.mineral == "SN"
    assert reasons.message(v.reason, "fr") == "Accepté"


def _only(v, rule_id, severity):
    ids = [f.rule_id for f in v.findings]
    assert ids == [rule_id], ids
    assert v.verdict == severity and v.rule_id == rule_id
    assert v.byte() == severity | (reasons.code_of(rule_id) << 2)


def test_each_rule_fires_alone():
    rs = example()
    R = reasons
    _only(rules.evaluate(rs, reading(tag=b"SK0010001B")), "TAG-CHECK", R.REJECT)
    v = rules.evaluate(rs, reading(tag=b"XX0010001A"))
    assert v.findings[0].rule_id == "TAG-SYNTAX" and v.rule_id == "TAG-SYNTAX"
    _only(rules.evaluate(rs, reading(tag=b"SK0030000" + tags.mod37_2_check("SK0030000").encode())), "TAG-SITE", R.REJECT)
    _only(rules.evaluate(rs, reading(step=2, tag=b"061512340000000015", tag_kind=4)), "TAG-STEP", R.REJECT)
    assert rules.evaluate(rs, reading(step=3, tag=b"061512340000000015", tag_kind=4, net_g=500000)).verdict == 0
    v = rules.evaluate(rs, reading(net_g=90000))  # both the hard and the usual band fail
    assert [(f.entry, f.severity) for f in v.findings] == [("weight-limits", 2), ("weight-usual", 1)]
    assert v.verdict == R.REJECT and v.rule_id == "WEIGHT-RANGE"
    assert v.findings[0].detail == "net 90000 g not in 2000..80000 g"
    _only(rules.evaluate(rs, reading(net_g=70000)), "WEIGHT-RANGE", R.WARN)
    _only(rules.evaluate(rs, reading(stable=False)), "NOT-STABLE", R.REJECT)
    _only(rules.evaluate(rs, reading(step=7)), "STEP-UNKNOWN", R.REJECT)
    _only(rules.evaluate(rs, reading(operator=0)), "OPERATOR", R.REJECT)
    _only(rules.evaluate(rs, reading(operator=101)), "OPERATOR", R.REJECT)  # step 1 only
    _only(rules.evaluate(rs, reading(time=None)), "TIME-NOT-SYNCED", R.WARN)
    _only(rules.evaluate(rs, reading(), None, T0 - 301), "TIME-FUTURE", R.REJECT)
    assert rules.evaluate(rs, reading(), None, T0 - 300).verdict == 0
    _only(rules.evaluate(rs, reading(time=1767225600 - 301)), "TIME-BEFORE-PROVISIONING", R.REJECT)
    _only(rules.evaluate(rs, reading(ruleset_id=rs.id ^ 1)), "RULESET-MISMATCH", R.WARN)


def test_overload_and_precedence():
    rs = example()
    v = rules.evaluate(rs, reading(net_g=9000000 - 1, out_of_range=True, stable=False, time=None))
    assert [f.rule_id for f in v.findings] == ["OUT-OF-RANGE", "NOT-STABLE", "WEIGHT-RANGE", "WEIGHT-RANGE", "TIME-NOT-SYNCED"]
    assert v.verdict == reasons.REJECT and v.rule_id == "OUT-OF-RANGE"  # first reject in rule order
    v = rules.evaluate(rs, reading(time=None, ruleset_id=1, net_g=15000))
    assert v.verdict == reasons.WARN and v.rule_id == "WEIGHT-RANGE"  # first warn wins among warns
    assert reasons.unpack_verdict(v.byte()) == (reasons.WARN, reasons.WEIGHT_RANGE)


def test_stateful_rules_with_memory_state():
    rs = example()
    st = rules.MemoryRuleState(8, provisioned_at=T0 - 10)
    r1 = reading(seq=1, step=1, operator=101, net_g=40000)
    v1 = rules.evaluate(rs, r1, st, T0)
    assert v1.verdict == 0
    st.record(r1, v1)
    assert st.seen_at_step("SK0010001A", 1) and not st.seen_at_step("SK0010001A", 2)
    v = rules.evaluate(rs, reading(seq=2, step=1, operator=101, net_g=40000), st, T0)
    _only(v, "DUPLICATE-STEP", reasons.REJECT)
    st.record(reading(seq=2, step=1, operator=101), v)  # a reject only advances the sequence
    assert st.last_seq() == 2 and len(st) == 1
    _only(rules.evaluate(rs, reading(seq=3, net_g=40401), st, T0), "MASS-BALANCE", reasons.REJECT)
    assert rules.evaluate(rs, reading(seq=3, net_g=40400), st, T0).verdict == 0  # 200 g + 5 permille
    _only(rules.evaluate(rs, reading(seq=5, net_g=40000), st, T0), "SEQ-GAP", reasons.WARN)
    _only(rules.evaluate(rs, reading(seq=3, net_g=40000, time=T0 - 311), st, T0), "TIME-BEFORE-PROVISIONING", reasons.REJECT)
    assert rules.evaluate(rs, reading(seq=3), None, T0).verdict == 0  # no state: stateful rules skipped


def test_memory_state_ring_evicts_oldest():
    st = rules.MemoryRuleState(3)

    class V:
        verdict = 0

        def __init__(self, k):
            self.tag_key = k

    for i in range(5):
        st.record(reading(seq=i + 1, step=1, net_g=1000 + i), V("T" + str(i)))
    assert len(st) == 3 and st.last_seq() == 5
    assert not st.seen_at_step("T0", 1) and not st.seen_at_step("T1", 1)
    assert st.seen_at_step("T2", 1) and st.seen_at_step("T4", 1)
    st.record(reading(seq=6, step=2, net_g=5), V("T4"))
    st.record(reading(seq=7, step=1, net_g=1099), V("T4"))
    assert st.earlier_weight("T4", 2) == 1099  # latest record at the nearest earlier step
    assert st.earlier_weight("T4", 3) == 5
    assert st.earlier_weight("T4", 1) is None
    assert st.earlier_weight("T9", 3) is None


def test_reason_table_is_complete_and_short():
    seen = []
    for row in reasons.TABLE:
        code, rid, en, fr, hen, hfr = row
        assert 0 <= code <= 63 and code not in seen
        seen.append(code)
        assert reasons.rule_id(code) == rid and reasons.code_of(rid) == code
        assert 0 < len(en) <= 40 and 0 < len(fr) <= 48, rid
        assert hen and hfr and reasons.message(code, "fr") == fr and reasons.hint(code, "en") == hen
    for k in ruleset.KINDS:
        assert reasons.code_of(k) is not None
    assert reasons.message(60) == "Reason 60" and reasons.rule_id(60) == "UNKNOWN-60"
    assert reasons.pack_verdict(2, 63) == 0xFE and reasons.unpack_verdict(0xFE) == (2, 63)
