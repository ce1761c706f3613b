# The station's compact pre-checked rule set (RULES.md section 9): twproto.ruleset.load_file
# builds the engine's objects from X.bin instead of parsing and validating X.json again when X.bin
# is intact and was made from the current bytes of X.json. It holds exactly what a validated load
# (twproto.rsload, whose compact() writes it) gives, minus the document: same ID, same verdicts.
# Also the body of ruleset.load_file (which reads X.json, then tries X.bin, else validates).
# Imported at boot and for a pushed rule set only (the station forgets it afterwards,
# twstation.COLD).
import json
import os
from hashlib import sha256

from twproto import tags
from twproto.port import const
from twproto.ruleset import KINDS, Allocation, Rule, RuleSet

_MAX_BIN = const(49152)  # rsload.compact never writes a larger file
_MAX_BYTES = const(16384)  # canon.MAX_BYTES (a test checks they are equal)
# Strings the engine's objects share with the modules (a rule's kind, a format's alphabet and
# check characters), as a validated load shares them: not one heap copy per entry.
_SHARED = KINDS + (tags.DIGITS, tags.ALNUM, tags.HEX, tags.MOD37)


def load_file(path, cache):
    """twproto.ruleset.load_file(path, cache) (see there)."""
    with open(path, "rb") as f:
        # read(n) allocates n bytes at once: the file's size, or one byte over the limit
        data = f.read(min(os.stat(path)[6], _MAX_BYTES) + 1)
    src = None
    if cache and path.endswith(".json"):
        src = sha256(data).digest()
        path = path[:-5] + ".bin"
        try:
            return load(path, src)
        except Exception:  # absent, stale or damaged (whatever it raises): validate the JSON
            pass
    from twproto import rsload

    return rsload.load_file(data, path, src)


def load(path, src):
    """The RuleSet stored in compact file `path`. Raises (OSError, ValueError, ...) unless the
    file is intact and was made from the JSON bytes whose SHA-256 is `src`."""
    n = os.stat(path)[6]
    if n > _MAX_BIN:
        raise ValueError
    with open(path, "rb") as f:
        b = f.read(n)  # read(n) allocates n bytes at once: never ask for more than the file
    if b[:4] != b"TWR2" or b[4:36] != src or sha256(b[:-32]).digest() != b[-32:]:
        raise ValueError
    h = b[36:68]
    version, site, steps, minerals, fs, al, rl = json.loads(b[68:-32])
    b = None  # free the file's bytes before building
    rs = RuleSet()
    rs.doc = None
    rs.hash = h
    rs.id = (h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]  # canon.ruleset_id
    rs.version = version
    rs.site = site
    rs.steps = tuple(steps)
    rs.minerals = tuple(minerals)
    rs.formats = [_fill(tags.TagFormat(), d, None) for d in fs]
    rs.allocations = []
    rs.tag_index = {}
    for d in al:
        a = _fill(Allocation(), d, None)
        for t in a.tags:
            rs.tag_index[t] = a
        rs.allocations.append(a)
    rs.rules = [_fill(Rule(), d, rs.formats) for d in rl]
    return rs


def _tuple(v):
    # JSON arrays back to the tuples the validated load makes (nested ones too).
    return tuple([_tuple(x) if isinstance(x, list) else x for x in v])


def _fill(o, d, formats):
    # Attributes from a compact entry (rsload.compact writes them): the same values and types a
    # validated load gives. A format's check scheme (its number, TagFormat.valid) is stored by
    # the name of its xxx_valid function (tags.VALID), a rule's tag formats by index, a rule's
    # operators as [id, steps] pairs.
    for k in d:
        v = d[k]
        if v is None or k == "tags":
            pass
        elif k == "ranges":
            v = [_tuple(x) for x in v]
        elif k == "valid":  # IndexError for a name that is not one of them
            v = [n for n in tags.VALID if tags.VALID[n] == v][0]
        elif k == "formats":
            v = [formats[i] for i in v]
        elif k == "operators":
            v = {e[0]: None if e[1] is None else tuple(e[1]) for e in v}
        elif isinstance(v, list):
            v = tuple(v)
        elif v in _SHARED:
            v = _SHARED[_SHARED.index(v)]
        setattr(o, k, v)
    return o
