"""`tagweigh ports`: adapter kinds, access advice, JSON output."""

import json
from types import SimpleNamespace

import pytest

from tagweigh import cli
from tagweigh.commands.ports import adapter_kind, list_ports


def fake_port(device, vid=None, pid=None, serial=None, description="n/a"):
    return SimpleNamespace(device=device, vid=vid, pid=pid, serial_number=serial,
                           description=description)


@pytest.mark.parametrize(
    "vid, pid, kind",
    [
        (0x10C4, 0xEA60, "CP210x"),
        (0x1A86, 0x7523, "CH340"),
        (0x1A86, 0x55D4, "CH9102"),
        (0x0403, 0x6001, "FTDI"),
        (0x0403, 0x6015, "FTDI"),
        (0x303A, 0x1001, "Espressif native USB"),
        (0x303A, 0x4001, "Espressif native USB"),
        (0x1234, 0x5678, "unknown USB serial"),
        (None, None, "not USB"),
    ],
)
def test_adapter_kind(vid, pid, kind):
    assert kind in adapter_kind(vid, pid)


def test_list_hides_non_usb_and_sorts_known_adapters_first():
    ports = [fake_port("/dev/ttyS0"), fake_port("/dev/ttyACM0", 0x1234, 1),
             fake_port("/dev/ttyUSB1", 0x10C4, 0xEA60, "0001")]
    infos = list_ports(ports, can_open=lambda p: True)
    assert [i.device for i in infos] == ["/dev/ttyUSB1", "/dev/ttyACM0"]
    assert infos[0].vid == "10C4" and infos[0].pid == "EA60" and infos[0].serial_number == "0001"
    assert len(list_ports(ports, include_all=True, can_open=lambda p: True)) == 3


def test_inaccessible_port_gets_group_advice(tmp_path):
    dev = tmp_path / "ttyUSB0"
    dev.write_bytes(b"")
    (info,) = list_ports([fake_port(str(dev), 0x1A86, 0x7523)], can_open=lambda p: False)
    assert not info.accessible
    assert "usermod -aG" in info.advice


def test_access_check_uses_the_real_file_mode(tmp_path):
    dev = tmp_path / "ttyUSB0"
    dev.write_bytes(b"")
    (info,) = list_ports([fake_port(str(dev), 0x1A86, 0x7523)])
    assert info.accessible and info.advice is None


def test_cli_json(capsys, monkeypatch):
    import serial.tools.list_ports as lp

    monkeypatch.setattr(lp, "comports", lambda: [fake_port("/dev/ttyUSB0", 0x10C4, 0xEA60, "X1")])
    assert cli.main(["ports", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["device"] == "/dev/ttyUSB0" and row["adapter"].startswith("CP210x")
    assert set(row) >= {"vid", "pid", "serial_number", "accessible", "advice"}


def test_cli_table_mentions_each_port(capsys, monkeypatch):
    import serial.tools.list_ports as lp

    monkeypatch.setattr(lp, "comports", lambda: [fake_port("/dev/ttyUSB7", 0x1A86, 0x55D4)])
    assert cli.main(["ports"]) == 0
    out = capsys.readouterr().out
    assert "/dev/ttyUSB7" in out and "CH9102" in out
