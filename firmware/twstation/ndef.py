# NDEF on NFC Forum Type 2 tags (NTAG21x): walk the TLVs of the data area, parse the first
# record, recognise the well-known Text ("T") and URI ("U") records. Pure code, bounded by the
# caller's buffer: every length read from the tag is checked against it before use.
from micropython import const

from twproto.tags import utf8_valid

# Record kinds (parse_record) and find_message statuses. Private constants: inlined by the
# compiler, no RAM. twstation.mfrc522 keeps copies of the kinds and the protocol uses the same
# numbers for TAG_NDEF_TEXT / TAG_NDEF_URI (tests/firmware/test_mfrc522.py checks both).
_KIND_NONE = const(0)  # no NDEF message (not formatted, empty, or not a Type 2 tag)
_KIND_TEXT = const(1)
_KIND_URI = const(2)
_KIND_OTHER = const(3)  # a well-formed record of another type (MIME, external, UTF-16 text...)
_KIND_BAD = const(4)  # malformed or too long for the station's buffer

_FOUND = const(0)
_ABSENT = const(1)
_NEED = const(2)  # the message continues past the bytes read so far
_BAD = const(3)

_TLV_NULL = const(0x00)
_TLV_NDEF = const(0x03)
_TLV_END = const(0xFE)

# NFC Forum URI record type definition: prefix codes 0x00..0x23, one string (one object instead
# of 36), each prefix followed by a space; code 0 is the empty prefix before the first space.
_URI_CODES = const(36)
_URIS = const(
    b" http://www. https://www. http:// https:// tel: mailto: ftp://anonymous:anonymous@"
    b" ftp://ftp. ftps:// sftp:// smb:// nfs:// ftp:// dav:// news: telnet:// imap: rtsp:// urn:"
    b" pop: sip: sips: tftp: btspp:// btl2cap:// btgoep:// tcpobex:// irdaobex:// file://"
    b" urn:epc:id: urn:epc:tag: urn:epc:pat: urn:epc:raw: urn:epc: urn:nfc: "
)


def find_message(mem, start, end):
    """Find the NDEF message TLV in mem[start:end]. Returns (status, offset, length).

    status 0 (found): the message is mem[offset:offset+length]. 2 (need): `offset + length` bytes
    would hold it (read more and call again). 1 (absent): no NDEF TLV before the terminator.
    """
    i = start
    while i < end:
        t = mem[i]
        if t == _TLV_NULL:
            i += 1
            continue
        if t == _TLV_END:
            return _ABSENT, 0, 0
        if i + 1 >= end:
            return _NEED, i, 4
        n = mem[i + 1]
        hdr = 2
        if n == 0xFF:
            if i + 3 >= end:
                return _NEED, i, 4
            n = (mem[i + 2] << 8) | mem[i + 3]
            hdr = 4
        if t == _TLV_NDEF:
            if n == 0:
                return _ABSENT, 0, 0
            if i + hdr + n > end:
                return _NEED, i + hdr, n
            return _FOUND, i + hdr, n
        i += hdr + n  # lock control, memory control, proprietary: skip
    return _NEED, i, 4


def parse_record(mem, off, n):
    """Parse the first record of the message mem[off:off+n].

    Returns (kind, value_offset, value_length, uri_prefix_code). For a Text record the value is
    the UTF-8 text without the language code; for a URI record it is the URI after the prefix code.
    """
    end = off + n
    if n < 3:
        return _KIND_BAD, 0, 0, 0
    flags = mem[off]
    tnf = flags & 0x07
    type_len = mem[off + 1]
    i = off + 2
    if flags & 0x10:  # SR: one-byte payload length
        plen = mem[i]
        i += 1
    else:
        if i + 4 > end:
            return _KIND_BAD, 0, 0, 0
        plen = (mem[i] << 24) | (mem[i + 1] << 16) | (mem[i + 2] << 8) | mem[i + 3]
        i += 4
    id_len = 0
    if flags & 0x08:  # IL
        if i >= end:
            return _KIND_BAD, 0, 0, 0
        id_len = mem[i]
        i += 1
    t = i
    p = t + type_len + id_len
    if p + plen > end or not flags & 0x80:  # past the message, or not the first record (MB)
        return _KIND_BAD, 0, 0, 0
    if flags & 0x20 or tnf != 1 or type_len != 1:  # chunked, or not an NFC well-known type
        return _KIND_OTHER, p, plen, 0
    rtype = mem[t]
    if rtype != 0x54 and rtype != 0x55:  # neither "T" nor "U"
        return _KIND_OTHER, p, plen, 0
    if plen < 1:
        return _KIND_BAD, 0, 0, 0
    status = mem[p]  # Text: status byte (UTF-16 flag, language code length); URI: prefix code
    v = p + 1
    if rtype == 0x54:
        if status & 0x80:  # UTF-16 text: not a tag ID this station accepts
            return _KIND_OTHER, p, plen, 0
        v += status & 0x3F  # the value follows the language code
        kind = _KIND_TEXT
        status = 0
    elif status >= _URI_CODES:
        return _KIND_BAD, 0, 0, 0
    else:
        kind = _KIND_URI
    vn = p + plen - v
    if vn < 0:  # the language code is longer than the payload
        return _KIND_BAD, 0, 0, 0
    # The value must be well-formed UTF-8 (twproto.tags' strict check: one validator for the
    # station) without control characters. The slice is one allocation per tag read.
    b = mem[v : v + vn]
    if not utf8_valid(b):
        return _KIND_BAD, 0, 0, 0
    for c in b:
        if c < 0x20 or c == 0x7F:
            return _KIND_BAD, 0, 0, 0
    return kind, v, vn, status


def value(mem, kind, off, n, prefix_code):
    """The record's value as bytes: the text, or the URI with its prefix expanded."""
    if kind == _KIND_TEXT:
        return bytes(mem[off : off + n])
    if kind == _KIND_URI:
        s = _URIS
        i = 0
        for _ in range(prefix_code):
            i = s.find(b" ", i) + 1
        return s[i : s.find(b" ", i)] + bytes(mem[off : off + n])
    return None
