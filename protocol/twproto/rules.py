# The rules engine: one function, evaluate(), run by the station (instant feedback) and by the
# bridge (authoritative re-check) with the same rule set. Deterministic: the verdict depends only
# on the rule set, the reading, the answers of the state object and `now`.
#
# Precedence: every applicable rule is evaluated in the order of the rule set's `rules` list and
# every failure becomes a Finding. The verdict is the worst severity found (reject > warn >
# accept); the reason carried in the READING's verdict byte is the FIRST finding (in rule order)
# that has that worst severity.
import hashlib
from array import array

from twproto.port import const
from twproto.ruleset import KINDS
from twproto.tags import identify

# tags.identify's results, as private copies (inlined; tests/protocol/test_tags.py checks them)
_TAG_OK = const(0)
_TAG_BAD_CHECK = const(2)

# Reason codes (reasons.X) and rule kinds (index in ruleset.KINDS: evaluate() compares numbers,
# not strings), as private copies: inlined, no names or strings kept on the station.
# tests/protocol/test_rules.py checks them against reasons and ruleset.KINDS.
_REJECT = const(2)
_TAG_SYNTAX = const(1)
_TAG_CHECK = const(2)
_TAG_SITE = const(3)
_WEIGHT_RANGE = const(4)
_NOT_STABLE = const(5)
_OUT_OF_RANGE = const(6)
_DUPLICATE_STEP = const(7)
_TIME_FUTURE = const(8)
_TIME_BEFORE_PROVISIONING = const(9)
_TIME_NOT_SYNCED = const(10)
_SEQ_GAP = const(11)
_OPERATOR = const(12)
_MASS_BALANCE = const(13)
_STEP_UNKNOWN = const(14)
_RULESET_MISMATCH = const(15)
_TAG_STEP = const(16)

_K_TAG_SYNTAX = const(0)
_K_TAG_SITE = const(1)
_K_WEIGHT_RANGE = const(2)
_K_NOT_STABLE = const(3)
_K_OUT_OF_RANGE = const(4)
_K_DUPLICATE_STEP = const(5)
_K_TIME_FUTURE = const(6)
_K_TIME_BEFORE_PROVISIONING = const(7)
_K_TIME_NOT_SYNCED = const(8)
_K_SEQ_GAP = const(9)
_K_OPERATOR = const(10)
_K_MASS_BALANCE = const(11)
_K_STEP_UNKNOWN = const(12)
_K_RULESET_MISMATCH = const(13)


def __getattr__(name):
    # Host-only names (RuleState, the base the bridge's state implements, Finding and __all__)
    # live in twproto.ruleshost: the station's MemoryRuleState does not need the base class.
    if name[:2] == "__" and name != "__all__":  # a probe for a module dunder: not ours to load
        raise AttributeError(name)
    from twproto import ruleshost

    return getattr(ruleshost, name)


# The station reads a Verdict's verdict, reason and tag_key only. What the bridge and the tools
# read besides (rule_id, findings as Finding objects with their detail texts, byte(), repr) is
# made by twproto.ruleshost on first use (Verdict.__getattr__), so neither the Finding class nor
# the detail texts nor twproto.reasons take room in the station's heap (firmware/MEMORY.md).
# evaluate() records each finding as a tuple (reason, severity, entry, detail) where detail is
# None or the tuple of values its text shows (ruleshost.DETAILS has the text of each reason).


class Verdict:
    """verdict (0 accept, 1 warn, 2 reject), reason (code of the deciding finding, 0 if none),
    rule_id, findings (all of them as Finding, rule order), tag_key (the tag identity the rules
    used: the format's code or the canonical text), mineral (from the tag's allocation, or None)
    and ruleset_id (u32 of the rule set used); byte() gives the READING verdict byte. Built from
    evaluate()'s (reason, severity, entry, detail values) tuples."""

    def __init__(self, findings, tag_key, mineral, ruleset_id):
        v = 0
        reason = 0
        for f in findings:
            if f[1] > v:
                v = f[1]
                reason = f[0]
        self.verdict = v
        self.reason = reason
        self._f = findings
        self.tag_key = tag_key
        self.mineral = mineral
        self.ruleset_id = ruleset_id

    def __getattr__(self, name):  # rule_id, findings, byte: the host's side (see above)
        from twproto import ruleshost

        return ruleshost.verdict_attr(self, name)

    def __repr__(self):
        from twproto import ruleshost

        return ruleshost.verdict_attr(self, "__repr__")()


class MemoryRuleState:
    """The station's bounded state (answers as twproto.rules.RuleState's methods): a ring of the
    last `capacity` recorded (tag, step, net) entries (12 bytes of data each, preallocated
    arrays) plus the last sequence number. When the ring is full the oldest entry is overwritten
    and forgotten: a duplicate or a weight gain involving an evicted entry is no longer seen by
    the station, so it may accept what the bridge (which queries the full database with the same
    rules) will flag. The bridge's verdict is authoritative."""

    # Private attribute names reuse names the station already interns (each distinct name costs
    # heap): _h the tag hashes (two 30-bit halves per entry, at 2i and 2i+1), _w step and net
    # per entry (net << 4 | step: net is a signed 24-bit number of grams on the wire, so it fits
    # the 32-bit slot), _n entries used, _next the slot written next (the oldest once full),
    # _last the last sequence number, _at provisioned_at, _tag/_r the tag hashed last and its
    # two halves (see _digest).
    def __init__(self, capacity=256, provisioned_at=None):
        if capacity < 1:
            raise ValueError("capacity >= 1")
        self.capacity = capacity
        self._h = array("i", bytes(8 * capacity))
        self._w = array("i", bytes(4 * capacity))
        self._n = 0
        self._next = 0
        self._last = None
        self._at = provisioned_at
        self._tag = None
        self._r = (0, 0)

    def record(self, msg, verdict):
        """Feed a reading (`msg`) that was committed to the journal with its Verdict. The sequence
        number always counts; tag, step and weight are remembered only if the verdict is not
        reject."""
        s = msg.seq
        if self._last is None or s > self._last:
            self._last = s
        if verdict.verdict == _REJECT:
            return
        a, b = self._digest(verdict.tag_key)
        i = self._next
        self._h[2 * i] = a
        self._h[2 * i + 1] = b
        self._w[i] = (msg.net_g << 4) | (msg.step & 15)
        self._next = (i + 1) % self.capacity
        if self._n < self.capacity:
            self._n += 1

    def __len__(self):
        return self._n

    def _digest(self, tag_key):
        # evaluate() asks about the same tag several times per reading: hash it once.
        # Two 30-bit halves of SHA-256(tag_key): small ints on MicroPython (no long-int
        # allocation), and a false match needs a 60-bit collision.
        if tag_key != self._tag:
            self._tag = tag_key
            d = hashlib.sha256(tag_key.encode("utf-8")).digest()
            self._r = ((d[0] << 22) | (d[1] << 14) | (d[2] << 6) | (d[3] >> 2),
                       (d[4] << 22) | (d[5] << 14) | (d[6] << 6) | (d[7] >> 2))
        return self._r

    def seen_at_step(self, tag_key, step):
        a, b = self._digest(tag_key)
        h = self._h
        for i in range(self._n):
            if h[2 * i] == a and h[2 * i + 1] == b and (self._w[i] & 15) == step:
                return True
        return False

    def last_seq(self):
        return self._last

    def earlier_weight(self, tag_key, step):
        a, b = self._digest(tag_key)
        h = self._h
        best = -1
        w = None
        n = self._n
        start = self._next if n == self.capacity else 0
        for k in range(n):  # oldest to newest: a later record at the same step wins
            i = (start + k) % self.capacity
            if h[2 * i] == a and h[2 * i + 1] == b:
                v = self._w[i]
                s = v & 15
                if best <= s < step:
                    best = s
                    w = v >> 4
        return w

    def provisioned_at(self):
        return self._at


def evaluate(ruleset, msg, state=None, now=None):
    """Evaluate the reading `msg` (duck-typed twproto.messages.Reading) against a loaded RuleSet.
    `state` answers the stateful rules (None: they are skipped); `now` is the evaluator's Unix
    time for TIME-FUTURE (None: that rule is skipped). Returns a Verdict."""
    step = msg.step
    kind = msg.tag_kind
    tag = msg.tag
    res0, _, key = identify(ruleset.formats, kind, tag)
    alloc = ruleset.allocation(key)
    mineral = alloc.mineral if alloc is not None else None
    net = msg.net_g
    t = msg.time
    found = []
    for r in ruleset.rules:
        if r.steps is not None and step not in r.steps:
            continue
        k = KINDS.index(r.kind)  # the kind's number (a validated rule set has only these kinds)
        code = 0
        detail = None  # type: tuple | None  # values its text shows (ruleshost.DETAILS)
        if k == _K_TAG_SYNTAX:
            res = res0 if r.all_formats else identify(r.formats, kind, tag)[0]
            if res != _TAG_OK:
                code = _TAG_CHECK if res == _TAG_BAD_CHECK else _TAG_SYNTAX
        elif k == _K_TAG_SITE:
            if alloc is None:
                code = _TAG_SITE
            elif alloc.steps is not None and step not in alloc.steps:
                code = _TAG_STEP
                detail = (alloc.origin, list(alloc.steps))
        elif k == _K_WEIGHT_RANGE:
            for steps, mins, lo, hi in r.ranges:
                if (steps is None or step in steps) and (mins is None or mineral in mins):
                    if not lo <= net <= hi:
                        code = _WEIGHT_RANGE
                        detail = (net, lo, hi)
                    break
        elif k == _K_NOT_STABLE:
            if not msg.stable:
                code = _NOT_STABLE
        elif k == _K_OUT_OF_RANGE:
            if msg.out_of_range:
                code = _OUT_OF_RANGE
        elif k == _K_TIME_NOT_SYNCED:
            if t is None:
                code = _TIME_NOT_SYNCED
        elif k == _K_TIME_FUTURE:
            if t is not None and now is not None and t > now + r.skew_s:
                code = _TIME_FUTURE
                detail = (t, now, r.skew_s)
        elif k == _K_STEP_UNKNOWN:
            if step not in ruleset.steps:
                code = _STEP_UNKNOWN
        elif k == _K_OPERATOR:
            op = msg.operator
            if op not in r.operators:
                code = _OPERATOR
                detail = (op,)
            else:
                steps = r.operators[op]
                if steps is not None and step not in steps:
                    code = _OPERATOR
                    detail = (op, step)
        elif k == _K_RULESET_MISMATCH:
            if msg.ruleset_id != ruleset.id:
                code = _RULESET_MISMATCH
                detail = (msg.ruleset_id, ruleset.id)
        elif k == _K_TIME_BEFORE_PROVISIONING:
            bound = r.not_before
            p = state.provisioned_at() if state is not None else None
            if p is not None and p > bound:
                bound = p
            if t is not None and t + r.skew_s < bound:
                code = _TIME_BEFORE_PROVISIONING
                detail = (t, bound, r.skew_s)
        elif state is None:
            continue  # stateful rules below need a state
        elif k == _K_DUPLICATE_STEP:
            if state.seen_at_step(key, step):
                code = _DUPLICATE_STEP
        elif k == _K_SEQ_GAP:
            last = state.last_seq()
            if last is not None and msg.seq > last + 1 + r.max_gap:
                code = _SEQ_GAP
                detail = (msg.seq - last - 1, last)
        elif k == _K_MASS_BALANCE:
            prev = state.earlier_weight(key, step)
            if prev is not None and prev > 0:
                allowed = r.tolerance_g + prev * r.tolerance_permille // 1000
                if net - prev > allowed:
                    code = _MASS_BALANCE
                    detail = (net, prev, allowed)
        if code:
            found.append((code, r.severity, r.id, detail))
    return Verdict(found, key, mineral, ruleset.id)
