"""The rig-consistency loss: zero when every camera keeps its pose relative to camera 0 over a window, positive
otherwise, and only applied where the ground-truth rig is rigid."""

from __future__ import annotations

import math

import pytest
import torch

from vggt_t_mv.geometry import extri_intri_to_pose_encoding, quaternion_to_rotation
from vggt_t_mv.train.losses import LossConfig, rig_consistency, rig_term, to_homogeneous


def rotation(axis: tuple[float, float, float], degrees: float) -> torch.Tensor:
    half = math.radians(degrees) / 2
    axis_t = torch.tensor(axis, dtype=torch.float64)
    axis_t = axis_t / axis_t.norm()
    return quaternion_to_rotation(torch.cat([axis_t * math.sin(half), torch.tensor([math.cos(half)])]))


def pose(r: torch.Tensor, t: tuple[float, float, float]) -> torch.Tensor:
    return torch.cat([r, torch.tensor(t, dtype=torch.float64)[:, None]], dim=1)


def rigid_rig(times: int = 3, views: int = 3) -> torch.Tensor:
    """``[1, T, N, 3, 4]``: camera n = its fixed mount (cam_from_rig) after the rig's motion at t (rig_from_world)."""
    mounts = [pose(rotation((0, 1, 0), 20.0 * n), (0.5 * n, 0.1 * n, 0.0)) for n in range(views)]
    motions = [pose(rotation((0.2, 1, 0.1), 15.0 * t), (0.3 * t, -0.2 * t, 0.1 * t)) for t in range(times)]
    grid = [[(to_homogeneous(m) @ to_homogeneous(w))[:3] for m in mounts] for w in motions]
    return torch.stack([torch.stack(row) for row in grid])[None]


def encode(extrinsics: torch.Tensor) -> torch.Tensor:
    intrinsics = torch.tensor([[50.0, 0, 21], [0, 50.0, 14], [0, 0, 1]], dtype=torch.float64)
    return extri_intri_to_pose_encoding(extrinsics, intrinsics.expand(*extrinsics.shape[:3], 3, 3), (28, 42))


def test_zero_for_a_rig_whose_relative_poses_are_constant() -> None:
    extrinsics = rigid_rig()
    assert rig_consistency(extrinsics).item() < 1e-12
    assert rig_term(encode(extrinsics), encode(extrinsics), (28, 42)).item() < 1e-6


def test_positive_when_a_camera_moves_against_the_rig() -> None:
    extrinsics = rigid_rig()
    moved = extrinsics.clone()
    moved[0, 2, 1] = pose(rotation((1, 0, 0), 5.0) @ moved[0, 2, 1, :, :3], tuple(moved[0, 2, 1, :, 3].tolist()))
    assert rig_consistency(moved).item() > 1e-3
    prediction = encode(moved).float().requires_grad_(True)
    value = rig_term(prediction, encode(extrinsics), (28, 42))
    assert value.item() > 1e-3
    value.backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0


def test_a_ground_truth_rig_that_is_not_rigid_is_left_alone() -> None:
    extrinsics = rigid_rig()
    moving = extrinsics.clone()
    moving[0, 1, 2, :, 3] += torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64)  # camera 2 slides at t = 1
    assert rig_term(encode(moving), encode(moving), (28, 42)).item() == 0.0


def test_one_timestep_or_one_camera_is_consistent_by_definition_and_the_loss_is_off_by_default() -> None:
    extrinsics = rigid_rig()
    assert rig_consistency(extrinsics[:, :1]).item() == 0.0
    assert rig_consistency(extrinsics[:, :, :1]).item() == 0.0
    assert LossConfig().rig == 0.0


def test_the_weight_in_the_config_turns_the_term_on_in_the_training_loss() -> None:
    from types import SimpleNamespace

    from vggt_t_mv.data.synthetic import make_synthetic_rig
    from vggt_t_mv.train.dataset import Sequence, WindowConfig, WindowDataset, collate
    from vggt_t_mv.train.losses import compute_loss

    rig = make_synthetic_rig(num_timesteps=3, num_cameras=3, height=28, width=42, seed=3)
    batch = collate([WindowDataset([Sequence.from_rig(rig)], WindowConfig(3, 3, 28, 42, camera_offsets="first"))[0]])
    truth = extri_intri_to_pose_encoding(batch.extrinsics.double(), batch.intrinsics.double(), (28, 42)).float()
    noisy = truth + 0.05 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))
    preds = SimpleNamespace(
        pose_enc=noisy, pose_enc_list=[noisy], depth=None, world_points=None, dynamic_mask_logits=None
    )
    assert "rig" not in compute_loss(preds, batch, LossConfig()).terms
    with_rig = compute_loss(preds, batch, LossConfig(rig=2.0))
    without = compute_loss(preds, batch, LossConfig())
    assert with_rig.terms["rig"].item() > 0
    assert with_rig.total.item() == pytest.approx(without.total.item() + 2.0 * with_rig.terms["rig"].item(), rel=1e-5)
