"""Capture ingestion: forms, natural order, synchronization, bad input, preprocessing."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.capture.calibration import load_calibration
from app.capture.preprocess import PreprocessConfig, frame_transform, preprocess_frame
from app.capture.rig import CaptureOptions, RigCapture
from app.capture.sources import CaptureError, CaptureWarning, natural_key
from tests.helpers.capture import solid_color, write_solid_rig, write_video
from tests.helpers.shared import require, shared_dir

CALISCOPE = "realdata/caliscope_4cam_charuco"


def open_quiet(path: Path, **options) -> RigCapture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CaptureWarning)
        return RigCapture.open(path, CaptureOptions(**options))


def close(a, b, tol: int = 6) -> bool:
    return bool(np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= tol)


def test_natural_camera_order_and_lazy_frames(tmp_path: Path) -> None:
    write_solid_rig(tmp_path, names=["cam10", "cam2", "cam1"], num_timesteps=4)
    capture = RigCapture.open(tmp_path)
    assert capture.camera_names == ["cam1", "cam2", "cam10"]
    assert capture.form == "videos" and capture.num_timesteps == 4 and capture.sync_mode == "index"
    # camera "cam10" was written with k=0's colours, "cam2" with k=1, "cam1" with k=2
    written_k = {"cam10": 0, "cam2": 1, "cam1": 2}
    for t, frames in capture.iter_timesteps(range(4), prefetch=2):
        for n, frame in enumerate(frames):
            assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
            assert close(frame[24, 32], solid_color(t, written_k[capture.camera_names[n]]))
    assert natural_key("cam2") < natural_key("cam10")


def test_image_folders_single_video_and_static_images(tmp_path: Path) -> None:
    images = write_solid_rig(tmp_path / "imgs", num_cameras=2, num_timesteps=3, fmt="images")
    capture = RigCapture.open(images)
    assert capture.form == "image_folders" and capture.camera_names == ["cam0", "cam1"]
    assert capture.read(2, 1).tolist()[0][0] == list(solid_color(2, 1))  # PNG: exact
    single = RigCapture.open(write_video(tmp_path / "one.mp4", [np.zeros((32, 32, 3), np.uint8)] * 5))
    assert single.form == "single_video" and single.num_cameras == 1 and single.num_timesteps == 5
    static = tmp_path / "static"
    static.mkdir()
    for i in (0, 1, 10, 2):
        cv2.imwrite(str(static / f"view{i}.jpg"), np.full((20, 30, 3), i * 20, np.uint8))
    capture = RigCapture.open(static)
    assert capture.form == "static_images" and capture.num_timesteps == 1
    assert capture.camera_names == ["view0", "view1", "view2", "view10"]


def test_frame_selection(tmp_path: Path) -> None:
    write_solid_rig(tmp_path, num_cameras=1, num_timesteps=20, fmt="images")
    capture = RigCapture.open(tmp_path, CaptureOptions(start=3, end=15, every=4, max_frames=2))
    assert capture.frame_index[:, 0].tolist() == [3, 7]
    with pytest.raises(CaptureError, match="select no timestep"):
        RigCapture.open(tmp_path, CaptureOptions(start=25))


def test_empty_folder_and_no_camera(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="holds no camera"):
        RigCapture.open(tmp_path)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(CaptureError, match="notes.txt"):
        RigCapture.open(tmp_path)


def test_no_readable_camera(tmp_path: Path) -> None:
    for k in range(2):
        (tmp_path / f"cam{k}.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(CaptureError, match="no readable camera.*cam0.mp4"):
        RigCapture.open(tmp_path)


def test_one_corrupt_video_among_good_ones(tmp_path: Path) -> None:
    write_solid_rig(tmp_path, num_cameras=3, num_timesteps=4)
    (tmp_path / "cam1.mp4").write_bytes(b"\x00" * 4096)
    with pytest.raises(CaptureError, match=r"cam1\.mp4.*--skip-bad-cameras"):
        RigCapture.open(tmp_path)
    with pytest.warns(CaptureWarning, match="skipped unreadable camera.*cam1"):
        capture = RigCapture.open(tmp_path, CaptureOptions(skip_unreadable=True))
    assert capture.camera_names == ["cam0", "cam2"]


def test_different_frame_counts_warn_and_use_common_range(tmp_path: Path) -> None:
    write_solid_rig(tmp_path, num_cameras=3, counts=[10, 7, 9])
    with pytest.warns(CaptureWarning, match=r"cam0: 10, cam1: 7, cam2: 9.*0\.\.6"):
        capture = RigCapture.open(tmp_path)
    assert capture.num_timesteps == 7


def test_different_resolutions_and_aspect_ratios(tmp_path: Path) -> None:
    write_solid_rig(tmp_path, num_cameras=3, num_timesteps=3, sizes=[(48, 64), (60, 60), (90, 160)])
    with pytest.warns(CaptureWarning, match="different resolutions"):
        capture = RigCapture.open(tmp_path)
    config = PreprocessConfig(size=112, mode="crop")
    target = config.target_hw(capture.sources[0].height, capture.sources[0].width)
    assert target == (84, 112)
    for source in capture.sources:
        for mode in ("crop", "pad"):
            transform = frame_transform((source.height, source.width), target, mode)
            out = preprocess_frame(capture.read(0, capture.sources.index(source)), transform)
            assert out.shape == (84, 112, 3)


def test_preprocess_modes_keep_geometry() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[45:55, 95:105] = 255  # a white square at the centre
    for mode, size in (("crop", 112), ("pad", 112)):
        config = PreprocessConfig(size=size, mode=mode)
        transform = frame_transform((100, 200), config.target_hw(100, 200), mode)
        out = preprocess_frame(frame, transform)
        assert out.shape[:2] == config.target_hw(100, 200)
        u, v = 100 * transform.scale + transform.offset_x, 50 * transform.scale + transform.offset_y
        assert out[round(v), round(u)].min() > 200  # the centre stays the centre
    assert PreprocessConfig(518, mode="pad").target_hw(100, 200) == (518, 518)
    assert PreprocessConfig(518, "crop").target_hw(720, 1280) == (294, 518)  # VGGT: width 518, height multiple of 14
    assert PreprocessConfig(518, "crop").target_hw(1280, 720) == (518, 518)  # portrait: height cropped to 518
    with pytest.raises(ValueError, match="multiple of 14"):
        PreprocessConfig(size=100)


def test_grayscale_and_rgba_images(tmp_path: Path) -> None:
    (tmp_path / "gray").mkdir()
    (tmp_path / "rgba").mkdir()
    for t in range(2):
        cv2.imwrite(str(tmp_path / "gray" / f"{t}.png"), np.full((20, 30), 100 + t, np.uint8))
        rgba = np.zeros((20, 30, 4), np.uint8)
        rgba[..., 2] = 255  # red in BGRA
        rgba[:, :15, 3] = 255  # left half opaque, right half transparent
        cv2.imwrite(str(tmp_path / "rgba" / f"{t}.png"), rgba)
    with pytest.warns(CaptureWarning) as record:
        capture = RigCapture.open(tmp_path)
    text = " ".join(str(w.message) for w in record)
    assert "gray: grayscale" in text and "rgba: RGBA" in text
    gray, rgba = capture.read(1, 0), capture.read(1, 1)
    assert gray.shape == (20, 30, 3) and (gray == 101).all()
    assert rgba[0, 0].tolist() == [255, 0, 0] and rgba[0, -1].tolist() == [255, 255, 255]


def test_unreadable_image_mid_sequence_is_a_clear_error(tmp_path: Path) -> None:
    write_solid_rig(tmp_path, num_cameras=2, num_timesteps=4, fmt="images")
    (tmp_path / "cam1" / "000002.png").write_bytes(b"broken")
    capture = RigCapture.open(tmp_path)
    with pytest.raises(CaptureError, match=r"cam1.*000002\.png"):
        list(capture.iter_timesteps(range(4)))


def test_timestamps_csv_with_sync_index(tmp_path: Path) -> None:
    write_solid_rig(tmp_path, num_cameras=2, counts=[6, 6], fmt="images")
    # camera 1 started one frame later: its frame k belongs to sync index k + 1
    rows = ["sync_index,cam_id,frame_time"]
    rows += [f"{k},0,{k * 0.1 + 0.001}" for k in range(6)]
    rows += [f"{k + 1},1,{(k + 1) * 0.1 + 0.004}" for k in range(6)]
    (tmp_path / "timestamps.csv").write_text("\n".join(rows) + "\n")
    with pytest.warns(CaptureWarning, match="1 sync indices are missing a camera"):
        capture = RigCapture.open(tmp_path)
    assert capture.sync_mode == "timestamps"
    assert capture.frame_index.tolist() == [[k, k - 1] for k in range(1, 6)]
    assert np.allclose(capture.spread, 0.003)


def test_timestamps_csv_without_sync_index_and_bad_csv(tmp_path: Path) -> None:
    write_solid_rig(tmp_path, num_cameras=2, counts=[5, 5], fmt="images")
    csv = tmp_path / "times.csv"
    csv.write_text("camera,timestamp\n" + "".join(f"cam0,{k * 0.1}\ncam1,{k * 0.1 + 0.07}\n" for k in range(5)))
    with pytest.warns(CaptureWarning, match="1 timesteps dropped"):
        capture = RigCapture.open(tmp_path, CaptureOptions(timestamps=csv))
    # camera 1 runs 70 ms late: camera 0's frame k + 1 (0.1 k + 0.1 s) pairs with camera 1's frame k (0.1 k + 0.07 s);
    # camera 0's frame 0 has no camera-1 frame within half a period and is dropped
    assert capture.frame_index.tolist() == [[k + 1, k] for k in range(4)]
    assert np.allclose(capture.spread, 0.03)
    csv.write_text("who,when\n1,2\n")
    with pytest.raises(CaptureError, match="camera column"):
        RigCapture.open(tmp_path, CaptureOptions(timestamps=csv))


def test_different_fps_sync_by_time(tmp_path: Path) -> None:
    write_solid_rig(tmp_path, num_cameras=2, counts=[10, 20], fps=[10.0, 20.0])
    with pytest.warns(CaptureWarning, match="different frame rates"):
        capture = RigCapture.open(tmp_path)
    assert capture.sync_mode == "fps"
    assert capture.frame_index.tolist() == [[k, 2 * k] for k in range(10)]


def test_caliscope_real_capture_and_calibration() -> None:
    folder = require(shared_dir() / CALISCOPE, "caliscope capture")
    capture = RigCapture.open(folder / "calibration" / "extrinsic", CaptureOptions(max_frames=12))
    assert capture.camera_names == ["cam_0", "cam_1", "cam_2", "cam_3"]
    assert capture.sync_mode == "timestamps" and capture.num_timesteps == 12
    assert capture.frame_index.tolist() == [[k] * 4 for k in range(12)]  # video frame k is sync index 35 + k
    assert 0 < capture.describe()["spread_s"]["mean"] < 0.02
    assert capture.read(0, 3).shape == (720, 1280, 3)
    calibration = load_calibration(folder / "camera_array.toml", capture.camera_names)
    assert calibration.extrinsics.shape == (4, 3, 4) and calibration.intrinsics[0, 0, 0] == pytest.approx(903.55, 1e-4)
    with pytest.raises(CaptureError, match="no entry for camera"):
        load_calibration(folder / "camera_array.toml", ["left", "right"])
