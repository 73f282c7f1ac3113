"""Capture layouts: time-major trees (one folder per timestep), dataset roots with images/, and the cases that must
not be read silently the wrong way round."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from app.capture.rig import CaptureOptions, RigCapture
from app.capture.sources import CaptureError, CaptureWarning
from app.cli.main import main
from tests.helpers.capture import solid_color, write_solid_rig
from tests.helpers.shared import require, shared_dir

TINY = ["--config", "tiny", "--random-weights", "--device", "cpu"]


def rig_root() -> Path:
    return require(shared_dir() / "realdata" / "mv_page4d_rig", "mv_page4d_rig")


def open_quiet(path: Path, **options) -> RigCapture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CaptureWarning)
        return RigCapture.open(path, CaptureOptions(**options))


def write_time_major(folder: Path, times: list[str], cameras: list[str], skip: tuple = ()) -> Path:
    """Image ``<time>/<camera>.png`` shows ``solid_color(t, k)``; ``skip``: ``(time, camera)`` pairs left out."""
    for t, time in enumerate(times):
        (folder / time).mkdir(parents=True, exist_ok=True)
        for k, camera in enumerate(cameras):
            if (time, camera) not in skip:
                image = np.full((24, 32, 3), solid_color(t, k), np.uint8)
                cv2.imwrite(str(folder / time / f"{camera}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


def run(*args) -> object:
    return CliRunner().invoke(main, ["run", *map(str, args)])


@pytest.mark.parametrize("sub", ["", "images"])
def test_mv_page4d_rig_reads_as_4_cameras_by_8_timesteps_from_its_root_and_from_images(sub: str) -> None:
    root = rig_root()
    capture = open_quiet(root / sub)
    assert capture.layout == "time-major" and capture.dataset_root == root
    assert capture.camera_names == ["view0", "view1", "view2", "view3"]
    assert (capture.num_cameras, capture.num_timesteps) == (4, 8)
    assert capture.layout_line() == "4 cameras x 8 timesteps, time-major (images/time_TT/viewV.png)"
    expected = cv2.imread(str(root / "images" / "time_05" / "view2.png"))[..., ::-1]
    np.testing.assert_array_equal(capture.read(5, 2), expected)


def test_a_renamed_time_major_copy_reads_the_same_frames(tmp_path: Path) -> None:
    root = rig_root()
    names = {"view0": "left", "view1": "right", "view2": "top", "view3": "bottom"}
    for t in range(8):
        (tmp_path / "copy" / f"{t + 1:04d}").mkdir(parents=True)
        for view, name in names.items():
            shutil.copy(
                root / "images" / f"time_{t:02d}" / f"{view}.png", tmp_path / "copy" / f"{t + 1:04d}" / f"{name}.png"
            )
    capture = open_quiet(tmp_path / "copy")
    assert capture.layout == "time-major" and capture.camera_names == ["bottom", "left", "right", "top"]
    assert capture.num_timesteps == 8 and capture.layout_line().endswith("(copy/TTTT/<camera>.png)")
    original = open_quiet(root)
    for name in capture.camera_names:
        view = next(v for v, n in names.items() if n == name)
        np.testing.assert_array_equal(
            capture.read(6, capture.camera_names.index(name)), original.read(6, original.camera_names.index(view))
        )


@pytest.mark.parametrize(
    ("times", "cameras"),
    [(["t0000", "t0001", "t0002"], ["left", "right"]), (["0001", "0002", "0003"], ["cam_left", "cam_right"])],
)
def test_time_major_names_of_the_issue(tmp_path: Path, times: list[str], cameras: list[str]) -> None:
    write_time_major(tmp_path / "cap", times, cameras)
    capture = open_quiet(tmp_path / "cap")
    assert capture.layout == "time-major" and capture.camera_names == cameras and capture.num_timesteps == 3
    for t in range(3):
        for k in range(2):
            assert np.abs(capture.read(t, k)[12, 16].astype(int) - solid_color(t, k)).max() <= 2


def test_camera_major_captures_read_as_before(tmp_path: Path) -> None:
    write_solid_rig(tmp_path / "named", num_cameras=3, num_timesteps=5, fmt="images")
    write_solid_rig(tmp_path / "numbered", names=["0", "1", "2"], num_timesteps=5, fmt="images")
    write_solid_rig(tmp_path / "videos", num_cameras=2, num_timesteps=4)
    for name, cameras in (
        ("named", ["cam0", "cam1", "cam2"]),
        ("numbered", ["0", "1", "2"]),
        ("videos", ["cam0", "cam1"]),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error", CaptureWarning)
            capture = RigCapture.open(tmp_path / name)
        assert capture.layout == "camera-major" and capture.camera_names == cameras and capture.dataset_root is None


def test_forcing_a_layout(tmp_path: Path) -> None:
    capture = open_quiet(rig_root() / "images", layout="camera-major")
    assert capture.camera_names[:2] == ["time_00", "time_01"] and capture.num_timesteps == 4
    write_solid_rig(tmp_path / "cams", num_cameras=2, num_timesteps=3, fmt="images")
    forced = open_quiet(tmp_path / "cams", layout="time-major")
    assert forced.camera_names == ["000000", "000001", "000002"] and forced.num_timesteps == 2


def test_a_tree_that_reads_both_ways_warns_and_names_the_override(tmp_path: Path) -> None:
    for t in range(6):
        write_solid_rig(tmp_path / "cap", names=[f"{t:04d}"], num_timesteps=2, fmt="images")
    with pytest.warns(CaptureWarning, match=r"camera-major.*0000, 0001, 0002.*--layout time-major"):
        capture = RigCapture.open(tmp_path / "cap")
    assert capture.num_cameras == 6
    assert open_quiet(tmp_path / "cap", layout="time-major").num_cameras == 2


def test_a_camera_missing_at_some_timesteps_is_refused_naming_the_folders(tmp_path: Path) -> None:
    write_time_major(
        tmp_path / "cap", ["time_00", "time_01", "time_02"], ["view0", "view1"], skip={("time_02", "view1")}
    )
    with pytest.raises(CaptureError, match=r"camera 'view1' is missing in time_02"):
        RigCapture.open(tmp_path / "cap")


def test_different_camera_names_per_folder_are_refused(tmp_path: Path) -> None:
    write_time_major(tmp_path / "cap", ["t0", "t1"], ["left", "right"], skip={("t1", "right")})
    write_time_major(tmp_path / "cap", ["t1"], ["left", "middle"])
    with pytest.raises(CaptureError, match=r"'middle' is missing in t0.*'right' is missing in t1"):
        RigCapture.open(tmp_path / "cap")


def test_two_images_of_one_camera_in_a_timestep_folder_are_refused(tmp_path: Path) -> None:
    write_time_major(tmp_path / "cap", ["t0", "t1"], ["left", "right"])
    shutil.copy(tmp_path / "cap" / "t1" / "left.png", tmp_path / "cap" / "t1" / "left.jpg")
    with pytest.raises(CaptureError, match=r"t1/ holds two images of camera 'left'"):
        RigCapture.open(tmp_path / "cap")


def test_the_cli_refuses_an_inconsistent_tree_without_a_traceback_and_keeps_the_output(tmp_path: Path) -> None:
    write_time_major(tmp_path / "cap", ["time_00", "time_01"], ["view0", "view1"], skip={("time_01", "view0")})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = run(tmp_path / "cap", "--out", tmp_path / "out", *TINY, "--size", 28)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "view0' is missing in time_01" in result.output and str(tmp_path / "cap") in result.output
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    result = run(tmp_path / "cap", "--out", tmp_path / "out2", *TINY, "--layout", "sideways")
    assert result.exit_code != 0 and "sideways" in result.output and "Traceback" not in result.output


def test_run_from_the_dataset_root_announces_layout_ground_truth_and_masks(tmp_path: Path) -> None:
    root = rig_root()
    result = run(root, "--out", tmp_path / "out", *TINY, "--size", 28, "--max-frames", 2, "--window", 2)
    assert result.exit_code == 0, result.output
    assert "4 cameras x 2 of 8 timesteps, time-major (images/time_TT/viewV.png)" in result.output
    assert f"--gt {root}" in result.output and "depths/, intrs/, extrs/" in result.output
    assert "SegAnyMo masks found (SegAnyMo/sam2/mask_frames); use them with --masks auto" in result.output


def test_view_takes_the_layout_option_too(tmp_path: Path) -> None:
    from app.reconstruct.pipeline import PipelineConfig
    from app.viewer.launch import plan_view
    from vggt_t_mv import WeightsSpec

    result = CliRunner().invoke(main, ["view", "--help"])
    assert result.exit_code == 0 and "--layout" in result.output
    weights = WeightsSpec(config="tiny", random_weights=True)
    from app.capture.rig import CaptureOptions

    capture = CaptureOptions(layout="time-major")
    plan = plan_view(rig_root(), weights, PipelineConfig(), capture, out=tmp_path / "recon")
    assert plan.live.capture_options.layout == "time-major"
