"""End-to-end tests: every test here gets the `e2e` marker (select with `-m e2e`, skip with
`-m "not e2e"`), and a `rig` factory whose rigs are torn down (stations, relays, bridges) after
the test. On failure the paths of the station and bridge logs are printed."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def rig(tmp_path, request):
    from e2e_harness import Rig

    made: list[Rig] = []

    def make(specs, **kw) -> Rig:
        r = Rig(tmp_path / f"rig{len(made)}", specs, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for r in made:
            print(f"logs: {r.dir}/bridge.log, {r.dir}/stations/*/station.log")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep
