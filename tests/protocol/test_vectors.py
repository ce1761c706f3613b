"""The golden vectors against the construct description and through the `tagweigh vectors` CLI.
(twproto itself is checked by vm_vectors.py, under CPython and inside MicroPython.)"""

import json
import shutil
from pathlib import Path

import pytest

from tagweigh import wire
from tagweigh.cli import main
from tagweigh.commands.vectors import default_dir

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"
FRAMES = json.loads((VECTORS / "frames.json").read_text())
NEGATIVE = json.loads((VECTORS / "negative.json").read_text())


def _h(s):
    return None if s is None else bytes.fromhex(s)


def test_cli_finds_the_repository_vectors():
    assert default_dir() == VECTORS


def test_vectors_cover_every_type_and_the_required_cases():
    types = {v["type"] for v in FRAMES["frames"]}
    assert types == set(wire.TYPES.values())
    names = {v["name"] for v in FRAMES["frames"]}
    assert {"reading_synced_qr15", "reading_unsynced", "reading_rfid_uid4", "reading_rfid_uid7",
            "reading_max_tag"} <= names
    codes = {c["error"] for c in NEGATIVE["cases"]}
    assert {"bad_crc", "bad_sof", "too_long", "incomplete", "bad_mac", "wrong_direction",
            "tag_too_long", "bad_type", "truncated", "bad_length", "bad_field"} <= codes
    qr = next(v for v in FRAMES["frames"] if v["name"] == "reading_synced_qr15")
    assert len(qr["frame"]) // 2 == 64 and len(bytes.fromhex(qr["fields"]["tag"])) == 15


@pytest.mark.parametrize("v", FRAMES["frames"], ids=lambda v: v["name"])
def test_construct_parses_each_frame_to_the_same_fields(v):
    name, fields = wire.parse_frame(_h(v["frame"]), _h(v["key"]), v["direction"], _h(v["nonce"]))
    assert (name, fields) == (v["type"], v["fields"])


@pytest.mark.parametrize("c", NEGATIVE["cases"], ids=lambda c: c["name"])
def test_construct_refuses_each_negative_case(c):
    with pytest.raises(wire.WireError) as e:
        wire.parse_frame(_h(c["stream"]), _h(c["key"]), c["direction"], _h(c["nonce"]))
    # Same code as twproto, except where construct can only say "a check failed".
    assert e.value.code == c["error"] or (e.value.code, c["error"]) in {
        ("bad_field", "bad_count"), ("bad_field", "bad_length")}


def test_cli_passes_on_the_committed_vectors(capsys):
    assert main(["vectors"]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_cli_fails_on_a_wrong_vector(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    shutil.copy(VECTORS / "negative.json", tmp_path)
    doc = json.loads(json.dumps(FRAMES))
    doc["frames"][0]["fields"]["net_g"] += 1
    (tmp_path / "frames.json").write_text(json.dumps(doc))
    assert main(["vectors", "--dir", str(tmp_path), "--failures-only"]) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "reading_synced_qr15" in out


def test_cli_reports_a_missing_folder(tmp_path, capsys):
    assert main(["vectors", "--dir", str(tmp_path / "nope")]) == 2
    assert "no frames.json" in capsys.readouterr().err
