# Scale calibration and its flash store.
#
# A calibration maps raw HX711 counts to grams with integers only:
#     grams = (raw - offset) * num / den
# A two-point calibration gives it exactly: offset = mean counts empty, num = reference mass in
# grams (times the number of samples averaged), den = counts the reference mass added (summed over
# the same samples). No float ever enters the per-sample path, and nothing is lost to fixed-point.
#
# The store (/scale.json) holds the calibration and the zero reference, written atomically (temp
# file then rename), so a power cut leaves either the old or the new file. Tare is NOT stored:
# after a reboot the scale starts with no tare (OIML R 76: no tare at boot; a tare that silently
# survived a reboot would make the next net weight wrong without anyone having asked for a tare).
from twstation.errors import StationError

DIVISIONS = (1, 2, 5, 10, 20, 50, 100, 200)  # READING flags bits 0-2 = index of e here


class CalibrationError(StationError):
    """A calibration is refused or malformed. `code` is a scale status code (twstation.scale);
    twstation.calwork, which raises them all, sets it (0 when there is none)."""

    code = 0


class Calibration:
    """One calibration: cal_id (u16 on the wire), offset (counts at zero when calibrated),
    num/den (grams per count as an exact ratio), e_g (division), capacity_g (Max),
    ref_mass_g, time (Unix s, 0 unknown) and operator (u16) of the calibration. Checked when
    made (twstation.calwork.validate): CalibrationError."""

    def __init__(self, cal_id, offset, num, den, e_g, capacity_g, ref_mass_g=0, time=0, operator=0):
        self.cal_id = cal_id
        self.offset = offset
        self.num = num
        self.den = den
        self.e_g = e_g
        self.capacity_g = capacity_g
        self.ref_mass_g = ref_mass_g
        self.time = time
        self.operator = operator
        _cold("validate", self)  # the checks run once per calibration: cold code

    def counts_per_e(self):
        """Counts in one division, rounded (always positive)."""
        num = self.num if self.num > 0 else -self.num
        den = self.den if self.den > 0 else -self.den
        return (2 * self.e_g * den + num) // (2 * num)

    # to_dict/from_dict (the store's JSON object) are twstation.calwork's to_dict(cal) and
    # from_dict(d): only the store and the tests use them
    def __eq__(self, other):
        return _cold("same", self, other)


def __getattr__(name):
    # nominal(e_g=10, capacity_g=60000, offset=0, counts_per_kg=42950), the stand-in
    # calibration of a station never calibrated, is twstation.calwork's: the station itself
    # never calls it (tests and host tools do)
    return _cold("get", name)


def _round_div(a, b):
    """a / b rounded to the nearest integer, halves away from zero (integers only)."""
    if b < 0:
        a, b = -a, -b
    if a >= 0:
        return (2 * a + b) // (2 * b)
    return -((-2 * a + b) // (2 * b))


class CalStore:
    """The calibration and zero reference in one small JSON file, replaced atomically.

    File: {"v": 1, "cal": {...Calibration...}, "zero": <counts>}. load() returns (cal, zero) or
    None when there is no file yet; a file that exists but is bad raises CalibrationError (the
    station reports it and refuses to weigh: never guess a calibration)."""

    def __init__(self, path):
        self.path = path

    def load(self):
        return _cold("load", self)

    def save(self, cal, zero):
        _cold("save", self, cal, zero)


def _cold(name, *a):
    # Run twstation.calwork's function `name` and forget the module again (twstation.forget: a
    # no-op on CPython), so that the rarely run code (calibration checks, the store's file, the
    # scale's operator actions) does not stay in the station's heap. twstation.scale uses it too.
    from twstation import calwork, forget

    try:
        return getattr(calwork, name)(*a)
    finally:
        forget(("twstation.calwork",))
