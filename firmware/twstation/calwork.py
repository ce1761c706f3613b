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


def _err(msg, code=0):
    # a CalibrationError with a scale status code (the class keeps no constructor of its own:
    # resident code on the station)
    e = CalibrationError(msg)
    e.code = code
    return e


def validate(c):
    # Calibration's checks (its constructor calls this)
    for k in _FIELDS:
        v = getattr(c, k)
        if not isinstance(v, int) or isinstance(v, bool):
            raise _err("calibration: '%s' must be an integer" % k)
    if not 0 <= c.cal_id <= 0xFFFF:
        raise _err("calibration: 'cal_id' must be 0..65535")
    if c.num == 0 or c.den == 0:
        raise _err("calibration: 'num' and 'den' must be non-zero")
    if not -_I32 <= c.offset <= _I32:
        raise _err("calibration: 'offset' out of range")
    if c.e_g not in DIVISIONS:
        raise _err("calibration: 'e_g' must be one of " + str(list(DIVISIONS)))
    if not c.e_g < c.capacity_g <= 0x7FFFFF:
        raise _err("calibration: 'capacity_g' must be above e and below 2^23 g")
    if not 0 <= c.operator <= 0xFFFF or c.ref_mass_g < 0 or c.time < 0:
        raise _err("calibration: 'operator', 'ref_mass_g' or 'time' out of range")
    if c.counts_per_e() < 1:
        raise _err("calibration: less than one count per division")


def same(c, other):
    # Calibration.__eq__
    return isinstance(other, Calibration) and to_dict(c) == to_dict(other)


def to_dict(c):
    d = {}
    for k in _FIELDS:
        d[k] = getattr(c, k)
    return d


def from_dict(d):
    if not isinstance(d, dict):
        raise _err("calibration: expected an object")
    args = []
    for k in _FIELDS:
        if k not in d:
            raise _err("calibration: '%s' missing" % k)
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
        raise _err(path + ": larger than 1024 bytes")
    try:
        d = json.loads(data)
    except ValueError:
        raise _err(path + ": not valid JSON")
    if not isinstance(d, dict) or d.get("v") != 1 or "cal" not in d:
        raise _err(path + ": not a version 1 scale file")
    cal = from_dict(d["cal"])
    zero = d.get("zero", cal.offset)
    if not isinstance(zero, int) or isinstance(zero, bool) or not -_I32 <= zero <= _I32:
        raise _err(path + ": 'zero' must be an integer")
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
        raise _err("scale: sps must be 1..320")
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
        raise _err("scale: averaging window too long for this rate")
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
    reset(sc)


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



def reset(sc):
    # Scale.reset: forget all samples (after a calibration change or a driver restart)
    sc._n = 0  # samples in the ring (capped at its length)
    sc._i = 0  # next write position
    sc._f = 0  # sum of the last k samples (the prefilter)
    sc._fill = 0  # prefilter sums in the motion window (capped at m)
    sc._next = 0  # next write position in the motion window
    sc._live = 0  # samples in the running average (0 = no valid average: motion)
    sc._sum = 0
    sc._done = 0  # the long average: every quiet sample since the last motion (calibration)
    sc._s = 0
    sc._start = 0
    sc._wsum = 0  # sum of the motion window
    sc._cont = 0  # consecutive quiet windows
    sc._hold = sc._h  # quiet windows needed for stable (grows while a slow swing lasts)
    # the slow-swing detector: turning points of the prefiltered signal (hysteresis 1 band)
    sc._dir = 0  # +1 rising, -1 falling, 0 not started
    sc._outer = 0  # the extreme since the last turning point
    sc._last = 0  # the last turning point
    sc._amp = 1 << 29  # the swing between the last two turning points
    sc._age = 0  # samples since the last turning point
    sc._pper = 0  # samples between the last two turning points
    sc._slow = False  # the last swing decayed by less than half: a lightly damped swing
    sc._track = 0  # consecutive samples eligible for zero tracking
    sc.motion = True
    sc.stable = False
    sc.overload = False
    sc.underload = False
    sc.samples = 0


def set_calibrated(sc, v):
    # Scale.calibrated = v
    sc._valid = bool(v)
    set_calibration(sc, sc.cal, sc.zero_counts)


def gross_fine_g(sc):
    # Scale.gross_fine_g: gross to the gram from the long average (every sample since the load
    # stopped moving, up to _LONG_MAX: the most precise value)
    s, k = _long(sc)
    cal = sc.cal
    return _round_div((s - k * sc.zero_counts) * cal.num, k * cal.den)


def check(sc, mass_g):
    # Scale.check
    if not sc.stable:
        return None
    return gross_fine_g(sc) - mass_g


def nominal(e_g=10, capacity_g=60000, offset=0, counts_per_kg=42950):
    """A stand-in calibration (cal_id 0) for a station never calibrated: a 100 kg 2 mV/V cell at
    gain 128 gives ~42 950 counts/kg. Readings carry cal_id 0 and the station flags itself
    uncalibrated until a technician calibrates. (calib.nominal, through its __getattr__)"""
    return Calibration(0, offset, 1000, counts_per_kg, e_g, capacity_g)


def get(name):
    # twstation.scale's module __getattr__: the public names of its private status codes, boot
    # results and flag bits, and STATUS_NAMES (code -> name), for the host side; and
    # twstation.calib's: nominal().
    if name == "nominal":
        return nominal
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
        raise _err("calibration: scale not stable", _E_MOTION)
    if sc._cal_zero_c is None:
        raise _err("calibration: capture zero first", _E_NOT_READY)
    e = sc.e_g if e_g is None else e_g
    cap = sc.capacity_g if capacity_g is None else capacity_g
    if ref_mass_g * 10 < cap or ref_mass_g > cap:
        raise _err("calibration: reference mass must be 10..100 % of Max", _E_REF)
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
        raise _err("calibration: fewer than 10 counts per division", _E_SPAN)
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
