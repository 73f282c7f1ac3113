"""Known-camera mode (``--cameras calibrated``): every window is moved into the calibration's frame by its own Sim(3);
the stored cameras are the calibration, exactly, at every timestep of every window; no drift across windows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.capture.preprocess import FrameTransform
from app.capture.truth import open_ground_truth
from app.cli.main import main
from app.reconstruct.calibrated import agreement_status, agreement_summary, fit_to_calibration, has_baseline
from app.reconstruct.frame_metrics import frame_report
from app.reconstruct.record import Alignment
from app.reconstruct.store import Reconstruction
from tests.helpers.shared import REPO_ROOT, require, shared_dir
from vggt_t_mv.data.synthetic import SyntheticRigConfig, make_synthetic_rig, write_dataset_root
from vggt_t_mv.npgeometry import Sim3, quaternion_xyzw_to_matrix

DEMO_WEIGHTS = REPO_ROOT / "assets" / "demo_weights"


def rig_cameras(num_cameras: int = 4, timesteps: int = 3) -> np.ndarray:
    """Cameras on a circle of radius 2 looking at the origin, ``[T, N, 3, 4]`` (static over time)."""
    out = []
    for n in range(num_cameras):
        angle = 2 * np.pi * n / num_cameras
        eye = np.array([2 * np.cos(angle), 2 * np.sin(angle), 0.3])
        forward = -eye / np.linalg.norm(eye)
        right = np.cross(forward, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward])
        out.append(np.concatenate([rotation, (-rotation @ eye)[:, None]], 1))
    return np.broadcast_to(np.stack(out), (timesteps, num_cameras, 3, 4)).copy()


def test_the_fit_recovers_the_similarity_between_predicted_and_calibrated_cameras() -> None:
    calibrated = rig_cameras()
    truth = Sim3(
        2.5,
        quaternion_xyzw_to_matrix(np.array([0.1, -0.3, 0.2, 0.9]) / np.linalg.norm([0.1, -0.3, 0.2, 0.9])),
        np.array([0.4, -1.0, 3.0]),
    )
    predicted = truth.inverse().apply_to_extrinsics(calibrated)  # the same rig in the model's frame and scale
    fitted = fit_to_calibration(predicted, calibrated, ["a", "b", "c", "d"])
    assert fitted.sim3.scale == pytest.approx(2.5, rel=1e-9)
    np.testing.assert_allclose(fitted.sim3.apply_to_extrinsics(predicted), calibrated, atol=1e-9)
    assert not fitted.flagged and max(c.rotation_error_deg for c in fitted.cameras) < 1e-6


def test_a_camera_the_model_got_wrong_flags_the_window() -> None:
    calibrated = rig_cameras()
    predicted = calibrated.copy()
    turn = quaternion_xyzw_to_matrix(np.array([0.0, np.sin(np.radians(20)), 0.0, np.cos(np.radians(20))]))
    predicted[:, 2, :, :3] = predicted[:, 2, :, :3] @ turn  # camera c turned by 40 degrees
    fitted = fit_to_calibration(predicted, calibrated, ["a", "b", "c", "d"])
    assert fitted.flagged
    worst = max(fitted.cameras, key=lambda c: c.rotation_error_deg)
    assert worst.name == "c" and worst.rotation_error_deg > 20
    assert max(c.rotation_error_deg for c in fitted.cameras if c.name != "c") < 5  # the robust fit ignored it


def test_one_camera_or_co_located_cameras_have_no_baseline() -> None:
    assert has_baseline(rig_cameras())
    assert not has_baseline(rig_cameras(num_cameras=1))
    together = rig_cameras()
    together[..., 3] = np.einsum("tnij,tnj->tni", together[..., :3], -np.array([0.0, 0.0, 1.0])[None, None])
    assert not has_baseline(together)


@pytest.fixture(scope="module")
def static_rig(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SyntheticRigConfig(
        num_timesteps=14, num_cameras=3, height=56, width=77, seed=5, rig_motion=False, camera_spacing_deg=30.0
    )
    return write_dataset_root(make_synthetic_rig(config), tmp_path_factory.mktemp("static") / "rig")


def run(capture: Path, out: Path, *options: str):
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(capture),
            "--out",
            str(out),
            "--checkpoint",
            str(DEMO_WEIGHTS),
            "--device",
            "cpu",
            "--window",
            "6",
            "--stride",
            "4",
            *options,
        ],
    )
    assert result.exit_code == 0, result.output
    return result


def test_static_rig_calibrated_mode_has_no_drift_and_predicted_mode_reports_it(
    static_rig: Path, tmp_path: Path
) -> None:
    calibrated = run(static_rig, tmp_path / "calibrated", "--size", "70")
    assert "cameras: the calibration's (arbitrary)" in calibrated.output
    predicted = run(static_rig, tmp_path / "predicted", "--size", "70", "--cameras", "predicted")
    assert "cameras: predicted" in predicted.output
    truth = open_ground_truth(static_rig)
    reports = {}
    for mode in ("calibrated", "predicted"):
        recon = Reconstruction.open(tmp_path / mode)
        assert len(recon.windows()) == 3
        reports[mode] = frame_report(recon, truth, mode == "calibrated", "arbitrary")
    assert [d.center_drift for d in reports["calibrated"].drift] == [0.0, 0.0, 0.0]
    assert [d.rotation_drift_deg for d in reports["calibrated"].drift] == [0.0, 0.0, 0.0]
    assert max(d.center_drift for d in reports["predicted"].drift) > 1e-4
    assert np.isfinite(reports["calibrated"].sequence["abs_rel"])
    assert "accuracy" in reports["calibrated"].sequence and "accuracy" not in reports["predicted"].sequence
    # and eval prints them
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "predicted"), "--gt", str(static_rig)])
    assert result.exit_code == 0, result.output
    assert "centre drift" in result.output


def test_mv_page4d_rig_stores_the_dataset_cameras_at_every_timestep_of_every_window(tmp_path: Path) -> None:
    """Acceptance: `vggt-mv run mv_page4d_rig --checkpoint assets/demo_weights` announces the calibration from
    intrs/ + extrs/, and every stored camera is the dataset's (intrinsics through the run's transform)."""
    root = require(shared_dir() / "realdata" / "mv_page4d_rig", "mv_page4d_rig")
    result = run(root, tmp_path / "recon")
    assert "calibration" in result.output and "intrs/ + extrs/" in result.output
    assert "cameras: the calibration's" in result.output
    recon = Reconstruction.open(tmp_path / "recon")
    transforms = [FrameTransform.from_dict(d) for d in recon.meta["preprocess"]]
    frames = np.asarray(recon.meta["capture"]["frame_index"])
    assert len(recon.windows()) >= 2
    for record in recon.windows():
        arrays = recon.window_arrays(record.index, ("extrinsics", "intrinsics"))
        for k, t in enumerate(range(*record.held)):  # the timesteps the window stores
            for n, name in enumerate(recon.camera_names):
                frame = f"time_{int(frames[t, n]):02d}"
                extrinsics = np.load(root / "extrs" / frame / f"{name}.npy")[:3]
                assert np.abs(arrays["extrinsics"][k, n] - extrinsics).max() <= 1e-5
                expected_k = transforms[n].intrinsics_to_target(np.load(root / "intrs" / frame / f"{name}.npy"))
                np.testing.assert_allclose(arrays["intrinsics"][k, n], expected_k, rtol=1e-6, atol=1e-4)
    assert [entry["alignment"]["kind"] for entry in recon.meta["alignment"]] == ["calibrated"] * len(recon.windows())


def test_the_agreement_is_summarised_for_the_run_and_the_viewer() -> None:
    calibrated = rig_cameras()
    predicted = calibrated.copy()
    turn = quaternion_xyzw_to_matrix(np.array([0.0, np.sin(np.radians(20)), 0.0, np.cos(np.radians(20))]))
    predicted[:, 2, :, :3] = predicted[:, 2, :, :3] @ turn
    good = fit_to_calibration(calibrated, calibrated, ["a", "b", "c", "d"])
    bad = fit_to_calibration(predicted, calibrated, ["a", "b", "c", "d"])
    entries = [
        Alignment("calibrated", units="m", flagged=fit.flagged, cameras=list(fit.cameras)) for fit in (good, bad)
    ]
    summary = dataclasses.asdict(agreement_summary(entries))
    assert summary["windows"] == 2 and summary["flagged_windows"] == [1]
    assert summary["rotation_error_deg_max"] > 20
    assert "flagged windows [1]" in agreement_status(entries)
    assert agreement_status([Alignment("sim3")]) == ""
