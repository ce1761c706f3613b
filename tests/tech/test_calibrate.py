"""`tagweigh calibrate` against the simulator: the real firmware on modelled hardware behind a pty,
driven over the authenticated protocol by the bridge's own session code.

The operator is played by the test: each "press Enter" prompt (builtins.input) does what a
technician would do at that step (empty the platform, put the reference mass on, swap masses).
"""

from __future__ import annotations

import json
import time

import pytest

from tagweigh import cli
from tagweigh.queue import Queue
from tagweigh.sim.supervisor import Simulator, StationSpec

DEVICE = 4242


@pytest.fixture
def sim(tmp_path):
    s = Simulator(tmp_path / "sim", [StationSpec("cal1", DEVICE, reader="qr")],
                  keys_path=tmp_path / "keys.json")
    s.start()
    cfg = tmp_path / "tagweigh.toml"
    cfg.write_text('[keys]\npath = "keys.json"\n[queue]\npath = "queue.sqlite3"\n')
    try:
        yield s, cfg
    finally:
        s.close()


def _scale(sim) -> dict:
    return json.loads((sim.stations[0].root / "scale.json").read_text())["cal"]


def _audit(tmp_path) -> list[dict]:
    with Queue(tmp_path / "queue.sqlite3") as q:
        rows = [r for r in q.audit_log() if r["action"] == "calibration"]
    for r in rows:
        r["detail"] = json.loads(r["detail"])
    return rows


def test_guided_zero_span_check_commit(sim, tmp_path, monkeypatch, capsys):
    s, cfg = sim
    st = s.stations[0]
    before = _scale(s)
    steps = iter([
        lambda: None,  # zero: the platform is already empty
        lambda: st.act("place", {"mass_g": 20000}),  # span
        lambda: (st.act("remove"), st.act("place", {"mass_g": 10000})),  # linearity
    ])
    prompts = []

    def operator(prompt: str = "") -> str:
        prompts.append(prompt)
        next(steps)()
        return ""

    monkeypatch.setattr("builtins.input", operator)
    t0 = time.time()
    code = cli.main(["calibrate", "--port", st.port, "--mass", "20000", "--check-mass", "10000",
                     "--operator", "77", "--mass-id", "M1-20kg-0042", "--config", str(cfg),
                     "--settle-timeout", "20"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(prompts) == 3
    assert "empty the platform" in err and "20000 g" in err and "10000 g" in err
    assert "linearity" in err and "maintenance mode off" in err
    cal = _scale(s)
    assert cal["cal_id"] == before["cal_id"] + 1
    assert cal["operator"] == 77 and cal["ref_mass_g"] == 20000
    assert abs(cal["time"] - t0) < 120
    assert f"calibration {cal['cal_id']} of station {DEVICE}" in out
    rec = _audit(tmp_path)[0]
    assert rec["actor"] == "operator 77"
    d = rec["detail"]
    assert d["outcome"] == "committed" and d["cal_id"] == cal["cal_id"]
    assert d["ref_mass_g"] == 20000 and d["check_mass_g"] == 10000
    assert abs(d["check_error_g"]) <= d["e_g"] and d["mass_id"] == "M1-20kg-0042"


def test_refused_while_the_scale_is_in_motion(sim, tmp_path, capsys):
    s, cfg = sim
    st = s.stations[0]
    before = _scale(s)
    # a load that keeps swinging (no damping): the station answers refused_motion
    st.act("place", {"mass_g": 20000, "swing_g": 800, "swing_hz": 1.5, "damping": 0.0})
    code = cli.main(["calibrate", "--port", st.port, "--mass", "20000", "--operator", "5",
                     "--yes", "--config", str(cfg), "--settle-timeout", "3"])
    err = capsys.readouterr().err
    assert code == 6
    assert "refused by the station: the scale is in motion" in err
    assert "hint:" in err and "Traceback" not in err
    assert _scale(s) == before  # nothing changed on the station
    d = _audit(tmp_path)[0]["detail"]
    assert d["outcome"] == "failed" and d["device_id"] == str(DEVICE)


def test_refuses_when_the_bridge_holds_the_queue(sim, tmp_path, capsys):
    from tagweigh import config as C
    from tagweigh.bridge import Bridge

    s, cfg = sim
    b = Bridge(C.load(cfg))  # takes the queue lock, as a running bridge does
    try:
        code = cli.main(["calibrate", "--port", s.stations[0].port, "--mass", "20000",
                         "--operator", "5", "--config", str(cfg)])
    finally:
        b.stop()
    err = capsys.readouterr().err
    assert code == 6 and "bridge is running" in err and "stop 'tagweigh bridge'" in err
