# Message bodies (SPEC.md "Message bodies") as classes for the host (bridge, tools, tests): keyword
# construction, dict form (bytes as hex), equality, pack into a caller's buffer, strict unpack.
# The layouts and the packers/unpackers the station uses live in twproto.bodies (the station's
# lean half, resident in its heap); every class here is built from that one table and calls
# those functions, so host and station cannot disagree on a byte. The protocol's public numbers
# and the host-only paths (LIVE unpack, ACK pack, chain_link, ...) are defined here.
import struct
from binascii import hexlify, unhexlify

from twproto import bodies as _b
from twproto.bodies import E_CODES, pack_reading  # noqa: F401  (public here)
from twproto.errors import MessageError
from twproto.frame import (  # noqa: F401  (MAX_BODY: public here too)
    BODY, MAX_BODY, T_ACK, T_COMMAND, T_EVENT, T_HELLO, T_LIVE, T_NACK, T_READING, T_RESULT, T_STATUS,
    T_WELCOME, check_direction, encode, verify,
)
from twproto.mac import DIR_STATION
from twproto.readingbody import unpack_reading as _unpack_reading

# The protocol's numbers (SPEC.md section 5), public for the host. The station does not import
# this module: twproto.bodies and the firmware keep private const() copies of the numbers they
# need (inlined by the compiler: no dict entry, no interned name), each checked equal to the
# number here by tests/protocol/test_bodies_numbers.py.
# Verdicts (READING.verdict bits 0-1, ACK entries): the station's or the bridge's judgement.
ACCEPT = 0
WARN = 1
REJECT = 2

# READING flag bits (bits 0-2 are the division code, bit 4 is derived from time).
F_E_MASK = 0x07
F_STABLE = 0x08
F_TIME_SYNCED = 0x10
F_OUT_OF_RANGE = 0x20
F_ZERO_TRACKED = 0x40
F_PRESET_TARE = 0x80
F_STATUS_MASK = 0xE8  # the bits a Reading's .flags keeps

# Tag kinds (READING step_kind low nibble).
TAG_RFID_UID = 0
TAG_NDEF_TEXT = 1
TAG_NDEF_URI = 2
TAG_QR_TEXT = 3
TAG_BARCODE = 4
TAG_MAX = 64

# Station steps/roles (READING step_kind high nibble; 0 = not assigned, 6..15 reserved).
STEP_NONE = 0
STEP_MINE_TAGGING = 1  # tagging / commissioning at the mine site
STEP_DEPOT_RECEIVING = 2
STEP_DEPOT_DISPATCH = 3
STEP_PROCESSOR_RECEIVING = 4
STEP_EXPORT = 5

# Station state flags (HELLO.flags, STATUS.flags).
SF_TIME_SYNCED = 0x01
SF_MAINTENANCE = 0x02
SF_ZERO_OUT_OF_RANGE = 0x04
SF_UNCALIBRATED = 0x08
SF_JOURNAL_FULL = 0x10
SF_NO_RULESET = 0x20
SF_SCALE_FAULT = 0x40
SF_READER_FAULT = 0x80

# WELCOME flags.
WF_TIME_VALID = 0x01
WF_RULESET_UPDATE = 0x02
WF_CONFIG_UPDATE = 0x04

# LIVE tag state.
TS_NONE = 0
TS_PRESENT = 1
TS_READ = 2
TS_ERROR = 3
TS_MULTIPLE = 4

# NACK reasons.
NACK_MALFORMED = 1
NACK_BAD_MAC = 2
NACK_UNKNOWN_DEVICE = 3
NACK_UNSUPPORTED_VERSION = 4
NACK_STORAGE_UNAVAILABLE = 5
NACK_CONFLICT = 6
NACK_CHAIN_BREAK = 7
NACK_BUSY = 8
NACK_STALE_COMMAND = 9
NACK_NO_SESSION = 10
NACK_WINDOW_EXCEEDED = 11
NACK_UNEXPECTED = 12

# EVENT codes and severities.
EV_HX711_NOT_READY = 1
EV_OVERLOAD = 2
EV_UNDERLOAD = 3
EV_ZERO_OUT_OF_RANGE = 4
EV_READER_FAULT = 5
EV_SCANNER_FAULT = 6
EV_SCANNER_GARBAGE = 7
EV_MULTIPLE_TAGS = 8
EV_JOURNAL_NEARLY_FULL = 9
EV_JOURNAL_FULL = 10
EV_JOURNAL_RECOVERED = 11
EV_CLOCK_NOT_SYNCED = 12
EV_BOOT = 13
EV_CALIBRATION_CHANGED = 14
EV_TAMPER = 15
EV_CONFIG_CHANGED = 16
EV_RULESET_CHANGED = 17
EV_WATCHDOG_RESET = 18
EV_MOTION_TIMEOUT = 19
SEV_INFO = 0
SEV_WARNING = 1
SEV_ERROR = 2
SEV_CRITICAL = 3

# COMMAND ops.
OP_TARE = 1
OP_ZERO = 2
OP_TARE_PRESET = 3
OP_CAL_ZERO = 4
OP_CAL_SPAN = 5
OP_CAL_CHECK = 6
OP_CAL_COMMIT = 7
OP_SET_CONFIG = 8
OP_RULESET_BEGIN = 9
OP_RULESET_CHUNK = 10
OP_RULESET_END = 11
OP_REBOOT = 12
OP_MAINTENANCE = 13
OP_SET_OPERATOR = 14
OP_SET_TIME = 15
OP_SELF_TEST = 16
OP_GET_STATUS = 17

# RESULT statuses.
RS_OK = 0
RS_REFUSED_MOTION = 1
RS_BAD_ARGS = 2
RS_UNSUPPORTED = 3
RS_BUSY = 4
RS_FAILED = 5
RS_STALE_COMMAND = 6
RS_NOT_IN_MAINTENANCE = 7
RS_BAD_HASH = 8
RS_OUT_OF_RANGE = 9
RS_NO_SPACE = 10

ACK_MAX = 32
R_FIXED_SYNC = 28  # READING fixed part, time-synced (time u32)
R_FIXED_BOOT = 30  # READING fixed part, not synced (boot u16 + uptime u32)
CMD_DATA = ("data", 0, 229)  # the tail of an op this version does not know (MAX_BODY - 3)


def chain_link(mac):
    """The `prev` value of the next READING: first 4 bytes of this READING's MAC, as u32 LE."""
    return mac[0] | (mac[1] << 8) | (mac[2] << 16) | (mac[3] << 24)


def e_code(e_g):
    """The division code (READING/LIVE flags bits 0-2) of a division e_g in grams."""
    if e_g not in E_CODES:
        raise MessageError("bad_field", "e_g")
    return E_CODES.index(e_g)


VERDICT_NAMES = ("accept", "warn", "reject")
TAG_KIND_NAMES = ("rfid_uid", "ndef_text", "ndef_uri", "qr_text", "barcode")
STEP_NAMES = ("none", "mine_tagging", "depot_receiving", "depot_dispatch",
              "processor_receiving", "export")
NACK_NAMES = {
    1: "malformed", 2: "bad_mac", 3: "unknown_device", 4: "unsupported_version",
    5: "storage_unavailable", 6: "conflict", 7: "chain_break", 8: "busy", 9: "stale_command",
    10: "no_session", 11: "window_exceeded", 12: "unexpected", 13: "out_of_order",
}
# SPEC 5.5/10: a READING ahead of one the bridge still expects in this session. Host side only:
# the station needs no code for it (it keeps the reading in flight and resends it, after its
# predecessors, at its resend deadline, which is what it does with a NACK it does not act on).
NACK_OUT_OF_ORDER = 13
EVENT_NAMES = {
    1: "hx711_not_ready", 2: "overload", 3: "underload", 4: "zero_out_of_range",
    5: "reader_fault", 6: "scanner_fault", 7: "scanner_garbage", 8: "multiple_tags",
    9: "journal_nearly_full", 10: "journal_full", 11: "journal_recovered",
    12: "clock_not_synced", 13: "boot", 14: "calibration_changed", 15: "tamper",
    16: "config_changed", 17: "ruleset_changed", 18: "watchdog_reset", 19: "motion_timeout",
}
RESULT_NAMES = (
    "ok", "refused_motion", "bad_args", "unsupported", "busy", "failed", "stale_command",
    "not_in_maintenance", "bad_hash", "out_of_range", "no_space",
)
OP_NAMES = {
    1: "tare", 2: "zero", 3: "tare_preset", 4: "cal_zero", 5: "cal_span", 6: "cal_check",
    7: "cal_commit", 8: "set_config", 9: "ruleset_begin", 10: "ruleset_chunk",
    11: "ruleset_end", 12: "reboot", 13: "maintenance", 14: "set_operator", 15: "set_time",
    16: "self_test", 17: "get_status",
}
_CMD_BYTES = ("value", "sha256", "data")
# COMMAND argument layouts: op -> (struct format, names, trailing bytes (name, min, max) or
# None), read from the station's compact table (twproto.bodies.cmd_layout), so they agree.
CMD_ARGS = {op: _b.cmd_layout(op) for op in OP_NAMES}


def _hex(b):
    return hexlify(b).decode()


def _as_dict(m):
    d = {}
    for n in m.NAMES:
        v = getattr(m, n)
        d[n] = _hex(v) if n in m.BYTES and v is not None else v
    return d


def _from_dict(cls, d):
    kw = {}
    for n in cls.NAMES:
        if n in d:
            v = d[n]
            kw[n] = unhexlify(v) if n in cls.BYTES and v is not None else v
    return cls(**kw)


class Message:
    """Common behaviour: keyword construction, dict form (bytes as hex), equality, repr."""

    TYPE = 0
    NAMES = ()  # type: tuple  # attribute names, in wire order
    BYTES = ()  # type: tuple  # names whose values are bytes
    DEFAULTS = None  # type: dict | None

    def __init__(self, **kw):
        for n in self.NAMES:
            v = kw.pop(n, None)
            if v is None and self.DEFAULTS is not None:
                v = self.DEFAULTS.get(n)
            if v is None and n in self.BYTES:
                v = b""
            setattr(self, n, 0 if v is None else v)
        if kw:
            raise MessageError("bad_field", ",".join(kw))

    def __getattr__(self, name):
        # Only reached for a missing attribute; it also tells type checkers that the fields set
        # from the NAMES/SPEC tables exist.
        raise AttributeError(name)

    def as_dict(self):
        return _as_dict(self)

    from_dict = classmethod(_from_dict)

    def __eq__(self, other):
        return type(self) is type(other) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, self.as_dict())

    def pack(self, buf, off=BODY):
        """Write the body at buf[off:]; return its length."""
        raise NotImplementedError


def struct_range(code):
    """(min, max) of an integer struct code (B H I b h i)."""
    k = "BHIbhi".find(code)
    if k < 0:
        raise MessageError("bad_field", code)
    bits = (8, 16, 32)[k % 3]
    if k < 3:
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def pack_tail(buf, off, t, value):
    """Copy a trailing byte string bounded by t = (name, min, max); return its length."""
    n = bytes_len(t[0], value, t[1], t[2])
    for i in range(n):  # a plain index loop: any sequence of byte values into any buffer
        buf[off + i] = value[i]
    return n


def check_args(op, args):
    """COMMAND argument checks beyond the struct ranges (bodies.unpack_command makes the same
    on the station)."""
    if op == OP_MAINTENANCE and args["on"] > 1:
        raise MessageError("bad_field", "on")
    if op == OP_SET_TIME and args["ms"] > 999:
        raise MessageError("bad_field", "ms")


def bytes_len(name, v, lo, hi):
    """The length of byte string v, which must be lo..hi long, else MessageError bad_field."""
    if isinstance(v, int) or isinstance(v, str):
        raise MessageError("bad_field", name)
    n = len(v)
    if n < lo or n > hi:
        raise MessageError("bad_field", name)
    return n


def _codes(fmt):
    """The struct code of each field of a layout format ("8s" stays one code)."""
    out = []
    p = 1
    while p < len(fmt):
        q = p
        while fmt[q] in "0123456789":
            q += 1
        out.append(fmt[p : q + 1])
        p = q + 1
    return out


class _Fixed(Message):
    """A body that is a fixed struct, optionally followed by a bounded byte string (TAIL); the
    layout comes from twproto.bodies.LAYOUTS[TYPE]."""

    SPEC = ()  # type: tuple  # (name, struct code) pairs
    TAIL = None  # type: tuple | None  # (name, min, max) or None

    def pack(self, buf, off=BODY):
        vals = tuple(getattr(self, s[0]) for s in self.SPEC)
        # every field's range with its name first (bodies.pack_fixed, the station's, checks
        # again but names a bad field only by its index)
        for (name, code), v in zip(self.SPEC, vals):
            if code[-1] == "s":
                bytes_len(name, v, int(code[:-1]), int(code[:-1]))
            else:
                lo, hi = struct_range(code)
                _b.check_range(name, v, lo, hi)
        check_values(self.TYPE, vals)
        tail = getattr(self, self.TAIL[0]) if self.TAIL is not None else b""
        return _b.pack_fixed(buf, off, self.TYPE, vals, tail)

    @classmethod
    def unpack(cls, mv):
        vals = _b.unpack_fixed(cls.TYPE, mv)
        check_values(cls.TYPE, vals)  # bodies.unpack_fixed checks WELCOME's, not HELLO's
        m = cls()
        for i in range(len(vals)):
            setattr(m, cls.NAMES[i], vals[i])
        return m


def check_values(t, v):
    """Semantic checks of a fixed body beyond its struct ranges, on pack and unpack alike;
    `v` holds the values in layout order. (bodies.unpack_fixed makes the WELCOME check for the
    station, which packs its HELLO from values it bounds itself.)"""
    if t == T_HELLO:
        if v[4] > v[5]:
            raise MessageError("bad_field", "proto_min")
        if v[11] > 100:
            raise MessageError("bad_field", "journal_pct")
    elif t == T_WELCOME:
        if v[1] > 999:
            raise MessageError("bad_field", "ms")


def _table(cls):
    fmt, names, tail = LAYOUTS[cls.TYPE]
    cls.SPEC = tuple(zip(names.split(), _codes(fmt)))
    cls.TAIL = tail
    cls.NAMES = tuple(s[0] for s in cls.SPEC) + ((tail[0],) if tail else ())
    cls.BYTES = tuple(s[0] for s in cls.SPEC if s[1][-1] == "s") + ((tail[0],) if tail else ())
    return cls


# The field names of every fixed layout, in layout order (the station's bodies.LAYOUTS has only
# the struct formats: it never reads the names).
FIELDS = {
    T_HELLO: "device_id fw_major fw_minor fw_patch proto_min proto_max ruleset_id "
             "ruleset_version config_hash last_seq backlog journal_pct boot boot_first_seq "
             "uptime_ms flags nonce chain_head",
    T_WELCOME: "time ms proto ruleset_id flags window",
    T_NACK: "ref_type ref_seq reason",
    T_STATUS: "raw zero_raw counts_per_kg noise_rms rate_hz flags hx711_timeouts spikes "
              "journal_used journal_capacity free_heap uptime_ms boot cal_id",
    T_RESULT: "cmd_id status value",
    T_EVENT: "code severity detail uptime_ms",
}

# RESULT's trailing detail bytes (name, min, max): the rest of the body after cmd_id u16,
# status u8, value i32 (bodies.pack_fixed and unpack_fixed write the same bounds; a test checks).
RESULT_DETAIL = ("detail", 0, MAX_BODY - 7)
# Every fixed layout as type -> (struct format, field names, tail (name, min, max) or None): the
# station's (twproto.bodies.LAYOUTS with the names and the tail above) and EVENT, which the
# station only packs (bodies.pack_event) and so does not keep in its heap.
LAYOUTS = {t: (fmt, FIELDS[t], RESULT_DETAIL if t == T_RESULT else None)
           for t, fmt in _b.LAYOUTS.items()}
LAYOUTS[T_EVENT] = ("<BBiI", FIELDS[T_EVENT], None)


class Hello(_Fixed):
    TYPE = T_HELLO
    DEFAULTS = {"proto_min": 1, "proto_max": 1}


class Welcome(_Fixed):
    TYPE = T_WELCOME
    DEFAULTS = {"proto": 1}


class Nack(_Fixed):
    TYPE = T_NACK


class Status(_Fixed):
    TYPE = T_STATUS


class Event(_Fixed):
    TYPE = T_EVENT

    def __init__(self, code=0, severity=0, detail=0, uptime_ms=0):
        self.code = code
        self.severity = severity
        self.detail = detail
        self.uptime_ms = uptime_ms

    def check(self):
        if self.severity > SEV_CRITICAL:
            raise MessageError("bad_field", "severity")

    def pack(self, buf, off=BODY):
        return _b.pack_event(buf, off, self.code, self.severity, self.detail, self.uptime_ms)

    @classmethod
    def unpack(cls, mv):
        _b.check_size(len(mv), 10, None)
        m = cls(*struct.unpack_from("<BBiI", mv, 0))
        m.check()
        return m


class Result(_Fixed):
    TYPE = T_RESULT


for _c in (Hello, Welcome, Nack, Status, Event, Result):
    _table(_c)


class Live(Message):
    """Live weight for a display: net i24, tare u16, flags (READING flag bits), tag state."""

    TYPE = T_LIVE
    NAMES = ("net_g", "tare_g", "flags", "tag_state")

    def __init__(self, net_g=0, tare_g=0, flags=0, tag_state=0):
        self.net_g = net_g
        self.tare_g = tare_g
        self.flags = flags
        self.tag_state = tag_state

    @property
    def e_g(self):
        return E_CODES[self.flags & F_E_MASK]

    def pack(self, buf, off=BODY):
        return _b.pack_live(buf, off, self.net_g, self.tare_g, self.flags, self.tag_state)

    @classmethod
    def unpack(cls, mv):
        _b.check_size(len(mv), 7, None)
        lo, hi, tare, flags, ts = struct.unpack_from("<HbHBB", mv, 0)
        return cls(net_g=(hi << 16) | lo, tare_g=tare, flags=flags, tag_state=ts)


class Ack(Message):
    """The bridge's verdicts: entries is a list of (seq, verdict_byte), at most ACK_MAX."""

    TYPE = T_ACK
    NAMES = ("entries",)

    def __init__(self, entries=None):
        self.entries = [] if entries is None else entries

    def as_dict(self):
        return {"entries": [[s, v] for s, v in self.entries]}

    @classmethod
    def from_dict(cls, d):
        return cls([(e[0], e[1]) for e in d["entries"]])

    def pack(self, buf, off=BODY):
        entries = self.entries
        if len(entries) > ACK_MAX:
            raise MessageError("bad_count")
        buf[off] = len(entries)
        p = off + 1
        for seq, v in entries:
            _b.check_range("seq", seq, 1, 0xFFFFFFFF)
            _b.check_range("verdict", v, 0, 0xFF)
            if v & 3 > REJECT:
                raise MessageError("bad_field", "verdict")
            struct.pack_into("<IB", buf, p, seq, v)
            p += 5
        return p - off

    @classmethod
    def unpack(cls, mv):
        return cls(_b.unpack_ack(mv))


class Command(Message):
    """An authenticated bridge->station command: cmd_id, op and the op's named args (a dict).

    An op this version does not know decodes with args {'data': rest of body}, so the station
    can answer RESULT unsupported for that cmd_id.
    """

    TYPE = T_COMMAND
    NAMES = ("cmd_id", "op", "args")

    def __init__(self, cmd_id=0, op=0, args=None):
        self.cmd_id = cmd_id
        self.op = op
        self.args = {} if args is None else args

    def as_dict(self):
        a = {}
        for k in self.args:
            v = self.args[k]
            a[k] = _hex(v) if k in _CMD_BYTES else v
        return {"cmd_id": self.cmd_id, "op": self.op, "args": a}

    @classmethod
    def from_dict(cls, d):
        a = {}
        for k in d["args"]:
            v = d["args"][k]
            a[k] = unhexlify(v) if k in _CMD_BYTES else v
        return cls(d["cmd_id"], d["op"], a)

    def pack(self, buf, off=BODY):
        check_range = _b.check_range
        check_range("cmd_id", self.cmd_id, 0, 0xFFFF)
        check_range("op", self.op, 0, 0xFF)
        spec = CMD_ARGS.get(self.op)
        args = self.args
        struct.pack_into("<HB", buf, off, self.cmd_id, self.op)
        n = 3
        tail = CMD_DATA  # type: tuple | None
        if spec is not None:
            fmt, names, tail = spec
            vals = []
            for i in range(len(names)):
                name = names[i]
                if name not in args:
                    raise MessageError("bad_field", name)
                v = args[name]
                if name == "sha256":
                    bytes_len(name, v, 32, 32)
                else:
                    lo, hi = struct_range(fmt[i + 1])
                    check_range(name, v, lo, hi)
                vals.append(v)
            check_args(self.op, args)
            struct.pack_into(fmt, buf, off + n, *vals)
            n += struct.calcsize(fmt)
        if tail is not None:
            n += pack_tail(buf, off + n, tail, args.get(tail[0], b""))
        return n

    @classmethod
    def unpack(cls, mv):
        cmd_id, op, args = _b.unpack_command(mv)
        return cls(cmd_id, op, args)


class Reading(_b.Reading):
    """One weighed bag (twproto.bodies.Reading, the station's class) with the host's dict form,
    equality and status properties."""

    TYPE = T_READING
    NAMES = ("seq", "flags", "step", "tag_kind", "verdict", "reason", "time", "boot",
             "uptime_ms", "net_g", "tare_g", "e_g", "operator", "cal_id", "ruleset_id",
             "prev", "tag")
    BYTES = ("tag",)
    DEFAULTS = None

    def as_dict(self):
        d = _as_dict(self)
        d["flags"] = self.flags & F_STATUS_MASK
        if self.time is not None:
            d["boot"] = None
            d["uptime_ms"] = None
        return d

    from_dict = classmethod(_from_dict)
    __eq__ = Message.__eq__
    __repr__ = Message.__repr__

    @property
    def time_synced(self):
        return self.time is not None

    @property
    def zero_tracked(self):
        return bool(self.flags & F_ZERO_TRACKED)

    @property
    def preset_tare(self):
        return bool(self.flags & F_PRESET_TARE)

    def pack(self, buf, off=BODY):
        return pack_reading(buf, off, self)

    @staticmethod
    def unpack(mv):
        return unpack_reading(mv)


def unpack_reading(mv):
    """Parse a READING body (memoryview); strict bounds and field checks (MessageError)."""
    return _unpack_reading(mv, Reading)


CLASSES = {  # type: dict
    T_HELLO: Hello, T_WELCOME: Welcome, T_READING: Reading, T_ACK: Ack, T_NACK: Nack,
    T_STATUS: Status, T_LIVE: Live, T_EVENT: Event, T_COMMAND: Command, T_RESULT: Result,
}

unpack_hello = Hello.unpack
unpack_welcome = Welcome.unpack
unpack_ack = Ack.unpack
unpack_nack = Nack.unpack
unpack_status = Status.unpack
unpack_live = Live.unpack
unpack_event = Event.unpack
unpack_command = Command.unpack
unpack_result = Result.unpack


def unpack(t, body):
    """Parse a body of message type t."""
    cls = CLASSES.get(t)
    if cls is None:
        raise MessageError("bad_type")
    return cls.unpack(body)


def encode_message(buf, msg, mac=None, direction=DIR_STATION, nonce=None):
    """Pack msg's body at buf[3:] and complete the frame; return the frame length."""
    return encode(buf, msg.TYPE, msg.pack(buf, BODY), mac, direction, nonce)


def decode_frame(frame, mac=None, direction=None, nonce=None):
    """(type, message) of a frame from Decoder. With `mac`, first checks the sender's
    `direction` and the MAC (raising FrameError/MacError); READING gets .mac set."""
    t = frame[2]
    if mac is not None:
        verify(frame, mac, direction, nonce)
    elif direction is not None:
        check_direction(t, direction)
    end = BODY + frame[1]
    if t == T_READING:
        msg = unpack_reading(frame[BODY:end])
        msg.mac = bytes(frame[end : end + 16])
        return t, msg
    return t, unpack(t, frame[BODY:end])


def reading_frame(frame):
    """The Reading in a decoded READING frame (no MAC check: e.g. the station's own journal),
    with .mac set to the frame's MAC."""
    end = BODY + frame[1]
    r = unpack_reading(memoryview(frame)[BODY:end])
    r.mac = bytes(frame[end : end + 16])
    return r
