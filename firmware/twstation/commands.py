# Execution of bridge COMMANDs. The link has already checked the MAC over the session nonce and
# the station has checked that cmd_id increases; here each op is checked against the station's
# state and run. run() returns (RESULT status, value, detail bytes) and never raises for a
# refused command: the bridge always gets an answer.
#
#   tare / zero                     refused while the scale is in motion (refused_motion)
#   tare_preset                     allowed in motion (a known container weight, no reading)
#   cal_zero / cal_span / cal_check / cal_commit, set_config, ruleset_*
#                                   only in maintenance mode (not_in_maintenance); the cal steps
#                                   are refused while in motion
# RESULT.value per SPEC 5.9: tare g, zero counts, cal zero counts, counts per kg, measured g,
# cal_id, bytes received, new ruleset_id (i32 bit pattern), self-test failure mask.
#   set_config key 0                value = JSON object of fields to change (device_id cannot
#                                   change: that is provisioning); validated as a whole, then
#                                   /station.json is replaced atomically
#   ruleset_begin/chunk/end         chunks in order into a temp file with a running SHA-256; at
#                                   end the digest must match, the file must load as a rule set,
#                                   then it is renamed over ruleset.json, its compact boot copy
#                                   ruleset.bin is written and it is swapped in. A bad hash or a
#                                   bad rule set leaves the old one in force (never half-loaded)
#   reboot                          RESULT first, reset ~200 ms later
#   maintenance on/off, set_operator, set_time, self_test (detail = compact JSON), get_status
import hashlib
import json
import os

from twproto.errors import ProtocolError
from twproto.port import const, ticks_add
from twstation import config as config_mod
from twstation.errors import StationError

# Private copies of the protocol's numbers (inlined by the compiler; checked against
# twproto.messages by tests/protocol/test_bodies_numbers.py).
_OP_TARE = const(1)
_OP_ZERO = const(2)
_OP_TARE_PRESET = const(3)
_OP_CAL_ZERO = const(4)
_OP_CAL_SPAN = const(5)
_OP_CAL_CHECK = const(6)
_OP_CAL_COMMIT = const(7)
_OP_SET_CONFIG = const(8)
_OP_RULESET_BEGIN = const(9)
_OP_RULESET_CHUNK = const(10)
_OP_RULESET_END = const(11)
_OP_REBOOT = const(12)
_OP_MAINTENANCE = const(13)
_OP_SET_OPERATOR = const(14)
_OP_SET_TIME = const(15)
_OP_SELF_TEST = const(16)
_OP_GET_STATUS = const(17)
_RS_OK = const(0)
_RS_REFUSED_MOTION = const(1)
_RS_BAD_ARGS = const(2)
_RS_UNSUPPORTED = const(3)
_RS_BUSY = const(4)
_RS_FAILED = const(5)
_RS_NOT_IN_MAINTENANCE = const(7)
_RS_BAD_HASH = const(8)
_RS_OUT_OF_RANGE = const(9)
_RS_NO_SPACE = const(10)
_EV_CALIBRATION_CHANGED = const(14)
_EV_CONFIG_CHANGED = const(16)
_EV_RULESET_CHANGED = const(17)
_SEV_INFO = const(0)
_SF_ZERO_OUT_OF_RANGE = const(0x04)  # HELLO/STATUS flag the station raises for a bad boot zero
_B_ZERO_CHECKED = const(0x4000)  # station.py's private bit: the boot zero was compared (a copy)
_REBOOT_DELAY_MS = const(200)  # lets the RESULT of a REBOOT command leave before the reset


def run(st, op, a, now):
    """Run COMMAND `op` with its decoded args dict `a` (twproto.bodies.unpack_command)."""
    if op in (_OP_TARE, _OP_ZERO):
        if not st.stable():
            return _RS_REFUSED_MOTION, 0, b""
        return _scale_call(st, op, a)
    if op == _OP_TARE_PRESET:  # a known container weight: allowed in motion (scale.py)
        return _scale_call(st, op, a)
    if op in (_OP_CAL_ZERO, _OP_CAL_SPAN, _OP_CAL_CHECK, _OP_CAL_COMMIT):
        if not st.maintenance:
            return _RS_NOT_IN_MAINTENANCE, 0, b""
        if op != _OP_CAL_COMMIT and not st.stable():
            return _RS_REFUSED_MOTION, 0, b""
        return _scale_call(st, op, a)
    if op in (_OP_SET_CONFIG, _OP_RULESET_BEGIN, _OP_RULESET_CHUNK, _OP_RULESET_END) \
            and not st.maintenance:
        return _RS_NOT_IN_MAINTENANCE, 0, b""
    if op == _OP_SET_CONFIG:
        return _set_config(st, a)
    if op == _OP_RULESET_BEGIN:
        return _rs_begin(st, a)
    if op == _OP_RULESET_CHUNK:
        return _rs_chunk(st, a)
    if op == _OP_RULESET_END:
        return _rs_end(st, now)
    if op == _OP_REBOOT:
        st._reboot_at = ticks_add(now, _REBOOT_DELAY_MS)  # Station.step resets then
        return _RS_OK, 0, b""
    if op == _OP_MAINTENANCE:
        st.maintenance = bool(a["on"])
        return _RS_OK, a["on"], b""
    if op == _OP_SET_OPERATOR:
        st.operator = a["operator"]
        return _RS_OK, a["operator"], b""
    if op == _OP_SET_TIME:
        st.set_time(a["time"], a["ms"])
        return _RS_OK, 0, b""
    if op == _OP_SELF_TEST:
        from twstation import selftest

        res = selftest.run(st.dev, st.journal, st.root, st.clock)
        text = json.dumps(res).encode()
        return _RS_OK, selftest.failed_mask(res), text[:225]
    if op == _OP_GET_STATUS:
        st._send_status(now)
        return _RS_OK, 0, b""
    return _RS_UNSUPPORTED, 0, b""


# scale status codes (twstation.scale OK, E_MOTION, E_RANGE, E_OVERLOAD, E_TARE, E_NOT_READY,
# E_SPAN, E_REF) -> RESULT status
_SCALE_RS = (_RS_OK, _RS_REFUSED_MOTION, _RS_OUT_OF_RANGE, _RS_OUT_OF_RANGE, _RS_BUSY,
             _RS_BUSY, _RS_BAD_ARGS, _RS_BAD_ARGS)


def _rs(code):
    return _SCALE_RS[code] if 0 <= code < len(_SCALE_RS) else _RS_FAILED


def _scale_call(st, op, a):
    # Calibration over the link: CAL_ZERO captures the empty scale, CAL_SPAN(mass) computes,
    # applies and persists the new calibration (value = its cal_id), CAL_CHECK(mass) returns the
    # error in grams, CAL_COMMIT(cal_id, ...) confirms the calibration in force and raises the
    # calibration_changed EVENT (bad_args if the cal_id is not the one in force).
    sc = st.scale
    if op == _OP_TARE:
        c = sc.tare()
        return _rs(c), sc.tare_g, b""
    if op == _OP_ZERO:
        c = sc.zero()
        if c == 0:
            _zero_cleared(st)
        return _rs(c), _i32(sc.zero_counts), b""
    if op == _OP_TARE_PRESET:
        c = sc.tare_preset(a["tare_g"])
        return _rs(c), sc.tare_g, b""
    if op == _OP_CAL_ZERO:
        c = sc.cal_zero()
        z = sc._cal_zero_c
        return _rs(c), (_i32(z[0] // z[1]) if c == 0 and z else 0), b""
    if op == _OP_CAL_SPAN:
        t = st.utc()
        try:
            cal = sc.cal_span(a["mass_g"], t if t is not None else 0, st.operator)
        except StationError as e:
            return _rs(getattr(e, "code", 5)), 0, str(e).encode()[:80]
        _zero_cleared(st)
        return _RS_OK, _i32(abs(1000 * cal.den // cal.num)), b""  # counts per kg
    if op == _OP_CAL_CHECK:
        err = sc.check(a["mass_g"])
        if err is None:
            return _RS_REFUSED_MOTION, 0, b""
        return _RS_OK, _i32(a["mass_g"] + err), b""  # measured, to the gram
    # CAL_COMMIT: the calibration in force gets the bridge's cal_id, operator and time, persisted
    from twstation.calib import Calibration

    c = sc.cal
    try:
        new = Calibration(a["cal_id"], c.offset, c.num, c.den, c.e_g, c.capacity_g, c.ref_mass_g,
                          a["time"], a["operator"])
        sc.set_calibration(new, sc.zero_counts)
        if sc.store is not None:
            sc.store.save(new, sc.zero_counts)
    except StationError as e:
        return _RS_BAD_ARGS, 0, str(e).encode()[:80]
    except OSError:
        return _RS_FAILED, 0, b"write failed"
    sc.calibrated = True
    st.event(_EV_CALIBRATION_CHANGED, _SEV_INFO, a["cal_id"])
    return _RS_OK, a["cal_id"], b""


def _zero_cleared(st):
    """A new zero was set (ZERO command or calibration): the station's boot zero fault is over."""
    st._sf = st._sf & ~_SF_ZERO_OUT_OF_RANGE | _B_ZERO_CHECKED


def _i32(v):
    if isinstance(v, int) and -0x80000000 <= v <= 0x7FFFFFFF:
        return v
    return 0


def _set_config(st, a):
    if a["key"] != 0:
        return _RS_UNSUPPORTED, 0, b"only key 0 (JSON object)"
    try:
        changes = json.loads(bytes(a["value"]))
    except ValueError:
        return _RS_BAD_ARGS, 0, b"value: not JSON"
    if not isinstance(changes, dict):
        return _RS_BAD_ARGS, 0, b"value: expected an object"
    if "device_id" in changes and changes["device_id"] != st.config.device_id:
        return _RS_BAD_ARGS, 0, b"device_id is set by provisioning"
    try:
        cfg = config_mod.updated(st.config, changes)  # twstation.settings.updated
        config_mod.save(st.root, cfg)
    except StationError as e:
        return _RS_BAD_ARGS, 0, str(e).encode()[:120]
    except OSError:
        return _RS_FAILED, 0, b"write failed"
    st.config = cfg
    st.event(_EV_CONFIG_CHANGED, _SEV_INFO, 0)
    return _RS_OK, 0, b""


def _rs_begin(st, a):
    n = a["length"]
    if n < 1 or n > 16384:
        return _RS_BAD_ARGS, 0, b"length 1..16384"
    tmp = config_mod.join(st.root, "ruleset.json.part")
    try:
        open(tmp, "wb").close()
    except OSError:
        return _RS_FAILED, 0, b"cannot write"
    st._rs_push = [tmp, n, hashlib.sha256(), bytes(a["sha256"]), 0]
    return _RS_OK, 0, b""


def _rs_chunk(st, a):
    p = st._rs_push
    if p is None:
        return _RS_BAD_ARGS, 0, b"no ruleset_begin"
    data = a["data"]
    if a["offset"] != p[4] or p[4] + len(data) > p[1]:
        return _RS_BAD_ARGS, p[4], b"chunk out of order"  # value = offset expected
    try:
        with open(p[0], "ab") as f:
            f.write(data)
    except OSError:
        st._rs_push = None
        return _RS_NO_SPACE, 0, b""
    p[2].update(data)
    p[4] += len(data)
    return _RS_OK, p[4], b""


def _rs_end(st, now):
    p = st._rs_push
    st._rs_push = None
    if p is None:
        return _RS_BAD_ARGS, 0, b"no ruleset_begin"
    tmp = p[0]
    if p[4] != p[1]:
        _rm(tmp)
        return _RS_BAD_ARGS, p[4], b"incomplete"
    if p[2].digest() != p[3]:
        _rm(tmp)
        return _RS_BAD_HASH, 0, b""
    try:
        from twproto.ruleset import load_file

        rs = load_file(tmp)
    except (ProtocolError, ValueError) as e:
        _rm(tmp)
        return _RS_BAD_ARGS, 0, str(e).encode()[:120]
    path = config_mod.join(st.root, "ruleset.json")
    try:
        os.rename(tmp, path)
    except OSError:
        try:
            os.remove(path)
            os.rename(tmp, path)
        except OSError:
            _rm(tmp)
            return _RS_FAILED, 0, b"rename failed"
    # the compact boot copy (RULES.md section 9) made now, from the validated rule set and the
    # pushed bytes' SHA-256 (p[3], checked above): the next boot then loads it without the JSON
    # validation. A failed write is ignored (that boot validates and rewrites it).
    from twproto import rsload

    rsload.save_compact(rs, path[:-5] + ".bin", p[3])
    rs.drop_document()  # the station never reads the parsed document again
    st.ruleset = rs
    rid = rs.id - 0x100000000 if rs.id & 0x80000000 else rs.id  # i32 bit pattern (SPEC 5.9)
    st.event(_EV_RULESET_CHANGED, _SEV_INFO, rid)
    return _RS_OK, rid, b""


def _rm(path):
    try:
        os.remove(path)
    except OSError:
        pass
