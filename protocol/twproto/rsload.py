# Loading a rule set (format "tagweigh-ruleset/1", see RULES.md): every check of the document and
# of its tag formats, and the building of twproto.ruleset's RuleSet / Rule / Allocation and
# twproto.tags' TagFormat objects. The whole document is validated before anything is built, and
# RuleSetError names the bad entry, so a rule set is loaded completely or not at all.
#
# Only needed while a rule set is being loaded (at boot, or when the bridge pushes one): the
# station imports it then and drops it afterwards (twstation.app), so this code does not stay in
# its heap. Callers use twproto.ruleset.load / load_file. Also writes the compact pre-checked
# form the station loads at boot instead (compact, save_compact; RULES.md section 9).
from twproto import canon
from twproto.errors import RuleSetError
from twproto.ruleset import FORMAT, KINDS, Allocation, Rule, RuleSet
from twproto.tags import ALNUM, DIGITS, HEX, KIND_UID, MAX_TAG, MOD37, VALID, TagFormat

_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))
ALPHABETS = {"digits": DIGITS, "alnum": ALNUM, "hex": HEX, "printable": _PRINTABLE}
GS1_LENGTHS = (8, 12, 13, 14, 17, 18)  # GTIN-8/12/13/14, GSIN, SSCC (check digit included)

# scheme -> (its number: TagFormat.valid, alphabets its body may use, alphabet of the check
# character)
SCHEMES = {
    "none": (None, ("digits", "alnum", "hex", "printable"), None),
    "mod37-2": (37, ("digits", "alnum"), MOD37),
    "luhn": (10, ("digits",), DIGITS),
    "luhn-mod36": (36, ("digits", "alnum", "hex"), ALNUM),
    "gs1": (3, ("digits",), DIGITS),
}
SEVERITIES = {"warn": 1, "reject": 2}
MAX_G = (1 << 23) - 1  # net weight is a signed 24-bit number of grams on the wire
MAX_SKEW_S = 86400
MAX_TIME = 0xFFFFFFFF

_MAX_BIN = 49152  # rsbin._MAX_BIN: the largest compact file the station reads

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


_TEXT_KEYS = ("name", "type", "kinds", "strip", "prefix", "length", "alphabet", "check")
_UID_KEYS = ("name", "type", "uid_lengths", "manufacturers")


def _int_list(spec, key, path, lo, hi, default):
    v = spec.get(key, default)
    p = path + "." + key
    if not isinstance(v, list) or not v:
        raise _fail(p, "must be a non-empty list of integers")
    for i in range(len(v)):
        if not _is_int(v[i]) or not lo <= v[i] <= hi:
            raise _fail(p + "[" + str(i) + "]", "must be an integer " + str(lo) + ".." + str(hi))
        if v[i] in v[:i]:
            raise _fail(p + "[" + str(i) + "]", "duplicate value")
    return tuple(v)


def _ascii_str(spec, key, path, maxlen, default=None):
    v = spec.get(key, default)
    p = path + "." + key
    if not isinstance(v, str) or len(v) > maxlen:
        raise _fail(p, "must be a string of at most " + str(maxlen) + " characters")
    for c in v:
        if _PRINTABLE.find(c) < 0:
            raise _fail(p, "must be printable ASCII without spaces")
    return v


def tag_format(f, spec, path):
    """Validate a tag-format spec and fill TagFormat `f` from it (tags.TagFormat.__init__)."""
    if not isinstance(spec, dict):
        raise _fail(path, "must be an object")
    f.name = spec.get("name")
    t = spec.get("type")
    if t not in ("text", "uid"):
        raise _fail(path + ".type", "must be 'text' or 'uid'")
    f.uid = t == "uid"
    allowed = _UID_KEYS if f.uid else _TEXT_KEYS
    for k in spec:
        if k not in allowed:
            raise _fail(path + "." + k, "unknown key for a " + t + " format")
    if f.uid:
        f.kinds = (KIND_UID,)
        f.uid_lengths = _int_list(spec, "uid_lengths", path, 4, 10, [4, 7, 10])
        for i in range(len(f.uid_lengths)):
            if f.uid_lengths[i] not in (4, 7, 10):
                raise _fail(path + ".uid_lengths[" + str(i) + "]", "must be 4, 7 or 10")
        f.manufacturers = None
        if "manufacturers" in spec:
            f.manufacturers = _int_list(spec, "manufacturers", path, 0, 255, None)
        return
    f.kinds = _int_list(spec, "kinds", path, 1, 4, None)
    f.strip = _ascii_str(spec, "strip", path, 48, "")
    f.prefix = _ascii_str(spec, "prefix", path, 16, "")
    a = spec.get("alphabet")
    if not isinstance(a, str) or a not in ALPHABETS:
        raise _fail(path + ".alphabet", "must be one of digits, alnum, hex, printable")
    f.alphabet = ALPHABETS[a]
    c = spec.get("check", "none")
    if not isinstance(c, str) or c not in SCHEMES:
        raise _fail(path + ".check", "must be one of none, mod37-2, luhn, luhn-mod36, gs1")
    f.valid, bodies, f.check_chars = SCHEMES[c]
    if a not in bodies:
        raise _fail(path + ".alphabet", "check scheme " + c + " needs alphabet " + " or ".join(bodies))
    for ch in f.prefix:
        if f.alphabet.find(ch) < 0:
            raise _fail(path + ".prefix", "must use the format's alphabet")
    n = spec.get("length")
    if isinstance(n, int) and not isinstance(n, bool):
        lo = hi = n
    elif isinstance(n, list) and len(n) == 2 and _is_int(n[0]) and _is_int(n[1]):
        lo = n[0]
        hi = n[1]
    else:
        raise _fail(path + ".length", "must be an integer or [min, max]")
    least = len(f.prefix) + (2 if f.valid else 1)
    if not least <= lo <= hi <= MAX_TAG - len(f.strip):
        raise _fail(path + ".length", "must satisfy " + str(least) + " <= min <= max <= "
                    + str(MAX_TAG - len(f.strip)) + " (prefix and check included)")
    if c == "gs1" and (lo != hi or lo not in GS1_LENGTHS):
        raise _fail(path + ".length", "gs1 needs a fixed length of 8, 12, 13, 14, 17 or 18")
    f.lo = lo
    f.hi = hi


def allocation(a, d, path, minerals, steps):
    _keys(d, path, _ALLOC, ("origin", "mineral"))
    a.origin = _ident(d["origin"], path + ".origin")
    a.mineral = d["mineral"]
    if not isinstance(a.mineral, str) or a.mineral not in minerals:
        raise _fail(path + ".mineral", "unknown mineral " + repr(a.mineral))
    a.steps = _steps(d["steps"], path + ".steps", steps) if "steps" in d else None
    rs = _list(d.get("ranges", []), path + ".ranges", False)
    ts = _list(d.get("tags", []), path + ".tags", False)
    if not rs and not ts:
        raise _fail(path, "needs at least one of ranges, tags")
    a.ranges = []
    for i in range(len(rs)):
        p = path + ".ranges[" + str(i) + "]"
        r = rs[i]
        if not isinstance(r, list) or len(r) != 2:
            raise _fail(p, "must be [first, last]")
        lo = _text(r[0], p + "[0]", MAX_TAG, True)
        hi = _text(r[1], p + "[1]", MAX_TAG, True)
        if len(lo) != len(hi) or lo > hi:
            raise _fail(p, "first and last must have the same length and first <= last")
        a.ranges.append((lo, hi))
    a.tags = ts
    for i in range(len(ts)):
        _text(ts[i], path + ".tags[" + str(i) + "]", MAX_TAG, True)
    if "note" in d:
        _text(d["note"], path + ".note", 200)


def rule(r, d, path, rs):
    _keys(d, path, _RULE, ("id", "kind", "severity"))
    r.id = _ident(d["id"], path + ".id")
    k = d["kind"]
    if not isinstance(k, str) or k not in KINDS:
        raise _fail(path + ".kind", "unknown rule kind " + repr(k))
    r.kind = KINDS[KINDS.index(k)]  # the module's string, not a copy per rule
    s = d["severity"]
    if not isinstance(s, str) or s not in SEVERITIES:
        raise _fail(path + ".severity", "must be 'reject' or 'warn'")
    r.severity = SEVERITIES[s]
    r.steps = _steps(d["steps"], path + ".steps", rs.steps) if "steps" in d else None
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
        r.formats = []
        for i in range(len(use)):
            if use[i] not in names:
                raise _fail(pp + ".formats[" + str(i) + "]", "unknown tag format " + repr(use[i]))
            if use[i] in use[:i]:
                raise _fail(pp + ".formats[" + str(i) + "]", "duplicate format")
            r.formats.append(rs.formats[names.index(use[i])])
        r.all_formats = len(use) == len(names)  # then evaluate() reuses its identification
    elif k == "TAG-SITE":
        if not rs.allocations:
            raise _fail(path, "TAG-SITE needs at least one entry in allocations")
    elif k == "WEIGHT-RANGE":
        r.ranges = _weight_ranges(p, pp, rs)
    elif k == "TIME-FUTURE":
        r.skew_s = _int(p, "skew_s", pp, 0, MAX_SKEW_S)
    elif k == "TIME-BEFORE-PROVISIONING":
        r.not_before = _int(p, "not_before", pp, 0, MAX_TIME, 0)
        r.skew_s = _int(p, "skew_s", pp, 0, MAX_SKEW_S, 0)
    elif k == "SEQ-GAP":
        r.max_gap = _int(p, "max_gap", pp, 0, 1000000, 0)
    elif k == "OPERATOR":
        r.operators = _operators(p, pp, rs)
    elif k == "MASS-BALANCE":
        if "tolerance_g" not in p and "tolerance_permille" not in p:
            raise _fail(pp, "needs tolerance_g and/or tolerance_permille")
        r.tolerance_g = _int(p, "tolerance_g", pp, 0, MAX_G, 0)
        r.tolerance_permille = _int(p, "tolerance_permille", pp, 0, 1000, 0)


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


def ruleset(rs, doc, h):
    rs.doc = doc
    rs.hash = h
    rs.id = canon.ruleset_id(h)
    _keys(doc, "", _TOP, ("format", "version", "site", "steps", "minerals", "rules"))
    if doc["format"] != FORMAT:
        raise _fail("format", "must be " + repr(FORMAT))
    rs.version = _text(doc["version"], "version", 32, True)
    rs.site = _ident(doc["site"], "site")
    if "title" in doc:
        _text(doc["title"], "title", 120)
    rs.steps = _steps(doc["steps"], "steps", None)
    ms = doc["minerals"]
    if not isinstance(ms, dict) or not ms:
        raise _fail("minerals", "must be a non-empty object")
    for code in ms:
        p = "minerals." + code
        _ident(code, p, 16)
        _keys(ms[code], p, ("en", "fr"), ("en", "fr"))
        _text(ms[code]["en"], p + ".en", 64)
        _text(ms[code]["fr"], p + ".fr", 64)
    rs.minerals = ms
    rs.formats = []
    fs = _list(doc.get("tag_formats", []), "tag_formats", False)
    for i in range(len(fs)):
        p = "tag_formats[" + str(i) + "]"
        if isinstance(fs[i], dict):
            _ident(fs[i].get("name"), p + ".name")
        f = TagFormat()
        tag_format(f, fs[i], p)
        for g in rs.formats:
            if g.name == f.name:
                raise _fail(p + ".name", "duplicate format name " + repr(f.name))
        rs.formats.append(f)
    rs.allocations = []
    rs.tag_index = {}
    al = _list(doc.get("allocations", []), "allocations", False)
    for i in range(len(al)):
        p = "allocations[" + str(i) + "]"
        a = Allocation()
        allocation(a, al[i], p, ms, rs.steps)
        for j in range(len(a.tags)):
            t = a.tags[j]
            if t in rs.tag_index:
                raise _fail(p + ".tags[" + str(j) + "]", "tag " + repr(t) + " already allocated")
            rs.tag_index[t] = a
        rs.allocations.append(a)
    rs.rules = []
    rl = _list(doc["rules"], "rules")
    ids = []
    for i in range(len(rl)):
        r = Rule()
        rule(r, rl[i], "rules[" + str(i) + "]", rs)
        if r.id in ids:
            raise _fail("rules[" + str(i) + "].id", "duplicate rule id " + repr(r.id))
        ids.append(r.id)
        rs.rules.append(r)


def load(src):
    """Load a rule set from JSON text (str/bytes) or an already-parsed dict. Validates everything
    first; raises RuleSetError (code bad_json, too_large, too_deep or bad_ruleset) naming the
    bad entry. Never returns a partly built rule set."""
    if isinstance(src, dict):
        text = canon.dumps(src)  # refuses non-JSON values, floats and excess depth
        doc = canon.loads(text)  # a private copy (the caller's dict may change later); size-checked
    else:
        doc = canon.loads(src)
        text = canon.dumps(doc)
    if not isinstance(doc, dict):
        raise _fail("(document)", "must be an object")
    rs = RuleSet()
    ruleset(rs, doc, _sha256(text))
    return rs


def load_file(data, path, src):
    """load(data), and with `src` (the SHA-256 of the JSON file's bytes `data`) the compact copy
    saved to `path` (save_compact): twproto.ruleset.load_file's slow path."""
    rs = load(data)
    if src is not None:
        save_compact(rs, path, src)
    return rs


def canonical(rs):
    """RuleSet.canonical(): the canonical JSON text of rs.doc (RuleSetError after drop_document())."""
    if rs.doc is None:
        raise RuleSetError("no_document", "dropped by drop_document()")
    return canon.dumps(rs.doc)


def _sha256(text):
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).digest()


def compact(rs, src):
    """The compact pre-checked form of a rule set loaded with full validation from a JSON file
    whose SHA-256 is `src` (RULES.md section 9): what twproto.ruleset.load_file reads at boot
    instead of validating the JSON again. Same bytes on CPython and MicroPython."""
    import hashlib

    fs = rs.formats
    body = [rs.version, rs.site, rs.steps, sorted(rs.minerals), [], [], []]
    for f in fs:
        d = dict(f.__dict__)
        if d.get("valid") is not None:
            d["valid"] = VALID[d["valid"]]  # by the name of its twproto.tags function
        body[4].append(d)
    for a in rs.allocations:
        body[5].append(a.__dict__)
    for r in rs.rules:
        d = dict(r.__dict__)
        if "formats" in d:
            d["formats"] = [fs.index(f) for f in d["formats"]]
        if "operators" in d:
            d["operators"] = [[k, d["operators"][k]] for k in sorted(d["operators"])]
        body[6].append(d)
    b = b"TWR2" + src + rs.hash + _json(body).encode()
    return b + hashlib.sha256(b).digest()


def _json(v):
    # Canonical JSON of the body (sorted keys, no spaces): the same text on both interpreters,
    # whose json modules differ in key order and separators.
    if isinstance(v, dict):
        return "{" + ",".join(_json(k) + ":" + _json(v[k]) for k in sorted(v)) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_json(x) for x in v) + "]"
    return canon.dumps(v)


def save_compact(rs, path, src):
    """Write compact(rs, src) to `path` atomically (a temporary file renamed over it). A failed
    write is ignored: the station then validates the JSON again at the next boot."""
    import os

    b = compact(rs, src)
    if len(b) > _MAX_BIN:
        return  # ruleset.load_file would not read it
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(b)
        try:
            os.rename(tmp, path)
        except OSError:  # a filesystem that does not rename over an existing file
            os.remove(path)
            os.rename(tmp, path)
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass
