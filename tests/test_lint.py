"""The code base stays ruff clean (rules in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.helpers.shared import REPO_ROOT


def test_ruff_check_is_clean() -> None:
    ruff = shutil.which("ruff") or [sys.executable, "-m", "ruff"]
    command = [ruff, "check", "."] if isinstance(ruff, str) else [*ruff, "check", "."]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
