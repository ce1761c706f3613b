"""Canonical JSON and rule-set loading: properties (CPython). Plain checks shared with MicroPython
are in vm_rules.py."""

import copy
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twproto import canon, ruleset
from twproto.errors import RuleSetError

EXAMPLE = Path(__file__).resolve().parents[2] / "protocol" / "rulesets" / "example-depot.json"
DOC = json.loads(EXAMPLE.read_text("utf-8"))

ints = st.integers(-canon.MAX_INT, canon.MAX_INT)
scalars = st.one_of(st.none(), st.booleans(), ints, st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20,
)


def _reorder(v, rnd):
    """The same value with every object's keys inserted in a shuffled order."""
    if isinstance(v, dict):
        keys = list(v)
        rnd.shuffle(keys)
        return {k: _reorder(v[k], rnd) for k in keys}
    if isinstance(v, list):
        return [_reorder(x, rnd) for x in v]
    return v


def _depth(v):
    if isinstance(v, dict):
        return 1 + max([_depth(x) for x in v.values()], default=0)
    if isinstance(v, list):
        return 1 + max([_depth(x) for x in v], default=0)
    return 0


@settings(max_examples=150, deadline=None)
@given(json_values, st.randoms(use_true_random=False))
def test_canonical_json_is_stable_under_key_order_and_matches_cpython_json(v, rnd):
    if _depth(v) > canon.MAX_DEPTH:
        return
    text = canon.dumps(v)
    assert canon.dumps(_reorder(v, rnd)) == text
    # Same bytes as CPython's json with sorted keys, compact separators, raw UTF-8.
    assert text == json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canon.loads(text) == v
    assert canon.loads(json.dumps(v, indent=2, ensure_ascii=True)) == v
    assert canon.ruleset_hash(v) == hashlib.sha256(text.encode()).digest()


def test_hash_of_a_fixed_document_is_pinned():
    # Guards the canonical form itself: changing it would change every rule set's identity.
    doc = {"b": [1, -2, "é\n"], "a": {"y": None, "x": True}}
    assert canon.dumps(doc) == '{"a":{"x":true,"y":null},"b":[1,-2,"é\\n"]}'
    h = canon.ruleset_hash(doc)
    assert h.hex() == hashlib.sha256('{"a":{"x":true,"y":null},"b":[1,-2,"é\\n"]}'.encode()).hexdigest()
    assert canon.ruleset_id(h) == int.from_bytes(h[:4], "big")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60)))
def test_loads_of_garbage_raises_only_rulseterror(text):
    try:
        canon.loads(text)
    except RuleSetError as e:
        assert e.code in ("bad_json", "too_deep", "too_large")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='{}[]":,0123456789-.eEtrufalsn \\u', max_size=40))
def test_loads_of_json_like_text_agrees_with_cpython_or_is_stricter(text):
    try:
        v = canon.loads(text)
    except RuleSetError:
        return
    assert json.loads(text) == v  # whatever we accept, CPython reads the same way


def test_example_hash_is_content_not_layout():
    a = ruleset.load(EXAMPLE.read_bytes())
    b = ruleset.load(json.dumps(DOC, indent=4, ensure_ascii=True))
    c = ruleset.load(copy.deepcopy(DOC))
    assert a.hash == b.hash == c.hash == canon.ruleset_hash(DOC)
    changed = copy.deepcopy(DOC)
    changed["rules"][8]["params"]["tolerance_g"] = 201
    assert ruleset.load(changed).hash != a.hash


def test_size_and_depth_bounds():
    big = copy.deepcopy(DOC)
    big["allocations"][2]["tags"] = ["04%012X" % i for i in range(2000)]
    with pytest.raises(RuleSetError) as e:
        ruleset.load(big)
    assert e.value.code == "too_large"
    with pytest.raises(RuleSetError) as e:
        ruleset.load(json.dumps(big))
    assert e.value.code == "too_large"
    deep = copy.deepcopy(DOC)
    deep["title"] = [[[[[[[[["x"]]]]]]]]]
    with pytest.raises(RuleSetError) as e:
        ruleset.load(deep)
    assert e.value.code == "too_deep"


# --- random damage to the example: RuleSetError or a complete load, nothing else --------------
def _paths(v, prefix=()):
    yield prefix
    if isinstance(v, dict):
        for k in v:
            yield from _paths(v[k], prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _paths(x, prefix + (i,))


ALL_PATHS = list(_paths(DOC))[1:]
def _get(d, path):
    for p in path:
        d = d[p]
    return d


OBJECT_PATHS = [p for p in [()] + ALL_PATHS if isinstance(_get(DOC, p), dict)]
odd_values = st.one_of(
    json_values,
    st.sampled_from([0, -1, 16, 65536, 1 << 23, "", "x" * 300, [], {}, [[]], None, True, "reject", "warn",
                     "SN", "TAG-SITE", [1, 2], [2, 1], ["SK1", "SK0"], "*"]),
)
mutations = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(ALL_PATHS), odd_values),
    st.tuples(st.just("del"), st.sampled_from(ALL_PATHS), st.none()),
    st.tuples(st.just("add"), st.sampled_from(OBJECT_PATHS), st.text(min_size=1, max_size=8)),
    st.tuples(st.just("float"), st.sampled_from(ALL_PATHS), st.floats(allow_nan=False, allow_infinity=False)),
)


def _apply(doc, m):
    op, path, arg = m
    if op == "add":
        o = _get(doc, path)
        if arg in o:
            return None
        o[arg] = 1
        return ".".join([str(p) for p in path] + [arg])
    parent = _get(doc, path[:-1])
    if op == "del":
        del parent[path[-1]]
    else:
        parent[path[-1]] = arg
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutations, min_size=1, max_size=3))
def test_damaged_rule_sets_raise_rulseterror_or_load_completely(ms):
    doc = copy.deepcopy(DOC)
    added = None
    for m in ms:
        try:
            key = _apply(doc, m)
        except (KeyError, IndexError, TypeError):
            return  # an earlier mutation removed this path
        if m[0] == "add":
            if key is None and len(ms) == 1:
                return  # the key was already there: nothing was changed
            added = key
    before = repr(doc)
    try:
        rs = ruleset.load(doc)
    except RuleSetError as e:
        assert e.code in ("bad_json", "too_deep", "too_large", "bad_ruleset")
        assert str(e) and (e.code != "bad_ruleset" or e.path is not None)
        assert repr(doc) == before  # the input is never modified
        if len(ms) == 1 and ms[0][0] == "float":
            assert e.code == "bad_json" and "float" in str(e)
        if len(ms) == 1 and ms[0][0] == "add" and e.code == "bad_ruleset":
            assert e.path is not None
        return
    # Loaded: then it is complete and its identity is the canonical hash of what was given.
    assert not (len(ms) == 1 and ms[0][0] in ("add", "float")), "unknown key or float accepted"
    assert rs.hash == canon.ruleset_hash(doc)
    assert len(rs.rules) == len(doc["rules"])
    assert repr(doc) == before
    assert added is None or len(ms) > 1


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(OBJECT_PATHS[1:]), st.text(alphabet="abcdefghij_", min_size=3, max_size=8))
def test_unknown_key_is_refused_and_named(path, key):
    doc = copy.deepcopy(DOC)
    o = _get(doc, path)
    if key in o or path[0] == "minerals" and len(path) == 1:
        return  # minerals' keys are mineral codes: a new one is a (valid or invalid) mineral
    o[key] = 1
    with pytest.raises(RuleSetError) as e:
        ruleset.load(doc)
    assert e.value.code == "bad_ruleset"
    assert e.value.path.endswith("." + key), (e.value.path, key)


def test_error_paths_name_the_entry():
    cases = [
        (("rules", 5, "params", "ranges", 1, "max_g"), 1999, "rules[5].params.ranges[1].max_g"),
        (("rules", 5, "params", "ranges", 0, "minerals", 1), "AU", "rules[5].params.ranges[0].minerals[1]"),
        (("tag_formats", 0, "check"), "mod11-2", "tag_formats[0].check"),
        (("tag_formats", 3, "length"), 16, "tag_formats[3].length"),
        (("tag_formats", 2, "uid_lengths", 0), 5, "tag_formats[2].uid_lengths[0]"),
        (("allocations", 0, "ranges", 0), ["SK0014999", "SK0010000"], "allocations[0].ranges[0]"),
        (("allocations", 2, "tags", 1), "04A1B2C3D4E580", "allocations[2].tags[1]"),
        (("allocations", 1, "mineral"), "AU", "allocations[1].mineral"),
        (("rules", 9, "params", "operators", 1, "id"), 101, "rules[9].params.operators[1].id"),
        (("rules", 1, "id"), "station-role", "rules[1].id"),
        (("rules", 8, "params", "tolerance_permille"), 1001, "rules[8].params.tolerance_permille"),
        (("rules", 11, "params", "skew_s"), -1, "rules[11].params.skew_s"),
        (("site",), "CD SK 012", "site"),
    ]
    for path, value, named in cases:
        doc = copy.deepcopy(DOC)
        _get(doc, path[:-1])[path[-1]] = value
        with pytest.raises(RuleSetError) as e:
            ruleset.load(doc)
        assert e.value.path == named, (named, str(e.value))
        assert str(e.value).startswith("bad_ruleset: " + named + ": ")


RAW = EXAMPLE.read_bytes()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(RAW) - 1), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(1, len(RAW)))
def test_corrupted_or_truncated_file_bytes_raise_rulseterror_or_load(flips, cut):
    data = bytearray(RAW[:cut])
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    try:
        rs = ruleset.load(bytes(data))
    except RuleSetError as e:
        assert e.code in ("bad_json", "too_deep", "too_large", "bad_ruleset")
        return
    assert rs.hash == canon.ruleset_hash(json.loads(bytes(data).decode("utf-8")))
