"""A load cell as the HX711 sees it: counts(t) is the 24-bit value of the conversion ending at t.

Numbers (defaults), and where they come from:
- A 100 kg, 2 mV/V single-point cell excited from the HX711's AVDD. At gain 128 the HX711's
  full-scale input is +-0.5*AVDD/128, so the rated load gives 2e-3*256 = 0.512 of 2^23 counts:
  ~4.29 M counts for 100 kg = 42.95 counts per gram (whatever AVDD is: it is ratiometric).
- Noise: the HX711 datasheet gives 50 nV rms input noise at 10 SPS and 90 nV at 80 SPS (gain 128,
  AVDD 5 V, 1 LSB = 2.33 nV), i.e. ~21 and ~39 counts. Cheap modules do worse; defaults 30 / 55.
- The HX711's digital filter settles in 4 conversions (400 ms at 10 SPS, 50 ms at 80 SPS): it is
  modelled as sinc^4, four cascaded boxcars of one output period, applied to the analog signal.
- Drift: three Ornstein-Uhlenbeck terms (tau 2 s, 30 s, 300 s) summing to a 1/f-like wander of
  ~`drift_counts` rms. Creep: `creep_frac` of the load (C3 cells: 0.0245 % in 30 min) approached
  with time constant `creep_tau_s`, recovering the same way after unloading.
- Temperature (`temp_c`, a number or a function of t): zero shifts `tc_zero_counts` per degree
  from 25 C and span `tc_span_ppm` per degree (C3 class: ~17 ppm/C span, ~2 ppm FS/C zero).
- Placements: a bag lands over `rise_s` (smooth ramp), then the platform rings at `bounce_hz`
  (impact overshoot `impact_g`, damping ratio 0.15) and the bag sways/rocks at `swing_hz` with
  `swing_amplitude_g` and damping ratio `damping`. Forces add, so several bags can be on.

counts(t) must be called with non-decreasing t (the drift is integrated forward); it is seeded
(random.Random(seed)) so a run repeats exactly. The HX711 pin model takes `cell.counts` as its
source; if it changes RATE it sets `cell.sps`.
"""

from __future__ import annotations

import math
import random

FULL_SCALE = 1 << 23
COUNTS_PER_G_100KG_2MVV = 0.512 * FULL_SCALE / 100_000  # 42.95


class _Load:
    __slots__ = ("mass", "t0", "rise", "swing", "w_s", "z_s", "ph", "impact", "w_b", "z_b", "sign")

    def __init__(self, mass, t0, rise, swing, swing_hz, damping, impact, bounce_hz, phase, sign,
                 bounce_damping=0.15):
        self.mass = mass
        self.t0 = t0
        self.rise = max(rise, 1e-4)
        self.swing = swing
        self.w_s = 2 * math.pi * swing_hz
        self.z_s = damping
        self.ph = phase
        self.impact = impact
        self.w_b = 2 * math.pi * bounce_hz
        self.z_b = bounce_damping
        self.sign = sign  # +1 placed, -1 removed

    def force(self, t):
        dt = t - self.t0
        if dt <= 0:
            return 0.0
        if dt < self.rise:
            x = dt / self.rise
            return self.sign * self.mass * x * x * (3 - 2 * x)
        d = dt - self.rise
        f = self.mass
        if self.swing:
            env = math.exp(-self.z_s * self.w_s * d)
            if env > 1e-6:
                f += self.swing * env * math.sin(self.w_s * d + self.ph)
        if self.impact:
            env = math.exp(-self.z_b * self.w_b * d)
            if env > 1e-6:
                f += self.impact * env * math.cos(self.w_b * d)
        return self.sign * f


class LoadCell:
    def __init__(
        self,
        *,
        capacity_g: float = 100_000,
        counts_per_g: float = COUNTS_PER_G_100KG_2MVV,
        zero_counts: int = 150_000,
        sps: int = 10,
        noise_counts: float | None = None,
        drift_counts: float = 15.0,
        creep_frac: float = 0.000245,
        creep_tau_s: float = 600.0,
        temp_c=25.0,
        tc_zero_counts: float = 8.6,
        tc_span_ppm: float = 17.0,
        adc_order: int = 4,
        seed: int = 0,
    ):
        self.capacity_g = capacity_g
        self.counts_per_g = counts_per_g
        self.zero_counts = zero_counts
        self.sps = sps
        self.noise_counts = noise_counts
        self.drift_counts = drift_counts
        self.creep_frac = creep_frac
        self.creep_tau_s = creep_tau_s
        self.temp_c = temp_c
        self.tc_zero_counts = tc_zero_counts
        self.tc_span_ppm = tc_span_ppm
        self.adc_order = adc_order
        self.rng = random.Random(seed)
        self._loads: list[_Load] = []
        self._t = None  # time the slow states (drift, creep) were last advanced to
        self._ou = [0.0, 0.0, 0.0]
        self._ou_tau = (2.0, 30.0, 300.0)
        self._creep = 0.0  # low-passed static load, grams
        self._kcache = None

    # -- placing and removing -------------------------------------------------------------------

    def place(self, mass_g, t, swing_amplitude_g=0.0, swing_hz=2.0, damping=0.2, *, rise_s=0.15,
              impact_g=None, bounce_hz=25.0, bounce_damping=0.15, phase=None):
        """A bag of `mass_g` lands starting at `t` (contact), fully on after `rise_s`.
        `impact_g` defaults to 3 % of the mass; `phase` of the swing defaults to random."""
        if impact_g is None:
            impact_g = 0.03 * mass_g
        if phase is None:
            phase = self.rng.uniform(0, 2 * math.pi)
        self._loads.append(_Load(mass_g, t, rise_s, swing_amplitude_g, swing_hz, damping,
                                 impact_g, bounce_hz, phase, +1, bounce_damping))

    def remove(self, t, *, rise_s=0.2, mass_g=None):
        """Lift the load off (all of it unless `mass_g`) starting at `t`."""
        m = self.static_g(t) if mass_g is None else mass_g
        self._loads.append(_Load(m, t, rise_s, 0.0, 1.0, 1.0, 0.0, 25.0, 0.0, -1))

    def clear(self):
        self._loads.clear()

    # -- the physics ------------------------------------------------------------------------------

    def static_g(self, t=None):
        """The mass that will be on the platform once everything placed before t has settled."""
        return sum(ld.sign * ld.mass for ld in self._loads if t is None or ld.t0 <= t)

    def force_g(self, t):
        """Instantaneous load in grams (noise-free, before the ADC): what 'moving' means."""
        return sum(ld.force(t) for ld in self._loads)

    def mean_force_g(self, t, window_s=0.05):
        """Force averaged over [t - window_s, t] (1 ms steps): the load's motion without the
        platform's ringing above ~20 Hz, which no reading resolves."""
        n = max(1, int(window_s / 0.001))
        return sum(self.force_g(t - window_s + (i + 1) * window_s / n) for i in range(n)) / n

    def settled_by(self, t, band_g):
        """True when the force stays within band_g of the static mass from t on (checked over
        the next 10 s in 2 ms steps): the load has stopped moving."""
        m = self.static_g(t)
        for i in range(5000):
            if abs(self.force_g(t + i * 0.002) - m) > band_g:
                return False
        return True

    def _temp(self, t):
        return self.temp_c(t) if callable(self.temp_c) else self.temp_c

    def _advance(self, t):
        if self._t is None:
            self._t = t
            return
        dt = t - self._t
        if dt <= 0:
            return
        self._t = t
        rng = self.rng
        sig = self.drift_counts / math.sqrt(3)
        for i, tau in enumerate(self._ou_tau):
            a = math.exp(-dt / tau)
            self._ou[i] = self._ou[i] * a + sig * math.sqrt(1 - a * a) * rng.gauss(0, 1)
        a = math.exp(-dt / self.creep_tau_s)
        self._creep = self._creep * a + self.force_g(t) * (1 - a)

    def analog_counts(self, t) -> float:
        """Bridge output in counts at t (noise-free, no ADC filter), from the current slow states."""
        temp = self._temp(t) - 25.0
        load = self.force_g(t) + self.creep_frac * self._creep
        gain = self.counts_per_g * (1 + self.tc_span_ppm * 1e-6 * temp)
        return self.zero_counts + self.tc_zero_counts * temp + load * gain

    def counts(self, t) -> int:
        """The HX711 output for the conversion that completes at t (seconds)."""
        self._advance(t)
        span, offsets, weights = self._kernel()
        acc = 0.0
        for off, w in zip(offsets, weights):
            acc += w * self.analog_counts(t - span + off)
        noise = self.noise_counts
        if noise is None:
            noise = 30.0 if self.sps <= 10 else 55.0
        v = acc + sum(self._ou) + self.rng.gauss(0, noise)
        v = int(round(v))
        if v >= FULL_SCALE:
            return FULL_SCALE - 1
        if v < -FULL_SCALE:
            return -FULL_SCALE
        return v

    def _kernel(self):
        key = (self.sps, self.adc_order)
        if self._kcache is None or self._kcache[0] != key:
            order = self.adc_order
            span = order / self.sps
            n = max(order * 4, int(math.ceil(span / 0.005)))
            # boxcar^order kernel (cubic B-spline for sinc^4) sampled every <= 5 ms over the span
            us = [(i + 0.5) / n for i in range(n)]
            ws = [_bspline(u * order, order) for u in us]
            tot = sum(ws)
            self._kcache = (key, span, [u * span for u in us], [w / tot for w in ws])
        return self._kcache[1:]

    def source(self):
        """The callable the HX711 pin model takes."""
        return self.counts


def _bspline(x, order):
    """Density of the sum of `order` uniform(0,1) variables at x (the boxcar^order kernel)."""
    if order <= 1:
        return 1.0 if 0 <= x <= 1 else 0.0
    # Irwin-Hall density
    s = 0.0
    for k in range(int(math.floor(x)) + 1):
        s += (-1) ** k * math.comb(order, k) * (x - k) ** (order - 1)
    return max(s / math.factorial(order - 1), 0.0)
