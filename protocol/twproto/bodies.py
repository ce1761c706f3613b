# Message bodies (SPEC.md section 5), the station's half: the layout table of every body (struct
# formats) and allocation-free packers/unpackers for what the station sends and receives. Kept
# small on purpose: this module is resident in the station's heap.
#
# The protocol's PUBLIC numbers (EV_*, OP_*, RS_*, NACK_*, SF_*, TAG_*, ...), the field names and
# the host-only paths (unpack LIVE, pack ACK, chain_link, ...) live in twproto.messages (host:
# bridge, tools, tests), which builds its message classes from the layouts and functions here,
# so the two sides cannot drift. READINGs are unpacked by twproto.readingbody (the host, and the
# station once per boot: not resident). Host code may still write `bodies.EV_BOOT`: the module
# __getattr__ at the end forwards to twproto.messages (never reached on the station). The
# numbers this module needs are private const() copies below: the compiler inlines them, so
# they cost no dict entry and no interned name; tests/protocol/test_bodies_numbers.py checks
# each against the public one.
import struct

from twproto.errors import MessageError
from twproto.port import const

# Frame types (twproto.frame) and the body offset / size.
_BODY = const(3)
_MAX_BODY = const(232)
_T_HELLO = const(0x01)
_T_WELCOME = const(0x02)
_T_NACK = const(0x12)
_T_STATUS = const(0x20)
_T_RESULT = const(0x31)

_REJECT = const(2)  # verdicts: ACCEPT 0, WARN 1, REJECT 2
_F_TIME_SYNCED = const(0x10)  # READING flags (bits 0-2: the division code)
_F_STATUS_MASK = const(0xE8)  # the bits a Reading's .flags keeps
_F_STABLE = const(0x08)
_F_OUT_OF_RANGE = const(0x20)
_TAG_BARCODE = const(4)  # the highest tag kind
_TAG_MAX = const(64)
_SEV_CRITICAL = const(3)
_ACK_MAX = const(32)
_NET_MIN = const(-0x800000)
_NET_MAX = const(0x7FFFFF)

# Divisions e: READING/LIVE flags bits 0-2 index this tuple.
E_CODES = (1, 2, 5, 10, 20, 50, 100, 200)

# The fixed-layout bodies: type -> struct format. RESULT's fixed part is followed by its detail
# bytes (0..225: the rest of the body), the one trailing byte string of these types: its bounds
# (name, min, max) are written where they are checked, pack_fixed and unpack_fixed (a tuple per
# type would cost the station's heap ~100 bytes more). The field names (the host's message
# classes and their error texts need them, the station never reads them) are in
# twproto.messages.FIELDS, keyed by the same types, and messages.LAYOUTS has (format, names,
# tail) per type; the HELLO checks beyond the struct ranges too (the station packs HELLO from
# values it bounds itself). READING, LIVE, ACK and COMMAND have layouts of their own below;
# EVENT's (the station packs it with pack_event, never unpacks it) is in twproto.messages.
LAYOUTS = {
    _T_HELLO: "<IBBBBBIHIIHBHIIB8sI",
    _T_WELCOME: "<IHBIBB",  # time ms proto ruleset_id flags window
    _T_NACK: "<BIB",
    _T_STATUS: "<iiiHBBHHHHIIHH",
    _T_RESULT: "<HBi",  # then detail
}

# The two COMMAND ops unpack_command checks beyond the struct ranges (private copies of
# twproto.messages OP_*).
_OP_MAINTENANCE = const(13)
_OP_SET_TIME = const(15)
_DATA_MAX = const(229)  # MAX_BODY - 3 (cmd_id u16, op u8): the most a COMMAND's arguments take

# COMMAND arguments (SPEC 9), one entry per op 1..17 separated by "/": the struct codes of the
# fixed arguments (little-endian), then their names. A last name starting with "*" (0 or more
# bytes) or "+" (1 or more) is a byte string taking the rest of the body, at most what is left
# of _DATA_MAX after the fixed arguments. One string rather than a dict of tuples: ~1 KB less of
# the station's heap. cmd_layout(op) reads an entry; twproto.messages.CMD_ARGS (the host's
# table, reached as bodies.CMD_ARGS too) is built from it, so the two cannot drift.
_CMDS = ("/"  # 1 TARE
         "/"  # 2 ZERO
         "H tare_g/"  # 3 TARE_PRESET
         "/"  # 4 CAL_ZERO
         "I mass_g/"  # 5 CAL_SPAN
         "I mass_g/"  # 6 CAL_CHECK
         "HHI cal_id operator time/"  # 7 CAL_COMMIT
         "B key *value/"  # 8 SET_CONFIG
         "I32s length sha256/"  # 9 RULESET_BEGIN
         "I offset +data/"  # 10 RULESET_CHUNK
         "/"  # 11 RULESET_END
         "/"  # 12 REBOOT
         "B on/"  # 13 MAINTENANCE
         "H operator/"  # 14 SET_OPERATOR
         "IH time ms/"  # 15 SET_TIME
         "/"  # 16 SELF_TEST
         "")  # 17 GET_STATUS


def cmd_layout(op):
    """(struct format, argument names, trailing bytes (name, min, max) or None) of COMMAND op,
    or None for an op this version does not know. Allocates: commands are rare."""
    if op < 1 or op > 17:
        return None
    w = _CMDS.split("/")[op - 1].split()
    fmt = "<" + w.pop(0) if w else "<"
    tail = None
    if w and w[-1][0] in "*+":
        t = w.pop()
        tail = (t[1:], 1 if t[0] == "+" else 0, _DATA_MAX - struct.calcsize(fmt))
    return fmt, tuple(w), tail


def check_range(name, v, a, b):
    """v must be an int with a <= v <= b, else MessageError bad_field `name`."""
    # bool is an int subclass on CPython; MicroPython struct would silently truncate, so check.
    if not isinstance(v, int) or v < a or v > b:
        raise MessageError("bad_field", name)


def check_size(n, size, t):
    """A body of n bytes: `size` fixed bytes, then a tail t = (name, min, max) or nothing."""
    if n < size:
        raise MessageError("truncated")
    if t is None:
        if n != size:
            raise MessageError("bad_length")
    elif n - size < t[1] or n - size > t[2]:
        raise MessageError("bad_length", t[0])


def pack_fixed(buf, off, t, values, data=b""):
    """Pack the fixed body of type t (LAYOUTS) from `values` (layout order) at buf[off:], then
    its trailing bytes `data`; range-checks every field (a bad one: MessageError bad_field
    "field N", N its index in the layout; twproto.messages checks first with the field names).
    Returns the body length."""
    fmt = LAYOUTS[t]
    tl = ("detail", 0, _MAX_BODY - 7) if t == _T_RESULT else None
    i = n = 0  # i: the field's index; n: the length of a byte string field ("8s")
    for p in range(1, len(fmt)):  # one struct code per field
        c = fmt[p]
        k = "BHIbhi".find(c)  # B H I unsigned, b h i signed (the codes LAYOUTS uses)
        if k < 0:  # a digit of a byte string's length, or its "s"
            if c != "s":
                n = n * 10 + int(c)
                continue
            v = values[i]
            ok = not (isinstance(v, int) or isinstance(v, str)) and len(v) == n
            n = 0
        else:
            v = values[i]
            bits = 8 << k % 3
            a = -(1 << bits - 1) if k > 2 else 0
            ok = isinstance(v, int) and a <= v < a + (1 << bits)
        if not ok:
            raise MessageError("bad_field", "field %d" % i)
        i += 1
    struct.pack_into(fmt, buf, off, *values)
    n = struct.calcsize(fmt)
    if tl is not None:  # the trailing byte string, bounded by tl = (name, min, max)
        if isinstance(data, int) or isinstance(data, str) or not tl[1] <= len(data) <= tl[2]:
            raise MessageError("bad_field", tl[0])
        off += n
        for i in range(len(data)):  # an index loop: MicroPython runs it without allocating
            buf[off + i] = data[i]
        n += len(data)
    return n


def unpack_fixed(t, buf):
    """The values (a tuple in layout order, then the trailing bytes if the type has a tail) of a
    fixed body of type t (`buf` a memoryview of it); strict length and field checks
    (MessageError; the HELLO checks beyond the struct ranges are the host's, in messages)."""
    fmt = LAYOUTS[t]
    tl = ("detail", 0, _MAX_BODY - 7) if t == _T_RESULT else None
    size = struct.calcsize(fmt)
    n = len(buf)
    check_size(n, size, tl)
    v = struct.unpack_from(fmt, buf, 0)
    if t == _T_WELCOME and v[1] > 999:
        raise MessageError("bad_field", "ms")
    if tl is not None:
        v = v + (bytes(buf[size:n]),)
    return v


def pack_event(buf, off, code, severity, detail, uptime_ms):
    """EVENT body at buf[off:] (10 bytes); allocation-free."""
    check_range("code", code, 0, 0xFF)
    check_range("severity", severity, 0, _SEV_CRITICAL)
    check_range("detail", detail, -0x80000000, 0x7FFFFFFF)
    check_range("uptime_ms", uptime_ms, 0, 0xFFFFFFFF)
    struct.pack_into("<BBiI", buf, off, code, severity, detail, uptime_ms)
    return 10


def pack_live(buf, off, net_g, tare_g, flags, tag_state):
    """LIVE body at buf[off:] (7 bytes: net i24, tare u16, flags, tag state); allocation-free."""
    net = net_g
    check_range("net_g", net, _NET_MIN, _NET_MAX)
    check_range("tare_g", tare_g, 0, 0xFFFF)
    check_range("flags", flags, 0, 0xFF)
    check_range("tag_state", tag_state, 0, 0xFF)
    struct.pack_into("<HbHBB", buf, off, net & 0xFFFF, net >> 16, tare_g, flags, tag_state)
    return 7


def unpack_ack(buf):
    """The (seq, verdict byte) entries of an ACK body (`buf` a memoryview of it), in order."""
    mv = buf
    n = len(mv)
    if n < 1:
        raise MessageError("truncated")
    count = mv[0]
    if count > _ACK_MAX:
        raise MessageError("bad_count")
    if n < 1 + 5 * count:
        raise MessageError("truncated")
    if n != 1 + 5 * count:
        raise MessageError("bad_length")
    entries = []
    for i in range(count):
        seq, v = struct.unpack_from("<IB", mv, 1 + 5 * i)
        if seq == 0:
            raise MessageError("bad_field", "seq")
        if v & 3 > _REJECT:
            raise MessageError("bad_field", "verdict")
        entries.append((seq, v))
    return entries


def unpack_command(buf):
    """(cmd_id, op, args dict) of a COMMAND body (`buf` a memoryview of it). An op this version
    does not know decodes with args {'data': rest of body}, so the station can answer RESULT
    unsupported for that cmd_id."""
    mv = buf
    n = len(mv)
    if n < 3:
        raise MessageError("truncated")
    cmd_id, op = struct.unpack_from("<HB", mv, 0)
    spec = cmd_layout(op)
    args = {}  # type: dict
    if spec is None:
        args["data"] = bytes(mv[3:n])
        return cmd_id, op, args
    fmt, names, tail = spec
    size = 3 + struct.calcsize(fmt)
    check_size(n, size, tail)
    vals = struct.unpack_from(fmt, mv, 3)
    for i in range(len(names)):
        args[names[i]] = vals[i]
    if tail is not None:
        args[tail[0]] = bytes(mv[size:n])
    # the checks beyond the struct ranges (messages.check_args makes the same on pack)
    if op == _OP_MAINTENANCE and args["on"] > 1:
        raise MessageError("bad_field", "on")
    if op == _OP_SET_TIME and args["ms"] > 999:
        raise MessageError("bad_field", "ms")
    return cmd_id, op, args


# READING: fixed part for a synced (time u32) and an unsynced (boot u16 + uptime u32) reading.
# (twproto.readingbody, which unpacks READINGs, has the same copies: a test checks they agree)
_R_SYNC = const("<IBBBIHbHHHII")
_R_BOOT = const("<IBBBHIHbHHHII")
_R_FIXED_SYNC = const(28)
_R_FIXED_BOOT = const(30)


class Reading:
    """One weighed bag. time is Unix seconds UTC, or None when the station is not time-synced
    (then boot + uptime_ms say when). flags keeps the status bits F_STABLE, F_OUT_OF_RANGE,
    F_ZERO_TRACKED, F_PRESET_TARE; the division and time-synced bits come from e_g and time.
    ruleset_id and prev are u32 (first 4 bytes of the hash / previous MAC, little-endian).
    mac is set by decode_frame (the MAC of the frame it came in)."""

    def __init__(self, seq=0, flags=0, step=0, tag_kind=0, verdict=0, reason=0, time=None,
                 boot=0, uptime_ms=0, net_g=0, tare_g=0, e_g=1, operator=0, cal_id=0,
                 ruleset_id=0, prev=0, tag=b"", mac=None):
        self.seq = seq
        self.flags = flags
        self.step = step
        self.tag_kind = tag_kind
        self.verdict = verdict
        self.reason = reason
        self.time = time
        self.boot = boot
        self.uptime_ms = uptime_ms
        self.net_g = net_g
        self.tare_g = tare_g
        self.e_g = e_g
        self.operator = operator
        self.cal_id = cal_id
        self.ruleset_id = ruleset_id
        self.prev = prev
        self.tag = tag
        self.mac = mac

    @property
    def stable(self):
        return bool(self.flags & _F_STABLE)

    @property
    def out_of_range(self):
        return bool(self.flags & _F_OUT_OF_RANGE)


def pack_reading(buf, off, r):
    """Write r's READING body at buf[off:]; return its length. Allocation-free."""
    tag = r.tag
    if isinstance(tag, int) or isinstance(tag, str):
        raise MessageError("bad_field", "tag")
    nt = len(tag)
    if nt < 1:
        raise MessageError("tag_empty", "tag")
    if nt > _TAG_MAX:
        raise MessageError("tag_too_long", "tag")
    check_range("seq", r.seq, 1, 0xFFFFFFFF)
    check_range("flags", r.flags, 0, 0xFF)
    check_range("step", r.step, 0, 15)
    check_range("tag_kind", r.tag_kind, 0, _TAG_BARCODE)
    check_range("verdict", r.verdict, 0, _REJECT)
    check_range("reason", r.reason, 0, 63)
    net = r.net_g
    check_range("net_g", net, _NET_MIN, _NET_MAX)
    check_range("tare_g", r.tare_g, 0, 0xFFFF)
    check_range("operator", r.operator, 0, 0xFFFF)
    check_range("cal_id", r.cal_id, 0, 0xFFFF)
    check_range("ruleset_id", r.ruleset_id, 0, 0xFFFFFFFF)
    check_range("prev", r.prev, 0, 0xFFFFFFFF)
    flags = r.flags & _F_STATUS_MASK
    e = 0
    while E_CODES[e] != r.e_g:  # the division's code (bits 0-2)
        e += 1
        if e == 8:
            raise MessageError("bad_field", "e_g")
    flags |= e
    sk = (r.step << 4) | r.tag_kind
    v = r.verdict | (r.reason << 2)
    if r.time is not None:
        check_range("time", r.time, 0, 0xFFFFFFFF)
        struct.pack_into(_R_SYNC, buf, off, r.seq, flags | _F_TIME_SYNCED, sk, v, r.time,
                         net & 0xFFFF, net >> 16, r.tare_g, r.operator, r.cal_id,
                         r.ruleset_id, r.prev)
        n = _R_FIXED_SYNC
    else:
        check_range("boot", r.boot, 0, 0xFFFF)
        check_range("uptime_ms", r.uptime_ms, 0, 0xFFFFFFFF)
        struct.pack_into(_R_BOOT, buf, off, r.seq, flags, sk, v, r.boot, r.uptime_ms,
                         net & 0xFFFF, net >> 16, r.tare_g, r.operator, r.cal_id,
                         r.ruleset_id, r.prev)
        n = _R_FIXED_BOOT
    off += n
    for i in range(nt):  # an index loop: no allocation (a slice would)
        buf[off + i] = tag[i]
    return n + nt


def __getattr__(name):
    # Host only: the public numbers and host-side helpers moved to twproto.messages.
    if name[:2] == "__":  # CPython's `from twproto.bodies import x` probes __path__: not ours
        raise AttributeError(name)
    from twproto import messages

    return getattr(messages, name)
