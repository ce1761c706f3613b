"""The demo end to end (simulated stations behind real ptys, the real bridge and queue) and its
script check, which must catch a run that differs from the script."""

import pytest

from tagweigh.demo import Demo, check_against_script, mpe_g
from tagweigh.sim import scenarios as S


def test_mpe_follows_oiml_class_iii_bands():
    assert mpe_g(4_000, 10) == 5  # 400 e
    assert mpe_g(15_000, 10) == 10  # 1,500 e
    assert mpe_g(30_000, 10) == 15  # 3,000 e


def _reading(dev, seq, tag, net, verdict="accept"):
    return {"device_id": dev, "seq": seq, "tag_text": tag, "net_g": net, "e_g": 10, "verdict": verdict,
            "reason": "NONE"}


def test_script_check_catches_missing_duplicated_wrong_verdict_and_weight():
    sc = S.StationScript("a", "qr", 2, bags=[S.Bag("T1", 20000, S.EXPECT_ACCEPT), S.Bag("T2", 30000, S.EXPECT_REJECT,
                                                                                       "TAG-SITE")])
    ids = {"a": "1"}
    good = [_reading("1", 1, "T1", 20010), _reading("1", 2, "T2", 30000, "reject")]
    assert check_against_script([sc], good, ids) == []
    assert check_against_script([sc], good[:1], ids)  # one missing
    assert check_against_script([sc], [good[0], good[0], good[1]], ids)  # duplicated
    assert check_against_script([sc], [good[0], _reading("1", 2, "T2", 30000, "accept")], ids)  # wrong verdict
    assert check_against_script([sc], [_reading("1", 1, "T1", 20030), good[1]], ids)  # weight off by 3 e


def test_quiet_demo_shift_arrives_exactly_as_scripted(tmp_path):
    demo = Demo(stations=2, bags=2, seed=3, incidents=False, workdir=tmp_path / "demo")
    result = demo.run()
    assert result.ok, result.mismatches
    assert len(result.readings) == 4
    assert {r["verdict"] for r in result.readings} <= {"accept", "warn"}
