"""Type-check the station code (twproto + twstation) against the ESP32 MicroPython stubs.

mypy runs once per test process with tests/mypy-firmware.ini; each package gets its own test so a
failure names the package and lists its errors. A probe package proves the stubs are really in
effect (a wrong machine/time call is reported, a right one is not).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "mypy-firmware.ini"
PACKAGES = {"twproto": REPO / "protocol", "twstation": REPO / "firmware"}

PROBE = '''\
import machine
import time


def ok():
    pin = machine.Pin(5, machine.Pin.OUT)
    pin.value(1)
    return time.ticks_diff(time.ticks_ms(), 0)


def bad():
    machine.Pin(5).no_such_method()
    time.ticks_add("soon", 5)
'''


def _dist_root(name: str) -> Path:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name} is not installed (it is in the [dev] extra)", pytrace=False)
    return Path(str(dist.locate_file("")))


def _copy_esp32_stubs(dest: Path) -> Path:
    """The ESP32 stubs install loose into site-packages; copy just them (and the helper package
    they import) into a directory of their own, since site-packages itself cannot be on MYPYPATH."""
    dest.mkdir()
    for dist_name in ("micropython-esp32-stubs", "micropython-stdlib-stubs"):
        dist = metadata.distribution(dist_name)
        tops = {Path(str(f)).parts[0] for f in dist.files or ()}
        for top in sorted(tops):
            src = Path(str(dist.locate_file(top)))
            if top in ("stdlib", "stubs") or top.endswith(".dist-info"):
                continue  # the typeshed layout is used as --custom-typeshed-dir instead
            if src.is_dir():
                shutil.copytree(src, dest / top)
            elif src.suffix == ".pyi":
                shutil.copy2(src, dest / top)
    return dest


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory):
    typeshed = _dist_root("micropython-stdlib-stubs")
    _dist_root("micropython-esp32-stubs")
    if not (typeshed / "stdlib" / "VERSIONS").is_file():
        pytest.fail(f"no typeshed layout (stdlib/VERSIONS) under {typeshed}", pytrace=False)
    work = tmp_path_factory.mktemp("mypy-firmware")
    stubs = _copy_esp32_stubs(work / "stubs")
    probe = work / "probe" / "twprobe"
    probe.mkdir(parents=True)
    (probe / "__init__.py").write_text(PROBE)
    env = dict(os.environ)
    env["MYPYPATH"] = os.pathsep.join(
        [str(stubs), *(str(p) for p in PACKAGES.values()), str(probe.parent)]
    )
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(CONFIG),
           "--custom-typeshed-dir", str(typeshed), "--cache-dir", str(work / "cache"),
           "--no-error-summary", "--show-error-codes", "--hide-error-context",
           "-p", "twprobe", *(a for name in PACKAGES for a in ("-p", name))]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    if proc.returncode not in (0, 1):  # 2 = mypy itself failed (bad config, crash)
        pytest.fail(f"mypy failed to run ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout.splitlines()


def test_stubs_are_in_effect(mypy_report):
    probe = [line for line in mypy_report if "twprobe" in line]
    errors = [line for line in probe if ": error:" in line]
    assert any('"Pin" has no attribute "no_such_method"' in e for e in errors), probe
    assert any("ticks_add" in e for e in errors), probe
    # only the two calls in bad() are wrong: ok() is clean against the stubs
    assert len(errors) == 2, probe


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_type_checks_against_esp32_stubs(mypy_report, package):
    root = PACKAGES[package] / package
    mine = [line for line in mypy_report if _under(line, root)]
    errors = [line for line in mine if ": error:" in line]
    if errors:
        pytest.fail(
            f"mypy (ESP32 stubs, tests/mypy-firmware.ini) found {len(errors)} error(s) in "
            f"{package}:\n" + "\n".join(mine),
            pytrace=False,
        )


def _under(line: str, root: Path) -> bool:
    path = line.split(":", 1)[0]
    try:
        return (REPO / path).resolve().is_relative_to(root.resolve())
    except (OSError, ValueError):
        return False
