# The rule-set file format "tagweigh-ruleset/1" (see RULES.md): the loaded rule set's classes, as
# the rules engine uses them. load() validates the whole document before building anything and
# raises RuleSetError naming the bad entry, so a rule set is either loaded completely or not at
# all. The validation code is in twproto.rsload, imported only while a rule set is loaded (the
# station does not keep it in its heap). Nothing here has module-level mutable state.

__all__ = (
    "FORMAT",
    "KINDS",
    "RuleSet",
    "Rule",
    "Allocation",
    "load",
    "load_file",
)

FORMAT = "tagweigh-ruleset/1"

# Rule kinds: the rule ID of the main reason each kind emits (see reasons.py).
KINDS = (
    "TAG-SYNTAX",  # also emits TAG-CHECK
    "TAG-SITE",  # also emits TAG-STEP
    "WEIGHT-RANGE",
    "NOT-STABLE",
    "OUT-OF-RANGE",
    "DUPLICATE-STEP",
    "TIME-FUTURE",
    "TIME-BEFORE-PROVISIONING",
    "TIME-NOT-SYNCED",
    "SEQ-GAP",
    "OPERATOR",
    "MASS-BALANCE",
    "STEP-UNKNOWN",
    "RULESET-MISMATCH",
)


class Allocation:
    """Tags issued to a site: `ranges` [[first, last], ...] cover every tag whose first
    len(first) characters lie between first and last (inclusive, code-point order; both bounds
    the same length), `tags` lists exact tag codes."""

    origin: str
    mineral: str
    steps: "tuple | None"
    ranges: list
    tags: list

    def __init__(self, d, path, minerals, steps):
        from twproto.rsload import allocation

        allocation(self, d, path, minerals, steps)

    def covers_range(self, key):
        for lo, hi in self.ranges:
            n = len(lo)
            if len(key) >= n and lo <= key[:n] <= hi:
                return True
        return False


class Rule:
    """One compiled entry of `rules`: id, kind, severity (1 warn, 2 reject), steps (None = all)
    and the kind's parameters as attributes."""

    id: str
    kind: str
    severity: int
    steps: "tuple | None"

    def __init__(self, d, path, rs):
        from twproto.rsload import rule

        rule(self, d, path, rs)


class RuleSet:
    """A loaded, validated rule set. `hash` (32 bytes) and `id` (u32) identify its content;
    `doc` is the parsed document (do not mutate it; None after drop_document())."""

    doc: "dict | None"
    hash: bytes
    id: int
    version: str
    site: str
    steps: tuple
    minerals: "dict | tuple"
    formats: list
    allocations: list
    tag_index: dict
    rules: list

    def __init__(self, doc, h):
        from twproto.rsload import ruleset

        ruleset(self, doc, h)

    def allocation(self, key):
        """The Allocation covering tag code `key` (exact list first, then ranges in file order)."""
        a = self.tag_index.get(key)
        if a is not None:
            return a
        for a in self.allocations:
            if a.ranges and a.covers_range(key):
                return a
        return None

    def canonical(self):
        """The canonical JSON text whose SHA-256 is `hash` (not after drop_document())."""
        from twproto import canon

        if self.doc is None:
            from twproto.errors import RuleSetError

            raise RuleSetError("no_document", "dropped by drop_document()")
        return canon.dumps(self.doc)

    def drop_document(self):
        """Free what only the host reads (the parsed document, the minerals' names): the
        station keeps what the rules engine evaluates. `minerals` becomes a tuple of codes."""
        self.doc = None
        self.minerals = tuple(self.minerals)

    def hash_hex(self):
        return "".join("0123456789abcdef"[b >> 4] + "0123456789abcdef"[b & 15] for b in self.hash)


def load(src):
    """Load a rule set from JSON text (str/bytes) or an already-parsed dict. Validates everything
    first; raises RuleSetError (code bad_json, too_large, too_deep or bad_ruleset) naming the
    bad entry. Never returns a partly built rule set."""
    from twproto import rsload

    return rsload.load(src)


def load_file(path):
    """Read and load a rule-set file, refusing files over the size limit before reading them all."""
    from twproto import rsload

    return rsload.load_file(path)
