"""The error map (``app.reconstruct.error_map``): per pixel, the distance of the predicted point to the ground-truth
surface point of that pixel, in the reconstruction's units, and its colours; ``eval --error-maps`` writes it per
camera."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from app.cli.main import main
from app.reconstruct.error_map import INVALID_COLOR, error_colors, nice_limit, surface_error
from tests.helpers.shared import require, shared_dir
from vggt_t_mv.npgeometry import Sim3

HEIGHT, WIDTH = 6, 8
K = np.array([[4.0, 0.0, 4.0], [0.0, 4.0, 3.0], [0.0, 0.0, 1.0]])
IDENTITY = Sim3.identity()


def rays() -> np.ndarray:
    """``[H, W, 3]`` camera-frame rays ``(x, y, 1)`` through the pixel centres of :data:`K`."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    return np.stack([(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones_like(cols)], axis=-1)


def camera_at(centre: np.ndarray) -> np.ndarray:
    """OpenCV camera-from-world ``[3, 4]`` of a camera at ``centre`` looking down +z."""
    return np.concatenate([np.eye(3), -np.asarray(centre, np.float64)[:, None]], axis=1)


def test_a_point_behind_the_wall_is_as_far_as_the_gap_along_its_ray() -> None:
    """Ground truth: a wall at depth 2. Prediction: the same rays at depth 2.5 -> 0.5 x the ray's length."""
    ray = rays()
    predicted = (2.5 * ray)[None]
    errors = surface_error(predicted, IDENTITY, camera_at(np.zeros(3))[None], K[None], np.full((1, HEIGHT, WIDTH), 2.0))
    np.testing.assert_allclose(errors[0], 0.5 * np.linalg.norm(ray, axis=-1), rtol=1e-6)
    assert errors[0, 3, 4] == pytest.approx(0.5)  # the optical axis


def test_errors_come_back_in_reconstruction_units_through_the_similarity() -> None:
    """The reconstruction is the ground truth shrunk by 4 and turned: a 0.2 GT-unit error reads 0.05."""
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    to_gt = Sim3(4.0, rotation, np.array([1.0, -2.0, 0.5]))  # x_gt = 4 R x + t
    centre = np.array([0.3, 0.1, -1.0])
    gt_points = (2.2 * rays()) + centre  # depth 2.2 in GT units, the wall is at depth 2
    recon_points = to_gt.inverse().apply(gt_points)
    wall = np.full((1, HEIGHT, WIDTH), 2.0)
    errors = surface_error(recon_points[None], to_gt, camera_at(centre)[None], K[None], wall)
    np.testing.assert_allclose(errors[0], 0.2 * np.linalg.norm(rays(), axis=-1) / 4.0, rtol=1e-6)


def test_unknown_where_the_ground_truth_says_nothing() -> None:
    ray = rays()
    predicted = np.stack([2.0 * ray, -2.0 * ray])  # camera 1 puts its points behind itself: far from the wall
    predicted[0, 0, 0] = np.nan  # no prediction at one pixel
    depth = np.full((2, HEIGHT, WIDTH), 2.0)
    depth[1, 2:4] = 0.0  # no ground truth on two rows
    depth[1, 4, 4] = np.nan
    cameras = np.stack([camera_at(np.zeros(3))] * 2)
    errors = surface_error(predicted, IDENTITY, cameras, np.stack([K] * 2), depth)
    assert errors.dtype == np.float32 and errors.shape == (2, HEIGHT, WIDTH)
    assert np.isnan(errors[0, 0, 0]) and np.isfinite(errors[0]).sum() == HEIGHT * WIDTH - 1
    assert np.nanmax(np.abs(errors[0])) < 1e-6  # on the wall
    assert np.isnan(errors[1, 2:4]).all() and np.isnan(errors[1, 4, 4]) and np.isfinite(errors[1]).sum() == 31
    np.testing.assert_allclose(errors[1, 0], 4.0 * np.linalg.norm(ray[0], axis=-1), rtol=1e-6)


def test_colour_scale() -> None:
    assert nice_limit(np.array([0.0, 0.01, 0.03, np.nan])) == pytest.approx(0.05)  # 95th pct 0.028 -> 0.05
    assert nice_limit(np.array([1e-7, 2e-7]), floor=0.01) == pytest.approx(0.01)  # a perfect prediction: no noise
    assert nice_limit(np.array([np.nan])) == 1.0
    colors = error_colors(np.array([0.0, 0.5, 1.0, 7.0, np.nan]), 1.0)
    assert colors.dtype == np.uint8 and tuple(colors[4]) == INVALID_COLOR
    low, high = colors[0].astype(int), colors[2].astype(int)
    assert low[2] > low[0] and high[0] > high[2]  # blue at 0, red at the limit
    assert np.array_equal(colors[2], colors[3])  # clipped above the limit


def rig_root() -> Path:
    return require(shared_dir() / "realdata" / "mv_page4d_rig", "mv_page4d_rig")


def test_eval_writes_an_error_map_per_camera_and_timestep(tmp_path: Path) -> None:
    out = tmp_path / "recon"
    run = ["run", rig_root(), "--out", out, "--config", "tiny", "--random-weights", "--device", "cpu", "--size", 42,
           "--max-frames", 2, "--window", 2]  # fmt: skip
    assert CliRunner().invoke(main, [str(a) for a in run]).exit_code == 0
    maps = tmp_path / "maps"
    result = CliRunner().invoke(main, ["eval", str(out), "--gt", str(rig_root()), "--error-maps", str(maps)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in maps.iterdir())
    assert names == [f"t{t:05d}_view{n}.png" for t in range(2) for n in range(4)]
    assert "error maps: 8 images in" in result.stderr and "reconstruction units" in result.stderr
    image = cv2.imread(str(maps / "t00001_view2.png"))
    from app.reconstruct.store import Reconstruction

    height, width = Reconstruction.open(out).image_hw
    assert image.shape == (height + 28, width, 3)
    assert len(np.unique(image[:height].reshape(-1, 3), axis=0)) > 10  # an untrained model is wrong in many ways
    usage = CliRunner().invoke(main, ["eval", "--random-weights", "--gt", "synthetic:1", "--error-maps", str(maps)])
    assert usage.exit_code == 2 and "--error-maps needs a reconstruction folder" in usage.output
