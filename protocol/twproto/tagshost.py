# The host half of twproto.tags: its public numbers, the check-character functions,
# fallback_text and uid_problem, which the station never names (tags keeps private const()
# copies of the numbers, a rule set checks codes with tags' xxx_valid functions, identify()
# builds the fallback key itself and asks tags._uid). Reached as tags.X (tags' module __getattr__), so code keeps importing
# everything from twproto.tags.
from twproto.tags import _check, _hex, _uid, canonical

__all__ = (  # twproto.tags' public API
    "MAX_TAG", "KIND_UID", "KIND_NDEF_TEXT", "KIND_NDEF_URI", "KIND_QR", "KIND_BARCODE", "OK",
    "BAD_SYNTAX", "BAD_CHECK", "mod37_2_check", "mod37_2_valid", "luhn_check", "luhn_valid",
    "luhn36_check", "luhn36_valid", "gs1_check", "gs1_valid", "uid_problem", "canonical",
    "fallback_text", "TagFormat", "identify",
)

MAX_TAG = 64  # bytes, the READING limit (SPEC.md)

KIND_UID = 0
KIND_NDEF_TEXT = 1
KIND_NDEF_URI = 2
KIND_QR = 3
KIND_BARCODE = 4

OK = 0
BAD_SYNTAX = 1  # same numbers as reasons.TAG_SYNTAX / TAG_CHECK
BAD_CHECK = 2


def mod37_2_check(code):
    """ISO/IEC 7064 MOD 37-2 check character of code (0-9 A-Z)."""
    return _check(code, 37)


def luhn_check(digits):
    """Luhn (ISO/IEC 7812-1) check digit for a string of digits."""
    return _check(digits, 10)


def luhn36_check(code):
    """Luhn mod N with N = 36 over 0-9 A-Z (character value = its index)."""
    return _check(code, 36)


def gs1_check(digits):
    """GS1 mod-10 check digit (EAN/UPC/GTIN/SSCC): weights 3,1,3,... from the right."""
    return _check(digits, 3)


def fallback_text(kind, tag):
    """A text usable as a state key for any tag, valid or not (never None)."""
    t = canonical(kind, tag)
    if t is None:
        t = "?" + _hex(tag[:MAX_TAG])
    return t


def uid_problem(uid):
    """None if `uid` (bytes) is a plausible ISO 14443-3 UID to identify a bag, else a short reason:
    'length' (not 4, 7 or 10 bytes), 'blank' (all 0x00 or all 0xFF: a reader artefact),
    'cascade' (0x88, the cascade tag, where a UID byte must not carry it), 'random' (4-byte UID
    starting 0x08: a random ID that changes at every power-up, so it identifies nothing)."""
    return (None, "length", "blank", "cascade", "random")[_uid(uid)]
