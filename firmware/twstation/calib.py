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
import json
import os

from twproto.port import const
from twstation.errors import StationError

DIVISIONS = (1, 2, 5, 10, 20, 50, 100, 200)  # READING flags bits 0-2 = index of e here
_MAX_FILE = const(1024)  # the store's file size limit (the messages below spell it out)
_FIELDS = ("cal_id", "offset", "num", "den", "e_g", "capacity_g", "ref_mass_g", "time", "operator")
_I32 = const(0x7FFFFFFF)


class CalibrationError(StationError):
    """A calibration is refused or malformed. `code` is a scale status code (twstation.scale)."""

    def __init__(self, msg, code=0):
        super().__init__(msg)
        self.code = code


class Calibration:
    """One calibration: cal_id (u16 on the wire), offset (counts at zero when calibrated),
    num/den (grams per count as an exact ratio), e_g (division), capacity_g (Max),
    ref_mass_g, time (Unix s, 0 unknown) and operator (u16) of the calibration."""

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
        self.validate()

    def validate(self):
        for k in _FIELDS:
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool):
                raise CalibrationError("calibration: '%s' must be an integer" % k)
        if not 0 <= self.cal_id <= 0xFFFF:
            raise CalibrationError("calibration: 'cal_id' must be 0..65535")
        if self.num == 0 or self.den == 0:
            raise CalibrationError("calibration: 'num' and 'den' must be non-zero")
        if not -_I32 <= self.offset <= _I32:
            raise CalibrationError("calibration: 'offset' out of range")
        if self.e_g not in DIVISIONS:
            raise CalibrationError("calibration: 'e_g' must be one of " + str(list(DIVISIONS)))
        if not self.e_g < self.capacity_g <= 0x7FFFFF:
            raise CalibrationError("calibration: 'capacity_g' must be above e and below 2^23 g")
        if not 0 <= self.operator <= 0xFFFF or self.ref_mass_g < 0 or self.time < 0:
            raise CalibrationError("calibration: 'operator', 'ref_mass_g' or 'time' out of range")
        if self.counts_per_e() < 1:
            raise CalibrationError("calibration: less than one count per division")

    def counts_per_e(self):
        """Counts in one division, rounded (always positive)."""
        num = self.num if self.num > 0 else -self.num
        den = self.den if self.den > 0 else -self.den
        return (2 * self.e_g * den + num) // (2 * num)

    def to_dict(self):
        d = {}
        for k in _FIELDS:
            d[k] = getattr(self, k)
        return d

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise CalibrationError("calibration: expected an object")
        args = []
        for k in _FIELDS:
            if k not in d:
                raise CalibrationError("calibration: '%s' missing" % k)
            args.append(d[k])
        return cls(*args)

    def __eq__(self, other):
        return isinstance(other, Calibration) and self.to_dict() == other.to_dict()


def nominal(e_g=10, capacity_g=60000, offset=0, counts_per_kg=42950):
    """A stand-in calibration (cal_id 0) for a station never calibrated: a 100 kg 2 mV/V cell at
    gain 128 gives ~42 950 counts/kg. Readings carry cal_id 0 and the station flags itself
    uncalibrated until a technician calibrates."""
    return Calibration(0, offset, 1000, counts_per_kg, e_g, capacity_g)


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
        try:
            with open(self.path, "rb") as f:
                data = f.read(_MAX_FILE + 1)
        except OSError:
            return None
        if len(data) > _MAX_FILE:
            raise CalibrationError(self.path + ": larger than 1024 bytes")
        try:
            d = json.loads(data)
        except ValueError:
            raise CalibrationError(self.path + ": not valid JSON")
        if not isinstance(d, dict) or d.get("v") != 1 or "cal" not in d:
            raise CalibrationError(self.path + ": not a version 1 scale file")
        cal = Calibration.from_dict(d["cal"])
        zero = d.get("zero", cal.offset)
        if not isinstance(zero, int) or isinstance(zero, bool) or not -_I32 <= zero <= _I32:
            raise CalibrationError(self.path + ": 'zero' must be an integer")
        return cal, zero

    def save(self, cal, zero):
        data = json.dumps({"v": 1, "cal": cal.to_dict(), "zero": zero})
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(data)
            f.flush()
            # CPython needs fsync for durability; on littlefs flush/close is the commit point
            sync = getattr(os, "fsync", None)
            if sync is not None:
                sync(f.fileno())
        try:
            os.rename(tmp, self.path)
        except OSError:  # a filesystem that refuses to rename over an existing file
            os.remove(self.path)
            os.rename(tmp, self.path)
