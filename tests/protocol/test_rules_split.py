"""The station's half and the host's half of the rules engine, tags and errors (firmware/MEMORY.md,
round 5): what moved to ruleshost / tagshost / errors.__getattr__ still gives the same texts,
objects and classes, and the station's modules do not load the host halves or twproto.reasons."""

import subprocess
import sys
from pathlib import Path

from twproto import errors, reasons, rules, ruleset, ruleshost, tags, tagshost
from twproto.errors import ProtocolError
from vm_rules import FakeReading

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "protocol" / "rulesets" / "example-depot.json"


def test_detail_texts_are_the_engines_former_texts():
    # the texts evaluate() formatted itself before they moved to ruleshost, value for value
    cases = [
        (reasons.TAG_STEP, ("Depot A", [1, 2]), "allocated to Depot A for steps [1, 2]"),
        (reasons.WEIGHT_RANGE, (90000, 2000, 80000), "net 90000 g not in 2000..80000 g"),
        (reasons.TIME_FUTURE, (10, 5, 2), "time 10 > now 5 + 2 s"),
        (reasons.OPERATOR, (7,), "operator 7 not listed"),
        (reasons.OPERATOR, (7, 3), "operator 7 not listed for step 3"),
        (reasons.RULESET_MISMATCH, (0xAB, 0x12345678), "reading has 000000ab, rule set is 12345678"),
        (reasons.TIME_BEFORE_PROVISIONING, (10, 20, 5), "time 10 < 20 - 5 s"),
        (reasons.SEQ_GAP, (4, 17), "4 missing after seq 17"),
        (reasons.MASS_BALANCE, (500, 400, 20), "net 500 g > earlier 400 g + 20 g"),
        (reasons.NOT_STABLE, None, None),
    ]
    for code, values, text in cases:
        assert ruleshost.detail_text(code, values) == text, code


def test_verdict_host_side_attributes():
    rs = ruleset.load_file(str(EXAMPLE))
    v = rules.evaluate(rs, FakeReading(net_g=90000, stable=False, ruleset_id=rs.id), None, 1790000000)
    assert v.findings is v.findings  # made once, then a plain attribute
    assert all(isinstance(f, rules.Finding) for f in v.findings) and rules.Finding is ruleshost.Finding
    assert v.rule_id == reasons.rule_id(v.reason) and v.byte() == reasons.pack_verdict(v.verdict, v.reason)
    assert repr(v).startswith("Verdict(reject, ") and "Finding(" in repr(v)
    for name in ("no_such_name", "__deepcopy__"):
        assert not hasattr(v, name)


def test_errors_made_on_first_use_are_one_class_each():
    for name in ("RuleSetError", "TagError"):
        c = getattr(errors, name)
        assert c is getattr(errors, name) and c.__name__ == name and issubclass(c, ProtocolError)
        e = c("code", "detail", "path")
        assert (e.code, e.path, str(e)) == ("code", "path", "code: detail")
    assert not hasattr(errors, "NoSuchError")
    try:
        tags.luhn_check("12A")
        raise AssertionError("no error")
    except errors.TagError as e:
        assert e.code == "bad_char" and str(e) == "bad_char: 'A' not allowed"


def test_tag_format_scheme_numbers_name_the_check_functions():
    assert set(tagshost.VALID) == {37, 10, 36, 3}
    for n, name in tagshost.VALID.items():
        f = getattr(tags, name)
        assert f.__name__ == name
        body = "1234567"
        assert tags._check(body, n) == {37: tags.mod37_2_check, 10: tags.luhn_check,
                                        36: tags.luhn36_check, 3: tags.gs1_check}[n](body)
        assert f(body + tags._check(body, n))
    assert (tags.DIGITS, tags.HEX, tags.MOD37) == ("0123456789", "0123456789ABCDEF", tags.ALNUM + "*")
    assert tags._check("12A", 10) is None  # the station's form: no exception


def test_the_station_modules_do_not_load_the_host_halves():
    code = (
        "import sys\n"
        "from twproto import rules, ruleset, tags\n"
        f"rs = ruleset.load_file({str(EXAMPLE)!r})\n"
        "class R: pass\n"
        "r = R()\n"
        "r.seq, r.step, r.tag_kind, r.tag, r.time, r.net_g = 1, 2, 3, b'SK0010001A', 1790000000, 1\n"
        "r.stable, r.out_of_range, r.operator, r.ruleset_id = False, False, 201, 0\n"
        "v = rules.evaluate(rs, r, rules.MemoryRuleState(4), None)\n"
        "assert v.verdict == 2 and v.reason\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('twproto'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert "twproto.rules" in loaded
    assert not loaded & {"twproto.reasons", "twproto.reasontext", "twproto.ruleshost"}, loaded


def test_a_boot_from_the_compact_rule_set_makes_no_tag_error(tmp_path):
    # The station's boot reads X.bin through rsbin, which asks tagshost for the alphabets and the
    # scheme names: TagError (a class on the station's heap for good) must not be made by that.
    import hashlib
    import json

    from twproto import canon, rsload

    data = canon.canonical_bytes(json.loads(EXAMPLE.read_text()))
    (tmp_path / "rs.json").write_bytes(data)
    (tmp_path / "rs.bin").write_bytes(
        rsload.compact(ruleset.load_file(str(EXAMPLE)), hashlib.sha256(data).digest()))
    code = (
        "import sys\n"
        "from twproto import errors, ruleset\n"
        f"rs = ruleset.load_file({str(tmp_path / 'rs.json')!r}, True)\n"
        "assert rs.doc is None and rs.formats and 'twproto.tagshost' in sys.modules\n"
        "print(' '.join(n for n in ('TagError', 'RuleSetError') if n in vars(errors)) or '-')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["-"], out  # neither class made (nor the validation that makes RuleSetError)
