"""Optional system packages the tests may need (libusb for open3d, Chromium for the browser tests, COLMAP's command
line for reading exports back with it), and how a test
skips (or, under ``VGGT_MV_REQUIRE_SYSTEM_PACKAGES=1``, fails) when one is missing.

Tests mark what they need (``needs_open3d``, ``browser``, ``needs_colmap``); ``tests/conftest.py`` checks
before each marked test. ``.ci/run`` installs the packages and sets the variable, so CI never skips them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.common.optional import open3d_missing

REQUIRE_SYSTEM_PACKAGES = "VGGT_MV_REQUIRE_SYSTEM_PACKAGES"
CHROMIUM = Path("/usr/bin/chromium")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, with the fix (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing; install it with `sudo apt-get install chromium` (.ci/run does it)"
    return None


def colmap_missing() -> str | None:
    """Why COLMAP's own command line cannot be run here, with the fix (None when it can)."""
    if shutil.which("colmap") is None:
        return "the colmap command is missing; install it with `sudo apt-get install colmap` (.ci/run does it)"
    return None


MISSING = {
    "needs_open3d": open3d_missing,
    "browser": browser_missing,
    "needs_colmap": colmap_missing,
}  # marker -> why it cannot run (None: it can)


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; fail instead under ``VGGT_MV_REQUIRE_SYSTEM_PACKAGES=1``."""
    if os.environ.get(REQUIRE_SYSTEM_PACKAGES) == "1":
        pytest.fail(f"{reason} ({REQUIRE_SYSTEM_PACKAGES}=1)")
    pytest.skip(reason)


def check_markers(item: pytest.Item) -> None:
    """Skip (or fail) ``item`` when a system package one of its markers needs is missing."""
    for marker, missing in MISSING.items():
        if item.get_closest_marker(marker) is not None and (reason := missing()) is not None:
            skip_or_fail(reason)
