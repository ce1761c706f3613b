"""Shared test bed: the MicroPython VM fixtures and the two-interpreter harness for vm_*.py modules.

Fixtures
- ``mpvm`` (session): one MicroPython WebAssembly interpreter (tagweigh.mpvm.MicroPythonVM) per
  test process. State is shared between tests: call ``mpvm.reset()`` if you need a clean one.
  Skips with a clear message when Node or the npm package is missing, but FAILS when CI=true.
- ``mpvm_loaded`` (function): the same VM, reset, with ``protocol/twproto`` at /lib/twproto and
  ``firmware/twstation`` at /lib/twstation (importable as ``twproto`` / ``twstation``).
- ``mpvm_available`` (session): no VM, just the same skip/fail check, for tests that start Node
  themselves (tagweigh.virtdev.VirtualDevice).
Tests that use any of these fixtures get the ``mpvm`` marker automatically.

Two-interpreter harness (rules for ``tests/**/vm_*.py``)
Every ``test_*`` function of a ``vm_*.py`` module is collected twice, as ``test_x[cpython]`` and
``test_x[micropython]``: the first runs under pytest as usual, the second runs inside the VM.
So such a module must:
- import only what both interpreters have: ``twproto``, ``twstation``, and the common stdlib
  subset (sys, os, json, struct, binascii, hashlib, gc, ...). No pytest, hypothesis, pathlib,
  typing, dataclasses, f-string ``=``; test functions take no arguments; plain ``assert``.
- name data locations as module-level strings ending in ``_DIR`` (or ``_FILE``) holding a path
  relative to the repository root, e.g. ``VECTORS_DIR = "protocol/vectors"``. The harness copies
  each existing one into the VM at ``/repo/<path>`` and sets the variable to the absolute path in
  each interpreter before the tests run, so functions must read the variable when they run (not at
  import time). Join paths with ``VECTORS_DIR + "/" + name`` (MicroPython has no os.path on ESP32).
- have a basename unique across tests/ (the modules are imported by basename).
Inside the VM the module is imported once per (module, interpreter) from /vmtests, with the VM's
cwd at /repo; its test functions then run one by one in that interpreter, in file order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LIB_TREES = {
    "/lib/twproto": REPO_ROOT / "protocol" / "twproto",
    "/lib/twstation": REPO_ROOT / "firmware" / "twstation",
}
#: Initial heap for tests: larger than an ESP32's so test scaffolding does not dominate.
TEST_HEAP_SIZE = 1024 * 1024
_INTERPRETERS = ("cpython", "micropython")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def load_lib_trees(vm: Any) -> None:
    """Copy twproto and twstation into /lib of a VM (used by fixtures and the harness)."""
    for vm_dir, local in LIB_TREES.items():
        vm.put_tree(local, vm_dir)


# -- fixtures ---------------------------------------------------------------------------------------


def skip_or_fail_unavailable(exc) -> None:
    """Node or the npm package is missing: skip on a user's machine, fail when CI=true."""
    msg = f"MicroPython VM unavailable: {exc}" + (f" ({exc.hint})" if exc.hint else "")
    if _in_ci():
        pytest.fail(f"{msg}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def mpvm_available():
    """Use before starting Node yourself (e.g. a VirtualDevice): skips/fails like ``mpvm``."""
    from tagweigh.mpvm import MicroPythonUnavailable, find_micropython_mjs, find_node

    if not find_node():
        skip_or_fail_unavailable(MicroPythonUnavailable(
            "node not found: the MicroPython VM needs Node.js >= 18",
            hint="install Node.js, or set TAGWEIGH_NODE to its path"))  # fmt: skip
    if find_micropython_mjs() is None:
        skip_or_fail_unavailable(MicroPythonUnavailable(
            "npm package @micropython/micropython-webassembly-pyscript not found",
            hint="run `npm ci` at the repository root, or set TAGWEIGH_NODE_MODULES"))  # fmt: skip


@pytest.fixture(scope="session")
def mpvm(mpvm_available):
    from tagweigh.mpvm import MicroPythonUnavailable, MicroPythonVM

    try:
        vm = MicroPythonVM(heap_size=TEST_HEAP_SIZE)
    except MicroPythonUnavailable as exc:
        skip_or_fail_unavailable(exc)
    yield vm
    vm.close()


@pytest.fixture
def mpvm_loaded(mpvm):
    mpvm.reset()
    load_lib_trees(mpvm)
    return mpvm


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = getattr(item, "fixturenames", ())
        if {"mpvm", "mpvm_loaded", "mpvm_available"} & set(names):
            item.add_marker(pytest.mark.mpvm)


# -- the vm_*.py harness ----------------------------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line("python_files", "vm_*.py")


class VMModule(pytest.Module):
    """A vm_*.py module: every test function also depends on the ``vm_interp`` parameter."""

    def collect(self):
        self.add_marker(pytest.mark.usefixtures("vm_interp"))
        return super().collect()


def pytest_pycollect_makemodule(module_path, parent):
    if module_path.name.startswith("vm_") and module_path.suffix == ".py":
        return VMModule.from_parent(parent, path=module_path)
    return None


def pytest_generate_tests(metafunc):
    if "vm_interp" in metafunc.fixturenames:
        metafunc.parametrize(
            "vm_interp",
            [pytest.param("cpython"), pytest.param("micropython", marks=pytest.mark.mpvm)],
            indirect=True,
        )


def data_vars(module) -> dict[str, str]:
    """Module-level ``*_DIR``/``*_FILE`` strings as repository-relative POSIX paths."""
    out = {}
    for name, value in vars(module).items():
        if not (name.isupper() and name.endswith(("_DIR", "_FILE")) and isinstance(value, str)):
            continue
        p = Path(value)
        if p.is_absolute():
            try:
                p = p.resolve().relative_to(REPO_ROOT)
            except ValueError:
                continue  # outside the repository: not data the harness manages
        out[name] = p.as_posix()
    return out


class _VMModuleState:
    """Which vm_*.py module is loaded in which interpreter generation of the session VM."""

    def __init__(self, vm):
        self.vm = vm
        self.loaded: tuple[str, int] | None = None
        self.data: dict[str, dict[str, str]] = {}

    def ensure(self, module) -> str:
        path = Path(module.__file__).resolve()
        key = (str(path), self.vm.generation)
        alias = "__tw_vmtest"
        if self.loaded == key:
            return alias
        if str(path) not in self.data:
            self.data[str(path)] = data_vars(module)
        rels = self.data[str(path)]
        vm = self.vm
        vm.reset()
        load_lib_trees(vm)
        vm.mkdir("/repo")
        for rel in sorted(set(rels.values())):
            local = REPO_ROOT / rel
            if local.is_dir():
                vm.put_tree(local, "/repo/" + rel)
            elif local.is_file():
                vm.write("/repo/" + rel, local.read_bytes(), source=local)
        vm.write(f"/vmtests/{path.stem}.py", path.read_bytes(), source=path)
        setup = ["import sys, os", "sys.path.append('/vmtests')", "os.chdir('/repo')",
                 f"import {path.stem} as {alias}", "del sys, os"]  # fmt: skip
        setup += [f"{alias}.{name} = {('/repo/' + rel)!r}" for name, rel in rels.items()]
        vm.exec("\n".join(setup))
        self.loaded = (str(path), vm.generation)
        return alias


@pytest.fixture(scope="session")
def _vm_module_state(mpvm):
    return _VMModuleState(mpvm)


@pytest.fixture
def vm_interp(request):
    interp = request.param
    module = request.module
    if interp == "cpython":
        # Same contract as in the VM: data variables name absolute paths when the tests run.
        for name, rel in data_vars(module).items():
            setattr(module, name, str(REPO_ROOT / rel))
        return interp
    state = request.getfixturevalue("_vm_module_state")
    return (state, module)


def pytest_pyfunc_call(pyfuncitem):
    interp = pyfuncitem.funcargs.get("vm_interp")
    if not isinstance(interp, tuple):
        return None  # cpython, or not a vm_*.py test: pytest calls the function itself
    from tagweigh.mpvm import MicroPythonError

    state, module = interp
    failure = None
    try:
        alias = state.ensure(module)
        out = state.vm.exec(f"{alias}.{pyfuncitem.originalname}()")
    except MicroPythonError as exc:
        failure = f"inside MicroPython ({exc.type}):\n{exc.traceback or exc}"
        if exc.stdout:
            failure += f"\n--- printed ---\n{exc.stdout}"
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    if out:
        print(out, end="")  # shown by pytest with the test's captured output
    return True
