"""A capture whose rig calibration lies beside its frames is ground truth for training and evaluation (issue 25:
"calibration files" among the training data): its cameras only, matched to the capture's cameras as ``run`` matches
them, with the frames undistorted first when the calibration has distortion. Checked on the real mv_page4d_rig
frames with a calibration written from the dataset's own intrs/ + extrs/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from app.capture.truth import CalibrationGroundTruth, open_ground_truth
from app.cli.main import main
from app.train.data import CaptureSequence, TrainDataError, find_captures
from tests.helpers.shared import REPO_ROOT, require, shared_dir
from vggt_t_mv.data.images import read_image
from vggt_t_mv.train.dataset import WindowConfig, WindowDataset

DEMO_WEIGHTS = REPO_ROOT / "assets" / "demo_weights"
HEIGHT, WIDTH = 112, 154
DISTORTION = [-0.12, 0.03, 0.0, 0.0]  # k1, k2, p1, p2 (OpenCV model)


@pytest.fixture(scope="module")
def rig() -> Path:
    return require(shared_dir() / "realdata" / "mv_page4d_rig", "the mv_page4d_rig dataset root")


def dataset_camera(rig: Path, view: int) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's own K [3, 3] and camera-from-world [3, 4] of ``view`` (a static rig: time 0 holds for all)."""
    k = np.load(rig / "intrs" / "time_00" / f"view{view}.npy").astype(np.float64)
    extrinsics = np.load(rig / "extrs" / "time_00" / f"view{view}.npy").astype(np.float64)[:3]
    return k, extrinsics


def capture_with_calibration(rig: Path, folder: Path, distortion: list[float] | None = None) -> Path:
    """The rig's frames (no depths/, intrs/, extrs/) with a calibration.json beside them (this project's schema)."""
    shutil.copytree(rig / "images", folder / "images")
    cameras = []
    for view in range(4):
        k, extrinsics = dataset_camera(rig, view)
        entry = {"name": f"view{view}", "K": k.tolist(), "size": [640, 480]}
        entry |= {"R": extrinsics[:, :3].tolist(), "t": extrinsics[:, 3].tolist()}
        if distortion is not None:
            entry["dist"] = distortion
        cameras.append(entry)
    (folder / "images" / "calibration.json").write_text(json.dumps({"units": "m", "cameras": cameras}))
    return folder / "images"


def one_window(capture: Path):
    sequence = CaptureSequence(capture)
    windows = WindowDataset([sequence], WindowConfig(2, 4, HEIGHT, WIDTH, window_stride=2, camera_offsets="all"))
    (item,) = [i for i, w in enumerate(windows.index) if w.start == 2 and w.camera_offset == 0]
    return sequence, windows[item]


def test_the_cameras_are_the_calibrations_through_the_crop_and_no_depth_is_valid(rig: Path, tmp_path: Path) -> None:
    capture = capture_with_calibration(rig, tmp_path / "rig")
    assert find_captures(capture) == [capture]
    sequence, sample = one_window(capture)
    assert isinstance(sequence.truth, CalibrationGroundTruth)
    assert not sequence.truth.has_depth and not sample.mask_known.any()
    scale = max(HEIGHT / 480, WIDTH / 640)
    offset_x, offset_y = (WIDTH - 640 * scale) / 2, (HEIGHT - 480 * scale) / 2
    for i in range(2):
        for view in range(4):
            k, extrinsics = dataset_camera(rig, view)
            np.testing.assert_allclose(sample.extrinsics[i, view].numpy(), extrinsics, atol=1e-6)
            expected_k = [
                [k[0, 0] * scale, 0, k[0, 2] * scale + offset_x],
                [0, k[1, 1] * scale, k[1, 2] * scale + offset_y],
                [0, 0, 1],
            ]
            np.testing.assert_allclose(sample.intrinsics[i, view].numpy(), expected_k, rtol=1e-6, atol=1e-4)
    assert not sample.valid.any()  # the depth losses and metrics see no pixel, rather than zeros as depth


def test_a_distorted_calibration_undistorts_the_frames_first(rig: Path, tmp_path: Path) -> None:
    plain = capture_with_calibration(rig, tmp_path / "plain")
    distorted = capture_with_calibration(rig, tmp_path / "distorted", DISTORTION)
    _, plain_sample = one_window(plain)
    _, sample = one_window(distorted)
    # independent: OpenCV's own undistortion of the raw frame (newCameraMatrix = K), then the same crop
    k, _ = dataset_camera(rig, 1)
    raw = read_image(rig / "images" / "time_02" / "view1.png").pixels[..., ::-1]  # RGB
    map_x, map_y = cv2.initUndistortRectifyMap(k, np.array(DISTORTION), None, k, (640, 480), cv2.CV_32FC1)
    undistorted = cv2.remap(raw, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    scale = max(HEIGHT / 480, WIDTH / 640)
    resized = cv2.resize(undistorted, (round(640 * scale), round(480 * scale)), interpolation=cv2.INTER_AREA)
    top, left = (resized.shape[0] - HEIGHT) // 2, (resized.shape[1] - WIDTH) // 2
    expected = resized[top : top + HEIGHT, left : left + WIDTH].astype(np.float64) / 255
    got = sample.images[0, 1].permute(1, 2, 0).numpy().astype(np.float64)
    without = plain_sample.images[0, 1].permute(1, 2, 0).numpy().astype(np.float64)
    assert np.abs(got - expected).mean() < 0.02  # the same undistortion (resampling differences aside)
    assert np.abs(without - expected).mean() > 2 * np.abs(got - expected).mean()  # and it is not a no-op


def test_train_and_eval_take_the_capture_through_the_cli(rig: Path, tmp_path: Path) -> None:
    capture = capture_with_calibration(rig, tmp_path / "rig")
    out = tmp_path / "run"
    args = ["train", "--data", str(capture), "--checkpoint", str(DEMO_WEIGHTS), "--steps", "1", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (out / "final").is_dir()
    evaluated = CliRunner().invoke(main, ["eval", str(DEMO_WEIGHTS), "--gt", str(capture)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "ate" in evaluated.output.lower()
    assert isinstance(open_ground_truth(capture), CalibrationGroundTruth)


def test_a_calibration_without_extrinsics_is_refused_naming_the_file(rig: Path, tmp_path: Path) -> None:
    capture = capture_with_calibration(rig, tmp_path / "rig")
    calibration = capture / "calibration.json"
    data = json.loads(calibration.read_text())
    for camera in data["cameras"]:
        del camera["R"], camera["t"]
    calibration.write_text(json.dumps(data))
    with pytest.raises(TrainDataError, match=r"calibration.json.*no extrinsics.*\[R\|t\]"):
        CaptureSequence(capture)
