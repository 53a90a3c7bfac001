"""Fixtures of the browser tests: one Chromium per module (playwright + /usr/bin/chromium).

Skipped when chromium or playwright is missing, except in CI (CI set), where that fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CROWDWATCH_CHROMIUM", "/usr/bin/chromium"))


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright not installed: pip install playwright (no browser download "
                 "needed; the tests use /usr/bin/chromium)")
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} not found: apt-get install chromium (or set CROWDWATCH_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()
