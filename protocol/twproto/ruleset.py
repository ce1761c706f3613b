# The rule-set file format "tagweigh-ruleset/1" (see RULES.md). load() validates the whole
# document before building anything and raises RuleSetError naming the bad entry, so a rule set is
# either loaded completely or not at all. Nothing here has module-level mutable state.
from twproto import canon
from twproto.errors import RuleSetError
from twproto.tags import MAX_TAG, TagFormat, _PRINTABLE

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
SEVERITIES = {"warn": 1, "reject": 2}
MAX_G = (1 << 23) - 1  # net weight is a signed 24-bit number of grams on the wire
MAX_SKEW_S = 86400
MAX_TIME = 0xFFFFFFFF

_TOP = ("format", "version", "site", "title", "steps", "minerals", "tag_formats", "allocations", "rules")
_RULE = ("id", "kind", "severity", "steps", "params", "note")
_ALLOC = ("origin", "mineral", "ranges", "tags", "steps", "note")
_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_."
# params allowed per kind; a key listed here is optional unless the kind's parser requires it
_PARAMS = {
    "TAG-SYNTAX": ("formats",),
    "WEIGHT-RANGE": ("ranges",),
    "TIME-FUTURE": ("skew_s",),
    "TIME-BEFORE-PROVISIONING": ("not_before", "skew_s"),
    "SEQ-GAP": ("max_gap",),
    "OPERATOR": ("operators",),
    "MASS-BALANCE": ("tolerance_g", "tolerance_permille"),
}


def _fail(path, msg):
    return RuleSetError("bad_ruleset", path + ": " + msg, path)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _keys(d, path, allowed, required=()):
    if not isinstance(d, dict):
        raise _fail(path, "must be an object")
    for k in d:
        if k not in allowed:
            raise _fail(path + "." + k if path else k, "unknown key")
    for k in required:
        if k not in d:
            raise _fail(path + "." + k if path else k, "missing")


def _int(d, key, path, lo, hi, default=None):
    p = path + "." + key
    if key not in d:
        if default is None:
            raise _fail(p, "missing")
        return default
    v = d[key]
    if not _is_int(v) or not lo <= v <= hi:
        raise _fail(p, "must be an integer " + str(lo) + ".." + str(hi))
    return v


def _ident(v, path, maxlen=32):
    if not isinstance(v, str) or not 1 <= len(v) <= maxlen:
        raise _fail(path, "must be a name of 1.." + str(maxlen) + " characters")
    for c in v:
        if _ID_CHARS.find(c) < 0:
            raise _fail(path, "must use only A-Z a-z 0-9 - _ .")
    return v


def _text(v, path, maxlen, printable=False):
    if not isinstance(v, str) or not 1 <= len(v) <= maxlen:
        raise _fail(path, "must be a string of 1.." + str(maxlen) + " characters")
    if printable:
        for c in v:
            if _PRINTABLE.find(c) < 0:
                raise _fail(path, "must be printable ASCII without spaces")
    return v


def _list(v, path, nonempty=True):
    if not isinstance(v, list) or (nonempty and not v):
        raise _fail(path, "must be a non-empty list" if nonempty else "must be a list")
    return v


def _steps(v, path, allowed):
    _list(v, path)
    for i in range(len(v)):
        p = path + "[" + str(i) + "]"
        if not _is_int(v[i]) or not 0 <= v[i] <= 15:
            raise _fail(p, "must be a step 0..15")
        if allowed is not None and v[i] not in allowed:
            raise _fail(p, "step " + str(v[i]) + " is not in the rule set's steps")
        if v[i] in v[:i]:
            raise _fail(p, "duplicate step")
    return tuple(v)


class Allocation:
    """Tags issued to a site: `ranges` [[first, last], ...] cover every tag whose first
    len(first) characters lie between first and last (inclusive, code-point order; both bounds
    the same length), `tags` lists exact tag codes."""

    def __init__(self, d, path, minerals, steps):
        _keys(d, path, _ALLOC, ("origin", "mineral"))
        self.origin = _ident(d["origin"], path + ".origin")
        self.mineral = d["mineral"]
        if not isinstance(self.mineral, str) or self.mineral not in minerals:
            raise _fail(path + ".mineral", "unknown mineral " + repr(self.mineral))
        self.steps = _steps(d["steps"], path + ".steps", steps) if "steps" in d else None
        rs = _list(d.get("ranges", []), path + ".ranges", False)
        ts = _list(d.get("tags", []), path + ".tags", False)
        if not rs and not ts:
            raise _fail(path, "needs at least one of ranges, tags")
        self.ranges = []
        for i in range(len(rs)):
            p = path + ".ranges[" + str(i) + "]"
            r = rs[i]
            if not isinstance(r, list) or len(r) != 2:
                raise _fail(p, "must be [first, last]")
            lo = _text(r[0], p + "[0]", MAX_TAG, True)
            hi = _text(r[1], p + "[1]", MAX_TAG, True)
            if len(lo) != len(hi) or lo > hi:
                raise _fail(p, "first and last must have the same length and first <= last")
            self.ranges.append((lo, hi))
        self.tags = ts
        for i in range(len(ts)):
            _text(ts[i], path + ".tags[" + str(i) + "]", MAX_TAG, True)
        if "note" in d:
            _text(d["note"], path + ".note", 200)

    def covers_range(self, key):
        for lo, hi in self.ranges:
            n = len(lo)
            if len(key) >= n and lo <= key[:n] <= hi:
                return True
        return False


class Rule:
    """One compiled entry of `rules`: id, kind, severity (1 warn, 2 reject), steps (None = all)
    and the kind's parameters as attributes."""

    def __init__(self, d, path, rs):
        _keys(d, path, _RULE, ("id", "kind", "severity"))
        self.id = _ident(d["id"], path + ".id")
        k = d["kind"]
        if not isinstance(k, str) or k not in KINDS:
            raise _fail(path + ".kind", "unknown rule kind " + repr(k))
        self.kind = k
        s = d["severity"]
        if not isinstance(s, str) or s not in SEVERITIES:
            raise _fail(path + ".severity", "must be 'reject' or 'warn'")
        self.severity = SEVERITIES[s]
        self.steps = _steps(d["steps"], path + ".steps", rs.steps) if "steps" in d else None
        if "note" in d:
            _text(d["note"], path + ".note", 200)
        pp = path + ".params"
        p = d.get("params", {})
        _keys(p, pp, _PARAMS.get(k, ()))
        if k == "TAG-SYNTAX":
            if not rs.formats:
                raise _fail(path, "TAG-SYNTAX needs at least one entry in tag_formats")
            names = [f.name for f in rs.formats]
            use = _list(p.get("formats", names), pp + ".formats")
            self.formats = []
            for i in range(len(use)):
                if use[i] not in names:
                    raise _fail(pp + ".formats[" + str(i) + "]", "unknown tag format " + repr(use[i]))
                if use[i] in use[:i]:
                    raise _fail(pp + ".formats[" + str(i) + "]", "duplicate format")
                self.formats.append(rs.formats[names.index(use[i])])
            self.all_formats = len(use) == len(names)  # then evaluate() reuses its identification
        elif k == "TAG-SITE":
            if not rs.allocations:
                raise _fail(path, "TAG-SITE needs at least one entry in allocations")
        elif k == "WEIGHT-RANGE":
            self.ranges = _weight_ranges(p, pp, rs)
        elif k == "TIME-FUTURE":
            self.skew_s = _int(p, "skew_s", pp, 0, MAX_SKEW_S)
        elif k == "TIME-BEFORE-PROVISIONING":
            self.not_before = _int(p, "not_before", pp, 0, MAX_TIME, 0)
            self.skew_s = _int(p, "skew_s", pp, 0, MAX_SKEW_S, 0)
        elif k == "SEQ-GAP":
            self.max_gap = _int(p, "max_gap", pp, 0, 1000000, 0)
        elif k == "OPERATOR":
            self.operators = _operators(p, pp, rs)
        elif k == "MASS-BALANCE":
            if "tolerance_g" not in p and "tolerance_permille" not in p:
                raise _fail(pp, "needs tolerance_g and/or tolerance_permille")
            self.tolerance_g = _int(p, "tolerance_g", pp, 0, MAX_G, 0)
            self.tolerance_permille = _int(p, "tolerance_permille", pp, 0, 1000, 0)


def _weight_ranges(p, pp, rs):
    if "ranges" not in p:
        raise _fail(pp + ".ranges", "missing")
    src = _list(p["ranges"], pp + ".ranges")
    out = []
    for i in range(len(src)):
        path = pp + ".ranges[" + str(i) + "]"
        e = src[i]
        _keys(e, path, ("steps", "minerals", "min_g", "max_g"), ("min_g", "max_g"))
        steps = _steps(e["steps"], path + ".steps", rs.steps) if "steps" in e else None
        mins = None
        if "minerals" in e:
            mins = _list(e["minerals"], path + ".minerals")
            for j in range(len(mins)):
                if not isinstance(mins[j], str) or mins[j] not in rs.minerals:
                    raise _fail(path + ".minerals[" + str(j) + "]", "unknown mineral " + repr(mins[j]))
            mins = tuple(mins)
        lo = _int(e, "min_g", path, -MAX_G, MAX_G)
        hi = e["max_g"]
        if not _is_int(hi) or not lo <= hi <= MAX_G:
            raise _fail(path + ".max_g", "must be an integer >= min_g and <= " + str(MAX_G))
        out.append((steps, mins, lo, hi))
    return out


def _operators(p, pp, rs):
    if "operators" not in p:
        raise _fail(pp + ".operators", "missing")
    src = _list(p["operators"], pp + ".operators")
    out = {}
    for i in range(len(src)):
        path = pp + ".operators[" + str(i) + "]"
        e = src[i]
        _keys(e, path, ("id", "name", "steps"), ("id",))
        oid = _int(e, "id", path, 1, 65535)
        if oid in out:
            raise _fail(path + ".id", "duplicate operator " + str(oid))
        if "name" in e:
            _text(e["name"], path + ".name", 64)
        out[oid] = _steps(e["steps"], path + ".steps", rs.steps) if "steps" in e else None
    return out


class RuleSet:
    """A loaded, validated rule set. `hash` (32 bytes) and `id` (u32) identify its content;
    `doc` is the parsed document (do not mutate it)."""

    def __init__(self, doc, h):
        self.doc = doc
        self.hash = h
        self.id = canon.ruleset_id(h)
        _keys(doc, "", _TOP, ("format", "version", "site", "steps", "minerals", "rules"))
        if doc["format"] != FORMAT:
            raise _fail("format", "must be " + repr(FORMAT))
        self.version = _text(doc["version"], "version", 32, True)
        self.site = _ident(doc["site"], "site")
        if "title" in doc:
            _text(doc["title"], "title", 120)
        self.steps = _steps(doc["steps"], "steps", None)
        ms = doc["minerals"]
        if not isinstance(ms, dict) or not ms:
            raise _fail("minerals", "must be a non-empty object")
        for code in ms:
            p = "minerals." + code
            _ident(code, p, 16)
            _keys(ms[code], p, ("en", "fr"), ("en", "fr"))
            _text(ms[code]["en"], p + ".en", 64)
            _text(ms[code]["fr"], p + ".fr", 64)
        self.minerals = ms
        self.formats = []
        fs = _list(doc.get("tag_formats", []), "tag_formats", False)
        for i in range(len(fs)):
            p = "tag_formats[" + str(i) + "]"
            if isinstance(fs[i], dict):
                _ident(fs[i].get("name"), p + ".name")
            f = TagFormat(fs[i], p)
            for g in self.formats:
                if g.name == f.name:
                    raise _fail(p + ".name", "duplicate format name " + repr(f.name))
            self.formats.append(f)
        self.allocations = []
        self.tag_index = {}
        al = _list(doc.get("allocations", []), "allocations", False)
        for i in range(len(al)):
            p = "allocations[" + str(i) + "]"
            a = Allocation(al[i], p, ms, self.steps)
            for j in range(len(a.tags)):
                t = a.tags[j]
                if t in self.tag_index:
                    raise _fail(p + ".tags[" + str(j) + "]", "tag " + repr(t) + " already allocated")
                self.tag_index[t] = a
            self.allocations.append(a)
        self.rules = []
        rl = _list(doc["rules"], "rules")
        ids = []
        for i in range(len(rl)):
            r = Rule(rl[i], "rules[" + str(i) + "]", self)
            if r.id in ids:
                raise _fail("rules[" + str(i) + "].id", "duplicate rule id " + repr(r.id))
            ids.append(r.id)
            self.rules.append(r)

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
        """The canonical JSON text whose SHA-256 is `hash`."""
        return canon.dumps(self.doc)

    def hash_hex(self):
        return "".join("0123456789abcdef"[b >> 4] + "0123456789abcdef"[b & 15] for b in self.hash)


def load(src):
    """Load a rule set from JSON text (str/bytes) or an already-parsed dict. Validates everything
    first; raises RuleSetError (code bad_json, too_large, too_deep or bad_ruleset) naming the
    bad entry. Never returns a partly built rule set."""
    if isinstance(src, dict):
        text = canon.dumps(src)  # refuses non-JSON values, floats and excess depth
        if len(text) > canon.MAX_BYTES or len(text.encode("utf-8")) > canon.MAX_BYTES:
            raise RuleSetError("too_large", "more than " + str(canon.MAX_BYTES) + " bytes")
        doc = canon.loads(text)  # a private copy: the caller's dict may change later
    else:
        doc = canon.loads(src)
        text = canon.dumps(doc)
    if not isinstance(doc, dict):
        raise _fail("(document)", "must be an object")
    return RuleSet(doc, _sha256(text))


def _sha256(text):
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).digest()


def load_file(path):
    """Read and load a rule-set file, refusing files over the size limit before reading them all."""
    with open(path, "rb") as f:
        data = f.read(canon.MAX_BYTES + 1)
    return load(data)
