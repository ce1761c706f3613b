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

from twproto import reasons as R
from twproto.port import const
from twproto.tags import identify

# tags.identify's results, as private copies (inlined; tests/protocol/test_tags.py checks them)
_TAG_OK = const(0)
_TAG_BAD_CHECK = const(2)



def __getattr__(name):
    # Host-only names (RuleState, the base the bridge's state implements, and __all__) live in
    # twproto.ruleshost: the station's MemoryRuleState does not need the base class.
    if name[:2] == "__" and name != "__all__":  # a probe for a module dunder: not ours to load
        raise AttributeError(name)
    from twproto import ruleshost

    return getattr(ruleshost, name)


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
        return "Finding(" + self.rule_id + ", " + R.VERDICT_NAMES[self.severity] + ", " + repr(self.detail) + ")"


class Verdict:
    """verdict (0 accept, 1 warn, 2 reject), reason (code of the deciding finding, 0 if none),
    rule_id, findings (all of them, rule order), tag_key (the tag identity the rules used: the
    format's code or the canonical text), mineral (from the tag's allocation, or None) and
    ruleset_id (u32 of the rule set used)."""

    def __init__(self, findings, tag_key, mineral, ruleset_id):
        v = 0
        reason = 0
        for f in findings:
            if f.severity > v:
                v = f.severity
                reason = f.reason
        self.verdict = v
        self.reason = reason
        self.rule_id = R.rule_id(reason)
        self.findings = findings
        self.tag_key = tag_key
        self.mineral = mineral
        self.ruleset_id = ruleset_id

    def byte(self):
        """The READING verdict byte: bits 0-1 verdict, bits 2-7 reason."""
        return R.pack_verdict(self.verdict, self.reason)

    def __repr__(self):
        return "Verdict(" + R.VERDICT_NAMES[self.verdict] + ", " + self.rule_id + ", " + repr(self.findings) + ")"


class MemoryRuleState:
    """The station's bounded state (answers as twproto.rules.RuleState's methods): a ring of the last `capacity` recorded (tag, step, net) entries
    (13 bytes of data each, preallocated arrays) plus the last sequence number. When the ring is full the oldest
    entry is overwritten and forgotten: a duplicate or a weight gain involving an evicted entry
    is no longer seen by the station, so it may accept what the bridge (which queries the full
    database with the same rules) will flag. The bridge's verdict is authoritative."""

    def __init__(self, capacity=256, provisioned_at=None):
        if capacity < 1:
            raise ValueError("capacity >= 1")
        self.capacity = capacity
        self._a = array("i", bytes(4 * capacity))
        self._b = array("i", bytes(4 * capacity))
        self._w = array("i", bytes(4 * capacity))
        self._s = bytearray(capacity)
        self._n = 0  # entries used
        self._next = 0  # slot written next (the oldest once full)
        self._last_seq = None
        self._prov = provisioned_at
        self._hkey = None
        self._hab = (0, 0)

    def record(self, reading, verdict):
        """Feed a reading that was committed to the journal with its Verdict. The sequence number
        always counts; tag, step and weight are remembered only if the verdict is not reject."""
        s = reading.seq
        if self._last_seq is None or s > self._last_seq:
            self._last_seq = s
        if verdict.verdict == R.REJECT:
            return
        a, b = self._hash(verdict.tag_key)
        i = self._next
        self._a[i] = a
        self._b[i] = b
        self._s[i] = reading.step & 15
        self._w[i] = reading.net_g
        self._next = (i + 1) % self.capacity
        if self._n < self.capacity:
            self._n += 1

    def __len__(self):
        return self._n

    def _hash(self, tag_key):
        # evaluate() asks about the same tag several times per reading: hash it once.
        # Two 30-bit halves of SHA-256(tag_key): small ints on MicroPython (no long-int
        # allocation), and a false match needs a 60-bit collision.
        if tag_key != self._hkey:
            self._hkey = tag_key
            d = hashlib.sha256(tag_key.encode("utf-8")).digest()
            self._hab = ((d[0] << 22) | (d[1] << 14) | (d[2] << 6) | (d[3] >> 2),
                         (d[4] << 22) | (d[5] << 14) | (d[6] << 6) | (d[7] >> 2))
        return self._hab

    def seen_at_step(self, tag_key, step):
        a, b = self._hash(tag_key)
        for i in range(self._n):
            if self._a[i] == a and self._b[i] == b and self._s[i] == step:
                return True
        return False

    def last_seq(self):
        return self._last_seq

    def earlier_weight(self, tag_key, step):
        a, b = self._hash(tag_key)
        best = -1
        w = None
        n = self._n
        start = self._next if n == self.capacity else 0
        for k in range(n):  # oldest to newest: a later record at the same step wins
            i = (start + k) % self.capacity
            if self._a[i] == a and self._b[i] == b:
                s = self._s[i]
                if best <= s < step:
                    best = s
                    w = self._w[i]
        return w

    def provisioned_at(self):
        return self._prov


def evaluate(ruleset, reading, state=None, now=None):
    """Evaluate `reading` (duck-typed twproto.messages.Reading) against a loaded RuleSet.
    `state` answers the stateful rules (None: they are skipped); `now` is the evaluator's Unix
    time for TIME-FUTURE (None: that rule is skipped). Returns a Verdict."""
    step = reading.step
    kind = reading.tag_kind
    tag = reading.tag
    res0, _, key = identify(ruleset.formats, kind, tag)
    alloc = ruleset.allocation(key)
    mineral = alloc.mineral if alloc is not None else None
    net = reading.net_g
    t = reading.time
    found = []
    for r in ruleset.rules:
        if r.steps is not None and step not in r.steps:
            continue
        k = r.kind
        code = 0
        detail = None
        if k == "TAG-SYNTAX":
            res = res0 if r.all_formats else identify(r.formats, kind, tag)[0]
            if res != _TAG_OK:
                code = R.TAG_CHECK if res == _TAG_BAD_CHECK else R.TAG_SYNTAX
        elif k == "TAG-SITE":
            if alloc is None:
                code = R.TAG_SITE
            elif alloc.steps is not None and step not in alloc.steps:
                code = R.TAG_STEP
                detail = "allocated to " + alloc.origin + " for steps " + str(list(alloc.steps))
        elif k == "WEIGHT-RANGE":
            for steps, mins, lo, hi in r.ranges:
                if (steps is None or step in steps) and (mins is None or mineral in mins):
                    if not lo <= net <= hi:
                        code = R.WEIGHT_RANGE
                        detail = "net " + str(net) + " g not in " + str(lo) + ".." + str(hi) + " g"
                    break
        elif k == "NOT-STABLE":
            if not reading.stable:
                code = R.NOT_STABLE
        elif k == "OUT-OF-RANGE":
            if reading.out_of_range:
                code = R.OUT_OF_RANGE
        elif k == "TIME-NOT-SYNCED":
            if t is None:
                code = R.TIME_NOT_SYNCED
        elif k == "TIME-FUTURE":
            if t is not None and now is not None and t > now + r.skew_s:
                code = R.TIME_FUTURE
                detail = "time " + str(t) + " > now " + str(now) + " + " + str(r.skew_s) + " s"
        elif k == "STEP-UNKNOWN":
            if step not in ruleset.steps:
                code = R.STEP_UNKNOWN
        elif k == "OPERATOR":
            op = reading.operator
            if op not in r.operators:
                code = R.OPERATOR
                detail = "operator " + str(op) + " not listed"
            else:
                steps = r.operators[op]
                if steps is not None and step not in steps:
                    code = R.OPERATOR
                    detail = "operator " + str(op) + " not listed for step " + str(step)
        elif k == "RULESET-MISMATCH":
            if reading.ruleset_id != ruleset.id:
                code = R.RULESET_MISMATCH
                detail = "reading has %08x, rule set is %08x" % (reading.ruleset_id, ruleset.id)
        elif k == "TIME-BEFORE-PROVISIONING":
            bound = r.not_before
            p = state.provisioned_at() if state is not None else None
            if p is not None and p > bound:
                bound = p
            if t is not None and t + r.skew_s < bound:
                code = R.TIME_BEFORE_PROVISIONING
                detail = "time " + str(t) + " < " + str(bound) + " - " + str(r.skew_s) + " s"
        elif state is None:
            continue  # stateful rules below need a state
        elif k == "DUPLICATE-STEP":
            if state.seen_at_step(key, step):
                code = R.DUPLICATE_STEP
        elif k == "SEQ-GAP":
            last = state.last_seq()
            if last is not None and reading.seq > last + 1 + r.max_gap:
                code = R.SEQ_GAP
                detail = str(reading.seq - last - 1) + " missing after seq " + str(last)
        elif k == "MASS-BALANCE":
            prev = state.earlier_weight(key, step)
            if prev is not None and prev > 0:
                allowed = r.tolerance_g + prev * r.tolerance_permille // 1000
                if net - prev > allowed:
                    code = R.MASS_BALANCE
                    detail = "net " + str(net) + " g > earlier " + str(prev) + " g + " + str(allowed) + " g"
        if code:
            found.append(Finding(code, r.severity, r.id, detail))
    return Verdict(found, key, mineral, ruleset.id)
