"""The station's compact rule set (twproto.rsbin / rsload.compact, RULES.md section 9) over
generated valid rule sets (CPython): the compact load gives exactly the validated rule set, so the
same ID and the same verdicts; the bytes are the same when MicroPython writes them."""

import hashlib
import json
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twproto import canon, rsbin, rsload, ruleset, tags
from twproto.rules import MemoryRuleState, evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vm_rsbin import dump  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "protocol" / "rulesets" / "example-depot.json"
T0 = 1790000000


def test_private_copies_match():
    assert rsbin._MAX_BYTES == canon.MAX_BYTES  # ruleset.load_file's limit (its code is in rsbin)
    assert rsbin._MAX_BIN == rsload._MAX_BIN


def _unique(elems, **kw):
    return st.lists(elems, unique=True, **kw)


@st.composite
def rule_sets(draw):
    steps = draw(_unique(st.integers(0, 15), min_size=1, max_size=5))
    some_steps = _unique(st.sampled_from(steps), min_size=1)
    minerals = draw(_unique(st.sampled_from(["SN", "TA", "W", "AU-1"]), min_size=1))
    doc = {"format": ruleset.FORMAT, "version": draw(st.sampled_from(["1", "2026.11-1", 'a"b\\c'])),
           "site": "S-1", "steps": steps,
           "minerals": {m: {"en": m + " ore", "fr": "minerai " + m} for m in minerals}}
    formats = []
    for i in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            f = {"name": "u%d" % i, "type": "uid",
                 "uid_lengths": draw(_unique(st.sampled_from([4, 7, 10]), min_size=1))}
            if draw(st.booleans()):
                f["manufacturers"] = draw(_unique(st.integers(0, 255), min_size=1, max_size=3))
        else:
            check, alphabet = draw(st.sampled_from([
                ("none", "printable"), ("none", "hex"), ("mod37-2", "alnum"), ("mod37-2", "digits"),
                ("luhn", "digits"), ("luhn-mod36", "hex"), ("gs1", "digits")]))
            prefix = draw(st.sampled_from(["", "1", "12"]))
            least = len(prefix) + (1 if check == "none" else 2)
            lo = draw(st.integers(least, 20))
            length = draw(st.one_of(st.just(lo), st.integers(lo, 24).map(lambda hi: [lo, hi])))
            if check == "gs1":
                length = draw(st.sampled_from([8, 13, 18]))
            f = {"name": "t%d" % i, "type": "text",
                 "kinds": draw(_unique(st.integers(1, 4), min_size=1)), "alphabet": alphabet,
                 "check": check, "prefix": prefix, "length": length,
                 "strip": draw(st.sampled_from(["", "https://x.org/t/", '"\\'] ))}
        formats.append(f)
    if formats:
        doc["tag_formats"] = formats
    allocs = []
    for i in range(draw(st.integers(0, 3))):
        a = {"origin": "O%d" % i, "mineral": draw(st.sampled_from(minerals)),
             "tags": ["T%d-%d" % (i, j) for j in range(draw(st.integers(0, 3)))]}
        a["ranges"] = [["1%d0" % j, "1%d9" % j] for j in range(draw(st.integers(0 if a["tags"] else 1, 2)))]
        if draw(st.booleans()):
            a["steps"] = draw(some_steps)
        allocs.append(a)
    if allocs:
        doc["allocations"] = allocs
    kinds = [k for k in ruleset.KINDS if (k != "TAG-SYNTAX" or formats) and (k != "TAG-SITE" or allocs)]
    rules = []
    for i in range(draw(st.integers(1, 8))):
        k = draw(st.sampled_from(kinds))
        r = {"id": "r%d" % i, "kind": k, "severity": draw(st.sampled_from(["warn", "reject"]))}
        if draw(st.booleans()):
            r["steps"] = draw(some_steps)
        p = {}
        if k == "TAG-SYNTAX" and draw(st.booleans()):
            p["formats"] = draw(_unique(st.sampled_from([f["name"] for f in formats]), min_size=1))
        elif k == "WEIGHT-RANGE":
            p["ranges"] = []
            for _ in range(draw(st.integers(1, 3))):
                lo = draw(st.integers(-100, 50000))
                e = {"min_g": lo, "max_g": draw(st.integers(lo, 90000))}
                if draw(st.booleans()):
                    e["steps"] = draw(some_steps)
                if draw(st.booleans()):
                    e["minerals"] = draw(_unique(st.sampled_from(minerals), min_size=1))
                p["ranges"].append(e)
        elif k == "TIME-FUTURE":
            p["skew_s"] = draw(st.integers(0, 86400))
        elif k == "TIME-BEFORE-PROVISIONING":
            p = draw(st.fixed_dictionaries({}, optional={"not_before": st.integers(0, T0 + 100),
                                                         "skew_s": st.integers(0, 600)}))
        elif k == "SEQ-GAP" and draw(st.booleans()):
            p["max_gap"] = draw(st.integers(0, 5))
        elif k == "OPERATOR":
            ids = draw(_unique(st.integers(1, 65535), min_size=1, max_size=4))
            p["operators"] = [{"id": o, "steps": draw(some_steps)} if draw(st.booleans()) else {"id": o}
                              for o in ids]
        elif k == "MASS-BALANCE":
            p = {"tolerance_g": draw(st.integers(0, 500))}
            if draw(st.booleans()):
                p["tolerance_permille"] = draw(st.integers(0, 1000))
        if p:
            r["params"] = p
        rules.append(r)
    doc["rules"] = rules
    return doc


def _tag(draw, doc):
    pool = [b"T0-0", b"T1-1", b"105", b"1234567895", b"12ABC", b"\x04\xa1\xb2\xc3\xd4\xe5\x80",
            b"https://x.org/t/1200", b"40063813339310", b"SK0010001A"]
    return draw(st.one_of(st.sampled_from(pool), st.binary(max_size=12)))


readings = st.lists(st.tuples(st.integers(0, 15), st.integers(0, 4), st.integers(-200, 95000),
                              st.integers(0, 70000), st.booleans(), st.integers(-700, 700)),
                    min_size=1, max_size=12)


class R:
    def __init__(self, seq, step, kind, tag, net, op, stable, t, rid):
        self.seq, self.step, self.tag_kind, self.tag, self.net_g = seq, step, kind, tag, net
        self.operator, self.stable, self.time, self.ruleset_id = op, stable, t, rid
        self.out_of_range = False


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_sets(), readings, st.data())
def test_compact_load_is_the_validated_rule_set_with_the_same_verdicts(doc, specs, data):
    src = json.dumps(doc, indent=data.draw(st.sampled_from([None, 1]))).encode()
    full = ruleset.load(src)  # the generator makes valid rule sets only
    full.drop_document()
    b = rsload.compact(full, hashlib.sha256(src).digest())
    assert b[-32:] == hashlib.sha256(b[:-32]).digest()
    json.loads(b[68:-32])  # the body is plain JSON
    # Through the file system, as the station does.
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with open(d + "/rs.bin", "wb") as f:
            f.write(b)
        fast = rsbin.load(d + "/rs.bin", hashlib.sha256(src).digest())
    assert fast.id == full.id and fast.hash == full.hash
    assert dump(fast) == dump(full)
    sa, sb = MemoryRuleState(4, provisioned_at=T0 - 50), MemoryRuleState(4, provisioned_at=T0 - 50)
    for i, (step, kind, net, op, stable, dt) in enumerate(specs):
        tag = _tag(data.draw, doc)
        r = R(i * 2, step, kind, tag, net, op, stable, T0 + dt if dt > -600 else None,
              full.id if i % 3 else 7)
        va, vb = evaluate(full, r, sa, T0), evaluate(fast, r, sb, T0)
        assert [(f.entry, f.reason, f.detail) for f in va.findings] == \
            [(f.entry, f.reason, f.detail) for f in vb.findings]
        assert (va.byte(), va.tag_key, va.mineral, va.ruleset_id) == \
            (vb.byte(), vb.tag_key, vb.mineral, vb.ruleset_id)
        sa.record(r, va)
        sb.record(r, vb)


def test_provisioned_example_is_read_without_validation(tmp_path, monkeypatch):
    src = EXAMPLE.read_bytes()
    rs = ruleset.load(src)
    (tmp_path / "ruleset.json").write_bytes(src)
    (tmp_path / "ruleset.bin").write_bytes(rsload.compact(rs, hashlib.sha256(src).digest()))
    monkeypatch.setattr(rsload, "load", lambda src: 1 / 0)
    got = ruleset.load_file(str(tmp_path / "ruleset.json"), True)
    rs.drop_document()
    assert dump(got) == dump(rs)


def test_a_previous_layout_copy_is_stale_and_rewritten(tmp_path):
    # TWR1 stored a text format's length bounds as min_len/max_len (now lo/hi): such a copy,
    # intact otherwise, is refused, the JSON validated again and the copy rewritten as TWR2.
    src = EXAMPLE.read_bytes()
    rs = ruleset.load(src)
    b = rsload.compact(rs, hashlib.sha256(src).digest())
    assert b[:4] == b"TWR2" and b'"lo":' in b and b"min_len" not in b
    old = b"TWR1" + b[4:-32].replace(b'"hi":', b'"max_len":').replace(b'"lo":', b'"min_len":')
    old += hashlib.sha256(old).digest()
    (tmp_path / "ruleset.json").write_bytes(src)
    (tmp_path / "ruleset.bin").write_bytes(old)
    try:
        rsbin.load(str(tmp_path / "ruleset.bin"), hashlib.sha256(src).digest())
        raise AssertionError("a TWR1 copy was accepted")
    except ValueError:
        pass
    got = ruleset.load_file(str(tmp_path / "ruleset.json"), True)
    assert (tmp_path / "ruleset.bin").read_bytes() == b
    got.drop_document()
    rs.drop_document()
    assert dump(got) == dump(rs)


def test_host_load_file_writes_nothing_by_default(tmp_path):
    (tmp_path / "ruleset.json").write_bytes(EXAMPLE.read_bytes())
    ruleset.load_file(str(tmp_path / "ruleset.json"))
    assert [p.name for p in tmp_path.iterdir()] == ["ruleset.json"]


def test_micropython_writes_the_same_compact_bytes(mpvm_loaded):
    src = EXAMPLE.read_bytes()
    mine = rsload.compact(ruleset.load(src), hashlib.sha256(src).digest())
    mpvm_loaded.write("/ex.json", src)
    got = mpvm_loaded.eval_json(
        "__import__('twproto.ruleset').ruleset.load_file('/ex.json') and "
        "__import__('binascii').hexlify(open('/ex.bin', 'rb').read()).decode()")
    assert bytes.fromhex(got) == mine
    assert tags.mod37_2_valid.__name__ == "mod37_2_valid"  # stored by name


def test_provisioning_writes_the_compact_copy_the_station_reads(tmp_path, monkeypatch):
    from tagweigh import provisioning

    class Dev:  # the two calls write_ruleset makes on a tagweigh.provisioning.Device
        files: dict = {}

        def sha256(self, path):
            return None

        def write_file(self, path, data):
            self.files[path] = bytes(data)

    dev = Dev()
    changed, rid = provisioning.write_ruleset(dev, str(EXAMPLE))
    assert changed and set(dev.files) == {"/ruleset.json", "/ruleset.bin"}
    for name, data in dev.files.items():
        (tmp_path / name[1:]).write_bytes(data)
    monkeypatch.setattr(rsload, "load", lambda src: 1 / 0)  # must not be needed
    rs = ruleset.load_file(str(tmp_path / "ruleset.json"), True)
    assert "%08x" % rs.id == rid
