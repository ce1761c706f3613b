"""The load-cell model: scale factor, noise, ADC filter, placements, drift, creep, temperature."""

from __future__ import annotations

import statistics

from tagweigh.hw.loadcell import COUNTS_PER_G_100KG_2MVV, FULL_SCALE, LoadCell


def _series(cell, t0, t1, sps):
    n = int(round((t1 - t0) * sps))
    return [cell.counts(t0 + i / sps) for i in range(n)]


def test_sensitivity_matches_a_2mv_per_v_cell_on_gain_128():
    assert abs(COUNTS_PER_G_100KG_2MVV - 42.95) < 0.01
    cell = LoadCell(sps=10, seed=1, drift_counts=0)
    empty = statistics.mean(_series(cell, 0, 3, 10))
    cell.place(50_000, 3.0, rise_s=0.1, impact_g=0)
    loaded = statistics.mean(_series(cell, 5, 8, 10))
    assert abs((loaded - empty) / 50_000 - 42.95) < 0.05
    assert abs(empty - cell.zero_counts) < 20


def test_noise_is_tens_of_counts_and_higher_at_80_sps():
    for sps, lo, hi in ((10, 20, 40), (80, 40, 70)):
        cell = LoadCell(sps=sps, seed=2, drift_counts=0)
        s = statistics.pstdev(_series(cell, 0, 10, sps))
        assert lo < s < hi, (sps, s)


def test_seeded_runs_repeat():
    a = LoadCell(seed=5)
    b = LoadCell(seed=5)
    a.place(10_000, 1.0, 200, 2.0, 0.1, phase=0.3)
    b.place(10_000, 1.0, 200, 2.0, 0.1, phase=0.3)
    assert _series(a, 0, 5, 10) == _series(b, 0, 5, 10)
    assert _series(LoadCell(seed=6), 0, 1, 10) != _series(LoadCell(seed=5), 0, 1, 10)


def test_hx711_filter_settles_in_four_conversions():
    for sps in (10, 80):
        cell = LoadCell(sps=sps, seed=3, noise_counts=0, drift_counts=0, creep_frac=0)
        cell.place(20_000, 1.0, rise_s=1e-4, impact_g=0)
        full = 20_000 * cell.counts_per_g
        after = [cell.counts(1.0 + k / sps) - cell.zero_counts for k in range(1, 6)]
        assert after[0] < 0.5 * full  # one conversion in: still mostly the old value
        assert abs(after[3] - full) < 1 and abs(after[4] - full) < 1  # four conversions: settled


def test_swing_decays_and_overshoots():
    cell = LoadCell(seed=4)
    cell.place(30_000, 0.0, swing_amplitude_g=600, swing_hz=1.5, damping=0.05, rise_s=0.2,
                impact_g=1500, bounce_hz=20, phase=1.0)
    early = [abs(cell.force_g(0.2 + i * 0.005) - 30_000) for i in range(200)]
    mid = [abs(cell.force_g(2 + i * 0.005) - 30_000) for i in range(200)]
    late = [abs(cell.force_g(10 + i * 0.005) - 30_000) for i in range(200)]
    assert max(early) > 1000  # the impact overshoots
    # envelope 600 g x exp(-zeta * 2 pi f * t): ~256 g at 1.8 s, ~6 g at 9.8 s after landing
    assert 200 < max(mid) < 300
    assert 3 < max(late) < 8
    assert not cell.settled_by(1.0, 10)
    well_damped = LoadCell(seed=4)
    well_damped.place(30_000, 0.0, 100, 4.0, 0.7, rise_s=0.1, impact_g=300, bounce_damping=0.3)
    assert well_damped.settled_by(1.0, 10)
    assert well_damped.static_g() == 30_000


def test_remove_returns_to_zero():
    cell = LoadCell(seed=1, drift_counts=0, creep_frac=0)
    cell.place(12_000, 0.0)
    cell.remove(5.0)
    assert abs(cell.force_g(4.0) - 12_000) < 5
    assert abs(cell.force_g(6.0)) < 1e-6
    assert cell.static_g() == 0


def test_creep_follows_the_load_slowly():
    cell = LoadCell(seed=1, noise_counts=0, drift_counts=0, creep_frac=0.001, creep_tau_s=60)
    cell.place(50_000, 0.0, rise_s=0.1, impact_g=0)
    c1 = cell.counts(1.0)
    c_late = None
    for i in range(2, 600):
        c_late = cell.counts(float(i))
    gain = 50 * cell.counts_per_g  # 0.1 % of 50 kg = 50 g
    assert abs((c_late - c1) - gain) < 0.05 * gain


def test_temperature_moves_zero_and_span():
    hot = LoadCell(seed=1, noise_counts=0, drift_counts=0, temp_c=35.0)
    cold = LoadCell(seed=1, noise_counts=0, drift_counts=0, temp_c=25.0)
    assert abs((hot.counts(0.5) - cold.counts(0.5)) - 86) <= 1  # 8.6 counts/C x 10 C
    ramp = LoadCell(seed=1, noise_counts=0, drift_counts=0, temp_c=lambda t: 25 + t)
    assert ramp.counts(10.0) > ramp.counts(0.5)


def test_drift_wanders_slowly():
    cell = LoadCell(sps=10, seed=9, noise_counts=0, drift_counts=15)
    s = _series(cell, 0, 600, 10)
    steps = [abs(b - a) for a, b in zip(s, s[1:])]
    assert statistics.mean(steps) < 5  # sample to sample: tiny
    assert 3 < statistics.pstdev(s) < 60  # over ten minutes: a few e-fractions of wander


def test_saturates_like_the_adc():
    cell = LoadCell(seed=1, counts_per_g=1000)
    cell.place(20_000, 0.0, rise_s=0.01, impact_g=0)
    assert cell.counts(2.0) == FULL_SCALE - 1
    assert cell.source()(2.1) == FULL_SCALE - 1
