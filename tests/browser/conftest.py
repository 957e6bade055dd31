"""Real-browser tests: Playwright driving Debian's Chromium (`apt-get install chromium`).

Without /usr/bin/chromium the tests are skipped with a reason, unless CI is set, in which
case they fail: CI must run them. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SYNAPSE_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_browser() -> None:
    problem = ""
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        problem = f"{CHROMIUM} not found: install it with `apt-get install chromium`"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is not installed"
    if problem:
        if _in_ci():
            pytest.fail(f"browser tests cannot run in CI: {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    # Module scope: Playwright's sync API keeps an event loop running on this thread
    # until it stops, and the async tests that run after this module need the thread free.

    profile = tempfile.mkdtemp(prefix="synapse-chromium-")
    pw = sync_playwright().start()
    try:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, locale="en-US",
        )
        context.set_default_timeout(15_000)
        yield context
        context.close()
    finally:
        pw.stop()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    p = browser_context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    p.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(autouse=True)
def _close_http_session() -> Iterator[None]:
    """Overrides the async autouse fixture of tests/conftest.py: Playwright's sync API keeps
    an event loop running on this thread, so no other loop may run here. These tests make
    no provider calls in-process (the server is a subprocess), so there is nothing to close."""
    yield
