# Tag IDs: check characters, RFID UID sanity, canonical text, and the tag-format spec of rule sets.
# Every entry point refuses input longer than MAX_TAG before doing any work.
from twproto.errors import RuleSetError, TagError
from twproto.canon import utf8_valid

__all__ = (
    "MAX_TAG",
    "KIND_UID",
    "KIND_NDEF_TEXT",
    "KIND_NDEF_URI",
    "KIND_QR",
    "KIND_BARCODE",
    "OK",
    "BAD_SYNTAX",
    "BAD_CHECK",
    "mod37_2_check",
    "mod37_2_valid",
    "luhn_check",
    "luhn_valid",
    "luhn36_check",
    "luhn36_valid",
    "gs1_check",
    "gs1_valid",
    "uid_problem",
    "canonical",
    "fallback_text",
    "TagFormat",
    "identify",
)

MAX_TAG = 64  # bytes, the READING limit (SPEC.md)

KIND_UID = 0
KIND_NDEF_TEXT = 1
KIND_NDEF_URI = 2
KIND_QR = 3
KIND_BARCODE = 4
TEXT_KINDS = (1, 2, 3, 4)

DIGITS = "0123456789"
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # value of a character = its index
HEX = "0123456789ABCDEF"
_MOD37 = ALNUM + "*"
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))
_SPACE = " \t\r\n"

ALPHABETS = {"digits": DIGITS, "alnum": ALNUM, "hex": HEX, "printable": _PRINTABLE}
GS1_LENGTHS = (8, 12, 13, 14, 17, 18)  # GTIN-8/12/13/14, GSIN, SSCC (check digit included)


def _bound(s):
    if len(s) > MAX_TAG:
        raise TagError("tag_too_long", "more than " + str(MAX_TAG) + " characters")


def _values(code, alphabet):
    _bound(code)
    out = []
    for c in code:
        v = alphabet.find(c)
        if v < 0:
            raise TagError("bad_char", repr(c) + " not allowed")
        out.append(v)
    return out


# ISO/IEC 7064 MOD 37-2: pure system, modulus 37, radix 2, one check character from 0-9 A-Z *.
# Detects every single substitution and every transposition of adjacent characters.
def mod37_2_check(code):
    p = 0
    for v in _values(code, ALNUM):
        p = ((p + v) * 2) % 37
    return _MOD37[(38 - p) % 37]


def mod37_2_valid(text):
    _bound(text)
    if len(text) < 2 or _MOD37.find(text[-1]) < 0:
        return False
    try:
        return mod37_2_check(text[:-1]) == text[-1]
    except TagError:
        return False


def _luhn_sum(vals, n):
    # Rightmost body character gets factor 2, then 1, 2, ...; digits of the product summed in base n.
    total = 0
    factor = 2
    for i in range(len(vals) - 1, -1, -1):
        a = vals[i] * factor
        total += a // n + a % n
        factor = 3 - factor
    return (n - total % n) % n


def luhn_check(digits):
    """Luhn (ISO/IEC 7812-1) check digit for a string of digits."""
    return DIGITS[_luhn_sum(_values(digits, DIGITS), 10)]


def luhn_valid(text):
    _bound(text)
    if len(text) < 2:
        return False
    try:
        return luhn_check(text[:-1]) == text[-1]
    except TagError:
        return False


def luhn36_check(code):
    """Luhn mod N with N = 36 over 0-9 A-Z (character value = its index)."""
    return ALNUM[_luhn_sum(_values(code, ALNUM), 36)]


def luhn36_valid(text):
    _bound(text)
    if len(text) < 2:
        return False
    try:
        return luhn36_check(text[:-1]) == text[-1]
    except TagError:
        return False


def gs1_check(digits):
    """GS1 mod-10 check digit (EAN/UPC/GTIN/SSCC): weights 3,1,3,... from the right."""
    vals = _values(digits, DIGITS)
    total = 0
    w = 3
    for i in range(len(vals) - 1, -1, -1):
        total += vals[i] * w
        w = 4 - w
    return DIGITS[(10 - total % 10) % 10]


def gs1_valid(text):
    _bound(text)
    if len(text) < 2:
        return False
    try:
        return gs1_check(text[:-1]) == text[-1]
    except TagError:
        return False


# scheme -> (validator, alphabets its body may use, alphabet of the check character)
SCHEMES = {
    "none": (None, ("digits", "alnum", "hex", "printable"), None),
    "mod37-2": (mod37_2_valid, ("digits", "alnum"), _MOD37),
    "luhn": (luhn_valid, ("digits",), DIGITS),
    "luhn-mod36": (luhn36_valid, ("digits", "alnum", "hex"), ALNUM),
    "gs1": (gs1_valid, ("digits",), DIGITS),
}


def uid_problem(uid):
    """None if `uid` (bytes) is a plausible ISO 14443-3 UID to identify a bag, else a short reason:
    'length' (not 4, 7 or 10 bytes), 'blank' (all 0x00 or all 0xFF: a reader artefact),
    'cascade' (0x88, the cascade tag, where a UID byte must not carry it), 'random' (4-byte UID
    starting 0x08: a random ID that changes at every power-up, so it identifies nothing)."""
    n = len(uid)
    if n not in (4, 7, 10):
        return "length"
    zero = ff = True
    for b in uid:
        if b:
            zero = False
        if b != 0xFF:
            ff = False
    if zero or ff:
        return "blank"
    if uid[0] == 0x88 or (n == 7 and uid[3] == 0x88) or (n == 10 and uid[6] == 0x88):
        return "cascade"
    if n == 4 and uid[0] == 0x08:
        return "random"
    return None


def _hex(b):
    out = []
    for c in b:
        out.append(HEX[c >> 4])
        out.append(HEX[c & 15])
    return "".join(out)


def canonical(kind, tag):
    """Canonical text of a raw tag value: an RFID UID as upper-case hex, text kinds as the strict
    UTF-8 text without surrounding blanks (scanners append CR/LF). None if the value is empty,
    longer than MAX_TAG, or not valid UTF-8: such a tag can only fail TAG-SYNTAX."""
    if len(tag) > MAX_TAG or len(tag) == 0:
        return None
    if kind == KIND_UID:
        return _hex(tag)
    if not utf8_valid(tag):
        return None
    s = bytes(tag).decode("utf-8")
    a = 0
    b = len(s)
    while a < b and s[a] in _SPACE:
        a += 1
    while b > a and s[b - 1] in _SPACE:
        b -= 1
    return s[a:b] if b > a else None


def fallback_text(kind, tag):
    """A text usable as a state key for any tag, valid or not (never None)."""
    t = canonical(kind, tag)
    if t is None:
        t = "?" + _hex(tag[:MAX_TAG])
    return t


# --- tag-format spec (part of a rule set) ------------------------------------------------------
OK = 0
BAD_SYNTAX = 1  # same numbers as reasons.TAG_SYNTAX / TAG_CHECK
BAD_CHECK = 2

_TEXT_KEYS = ("name", "type", "kinds", "strip", "prefix", "length", "alphabet", "check")
_UID_KEYS = ("name", "type", "uid_lengths", "manufacturers")


def _fail(path, msg):
    return RuleSetError("bad_ruleset", path + ": " + msg, path)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


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


class TagFormat:
    """One entry of a rule set's `tag_formats`. Text formats: the value (after removing `strip`)
    is the tag's code: it starts with `prefix`, has `length` characters (int or [min, max])
    drawn from `alphabet`, and if `check` is not 'none' its last character is the check
    character of everything before it (prefix included). UID formats: `uid_lengths` (subset of
    4, 7, 10) and optionally `manufacturers` (allowed first bytes)."""

    def __init__(self, spec, path):
        if not isinstance(spec, dict):
            raise _fail(path, "must be an object")
        self.name = spec.get("name")
        t = spec.get("type")
        if t not in ("text", "uid"):
            raise _fail(path + ".type", "must be 'text' or 'uid'")
        self.uid = t == "uid"
        allowed = _UID_KEYS if self.uid else _TEXT_KEYS
        for k in spec:
            if k not in allowed:
                raise _fail(path + "." + k, "unknown key for a " + t + " format")
        if self.uid:
            self.kinds = (KIND_UID,)
            self.uid_lengths = _int_list(spec, "uid_lengths", path, 4, 10, [4, 7, 10])
            for i in range(len(self.uid_lengths)):
                if self.uid_lengths[i] not in (4, 7, 10):
                    raise _fail(path + ".uid_lengths[" + str(i) + "]", "must be 4, 7 or 10")
            self.manufacturers = None
            if "manufacturers" in spec:
                self.manufacturers = _int_list(spec, "manufacturers", path, 0, 255, None)
            return
        self.kinds = _int_list(spec, "kinds", path, 1, 4, None)
        self.strip = _ascii_str(spec, "strip", path, 48, "")
        self.prefix = _ascii_str(spec, "prefix", path, 16, "")
        a = spec.get("alphabet")
        if not isinstance(a, str) or a not in ALPHABETS:
            raise _fail(path + ".alphabet", "must be one of digits, alnum, hex, printable")
        self.alphabet = ALPHABETS[a]
        c = spec.get("check", "none")
        if not isinstance(c, str) or c not in SCHEMES:
            raise _fail(path + ".check", "must be one of none, mod37-2, luhn, luhn-mod36, gs1")
        self.valid, bodies, self.check_chars = SCHEMES[c]
        if a not in bodies:
            raise _fail(path + ".alphabet", "check scheme " + c + " needs alphabet " + " or ".join(bodies))
        for ch in self.prefix:
            if self.alphabet.find(ch) < 0:
                raise _fail(path + ".prefix", "must use the format's alphabet")
        n = spec.get("length")
        if _is_int(n):
            lo = hi = n
        elif isinstance(n, list) and len(n) == 2 and _is_int(n[0]) and _is_int(n[1]):
            lo, hi = n
        else:
            raise _fail(path + ".length", "must be an integer or [min, max]")
        least = len(self.prefix) + (2 if self.valid else 1)
        if not least <= lo <= hi <= MAX_TAG - len(self.strip):
            raise _fail(path + ".length", "must satisfy " + str(least) + " <= min <= max <= "
                        + str(MAX_TAG - len(self.strip)) + " (prefix and check included)")
        if c == "gs1" and (lo != hi or lo not in GS1_LENGTHS):
            raise _fail(path + ".length", "gs1 needs a fixed length of 8, 12, 13, 14, 17 or 18")
        self.min_len = lo
        self.max_len = hi

    def code(self, text):
        """The tag's code (text without `strip`), or None if `strip` does not match."""
        if not self.strip:
            return text
        if text.startswith(self.strip):
            return text[len(self.strip):]
        return None

    def check(self, kind, text, raw):
        """OK, BAD_SYNTAX or BAD_CHECK for a canonical text (`raw` = the tag bytes for UIDs)."""
        if kind not in self.kinds:
            return BAD_SYNTAX
        if self.uid:
            if len(raw) not in self.uid_lengths or uid_problem(raw) is not None:
                return BAD_SYNTAX
            if self.manufacturers is not None and len(raw) > 4 and raw[0] not in self.manufacturers:
                return BAD_SYNTAX
            return OK
        code = self.code(text)
        if code is None or not self.min_len <= len(code) <= self.max_len:
            return BAD_SYNTAX
        if not code.startswith(self.prefix):
            return BAD_SYNTAX
        a = self.alphabet
        n = len(code) - (1 if self.valid else 0)
        for i in range(n):
            if a.find(code[i]) < 0:
                return BAD_SYNTAX
        if self.valid is None:
            return OK
        if self.check_chars.find(code[n]) < 0:
            return BAD_SYNTAX
        return OK if self.valid(code) else BAD_CHECK


def identify(formats, kind, tag):
    """Match a raw tag against a list of TagFormat. Returns (result, format or None, key) where
    result is OK / BAD_SYNTAX / BAD_CHECK (best over all formats, in list order) and key is the
    tag's identity text: the matching format's code, else the canonical or fallback text."""
    text = canonical(kind, tag)
    if text is None:
        return BAD_SYNTAX, None, fallback_text(kind, tag)
    if kind == KIND_UID and uid_problem(tag) is not None:
        return BAD_SYNTAX, None, text
    best = BAD_SYNTAX
    best_fmt = None
    for f in formats:
        r = f.check(kind, text, tag)
        if r == OK:
            return OK, f, text if f.uid else f.code(text)
        if r == BAD_CHECK and best == BAD_SYNTAX:
            best = BAD_CHECK
            best_fmt = f
    if best_fmt is not None:
        return best, best_fmt, best_fmt.code(text)
    return best, None, text
