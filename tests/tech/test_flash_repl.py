"""`tagweigh flash` end to end: esptool against the emulated ROM bootloader, then the REPL steps
(version query, app copy, settings, key, self-test) against a real MicroPython interpreter.

Why two ptys: on a real board the ROM bootloader and MicroPython answer on the SAME USB port
(esptool's reset at the end of the write leaves the ROM, and MicroPython boots on that port).
The two emulators are separate programs: `RomBootloaderEmulator` speaks the ROM's SLIP protocol
and `VirtualDevice` runs the official MicroPython WebAssembly build behind its own pty. So the
test points the REPL half at the virtual device with `--repl-port`, the option that exists for
boards with native USB whose port can come back under another name after the reset.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tagweigh import cli
from tagweigh.device import Device
from tagweigh.espimage import build_firmware
from tagweigh.keys import KeyRegistry, key_id
from tagweigh.romemu import RomBootloaderEmulator
from tagweigh.virtdev import VirtualDevice

UID = bytes.fromhex("240ac4a1b2c3")
DEVICE_ID = 0xC4A1B2C3  # low 4 bytes of the chip ID


def test_flash_then_repl_steps_on_a_real_interpreter(tmp_path, monkeypatch, capsys, mpvm_available):
    monkeypatch.chdir(tmp_path)  # no tagweigh.toml: the key registry is ./tagweigh-keys.json
    fw = tmp_path / "micropython-esp32.bin"
    fw.write_bytes(build_firmware())
    with RomBootloaderEmulator() as emu, VirtualDevice(unique_id=UID) as vd:
        code = cli.main(["flash", "--port", emu.port, "--repl-port", vd.port, "--firmware", str(fw),
                         "--before", "no-reset", "--baud", "115200",
                         "--site", "CD-SK-012", "--role", "depot_receiving"])
        out, err = capsys.readouterr()
        # esptool half
        assert bytes(emu.flash[0x1000 : 0x1000 + fw.stat().st_size]) == fw.read_bytes()
        assert "written and verified" in err
        # REPL half: version query, compiled app, settings, key, self-test
        assert "MicroPython 1.27.0 on esp32 (.mpy v6.3)" in err
        assert "as mpy v6.3" in err and "file(s) copied" in err
        assert "esp32-devkitc pin map written" in err
        assert f"device {DEVICE_ID}, site CD-SK-012, role depot_receiving" in err
        # nothing is wired to the virtual board: the self-test fails with wiring hints
        assert code == 5, err
        assert "HX711 never ready" in err and "DT/DOUT on GPIO34" in err and "SCK on GPIO33" in err
        assert "RFID reader not answering" in err and "CS on GPIO4" in err and "3.3 V" in err
        assert "Traceback" not in out + err

        reg = KeyRegistry(tmp_path / "tagweigh-keys.json")
        key = reg.get(DEVICE_ID)
        assert key is not None and len(key) == 32
        assert reg.info(DEVICE_ID)["info"]["site"] == "CD-SK-012"
        for secret in (key.hex(), key.hex().upper(), repr(key)):
            assert secret not in out + err

        with Device(vd.port) as dev:
            assert dev.key_id() == key_id(key)  # the board holds the registry's key
            settings = json.loads(dev.read_file("/station.json"))
            assert settings["device_id"] == DEVICE_ID and settings["step"] == 2
            assert settings["site"] == "CD-SK-012"
            lib = dict(dev.listdir("/lib/twstation"))
            assert "app.mpy" in lib and "app.py" not in lib
            # the compiled app really imports and runs in MicroPython
            assert dev.eval_json("__import__('twstation').FIRMWARE_VERSION") == [0, 1, 0]
            assert dev.run_selftest()["key"] == "ok"

        # what was written is an ordinary MicroPython filesystem for other tools too
        ls = subprocess.run([sys.executable, "-m", "mpremote", "connect", vd.port, "resume",
                             "fs", "ls", ":lib/twproto"], capture_output=True, text=True, timeout=60)
        assert ls.returncode == 0, ls.stderr
        assert "frame.mpy" in ls.stdout and "mac.mpy" in ls.stdout

        # safe to re-run: nothing copied again, the key kept
        code = cli.main(["flash", "--port", emu.port, "--repl-port", vd.port, "--firmware",
                         str(fw), "--skip-esptool", "--no-selftest"])
        err = capsys.readouterr().err
        assert code == 0
        assert "0 file(s) copied" in err and "unchanged" in err
        assert "board and registry already agree" in err
        assert KeyRegistry(tmp_path / "tagweigh-keys.json").get(DEVICE_ID) == key


def test_a_bad_role_is_refused_before_the_board_is_touched(tmp_path, capsys):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(build_firmware())
    with RomBootloaderEmulator() as emu:
        code = cli.main(["flash", "--port", emu.port, "--firmware", str(fw), "--before", "no-reset",
                         "--site", "S1", "--role", "weighbridge"])
        assert all(b == 0xFF for b in emu.flash[0x1000:0x1100])  # never erased or written
    err = capsys.readouterr().err
    assert code == 2 and "unknown role 'weighbridge'" in err and "depot_receiving" in err
