"""4D tracks from ``vggt-mv run --track-queries``: the model's track head per camera, the real rig's acceptance, the
query file's checks."""

from __future__ import annotations

from pathlib import Path

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
