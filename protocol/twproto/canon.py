# Canonical JSON for rule sets: one strict, bounded parser and one canonical writer, identical on
# MicroPython and CPython (MicroPython's json has no sort_keys, no duplicate-key check and accepts
# what CPython refuses, so neither json module is used).
#
# Canonical form (what the rule-set hash covers):
#   - objects: keys sorted by Unicode code point, no whitespace, "key":value separated by ","
#   - strings: UTF-8, escapes only for '"', '\\' and U+0000..U+001F (\b \f \n \r \t, else \u00xx
#     with lower-case hex); everything else written as is
#   - integers only, decimal, |n| <= 2**53 - 1 (floats are refused: the ESP32 has single-precision
#     floats and every quantity in a rule set is an integer: grams, seconds, per-mille)
#   - true, false, null
import hashlib

from twproto.errors import RuleSetError
from twproto.tags import utf8_valid  # noqa: F401  (public here too; defined with the tag code)

__all__ = (
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_INT",
    "loads",
    "dumps",
    "canonical_bytes",
    "ruleset_hash",
    "ruleset_id",
    "utf8_valid",
)

MAX_BYTES = 16384  # a peer may push a rule set over the wire: hard cap, checked before parsing
MAX_DEPTH = 8  # nesting of objects/arrays (the format needs 5)
MAX_INT = (1 << 53) - 1
_MAX_INT_DIGITS = 16

_WS = " \t\n\r"
_DIGITS = "0123456789"
_ESC = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_OUT_ESC = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HEX = "0123456789abcdef"


def _err(code, msg, pos=None):
    if pos is not None:
        msg = "at offset " + str(pos) + ": " + msg
    return RuleSetError(code, msg)


class _Parser:
    # Reads a str by index (an ASCII character costs no allocation on MicroPython, a slice does).
    def __init__(self, s):
        self.s = s
        self.n = len(s)
        self.i = 0

    def peek(self):
        return self.s[self.i] if self.i < self.n else ""

    def ws(self):
        s = self.s
        i = self.i
        n = self.n
        while i < n and s[i] in _WS:
            i += 1
        self.i = i

    def value(self, depth):
        self.ws()
        s = self.s
        i = self.i
        if i >= self.n:
            raise _err("bad_json", "unexpected end of text", i)
        c = s[i]
        if c == "{" or c == "[":
            if depth >= MAX_DEPTH:
                raise _err("too_deep", "nesting deeper than " + str(MAX_DEPTH), i)
            return self.obj(depth + 1) if c == "{" else self.arr(depth + 1)
        if c == '"':
            return self.string()
        if c == "-" or c in _DIGITS:
            return self.number()
        if s.startswith("true", i):
            self.i = i + 4
            return True
        if s.startswith("false", i):
            self.i = i + 5
            return False
        if s.startswith("null", i):
            self.i = i + 4
            return None
        raise _err("bad_json", "unexpected character " + repr(c), i)

    def obj(self, depth):
        self.i += 1
        out = {}
        self.ws()
        if self.peek() == "}":
            self.i += 1
            return out
        while True:
            self.ws()
            at = self.i
            if self.peek() != '"':
                raise _err("bad_json", "expected a string key", at)
            k = self.string()
            if k in out:
                raise _err("bad_json", "duplicate key " + repr(k), at)
            self.ws()
            if self.peek() != ":":
                raise _err("bad_json", "expected ':'", self.i)
            self.i += 1
            out[k] = self.value(depth)
            self.ws()
            c = self.peek()
            self.i += 1
            if c == "}":
                return out
            if c != ",":
                raise _err("bad_json", "expected ',' or '}'", self.i - 1)

    def arr(self, depth):
        self.i += 1
        out = []
        self.ws()
        if self.peek() == "]":
            self.i += 1
            return out
        while True:
            out.append(self.value(depth))
            self.ws()
            c = self.peek()
            self.i += 1
            if c == "]":
                return out
            if c != ",":
                raise _err("bad_json", "expected ',' or ']'", self.i - 1)

    def string(self):
        s = self.s
        n = self.n
        start = i = self.i + 1
        while i < n:  # fast path: no escape
            c = s[i]
            if c == '"':
                self.i = i + 1
                return s[start:i]
            if c == "\\":
                break
            if ord(c) < 0x20:
                raise _err("bad_json", "control character in string", i)
            i += 1
        parts = []
        while True:
            if i >= n:
                raise _err("bad_json", "unterminated string", self.i)
            c = s[i]
            if c == '"':
                break
            if c == "\\":
                parts.append(s[start:i])
                e = s[i + 1] if i + 1 < n else ""
                if e == "u":
                    cp = self.hex4(i + 2)
                    i += 6
                    if 0xD800 <= cp <= 0xDBFF and s.startswith("\\u", i):
                        lo = self.hex4(i + 2)
                        if 0xDC00 <= lo <= 0xDFFF:
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                            i += 6
                    if 0xD800 <= cp <= 0xDFFF:
                        raise _err("bad_json", "lone surrogate in string", i)
                    parts.append(chr(cp))
                elif e in _ESC:
                    parts.append(_ESC[e])
                    i += 2
                else:
                    raise _err("bad_json", "bad escape", i)
                start = i
                continue
            if ord(c) < 0x20:
                raise _err("bad_json", "control character in string", i)
            i += 1
        parts.append(s[start:i])
        self.i = i + 1
        return "".join(parts)

    def hex4(self, i):
        if i + 4 > self.n:
            raise _err("bad_json", "bad \\u escape", i)
        v = 0
        for j in range(i, i + 4):
            d = _HEX.find(self.s[j].lower())
            if d < 0:
                raise _err("bad_json", "bad \\u escape", i)
            v = v * 16 + d
        return v

    def number(self):
        s = self.s
        n = self.n
        i = self.i
        start = i
        neg = s[i] == "-"
        if neg:
            i += 1
        j = i
        v = 0
        while i < n and s[i] in _DIGITS:
            if i - j >= _MAX_INT_DIGITS:
                raise _err("bad_json", "integer too large", start)
            v = v * 10 + ord(s[i]) - 48
            i += 1
        if i == j:
            raise _err("bad_json", "bad number", start)
        if i < n and s[i] in ".eE":
            raise _err("bad_json", "not an integer: floats are not allowed (use integer grams/seconds)", start)
        if s[j] == "0" and i - j > 1:
            raise _err("bad_json", "leading zero in number", start)
        if v > MAX_INT:
            raise _err("bad_json", "integer too large", start)
        self.i = i
        return -v if neg else v


def loads(text):
    """Parse rule-set JSON strictly. `text` is str or bytes (UTF-8). Raises RuleSetError with
    code too_large / too_deep / bad_json. Bounded: size is checked before any other work."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        if len(text) > MAX_BYTES:
            raise _err("too_large", "more than " + str(MAX_BYTES) + " bytes")
        text = bytes(text)
        if not utf8_valid(text):
            raise _err("bad_json", "not valid UTF-8")
        text = text.decode("utf-8")
    elif not isinstance(text, str):
        raise _err("bad_json", "expected text")
    # A str has at most 4 UTF-8 bytes per character: cheap pre-check, then the exact one.
    if len(text) > MAX_BYTES or len(text.encode("utf-8")) > MAX_BYTES:
        raise _err("too_large", "more than " + str(MAX_BYTES) + " bytes")
    if text[:1] == "\ufeff":
        text = text[1:]
    p = _Parser(text)
    v = p.value(0)
    p.ws()
    if p.i != len(text):
        raise _err("bad_json", "text after the JSON value", p.i)
    return v


def _dump_str(s, out):
    out.append('"')
    start = 0
    for i in range(len(s)):
        c = s[i]
        if c in _OUT_ESC or ord(c) < 0x20:
            out.append(s[start:i])
            e = _OUT_ESC.get(c)
            if e is None:
                o = ord(c)
                e = "\\u00" + _HEX[o >> 4] + _HEX[o & 15]
            out.append(e)
            start = i + 1
    out.append(s[start:] if start else s)  # no copy when nothing was escaped
    out.append('"')


def _where(stack):
    p = ""
    for k in stack:
        p += "[" + str(k) + "]" if isinstance(k, int) else ("." + k if p else k)
    return p or "(document)"


def _dump(v, out, stack):
    # `stack` holds the keys/indices down to `v`; the path string is built only for an error.
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        if v > MAX_INT or v < -MAX_INT:
            raise RuleSetError("bad_json", _where(stack) + ": integer too large", _where(stack))
        out.append(str(v))
    elif isinstance(v, str):
        _dump_str(v, out)
    elif isinstance(v, list):
        if len(stack) >= MAX_DEPTH:
            raise RuleSetError("too_deep", _where(stack) + ": nesting deeper than " + str(MAX_DEPTH), _where(stack))
        out.append("[")
        for n in range(len(v)):
            if n:
                out.append(",")
            stack.append(n)
            _dump(v[n], out, stack)
            stack.pop()
        out.append("]")
    elif isinstance(v, dict):
        if len(stack) >= MAX_DEPTH:
            raise RuleSetError("too_deep", _where(stack) + ": nesting deeper than " + str(MAX_DEPTH), _where(stack))
        keys = list(v.keys())
        for k in keys:
            if not isinstance(k, str):
                raise RuleSetError("bad_json", _where(stack) + ": object key " + repr(k) + " is not a string", _where(stack))
        keys.sort()
        out.append("{")
        first = True
        for k in keys:
            if not first:
                out.append(",")
            first = False
            _dump_str(k, out)
            out.append(":")
            stack.append(k)
            _dump(v[k], out, stack)
            stack.pop()
        out.append("}")
    elif isinstance(v, float):
        raise RuleSetError("bad_json", _where(stack) + ": floats are not allowed (use integers)", _where(stack))
    else:
        raise RuleSetError("bad_json", _where(stack) + ": not a JSON value: " + type(v).__name__, _where(stack))


def dumps(v):
    """Canonical JSON text of `v` (dict/list/str/int/bool/None only). Raises RuleSetError."""
    out = []
    _dump(v, out, [])
    return "".join(out)


def canonical_bytes(v):
    return dumps(v).encode("utf-8")


def ruleset_hash(v):
    """SHA-256 (32 bytes) of the canonical UTF-8 JSON of the parsed rule-set document."""
    return hashlib.sha256(canonical_bytes(v)).digest()


def ruleset_id(h):
    """The u32 a READING carries: the first 4 bytes of the hash as a big-endian integer."""
    return (h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]
