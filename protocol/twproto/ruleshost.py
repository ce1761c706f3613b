# The host half of twproto.rules: the RuleState base class (the bridge's state implements it;
# the station's MemoryRuleState answers the same four methods without inheriting) and the
# module's __all__. Reached as rules.X (rules' module __getattr__). Texts for a verdict:
# twproto.reasons.message(v.reason, lang) / hint(v.reason, lang).

__all__ = ("Finding", "Verdict", "RuleState", "MemoryRuleState", "evaluate")


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
