"""Fixtures for the operator page's browser tests: headless Chromium from Debian's `chromium`
package driven by Playwright's Python API (Playwright never downloads a browser here: the
binary is passed as executable_path). Without Chromium or Playwright the browser tests skip
with a clear message, but FAIL when CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


def _missing() -> str | None:
    from tagweigh.web.testbed import chromium_path

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install playwright; no browser download needed)"
    if chromium_path() is None:
        return "chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def chromium_available() -> None:
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run in CI: {why}")
        pytest.skip(f"browser tests skipped: {why}")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def playwright_instance(chromium_available):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p
