"""4D tracks from ``vggt-mv run --track-queries``: the model's track head per camera, the real rig's acceptance, the
query file's checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from app.capture.preprocess import FrameTransform
from app.cli.main import main
from app.reconstruct.store import Reconstruction
from app.reconstruct.track_queries import TrackQueryError, resolve_track_queries
from app.reconstruct.tracking import track_reconstruction
from tests.helpers.shared import REPO_ROOT, require, shared_dir
from vggt_t_mv import load_model
from vggt_t_mv.npgeometry import project_points, unproject_pixels
from vggt_t_mv.tracks import TrackConfig
from vggt_t_mv.tracks.head import HeadTracker

DEMO_WEIGHTS = REPO_ROOT / "assets" / "demo_weights"


def page4d_rig() -> Path:
    return require(shared_dir() / "realdata" / "mv_page4d_rig", "the mv_page4d_rig dataset")


def run(capture: Path, out: Path, *options: str):
    args = ["run", str(capture), "--out", str(out), "--checkpoint", str(DEMO_WEIGHTS), "--device", "cpu"]
    return CliRunner().invoke(main, [*args, "--size", "56", *options])


def test_the_head_tracker_of_one_camera_is_the_models_track_head() -> None:
    model = load_model(checkpoint=DEMO_WEIGHTS).model.eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(1, 4, 1, 3, 42, 56, generator=generator)
    queries = torch.tensor([[5.0, 7.0], [30.0, 20.0], [50.5, 33.25]])
    with torch.inference_mode():
        expected = model(images, query_points=queries)
    view = HeadTracker(model, images).track(0, 0, queries.numpy())
    np.testing.assert_allclose(view.pixels, expected.track[0, :, 0].double().numpy(), atol=1e-4)
    np.testing.assert_allclose(view.visibility, expected.vis[0, :, 0].double().numpy(), atol=1e-5)
    np.testing.assert_allclose(view.confidence, expected.conf[0, :, 0].double().numpy(), atol=1e-5)
    # from a later frame: the same as the model on the frames from there on
    later = HeadTracker(model, images).track(0, 2, queries.numpy())
    assert later.pixels.shape == (2, 3, 2)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("tracks") / "recon"
    return run(page4d_rig(), out, "--track-queries", "auto"), out


def test_real_rig_auto_queries_give_tracks_for_all_8_timesteps(real_run) -> None:
    result, out = real_run
    assert result.exit_code == 0, result.output
    assert "track queries: auto" in result.output and "tracks: " in result.output
    tracks = Reconstruction.open(out).tracks()
    assert tracks.points.shape[1:] == (8, 3) and tracks.num_queries > 0
    assert tracks.visible.shape == tracks.points.shape[:2] and tracks.pixels.shape[1:] == (8, 4, 2)
    assert tracks.kind == "2d" and (tracks.queries[:, 0] == 0).all()
    assert np.isfinite(tracks.points[tracks.visible]).all() and tracks.visible[:, 0].all()


def _gt_queries(root: Path, pixels: np.ndarray, camera: int = 0) -> np.ndarray:
    depth = np.load(root / "depths" / "time_00" / f"view{camera}.npy")
    intrinsics = np.load(root / "intrs" / "time_00" / f"view{camera}.npy")
    extrinsics = np.load(root / "extrs" / "time_00" / f"view{camera}.npy")
    z = depth[pixels[:, 1].astype(int), pixels[:, 0].astype(int)]
    assert (z > 0).all()
    points = unproject_pixels(pixels, z, extrinsics, intrinsics)
    return np.concatenate([np.zeros((len(points), 1)), points], axis=1)


def test_3d_queries_on_the_gt_depth_are_projected_to_the_right_pixels(real_run, tmp_path: Path) -> None:
    result, out = real_run
    assert result.exit_code == 0, result.output
    root = page4d_rig()
    queries = _gt_queries(root, np.array([[300.0, 250.0], [350.0, 200.0], [280.0, 300.0]]))
    np.save(tmp_path / "queries.npy", queries)
    recon = Reconstruction.open(out)
    source = resolve_track_queries(tmp_path / "queries.npy", None, recon.num_timesteps, recon.num_cameras)
    made = track_reconstruction(load_model(checkpoint=DEMO_WEIGHTS).model, recon, source)
    stored = recon.tracks()
    assert stored.kind == "3d" and stored.points.shape == (3, 8, 3)
    np.testing.assert_array_equal(stored.queries, queries)
    for n in range(4):
        transform = FrameTransform.from_dict(recon.meta["preprocess"][n])
        intrinsics = transform.intrinsics_to_target(np.load(root / "intrs" / "time_00" / f"view{n}.npy"))
        extrinsics = np.load(root / "extrs" / "time_00" / f"view{n}.npy")
        expected, _ = project_points(queries[:, 1:], extrinsics, intrinsics)
        np.testing.assert_allclose(stored.query_pixels[:, n], expected, atol=0.02)
        np.testing.assert_allclose(made.tracks.query_pixels[:, n], expected, atol=1e-3)
        # the cameras that track a query start it at its projection
        tracked = stored.query_visible[:, n]
        np.testing.assert_allclose(stored.pixels[tracked, 0, n], expected[tracked], atol=0.02)
    # in view0 (where the points came from): the original pixels through the preprocessing
    transform = FrameTransform.from_dict(recon.meta["preprocess"][0])
    source = np.array([[300.0, 250.0], [350.0, 200.0], [280.0, 300.0]]) * transform.scale
    source += [transform.offset_x, transform.offset_y]
    np.testing.assert_allclose(stored.query_pixels[:, 0], source, atol=0.02)


def _fails(result, *parts: str) -> None:
    assert result.exit_code != 0
    for part in parts:
        assert part in result.output, result.output


def test_a_query_file_of_another_shape_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "q.npy", np.zeros((5, 3)))
    result = run(page4d_rig(), tmp_path / "out", "--track-queries", str(tmp_path / "q.npy"))
    _fails(result, str(tmp_path / "q.npy"), "shape [5, 3]", "[Q, 4]", "t x y z")
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_a_query_timestep_outside_the_capture_is_refused(tmp_path: Path) -> None:
    np.savetxt(tmp_path / "q.csv", [[0, 0.1, 0.2, 5.0], [8, 0.0, 0.0, 5.0]], delimiter=",")
    result = run(page4d_rig(), tmp_path / "out", "--track-queries", str(tmp_path / "q.csv"))
    _fails(result, str(tmp_path / "q.csv"), "rows [1]", "timestep 8", "0..7", "--start")


def test_queries_outside_every_camera_are_refused(real_run, tmp_path: Path) -> None:
    _, out = real_run
    recon = Reconstruction.open(out)
    far = np.array([[0, 1e4, 1e4, 1e4], [3, 0.0, 0.0, 0.0]])
    np.save(tmp_path / "q.npy", far)
    source = resolve_track_queries(tmp_path / "q.npy", None, 8, 4)
    with pytest.raises(TrackQueryError, match=r"q\.npy.*queries \(rows \[0\]\) lie outside every camera"):
        track_reconstruction(load_model(checkpoint=DEMO_WEIGHTS).model, recon, source)


def test_3d_queries_outside_the_calibrated_cameras_are_refused_before_the_run(tmp_path: Path) -> None:
    """The rig's calibration gives the stored cameras (--cameras calibrated): checked before anything runs."""
    good = _gt_queries(page4d_rig(), np.array([[300.0, 250.0]]))
    np.save(tmp_path / "q.npy", np.concatenate([good, [[2, 1e4, 1e4, 1e4]]]))
    result = run(page4d_rig(), tmp_path / "out", "--track-queries", str(tmp_path / "q.npy"))
    _fails(result, str(tmp_path / "q.npy"), "rows [1]", "outside every camera", "before the run", "drop those rows")
    assert "windows" not in result.output.split("outside every camera")[0]  # no window was computed
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_2d_query_pixels_outside_the_model_image_are_refused_before_the_run(tmp_path: Path) -> None:
    np.savetxt(tmp_path / "q_2d.csv", [[0, 1, 10.0, 10.0], [1, 0, 500.0, 10.0]], delimiter=",")
    result = run(page4d_rig(), tmp_path / "out", "--track-queries", str(tmp_path / "q_2d.csv"))
    _fails(result, str(tmp_path / "q_2d.csv"), "rows [1]", "outside the model image 56x42", "model pixels")
    assert not (tmp_path / "out").exists()


def test_predicted_cameras_check_3d_queries_after_the_windows_and_keep_them(tmp_path: Path) -> None:
    """With the model's cameras the 3D check can only follow the windows: the run says so, the refusal keeps the
    windows, and --resume with a fixed file tracks without recomputing them."""
    np.save(tmp_path / "bad.npy", np.array([[0, 1e4, 1e4, 1e4]]))
    out = tmp_path / "out"
    result = run(page4d_rig(), out, "--cameras", "predicted", "--track-queries", str(tmp_path / "bad.npy"))
    _fails(result, "checked against the cameras once the windows are reconstructed", str(tmp_path / "bad.npy"))
    _fails(result, "outside every camera", "checked after the windows", "--resume")
    recon = Reconstruction.open(out)
    assert recon.is_complete and recon.record.tracks is None and not (out / "tracks").exists()
    model_seconds = [w.model_seconds for w in recon.record.alignment]
    np.save(tmp_path / "good.npy", np.array([[0, 0.0, 0.0, 1.0]]))  # in front of camera 0 (its frame)
    good = ("--track-queries", str(tmp_path / "good.npy"))
    resumed = run(page4d_rig(), out, "--cameras", "predicted", *good, "--resume")
    assert resumed.exit_code == 0, resumed.output
    recon = Reconstruction.open(out)
    assert [w.model_seconds for w in recon.record.alignment] == model_seconds  # the windows were kept
    assert recon.tracks().points.shape == (1, 8, 3)
    settings = recon.record.tracks
    assert settings is not None and settings.queries == str((tmp_path / "good.npy").resolve())
    assert settings.sha256 == hashlib.sha256((tmp_path / "good.npy").read_bytes()).hexdigest()
    assert settings.kind == "3d" and settings.count == 1


def test_track_settings_are_recorded_and_resume_with_other_queries_is_refused(real_run, tmp_path: Path) -> None:
    _, out = real_run
    settings = Reconstruction.open(out).record.tracks
    assert settings is not None and settings.queries == "auto" and settings.sha256 is None
    assert settings.grid_cells == 16 and settings.max_queries == 256 and settings.config == TrackConfig()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tracks"]["queries"] == "auto" and meta["tracks"]["config"]["depth_tolerance"] == 0.05
    before = (out / "meta.json").read_bytes()
    np.save(tmp_path / "q.npy", _gt_queries(page4d_rig(), np.array([[300.0, 250.0]])))
    result = run(page4d_rig(), out, "--track-queries", str(tmp_path / "q.npy"), "--resume")
    _fails(result, "differs in: tracks", "made with --track-queries auto", f"this run has --track-queries {tmp_path}")
    _fails(result, "sha256", "--overwrite")
    result = run(page4d_rig(), out, "--resume")
    _fails(result, "differs in: tracks", "this run has no --track-queries")
    assert (out / "meta.json").read_bytes() == before


class _RecordingTracker(HeadTracker):
    masks_seen: list = []

    def __init__(self, model, images, masks=None, autocast_dtype=None) -> None:
        type(self).masks_seen.append(None if masks is None else tuple(masks.shape))
        super().__init__(model, images, masks, autocast_dtype)


def test_tracking_uses_the_runs_external_masks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--masks auto (the rig's SegAnyMo masks): the track head gets them as the run's model did, and the automatic
    grid is seeded on their moving pixels at the first timestep."""
    import app.reconstruct.tracking as tracking

    _RecordingTracker.masks_seen = []
    monkeypatch.setattr(tracking, "HeadTracker", _RecordingTracker)
    out = tmp_path / "out"
    result = run(page4d_rig(), out, "--masks", "auto", "--track-queries", "auto")
    assert result.exit_code == 0, result.output
    recon = Reconstruction.open(out)
    assert _RecordingTracker.masks_seen == [(1, 6, 4, 42, 56), (1, 6, 4, 42, 56)]  # two windows of 6, 4 cameras
    tracks = recon.tracks()
    assert tracks.kind == "2d" and tracks.num_queries > 0 and tracks.info["external_masks"]
    root = page4d_rig()
    for _, camera, u, v in tracks.queries:
        transform = FrameTransform.from_dict(recon.meta["preprocess"][int(camera)])
        mask = cv2.imread(str(root / "SegAnyMo/sam2/mask_frames" / f"view_{int(camera)}" / "000.png"), 0)
        column = int(round((u - transform.offset_x) / transform.scale))
        row = int(round((v - transform.offset_y) / transform.scale))
        window = mask[max(row - 4, 0) : row + 5, max(column - 4, 0) : column + 5]  # nearest resampling: near it
        assert window.max() == 255, (camera, u, v)
    # the grid without the external masks (the model's predicted mask) is another one
    without = run(page4d_rig(), tmp_path / "plain", "--track-queries", "auto")
    assert without.exit_code == 0, without.output
    assert not np.array_equal(Reconstruction.open(tmp_path / "plain").tracks().queries, tracks.queries)
