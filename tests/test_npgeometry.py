"""The numpy geometry module: Sim(3) algebra, the fits, the rotation angle over its whole range and quaternions."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_t_mv.npgeometry import (
    Sim3,
    camera_centers,
    matrix_to_quaternion_xyzw,
    quaternion_xyzw_to_matrix,
    robust_sim3,
    rotation_angle_deg,
    umeyama,
)


def axis_angle(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.radians(degrees)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


@pytest.mark.parametrize("degrees", [1e-4, 0.01, 1.0, 45.0, 90.0, 179.0, 179.99, 180.0])
def test_rotation_angle_is_accurate_from_zero_to_half_a_turn(degrees: float) -> None:
    rng = np.random.default_rng(0)
    base = axis_angle(rng.normal(size=3), 37.0)
    turned = base @ axis_angle(rng.normal(size=3), degrees)
    assert float(rotation_angle_deg(base, turned)) == pytest.approx(degrees, abs=1e-9 + 1e-9 * degrees)
    assert float(rotation_angle_deg(base, base)) == 0.0


def test_rotation_angle_of_float32_matrices_keeps_small_angles() -> None:
    turned = axis_angle([0, 0, 1], 0.01).astype(np.float32)
    assert float(rotation_angle_deg(np.eye(3, dtype=np.float32), turned)) == pytest.approx(0.01, abs=1e-5)


def test_quaternions_round_trip_and_match_the_axis_angle() -> None:
    rng = np.random.default_rng(1)
    rotations = np.stack([axis_angle(rng.normal(size=3), a) for a in (0.0, 30.0, 120.0, 179.999, 180.0)])
    quaternions = matrix_to_quaternion_xyzw(rotations)
    assert np.allclose(np.linalg.norm(quaternions, axis=-1), 1.0) and (quaternions[:, 3] >= 0).all()
    np.testing.assert_allclose(quaternion_xyzw_to_matrix(quaternions), rotations, atol=1e-12)
    half = np.radians(30.0) / 2  # 30 degrees about z: (0, 0, sin 15°, cos 15°)
    np.testing.assert_allclose(
        matrix_to_quaternion_xyzw(axis_angle([0, 0, 1], 30.0)), [0, 0, np.sin(half), np.cos(half)]
    )
    np.testing.assert_allclose(quaternion_xyzw_to_matrix(2.0 * quaternions), rotations, atol=1e-12)  # scale-free


def test_sim3_moves_cameras_like_their_centres_and_scales_camera_frames() -> None:
    rng = np.random.default_rng(2)
    sim3 = Sim3(1.5, axis_angle(rng.normal(size=3), 70.0), rng.normal(size=3))
    extrinsics = np.concatenate([axis_angle(rng.normal(size=3), 20.0), rng.normal(size=(3, 1))], axis=1)
    moved = sim3.apply_to_extrinsics(extrinsics)
    np.testing.assert_allclose(camera_centers(moved), sim3.apply(camera_centers(extrinsics)))
    np.testing.assert_allclose(sim3.compose(sim3.inverse()).as_matrix(), np.eye(4), atol=1e-12)
    assert Sim3.identity().is_identity() and not sim3.is_identity()
    big = rng.normal(size=(1 << 18, 4, 3)).astype(np.float32)  # the torch path for big float32 maps agrees
    np.testing.assert_allclose(sim3.apply(big), sim3.apply(big.astype(np.float64)), rtol=1e-5, atol=1e-5)


def test_umeyama_of_a_collapsed_source_maps_everything_to_the_target_centroid() -> None:
    target = np.arange(12.0).reshape(4, 3)
    fit = umeyama(np.ones((4, 3)), target)
    assert fit.scale == 0.0
    np.testing.assert_allclose(fit.apply(np.ones((1, 3)))[0], target.mean(0))
    with pytest.raises(ValueError, match="weighted points"):
        umeyama(np.ones((4, 3)), target, np.zeros(4))


def test_robust_fit_needs_three_usable_points() -> None:
    points = np.array([[0.0, 0, 0], [1, 0, 0], [np.nan, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="at least 3"):
        robust_sim3(points, points, np.array([1.0, 1.0, 1.0, 0.0]))
