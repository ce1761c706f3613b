"""A real MicroPython interpreter for tests, benchmarks and the virtual device.

`MicroPythonVM` drives the official MicroPython WebAssembly build (npm package
``@micropython/micropython-webassembly-pyscript``) inside ONE long-lived Node process running
``mpvm_runner.mjs``. Python and Node talk over the child's stdin/stdout with length-prefixed JSON
frames (see the runner's header); every request has a deadline, and a request that misses it kills
Node, so a runaway loop in VM code cannot hang the caller.

Typical use::

    with MicroPythonVM() as vm:
        vm.put_tree("protocol/twproto", "/lib/twproto")
        vm.exec("import twproto.port as p")
        assert vm.eval_json("p.ticks_diff(1, 2)") == -1

Memory figures (for ``bench/firmware_memory.py``): ``vm.measure_alloc(stmt, setup=...)`` runs
``stmt`` ``number`` times with the collector disabled and returns the bytes allocated on the
MicroPython heap (``gc.mem_alloc()`` delta minus the delta of an empty loop). To prove a path
allocates nothing, ``vm.exec("import micropython\\nmicropython.heap_lock()\\ntry:\\n    f()\\n"
"finally:\\n    micropython.heap_unlock()")`` raises ``MicroPythonError`` (MemoryError) at the
first allocation, with the VM traceback pointing at it.

What differs from an ESP32 (documented, not hidden):
- floats are double precision here, single precision on the ESP32;
- the GC heap grows on demand (the build splits its heap), so ``heap_size`` is the initial heap,
  not a ceiling: measure with ``measure_alloc`` instead of waiting for a MemoryError;
- the filesystem is Emscripten's (VfsPosix), not littlefs; with ``esp32_env=True`` (default) the
  os/open errno values are translated to MicroPython's (ENOENT = 2, not Emscripten's 44) and the
  modules that the wasm build freezes but ESP32 firmware lacks (hmac, logging, datetime, ...) raise
  ImportError, as they would on the station;
- no ``machine``/``esp32``/``network`` modules (the virtual device adds stubs of its own);
- ``sys.path`` is ``['', '/_esp32', '.frozen', '/lib']``: put packages under ``/lib``.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shutil
import struct
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Any

from .errors import TagweighError

__all__ = [
    "DEFAULT_HEAP_SIZE",
    "ESP32_BOOT",
    "MicroPythonError",
    "MicroPythonTimeout",
    "MicroPythonUnavailable",
    "MicroPythonVM",
    "esp32_env_files",
    "find_micropython_mjs",
    "find_node",
]

NPM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
#: Initial GC heap: about what a plain ESP32 (no PSRAM) leaves to Python after boot.
DEFAULT_HEAP_SIZE = 110 * 1024
DEFAULT_TIMEOUT = 30.0
#: Cap on one reply frame; the peer is our own child, but a corrupted length must not eat memory.
_MAX_FRAME = 64 * 1024 * 1024
_RUNNER = Path(__file__).with_name("mpvm_runner.mjs")
_REPO_ROOT = Path(__file__).resolve().parents[2]

# Modules the wasm build freezes that stock ESP32 firmware does not have: importing them in the VM
# must fail the way it would on the station.
ESP32_MISSING_MODULES = (
    "abc", "base64", "copy", "datetime", "fnmatch", "functools", "gzip", "hmac", "html", "inspect",
    "itertools", "locale", "logging", "operator", "pathlib", "stat", "string", "tarfile", "types",
    "unittest", "uu", "zlib",
)  # fmt: skip

# Emscripten errno -> MicroPython errno (MicroPython uses the Linux numbers on every port).
_ERRNO_NAMES_EMSCRIPTEN_TO_MP = {
    # name: (emscripten, micropython)
    "EPERM": (63, 1), "ENOENT": (44, 2), "EIO": (29, 5), "EBADF": (8, 9), "EAGAIN": (6, 11),
    "ENOMEM": (48, 12), "EACCES": (2, 13), "EBUSY": (10, 16), "EEXIST": (20, 17),
    "EXDEV": (75, 18), "ENODEV": (43, 19), "ENOTDIR": (54, 20), "EISDIR": (31, 21),
    "EINVAL": (28, 22), "ENFILE": (41, 23), "EMFILE": (33, 24), "EFBIG": (22, 27),
    "ENOSPC": (51, 28), "ESPIPE": (70, 29), "EROFS": (69, 30), "ENAMETOOLONG": (37, 36),
    "ENOSYS": (52, 38), "ENOTEMPTY": (55, 39), "ELOOP": (32, 40), "EOPNOTSUPP": (138, 95),
}  # fmt: skip
ERRNO_MAP = {em: mp for em, mp in _ERRNO_NAMES_EMSCRIPTEN_TO_MP.values()}

# Installed as /_esp32/_tw_env.py and imported once in every fresh interpreter (esp32_env=True).
_ESP32_ENV = """# tagweigh test VM: make this interpreter behave like ESP32 firmware (see tagweigh.mpvm).
import os, builtins

_MAP = %(errno_map)r


def _errno_mapped(f):
    def call(*a, **k):
        try:
            return f(*a, **k)
        except OSError as e:
            n = _MAP.get(e.errno)
            if n is None:
                raise
            raise OSError(n)  # the same number MicroPython on the ESP32 raises

    return call


for _name in ("stat", "remove", "unlink", "rename", "mkdir", "rmdir", "listdir", "ilistdir",
              "chdir", "statvfs"):
    setattr(os, _name, _errno_mapped(getattr(os, _name)))
builtins.open = _errno_mapped(builtins.open)
"""
#: Run in a fresh interpreter after writing esp32_env_files(): ESP32 sys.path order plus /_esp32.
ESP32_BOOT = "import sys\nsys.path[:] = ['', '/_esp32', '.frozen', '/lib']\nimport _tw_env\ndel sys, _tw_env\n"


def esp32_env_files() -> dict[str, bytes]:
    """VM files that make imports and errno values behave as on ESP32 firmware (module doc):
    an ImportError stub per module the ESP32 lacks, and ``_tw_env`` (errno translation)."""
    files = {}
    for name in ESP32_MISSING_MODULES:
        stub = f"raise ImportError(\"no module named '{name}' (not in ESP32 firmware)\")\n"
        files[f"/_esp32/{name}.py"] = stub.encode()
    files["/_esp32/_tw_env.py"] = (_ESP32_ENV % {"errno_map": ERRNO_MAP}).encode()
    return files


class MicroPythonError(TagweighError):
    """Code inside the VM raised (or the VM failed). Carries the VM's own traceback."""

    def __init__(self, type_: str, message: str, traceback: str = "", stdout: str = ""):
        self.type = type_
        self.message = message
        self.traceback = traceback
        self.stdout = stdout
        text = traceback.rstrip() if traceback else f"{type_}: {message}"
        if stdout:
            text = f"{text}\n--- VM output before the error ---\n{stdout.rstrip()}"
        super().__init__(f"MicroPython VM: {text}")


class MicroPythonTimeout(MicroPythonError):
    """A request missed its deadline; the Node process was killed (the next request restarts it)."""


class MicroPythonUnavailable(TagweighError):
    """Node or the npm MicroPython package is missing, so no VM can be started."""


def find_node() -> str | None:
    """Path of the node executable: env ``TAGWEIGH_NODE`` or the PATH."""
    env = os.environ.get("TAGWEIGH_NODE")
    if env:
        return env if os.path.exists(env) else None
    return shutil.which("node")


def find_micropython_mjs() -> Path | None:
    """Locate ``micropython.mjs`` of the npm package.

    Looks in ``$TAGWEIGH_NODE_MODULES`` (a node_modules directory), then the repository root of
    this checkout, then the current directory and its parents.
    """
    candidates: list[Path] = []
    env = os.environ.get("TAGWEIGH_NODE_MODULES")
    if env:
        candidates.append(Path(env))
    candidates.append(_REPO_ROOT / "node_modules")
    cwd = Path.cwd().resolve()
    candidates.extend(d / "node_modules" for d in (cwd, *cwd.parents))
    for nm in candidates:
        mjs = nm / NPM_PACKAGE / "micropython.mjs"
        if mjs.is_file():
            return mjs
    return None


_TB_FILE = re.compile(r'^(\s*)File "([^"]+)", line (\d+)')


class MicroPythonVM:
    """One MicroPython interpreter in a Node child process. Not thread-safe; one user at a time.

    ``heap_size``: initial GC heap in bytes (the wasm heap grows past it; see module doc).
    ``timeout``: default deadline in seconds for each request.
    ``esp32_env``: make imports and errno values behave as on ESP32 firmware (module doc).
    ``generation`` counts interpreters: it changes on ``reset()`` and on restart after a crash.
    """

    def __init__(
        self,
        *,
        heap_size: int = DEFAULT_HEAP_SIZE,
        pystack: int = 2048,
        timeout: float = DEFAULT_TIMEOUT,
        esp32_env: bool = True,
        node: str | None = None,
        micropython_mjs: str | os.PathLike[str] | None = None,
    ):
        self.heap_size = heap_size
        self.pystack = pystack
        self.timeout = timeout
        self.esp32_env = esp32_env
        node = node or find_node()
        if node and not os.path.isfile(node):
            node = shutil.which(node)
        if not node:
            raise MicroPythonUnavailable(
                "node not found: the MicroPython VM needs Node.js >= 18",
                hint="install Node.js, or set TAGWEIGH_NODE to its path",
            )
        mjs = Path(micropython_mjs) if micropython_mjs else find_micropython_mjs()
        if mjs is None or not mjs.is_file():
            raise MicroPythonUnavailable(
                f"npm package {NPM_PACKAGE} not found",
                hint="run `npm ci` at the repository root, or set TAGWEIGH_NODE_MODULES",
            )
        self._node = node
        self._mjs = mjs
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[Any] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=50)
        #: VM path -> host file it was copied from (used to show source lines in tracebacks).
        self.sources: dict[str, Path] = {}
        self.generation = 0
        self._fresh()

    # -- process management -------------------------------------------------------------------

    def _spawn(self) -> None:
        self._replies = queue.Queue()
        self._stderr.clear()
        proc = subprocess.Popen(
            [self._node, str(_RUNNER), str(self._mjs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._proc = proc
        threading.Thread(target=self._read_replies, args=(proc, self._replies), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(proc,), daemon=True).start()

    @staticmethod
    def _read_exact(stream: Any, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = stream.read(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def _read_replies(self, proc: subprocess.Popen[bytes], out: queue.Queue[Any]) -> None:
        stream = proc.stdout
        try:
            while True:
                head = self._read_exact(stream, 4)
                if head is None:
                    break
                (n,) = struct.unpack("<I", head)
                if n > _MAX_FRAME:
                    out.put(RuntimeError(f"reply frame of {n} bytes exceeds the limit"))
                    break
                body = self._read_exact(stream, n)
                if body is None:
                    break
                out.put(json.loads(body.decode("utf-8")))
        except (OSError, ValueError) as exc:
            out.put(exc)
        out.put(EOFError("node exited"))

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill does not fail on POSIX
            pass
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                f.close()

    def _fresh(self) -> None:
        """Start Node if needed and create a fresh interpreter (with its fresh filesystem)."""
        if self._proc is None or self._proc.poll() is not None:
            self._kill()
            self._spawn()
        self._request({"op": "init", "heapsize": self.heap_size, "pystack": self.pystack})
        self.generation += 1
        self.sources = {}
        self._request({"op": "mkdir", "path": "/lib"})
        if self.esp32_env:
            for path, data in esp32_env_files().items():
                self._request({"op": "write", "path": path, "data_b64": _b64(data)})
            self.exec(ESP32_BOOT)

    def _request(self, req: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        if self._proc is None or self._proc.poll() is not None:
            if req["op"] == "init":
                self._spawn()
            else:
                # Crashed or timed out earlier: come back as a fresh interpreter, and say so.
                self._fresh()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        body = json.dumps(req).encode("utf-8")
        deadline = self.timeout if timeout is None else timeout
        try:
            proc.stdin.write(struct.pack("<I", len(body)) + body)
            proc.stdin.flush()
        except OSError as exc:
            self._kill()
            raise MicroPythonError("VMCrash", f"cannot write to node: {exc}{self._stderr_tail()}")
        try:
            reply = self._replies.get(timeout=deadline)
        except queue.Empty:
            self._kill()
            raise MicroPythonTimeout(
                "Timeout",
                f"request {req['op']!r} took longer than {deadline:g} s; node was killed "
                "(the next request starts a fresh interpreter)",
            ) from None
        if isinstance(reply, BaseException):
            self._kill()
            raise MicroPythonError("VMCrash", f"node failed: {reply}{self._stderr_tail()}")
        if reply.get("dead"):
            self._kill()
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise MicroPythonError(
                err.get("type", "Error"),
                err.get("message", ""),
                self._annotate(err.get("traceback", "")),
                reply.get("stdout", ""),
            )
        return reply

    def _stderr_tail(self) -> str:
        tail = "\n".join(list(self._stderr)[-10:])
        return f"\nnode stderr:\n{tail}" if tail else ""

    def _annotate(self, tb: str) -> str:
        """Add the source line under each traceback entry whose file we copied from the host."""
        out = []
        for line in tb.splitlines():
            out.append(line)
            m = _TB_FILE.match(line)
            if m and m.group(2) in self.sources:
                try:
                    src = self.sources[m.group(2)].read_text("utf-8").splitlines()
                    out.append(f"{m.group(1)}    {src[int(m.group(3)) - 1].strip()}")
                except (OSError, IndexError, UnicodeDecodeError):
                    pass
        return "\n".join(out) + ("\n" if tb.endswith("\n") else "")

    # -- public API -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Replace the interpreter and its filesystem with fresh ones (a few ms)."""
        self._fresh()

    def close(self) -> None:
        """Stop Node. The object cannot be used afterwards."""
        proc = self._proc
        if proc is not None and proc.stdin is not None and proc.poll() is None:
            try:
                proc.stdin.close()
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()

    def __enter__(self) -> MicroPythonVM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mkdir(self, path: str) -> None:
        """``mkdir -p`` inside the VM filesystem."""
        self._request({"op": "mkdir", "path": path})

    def write(self, path: str, data: bytes | str, *, source: Path | None = None) -> None:
        """Write one file into the VM filesystem (parent directories are created)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._request({"op": "write", "path": path, "data_b64": _b64(data)})
        if source is not None:
            self.sources[path] = source

    def read(self, path: str) -> bytes:
        """Read one file from the VM filesystem."""
        return base64.b64decode(self._request({"op": "read", "path": path})["data_b64"])

    def put_tree(self, local_dir: str | os.PathLike[str], vm_dir: str) -> int:
        """Copy a host directory into the VM at ``vm_dir`` (skipping ``__pycache__`` and dot
        files). Returns the number of files copied."""
        root = Path(local_dir)
        if not root.is_dir():
            raise TagweighError(f"put_tree: {root} is not a directory")
        vm_dir = "/" + vm_dir.strip("/")
        self.mkdir(vm_dir)
        count = 0
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
                continue
            if path.is_file():
                self.write(f"{vm_dir}/{rel.as_posix()}", path.read_bytes(), source=path.resolve())
                count += 1
        return count

    def exec(self, code: str, *, timeout: float | None = None) -> str:
        """Run code in the interpreter's ``__main__`` (state persists between calls).

        Returns what it printed; raises MicroPythonError with the VM traceback if it raised.
        """
        return self._request({"op": "exec", "code": code}, timeout)["stdout"]

    def eval_json(self, expr: str, *, timeout: float | None = None) -> Any:
        """Evaluate ``expr`` in the VM and return its value through ``json.dumps`` there."""
        code = f"__tw_json = __import__('json').dumps({expr})"
        reply = self._request({"op": "exec", "code": code, "result": "__tw_json"}, timeout)
        self._request({"op": "exec", "code": "del __tw_json"})
        return json.loads(reply["value"])

    def measure_alloc(self, stmt: str, *, setup: str = "", number: int = 1) -> int:
        """Bytes the MicroPython heap grows by while running ``stmt`` ``number`` times.

        ``setup`` runs first (in ``__main__``; its names are visible to ``stmt``). The statement
        is compiled into a function beforehand, with the collector disabled during the run, and the
        cost of the empty loop is subtracted, so the figure is what ``stmt`` itself allocates.
        gc.mem_alloc() counts in 16-byte blocks.
        """
        if setup:
            self.exec(setup)
        body = "\n".join("        " + line for line in stmt.splitlines())
        code = (
            "def __tw_measure():\n"
            "    import gc\n"
            "    def run():\n"
            f"      for _ in range({int(number)}):\n"
            f"{body}\n"
            "    def empty():\n"
            f"      for _ in range({int(number)}):\n"
            "        pass\n"
            "    out = []\n"
            "    for f in (empty, run):\n"
            "        gc.collect()\n"
            "        gc.disable()\n"
            "        try:\n"
            "            a = gc.mem_alloc()\n"
            "            f()\n"
            "            out.append(gc.mem_alloc() - a)\n"
            "        finally:\n"
            "            gc.enable()\n"
            "    return out[1] - out[0]\n"
        )
        self.exec(code)
        try:
            return int(self.eval_json("__tw_measure()"))
        finally:
            self.exec("del __tw_measure")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
