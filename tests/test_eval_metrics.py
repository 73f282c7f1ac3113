"""Evaluation metrics: exact on known transforms, invariant to what they should ignore, worse on wrong input."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_t_mv.eval import metrics as M
from vggt_t_mv.npgeometry import umeyama


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def random_cameras(rng: np.random.Generator, count: int) -> np.ndarray:
    """Camera-from-world ``[count, 3, 4]``."""
    return np.stack([np.concatenate([random_rotation(rng), rng.normal(size=(3, 1))], axis=1) for _ in range(count)])


def sim3_cameras(extrinsics: np.ndarray, scale: float, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """The same cameras in a world changed by ``X' = s R X + t``: ``R_c' = R_c R^T``, ``t_c' = s t_c - R_c' t``."""
    r_new = extrinsics[..., :3, :3] @ rotation.T
    t_new = scale * extrinsics[..., :3, 3] - np.einsum("...ij,j->...i", r_new, translation)
    return np.concatenate([r_new, t_new[..., None]], axis=-1)


def test_umeyama_recovers_a_similarity() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3))
    rotation, translation = random_rotation(rng), rng.normal(size=3)
    fit = umeyama(points, 2.5 * points @ rotation.T + translation)
    scale, r, t = fit.scale, fit.rotation, fit.translation
    assert scale == pytest.approx(2.5)
    np.testing.assert_allclose(r, rotation, atol=1e-10)
    np.testing.assert_allclose(t, translation, atol=1e-10)


def test_camera_metrics_are_perfect_up_to_a_similarity_and_bad_for_identity_cameras() -> None:
    rng = np.random.default_rng(1)
    gt = random_cameras(rng, 6)
    moved = sim3_cameras(gt, 0.3, random_rotation(rng), rng.normal(size=3))
    perfect = M.camera_metrics(moved, gt)
    assert perfect["ate"] < 1e-9 and perfect["rpe_trans"] < 1e-9 and perfect["rpe_rot_deg"] < 1e-5
    assert perfect["auc30"] == 1.0
    identity = np.tile(np.concatenate([np.eye(3), np.zeros((3, 1))], axis=1), (6, 1, 1))
    bad = M.camera_metrics(identity, gt)
    assert bad["ate"] > 0.1 and bad["rpe_rot_deg"] > 10 and bad["auc30"] < 0.2


def test_rpe_rotation_measures_a_known_error() -> None:
    rng = np.random.default_rng(2)
    gt = random_cameras(rng, 2)
    pred = gt.copy()
    angle = np.radians(10)
    turn = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    pred[1, :, :3] = turn @ gt[1, :, :3]
    assert M.rpe(pred, gt)[1] == pytest.approx(10.0, abs=1e-6)
    rot, _ = M.relative_pose_errors(pred, gt)
    assert rot[0] == pytest.approx(10.0, abs=1e-6)


def test_pose_auc_counts_thresholds() -> None:
    assert M.pose_auc(np.array([0.5]), np.array([0.0])) == 1.0
    assert M.pose_auc(np.array([15.5]), np.array([0.0])) == pytest.approx(15 / 30)
    assert M.pose_auc(np.array([40.0]), np.array([0.0])) == 0.0
    assert M.pose_auc(np.array([0.0, 0.0]), np.array([0.0, 100.0])) == 0.5


def test_zero_baseline_pairs_count_only_their_rotation() -> None:
    rng = np.random.default_rng(3)
    gt = random_cameras(rng, 2)
    gt = np.concatenate([gt, gt[:1]])  # camera 2 = camera 0 (a static rig seen twice)
    rot, trans = M.relative_pose_errors(gt, gt)
    assert np.all(rot < 1e-5) and np.all(trans < 1e-5)


def test_depth_metrics_use_median_scaling() -> None:
    rng = np.random.default_rng(4)
    gt = rng.uniform(1, 5, size=(2, 3, 8, 8))
    assert M.depth_metrics(3.0 * gt, gt) == {"abs_rel": pytest.approx(0.0, abs=1e-12), "delta1": 1.0}
    noisy = gt * rng.uniform(0.5, 1.5, size=gt.shape)
    result = M.depth_metrics(noisy, gt)
    assert 0.05 < result["abs_rel"] < 0.5 and 0 < result["delta1"] < 1
    valid = np.zeros(gt.shape, bool)
    valid[0] = True
    masked = M.depth_metrics(np.where(valid, 2 * gt, 100.0), gt, valid)
    assert masked["abs_rel"] == pytest.approx(0.0, abs=1e-12)


def test_point_metrics_zero_after_a_similarity_and_positive_with_noise() -> None:
    rng = np.random.default_rng(5)
    gt = rng.normal(size=(2, 16, 16, 3))
    valid = rng.uniform(size=gt.shape[:-1]) > 0.2
    moved = 0.7 * gt @ random_rotation(rng).T + rng.normal(size=3)
    perfect = M.point_metrics(moved, gt, valid)
    assert perfect["accuracy"] < 1e-6 and perfect["completeness"] < 1e-6
    noisy = M.point_metrics(gt + rng.normal(scale=0.1, size=gt.shape), gt, valid)
    assert noisy["accuracy"] > 0.01 and noisy["completeness"] > 0.01


def test_nearest_distances_match_brute_force() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(200, 3))
    expected = np.linalg.norm(a[:, None] - b[None], axis=-1).min(1)
    np.testing.assert_allclose(M.nearest_distances(a, b, chunk=64), expected, atol=1e-9)


def test_mask_iou() -> None:
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    pred = np.zeros((4, 4))
    pred[1:3] = 0.9
    assert M.mask_iou(pred, gt) == pytest.approx(4 / 12)
    assert M.mask_iou(gt.astype(float), gt) == 1.0
    assert M.mask_iou(np.zeros((4, 4)), gt) == 0.0
    assert np.isnan(M.mask_iou(np.zeros((4, 4)), np.zeros((4, 4), bool)))
