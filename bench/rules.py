"""What the rules engine costs per bag, on the bridge (CPython) and on the station (MicroPython).

Workload: the example depot rule set (protocol/rulesets/example-depot.json, 15 rules, all kinds),
a clean reading that passes every rule (so every rule runs to the end), and the station's
MemoryRuleState(256) filled to capacity with other tags (the worst case: the ring is scanned in
full for DUPLICATE-STEP and MASS-BALANCE).

Figures
- cpython_eval_us: median time of evaluate() on CPython (bridge), microseconds.
- cpython_load_ms: median time to parse, validate and hash the rule set on CPython.
- mp_eval_alloc_b: MicroPython heap bytes allocated by one evaluate() of a clean reading
  (gc.mem_alloc() delta in the official MicroPython WebAssembly VM; same bytecode as the ESP32).
- mp_reject_alloc_b: the same for a rejected reading with four findings.
- mp_load_alloc_b: heap bytes allocated while loading the rule set (transient, mostly garbage).
- mp_state_b: heap bytes held by MemoryRuleState(256) (after collection).
- mp_ruleset_b: heap bytes held by the loaded example rule set (document + compiled rules).
- mp_eval_ms: time of one evaluate() inside the wasm VM (indicative only: not ESP32 speed).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "protocol"))

from twproto import ruleset, tags  # noqa: E402
from twproto.rules import MemoryRuleState, evaluate  # noqa: E402

EXAMPLE = REPO / "protocol" / "rulesets" / "example-depot.json"
T0 = 1790000000

SETUP = """
from twproto import ruleset, tags
from twproto.rules import MemoryRuleState, evaluate
class R:
    pass
def mk(tag, net, stable, op, step):
    r = R()
    r.seq = 1000; r.flags = 0; r.step = step; r.tag_kind = 3; r.tag = tag; r.time = %d
    r.boot = 1; r.uptime_ms = 0; r.net_g = net; r.tare_g = 0; r.e_g = 20; r.operator = op
    r.cal_id = 1; r.prev = 0; r.stable = stable; r.out_of_range = False; r.time_synced = True
    return r
rs = ruleset.load_file('/data/example-depot.json')
class V:
    verdict = 0
    def __init__(self, k):
        self.tag_key = k
st = MemoryRuleState(256, %d)
for i in range(256):
    st.record(mk(b'x', 40000, True, 201, 1 + i %% 3), V('SK%%07d' %% (20000 + i)))
good = mk(b'SK0010001A', 41000, True, 201, 2)
good.ruleset_id = rs.id
bad = mk(b'SK0010001B', 95000, False, 201, 2)
bad.ruleset_id = rs.id
import gc
gc.collect()
""" % (T0, T0 - 86400)


class Reading:
    def __init__(self, tag, net, stable=True, op=201, step=2, seq=1000):
        self.seq, self.flags, self.step, self.tag_kind, self.tag = seq, 0, step, 3, tag
        self.time, self.boot, self.uptime_ms, self.net_g, self.tare_g, self.e_g = T0, 1, 0, net, 0, 20
        self.operator, self.cal_id, self.prev, self.stable, self.out_of_range = op, 1, 0, stable, False
        self.time_synced = True
        self.ruleset_id = 0


class _V:
    verdict = 0

    def __init__(self, k):
        self.tag_key = k


def cpython_figures() -> dict[str, float]:
    text = EXAMPLE.read_bytes()
    loads = []
    for _ in range(30):
        t = time.perf_counter()
        rs = ruleset.load(text)
        loads.append(time.perf_counter() - t)
    st = MemoryRuleState(256, T0 - 86400)
    for i in range(256):
        st.record(Reading(b"x", 40000, step=1 + i % 3), _V("SK%07d" % (20000 + i)))
    r = Reading(b"SK0010001A", 41000)
    r.ruleset_id = rs.id
    assert evaluate(rs, r, st, T0).verdict == 0
    runs = []
    for _ in range(7):
        n = 2000
        t = time.perf_counter()
        for _ in range(n):
            evaluate(rs, r, st, T0)
        runs.append((time.perf_counter() - t) / n)
    return {
        "cpython_eval_us": round(statistics.median(runs) * 1e6, 1),
        "cpython_load_ms": round(statistics.median(loads) * 1e3, 2),
    }


def _held(vm, stmt: str) -> int:
    """Heap bytes still in use after `stmt` (separate requests, so no stale stack references)."""
    vm.exec("import gc\ngc.collect()\n__a = gc.mem_alloc()")
    vm.exec(stmt)
    vm.exec("gc.collect()\n__h = gc.mem_alloc() - __a")
    return int(vm.eval_json("__h"))


def vm_figures() -> dict[str, float]:
    sys.path.insert(0, str(REPO / "host"))
    from tagweigh.mpvm import MicroPythonVM

    with MicroPythonVM(heap_size=1024 * 1024) as vm:
        vm.put_tree(REPO / "protocol" / "twproto", "/lib/twproto")
        vm.mkdir("/data")
        vm.write("/data/example-depot.json", EXAMPLE.read_bytes())
        load_b = vm.measure_alloc("ruleset.load_file('/data/example-depot.json')",
                                  setup="from twproto import ruleset")
        vm.exec("from twproto.rules import MemoryRuleState")
        state_b = _held(vm, "__s = MemoryRuleState(256)")
        rs_b = _held(vm, "__rs = ruleset.load_file('/data/example-depot.json')")
        vm.exec(SETUP)
        assert vm.eval_json("evaluate(rs, good, st, None).verdict") == 0
        assert vm.eval_json("len(evaluate(rs, bad, st, None).findings)") == 4
        eval_b = vm.measure_alloc("evaluate(rs, good, st, None)", number=10) / 10
        rej_b = vm.measure_alloc("evaluate(rs, bad, st, None)", number=10) / 10
        vm.exec("import time\nt0 = time.ticks_us()\nfor _ in range(50):\n    evaluate(rs, good, st, None)\n"
                "dt = time.ticks_diff(time.ticks_us(), t0)")
        eval_ms = vm.eval_json("dt") / 50 / 1000
    return {
        "mp_eval_alloc_b": round(eval_b),
        "mp_reject_alloc_b": round(rej_b),
        "mp_load_alloc_b": load_b,
        "mp_state_b": state_b,
        "mp_ruleset_b": rs_b,
        "mp_eval_ms": round(eval_ms, 2),
    }


def main() -> None:
    figs = cpython_figures()
    print(f"CPython: evaluate {figs['cpython_eval_us']} us, load+validate+hash {figs['cpython_load_ms']} ms")
    try:
        vm = vm_figures()
    except Exception as exc:  # the VM needs Node; the CPython figures still stand
        print(f"MicroPython VM unavailable: {exc!r}")
        vm = {}
    if vm:
        print(f"MicroPython: evaluate allocates {vm['mp_eval_alloc_b']} B (clean) / "
              f"{vm['mp_reject_alloc_b']} B (4 findings), load {vm['mp_load_alloc_b']} B transient, "
              f"state(256) holds {vm['mp_state_b']} B, "
              f"the loaded rule set holds {vm['mp_ruleset_b']} B, {vm['mp_eval_ms']} ms per evaluate in wasm")
    figs.update(vm)
    print(" ".join(f"{k}={v}" for k, v in figs.items()))


if __name__ == "__main__":
    main()
