"""``--ground-truth`` in the viewer: the ground-truth cameras and points land where a reconstruction that *is* the
ground truth (in another similarity frame) has its own; the evaluation agrees that it is perfect; the GUI toggles
them; a bad ground truth is a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli.main import main
from app.cli.view import view_command
from app.reconstruct.evaluate import camera_alignment, ground_truth_sample
from app.reconstruct.store import Reconstruction
from app.viewer.server import Viewer, ViewerConfig
from tests.helpers.formats import exact_run
from tests.helpers.shared import require, shared_dir
from vggt_t_mv.npgeometry import Sim3

ROTATION = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
RECON_TO_GT = Sim3(2.5, ROTATION, np.array([0.5, -1.0, 3.0]))  # x_gt = s R x_recon + t


def rig_root() -> Path:
    return require(shared_dir() / "realdata" / "mv_page4d_rig", "mv_page4d_rig")


@pytest.fixture(scope="module")
def perfect_recon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reconstruction of 2 rig timesteps whose cameras, depth and points are the ground truth, expressed in the
    frame ``RECON_TO_GT`` maps onto the ground truth's (depth in its units: divided by the scale)."""
    out = tmp_path_factory.mktemp("viewer_gt") / "recon"
    exact_run(rig_root(), out, size=42, window=2, max_frames=2)  # format 2: the ground truth stored exactly
    recon = Reconstruction.open(out)
    from app.capture.truth import open_ground_truth

    truth = open_ground_truth(rig_root())
    gt_to_recon = RECON_TO_GT.inverse()
    for record in recon.windows():
        sample = ground_truth_sample(recon, truth, range(*record.span))
        points = gt_to_recon.apply(sample.world_points.double().numpy())
        recon.replace_arrays(
            record.index,
            {
                "extrinsics": gt_to_recon.apply_to_extrinsics(sample.extrinsics.double().numpy()),
                "depth": sample.depth.numpy() / RECON_TO_GT.scale,
                "world_points": np.where(sample.valid.numpy()[..., None], points, 0.0),
            },
        )
    return out


def test_the_alignment_recovers_the_similarity(perfect_recon: Path) -> None:
    from app.capture.truth import open_ground_truth

    fit = camera_alignment(Reconstruction.open(perfect_recon), open_ground_truth(rig_root()))
    scale, rotation, translation = fit.scale, fit.rotation, fit.translation
    assert scale == pytest.approx(RECON_TO_GT.scale, rel=1e-4)
    np.testing.assert_allclose(rotation, ROTATION, atol=1e-4)
    np.testing.assert_allclose(translation, RECON_TO_GT.translation, atol=1e-3)


def test_eval_calls_the_ground_truth_reconstruction_perfect(perfect_recon: Path) -> None:
    result = CliRunner().invoke(main, ["eval", str(perfect_recon), "--gt", str(rig_root())])
    assert result.exit_code == 0, result.output
    header, _, row = [line for line in result.output.splitlines() if line.startswith("|")][:3]
    values = {
        k.strip().split(" ")[0]: float(v) for k, v in zip(header.split("|")[3:-1], row.split("|")[3:-1], strict=True)
    }
    assert values["ate"] < 1e-3 and values["auc30"] == 1.0 and values["rpe_rot_deg"] < 0.05
    assert values["abs_rel"] < 1e-5 and values["abs_rel_static"] < 1e-5 and values["abs_rel_moving"] < 1e-5
    assert values["accuracy"] < 1e-3


def test_ground_truth_frustums_and_points_sit_on_the_reconstruction(perfect_recon: Path) -> None:
    config = ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1, ground_truth=rig_root())
    viewer = Viewer(config).start()
    try:
        viewer.open(perfect_recon)
        assert viewer.wait_until(viewer.idle, 60), "the viewer did not load the reconstruction"
        assert viewer.gui.truth_folder.visible
        recon = Reconstruction.open(perfect_recon)
        names = set(viewer.scene.node_names())
        for t in range(2):
            for name in recon.camera_names:
                assert f"/t/{t:05d}/ground_truth/cameras/{name}" in names
                assert f"/t/{t:05d}/ground_truth/points/{name}" in names
        truth = viewer.scene.ground_truth.timestep(1)
        predicted = viewer.scene.frustums(1)
        for n in range(recon.num_cameras):
            np.testing.assert_allclose(truth.extrinsics[n][:, :3], recon.get("extrinsics", 1)[n][:, :3], atol=1e-4)
            centre = -truth.extrinsics[n][:, :3].T @ truth.extrinsics[n][:, 3]
            np.testing.assert_allclose(centre, predicted[("plain", n)].position, atol=1e-3)
            world = np.asarray(recon.get("world_points", 1)[n], np.float64).reshape(-1, 3)
            world = world[np.abs(world).sum(-1) > 0]
            gt_points = truth.points[n].astype(np.float64)
            nearest = np.min(((gt_points[:200, None] - world[None]) ** 2).sum(-1), axis=1) ** 0.5
            assert np.median(nearest) < 1e-3
        node = viewer.scene.timesteps[1]
        assert node.ground_truth.visible
        viewer.gui.point_size.value = 1.5
        clouds = [h for h in node.ground_truth_nodes if h.name.startswith("/t/00001/ground_truth/points/")]
        assert len(clouds) == recon.num_cameras
        assert all(h.point_size == pytest.approx(viewer.scene.point_size_world()) for h in clouds)
        assert all(h.point_shape == "rounded" for h in clouds)  # drawn as the prediction is, not as big squares
        # in its own image colours: the reconstruction's images at the ground truth's pixels
        images = np.asarray(recon.get("images", 1))
        palette = {tuple(c) for c in images.reshape(-1, 3)}
        assert all({tuple(c) for c in h.colors[:200]} <= palette for h in clouds)
        assert len({tuple(c) for h in clouds for c in h.colors}) > 50
    finally:
        viewer.stop()


def test_show_prediction_ground_truth_or_both(perfect_recon: Path) -> None:
    config = ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1, ground_truth=rig_root())
    viewer = Viewer(config).start()
    try:
        viewer.open(perfect_recon)
        assert viewer.wait_until(viewer.idle, 60)
        assert viewer.gui.truth_folder.visible and viewer.gui.show.value == "both"
        nodes = viewer.scene.timesteps.values()
        modes = (("prediction", True, False), ("ground truth", False, True), ("both", True, True))
        for mode, prediction, truth in modes:
            viewer.gui.show.value = mode
            assert all(node.streams["geo"].visible == prediction for node in nodes)
            assert all(node.cameras.visible == prediction for node in nodes)
            assert all(not node.streams["pose"].visible for node in nodes)
            assert all(node.ground_truth.visible == truth for node in nodes), mode
        viewer.gui.show.value = "ground truth"
        viewer.gui.stream.value = viewer.gui.stream.options[1]  # switching streams keeps the prediction hidden
        assert all(not node.streams["pose"].visible and not node.streams["geo"].visible for node in nodes)
    finally:
        viewer.stop()


def test_error_colouring_of_a_perfect_reconstruction_is_zero_and_has_a_legend(perfect_recon: Path) -> None:
    from app.reconstruct.error_map import error_colors

    config = ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1, ground_truth=rig_root(), conf_percentile=0)
    viewer = Viewer(config).start()
    try:
        viewer.open(perfect_recon)
        assert viewer.wait_until(viewer.idle, 60)
        handles = viewer.scene.cloud_handles(0, "geo")
        before = {key: h.colors.copy() for key, h in handles.items()}
        assert not viewer.gui.error_legend.visible
        viewer.gui.coloring.value = "error vs ground truth"
        assert viewer.wait_until(lambda: viewer.idle() and viewer.gui.error_legend.visible, 60)
        limit, median = viewer.scene.error_legend()
        assert median < 1e-3 and "scene units" in viewer.gui.error_legend.content
        near_zero = {tuple(c) for c in error_colors(np.array([np.nan, *np.linspace(0, 0.01 * limit, 9)]), limit)}
        for key, handle in handles.items():
            if len(handle.colors):
                assert not np.array_equal(handle.colors, before[key])
                drawn = [tuple(c) for c in handle.colors]
                assert np.mean([c in near_zero for c in drawn]) > 0.95  # (almost) every point on the surface
        viewer.gui.coloring.value = "image"
        assert viewer.wait_until(lambda: viewer.idle() and not viewer.gui.error_legend.visible, 60)
        assert all(np.array_equal(h.colors, before[key]) for key, h in handles.items())
    finally:
        viewer.stop()


def test_view_with_a_bad_ground_truth_is_a_clear_error(perfect_recon: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    args = ["view", str(perfect_recon), "--no-browser", "--port", "0", "--exit-after", "0"]
    result = CliRunner().invoke(main, [*args, "--ground-truth", str(tmp_path / "empty")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert str(tmp_path / "empty") in result.output and "no ground truth" in result.output
    live = ["view", str(rig_root()), "--random-weights", "--config", "tiny", "--no-browser", "--port", "0",
            "--exit-after", "0", "--out", str(tmp_path / "live")]  # fmt: skip
    result = CliRunner().invoke(main, [*live, "--ground-truth", str(tmp_path / "empty")])
    assert result.exit_code == 1 and str(tmp_path / "empty") in result.output  # refused before anything runs
    assert not (tmp_path / "live").exists()


def test_ground_truth_appears_in_a_live_run(tmp_path: Path) -> None:
    """``vggt-mv-view CAPTURE --ground-truth GT``: the ground truth is aligned as the windows land."""
    from app.cli.options import capture_options, pipeline_config, weights_spec
    from app.viewer.launch import plan_view

    args = [str(rig_root()), "--config", "tiny", "--random-weights", "--device", "cpu", "--size", "42",
            "--max-frames", "3", "--window", "2", "--stride", "1", "--ground-truth", str(rig_root())]  # fmt: skip
    options = view_command.make_context("view", args).params
    plan = plan_view(rig_root(), weights_spec(options), pipeline_config(options), capture_options(options),
                     out=tmp_path / "recon")  # fmt: skip
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1, ground_truth=rig_root()))
    viewer.check_ground_truth()
    viewer.start()
    try:
        live = viewer.run_live(plan.live)
        assert viewer.wait_until(lambda: live.done and viewer.idle() and viewer.scene.num_available == 3, 120)
        assert live.state["state"] == "complete", live.state
        scene = viewer.scene
        assert scene.ground_truth is not None and scene.ground_truth.version == 2  # refitted on both windows
        assert all(scene.timesteps[t].ground_truth_version == 2 for t in range(3))
        names = set(scene.node_names())
        assert all(f"/t/{t:05d}/ground_truth/points/view0" in names for t in range(3)), sorted(names)[:20]
        assert viewer.errors == []
    finally:
        viewer.stop()
