# The rule-set file format "tagweigh-ruleset/1" (see RULES.md): the loaded rule set's classes, as
# the rules engine uses them. load() validates the whole document before building anything and
# raises RuleSetError naming the bad entry, so a rule set is either loaded completely or not at
# all. The validation code is in twproto.rsload, imported only while a rule set is validated (the
# station does not keep it in its heap). Nothing here has module-level mutable state.
#
# On the station, load_file() keeps a compact pre-checked copy of what the engine needs next to
# the JSON file (X.json -> X.bin, RULES.md section 9), written after a full validation and used
# at the next boots while it matches the JSON file's SHA-256: then neither the JSON parser nor
# the validation is imported at boot.
from twproto.port import MICROPYTHON

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

# Rule kinds: the rule ID of the main reason each kind emits (see reasons.py): TAG-SYNTAX (also
# emits TAG-CHECK), TAG-SITE (also emits TAG-STEP), then reason codes 4..15 in order. The index
# is the kind's number in rules.evaluate(). reasons.RULE_IDS is built from these strings (the
# host holds them once; the station does not load twproto.reasons at all). Tests pin the tuple.
KINDS = (
    "TAG-SYNTAX", "TAG-SITE", "WEIGHT-RANGE", "NOT-STABLE", "OUT-OF-RANGE", "DUPLICATE-STEP",
    "TIME-FUTURE", "TIME-BEFORE-PROVISIONING", "TIME-NOT-SYNCED", "SEQ-GAP", "OPERATOR",
    "MASS-BALANCE", "STEP-UNKNOWN", "RULESET-MISMATCH",
)


class Allocation:
    """Tags issued to a site: `ranges` [(first, last), ...] cover every tag whose first
    len(first) characters lie between first and last (inclusive, code-point order; both bounds
    the same length), `tags` lists exact tag codes. Also: origin, mineral, steps (None = all).
    Built by twproto.rsload (validated) or from the compact form."""

    origin: str
    mineral: str
    steps: "tuple | None"
    ranges: list
    tags: list


class Rule:
    """One compiled entry of `rules`: id, kind, severity (1 warn, 2 reject), steps (None = all)
    and the kind's parameters as attributes. Built like Allocation."""

    id: str
    kind: str
    severity: int
    steps: "tuple | None"


class RuleSet:
    """A loaded, validated rule set. `hash` (32 bytes) and `id` (u32) identify its content;
    `doc` is the parsed document (do not mutate it; None after drop_document()). Also: version,
    site, steps, minerals, formats (tags.TagFormat), allocations, tag_index (tag -> Allocation),
    rules."""

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

    def allocation(self, key):
        """The Allocation covering tag code `key` (exact list first, then ranges in file order)."""
        a = self.tag_index.get(key)
        if a is not None:
            return a
        for a in self.allocations:
            for lo, hi in a.ranges:
                n = len(lo)
                if len(key) >= n and lo <= key[:n] <= hi:
                    return a
        return None

    def canonical(self):
        """The canonical JSON text whose SHA-256 is `hash` (not after drop_document())."""
        from twproto import rsload

        return rsload.canonical(self)

    def drop_document(self):
        """Free what only the host reads (the parsed document, the minerals' names): the
        station keeps what the rules engine evaluates. `minerals` becomes a tuple of codes
        (sorted: the same on both interpreters, whose dicts iterate in different orders)."""
        self.doc = None
        self.minerals = tuple(sorted(self.minerals))


def load(data):
    """Load a rule set from JSON text (str/bytes) or an already-parsed dict. Validates everything
    first; raises RuleSetError (code bad_json, too_large, too_deep or bad_ruleset) naming the
    bad entry. Never returns a partly built rule set."""
    from twproto import rsload

    return rsload.load(data)


def load_file(path, cache=MICROPYTHON):
    """Read and load a rule-set file, refusing files over the size limit before reading them all.
    With `cache` (default: on the station) and a path ending in .json, the compact form X.bin
    next to X.json is used if it was made from these exact bytes; otherwise the file is
    validated in full and X.bin (re)written. Either way the same rule set results. (The code is
    twproto.rsbin.load_file: it runs at boot and for a pushed rule set only.)"""
    from twproto import rsbin

    return rsbin.load_file(path, cache)
