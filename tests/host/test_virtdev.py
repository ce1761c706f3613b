"""tagweigh.virtdev: a real MicroPython REPL on a pty, driven by real mpremote and pyserial."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from tagweigh.virtdev import DEFAULT_UNIQUE_ID, VirtualDevice

MPREMOTE = [sys.executable, "-m", "mpremote"]


@pytest.fixture(scope="module")
def device(mpvm_available):
    with VirtualDevice() as dev:
        yield dev


def mpremote(dev, *args, check=True):
    proc = subprocess.run(
        [*MPREMOTE, "connect", dev.port, *args], capture_output=True, text=True, timeout=60
    )
    if check:
        assert proc.returncode == 0, f"mpremote {args} failed:\n{proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture
def transport(device):
    from mpremote.transport_serial import SerialTransport

    t = SerialTransport(device.port)
    t.enter_raw_repl(soft_reset=False)
    try:
        yield t
    finally:
        t.exit_raw_repl()
        t.close()


def test_port_is_a_pty(device):
    assert device.alive
    fd = os.open(device.port, os.O_RDWR | os.O_NOCTTY)
    try:
        assert os.isatty(fd)
    finally:
        os.close(fd)


def test_exec_with_resume(device):
    out = mpremote(device, "resume", "exec", "print(6 * 7)").stdout
    assert out.strip().splitlines()[-1] == "42"


def test_exec_after_soft_reset_keeps_files_not_ram(device):
    mpremote(device, "resume", "exec", "x = 5\nopen('keep.txt', 'w').write('kept')")
    # without `resume`, mpremote soft-resets the board first, as on a real ESP32
    out = mpremote(device, "exec", "print('x' in globals(), open('keep.txt').read())").stdout
    assert out.strip().splitlines()[-1] == "False kept"
    mpremote(device, "resume", "fs", "rm", ":keep.txt")


def test_fs_ls_shows_a_fresh_board(device):
    out = mpremote(device, "resume", "fs", "ls", ":").stdout
    names = {line.split()[-1]: int(line.split()[0]) for line in out.splitlines()[1:] if line}
    assert "boot.py" in names and names["boot.py"] > 0  # sizes reported, as littlefs does
    assert not {"_esp32", "dev", "proc", "tmp", "home"} & set(names)  # VM plumbing is hidden


def test_fs_cp_both_ways(device, tmp_path):
    payload = bytes(range(256)) + b"end"
    up = tmp_path / "up.bin"
    up.write_bytes(payload)
    down = tmp_path / "down.bin"
    # one mpremote session, commands chained with "+": up, down, and into a directory (whose
    # existence check only works with MicroPython's errno values)
    out = mpremote(
        device, "resume",
        "fs", "cp", str(up), ":data.bin", "+",
        "fs", "cp", ":data.bin", str(down), "+",
        "fs", "mkdir", ":lib", "+",
        "fs", "cp", str(up), ":lib/", "+",
        "fs", "ls", ":lib", "+",
        "fs", "rm", "-r", ":lib", "+",
        "fs", "rm", ":data.bin",
    ).stdout  # fmt: skip
    assert down.read_bytes() == payload
    assert f"{len(payload)} up.bin" in " ".join(out.split())


def test_missing_remote_file_is_a_clean_error(device, tmp_path):
    proc = mpremote(device, "resume", "fs", "cp", ":nope.txt", str(tmp_path / "x"), check=False)
    assert proc.returncode != 0
    assert "No such file or directory" in proc.stderr


def test_implementation_and_board_identity(transport):
    assert transport.eval("__import__('sys').implementation.name") == "micropython"
    version = transport.eval("tuple(__import__('sys').implementation.version[:2])")
    assert version >= (1, 22)
    mpy = transport.eval("__import__('sys').implementation._mpy")
    assert mpy & 0xFF == 6  # .mpy v6: files from mpy-cross 1.2x load here
    assert transport.eval("__import__('os').uname().sysname") == "esp32"
    assert transport.eval("__import__('machine').unique_id()") == DEFAULT_UNIQUE_ID
    # raw-paste was refused with R\x00 and the client fell back to the plain raw REPL
    assert transport.use_raw_paste is False


def test_esp32_apis_with_nothing_connected(transport):
    transport.exec("import machine, esp, esp32")
    assert transport.eval("machine.freq()") == 160000000
    assert transport.eval("esp.flash_size()") == 4 * 1024 * 1024
    assert transport.eval("machine.UART(2, 9600).read()") is None
    assert transport.eval("machine.I2C(0).scan()") == []
    transport.exec("n = esp32.NVS('tw'); n.set_i32('boots', 3); n.commit()")
    assert transport.eval("esp32.NVS('tw').get_i32('boots')") == 3


def test_large_exec_goes_through_plain_raw_repl(transport):
    # bigger than mpremote's 256-byte raw REPL chunks
    body = "\n".join(f"v{i} = {i}" for i in range(200)) + "\nprint(sum([v0, v100, v199]))"
    assert transport.exec(body).strip() == b"299"


def test_friendly_repl_over_pyserial(device):
    with serial.Serial(device.port, 115200, timeout=0.2) as s:
        s.write(b"\r\x02")  # Ctrl-B: friendly REPL (prints the banner)
        s.write(b"1 + 2\r")
        seen = _read_until(s, b"3\r\n>>> ")
    assert b"MicroPython v1." in seen


def test_machine_reset_reboots_to_friendly_repl(device):
    with serial.Serial(device.port, 115200, timeout=0.2) as s:
        s.write(b"\r\x03\x01")  # raw REPL
        _read_until(s, b"raw REPL; CTRL-B to exit\r\n>")
        s.write(b"import machine\nmachine.reset()\x04")
        seen = _read_until(s, b">>> ")
    assert b"MicroPython v1." in seen and b"rst:" in seen
    # the filesystem survived the reset
    assert "boot.py" in mpremote(device, "resume", "fs", "ls", ":").stdout


def test_close_releases_the_pty(mpvm_available):
    dev = VirtualDevice().start()
    port = dev.port
    assert Path(port).exists()
    dev.close()
    assert not dev.alive
    with pytest.raises(serial.SerialException):
        serial.Serial(port, 115200, timeout=0.1)


def _read_until(s, ending, timeout=10.0):
    deadline = time.monotonic() + timeout
    seen = b""
    while not seen.endswith(ending):
        assert time.monotonic() < deadline, f"no {ending!r} from the device; got {seen[-300:]!r}"
        seen += s.read(64)
    return seen
