# The stable reason table: numeric code (0..63, carried in bits 2-7 of a READING's verdict byte)
# <-> rule ID (a stable string) <-> short operator messages and "what to do" hints in English and
# French. Codes are never reused or renumbered: a new reason gets a new code. RULES.md lists them.
#
# This module holds the codes, the rule IDs, rule_id() and pack_verdict(). The station does not
# load it (rules keeps private copies of the numbers; a Verdict's rule_id and byte() are made by
# twproto.ruleshost on the host, firmware/MEMORY.md). The EN/FR texts and the host-side helpers
# (message, hint, verdict_text, code_of, unpack_verdict, TABLE, __all__) live in
# twproto.reasontext and are reached here on first use (module __getattr__), so they never take
# room in the station's heap. So do the public numbers (ACCEPT, WARN, REJECT, NONE, TAG_SYNTAX
# ... TAG_STEP, MAX_CODE): no resident module names them (rules and tags keep private const
# copies), and each public name would be an interned name and a dict entry on the station.
# tests/protocol/test_frame_split.py checks the numbers against RULE_IDS and VERDICT_NAMES.
from twproto.port import const
from twproto.ruleset import KINDS

_ACCEPT = const(0)
_WARN = const(1)
_REJECT = const(2)

VERDICT_NAMES = ("accept", "warn", "reject")  # index = verdict (ACCEPT, WARN, REJECT)

_NONE = const(0)
_MAX_CODE = const(63)

# Rule ID of each code (index = code: NONE 0, TAG_SYNTAX 1, ... TAG_STEP 16; RULES.md):
# "NONE", "TAG-SYNTAX", "TAG-CHECK", "TAG-SITE", "WEIGHT-RANGE", "NOT-STABLE", "OUT-OF-RANGE",
# "DUPLICATE-STEP", "TIME-FUTURE", "TIME-BEFORE-PROVISIONING", "TIME-NOT-SYNCED", "SEQ-GAP",
# "OPERATOR", "MASS-BALANCE", "STEP-UNKNOWN", "RULESET-MISMATCH", "TAG-STEP". The rule kinds'
# IDs are ruleset.KINDS' strings (the same objects: one copy in memory).
RULE_IDS = ("NONE",) + KINDS[:1] + ("TAG-CHECK",) + KINDS[1:] + ("TAG-STEP",)


def __getattr__(name):
    # Host-side names (see the top): loaded on first use, then kept in this module's globals.
    if name == "__all__" or name[:1] != "_":
        from twproto import reasontext

        if name == "__all__" or name in reasontext.__all__:  # reasontext.HOST_NAMES
            v = getattr(reasontext, name)
            globals()[name] = v
            return v
    raise AttributeError(name)


def rule_id(code):
    """Stable rule ID string for a reason code, or 'UNKNOWN-<n>' for a code this build lacks."""
    for c in range(len(RULE_IDS)):
        if c == code:  # equality, not isinstance: any value equal to a known code finds it
            return RULE_IDS[c]
    return "UNKNOWN-%1d" % code  # %1d = %d; a literal of 11 chars is not interned


def pack_verdict(verdict, reason):
    """The READING verdict byte: bits 0-1 verdict, bits 2-7 reason code."""
    if not 0 <= verdict <= _REJECT or not 0 <= reason <= _MAX_CODE:
        raise ValueError("verdict 0..2 and reason 0..63")
    return verdict | (reason << 2)
