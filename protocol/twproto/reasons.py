# The stable reason table: numeric code (0..63, carried in bits 2-7 of a READING's verdict byte)
# <-> rule ID (a stable string) <-> short operator messages and "what to do" hints in English and
# French. Codes are never reused or renumbered: a new reason gets a new code. RULES.md lists them.
#
# This module holds the codes and rule IDs only (the station imports it). The EN/FR texts live in
# twproto.reasontext, loaded on first use by message(), hint(), verdict_text() and TABLE, so they
# never take room in the station's heap.
from twproto.port import const

__all__ = (
    "ACCEPT",
    "WARN",
    "REJECT",
    "TABLE",
    "MAX_CODE",
    "VERDICT_NAMES",
    "rule_id",
    "code_of",
    "message",
    "hint",
    "verdict_text",
    "pack_verdict",
    "unpack_verdict",
    "NONE",
    "TAG_SYNTAX",
    "TAG_CHECK",
    "TAG_SITE",
    "WEIGHT_RANGE",
    "NOT_STABLE",
    "OUT_OF_RANGE",
    "DUPLICATE_STEP",
    "TIME_FUTURE",
    "TIME_BEFORE_PROVISIONING",
    "TIME_NOT_SYNCED",
    "SEQ_GAP",
    "OPERATOR",
    "MASS_BALANCE",
    "STEP_UNKNOWN",
    "RULESET_MISMATCH",
    "TAG_STEP",
)

ACCEPT = const(0)
WARN = const(1)
REJECT = const(2)

VERDICT_NAMES = ("accept", "warn", "reject")

NONE = const(0)
TAG_SYNTAX = const(1)
TAG_CHECK = const(2)
TAG_SITE = const(3)
WEIGHT_RANGE = const(4)
NOT_STABLE = const(5)
OUT_OF_RANGE = const(6)
DUPLICATE_STEP = const(7)
TIME_FUTURE = const(8)
TIME_BEFORE_PROVISIONING = const(9)
TIME_NOT_SYNCED = const(10)
SEQ_GAP = const(11)
OPERATOR = const(12)
MASS_BALANCE = const(13)
STEP_UNKNOWN = const(14)
RULESET_MISMATCH = const(15)
TAG_STEP = const(16)

MAX_CODE = const(63)

# Rule ID of each code (index = code).
RULE_IDS = (
    "NONE", "TAG-SYNTAX", "TAG-CHECK", "TAG-SITE", "WEIGHT-RANGE", "NOT-STABLE", "OUT-OF-RANGE",
    "DUPLICATE-STEP", "TIME-FUTURE", "TIME-BEFORE-PROVISIONING", "TIME-NOT-SYNCED", "SEQ-GAP",
    "OPERATOR", "MASS-BALANCE", "STEP-UNKNOWN", "RULESET-MISMATCH", "TAG-STEP",
)

_LANG = {"en": 0, "fr": 1}


def __getattr__(name):
    # TABLE: (code, rule ID, EN message, FR message, EN hint, FR hint) rows, built on first use.
    if name == "TABLE":
        from twproto.reasontext import TEXT

        return tuple((c, RULE_IDS[c]) + TEXT[c] for c in range(len(RULE_IDS)))
    raise AttributeError(name)


def _index(code):
    # equality, not isinstance: any value equal to a known code finds it
    for c in range(len(RULE_IDS)):
        if c == code:
            return c
    return None


def rule_id(code):
    """Stable rule ID string for a reason code, or 'UNKNOWN-<n>' for a code this build lacks."""
    c = _index(code)
    return "UNKNOWN-" + str(code) if c is None else RULE_IDS[c]


def code_of(rid):
    """Reason code for a rule ID string, or None."""
    for c in range(len(RULE_IDS)):
        if RULE_IDS[c] == rid:
            return c
    return None


def _text(code, k):
    from twproto.reasontext import TEXT

    c = _index(code)
    return None if c is None else TEXT[c][k]


def message(code, lang="en"):
    """Short operator message; unknown language falls back to English, unknown code to a generic
    text that still shows the number (a newer station may send a code this build lacks)."""
    k = _LANG.get(lang, 0)
    t = _text(code, k)
    if t is None:
        return ("Reason " if k == 0 else "Motif ") + str(code)
    return t


def hint(code, lang="en"):
    """What the operator should do, one sentence."""
    k = _LANG.get(lang, 0)
    t = _text(code, k + 2)
    if t is None:
        return "Call the supervisor." if k == 0 else "Appelez le superviseur."
    return t


def verdict_text(verdict, lang="en"):
    from twproto.reasontext import VERDICT_TEXT

    t = VERDICT_TEXT.get(lang, VERDICT_TEXT["en"])
    return t[verdict] if 0 <= verdict <= 2 else "?"


def pack_verdict(verdict, reason):
    """The READING verdict byte: bits 0-1 verdict, bits 2-7 reason code."""
    if not 0 <= verdict <= 2 or not 0 <= reason <= MAX_CODE:
        raise ValueError("verdict 0..2 and reason 0..63")
    return verdict | (reason << 2)


def unpack_verdict(b):
    """(verdict, reason) from a verdict byte; verdict 3 is reserved and returned as is."""
    return b & 3, (b >> 2) & 63
