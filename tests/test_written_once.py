"""Code the architecture says is written once stays so: the size of a frame grid (``num_timesteps``,
``num_cameras``, ``image_hw`` from ``images [T, N, H, W, 3]``) has one definition, shared by the recorded
``Sequence`` and the ``SyntheticRig``."""

from __future__ import annotations

import ast

import numpy as np

from tests.helpers.shared import REPO_ROOT
from vggt_t_mv.data.recorded import FrameGrid, Sequence
from vggt_t_mv.data.synthetic import SyntheticRig

SIZE_PROPERTIES = ("num_timesteps", "num_cameras", "image_hw")


def reads_self_images(function: ast.FunctionDef) -> bool:
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "images"
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        for node in ast.walk(function)
    )


def test_the_size_of_a_frame_grid_is_written_once() -> None:
    places: dict[str, list[str]] = {name: [] for name in SIZE_PROPERTIES}
    for package in ("app", "vggt_t_mv"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef) and item.name in places and reads_self_images(item):
                            places[item.name].append(f"{path.relative_to(REPO_ROOT)} {node.name}")
    assert places == {name: ["vggt_t_mv/data/recorded.py FrameGrid"] for name in SIZE_PROPERTIES}


def test_sequence_and_synthetic_rig_share_it() -> None:
    images = np.zeros((5, 3, 4, 6, 3), np.uint8)
    zeros = np.zeros((5, 3, 4, 6))
    sequence = Sequence(images, zeros, zeros > 0, np.zeros((5, 3, 3, 4)), np.zeros((5, 3, 3, 3)), zeros > 0)
    rig = SyntheticRig(images, zeros, zeros > 0, np.zeros((5, 3, 4, 6, 3)), np.zeros((5, 3, 3, 4)),
                       np.zeros((5, 3, 3, 3)), zeros > 0, ["a", "b", "c"], 10.0, 0)  # fmt: skip
    for grid in (sequence, rig):
        assert isinstance(grid, FrameGrid)
        assert (grid.num_timesteps, grid.num_cameras, grid.image_hw) == (5, 3, (4, 6))
