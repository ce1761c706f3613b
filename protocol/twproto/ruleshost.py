# The host half of twproto.rules: the RuleState base class (the bridge's state implements it;
# the station's MemoryRuleState answers the same four methods without inheriting), the Finding
# class, the findings' detail texts, what a Verdict gives besides verdict/reason/tag_key
# (verdict_attr: rule_id, findings, byte(), repr) and the module's __all__. Reached as rules.X
# (rules' module __getattr__) and through Verdict.__getattr__. Texts for a verdict:
# twproto.reasons.message(v.reason, lang) / hint(v.reason, lang).
from twproto import reasons as R

__all__ = ("Finding", "Verdict", "RuleState", "MemoryRuleState", "evaluate")

# Detail text of a finding, by reason code, from the values evaluate() records (the one-value
# OPERATOR detail, an operator not listed at all, is _OPERATOR_ANY).
DETAILS = {
    R.TAG_STEP: "allocated to %s for steps %s",
    R.WEIGHT_RANGE: "net %s g not in %s..%s g",
    R.TIME_FUTURE: "time %s > now %s + %s s",
    R.OPERATOR: "operator %s not listed for step %s",
    R.RULESET_MISMATCH: "reading has %08x, rule set is %08x",
    R.TIME_BEFORE_PROVISIONING: "time %s < %s - %s s",
    R.SEQ_GAP: "%s missing after seq %s",
    R.MASS_BALANCE: "net %s g > earlier %s g + %s g",
}
_OPERATOR_ANY = "operator %s not listed"


def detail_text(reason, values):
    """The English detail text of a finding from evaluate()'s values (None: no detail)."""
    if values is None:
        return None
    if reason == R.OPERATOR and len(values) == 1:
        return _OPERATOR_ANY % values
    return DETAILS[reason] % values


class Finding:
    """One failed rule: rule_id (stable reason ID, e.g. 'TAG-CHECK'), reason (its code), severity
    (1 warn, 2 reject), entry (the rule's id in the rule set) and detail (short English text with
    the numbers involved, for logs; not translated)."""

    def __init__(self, reason, severity, entry, detail=None):
        self.reason = reason
        self.rule_id = R.rule_id(reason)
        self.severity = severity
        self.entry = entry
        self.detail = detail

    def __repr__(self):
        return "Finding(%s, %s, %r)" % (self.rule_id, R.VERDICT_NAMES[self.severity], self.detail)


def verdict_attr(v, name):
    """A rules.Verdict's host-side attribute `name` (its __getattr__): rule_id, findings (Finding
    objects, made once), byte (the method: the READING verdict byte) and __repr__."""
    if name == "rule_id":
        return R.rule_id(v.reason)
    if name == "findings":
        fs = [Finding(c, s, e, detail_text(c, d)) for c, s, e, d in v._f]
        v.findings = fs  # from now on a plain attribute: the same list at every access
        return fs
    if name == "byte":
        return lambda: R.pack_verdict(v.verdict, v.reason)
    if name == "__repr__":
        return lambda: "Verdict(%s, %s, %r)" % (R.VERDICT_NAMES[v.verdict], v.rule_id, v.findings)
    raise AttributeError(name)


class RuleState:
    """What the stateful rules ask. The station (MemoryRuleState, bounded) and the bridge (SQLite,
    complete) implement these four methods. Answers are about readings recorded BEFORE the one
    being evaluated, counting only readings whose verdict was not reject. This base class knows
    nothing (every answer "unknown"), which makes the stateful rules pass.

    - seen_at_step(tag_key, step) -> bool: this tag was already recorded at this step.
    - last_seq() -> int | None: the highest sequence number recorded for this device.
    - earlier_weight(tag_key, step) -> int | None: net grams recorded for this tag at the nearest
      step below `step` (latest record at that step), for MASS-BALANCE.
    - provisioned_at() -> int | None: Unix time the station was provisioned."""

    def seen_at_step(self, tag_key, step):
        return False

    def last_seq(self):
        return None

    def earlier_weight(self, tag_key, step):
        return None

    def provisioned_at(self):
        return None
