"""Check characters, UID sanity and tag identification: properties over many inputs (CPython).
The plain checks that also run in MicroPython are in vm_rules.py."""

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twproto import tags
from twproto.canon import utf8_valid
from twproto.errors import TagError
from twproto.ruleset import load_file

ALNUM = tags.ALNUM
CHECK37 = ALNUM + "*"

alnum_codes = st.text(alphabet=ALNUM, min_size=1, max_size=30)
digit_codes = st.text(alphabet=tags.DIGITS, min_size=1, max_size=30)


def _substitutions(text, data_alphabet, check_alphabet):
    for i, c in enumerate(text):
        alphabet = check_alphabet if i == len(text) - 1 else data_alphabet
        for d in alphabet:
            if d != c:
                yield text[:i] + d + text[i + 1 :]


def _transpositions(text):
    for i in range(len(text) - 1):
        if text[i] != text[i + 1]:
            yield text[:i] + text[i + 1] + text[i] + text[i + 2 :]


@settings(max_examples=60, deadline=None)
@given(alnum_codes)
def test_mod37_2_detects_every_substitution_and_adjacent_transposition(code):
    full = code + tags.mod37_2_check(code)
    assert tags.mod37_2_valid(full)
    for bad in _substitutions(full, ALNUM, CHECK37):
        assert not tags.mod37_2_valid(bad), bad
    for bad in _transpositions(full):
        assert not tags.mod37_2_valid(bad), bad


@settings(max_examples=60, deadline=None)
@given(digit_codes)
def test_luhn_matches_reference_and_detects_substitutions(code):
    full = code + tags.luhn_check(code)
    # reference: double every second digit from the right (check digit excluded), sum digits
    total = 0
    for i, c in enumerate(reversed(full)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    assert total % 10 == 0
    assert tags.luhn_valid(full)
    for bad in _substitutions(full, tags.DIGITS, tags.DIGITS):
        assert not tags.luhn_valid(bad)
    for bad in _transpositions(full):
        pair = {bad[i] for i in range(len(bad)) if bad[i] != full[i]}
        if pair != {"0", "9"}:  # Luhn's one known blind spot: 09 <-> 90
            assert not tags.luhn_valid(bad), bad


@settings(max_examples=60, deadline=None)
@given(digit_codes)
def test_gs1_matches_reference_and_detects_substitutions(code):
    full = code + tags.gs1_check(code)
    weights = [3 if i % 2 else 1 for i in range(len(full))]  # from the right: check digit x1
    assert sum(int(c) * w for c, w in zip(reversed(full), weights)) % 10 == 0
    for bad in _substitutions(full, tags.DIGITS, tags.DIGITS):
        assert not tags.gs1_valid(bad)


@settings(max_examples=60, deadline=None)
@given(alnum_codes)
def test_luhn_mod36_detects_substitutions(code):
    full = code + tags.luhn36_check(code)
    assert tags.luhn36_valid(full)
    for bad in _substitutions(full, ALNUM, ALNUM):
        assert not tags.luhn36_valid(bad)


def test_overlong_input_is_refused_before_work():
    for fn in (tags.mod37_2_check, tags.luhn_check, tags.gs1_check, tags.luhn36_check):
        t = time.perf_counter()
        with pytest.raises(TagError) as e:
            fn("1" * 10_000_000)
        assert e.value.code == "tag_too_long"
        assert time.perf_counter() - t < 0.05
    assert tags.canonical(3, b"A" * 65) is None
    assert tags.identify([], 3, b"A" * 10_000)[0] == tags.BAD_SYNTAX


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_utf8_validator_agrees_with_cpython(b):
    try:
        b.decode("utf-8")
        ok = True
    except UnicodeDecodeError:
        ok = False
    assert utf8_valid(b) == ok


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=12))
def test_uid_problem_is_total_and_hex_round_trips(uid):
    p = tags.uid_problem(uid)
    assert p in (None, "length", "blank", "cascade", "random")
    if len(uid) not in (4, 7, 10):
        assert p == "length"
    if uid:
        assert bytes.fromhex(tags.canonical(0, uid)) == uid


EXAMPLE = Path(__file__).resolve().parents[2] / "protocol" / "rulesets" / "example-depot.json"
_FORMATS = load_file(str(EXAMPLE)).formats


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 15), st.one_of(st.binary(max_size=80), st.text(max_size=40).map(str.encode)))
def test_identify_never_raises(kind, tag):
    res, fmt, key = tags.identify(_FORMATS, kind, tag)
    assert res in (tags.OK, tags.BAD_SYNTAX, tags.BAD_CHECK)
    assert isinstance(key, str) and key
    if res == tags.OK:
        assert fmt is not None and kind in fmt.kinds


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=tags.DIGITS, min_size=7, max_size=7))
def test_example_mine_label_accepts_exactly_valid_checks(serial):
    code = "SK" + serial
    good = code + tags.mod37_2_check(code)
    assert tags.identify(_FORMATS, 3, good.encode())[0] == tags.OK
    assert tags.identify(_FORMATS, 3, (" " + good + "\r\n").encode())[2] == good
    for bad in _substitutions(good[-1:], "", CHECK37):
        assert tags.identify(_FORMATS, 3, (code + bad).encode())[0] == tags.BAD_CHECK


def test_private_copies_equal_the_public_numbers():
    from twproto import rules, tagshost

    assert (tags._MAX_TAG, tags._KIND_UID) == (tags.MAX_TAG, tags.KIND_UID) == (64, 0)
    assert (tags._OK, tags._BAD_SYNTAX, tags._BAD_CHECK) == (tags.OK, tags.BAD_SYNTAX,
                                                            tags.BAD_CHECK) == (0, 1, 2)
    assert (rules._TAG_OK, rules._TAG_BAD_CHECK) == (tags.OK, tags.BAD_CHECK)
    for name in ("MAX_TAG", "KIND_QR", "KIND_BARCODE", "mod37_2_check"):
        assert getattr(tags, name) is getattr(tagshost, name), name
    assert not hasattr(tags, "no_such_name") and not hasattr(tags, "__path__")
