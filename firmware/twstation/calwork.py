# The scale's rarely run code: operator actions (zero setting, tare) and the two-point
# calibration. They run on a command only, so they live here, out of the resident twstation.scale:
# Scale keeps thin methods with the same names and signatures that import this module for the call
# and forget it afterwards (scale._cold). Every function takes the Scale as its first argument and
# reads its state as the methods did (the private attribute names are explained in Scale's class).
from twproto.port import const
from twstation.calib import Calibration, CalibrationError, _round_div

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
    sc.set_calibration(cal, offset)
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
