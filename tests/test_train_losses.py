"""Training losses: every term is zero on a perfect prediction and positive otherwise; the ground truth is
normalised to the first camera's frame and unit mean point distance."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vggt_t_mv.data.synthetic import make_synthetic_rig
from vggt_t_mv.model import Predictions
from vggt_t_mv.train.dataset import Sequence, WindowConfig, WindowDataset, collate
from vggt_t_mv.train.losses import LossConfig, compute_loss, normalize_targets

ZERO_ON_PERFECT = ("camera", "depth", "depth_grad", "point", "point_grad", "mask_bce", "mask_dice", "mask_fused")


@pytest.fixture(scope="module")
def batch():
    rig = make_synthetic_rig(num_timesteps=2, num_cameras=3, height=28, width=42, seed=3)
    dataset = WindowDataset([Sequence.from_rig(rig)], WindowConfig(2, 3, 28, 42, camera_offsets="all"))
    return collate([dataset[0], dataset[1]])


def perfect_predictions(batch) -> Predictions:
    targets = normalize_targets(batch)
    shape = batch.depth.shape
    logits = (batch.dynamic_masks * 2 - 1) * 60.0
    return Predictions(
        pose_enc=targets.pose_enc.clone(),
        pose_enc_list=[targets.pose_enc.clone() for _ in range(3)],
        depth=targets.depth[..., None].clone(),
        depth_conf=torch.full(shape, 1.5),
        world_points=targets.world_points.clone(),
        world_points_conf=torch.full(shape, 2.0),
        dynamic_mask=torch.sigmoid(logits),
        dynamic_mask_logits=logits,
    )


def test_normalised_targets_are_in_the_first_cameras_frame_at_unit_scale(batch) -> None:
    targets = normalize_targets(batch)
    first = targets.pose_enc[:, 0, 0]
    torch.testing.assert_close(first[:, :7], torch.tensor([[0, 0, 0, 0, 0, 0, 1.0]] * 2), atol=1e-6, rtol=0)
    distances = targets.world_points.norm(dim=-1)[targets.valid]
    assert distances.numel() > 0
    for b in range(2):
        mean = targets.world_points[b].norm(dim=-1)[targets.valid[b]].mean()
        assert abs(mean.item() - 1.0) < 1e-5
    # depth is the z of the points in each camera; for camera (0, 0) it equals the reference-frame z
    z = targets.world_points[:, 0, 0, ..., 2]
    torch.testing.assert_close(z, targets.depth[:, 0, 0], atol=1e-5, rtol=1e-5)


def test_every_term_is_zero_on_a_perfect_prediction(batch) -> None:
    cfg = LossConfig()
    out = compute_loss(perfect_predictions(batch), batch, cfg, external_masks=True)
    assert set(ZERO_ON_PERFECT) <= set(out.terms)
    for name in ZERO_ON_PERFECT:
        assert abs(out.terms[name].item()) < 1e-6, (name, out.terms[name].item())
    # the aleatoric regularisers are -alpha * mean(log conf), whatever the prediction
    assert out.terms["depth_conf_reg"].item() == pytest.approx(-cfg.alpha * torch.log(torch.tensor(1.5)).item())
    assert out.terms["point_conf_reg"].item() == pytest.approx(-cfg.alpha * torch.log(torch.tensor(2.0)).item())


PERTURBATIONS = {
    "camera": lambda p: dataclasses.replace(p, pose_enc_list=[t + 0.1 for t in p.pose_enc_list]),
    "depth": lambda p: dataclasses.replace(p, depth=p.depth * 1.2),
    "depth_grad": lambda p: dataclasses.replace(p, depth=p.depth + torch.rand_like(p.depth)),
    "point": lambda p: dataclasses.replace(p, world_points=p.world_points + 0.05),
    "point_grad": lambda p: dataclasses.replace(p, world_points=p.world_points * 1.3),
    "mask_bce": lambda p: dataclasses.replace(p, dynamic_mask_logits=-p.dynamic_mask_logits),
    "mask_dice": lambda p: dataclasses.replace(p, dynamic_mask_logits=p.dynamic_mask_logits * 0 + 0.3),
    "mask_fused": lambda p: dataclasses.replace(p, dynamic_mask=1 - p.dynamic_mask),
}


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_each_term_is_positive_on_a_wrong_prediction(batch, name: str) -> None:
    wrong = PERTURBATIONS[name](perfect_predictions(batch))
    out = compute_loss(wrong, batch, LossConfig(), external_masks=True)
    assert out.terms[name].item() > 1e-3, (name, out.terms[name].item())


def test_total_is_the_weighted_sum_and_has_gradients(batch) -> None:
    preds = perfect_predictions(batch)
    preds.depth = (preds.depth * 1.1).requires_grad_()
    cfg = LossConfig(depth=2.0, camera=0.0)
    out = compute_loss(preds, batch, cfg)
    expected = sum(getattr(cfg, k) * v for k, v in out.terms.items())
    assert out.total.item() == pytest.approx(expected.item(), rel=1e-5)
    out.total.backward()
    assert preds.depth.grad is not None and preds.depth.grad.abs().sum() > 0
    assert "mask_fused" not in out.terms  # only in steps that feed external masks


def test_camera_iterations_are_weighted_by_gamma(batch) -> None:
    preds = perfect_predictions(batch)
    target = preds.pose_enc_list[0]
    cfg = LossConfig(gamma=0.5)
    only_first = dataclasses.replace(preds, pose_enc_list=[target + 0.1, target, target])
    only_last = dataclasses.replace(preds, pose_enc_list=[target, target, target + 0.1])
    first = compute_loss(only_first, batch, cfg).terms["camera"].item()
    last = compute_loss(only_last, batch, cfg).terms["camera"].item()
    assert first == pytest.approx(0.25 * last, rel=1e-4)
