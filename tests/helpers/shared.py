"""Where the shared reference data lives, and how a test skips (or, under ``VGGT_MV_REQUIRE_SHARED=1``, fails)
when it is absent (conftest's fixtures use these too)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.reference_config import config_from_reference
from vggt_t_mv import ModelConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    return Path(os.environ.get("VGGT_MV_SHARED", REPO_ROOT / ".." / "shared")).resolve()


def require(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; otherwise skip (or fail under VGGT_MV_REQUIRE_SHARED=1)."""
    if path.exists():
        return path
    reason = f"{what} not found at {path}; set VGGT_MV_SHARED or VGGT_MV_FIXTURE"
    if os.environ.get("VGGT_MV_REQUIRE_SHARED") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def fixture_config(fixture_dir: Path) -> ModelConfig:
    """The model configuration described by a fixture folder's config.json (its ``mask`` section included)."""
    return config_from_reference(json.loads((fixture_dir / "config.json").read_text()))
