"""Fixtures shared by the firmware tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(mpvm_available):
    """bench/firmware_memory.py as a module: its VM set-up, flash contents and boot code are the
    scenario the memory figures come from."""
    path = ROOT / "bench" / "firmware_memory.py"
    spec = importlib.util.spec_from_file_location("firmware_memory", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
