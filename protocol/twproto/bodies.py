# Message bodies (SPEC.md section 5), the station's half: the protocol's numbers, the ONE layout
# table of every body (struct format + field names), and allocation-free packers/unpackers for
# what the station sends and receives. twproto.messages builds the host's message classes
# (keyword construction, as_dict/from_dict, ...) from the same layouts and functions, so the two
# sides cannot drift. Kept small on purpose: this module is resident in the station's heap.
import struct

from twproto.errors import MessageError
from twproto.frame import (
    BODY, MAX_BODY, T_EVENT, T_HELLO, T_NACK, T_RESULT, T_STATUS, T_WELCOME,
)
from twproto.port import const

# Verdicts (READING.verdict bits 0-1, ACK entries): the station's or the bridge's judgement.
ACCEPT = const(0)
WARN = const(1)
REJECT = const(2)

# Divisions e: READING/LIVE flags bits 0-2 index this tuple.
E_CODES = (1, 2, 5, 10, 20, 50, 100, 200)

# READING flag bits (bits 0-2 are the division code, bit 4 is derived from time).
F_E_MASK = const(0x07)
F_STABLE = const(0x08)
F_TIME_SYNCED = const(0x10)
F_OUT_OF_RANGE = const(0x20)
F_ZERO_TRACKED = const(0x40)
F_PRESET_TARE = const(0x80)
F_STATUS_MASK = const(0xE8)  # the bits a Reading's .flags keeps

# Tag kinds (READING step_kind low nibble).
TAG_RFID_UID = const(0)
TAG_NDEF_TEXT = const(1)
TAG_NDEF_URI = const(2)
TAG_QR_TEXT = const(3)
TAG_BARCODE = const(4)
TAG_MAX = const(64)

# Station steps/roles (READING step_kind high nibble; 0 = not assigned, 6..15 reserved).
STEP_NONE = const(0)
STEP_MINE_TAGGING = const(1)  # tagging / commissioning at the mine site
STEP_DEPOT_RECEIVING = const(2)
STEP_DEPOT_DISPATCH = const(3)
STEP_PROCESSOR_RECEIVING = const(4)
STEP_EXPORT = const(5)

# Station state flags (HELLO.flags, STATUS.flags).
SF_TIME_SYNCED = const(0x01)
SF_MAINTENANCE = const(0x02)
SF_ZERO_OUT_OF_RANGE = const(0x04)
SF_UNCALIBRATED = const(0x08)
SF_JOURNAL_FULL = const(0x10)
SF_NO_RULESET = const(0x20)
SF_SCALE_FAULT = const(0x40)
SF_READER_FAULT = const(0x80)

# WELCOME flags.
WF_TIME_VALID = const(0x01)
WF_RULESET_UPDATE = const(0x02)
WF_CONFIG_UPDATE = const(0x04)

# LIVE tag state.
TS_NONE = const(0)
TS_PRESENT = const(1)
TS_READ = const(2)
TS_ERROR = const(3)
TS_MULTIPLE = const(4)

# NACK reasons.
NACK_MALFORMED = const(1)
NACK_BAD_MAC = const(2)
NACK_UNKNOWN_DEVICE = const(3)
NACK_UNSUPPORTED_VERSION = const(4)
NACK_STORAGE_UNAVAILABLE = const(5)
NACK_CONFLICT = const(6)
NACK_CHAIN_BREAK = const(7)
NACK_BUSY = const(8)
NACK_STALE_COMMAND = const(9)
NACK_NO_SESSION = const(10)
NACK_WINDOW_EXCEEDED = const(11)
NACK_UNEXPECTED = const(12)

# EVENT codes and severities.
EV_HX711_NOT_READY = const(1)
EV_OVERLOAD = const(2)
EV_UNDERLOAD = const(3)
EV_ZERO_OUT_OF_RANGE = const(4)
EV_READER_FAULT = const(5)
EV_SCANNER_FAULT = const(6)
EV_SCANNER_GARBAGE = const(7)
EV_MULTIPLE_TAGS = const(8)
EV_JOURNAL_NEARLY_FULL = const(9)
EV_JOURNAL_FULL = const(10)
EV_JOURNAL_RECOVERED = const(11)
EV_CLOCK_NOT_SYNCED = const(12)
EV_BOOT = const(13)
EV_CALIBRATION_CHANGED = const(14)
EV_TAMPER = const(15)
EV_CONFIG_CHANGED = const(16)
EV_RULESET_CHANGED = const(17)
EV_WATCHDOG_RESET = const(18)
EV_MOTION_TIMEOUT = const(19)
SEV_INFO = const(0)
SEV_WARNING = const(1)
SEV_ERROR = const(2)
SEV_CRITICAL = const(3)

# COMMAND ops.
OP_TARE = const(1)
OP_ZERO = const(2)
OP_TARE_PRESET = const(3)
OP_CAL_ZERO = const(4)
OP_CAL_SPAN = const(5)
OP_CAL_CHECK = const(6)
OP_CAL_COMMIT = const(7)
OP_SET_CONFIG = const(8)
OP_RULESET_BEGIN = const(9)
OP_RULESET_CHUNK = const(10)
OP_RULESET_END = const(11)
OP_REBOOT = const(12)
OP_MAINTENANCE = const(13)
OP_SET_OPERATOR = const(14)
OP_SET_TIME = const(15)
OP_SELF_TEST = const(16)
OP_GET_STATUS = const(17)

# RESULT statuses.
RS_OK = const(0)
RS_REFUSED_MOTION = const(1)
RS_BAD_ARGS = const(2)
RS_UNSUPPORTED = const(3)
RS_BUSY = const(4)
RS_FAILED = const(5)
RS_STALE_COMMAND = const(6)
RS_NOT_IN_MAINTENANCE = const(7)
RS_BAD_HASH = const(8)
RS_OUT_OF_RANGE = const(9)
RS_NO_SPACE = const(10)

ACK_MAX = const(32)
_NET_MIN = const(-0x800000)
_NET_MAX = const(0x7FFFFF)

# The fixed-layout bodies: type -> (struct format, field names separated by spaces, trailing byte
# string (name, min, max) or None). READING, LIVE, ACK and COMMAND have layouts of their own below.
LAYOUTS = {
    T_HELLO: ("<IBBBBBIHIIHBHIIB8sI",
              "device_id fw_major fw_minor fw_patch proto_min proto_max ruleset_id "
              "ruleset_version config_hash last_seq backlog journal_pct boot boot_first_seq "
              "uptime_ms flags nonce chain_head", None),
    T_WELCOME: ("<IHBIBB", "time ms proto ruleset_id flags window", None),
    T_NACK: ("<BIB", "ref_type ref_seq reason", None),
    T_STATUS: ("<iiiHBBHHHHIIHH",
               "raw zero_raw counts_per_kg noise_rms rate_hz flags hx711_timeouts spikes "
               "journal_used journal_capacity free_heap uptime_ms boot cal_id", None),
    T_EVENT: ("<BBiI", "code severity detail uptime_ms", None),
    T_RESULT: ("<HBi", "cmd_id status value", ("detail", 0, MAX_BODY - 7)),
}

# COMMAND argument layouts: op -> (struct format, names, trailing bytes (name, min, max) or None).
_DATA_MAX = const(229)  # MAX_BODY - 3 (cmd_id u16, op u8)
CMD_ARGS = {
    OP_TARE: ("<", (), None),
    OP_ZERO: ("<", (), None),
    OP_TARE_PRESET: ("<H", ("tare_g",), None),
    OP_CAL_ZERO: ("<", (), None),
    OP_CAL_SPAN: ("<I", ("mass_g",), None),
    OP_CAL_CHECK: ("<I", ("mass_g",), None),
    OP_CAL_COMMIT: ("<HHI", ("cal_id", "operator", "time"), None),
    OP_SET_CONFIG: ("<B", ("key",), ("value", 0, _DATA_MAX - 1)),
    OP_RULESET_BEGIN: ("<I32s", ("length", "sha256"), None),
    OP_RULESET_CHUNK: ("<I", ("offset",), ("data", 1, _DATA_MAX - 4)),
    OP_RULESET_END: ("<", (), None),
    OP_REBOOT: ("<", (), None),
    OP_MAINTENANCE: ("<B", ("on",), None),
    OP_SET_OPERATOR: ("<H", ("operator",), None),
    OP_SET_TIME: ("<IH", ("time", "ms"), None),
    OP_SELF_TEST: ("<", (), None),
    OP_GET_STATUS: ("<", (), None),
}
CMD_DATA = ("data", 0, _DATA_MAX)  # the tail of an op this version does not know


def struct_range(code):
    """(min, max) of an integer struct code (B H I b h i)."""
    k = "BHIbhi".find(code)
    if k < 0:
        raise MessageError("bad_field", code)
    bits = (8, 16, 32)[k % 3]
    if k < 3:
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def check_range(name, v, lo, hi):
    # bool is an int subclass on CPython; MicroPython struct would silently truncate, so check.
    if not isinstance(v, int) or v < lo or v > hi:
        raise MessageError("bad_field", name)


def bytes_len(name, v, lo, hi, short="bad_field", long="bad_field"):
    if isinstance(v, int) or isinstance(v, str):
        raise MessageError("bad_field", name)
    n = len(v)
    if n < lo:
        raise MessageError(short, name)
    if n > hi:
        raise MessageError(long, name)
    return n


def check_size(n, size, tail):
    """A body of n bytes: `size` fixed bytes, then a tail (name, min, max) or nothing."""
    if n < size:
        raise MessageError("truncated")
    if tail is None:
        if n != size:
            raise MessageError("bad_length")
    elif n - size < tail[1] or n - size > tail[2]:
        raise MessageError("bad_length", tail[0])


def _copy(buf, off, data, n):
    # A plain index loop: MicroPython compiles it without allocating (a slice would).
    for i in range(n):
        buf[off + i] = data[i]


def pack_tail(buf, off, tail, value):
    """Copy a trailing byte string bounded by tail = (name, min, max); return its length."""
    n = bytes_len(tail[0], value, tail[1], tail[2])
    _copy(buf, off, value, n)
    return n


def check_values(t, v):
    """Semantic checks of a fixed body beyond its struct ranges, on pack and unpack alike;
    `v` holds the values in layout order."""
    if t == T_HELLO:
        if v[4] > v[5]:
            raise MessageError("bad_field", "proto_min")
        if v[11] > 100:
            raise MessageError("bad_field", "journal_pct")
    elif t == T_WELCOME:
        if v[1] > 999:
            raise MessageError("bad_field", "ms")
    elif t == T_EVENT:
        if v[1] > SEV_CRITICAL:
            raise MessageError("bad_field", "severity")


def pack_fixed(buf, off, t, values, tail=b""):
    """Pack the fixed body of type t (LAYOUTS) from `values` (layout order) at buf[off:], then
    its trailing bytes; range-checks every field. Returns the body length."""
    fmt, spaced, tl = LAYOUTS[t]
    names = spaced.split()
    i = 0
    p = 1
    while p < len(fmt):  # one struct code per field; "8s" / "32s" are fixed byte strings
        q = p
        while fmt[q] in "0123456789":
            q += 1
        v = values[i]
        if fmt[q] == "s":
            n = int(fmt[p:q])
            bytes_len(names[i], v, n, n)
        else:
            lo, hi = struct_range(fmt[q])
            check_range(names[i], v, lo, hi)
        i += 1
        p = q + 1
    check_values(t, values)
    struct.pack_into(fmt, buf, off, *values)
    n = struct.calcsize(fmt)
    if tl is not None:
        n += pack_tail(buf, off + n, tl, tail)
    return n


def unpack_fixed(t, mv):
    """The values (a tuple in layout order, then the trailing bytes if the type has a tail) of a
    fixed body of type t; strict length and field checks (MessageError)."""
    fmt, _, tl = LAYOUTS[t]
    size = struct.calcsize(fmt)
    n = len(mv)
    check_size(n, size, tl)
    v = struct.unpack_from(fmt, mv, 0)
    check_values(t, v)
    if tl is not None:
        v = v + (bytes(mv[size:n]),)
    return v


def pack_event(buf, off, code, severity, detail, uptime_ms):
    """EVENT body at buf[off:] (10 bytes); allocation-free."""
    check_range("code", code, 0, 0xFF)
    check_range("severity", severity, 0, SEV_CRITICAL)
    check_range("detail", detail, -0x80000000, 0x7FFFFFFF)
    check_range("uptime_ms", uptime_ms, 0, 0xFFFFFFFF)
    struct.pack_into("<BBiI", buf, off, code, severity, detail, uptime_ms)
    return 10


def pack_live(buf, off, net, tare_g, flags, tag_state):
    """LIVE body at buf[off:] (7 bytes: net i24, tare u16, flags, tag state); allocation-free."""
    check_range("net_g", net, _NET_MIN, _NET_MAX)
    check_range("tare_g", tare_g, 0, 0xFFFF)
    check_range("flags", flags, 0, 0xFF)
    check_range("tag_state", tag_state, 0, 0xFF)
    struct.pack_into("<HbHBB", buf, off, net & 0xFFFF, net >> 16, tare_g, flags, tag_state)
    return 7


def unpack_live(mv):
    """(net_g, tare_g, flags, tag_state) of a LIVE body."""
    check_size(len(mv), 7, None)
    lo, hi, tare, flags, ts = struct.unpack_from("<HbHBB", mv, 0)
    return (hi << 16) | lo, tare, flags, ts


def check_verdict(v):
    check_range("verdict", v, 0, 0xFF)
    if v & 3 > REJECT:
        raise MessageError("bad_field", "verdict")


def pack_ack(buf, off, entries):
    n = len(entries)
    if n > ACK_MAX:
        raise MessageError("bad_count")
    buf[off] = n
    p = off + 1
    for seq, v in entries:
        check_range("seq", seq, 1, 0xFFFFFFFF)
        check_verdict(v)
        struct.pack_into("<IB", buf, p, seq, v)
        p += 5
    return p - off


def unpack_ack(mv):
    """The (seq, verdict byte) entries of an ACK body, in order."""
    n = len(mv)
    if n < 1:
        raise MessageError("truncated")
    count = mv[0]
    if count > ACK_MAX:
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
        check_verdict(v)
        entries.append((seq, v))
    return entries


def check_args(op, args):
    if op == OP_MAINTENANCE and args["on"] > 1:
        raise MessageError("bad_field", "on")
    if op == OP_SET_TIME and args["ms"] > 999:
        raise MessageError("bad_field", "ms")


def unpack_command(mv):
    """(cmd_id, op, args dict) of a COMMAND body. An op this version does not know decodes with
    args {'data': rest of body}, so the station can answer RESULT unsupported for that cmd_id."""
    n = len(mv)
    if n < 3:
        raise MessageError("truncated")
    cmd_id, op = struct.unpack_from("<HB", mv, 0)
    spec = CMD_ARGS.get(op)
    args = {}
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
    check_args(op, args)
    return cmd_id, op, args


def chain_link(mac):
    """The `prev` value of the next READING: first 4 bytes of this READING's MAC, as u32 LE."""
    return mac[0] | (mac[1] << 8) | (mac[2] << 16) | (mac[3] << 24)


def e_code(e_g):
    for i in range(8):
        if E_CODES[i] == e_g:
            return i
    raise MessageError("bad_field", "e_g")


# READING: fixed part for a synced (time u32) and an unsynced (boot u16 + uptime u32) reading.
_R_SYNC = "<IBBBIHbHHHII"
_R_BOOT = "<IBBBHIHbHHHII"
R_FIXED_SYNC = const(28)
R_FIXED_BOOT = const(30)


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
        return bool(self.flags & F_STABLE)

    @property
    def out_of_range(self):
        return bool(self.flags & F_OUT_OF_RANGE)


def pack_reading(buf, off, r):
    """Write r's READING body at buf[off:]; return its length. Allocation-free."""
    tag = r.tag
    nt = bytes_len("tag", tag, 1, TAG_MAX, "tag_empty", "tag_too_long")
    check_range("seq", r.seq, 1, 0xFFFFFFFF)
    check_range("flags", r.flags, 0, 0xFF)
    check_range("step", r.step, 0, 15)
    check_range("tag_kind", r.tag_kind, 0, TAG_BARCODE)
    check_range("verdict", r.verdict, 0, REJECT)
    check_range("reason", r.reason, 0, 63)
    net = r.net_g
    check_range("net_g", net, _NET_MIN, _NET_MAX)
    check_range("tare_g", r.tare_g, 0, 0xFFFF)
    check_range("operator", r.operator, 0, 0xFFFF)
    check_range("cal_id", r.cal_id, 0, 0xFFFF)
    check_range("ruleset_id", r.ruleset_id, 0, 0xFFFFFFFF)
    check_range("prev", r.prev, 0, 0xFFFFFFFF)
    flags = (r.flags & F_STATUS_MASK) | e_code(r.e_g)
    sk = (r.step << 4) | r.tag_kind
    v = r.verdict | (r.reason << 2)
    if r.time is not None:
        check_range("time", r.time, 0, 0xFFFFFFFF)
        struct.pack_into(_R_SYNC, buf, off, r.seq, flags | F_TIME_SYNCED, sk, v, r.time,
                         net & 0xFFFF, net >> 16, r.tare_g, r.operator, r.cal_id,
                         r.ruleset_id, r.prev)
        n = R_FIXED_SYNC
    else:
        check_range("boot", r.boot, 0, 0xFFFF)
        check_range("uptime_ms", r.uptime_ms, 0, 0xFFFFFFFF)
        struct.pack_into(_R_BOOT, buf, off, r.seq, flags, sk, v, r.boot, r.uptime_ms,
                         net & 0xFFFF, net >> 16, r.tare_g, r.operator, r.cal_id,
                         r.ruleset_id, r.prev)
        n = R_FIXED_BOOT
    _copy(buf, off + n, tag, nt)
    return n + nt


def unpack_reading(mv, cls=Reading):
    """Parse a READING body (memoryview) into a `cls` (Reading's constructor arguments);
    strict bounds and field checks (MessageError)."""
    n = len(mv)
    if n < 5:
        raise MessageError("truncated")
    flags = mv[4]
    if flags & F_TIME_SYNCED:
        fixed = R_FIXED_SYNC
        if n < fixed:
            raise MessageError("truncated")
        seq, f, sk, v, t, lo, hi, tare, op, cal, rs, prev = struct.unpack_from(_R_SYNC, mv, 0)
        boot = ms = None
    else:
        fixed = R_FIXED_BOOT
        if n < fixed:
            raise MessageError("truncated")
        seq, f, sk, v, boot, ms, lo, hi, tare, op, cal, rs, prev = struct.unpack_from(
            _R_BOOT, mv, 0)
        t = None
    if n == fixed:
        raise MessageError("tag_empty")
    if n - fixed > TAG_MAX:
        raise MessageError("tag_too_long")
    if seq == 0:
        raise MessageError("bad_field", "seq")
    if sk & 0x0F > TAG_BARCODE:
        raise MessageError("bad_field", "tag_kind")
    if v & 3 > REJECT:
        raise MessageError("bad_field", "verdict")
    return cls(seq, flags & F_STATUS_MASK, sk >> 4, sk & 0x0F, v & 3, v >> 2, t, boot, ms,
               (hi << 16) | lo, tare, E_CODES[flags & F_E_MASK], op, cal, rs, prev,
               bytes(mv[fixed:n]))


def reading_frame(frame):
    """The Reading in a decoded READING frame (no MAC check: the station's own journal), with
    .mac set to the frame's MAC."""
    end = BODY + frame[1]
    r = unpack_reading(memoryview(frame)[BODY:end])
    r.mac = bytes(frame[end : end + 16])
    return r


def unpack_nack(mv):
    """(ref_type, ref_seq, reason) of a NACK body."""
    return unpack_fixed(T_NACK, mv)


def pack_result(buf, off, cmd_id, status, value, detail=b""):
    return pack_fixed(buf, off, T_RESULT, (cmd_id, status, value), detail)


def pack_status(buf, off, values):
    return pack_fixed(buf, off, T_STATUS, values)
