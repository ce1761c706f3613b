# The host half of twproto.tags: its public numbers, the alphabets but ALNUM, the
# check-character functions, fallback_text and uid_problem, which the station never names (tags
# keeps private const() copies of the numbers, a TagFormat checks codes with tags._check and its
# scheme number, identify() builds the fallback key itself and asks tags._uid). Reached as
# tags.X (tags' module __getattr__), so code keeps importing everything from twproto.tags.
# The station imports this module at boot (twproto.rsbin asks for the alphabets and VALID), so
# TagError is named only where it is raised: errors makes the class on first use, not here.
from twproto import errors as _E
from twproto.tags import ALNUM, _check, _hex, _uid, canonical

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

DIGITS = ALNUM[:10]
HEX = ALNUM[:16]
MOD37 = ALNUM + "*"  # check characters of MOD 37-2

# A TagFormat's `valid` (its check scheme's number) -> the name of the scheme's xxx_valid
# function: how the compact rule set stores it (RULES.md section 9, twproto.rsbin).
VALID = {37: "mod37_2_valid", 10: "luhn_valid", 36: "luhn36_valid", 3: "gs1_valid"}


def _over(s):
    # Refuse a text longer than MAX_TAG before any work.
    if len(s) > MAX_TAG:
        raise _E.TagError("tag_too_long", "more than %d characters" % MAX_TAG)


def _checked(code, n):
    # tags._check for the public functions: TagError for a text too long or a bad character.
    _over(code)
    c = _check(code, n)
    if c is None:
        m = 36 if n > 35 else 10
        for ch in code:
            if not 0 <= ALNUM.find(ch) < m:
                raise _E.TagError("bad_char", repr(ch) + " not allowed")
    return c


def _valid(text, n):
    # Whether the last character of `text` is the check character of everything before it by
    # scheme n (as TagFormat.check decides it), after refusing a text over MAX_TAG.
    _over(text)
    return len(text) > 1 and _check(text[:-1], n) == text[-1]


def mod37_2_valid(text):
    """Whether the last character of `text` is the MOD 37-2 check of the rest."""
    return _valid(text, 37)


def luhn_valid(text):
    """Whether the last digit of `text` is the Luhn check digit of the rest."""
    return _valid(text, 10)


def luhn36_valid(text):
    """Whether the last character of `text` is the Luhn mod 36 check of the rest."""
    return _valid(text, 36)


def gs1_valid(text):
    """Whether the last digit of `text` is the GS1 mod-10 check digit of the rest."""
    return _valid(text, 3)


def mod37_2_check(code):
    """ISO/IEC 7064 MOD 37-2 check character of code (0-9 A-Z)."""
    return _checked(code, 37)


def luhn_check(digits):
    """Luhn (ISO/IEC 7812-1) check digit for a string of digits."""
    return _checked(digits, 10)


def luhn36_check(code):
    """Luhn mod N with N = 36 over 0-9 A-Z (character value = its index)."""
    return _checked(code, 36)


def gs1_check(digits):
    """GS1 mod-10 check digit (EAN/UPC/GTIN/SSCC): weights 3,1,3,... from the right."""
    return _checked(digits, 3)


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
