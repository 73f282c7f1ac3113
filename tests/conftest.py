"""Shared test fixtures: where the reference data lives, and how to skip (or fail) when it is absent.

``VGGT_MV_SHARED`` points at the shared data folder (default ``<repo>/../shared``);
``VGGT_MV_FIXTURE`` at one VGGT fixture folder (default ``$VGGT_MV_SHARED/reference/vggt_tiny``).
Where the data is missing, tests skip with the reason, unless ``VGGT_MV_REQUIRE_SHARED=1`` (set by
``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from vggt_t_mv import ModelConfig

REPO_ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return require(shared_dir() / "reference", "shared reference data")


@pytest.fixture(scope="session")
def vggt_fixture_dir() -> Path:
    default = shared_dir() / "reference" / "vggt_tiny"
    path = Path(os.environ.get("VGGT_MV_FIXTURE", default)).resolve()
    return require(path / "config.json", "VGGT fixture").parent


def fixture_config(fixture_dir: Path) -> ModelConfig:
    """The model configuration described by a fixture folder's config.json."""
    return ModelConfig.from_upstream_modules(json.loads((fixture_dir / "config.json").read_text())["modules"])


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
