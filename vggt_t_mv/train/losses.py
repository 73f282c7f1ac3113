"""Training losses, following VGGT's recipe where it applies, plus a dynamic-mask loss.

Conventions: predictions are in the frame of camera ``(t=0, n=0)`` (as the model outputs them); the ground truth
is brought into that frame and divided by the **scene scale** ``s`` = mean distance of the valid ground-truth points
from that camera's centre (:func:`normalize_targets`). Predictions are *not* rescaled: the model learns to predict
the normalised scene, as in VGGT.

Terms (each is 0 for a perfect prediction and positive otherwise, except the ``*_conf_reg`` terms, the
``-alpha * log(conf)`` aleatoric regularisers, which are reported separately for that reason):

* ``camera``: over all camera-head iterations ``i = 0..n-1`` with weight ``gamma^(n-1-i)``, the mean L1 (or Huber)
  difference of the pose encodings: translation + quaternion + ``fov_weight`` x field of view;
* ``depth`` / ``point``: ``mean(conf * |pred - gt|)`` over valid pixels (Euclidean norm for points),
  ``depth_grad`` / ``point_grad``: the confidence-weighted image gradient of ``pred - gt`` at 3 scales,
  ``depth_conf_reg`` / ``point_conf_reg``: ``-alpha * mean(log conf)``;
* ``rig`` (off unless ``LossConfig.rig > 0``): rig consistency. For a rig whose cameras are fixed to each other,
  each camera's pose relative to camera 0 (``cam_n_from_cam_0 = E[t, n] E[t, 0]^-1``) is the same at every timestep
  of a window; the term is the mean absolute deviation of the predicted relative poses (the 3x4 ``[R | t]``,
  translation in the normalised scene units) from their mean over the window's timesteps (:func:`rig_consistency`).
  It is 0 when the predicted relative poses are constant and positive otherwise, and it is applied only to windows
  whose ground-truth rig is rigid (the same deviation of the ground truth below ``RIGID_TOLERANCE``), so a rig whose
  cameras move against each other is never pushed towards a fixed one;
* ``mask_bce`` / ``mask_dice``: binary cross entropy on ``dynamic_mask_logits`` and soft Dice (per frame) on their
  sigmoid, over pixels whose label is known; ``mask_fused``: BCE of the fused ``dynamic_mask`` probability, only in
  steps that feed external masks (it trains the fusion gate).

Not reproduced from VGGT: the 98th-percentile error filter and the surface-normal gradient term of the point loss
(both losses use the plain gradient term).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vggt_t_mv.geometry import closed_form_inverse_se3, extri_intri_to_pose_encoding, pose_encoding_to_extri_intri
from vggt_t_mv.train.dataset import Sample

TERM_NAMES = (
    "camera",
    "depth",
    "depth_grad",
    "depth_conf_reg",
    "point",
    "point_grad",
    "point_conf_reg",
    "mask_bce",
    "mask_dice",
    "mask_fused",
    "rig",
)
CameraLossType = Literal["l1", "huber"]  # the camera term's per-element loss
RIGID_TOLERANCE = 1e-4  # ground-truth rig-consistency deviation below which a window's rig counts as rigid


@dataclass
class LossConfig:
    """Weights of the loss terms (:data:`TERM_NAMES`) and their parameters; the total is the weighted sum."""

    camera: float = 5.0
    depth: float = 1.0
    depth_grad: float = 1.0
    depth_conf_reg: float = 1.0
    point: float = 1.0
    point_grad: float = 1.0
    point_conf_reg: float = 1.0
    mask_bce: float = 1.0
    mask_dice: float = 1.0
    mask_fused: float = 0.5
    rig: float = 0.0  # rig consistency (for rigs whose cameras are fixed to each other); 0 = off
    alpha: float = 0.2  # aleatoric regulariser: -alpha * log(conf)
    gamma: float = 0.6  # camera iterations weighted gamma^(n-1-i)
    fov_weight: float = 0.5
    camera_loss_type: CameraLossType = "l1"
    huber_delta: float = 0.1
    gradient_scales: int = 3


@dataclass
class Targets:
    """Ground truth in the reference camera's frame, divided by the scene scale. Leading dims ``[B, T, N]``."""

    pose_enc: Tensor  # [B, T, N, 9] encoding of the cameras relative to (t=0, n=0), translation / scale
    depth: Tensor  # [B, T, N, H, W] / scale
    world_points: Tensor  # [B, T, N, H, W, 3] in the reference camera's frame / scale
    valid: Tensor  # bool [B, T, N, H, W]
    scale: Tensor  # [B] the scene scale s (in the input's units)


@dataclass
class LossOutput:
    total: Tensor  # scalar, with gradients
    terms: dict[str, Tensor] = field(default_factory=dict)  # unweighted scalar terms (detached)


def to_homogeneous(extrinsics: Tensor) -> Tensor:
    """``[..., 3, 4]`` -> ``[..., 4, 4]``."""
    bottom = torch.zeros(extrinsics.shape[:-2] + (1, 4), dtype=extrinsics.dtype, device=extrinsics.device)
    bottom[..., 0, 3] = 1
    return torch.cat([extrinsics, bottom], dim=-2)


def normalize_targets(batch: Sample) -> Targets:
    """Express the ground truth of ``batch`` (leading dims ``[B, T, N]``) in camera ``(0, 0)``'s frame at unit scale.

    Cameras become ``cam_from_ref = cam_from_world @ world_from_ref``; points ``X_ref = R_ref X + t_ref``; the scale
    ``s`` is the mean ``|X_ref|`` over valid pixels (the mean camera-centre distance when no pixel is valid, 1 if
    that is 0 too). Translations, depth and points are divided by ``s``. Computed in float64.
    """
    extrinsics = batch.extrinsics.double()
    batch_size = extrinsics.shape[0]
    ref = extrinsics[:, 0, 0]  # [B, 3, 4]
    world_from_ref = to_homogeneous(closed_form_inverse_se3(ref))  # [B, 4, 4]
    relative = to_homogeneous(extrinsics) @ world_from_ref[:, None, None]  # [B, T, N, 4, 4]
    rotation, translation = ref[:, :3, :3], ref[:, :3, 3]
    points = torch.einsum("bij,btnhwj->btnhwi", rotation, batch.world_points.double())
    points = points + translation[:, None, None, None, None, :]
    valid = batch.valid.bool()
    distances = points.norm(dim=-1) * valid
    count = valid.reshape(batch_size, -1).sum(-1)
    scale = distances.reshape(batch_size, -1).sum(-1) / count.clamp(min=1)
    centres = closed_form_inverse_se3(relative[..., :3, :])[..., :3, 3].norm(dim=-1).reshape(batch_size, -1)
    fallback = centres.mean(-1)
    scale = torch.where(count > 0, scale, torch.where(fallback > 0, fallback, torch.ones_like(fallback)))
    relative = relative[..., :3, :].clone()
    relative[..., :3, 3] = relative[..., :3, 3] / scale[:, None, None, None]
    image_hw = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
    pose_enc = extri_intri_to_pose_encoding(relative, batch.intrinsics.double(), image_hw)
    s = scale[:, None, None, None, None]
    dtype = torch.float32
    return Targets(
        pose_enc=pose_enc.to(dtype),
        depth=(batch.depth.double() / s * valid).to(dtype),
        world_points=(points / s[..., None] * valid[..., None]).to(dtype),
        valid=valid,
        scale=scale.to(dtype),
    )


def camera_loss(pose_enc_list: list[Tensor], target: Tensor, cfg: LossConfig) -> Tensor:
    """``pose_enc_list``: iterations x ``[B, T, N, 9]``; ``target [B, T, N, 9]``. Weighted over iterations."""
    n = len(pose_enc_list)
    total = target.new_zeros(())
    for i, pred in enumerate(pose_enc_list):
        diff = pred.float() - target
        if cfg.camera_loss_type == "huber":
            per = F.huber_loss(diff, torch.zeros_like(diff), reduction="none", delta=cfg.huber_delta)
        elif cfg.camera_loss_type == "l1":
            per = diff.abs()
        else:
            raise ValueError(f"camera_loss_type must be 'l1' or 'huber', got {cfg.camera_loss_type!r}")
        term = per[..., :3].mean() + per[..., 3:7].mean() + cfg.fov_weight * per[..., 7:].mean()
        total = total + cfg.gamma ** (n - 1 - i) * term
    return total


def gradient_loss(diff: Tensor, valid: Tensor, conf: Tensor | None, scales: int = 3) -> Tensor:
    """Confidence-weighted image-gradient loss of ``diff [M, H, W, C]`` over ``valid [M, H, W]``, at ``scales``
    scales (every 2^k-th pixel), averaged over the scales. ``conf [M, H, W]`` or None (weight 1)."""
    total = diff.new_zeros(())
    for k in range(scales):
        step = 2**k
        d, v = diff[:, ::step, ::step], valid[:, ::step, ::step].float()
        c = torch.ones_like(v) if conf is None else conf[:, ::step, ::step]
        term, count = diff.new_zeros(()), diff.new_zeros(())
        for axis in (1, 2):
            size = d.shape[axis]
            if size < 2:
                continue
            head, tail = (slice(1, None), slice(None, -1))
            index_a = [slice(None)] * 3
            index_b = [slice(None)] * 3
            index_a[axis], index_b[axis] = head, tail
            pair = v[tuple(index_a)] * v[tuple(index_b)]
            weight = 0.5 * (c[tuple(index_a)] + c[tuple(index_b)]) * pair
            grad = (d[tuple(index_a)] - d[tuple(index_b)]).abs().sum(-1)
            term = term + (grad * weight).sum()
            count = count + pair.sum()
        total = total + term / count.clamp(min=1)
    return total / scales


def regression_terms(
    pred: Tensor, conf: Tensor, target: Tensor, valid: Tensor, cfg: LossConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """Aleatoric regression of ``pred`` against ``target`` (both ``[..., H, W, C]``), ``conf [..., H, W]`` (> 0),
    ``valid [..., H, W]``. Returns ``(mean conf * |diff|, gradient term, -alpha * mean log conf)`` over valid pixels."""
    height, width, channels = pred.shape[-3:]
    pred = pred.float().reshape(-1, height, width, channels)
    target = target.float().reshape(-1, height, width, channels)
    conf = conf.float().reshape(-1, height, width)
    valid = valid.reshape(-1, height, width)
    count = valid.sum().clamp(min=1)
    diff = (pred - target) * valid[..., None]
    error = diff.norm(dim=-1)
    regression = (conf * error * valid).sum() / count
    grad = gradient_loss(diff, valid, conf, scales=cfg.gradient_scales)
    conf_reg = -cfg.alpha * (torch.log(conf) * valid).sum() / count
    return regression, grad, conf_reg


def mask_terms(logits: Tensor, target: Tensor, known: Tensor) -> tuple[Tensor, Tensor]:
    """BCE and soft Dice of ``logits [..., H, W]`` against ``target [..., H, W]`` in {0, 1}, over ``known`` pixels.

    Dice per frame: ``1 - (2 sum(p g) + 1) / (sum p + sum g + 1)``, averaged over frames with a known pixel."""
    height, width = logits.shape[-2:]
    logits = logits.float().reshape(-1, height, width)
    target = target.float().reshape(-1, height, width)
    known = known.reshape(-1, height, width).float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce * known).sum() / known.sum().clamp(min=1)
    prob = torch.sigmoid(logits) * known
    target = target * known
    inter = (prob * target).sum((-1, -2))
    dice = 1 - (2 * inter + 1) / (prob.sum((-1, -2)) + target.sum((-1, -2)) + 1)
    frames = known.sum((-1, -2)) > 0
    dice = (dice * frames).sum() / frames.sum().clamp(min=1)
    return bce, dice


def fused_mask_term(prob: Tensor, target: Tensor, known: Tensor) -> Tensor:
    """BCE of a probability ``prob [..., H, W]`` against ``target``, over ``known`` pixels."""
    prob = prob.double().clamp(1e-9, 1 - 1e-9)
    bce = F.binary_cross_entropy(prob, target.double(), reduction="none")
    return ((bce * known).sum() / known.sum().clamp(min=1)).float()


def rig_consistency(extrinsics: Tensor) -> Tensor:
    """Per window, how far the cameras' poses relative to camera 0 vary over time.

    ``extrinsics [B, T, N, 3, 4]`` OpenCV camera-from-world -> ``[B]``: the mean over ``t`` and cameras ``n >= 1``
    of ``|P_tn - mean_t P_tn|`` (entries of the 3x4 relative pose ``P_tn = E[t, n] E[t, 0]^-1``). 0 exactly when
    every relative pose is constant over the window (and for ``T = 1`` or ``N = 1``)."""
    batch, times, views = extrinsics.shape[:3]
    if times < 2 or views < 2:
        return extrinsics.new_zeros(batch)
    first_inverse = to_homogeneous(closed_form_inverse_se3(extrinsics[:, :, :1]))  # [B, T, 1, 4, 4]
    relative = (to_homogeneous(extrinsics[:, :, 1:]) @ first_inverse)[..., :3, :]  # [B, T, N-1, 3, 4]
    deviation = relative - relative.mean(dim=1, keepdim=True)
    return deviation.abs().mean(dim=(1, 2, 3, 4))


def rig_term(pose_enc: Tensor, target_pose_enc: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """:func:`rig_consistency` of the predicted cameras (``pose_enc [B, T, N, 9]``) averaged over the windows whose
    ground-truth cameras (``target_pose_enc``, normalised as the prediction) form a rigid rig; 0 when none does."""
    predicted, _ = pose_encoding_to_extri_intri(pose_enc.float(), image_hw)
    truth, _ = pose_encoding_to_extri_intri(target_pose_enc.double(), image_hw)
    rigid = (rig_consistency(truth) < RIGID_TOLERANCE).float()
    return (rig_consistency(predicted) * rigid).sum() / rigid.sum().clamp(min=1)


def compute_loss(preds, batch: Sample, cfg: LossConfig, external_masks: bool = False) -> LossOutput:
    """All terms for model predictions ``preds`` (leading dims ``[B, T, N]``) on ``batch``; the weighted total.

    Terms of heads the model lacks are left out. ``external_masks``: the step fed external masks (adds
    ``mask_fused``)."""
    targets = normalize_targets(batch)
    terms: dict[str, Tensor] = {}
    if preds.pose_enc_list is not None:
        terms["camera"] = camera_loss(preds.pose_enc_list, targets.pose_enc, cfg)
    if cfg.rig > 0 and preds.pose_enc is not None:
        image_hw = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
        terms["rig"] = rig_term(preds.pose_enc, targets.pose_enc, image_hw)
    if preds.depth is not None:
        depth, grad, reg = regression_terms(preds.depth, preds.depth_conf, targets.depth[..., None], targets.valid, cfg)
        terms.update(depth=depth, depth_grad=grad, depth_conf_reg=reg)
    if preds.world_points is not None:
        point, grad, reg = regression_terms(
            preds.world_points, preds.world_points_conf, targets.world_points, targets.valid, cfg
        )
        terms.update(point=point, point_grad=grad, point_conf_reg=reg)
    if preds.dynamic_mask_logits is not None:
        terms["mask_bce"], terms["mask_dice"] = mask_terms(
            preds.dynamic_mask_logits, batch.dynamic_masks, batch.mask_known
        )
        if external_masks and preds.dynamic_mask is not None:
            terms["mask_fused"] = fused_mask_term(preds.dynamic_mask, batch.dynamic_masks, batch.mask_known)
    total = sum(getattr(cfg, name) * value for name, value in terms.items())
    return LossOutput(total=total, terms={k: v.detach() for k, v in terms.items()})
