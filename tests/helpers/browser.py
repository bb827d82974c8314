"""Headless Chromium for the dashboard tests: Debian's `chromium` + `chromium-driver` driven by Selenium.

Nothing is downloaded here: the browser and its driver come from the system (`make browser` installs them with apt);
when one is missing the tests skip and say which. Screenshots go under test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM = ("chromium", "chromium-browser")
DRIVER = ("chromedriver",)


def _which(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name) or (f"/usr/lib/chromium/{name}" if Path(f"/usr/lib/chromium/{name}").exists()
                                       else None)
        if found:
            return found
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver (skips the test with the reason when the browser, driver or selenium lacks)."""
    try:
        from selenium import webdriver  # the test extra; only these tests need it
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    binary, driver = _which(CHROMIUM), _which(DRIVER)
    if binary is None or driver is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed: `make browser` (apt) installs them")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    web = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield web
    finally:
        web.quit()


def console_errors(web: Any) -> list[str]:
    """The browser console's SEVERE entries since the last call (failed resources, uncaught errors, CSP refusals)."""
    return [e["message"] for e in web.get_log("browser") if e.get("level") == "SEVERE"]
