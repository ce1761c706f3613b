# Message bodies (SPEC.md "Message bodies"). Each message class packs its body into a caller's
# buffer with struct.pack_into and unpacks from a memoryview with strict bounds checks. READING,
# LIVE and EVENT (sent on the station's hot paths) have hand-written allocation-free packers; the
# rarer messages use one generic fixed-layout packer driven by a field table.
import struct
from binascii import hexlify, unhexlify

from twproto.errors import MessageError
from twproto.frame import (
    BODY, MAX_BODY, T_ACK, T_COMMAND, T_EVENT, T_HELLO, T_LIVE, T_NACK, T_READING, T_RESULT,
    T_STATUS, T_WELCOME, check_direction, encode, verify,
)
from twproto.mac import DIR_STATION

# Verdicts (READING.verdict bits 0-1, ACK entries): the station's or the bridge's judgement.
ACCEPT = 0
WARN = 1
REJECT = 2
VERDICT_NAMES = ("accept", "warn", "reject")

# Divisions e: READING/LIVE flags bits 0-2 index this tuple.
E_CODES = (1, 2, 5, 10, 20, 50, 100, 200)

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
TAG_KIND_NAMES = ("rfid_uid", "ndef_text", "ndef_uri", "qr_text", "barcode")
TAG_MAX = 64

# Station steps/roles (READING step_kind high nibble; 0 = not assigned, 6..15 reserved).
STEP_NONE = 0
STEP_MINE_TAGGING = 1  # tagging / commissioning at the mine site
STEP_DEPOT_RECEIVING = 2
STEP_DEPOT_DISPATCH = 3
STEP_PROCESSOR_RECEIVING = 4
STEP_EXPORT = 5
STEP_NAMES = ("none", "mine_tagging", "depot_receiving", "depot_dispatch",
              "processor_receiving", "export")

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
NACK_NAMES = {
    1: "malformed", 2: "bad_mac", 3: "unknown_device", 4: "unsupported_version",
    5: "storage_unavailable", 6: "conflict", 7: "chain_break", 8: "busy", 9: "stale_command",
    10: "no_session", 11: "window_exceeded", 12: "unexpected",
}

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
EVENT_NAMES = {
    1: "hx711_not_ready", 2: "overload", 3: "underload", 4: "zero_out_of_range",
    5: "reader_fault", 6: "scanner_fault", 7: "scanner_garbage", 8: "multiple_tags",
    9: "journal_nearly_full", 10: "journal_full", 11: "journal_recovered",
    12: "clock_not_synced", 13: "boot", 14: "calibration_changed", 15: "tamper",
    16: "config_changed", 17: "ruleset_changed", 18: "watchdog_reset", 19: "motion_timeout",
}
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
RESULT_NAMES = (
    "ok", "refused_motion", "bad_args", "unsupported", "busy", "failed", "stale_command",
    "not_in_maintenance", "bad_hash", "out_of_range", "no_space",
)

_RANGES = {
    "B": (0, 0xFF), "H": (0, 0xFFFF), "I": (0, 0xFFFFFFFF),
    "b": (-0x80, 0x7F), "h": (-0x8000, 0x7FFF), "i": (-0x80000000, 0x7FFFFFFF),
}


def _range(name, v, lo, hi):
    # bool is an int subclass on CPython; MicroPython struct would silently truncate, so check.
    if not isinstance(v, int) or v < lo or v > hi:
        raise MessageError("bad_field", name)


def _bytes_len(name, v, lo, hi, short="bad_field", long="bad_field"):
    if isinstance(v, int) or isinstance(v, str):
        raise MessageError("bad_field", name)
    n = len(v)
    if n < lo:
        raise MessageError(short, name)
    if n > hi:
        raise MessageError(long, name)
    return n


def _check_size(n, size, tail):
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


def _pack_tail(buf, off, tail, value):
    """Copy a trailing byte string bounded by tail = (name, min, max); return its length."""
    n = _bytes_len(tail[0], value, tail[1], tail[2])
    _copy(buf, off, value, n)
    return n


def _hex(b):
    return hexlify(b).decode()


def chain_link(mac):
    """The `prev` value of the next READING: first 4 bytes of this READING's MAC, as u32 LE."""
    return mac[0] | (mac[1] << 8) | (mac[2] << 16) | (mac[3] << 24)


def e_code(e_g):
    for i in range(8):
        if E_CODES[i] == e_g:
            return i
    raise MessageError("bad_field", "e_g")


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
        d = {}
        for n in self.NAMES:
            v = getattr(self, n)
            d[n] = _hex(v) if n in self.BYTES and v is not None else v
        return d

    @classmethod
    def from_dict(cls, d):
        kw = {}
        for n in cls.NAMES:
            if n in d:
                v = d[n]
                kw[n] = unhexlify(v) if n in cls.BYTES and v is not None else v
        return cls(**kw)

    def __eq__(self, other):
        return type(self) is type(other) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, self.as_dict())

    def pack(self, buf, off=BODY):
        """Write the body at buf[off:]; return its length."""
        raise NotImplementedError


class _Fixed(Message):
    """A body that is a fixed struct, optionally followed by a bounded byte string (TAIL)."""

    SPEC = ()  # type: tuple  # (name, struct code) pairs
    TAIL = None  # type: tuple | None  # (name, min, max) or None
    FMT = "<"
    SIZE = 0

    def check(self):
        """Semantic checks shared by pack and unpack (ranges beyond the struct's own)."""

    def pack(self, buf, off=BODY):
        vals = []
        for name, code in self.SPEC:
            v = getattr(self, name)
            if code[-1] == "s":
                _bytes_len(name, v, int(code[:-1]), int(code[:-1]))
            else:
                lo, hi = _RANGES[code]
                _range(name, v, lo, hi)
            vals.append(v)
        self.check()
        struct.pack_into(self.FMT, buf, off, *vals)
        if self.TAIL is None:
            return self.SIZE
        return self.SIZE + _pack_tail(buf, off + self.SIZE, self.TAIL, getattr(self, self.TAIL[0]))

    @classmethod
    def unpack(cls, mv):
        n = len(mv)
        _check_size(n, cls.SIZE, cls.TAIL)
        m = cls()
        vals = struct.unpack_from(cls.FMT, mv, 0)
        for i in range(len(vals)):
            setattr(m, cls.SPEC[i][0], vals[i])
        if cls.TAIL is not None:
            setattr(m, cls.TAIL[0], bytes(mv[cls.SIZE : n]))
        m.check()
        return m


def _table(cls):
    cls.NAMES = tuple(s[0] for s in cls.SPEC) + ((cls.TAIL[0],) if cls.TAIL else ())
    cls.BYTES = tuple(s[0] for s in cls.SPEC if s[1][-1] == "s") + (
        (cls.TAIL[0],) if cls.TAIL else ())
    cls.FMT = "<" + "".join(s[1] for s in cls.SPEC)
    cls.SIZE = struct.calcsize(cls.FMT)
    return cls


class Hello(_Fixed):
    TYPE = T_HELLO
    SPEC = (
        ("device_id", "I"), ("fw_major", "B"), ("fw_minor", "B"), ("fw_patch", "B"),
        ("proto_min", "B"), ("proto_max", "B"), ("ruleset_id", "I"), ("ruleset_version", "H"),
        ("config_hash", "I"), ("last_seq", "I"), ("backlog", "H"), ("journal_pct", "B"),
        ("boot", "H"), ("boot_first_seq", "I"), ("uptime_ms", "I"), ("flags", "B"),
        ("nonce", "8s"), ("chain_head", "I"),
    )
    DEFAULTS = {"proto_min": 1, "proto_max": 1}

    def check(self):
        if self.proto_min > self.proto_max:
            raise MessageError("bad_field", "proto_min")
        if self.journal_pct > 100:
            raise MessageError("bad_field", "journal_pct")


class Welcome(_Fixed):
    TYPE = T_WELCOME
    SPEC = (("time", "I"), ("ms", "H"), ("proto", "B"), ("ruleset_id", "I"), ("flags", "B"),
            ("window", "B"))
    DEFAULTS = {"proto": 1}

    def check(self):
        if self.ms > 999:
            raise MessageError("bad_field", "ms")


class Nack(_Fixed):
    TYPE = T_NACK
    SPEC = (("ref_type", "B"), ("ref_seq", "I"), ("reason", "B"))


class Status(_Fixed):
    TYPE = T_STATUS
    SPEC = (
        ("raw", "i"), ("zero_raw", "i"), ("counts_per_kg", "i"), ("noise_rms", "H"),
        ("rate_hz", "B"), ("flags", "B"), ("hx711_timeouts", "H"), ("spikes", "H"),
        ("journal_used", "H"), ("journal_capacity", "H"), ("free_heap", "I"),
        ("uptime_ms", "I"), ("boot", "H"), ("cal_id", "H"),
    )


class Event(_Fixed):
    TYPE = T_EVENT
    SPEC = (("code", "B"), ("severity", "B"), ("detail", "i"), ("uptime_ms", "I"))

    def __init__(self, code=0, severity=0, detail=0, uptime_ms=0):
        self.code = code
        self.severity = severity
        self.detail = detail
        self.uptime_ms = uptime_ms

    def check(self):
        if self.severity > SEV_CRITICAL:
            raise MessageError("bad_field", "severity")

    def pack(self, buf, off=BODY):
        _range("code", self.code, 0, 0xFF)
        _range("severity", self.severity, 0, SEV_CRITICAL)
        _range("detail", self.detail, -0x80000000, 0x7FFFFFFF)
        _range("uptime_ms", self.uptime_ms, 0, 0xFFFFFFFF)
        struct.pack_into("<BBiI", buf, off, self.code, self.severity, self.detail, self.uptime_ms)
        return 10


class Result(_Fixed):
    TYPE = T_RESULT
    SPEC = (("cmd_id", "H"), ("status", "B"), ("value", "i"))
    TAIL = ("detail", 0, MAX_BODY - 7)


for _c in (Hello, Welcome, Nack, Status, Event, Result):
    _table(_c)

_NET_MIN = -0x800000
_NET_MAX = 0x7FFFFF


class Live(Message):
    """Live weight for a display: net i24, tare u16, flags (READING flag bits), tag state."""

    TYPE = T_LIVE
    NAMES = ("net_g", "tare_g", "flags", "tag_state")
    SIZE = 7

    def __init__(self, net_g=0, tare_g=0, flags=0, tag_state=0):
        self.net_g = net_g
        self.tare_g = tare_g
        self.flags = flags
        self.tag_state = tag_state

    @property
    def e_g(self):
        return E_CODES[self.flags & F_E_MASK]

    def pack(self, buf, off=BODY):
        net = self.net_g
        _range("net_g", net, _NET_MIN, _NET_MAX)
        _range("tare_g", self.tare_g, 0, 0xFFFF)
        _range("flags", self.flags, 0, 0xFF)
        _range("tag_state", self.tag_state, 0, 0xFF)
        struct.pack_into("<HbHBB", buf, off, net & 0xFFFF, net >> 16, self.tare_g, self.flags,
                         self.tag_state)
        return 7

    @classmethod
    def unpack(cls, mv):
        if len(mv) < 7:
            raise MessageError("truncated")
        if len(mv) != 7:
            raise MessageError("bad_length")
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
        n = len(self.entries)
        if n > ACK_MAX:
            raise MessageError("bad_count")
        buf[off] = n
        p = off + 1
        for seq, v in self.entries:
            _range("seq", seq, 1, 0xFFFFFFFF)
            _check_verdict(v)
            struct.pack_into("<IB", buf, p, seq, v)
            p += 5
        return p - off

    @classmethod
    def unpack(cls, mv):
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
            _check_verdict(v)
            entries.append((seq, v))
        return cls(entries)


ACK_MAX = 32


def _check_verdict(v):
    _range("verdict", v, 0, 0xFF)
    if v & 3 > REJECT:
        raise MessageError("bad_field", "verdict")


# COMMAND argument layouts: op -> (struct format, names, trailing bytes (name, min, max) or None).
_DATA_MAX = MAX_BODY - 3
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
OP_NAMES = {
    1: "tare", 2: "zero", 3: "tare_preset", 4: "cal_zero", 5: "cal_span", 6: "cal_check",
    7: "cal_commit", 8: "set_config", 9: "ruleset_begin", 10: "ruleset_chunk",
    11: "ruleset_end", 12: "reboot", 13: "maintenance", 14: "set_operator", 15: "set_time",
    16: "self_test", 17: "get_status",
}
_CMD_BYTES = ("value", "sha256", "data")


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
        _range("cmd_id", self.cmd_id, 0, 0xFFFF)
        _range("op", self.op, 0, 0xFF)
        spec = CMD_ARGS.get(self.op)
        args = self.args
        struct.pack_into("<HB", buf, off, self.cmd_id, self.op)
        n = 3
        tail = ("data", 0, _DATA_MAX)  # type: tuple | None
        if spec is not None:
            fmt, names, tail = spec
            vals = []
            for i in range(len(names)):
                name = names[i]
                if name not in args:
                    raise MessageError("bad_field", name)
                v = args[name]
                if name == "sha256":
                    _bytes_len(name, v, 32, 32)
                else:
                    lo, hi = _RANGES[fmt[i + 1]]
                    _range(name, v, lo, hi)
                vals.append(v)
            _check_args(self.op, args)
            struct.pack_into(fmt, buf, off + n, *vals)
            n += struct.calcsize(fmt)
        if tail is not None:
            n += _pack_tail(buf, off + n, tail, args.get(tail[0], b""))
        return n

    @classmethod
    def unpack(cls, mv):
        n = len(mv)
        if n < 3:
            raise MessageError("truncated")
        cmd_id, op = struct.unpack_from("<HB", mv, 0)
        spec = CMD_ARGS.get(op)
        args = {}
        if spec is None:
            args["data"] = bytes(mv[3:n])
            return cls(cmd_id, op, args)
        fmt, names, tail = spec
        size = 3 + struct.calcsize(fmt)
        _check_size(n, size, tail)
        vals = struct.unpack_from(fmt, mv, 3)
        for i in range(len(names)):
            args[names[i]] = vals[i]
        if tail is not None:
            args[tail[0]] = bytes(mv[size:n])
        _check_args(op, args)
        return cls(cmd_id, op, args)


def _check_args(op, args):
    if op == OP_MAINTENANCE and args["on"] > 1:
        raise MessageError("bad_field", "on")
    if op == OP_SET_TIME and args["ms"] > 999:
        raise MessageError("bad_field", "ms")


# READING: fixed part for a synced (time u32) and an unsynced (boot u16 + uptime u32) reading.
_R_SYNC = "<IBBBIHbHHHII"
_R_BOOT = "<IBBBHIHbHHHII"
R_FIXED_SYNC = 28
R_FIXED_BOOT = 30


class Reading(Message):
    """One weighed bag. time is Unix seconds UTC, or None when the station is not time-synced
    (then boot + uptime_ms say when). flags keeps the status bits F_STABLE, F_OUT_OF_RANGE,
    F_ZERO_TRACKED, F_PRESET_TARE; the division and time-synced bits come from e_g and time.
    ruleset_id and prev are u32 (first 4 bytes of the hash / previous MAC, little-endian).
    mac is set by decode_frame (the MAC of the frame it came in).
    """

    TYPE = T_READING
    NAMES = ("seq", "flags", "step", "tag_kind", "verdict", "reason", "time", "boot",
             "uptime_ms", "net_g", "tare_g", "e_g", "operator", "cal_id", "ruleset_id",
             "prev", "tag")
    BYTES = ("tag",)

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

    def as_dict(self):
        d = Message.as_dict(self)
        d["flags"] = self.flags & F_STATUS_MASK
        if self.time is not None:
            d["boot"] = None
            d["uptime_ms"] = None
        return d

    @property
    def stable(self):
        return bool(self.flags & F_STABLE)

    @property
    def time_synced(self):
        return self.time is not None

    @property
    def out_of_range(self):
        return bool(self.flags & F_OUT_OF_RANGE)

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


def pack_reading(buf, off, r):
    """Write r's READING body at buf[off:]; return its length. Allocation-free."""
    tag = r.tag
    nt = _bytes_len("tag", tag, 1, TAG_MAX, "tag_empty", "tag_too_long")
    _range("seq", r.seq, 1, 0xFFFFFFFF)
    _range("flags", r.flags, 0, 0xFF)
    _range("step", r.step, 0, 15)
    _range("tag_kind", r.tag_kind, 0, TAG_BARCODE)
    _range("verdict", r.verdict, 0, REJECT)
    _range("reason", r.reason, 0, 63)
    net = r.net_g
    _range("net_g", net, _NET_MIN, _NET_MAX)
    _range("tare_g", r.tare_g, 0, 0xFFFF)
    _range("operator", r.operator, 0, 0xFFFF)
    _range("cal_id", r.cal_id, 0, 0xFFFF)
    _range("ruleset_id", r.ruleset_id, 0, 0xFFFFFFFF)
    _range("prev", r.prev, 0, 0xFFFFFFFF)
    flags = (r.flags & F_STATUS_MASK) | e_code(r.e_g)
    sk = (r.step << 4) | r.tag_kind
    v = r.verdict | (r.reason << 2)
    if r.time is not None:
        _range("time", r.time, 0, 0xFFFFFFFF)
        struct.pack_into(_R_SYNC, buf, off, r.seq, flags | F_TIME_SYNCED, sk, v, r.time,
                         net & 0xFFFF, net >> 16, r.tare_g, r.operator, r.cal_id,
                         r.ruleset_id, r.prev)
        n = R_FIXED_SYNC
    else:
        _range("boot", r.boot, 0, 0xFFFF)
        _range("uptime_ms", r.uptime_ms, 0, 0xFFFFFFFF)
        struct.pack_into(_R_BOOT, buf, off, r.seq, flags, sk, v, r.boot, r.uptime_ms,
                         net & 0xFFFF, net >> 16, r.tare_g, r.operator, r.cal_id,
                         r.ruleset_id, r.prev)
        n = R_FIXED_BOOT
    _copy(buf, off + n, tag, nt)
    return n + nt


def unpack_reading(mv):
    """Parse a READING body (memoryview); strict bounds and field checks (MessageError)."""
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
    return Reading(seq, flags & F_STATUS_MASK, sk >> 4, sk & 0x0F, v & 3, v >> 2, t, boot, ms,
                   (hi << 16) | lo, tare, E_CODES[flags & F_E_MASK], op, cal, rs, prev,
                   bytes(mv[fixed:n]))


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
