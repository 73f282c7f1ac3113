"""Lens distortion is removed once per camera before the model: a straight line rendered through a known distortion
comes out straight, in the undistorter and in what a run stores; masks and depth go through the nearest neighbour."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.capture.calibration import CameraCalibration, Distortion
from app.capture.calibration.undistort import Undistorter
from app.reconstruct.pipeline import PipelineConfig, plan_run
from app.reconstruct.run import reconstruct
from app.reconstruct.store import Reconstruction
from vggt_t_mv import WeightsSpec

WIDTH, HEIGHT = 160, 120
K = np.array([[100.0, 0.0, 79.5], [0.0, 100.0, 59.5], [0.0, 0.0, 1.0]])
BARREL = np.array([-0.35, 0.1, 0.0, 0.0, 0.0])
LINE = (np.array([8.0, 12.0]), np.array([152.0, 30.0]))  # a straight segment in the pinhole image (u, v)


def render_distorted_line(distortion: np.ndarray, fisheye: bool = False) -> np.ndarray:
    """A white RGB frame with a dark line that is straight in the *pinhole* image, seen through ``distortion``: each
    distorted pixel is undistorted analytically (cv2.undistortPoints) and darkened near the line."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    pixels = np.stack([u.ravel(), v.ravel()], -1)[:, None]
    if fisheye:
        pinhole = cv2.fisheye.undistortPoints(pixels, K, distortion[:4].reshape(4, 1), P=K)[:, 0]
    else:
        pinhole = cv2.undistortPoints(pixels, K, distortion, P=K)[:, 0]
    a, b = LINE
    direction = (b - a) / np.linalg.norm(b - a)
    offset = pinhole - a
    distance = np.abs(offset[:, 0] * direction[1] - offset[:, 1] * direction[0]).reshape(HEIGHT, WIDTH)
    grey = np.clip(255 * (distance - 0.8) / 1.2, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, -1)


def line_straightness(image: np.ndarray, columns: slice) -> float:
    """Max distance (px) of the dark line's centre in each column from the best straight line through them."""
    darkness = 255.0 - image[..., 0].astype(np.float64)
    cols = np.arange(image.shape[1])[columns]
    rows = np.arange(image.shape[0])
    weights = darkness[:, columns]
    keep = weights.sum(0) > 100
    centres = (weights * rows[:, None]).sum(0)[keep] / weights.sum(0)[keep]
    fit = np.polyfit(cols[keep], centres, 1)
    return float(np.abs(np.polyval(fit, cols[keep]) - centres).max())


@pytest.mark.parametrize("fisheye", [False, True])
def test_a_straight_line_seen_through_distortion_comes_out_straight(fisheye: bool) -> None:
    coefficients = np.array([-0.05, 0.01, 0.0, 0.0]) if fisheye else BARREL
    distorted = render_distorted_line(coefficients, fisheye)
    assert line_straightness(distorted, slice(12, 148)) > 2.0  # the distortion bends it
    camera = CameraCalibration(
        "cam0", K, (WIDTH, HEIGHT), Distortion("fisheye" if fisheye else "opencv", coefficients), None
    )
    undistorter = Undistorter.for_camera(camera, (WIDTH, HEIGHT))
    assert undistorter is not None
    np.testing.assert_array_equal(undistorter.intrinsics, K)  # the undistorted camera is the pinhole K
    assert line_straightness(undistorter.image(distorted), slice(12, 148)) < 0.35
    # masks and depth: nearest neighbour, so labels and depths are values of the input (no blending), 0 outside
    depth = np.where(distorted[..., 0] < 128, 2.0, 5.0).astype(np.float32)
    undistorted_depth = undistorter.nearest(depth)
    assert set(np.unique(undistorted_depth)) <= {0.0, 2.0, 5.0}


def test_no_distortion_is_no_undistorter() -> None:
    camera = CameraCalibration("cam0", K, (WIDTH, HEIGHT), Distortion("opencv", np.zeros(5)))
    assert Undistorter.for_camera(camera, (WIDTH, HEIGHT)) is None


def test_a_run_stores_undistorted_frames(tmp_path: Path) -> None:
    """Through the pipeline: frames of a 2-camera capture rendered with barrel distortion, read with that calibration,
    are stored straight (at the model's resolution), and meta.json records the calibration."""
    capture = tmp_path / "capture"
    frame = render_distorted_line(BARREL)
    for name in ("cam0", "cam1"):
        (capture / name).mkdir(parents=True)
        for t in range(3):
            cv2.imwrite(str(capture / name / f"{t:06d}.png"), frame[..., ::-1])
    calibration = tmp_path / "rig.json"
    entry = {"K": K.tolist(), "size": [WIDTH, HEIGHT], "dist": BARREL.tolist()}
    pose = {"cam0": np.eye(3).tolist(), "cam1": np.eye(3).tolist()}
    cameras = {name: {**entry, "R": pose[name], "t": [0.3 * n, 0, 0]} for n, name in enumerate(pose)}
    calibration.write_text(json.dumps({"cameras": cameras}))
    config = PipelineConfig(device="cpu", window=3, stride=2, calibration=calibration)
    config.preprocess = type(config.preprocess)(size=154, mode="crop")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from app.capture.rig import RigCapture

        plan = plan_run(RigCapture.open(capture), config)
        assert all(u is not None for u in plan.undistorters)
        reconstruct(capture, tmp_path / "recon", WeightsSpec(config="tiny", random_weights=True), config)
    recon = Reconstruction.open(tmp_path / "recon")
    stored = np.asarray(recon.get("images", 0))
    scale = 154 / WIDTH
    for n in range(2):
        assert line_straightness(stored[n], slice(int(14 * scale), int(146 * scale))) < 0.5
    recorded = recon.meta["calibration"]
    assert recorded["format"] == "json" and recorded["units"] == "m"
    assert recorded["cameras"][1]["distortion"] == {"model": "opencv", "coefficients": BARREL.tolist()}
    # the COLMAP export (issue 24): the frames at the capture's resolution, undistorted as the run did, and the
    # calibration's pinhole K (COLMAP's pixel centre at +0.5)
    import pycolmap

    from app.export.api import ExportOptions, Selection, export_reconstruction

    (out,) = export_reconstruction(recon, "colmap", Selection(), tmp_path / "colmap", ExportOptions(merge=True))
    model = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    assert model.num_cameras() == 2 and model.num_images() == 6
    for camera in model.cameras.values():
        assert (camera.width, camera.height) == (WIDTH, HEIGHT)
        np.testing.assert_allclose(camera.params, [K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5], rtol=1e-5)
    for image in model.images.values():
        picture = cv2.imread(str(out / "images" / image.name))[..., ::-1]
        assert picture.shape == (HEIGHT, WIDTH, 3)
        assert line_straightness(picture, slice(12, 148)) < 0.35  # the frame as read bends it by > 2 px
