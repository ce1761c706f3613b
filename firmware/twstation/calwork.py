# The scale's rarely run code: operator actions (zero setting, tare) and the two-point
# calibration. They run on a command only, so they live here, out of the resident twstation.scale:
# Scale keeps thin methods with the same names and signatures that import this module for the call
# and forget it afterwards (calib._cold). Every function takes the Scale as its first argument and
# reads its state as the methods did (the private attribute names are explained in Scale's class).
# Also here: calib's checks of a Calibration and its store's file (CalStore.load/save), which run
# at boot or on a command, never per sample.
import json
import os
from array import array

from twproto.port import const
from twstation.calib import DIVISIONS, Calibration, CalibrationError, _round_div

# copies of twstation.scale's status codes (a test checks them against the public names)
_OK = const(0)
_E_MOTION = const(1)
_E_RANGE = const(2)
_E_OVERLOAD = const(3)
_E_TARE = const(4)
_E_NOT_READY = const(5)
_E_SPAN = const(6)
_E_REF = const(7)
_BOOT_OK = const(0)
_BOOT_PENDING = const(3)

_MAX_FILE = const(0x400)  # 1024: the store's file size limit (the messages below spell it out)
_FIELDS = ("cal_id", "offset", "num", "den", "e_g", "capacity_g", "ref_mass_g", "time", "operator")
_I32 = const(0x7FFFFFFF)


def validate(c):
    # Calibration.validate
    for k in _FIELDS:
        v = getattr(c, k)
        if not isinstance(v, int) or isinstance(v, bool):
            raise CalibrationError("calibration: '%s' must be an integer" % k)
    if not 0 <= c.cal_id <= 0xFFFF:
        raise CalibrationError("calibration: 'cal_id' must be 0..65535")
    if c.num == 0 or c.den == 0:
        raise CalibrationError("calibration: 'num' and 'den' must be non-zero")
    if not -_I32 <= c.offset <= _I32:
        raise CalibrationError("calibration: 'offset' out of range")
    if c.e_g not in DIVISIONS:
        raise CalibrationError("calibration: 'e_g' must be one of " + str(list(DIVISIONS)))
    if not c.e_g < c.capacity_g <= 0x7FFFFF:
        raise CalibrationError("calibration: 'capacity_g' must be above e and below 2^23 g")
    if not 0 <= c.operator <= 0xFFFF or c.ref_mass_g < 0 or c.time < 0:
        raise CalibrationError("calibration: 'operator', 'ref_mass_g' or 'time' out of range")
    if c.counts_per_e() < 1:
        raise CalibrationError("calibration: less than one count per division")


def to_dict(c):
    d = {}
    for k in _FIELDS:
        d[k] = getattr(c, k)
    return d


def from_dict(d):
    if not isinstance(d, dict):
        raise CalibrationError("calibration: expected an object")
    args = []
    for k in _FIELDS:
        if k not in d:
            raise CalibrationError("calibration: '%s' missing" % k)
        args.append(d[k])
    return Calibration(*args)


def load(store):
    # CalStore.load
    path = store.path
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE + 1)
    except OSError:
        return None
    if len(data) > _MAX_FILE:
        raise CalibrationError(path + ": larger than 1024 bytes")
    try:
        d = json.loads(data)
    except ValueError:
        raise CalibrationError(path + ": not valid JSON")
    if not isinstance(d, dict) or d.get("v") != 1 or "cal" not in d:
        raise CalibrationError(path + ": not a version 1 scale file")
    cal = from_dict(d["cal"])
    zero = d.get("zero", cal.offset)
    if not isinstance(zero, int) or isinstance(zero, bool) or not -_I32 <= zero <= _I32:
        raise CalibrationError(path + ": 'zero' must be an integer")
    return cal, zero


def save(store, cal, zero):
    # CalStore.save: written to a temp file, then renamed over the old one
    data = json.dumps({"v": 1, "cal": to_dict(cal), "zero": zero})
    tmp = store.path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
        f.flush()
        # CPython needs fsync for durability; on littlefs flush/close is the commit point
        sync = getattr(os, "fsync", None)
        if sync is not None:
            sync(f.fileno())
    try:
        os.rename(tmp, store.path)
    except OSError:  # a filesystem that refuses to rename over an existing file
        os.remove(store.path)
        os.rename(tmp, store.path)


# Scale's setup and calibration change (Scale.__init__ and Scale.set_calibration call these)
_OVER_E = const(9)  # no weight shown above Max + 9 e
_UNDER_E = const(20)  # underload below -20 e
_ZERO_RANGE_PCT = const(2)  # zero setting and tracking: +-2 % of Max around the calibration zero
_MAX_WINDOW = const(160)  # ring size cap: keeps sums of 24-bit counts inside a small int
_MAX_PRE_WINDOW = const(120)  # prefilter x motion window: the window sum of 24-bit counts, too
_NOMINAL_COUNTS_PER_G = const(43)  # 100 kg 2 mV/V cell, HX711 gain 128 (see tagweigh.hw.loadcell)


def _samples(ms, sps, lo):
    n = (ms * sps + 500) // 1000
    return n if n > lo else lo


def init(sc, cal, sps, zero, store, calibrated, tune):
    if sps < 1 or sps > 320:
        raise CalibrationError("scale: sps must be 1..320")
    # per-rate tuning, in samples: (prefilter k, motion window m, hold h, band in tenths of
    # e, slow-swing hold (80 SPS: 200 ms; 0 = no shape test and no slow-swing detector)),
    # measured with bench/settle.py on the modelled cell (see the header); other rates fall
    # back to 200 ms / 80 ms / 1 e without a prefilter
    if tune is not None:
        t = tune
    elif sps == 80:
        t = (4, 12, 0, 7, 16)
    elif sps == 10:
        t = (1, 3, 1, 10, 0)
    else:
        t = (1, _samples(200, sps, 3), _samples(80, sps, 0), 10, 0)
    k = t[0]
    m = t[1]
    sc._pre = k
    sc._m = m
    sc._h = t[2]
    sc._hmax = _samples(400, sps, t[2])
    sc._hslow = t[4]  # 0: no shape test and no slow-swing detector
    sc._n3 = m // 3  # the shape test's first and last thirds of the window (samples)
    n = _samples(500, sps, m)  # the average: up to 500 ms
    if n <= k:
        n = k + 1  # the prefilter reads the sample k back from the ring
    if n > _MAX_WINDOW or k * m > _MAX_PRE_WINDOW:
        raise CalibrationError("scale: averaging window too long for this rate")
    sc._len = n
    sc._buf = array("i", bytes(4 * n))
    sc._w = array("i", bytes(4 * m))  # the motion window: prefilter sums (k samples each)
    sc.sps = sps
    sc._band_e10 = t[3]
    sc.store = store
    sc.tare_g = 0
    sc.preset_tare = False
    sc._cal_zero_c = None
    sc.boot_zero = None
    sc._valid = calibrated
    set_calibration(sc, cal, zero)
    sc.reset()


def set_calibration(sc, cal, zero):
    sc.cal = cal
    sc.zero_counts = cal.offset if zero is None else zero
    ec = cal.counts_per_e()
    sc._ec = ec
    if not sc._valid:
        # a stand-in calibration may be far off: judge motion with the nominal sensitivity
        # of a 100 kg 2 mV/V cell so that cal_zero/cal_span can see a stable load
        ec = cal.e_g * _NOMINAL_COUNTS_PER_G
    sc._band = (ec * sc._band_e10 + 5) // 10 * sc._pre  # in prefilter sums
    # the shape test's threshold: 0.05 e between the means of a third and the middle, in
    # prefilter sums times the thirds' lengths (see the shape test in add_sample)
    n3 = sc._n3
    sc._bend = ec * sc._pre * n3 * (sc._m - 2 * n3) // 20
    sc._drift = ec >> 1  # the drift guard's limit: half a division
    sc._sgn = 1 if (cal.num > 0) == (cal.den > 0) else -1
    cap_c = cal.capacity_g * ec // cal.e_g
    sc._over = cap_c + _OVER_E * ec  # load counts (sign-corrected, from zero)
    sc._under = -_UNDER_E * ec
    sc._zrange = cap_c * _ZERO_RANGE_PCT // 100
    sc.e_g = cal.e_g
    sc.capacity_g = cal.capacity_g
    sc._track = 0



def get(name):
    # twstation.scale's module __getattr__: the public names of its private status codes, boot
    # results and flag bits, and STATUS_NAMES (code -> name), for the host side.
    if name == "STATUS_NAMES":
        return ("ok", "motion", "range", "overload", "tare_active", "not_ready", "span", "ref")
    for kv in ("OK=0 E_MOTION=1 E_RANGE=2 E_OVERLOAD=3 E_TARE=4 E_NOT_READY=5 E_SPAN=6 E_REF=7 "
               "BOOT_OK=0 BOOT_OFF_ZERO=1 BOOT_OUT_OF_RANGE=2 BOOT_PENDING=3 "
               "F_STABLE=8 F_RANGE=32 F_CZERO=64 F_PRESET=128").split():
        k, _, v = kv.partition("=")
        if k == name:
            return int(v)
    raise AttributeError(name)


def _long(sc):
    # sum and count of every sample since the load stopped moving (the long average), else the
    # current average: the most precise value for calibration and zero setting
    k = sc._done
    if k:
        return sc._start * k + sc._s, k
    return sc._sum_k()


def _gate(sc):
    if not sc.stable:
        return _E_MOTION if sc._fill >= sc._m else _E_NOT_READY
    if sc.overload or sc.underload:
        return _E_OVERLOAD
    return _OK


def zero(sc):
    st = _gate(sc)
    if st != _OK and st != _E_OVERLOAD:
        return st
    if sc.tare_g:
        return _E_TARE
    s, k = _long(sc)
    z = _round_div(s, k)
    d = z - sc.cal.offset
    if d > sc._zrange or -d > sc._zrange:
        return _E_RANGE
    sc.zero_counts = z
    sc._track = 0
    if sc.store is not None:
        sc.store.save(sc.cal, z)
    return _OK


def tare(sc):
    st = _gate(sc)
    if st != _OK:
        return st
    g = sc.gross_g
    if g <= 0 or g > sc.capacity_g:
        return _E_RANGE
    sc.tare_g = g
    sc.preset_tare = False
    return _OK


def tare_preset(sc, grams):
    e = sc.e_g
    g = _round_div(grams, e) * e
    if g <= 0 or g > sc.capacity_g:
        return _E_RANGE
    sc.tare_g = g
    sc.preset_tare = True
    return _OK


def zero_at_boot_ok(sc):
    c = sc.boot_check()
    if c == _BOOT_PENDING:
        return None
    return c == _BOOT_OK


def cal_zero(sc):
    if not sc.stable:
        return _E_MOTION if sc._fill >= sc._m else _E_NOT_READY
    sc._cal_zero_c = _long(sc)
    return _OK


def cal_span(sc, ref_mass_g, time, operator, e_g, capacity_g, cal_id):
    if not sc.stable:
        raise CalibrationError("calibration: scale not stable", _E_MOTION)
    if sc._cal_zero_c is None:
        raise CalibrationError("calibration: capture zero first", _E_NOT_READY)
    e = sc.e_g if e_g is None else e_g
    cap = sc.capacity_g if capacity_g is None else capacity_g
    if ref_mass_g * 10 < cap or ref_mass_g > cap:
        raise CalibrationError("calibration: reference mass must be 10..100 % of Max", _E_REF)
    zs, zk = sc._cal_zero_c
    s, k = _long(sc)
    # grams = (raw - offset) * num / den with mean counts: span = s/k - zs/zk
    den = s * zk - zs * k
    num = ref_mass_g * k * zk
    g = _gcd(num, den)
    num //= g
    den //= g
    offset = _round_div(zs, zk)
    span = _round_div(den * ref_mass_g, num)  # counts the reference mass added
    if span < 0:
        span = -span
    if span * e < 10 * ref_mass_g:
        raise CalibrationError("calibration: fewer than 10 counts per division", _E_SPAN)
    if cal_id is None:
        cal_id = (sc.cal.cal_id + 1) & 0xFFFF
    cal = Calibration(cal_id, offset, num, den, e, cap, ref_mass_g, time, operator)
    sc.tare_g = 0
    sc.preset_tare = False
    sc._cal_zero_c = None
    sc._valid = True
    set_calibration(sc, cal, offset)
    if sc.store is not None:
        sc.store.save(cal, offset)
    return cal


def _gcd(a, b):
    if a < 0:
        a = -a
    if b < 0:
        b = -b
    while b:
        a, b = b, a % b
    return a if a else 1
