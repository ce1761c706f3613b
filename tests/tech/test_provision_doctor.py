"""`tagweigh provision` and `tagweigh doctor` against a real MicroPython interpreter on a pty
(tagweigh.virtdev.VirtualDevice): re-run, settings change, key rotation, re-key, app-only update,
a failure mid-way with its next step, and doctor's read-only report with wiring hints.

One virtual board is provisioned once for the module (copying the app takes most of the time);
each test starts from that state and leaves the board provisioned.
"""

from __future__ import annotations

import json
import os

import pytest

from tagweigh import cli
from tagweigh.device import Device
from tagweigh.keys import KeyRegistry, key_id
from tagweigh.virtdev import VirtualDevice

DEVICE_ID = 700001


@pytest.fixture(scope="module")
def board(tmp_path_factory, mpvm_available):
    home = tmp_path_factory.mktemp("tech")
    (home / "tagweigh.toml").write_text('[keys]\npath = "keys.json"\n')
    with VirtualDevice() as vd:
        code = cli.main(["provision", "--port", vd.port, "--config", str(home / "tagweigh.toml"),
                         "--site", "CD-SK-012", "--role", "depot_receiving", "--reader", "qr",
                         "--device-id", str(DEVICE_ID), "--no-selftest"])
        assert code == 0
        yield vd, home


@pytest.fixture
def run(board, capsys):
    """cli.main for a command on the board; returns (code, stdout, stderr). Also checks that no
    output ever contains the device key."""
    vd, home = board
    capsys.readouterr()

    def _run(command: str, *args: str) -> tuple[int, str, str]:
        code = cli.main([command, "--port", vd.port, "--config", str(home / "tagweigh.toml"), *args])
        out, err = capsys.readouterr()
        key = registry(board).get(DEVICE_ID)
        if key is not None:
            assert key.hex() not in out + err and key.hex().upper() not in out + err
        assert "Traceback" not in out + err
        return code, out, err

    return _run


def registry(board) -> KeyRegistry:
    return KeyRegistry(board[1] / "keys.json")


def on_board(board):
    return Device(board[0].port)


def test_rerun_changes_nothing(run, board):
    with on_board(board) as dev:
        before = dev.sha256("/station.json"), dev.key_id()
    code, _, err = run("provision", "--no-selftest")
    assert code == 0
    assert "0 file(s) copied" in err and "pin map unchanged" in err
    assert "reader qr: unchanged" in err and "board and registry already agree" in err
    with on_board(board) as dev:
        assert (dev.sha256("/station.json"), dev.key_id()) == before


def test_settings_change_keeps_the_rest(run, board):
    code, _, err = run("provision", "--capacity-g", "30000", "--set", "bind_ms=3000",
                       "--no-selftest")
    assert code == 0 and "Max 30000 g" in err and ": written" in err
    with on_board(board) as dev:
        s = json.loads(dev.read_file("/station.json"))
    assert s["capacity_g"] == 30000 and s["bind_ms"] == 3000
    assert s["site"] == "CD-SK-012" and s["step"] == 2 and s["device_id"] == DEVICE_ID
    # a value the firmware would refuse is refused before anything is written
    code, _, err = run("provision", "--set", "send_window=99", "--no-selftest")
    assert code == 2 and "'send_window' must be an integer 1..8" in err
    with on_board(board) as dev:
        assert json.loads(dev.read_file("/station.json"))["send_window"] == 4


def test_rotate_key(run, board):
    old = registry(board).get(DEVICE_ID)
    code, _, err = run("provision", "--rotate-key", "--no-selftest")
    assert code == 0 and "fresh key on the board and in" in err
    new = registry(board).get(DEVICE_ID)
    assert new != old and len(new) == 32
    assert key_id(new) in err  # only the public fingerprint is shown
    assert [r["key_id"] for r in registry(board).info(DEVICE_ID)["retired"]][-1] == key_id(old)
    with on_board(board) as dev:
        assert dev.key_id() == key_id(new)


def test_rekey_writes_the_registry_key_to_a_board_that_lost_it(run, board):
    with on_board(board) as dev:
        dev.write_file("/key.bin", os.urandom(32))  # a replaced board with another key
    key = registry(board).get(DEVICE_ID)
    code, _, err = run("provision", "--rekey", "--no-selftest")
    assert code == 0 and "registry's key on the board" in err
    assert registry(board).get(DEVICE_ID) == key
    with on_board(board) as dev:
        assert dev.key_id() == key_id(key)


def test_app_only_repairs_the_app_and_touches_nothing_else(run, board):
    with on_board(board) as dev:
        dev.write_file("/lib/twstation/scale.mpy", b"damaged")
        dev.write_file("/lib/twstation/scale.py", b"raise ImportError('stale')\n")  # would shadow
        settings, kid = dev.sha256("/station.json"), dev.key_id()
    code, _, err = run("provision", "--app-only", "--no-selftest")
    assert code == 0
    assert "1 file(s) copied" in err and "1 stale removed" in err
    with on_board(board) as dev:
        assert dev.sha256("/station.json") == settings and dev.key_id() == kid
        assert dev.size("/lib/twstation/scale.py") is None
        assert dev.eval_json("__import__('twstation.scale').scale.STATUS_NAMES[0]") == "ok"


def test_failure_mid_way_says_what_to_run(run, board):
    with on_board(board) as dev:
        dev.makedirs("/station.json.tw-tmp")  # the settings file cannot be written
    code, _, err = run("provision", "--operator", "12", "--no-selftest")
    assert code == 4
    assert "failed at: settings" in err and "done: connect, app, board" in err
    assert "run 'tagweigh provision' again" in err
    with on_board(board) as dev:
        dev.exec("import os\nos.rmdir('/station.json.tw-tmp')")
        assert json.loads(dev.read_file("/station.json"))["operator"] != 12  # untouched
    code, _, err = run("provision", "--operator", "12", "--no-selftest")
    assert code == 0
    with on_board(board) as dev:
        assert json.loads(dev.read_file("/station.json"))["operator"] == 12


def test_doctor_reports_read_only_with_wiring_hints(run, board):
    with on_board(board) as dev:
        files = {p: dev.sha256(p) for p in ("/station.json", "/board.json", "/key.bin")}
    code, out, _ = run("doctor")
    assert code == 1  # nothing is wired to the virtual board
    assert "1.27.0" in out and ".mpy v6.3" in out
    assert "tagweigh station 0.1.0" in out and "files intact" in out
    assert f"device {DEVICE_ID}, site CD-SK-012, role depot_receiving" in out
    assert "matches the registry" in out
    assert "not calibrated" in out and "tagweigh calibrate" in out
    assert "journal" in out and "clock" in out
    assert "HX711 never ready" in out and "check DT/DOUT on GPIO34 and SCK on GPIO33" in out
    assert "hx timeout" in out
    with on_board(board) as dev:
        assert {p: dev.sha256(p) for p in files} == files  # read-only
    code, out, _ = run("doctor", "--json")
    d = json.loads(out)
    assert d["result"] == "fail" and d["selftest"]["hx"] == "timeout"
    assert d["settings"]["device_id"] == DEVICE_ID and d["device"]["version"] == "1.27.0"


def test_doctor_finds_a_damaged_app_and_a_wrong_key(run, board):
    with on_board(board) as dev:
        good = dev.read_file("/lib/twproto/crc.mpy")
        dev.write_file("/lib/twproto/crc.mpy", b"x")
        dev.write_file("/key.bin", os.urandom(32))
    try:
        code, out, _ = run("doctor", "--no-selftest")
        assert code == 1
        assert "1 file(s) missing or changed (/lib/twproto/crc.mpy)" in out
        assert "--app-only" in out and "differs from the registry's" in out and "--rekey" in out
        assert f"--port {board[0].port}" in out  # hints name the real port
    finally:
        with on_board(board) as dev:
            dev.write_file("/lib/twproto/crc.mpy", good)
            dev.write_file("/key.bin", registry(board).get(DEVICE_ID))
