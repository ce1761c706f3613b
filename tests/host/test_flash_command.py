"""`tagweigh flash` (esptool half) end to end against the emulated ROM loader."""

from tagweigh import cli
from tagweigh.commands import flash as flash_cmd
from tagweigh.espimage import build_firmware
from tagweigh.romemu import RomBootloaderEmulator


def test_flash_command_writes_and_calls_the_repl_hook(tmp_path, monkeypatch, capsys):
    fw = tmp_path / "micropython-esp32.bin"
    fw.write_bytes(build_firmware())
    called = []
    monkeypatch.setattr(flash_cmd, "after_esptool", lambda port, args: called.append(port) or 0)
    with RomBootloaderEmulator() as emu:
        code = cli.main(["flash", "--port", emu.port, "--firmware", str(fw), "--before",
                         "no-reset", "--baud", "115200", "--site", "S1", "--role", "depot_receiving"])
        assert code == 0
        assert bytes(emu.flash[0x1000 : 0x1000 + fw.stat().st_size]) == fw.read_bytes()
    assert called == [emu.port]
    err = capsys.readouterr().err
    assert "written and verified" in err and "micropython v1.24.1" in err


def test_flash_command_failure_prints_one_line_and_a_hint(tmp_path, capsys):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(b"PK\x03\x04" + b"\x00" * 60)  # a zip
    code = cli.main(["flash", "--port", "/dev/null", "--firmware", str(fw)])
    assert code == 3
    err = capsys.readouterr().err
    assert "not the ESP image magic" in err and "hint:" in err
