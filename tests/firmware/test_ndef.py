"""NDEF record parsing (twstation.ndef): the Text/URI value checks, on CPython."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tagweigh import hw

hw.install_fakes()

from twstation import ndef  # noqa: E402


def _text(payload_value: bytes, lang: bytes = b"en") -> bytearray:
    # short record, MB|ME|SR, TNF 1, type "T", status byte = language code length
    payload = bytes((len(lang),)) + lang + payload_value
    return bytearray((0xD1, 1, len(payload), 0x54)) + payload


def _kind(rec: bytearray) -> int:
    return ndef.parse_record(rec, 0, len(rec))[0]


def test_text_value_without_language_code():
    rec = _text("BAG-é".encode())
    kind, off, n, pre = ndef.parse_record(rec, 0, len(rec))
    assert (kind, pre) == (ndef._KIND_TEXT, 0)
    assert ndef.value(rec, kind, off, n, pre) == "BAG-é".encode()


def test_malformed_utf8_and_control_characters_are_bad():
    # one validator for the station (twproto.tags.utf8_valid) plus the control-character rule
    for bad in (b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"A\xe2\x82", b"A\x07", b"\x7f"):
        assert _kind(_text(bad)) == ndef._KIND_BAD, bad
        uri = bytearray((0xD1, 1, 1 + len(bad), 0x55, 4)) + bad
        assert _kind(uri) == ndef._KIND_BAD, bad


def test_language_code_longer_than_payload_is_bad_and_utf16_is_other():
    rec = bytearray((0xD1, 1, 2, 0x54, 5, 0x41))  # 5-byte language code in a 2-byte payload
    assert _kind(rec) == ndef._KIND_BAD
    rec = bytearray((0xD1, 1, 3, 0x54, 0x80, 0, 0x41))  # UTF-16 flag
    assert _kind(rec) == ndef._KIND_OTHER


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, exclude_categories=("Cc", "Cs")),
               max_size=40))  # fmt: skip
def test_any_printable_text_round_trips(text):
    rec = _text(text.encode())
    kind, off, n, pre = ndef.parse_record(rec, 0, len(rec))
    assert kind == ndef._KIND_TEXT
    assert ndef.value(rec, kind, off, n, pre) == text.encode()
