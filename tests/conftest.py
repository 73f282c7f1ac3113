"""Shared test fixtures: where the reference data lives, and how to skip (or fail) when it is absent.

``VGGT_MV_SHARED`` points at the shared data folder (default ``<repo>/../shared``);
``VGGT_MV_FIXTURE`` at one VGGT fixture folder (default ``$VGGT_MV_SHARED/reference/vggt_tiny``), or at
several separated by ``os.pathsep``: the upstream-equivalence tests run every fixture folder of the reference
format under ``$VGGT_MV_SHARED/reference/`` (VGGT and PAGE-4D) plus those.
Where the data is missing, tests skip with the reason, unless ``VGGT_MV_REQUIRE_SHARED=1`` (set by
``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tests.helpers.shared import require, shared_dir
from tests.helpers.system import check_markers


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return require(shared_dir() / "reference", "shared reference data")


def extra_fixture_dirs() -> list[Path]:
    """The folders named by ``VGGT_MV_FIXTURE`` (``os.pathsep``-separated), if set."""
    value = os.environ.get("VGGT_MV_FIXTURE", "")
    return [Path(part).resolve() for part in value.split(os.pathsep) if part]


@pytest.fixture(scope="session")
def vggt_fixture_dir() -> Path:
    extra = extra_fixture_dirs()
    path = extra[0] if extra else shared_dir() / "reference" / "vggt_tiny"
    return require(path / "config.json", "VGGT fixture").parent


def is_upstream_fixture(folder: Path) -> bool:
    """A folder of the reference format: config.json with upstream ``modules`` (an ``aggregator``), weights and io."""
    config = folder / "config.json"
    if not all((folder / name).is_file() for name in ("config.json", "weights.safetensors", "io.safetensors")):
        return False
    return "aggregator" in json.loads(config.read_text()).get("modules", {})


def upstream_fixture_dirs() -> list[Path]:
    """Every reference-format fixture folder: those under ``$VGGT_MV_SHARED/reference/`` and ``VGGT_MV_FIXTURE``."""
    reference = shared_dir() / "reference"
    found = sorted(p.resolve() for p in reference.iterdir() if p.is_dir()) if reference.is_dir() else []
    found += [p for p in extra_fixture_dirs() if p not in found]
    return [p for p in found if is_upstream_fixture(p)]


_UPSTREAM_FIXTURES = upstream_fixture_dirs()


@pytest.fixture(
    scope="module",
    params=_UPSTREAM_FIXTURES or [None],
    ids=[p.name for p in _UPSTREAM_FIXTURES] or ["no-fixtures"],
)
def upstream_fixture_dir(request: pytest.FixtureRequest) -> Path:
    """Each reference-format fixture folder in turn (:func:`upstream_fixture_dirs`)."""
    if request.param is None:
        require(shared_dir() / "reference" / "vggt_tiny", "reference fixture folders")
    return request.param


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``needs_open3d`` / ``browser`` / ``needs_colmap`` skip (or fail in CI) where the system package is
    missing."""
    check_markers(item)
