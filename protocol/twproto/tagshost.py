# The host half of twproto.tags: its public numbers and the MOD 37-2 check-character function,
# which the station never names (tags keeps private const() copies of the numbers, and a rule
# set checks MOD 37-2 codes with tags.mod37_2_valid). Reached as tags.X (tags' module
# __getattr__), so code keeps importing everything from twproto.tags.
from twproto.tags import ALNUM, MOD37, _bound, _mod37_2_sum, _values

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
    _bound(code)
    p = _mod37_2_sum(code, len(code))
    if p < 0:
        _values(code, ALNUM)  # raises TagError naming the bad character
    return MOD37[(38 - p) % 37]
