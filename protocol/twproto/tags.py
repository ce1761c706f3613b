# Tag IDs: check characters, RFID UID sanity, canonical text, and the tag-format spec of rule sets.
# Every entry point refuses input longer than MAX_TAG before doing any work.
from twproto.port import const

# The numbers are private copies (inlined: no interned names on the station, whose code uses
# its own copies); the public MAX_TAG, KIND_*, OK, BAD_SYNTAX, BAD_CHECK, the alphabets DIGITS,
# HEX and MOD37, the check-character functions (xxx_check, xxx_valid: each refuses a text over
# MAX_TAG with TagError), fallback_text, uid_problem (and __all__) live in twproto.tagshost and
# are reached as tags.X (module __getattr__ below). tests/protocol/test_tags.py checks the copies.
_MAX_TAG = const(64)  # bytes, the READING limit (SPEC.md)
_KIND_UID = const(0)
_OK = const(0)
_BAD_SYNTAX = const(1)  # same numbers as reasons.TAG_SYNTAX / TAG_CHECK
_BAD_CHECK = const(2)


def __getattr__(name):
    if name[:2] == "__" and name != "__all__":  # a probe for a module dunder: not ours to load
        raise AttributeError(name)
    from twproto import tagshost

    return getattr(tagshost, name)


# Value of a character = its index. Its first 10 characters are the digits, its first 16 the
# upper-case hex digits (tagshost.DIGITS and HEX are these slices).
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def utf8_valid(b):
    """Strict UTF-8 check (no overlongs, no surrogates, <= U+10FFFF). MicroPython's decoder accepts
    encoded surrogates, CPython's does not: this makes both refuse the same bytes."""
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            k = 2
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            k = 3
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            return False
        if i + k >= n:
            return False
        if not lo <= b[i + 1] <= hi:
            return False
        for j in range(i + 2, i + 1 + k):
            if not 0x80 <= b[j] <= 0xBF:
                return False
        i += 1 + k
    return True



def _check(code, n):
    # The check character of `code` by scheme n, None if a character is not in the scheme's
    # alphabet (the caller checks the length), in one pass from the left without a list (this
    # runs for every bag on the station and in the bridge's hot path): 10 Luhn (ISO/IEC 7812-1)
    # over digits, 36 Luhn mod N over 0-9 A-Z (value = index), 3 GS1 mod 10 (EAN/UPC/GTIN/SSCC)
    # over digits: from the rightmost character the weights are 2, 1, 2, ... with the digits of
    # each product summed in base n (Luhn), or 3, 1, 3, ... with the products summed (GS1); 37
    # ISO/IEC 7064 MOD 37-2 (pure system, modulus 37, radix 2, check character from 0-9 A-Z *:
    # detects every single substitution and every transposition of adjacent characters) over
    # 0-9 A-Z. The public mod37_2_check, luhn_check, luhn36_check and gs1_check (and the
    # xxx_valid functions) are in twproto.tagshost; TagFormat.check compares the last character.
    m = 36 if n > 35 else 10  # the alphabet: the first m characters of ALNUM
    k = len(code)
    total = 0
    for i in range(k):
        v = ALNUM.find(code[i])
        if not 0 <= v < m:
            return None
        if n == 37:
            total = (total + v) * 2 % 37
        else:
            p = v * ((3 if n == 3 else 2) if (k - i) % 2 else 1)  # weight by place from the right
            total += p if n == 3 else p // m + p % m
    if n == 37:
        v = (38 - total) % 37
        return "*" if v == 36 else ALNUM[v]  # MOD37: ALNUM + "*"
    return ALNUM[(m - total % m) % m]


def _uid(uid):
    # 0 if `uid` (bytes) is a plausible ISO 14443-3 UID to identify a bag, else why not (the
    # index in tagshost.uid_problem's reasons): 1 not 4, 7 or 10 bytes, 2 blank (all 0x00 or all
    # 0xFF: a reader artefact), 3 0x88 (the cascade tag) where a UID byte must not carry it,
    # 4 a 4-byte UID starting 0x08 (random: it changes at every power-up, so it identifies nothing).
    n = len(uid)
    if n not in (4, 7, 10):
        return 1
    zero = ff = True
    for b in uid:
        if b:
            zero = False
        if b != 0xFF:
            ff = False
    if zero or ff:
        return 2
    if uid[0] == 0x88 or (n == 7 and uid[3] == 0x88) or (n == 10 and uid[6] == 0x88):
        return 3
    if n == 4 and uid[0] == 0x08:
        return 4
    return 0


def _hex(b):
    out = []
    for c in b:
        out.append(ALNUM[c >> 4])  # ALNUM's first 16 characters: the upper-case hex digits
        out.append(ALNUM[c & 15])
    return "".join(out)


def canonical(kind, tag):
    """Canonical text of a raw tag value: an RFID UID as upper-case hex, text kinds as the strict
    UTF-8 text without surrounding blanks (scanners append CR/LF). None if the value is empty,
    longer than MAX_TAG, or not valid UTF-8: such a tag can only fail TAG-SYNTAX."""
    if len(tag) > _MAX_TAG or len(tag) == 0:
        return None
    if kind == _KIND_UID:
        return _hex(tag)
    if not utf8_valid(tag):
        return None
    return str(bytes(tag), "utf-8").strip(" \t\r\n") or None


# --- tag-format spec (part of a rule set) ------------------------------------------------------
class TagFormat:
    """One entry of a rule set's `tag_formats`. Text formats: the value (after removing `strip`)
    is the tag's code: it starts with `prefix`, has lo..hi characters (the spec's `length`: int
    or [min, max]) drawn from `alphabet`, and if `check` is not 'none' its last character is the check
    character of everything before it (prefix included) by the check scheme `valid` (37
    MOD 37-2, 10 Luhn, 36 Luhn mod 36, 3 GS1: the xxx_valid function of that scheme is
    tagshost.VALID[valid]; None without a check character). UID formats: `uid_lengths` (subset of
    4, 7, 10) and optionally `manufacturers` (allowed first bytes). Built and validated by
    twproto.rsload.tag_format, or from the station's compact copy (twproto.ruleset)."""

    name: "str | None"
    uid: bool
    kinds: tuple
    uid_lengths: tuple
    manufacturers: "tuple | None"
    strip: str
    prefix: str
    alphabet: str
    valid: "int | None"  # the check scheme's number (see above), None without a check char
    check_chars: "str | None"
    lo: int  # code length bounds (names the station already interns)
    hi: int

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
            return _BAD_SYNTAX
        if self.uid:
            if len(raw) not in self.uid_lengths or _uid(raw):
                return _BAD_SYNTAX
            if self.manufacturers is not None and len(raw) > 4 and raw[0] not in self.manufacturers:
                return _BAD_SYNTAX
            return _OK
        code = self.code(text)
        if code is None or not self.lo <= len(code) <= self.hi:
            return _BAD_SYNTAX
        if not code.startswith(self.prefix):
            return _BAD_SYNTAX
        a = self.alphabet
        n = len(code) - (1 if self.valid else 0)
        for i in range(n):
            if a.find(code[i]) < 0:
                return _BAD_SYNTAX
        valid = self.valid
        cc = self.check_chars
        if valid is None or cc is None:  # both None for a format without a check character
            return _OK
        if cc.find(code[n]) < 0:
            return _BAD_SYNTAX
        return _OK if n > 0 and _check(code[:n], valid) == code[n] else _BAD_CHECK


def identify(formats, kind, tag):
    """Match a raw tag against a list of TagFormat. Returns (result, format or None, key) where
    result is OK / BAD_SYNTAX / BAD_CHECK (best over all formats, in list order) and key is the
    tag's identity text: the matching format's code, else the canonical or fallback text."""
    text = canonical(kind, tag)
    if text is None:
        return _BAD_SYNTAX, None, "?" + _hex(tag[:_MAX_TAG])  # tagshost.fallback_text
    if kind == _KIND_UID and _uid(tag):
        return _BAD_SYNTAX, None, text
    best = _BAD_SYNTAX
    best_fmt = None
    for f in formats:
        r = f.check(kind, text, tag)
        if r == _OK:
            return _OK, f, text if f.uid else f.code(text)
        if r == _BAD_CHECK and best == _BAD_SYNTAX:
            best = _BAD_CHECK
            best_fmt = f
    if best_fmt is not None:
        return best, best_fmt, best_fmt.code(text)
    return best, None, text
