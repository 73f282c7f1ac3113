"""Sim(3) fitting, window stitching and rig geometry (pure numpy, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from app.reconstruct.stitching import (
    metric_scale,
    owned_ranges,
    relative_poses,
    rig_diagnostics,
    rig_error,
    rigid_rig,
    window_spans,
)
from tests.helpers.stitching import WindowGeometry, merge_windows, stitch_windows
from vggt_t_mv.npgeometry import Sim3, camera_centers, robust_sim3, rotation_angle_deg, umeyama


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    return q if np.linalg.det(q) > 0 else -q


def small_rotation(rng: np.random.Generator, degrees: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(degrees) * rng.normal()
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def random_sim3(rng: np.random.Generator) -> Sim3:
    return Sim3(float(np.exp(rng.uniform(-1, 1))), random_rotation(rng), rng.normal(size=3) * 3)


def test_umeyama_recovers_exact_sim3() -> None:
    rng = np.random.default_rng(1)
    truth = random_sim3(rng)
    source = rng.normal(size=(50, 3))
    fit = umeyama(source, truth.apply(source))
    assert fit.scale == pytest.approx(truth.scale, rel=1e-9)
    assert np.allclose(fit.rotation, truth.rotation, atol=1e-9)
    assert np.allclose(fit.translation, truth.translation, atol=1e-9)


def test_sim3_inverse_compose_and_camera_convention() -> None:
    rng = np.random.default_rng(2)
    a, b = random_sim3(rng), random_sim3(rng)
    x = rng.normal(size=(10, 3))
    assert np.allclose(a.compose(b).apply(x), a.apply(b.apply(x)))
    assert np.allclose(a.inverse().apply(a.apply(x)), x)
    extrinsics = np.concatenate([random_rotation(rng), rng.normal(size=(3, 1))], axis=1)
    moved = a.apply_to_extrinsics(extrinsics)
    # camera centre moves like a point, and camera-frame coordinates (hence depth) scale by s
    assert np.allclose(camera_centers(moved), a.apply(camera_centers(extrinsics)))
    cam = extrinsics[:, :3] @ x.T + extrinsics[:, 3:]
    cam_moved = moved[:, :3] @ a.apply(x).T + moved[:, 3:]
    assert np.allclose(cam_moved, a.scale * cam)


def test_robust_sim3_ignores_outliers_where_plain_umeyama_fails() -> None:
    rng = np.random.default_rng(3)
    truth = random_sim3(rng)
    source = rng.normal(size=(4000, 3))
    target = truth.apply(source) + rng.normal(size=source.shape) * 0.01
    outliers = rng.random(len(source)) < 0.1
    target[outliers] = rng.normal(size=(outliers.sum(), 3)) * 10
    fit = robust_sim3(source, target)
    assert fit.sim3.scale == pytest.approx(truth.scale, rel=2e-3)
    assert rotation_angle_deg(fit.sim3.rotation, truth.rotation) < 0.1
    assert 0.85 < fit.inlier_fraction < 0.95
    plain = umeyama(source, target)
    assert abs(plain.scale / truth.scale - 1) > 10 * abs(fit.sim3.scale / truth.scale - 1)


@pytest.mark.parametrize("num_timesteps", range(1, 40))
@pytest.mark.parametrize(("window", "stride"), [(2, 1), (4, 3), (6, 4), (8, 4), (16, 12)])
def test_window_spans_cover_and_owned_ranges_tile(num_timesteps: int, window: int, stride: int) -> None:
    spans = window_spans(num_timesteps, window, stride)
    assert spans[0][0] == 0 and spans[-1][1] == num_timesteps
    assert all(end - start == min(window, num_timesteps) for start, end in spans)
    assert all(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))  # consecutive windows overlap
    owned = owned_ranges(spans)
    assert [t for start, end in owned for t in range(start, end)] == list(range(num_timesteps))
    assert all(span[0] <= start and end <= span[1] for span, (start, end) in zip(spans, owned, strict=True))


def test_merge_rule_splits_overlaps() -> None:
    spans = [(0, 6), (4, 10)]
    values = [np.full(6, 0), np.full(6, 1)]
    assert merge_windows(values, spans).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


def _stitch_synthetic(outlier_fraction: float, robust: bool) -> tuple[float, float]:
    """Stitch GT windows moved by random Sim(3)s, noised with outliers; ATE / scene size and max rotation error."""
    from vggt_t_mv.data.synthetic import SyntheticRigConfig, make_synthetic_rig

    rig = make_synthetic_rig(SyntheticRigConfig(num_timesteps=18, num_cameras=3, height=48, width=64, seed=0))
    scene = rig.scene_scale()
    rng = np.random.default_rng(0)
    spans = window_spans(rig.num_timesteps, 6, 4)
    windows, truths = [], []
    for start, end in spans:
        truth = random_sim3(rng)
        points = rig.world_points[start:end].astype(np.float64)
        points = points + rng.normal(size=points.shape) * 0.003 * scene
        outliers = rng.random(points.shape[:-1]) < outlier_fraction
        low, high = points.reshape(-1, 3).min(0), points.reshape(-1, 3).max(0)
        points[outliers] = rng.uniform(low, high, size=(int(outliers.sum()), 3))
        conf = rng.uniform(1.0, 3.0, size=points.shape[:-1]) * rig.valid[start:end]
        extrinsics = rig.extrinsics[start:end].astype(np.float64).copy()
        for index in np.ndindex(extrinsics.shape[:2]):
            noise = small_rotation(rng, 0.05)
            extrinsics[index][:, :3] = noise @ extrinsics[index][:, :3]
            extrinsics[index][:, 3] += rng.normal(size=3) * 0.001 * scene
        window = WindowGeometry(points, conf, extrinsics).transformed(truth)
        windows.append(window)
        truths.append(truth)
    if robust:
        aligned, fits = stitch_windows(windows, spans)
    else:
        aligned, fits = stitch_windows(windows, spans, iterations=0, hypotheses=0)
    assert fits[0] is None and all(f is not None for f in fits[1:])
    stitched = merge_windows([w.extrinsics for w in aligned], spans)
    # Everything is now in window 0's frame, which is the ground truth moved by truths[0]: undo that.
    centres, gt_centres = camera_centers(stitched).reshape(-1, 3), rig.camera_centers().reshape(-1, 3)
    to_gt = truths[0].inverse()
    ate = float(np.sqrt(((to_gt.apply(centres) - gt_centres) ** 2).sum(1).mean()))
    rotations = stitched[..., :3] @ to_gt.rotation.T  # camera-from-GT-world
    rotation_error = float(rotation_angle_deg(rotations, rig.extrinsics[..., :3].astype(np.float64)).max())
    return ate / scene, rotation_error


def test_stitching_synthetic_windows_back_to_ground_truth() -> None:
    """Acceptance: random Sim(3) per window + noise + 10 % outliers -> ATE < 1 % of the scene, rotation < 0.5°."""
    ate, rotation_error = _stitch_synthetic(0.1, robust=True)
    assert ate < 0.01, ate
    assert rotation_error < 0.5, rotation_error


def test_stitching_without_irls_is_hurt_by_outliers() -> None:
    """The same data through plain Umeyama (+ one trimmed refit, no LMedS start, no IRLS) fails: the test can fail."""
    robust_ate, _ = _stitch_synthetic(0.2, robust=True)
    plain_ate, _ = _stitch_synthetic(0.2, robust=False)
    assert robust_ate < 0.01 < plain_ate


def _rig_sequence(rng: np.random.Generator, num_timesteps: int = 10, num_cameras: int = 3):
    rig = np.stack([np.concatenate([random_rotation(rng), rng.normal(size=(3, 1))], 1) for _ in range(num_cameras)])
    rig[0] = np.concatenate([np.eye(3), np.zeros((3, 1))], 1)
    extrinsics = np.zeros((num_timesteps, num_cameras, 3, 4))
    for t in range(num_timesteps):
        base = np.concatenate([random_rotation(rng), rng.normal(size=(3, 1))], 1)
        for n in range(num_cameras):
            extrinsics[t, n, :, :3] = rig[n, :, :3] @ base[:, :3]
            extrinsics[t, n, :, 3] = rig[n, :, :3] @ base[:, 3] + rig[n, :, 3]
    intrinsics = np.tile(np.array([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]]), (num_timesteps, num_cameras, 1, 1))
    return rig, extrinsics, intrinsics


def test_rig_diagnostics_rigid_rig_and_metric_scale() -> None:
    rng = np.random.default_rng(4)
    rig, extrinsics, intrinsics = _rig_sequence(rng)
    assert np.allclose(relative_poses(extrinsics), np.broadcast_to(rig, extrinsics.shape), atol=1e-9)
    report = rig_diagnostics(extrinsics, intrinsics, ["a", "b", "c"])
    assert all(c["focal_spread_pct"] < 1e-9 for c in report["cameras"])
    assert all(
        c["rotation_spread_max_deg"] < 1e-5 and c["translation_spread_pct"] < 1e-6 for c in report["cameras"][1:]
    )
    # perturb the relative poses over time: diagnostics see it, the rigid-rig average removes it
    noisy = extrinsics.copy()
    for t, n in np.ndindex(noisy.shape[:2]):
        if n:
            noisy[t, n, :, :3] = small_rotation(rng, 1.0) @ noisy[t, n, :, :3]
            noisy[t, n, :, 3] += rng.normal(size=3) * 0.02
    assert rig_diagnostics(noisy, intrinsics, ["a", "b", "c"])["cameras"][1]["rotation_spread_mean_deg"] > 0.3
    rigid, rigid_k, estimated = rigid_rig(noisy, intrinsics)
    assert np.allclose(rigid[:, 0], noisy[:, 0])
    assert rotation_angle_deg(estimated[1, :, :3], rig[1, :, :3]) < 1.0
    after = rig_diagnostics(rigid, rigid_k, ["a", "b", "c"])
    assert all(c["rotation_spread_max_deg"] < 1e-5 for c in after["cameras"][1:])
    # metric scale: a reconstruction at 1/3 scale is brought back, and the rig error is then ~0
    shrunk = extrinsics.copy()
    shrunk[..., 3] /= 3.0
    scale, ratios = metric_scale(shrunk, rig)
    assert scale == pytest.approx(3.0, rel=1e-6) and np.allclose(ratios, 3.0)
    errors = rig_error(Sim3(scale).apply_to_extrinsics(shrunk), rig, ["a", "b", "c"])
    assert all(e["rotation_error_deg"] < 1e-5 and e["translation_error"] < 1e-6 for e in errors)
