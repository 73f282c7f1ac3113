"""Evaluation runs: predictions for ground-truth windows (a model, an untrained model, or trivial baselines), the
metrics of :mod:`vggt_t_mv.eval.metrics` per window, and their means.

Every window is evaluated on its own (the metrics align each window to the ground truth by a Sim(3), or by median
scaling for depth), so no stitching is involved. Predicted world points are the point head's (geo stream).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vggt_t_mv.data.recorded import SequenceSource
from vggt_t_mv.eval import metrics as M
from vggt_t_mv.geometry import depth_to_world_points, pose_encoding_to_extri_intri
from vggt_t_mv.train.dataset import Sample, Sequence, WindowConfig, WindowDataset

BASELINES = ("identity_cameras", "constant_depth", "static_mask")


@dataclass
class WindowPrediction:
    """Predictions for one ``[T, N]`` window (numpy). Cameras OpenCV camera-from-world, in any common frame."""

    extrinsics: np.ndarray  # [T, N, 3, 4]
    depth: np.ndarray | None = None  # [T, N, H, W] z-depth
    world_points: np.ndarray | None = None  # [T, N, H, W, 3]
    dynamic_prob: np.ndarray | None = None  # [T, N, H, W] in [0, 1]


@torch.no_grad()
def predict_window(model: torch.nn.Module, sample: Sample, device: torch.device | str = "cpu") -> WindowPrediction:
    """Run ``model`` on one window ``sample`` (no batch dim) and convert its outputs."""
    model.eval()
    images = sample.images[None].to(device)
    preds = model(images)
    hw = (int(images.shape[-2]), int(images.shape[-1]))
    extrinsics, _ = pose_encoding_to_extri_intri(preds.pose_enc[0].float(), hw)

    def numpy(t: torch.Tensor | None) -> np.ndarray | None:
        return None if t is None else t[0].float().cpu().numpy()

    depth = numpy(preds.depth)
    return WindowPrediction(
        extrinsics=extrinsics.cpu().numpy(),
        depth=None if depth is None else depth[..., 0],
        world_points=numpy(preds.world_points),
        dynamic_prob=numpy(preds.dynamic_mask),
    )


def trivial_prediction(sample: Sample, fov_deg: float = 60.0) -> WindowPrediction:
    """The trivial baselines at once: identity cameras, constant depth 1, an all-static mask; the points are the
    constant depth unprojected with the identity cameras and a ``fov_deg`` horizontal field of view."""
    times, views, height, width = sample.depth.shape
    extrinsics = torch.zeros(times, views, 3, 4)
    extrinsics[..., :3, :3] = torch.eye(3)
    focal = (width / 2) / math.tan(math.radians(fov_deg) / 2)
    intrinsics = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]]).expand(times, views, 3, 3)
    depth = torch.ones(times, views, height, width)
    points = depth_to_world_points(depth, extrinsics, intrinsics)
    return WindowPrediction(extrinsics.numpy(), depth.numpy(), points.numpy(), np.zeros(depth.shape, np.float32))


def window_metrics(pred: WindowPrediction, sample: Sample) -> dict[str, float]:
    """All metrics of one window that its ground truth supports (depth / points need valid depth; a known mask adds
    the static / moving split of the depth metrics and the mask IoU)."""
    gt_extrinsics = sample.extrinsics.double().numpy()
    several = gt_extrinsics.shape[0] * gt_extrinsics.shape[1] > 1
    out = M.camera_metrics(pred.extrinsics, gt_extrinsics) if several else {}
    valid = sample.valid.numpy()
    known = sample.mask_known.numpy()
    if valid.any():
        if pred.depth is not None:
            moving = (sample.dynamic_masks.numpy() > 0.5) if known.all() else None
            out.update(M.depth_metrics(pred.depth, sample.depth.numpy(), valid, moving))
        if pred.world_points is not None:
            out.update(M.point_metrics(pred.world_points, sample.world_points.numpy(), valid))
    if pred.dynamic_prob is not None and known.any():
        out["mask_iou"] = M.mask_iou(pred.dynamic_prob[known], sample.dynamic_masks.numpy()[known] > 0.5)
    return out


@dataclass
class EvalResult:
    """Per-window metrics and their means (NaNs skipped) for one predictor on one set."""

    name: str
    windows: list[dict[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the numbers leave out and why (printed with the table)

    def means(self) -> dict[str, float]:
        keys = [k for k in M.HIGHER_IS_BETTER if any(k in w for w in self.windows)]
        out = {}
        for key in keys:
            values = [w[key] for w in self.windows if key in w and not math.isnan(w[key])]
            out[key] = float(np.mean(values)) if values else float("nan")
        return out


def evaluate(
    predictor: Any, dataset: WindowDataset, name: str, progress: Callable[[int, int], None] | None = None
) -> EvalResult:
    """``predictor``: a model (``nn.Module``), ``"trivial"``, or a callable ``Sample -> WindowPrediction``;
    ``progress(done, total)`` is called after each window."""
    if isinstance(predictor, torch.nn.Module):
        device = next(predictor.parameters()).device
        run = lambda sample: predict_window(predictor, sample, device)
    elif predictor == "trivial":
        run = trivial_prediction
    else:
        run = predictor
    result = EvalResult(name)
    for i in range(len(dataset)):
        sample = dataset[i]
        result.windows.append(window_metrics(run(sample), sample))
        if progress is not None:
            progress(i + 1, len(dataset))
    return result


def eval_windows(sequences: list[Sequence], timesteps: int, cameras: int, height: int, width: int) -> WindowDataset:
    """Non-overlapping evaluation windows: ``timesteps`` consecutive timesteps, cameras ``0..cameras-1``."""
    cfg = WindowConfig(timesteps, cameras, height, width, window_stride=timesteps, camera_offsets="first")
    sources: list[SequenceSource] = list(sequences)
    return WindowDataset(sources, cfg)


def markdown_table(results: list[EvalResult], title: str = "") -> str:
    """A markdown table: one row per result, one column per metric headed ``name [unit] arrow`` (the arrow points the
    better way)."""
    keys = [k for k in M.HIGHER_IS_BETTER if any(k in r.means() for r in results)]
    arrows = {k: ("↑" if M.HIGHER_IS_BETTER[k] else "↓") for k in keys}
    lines = [f"**{title}**\n" if title else ""]
    lines.append("| predictor | windows | " + " | ".join(f"{k} [{M.UNITS[k]}] {arrows[k]}" for k in keys) + " |")
    lines.append("|---|---:|" + "---:|" * len(keys))
    for r in results:
        means = r.means()
        cells = [f"{means[k]:.4g}" if k in means and not math.isnan(means[k]) else "–" for k in keys]
        lines.append(f"| {r.name} | {len(r.windows)} | " + " | ".join(cells) + " |")
    notes = list(dict.fromkeys(note for r in results for note in r.notes))
    lines += [f"\nNote: {note}" for note in notes]
    return "\n".join(line for line in lines if line is not None)
