# The station's compact rule set (twproto.rsbin, RULES.md section 9): plain-assert checks run on
# CPython and inside the MicroPython VM (collected for both by tests/conftest.py). On MicroPython
# load_file() uses the compact file by default, as on the station.
import hashlib
import os

from twproto import rsbin, rsload, ruleset
from twproto.port import MICROPYTHON

RULESETS_DIR = "protocol/rulesets"  # the harness (tests/conftest.py) makes it absolute
_N = [0]


def _dir():
    _N[0] += 1
    try:
        import tempfile

        return tempfile.mkdtemp(prefix="vmrsb")
    except ImportError:
        p = "/vmrsb" + str(_N[0])
        os.mkdir(p)
        return p


def _example_dir():
    with open(RULESETS_DIR + "/example-depot.json", "rb") as f:
        src = f.read()
    d = _dir()
    with open(d + "/ruleset.json", "wb") as f:
        f.write(src)
    return d, src


def dump(o):
    """Everything a loaded rule set holds, with types: two loads are the same iff equal."""
    t = type(o).__name__
    if t == "function":
        return t, o.__name__
    if isinstance(o, (list, tuple)):
        return t, [dump(x) for x in o]
    if isinstance(o, dict):  # MicroPython's dicts do not keep insertion order
        return t, sorted([(dump(k), dump(o[k])) for k in o])
    if hasattr(o, "__dict__"):
        d = o.__dict__
        return t, [(k, dump(d[k])) for k in sorted(d)]
    return t, o


def _no_validation(src):
    raise AssertionError("validated the JSON although the compact file is current")


def test_second_load_uses_the_compact_file_and_gives_the_same_rule_set():
    d, src = _example_dir()
    first = ruleset.load_file(d + "/ruleset.json", True)  # validates, writes ruleset.bin
    assert "ruleset.bin" in os.listdir(d) and "ruleset.bin.tmp" not in os.listdir(d)
    first.drop_document()  # what the station keeps
    saved = rsload.load
    rsload.load = _no_validation
    try:
        again = ruleset.load_file(d + "/ruleset.json", True)
    finally:
        rsload.load = saved
    assert again.id == first.id and again.hash == first.hash and again.doc is None
    assert dump(again) == dump(first)
    assert again.canonical.__name__ == "canonical"  # still a RuleSet
    if MICROPYTHON:  # the station's default
        assert dump(ruleset.load_file(d + "/ruleset.json")) == dump(first)


def test_every_truncation_and_every_flipped_byte_is_refused():
    d, src = _example_dir()
    ruleset.load_file(d + "/ruleset.json", True)
    with open(d + "/ruleset.bin", "rb") as f:
        good = f.read()
    h = hashlib.sha256(src).digest()
    p = d + "/bad.bin"
    for n in range(len(good)):
        with open(p, "wb") as f:
            f.write(good[:n])
        try:
            rsbin.load(p, h)
        except Exception:  # noqa: BLE001 - any failure sends load_file to the full validation
            continue
        raise AssertionError("truncated to %d bytes and accepted" % n)
    for i in range(0, len(good), 7 if MICROPYTHON else 1):
        bad = bytearray(good)
        bad[i] ^= 0x20
        with open(p, "wb") as f:
            f.write(bad)
        try:
            rsbin.load(p, h)
        except Exception:  # noqa: BLE001
            continue
        raise AssertionError("byte %d flipped and accepted" % i)
    with open(p, "wb") as f:
        f.write(good + b"x")
    try:
        rsbin.load(p, h)
        raise AssertionError("trailing byte accepted")
    except ValueError:
        pass


def test_damaged_or_stale_compact_file_falls_back_to_full_validation_and_is_rewritten():
    d, src = _example_dir()
    ref = ruleset.load_file(d + "/ruleset.json", True)
    ref.drop_document()
    with open(d + "/ruleset.bin", "rb") as f:
        good = f.read()
    for bad in (good[:100], good[:-1], good[:200] + b"?" + good[201:], b""):
        with open(d + "/ruleset.bin", "wb") as f:
            f.write(bad)
        rs = ruleset.load_file(d + "/ruleset.json", True)
        assert rs.doc is not None  # validated
        rs.drop_document()
        assert dump(rs) == dump(ref)
        with open(d + "/ruleset.bin", "rb") as f:
            assert f.read() == good  # rewritten
    # Same rule set in other bytes (spaces added): the old compact file is stale, not reused.
    with open(d + "/ruleset.json", "wb") as f:
        f.write(b" " + src + b"\n")
    rs = ruleset.load_file(d + "/ruleset.json", True)
    assert rs.doc is not None and rs.id == ref.id
    with open(d + "/ruleset.bin", "rb") as f:
        new = f.read()
    assert new != good and new[4:36] == hashlib.sha256(b" " + src + b"\n").digest()
    # A different rule set: never the old one, even with the old compact file put back.
    with open(d + "/ruleset.bin", "wb") as f:
        f.write(good)
    with open(d + "/ruleset.json", "wb") as f:
        f.write(src.replace(b'"tolerance_g": 200', b'"tolerance_g": 201'))
    rs = ruleset.load_file(d + "/ruleset.json", True)
    assert rs.doc is not None and rs.id != ref.id


def test_only_json_paths_get_a_compact_file():
    d, src = _example_dir()
    with open(d + "/ruleset.json.part", "wb") as f:  # a push in progress (twstation.commands)
        f.write(src)
    ruleset.load_file(d + "/ruleset.json.part", True)
    ruleset.load_file(d + "/ruleset.json", False)
    assert sorted(os.listdir(d)) == ["ruleset.json", "ruleset.json.part"]
