"""Evaluation metrics: pure numpy functions, conventions in each docstring.

Cameras are OpenCV camera-from-world extrinsics ``[..., 3, 4]`` (``x_cam = R X + t``); the camera centre is
``-R^T t``. Predicted and ground-truth cameras of one sequence are compared after a similarity (Sim(3)) alignment
of the predicted centres onto the ground-truth ones (Umeyama), because a reconstruction is only defined up to
one. Angles are in degrees; distances in the ground truth's units.
"""

from __future__ import annotations

import numpy as np

from vggt_t_mv.npgeometry import camera_centers, rotation_angle_deg, umeyama


# --------------------------------------------------------------------------------------------------------- helpers
def _homogeneous(extrinsics: np.ndarray) -> np.ndarray:
    out = np.zeros(extrinsics.shape[:-2] + (4, 4))
    out[..., :3, :] = extrinsics
    out[..., 3, 3] = 1
    return out


def relative_poses(extrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs ``i < j`` of the cameras ``[M, 3, 4]``: the pose of camera ``j`` relative to ``i``,
    ``P_j P_i^-1`` (camera-i-to-camera-j); returns ``(R [K, 3, 3], t [K, 3], pair indices [K, 2])``."""
    poses = _homogeneous(np.asarray(extrinsics, np.float64))
    i, j = np.triu_indices(len(poses), k=1)
    relative = poses[j] @ np.linalg.inv(poses[i])
    return relative[:, :3, :3], relative[:, :3, 3], np.stack([i, j], axis=1)


# --------------------------------------------------------------------------------------------------------- cameras
def ate(pred_extrinsics: np.ndarray, gt_extrinsics: np.ndarray) -> float:
    """Absolute trajectory error: RMSE of camera centres after the Sim(3) alignment of the predicted centres onto the
    ground truth. ``[..., 3, 4]`` each (flattened over all leading dims)."""
    pred = camera_centers(pred_extrinsics).reshape(-1, 3)
    gt = camera_centers(gt_extrinsics).reshape(-1, 3)
    aligned = umeyama(pred, gt).apply(pred)
    return float(np.sqrt(((aligned - gt) ** 2).sum(-1).mean()))


def rpe(pred_extrinsics: np.ndarray, gt_extrinsics: np.ndarray) -> tuple[float, float]:
    """Relative pose error over all camera pairs ``i < j`` (flattened ``[..., 3, 4]``): mean translation error (the
    predicted relative translations scaled by the Sim(3) scale of :func:`ate`'s alignment; GT units) and mean rotation
    error (degrees)."""
    pred = np.asarray(pred_extrinsics, np.float64).reshape(-1, 3, 4)
    gt = np.asarray(gt_extrinsics, np.float64).reshape(-1, 3, 4)
    scale = umeyama(camera_centers(pred), camera_centers(gt)).scale
    r_pred, t_pred, _ = relative_poses(pred)
    r_gt, t_gt, _ = relative_poses(gt)
    if len(r_gt) == 0:
        return float("nan"), float("nan")
    trans = np.linalg.norm(scale * t_pred - t_gt, axis=-1).mean()
    rot = rotation_angle_deg(r_pred, r_gt).mean()
    return float(trans), float(rot)


def translation_angle_deg(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Angle between translation directions ``[K, 3]`` in degrees; 180 where either vector is zero."""
    norms = np.linalg.norm(pred, axis=-1) * np.linalg.norm(gt, axis=-1)
    cos = (pred * gt).sum(-1) / np.where(norms > 1e-12, norms, 1.0)
    return np.where(norms > 1e-12, np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))), 180.0)


def relative_pose_errors(pred_extrinsics: np.ndarray, gt_extrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per camera pair ``i < j``: rotation error and translation-direction error (degrees, scale-free), as in
    VGGT's / PoseDiffusion's RRA / RTA. Pairs with no ground-truth baseline (shorter than 1e-6 of the longest, e.g.
    a static rig seen twice) have no direction: their translation error is 0 (only the rotation counts)."""
    r_pred, t_pred, _ = relative_poses(np.reshape(pred_extrinsics, (-1, 3, 4)))
    r_gt, t_gt, _ = relative_poses(np.reshape(gt_extrinsics, (-1, 3, 4)))
    rot = rotation_angle_deg(r_pred, r_gt)
    baseline = np.linalg.norm(t_gt, axis=-1)
    no_baseline = baseline <= 1e-6 * max(baseline.max(initial=0.0), 1e-12)
    return rot, np.where(no_baseline, 0.0, translation_angle_deg(t_pred, t_gt))


def pose_auc(rotation_errors: np.ndarray, translation_errors: np.ndarray, max_threshold: int = 30) -> float:
    """AUC of the pose accuracy curve up to ``max_threshold`` degrees: the mean over thresholds ``1 .. max`` of the
    fraction of pairs whose ``max(rotation error, translation-direction error)`` is below the threshold (VGGT's
    AUC@30). In [0, 1]."""
    errors = np.maximum(np.asarray(rotation_errors), np.asarray(translation_errors))
    if errors.size == 0:
        return float("nan")
    thresholds = np.arange(1, max_threshold + 1)
    return float((errors[None, :] < thresholds[:, None]).mean())


def camera_metrics(pred_extrinsics: np.ndarray, gt_extrinsics: np.ndarray) -> dict[str, float]:
    """``ate``, ``rpe_trans``, ``rpe_rot_deg``, ``auc30`` for one sequence's cameras (``[..., 3, 4]`` each)."""
    rot, trans = relative_pose_errors(pred_extrinsics, gt_extrinsics)
    rpe_t, rpe_r = rpe(pred_extrinsics, gt_extrinsics)
    return {
        "ate": ate(pred_extrinsics, gt_extrinsics),
        "rpe_trans": rpe_t,
        "rpe_rot_deg": rpe_r,
        "auc30": pose_auc(rot, trans),
    }


# ----------------------------------------------------------------------------------------------------------- depth
def median_scale(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """The per-sequence median scaling ``median(gt) / median(pred)`` over the ``valid`` pixels (``pred`` clipped at 0;
    0 when the prediction's median is not positive)."""
    p, g = np.clip(np.asarray(pred, np.float64)[valid], 0, None), np.asarray(gt, np.float64)[valid]
    median = np.median(p) if p.size else 0.0
    return float(np.median(g) / median) if median > 0 else 0.0


def depth_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """``abs_rel = mean(|pred - gt| / gt)`` and ``delta1 = mean(max(pred / gt, gt / pred) < 1.25)`` over the pixels
    given (1-D arrays, ``gt > 0``, the prediction already scaled); NaN when there are none."""
    if gt.size == 0:
        return {"abs_rel": float("nan"), "delta1": float("nan")}
    ratio = np.maximum(pred / gt, gt / np.maximum(pred, 1e-12))
    return {"abs_rel": float(np.mean(np.abs(pred - gt) / gt)), "delta1": float(np.mean(ratio < 1.25))}


def depth_metrics(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, moving: np.ndarray | None = None
) -> dict[str, float]:
    """Abs Rel and δ<1.25 over one sequence after per-sequence median scaling, optionally split by motion.

    ``pred``, ``gt`` ``[...]`` z-depths of the same pixels; ``valid`` where the ground truth is known (default
    ``gt > 0``); pixels with ``pred <= 0`` count as predicted depth 0. The prediction is multiplied by
    :func:`median_scale` over all valid pixels, then :func:`depth_errors` gives ``abs_rel`` and ``delta1``. With
    ``moving [...]`` (bool, the pixel sees something moving) the same scaled errors are also reported over the static
    (``abs_rel_static``, ``delta1_static``) and the moving valid pixels (``abs_rel_moving``, ``delta1_moving``): one
    scale for the whole sequence, so the split shows where the depth is wrong, not a second fit.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    valid = (gt > 0) if valid is None else (np.asarray(valid, bool) & (gt > 0))
    scaled = np.clip(pred, 0, None) * median_scale(pred, gt, valid)
    out = depth_errors(scaled[valid], gt[valid])
    if moving is not None:
        moving = np.asarray(moving, bool)
        for name, part in (("static", valid & ~moving), ("moving", valid & moving)):
            out.update({f"{key}_{name}": value for key, value in depth_errors(scaled[part], gt[part]).items()})
    return out


# ---------------------------------------------------------------------------------------------------------- points
def nearest_distances(query: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Distance from every query point ``[Q, 3]`` to its nearest reference point ``[R, 3]`` (brute force, chunked)."""
    query, reference = np.asarray(query, np.float64), np.asarray(reference, np.float64)
    out = np.empty(len(query))
    ref_sq = (reference**2).sum(-1)
    for start in range(0, len(query), chunk):
        q = query[start : start + chunk]
        squared = (q**2).sum(-1)[:, None] - 2 * q @ reference.T + ref_sq[None, :]
        out[start : start + chunk] = np.sqrt(np.clip(squared.min(1), 0, None))
    return out


def point_metrics(
    pred_points: np.ndarray,
    gt_points: np.ndarray,
    valid: np.ndarray,
    max_points: int = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy and completeness of pixel-aligned point maps ``[..., 3]`` of one sequence (``valid [...]``).

    The predicted points are first aligned to the ground truth by the Sim(3) fitted on the valid pixel
    correspondences (Umeyama). ``accuracy``: mean distance from each predicted point to the nearest GT point;
    ``completeness``: mean distance from each GT point to the nearest predicted point (both over at most
    ``max_points`` random valid pixels; GT units)."""
    valid = np.asarray(valid, bool)
    pred = np.asarray(pred_points, np.float64)[valid]
    gt = np.asarray(gt_points, np.float64)[valid]
    if len(gt) < 3:
        return {"accuracy": float("nan"), "completeness": float("nan")}
    rng = np.random.default_rng(seed)
    if len(gt) > max_points:
        keep = rng.choice(len(gt), max_points, replace=False)
        pred, gt = pred[keep], gt[keep]
    aligned = umeyama(pred, gt).apply(pred)
    return {
        "accuracy": float(nearest_distances(aligned, gt).mean()),
        "completeness": float(nearest_distances(gt, aligned).mean()),
    }


# ------------------------------------------------------------------------------------------------------------ masks
def mask_iou(pred_prob: np.ndarray, gt_mask: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of ``pred_prob >= threshold`` with the boolean ground truth over all pixels of a sequence; NaN when both
    are empty."""
    pred = np.asarray(pred_prob) >= threshold
    gt = np.asarray(gt_mask, bool)
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else float("nan")


# Direction of each metric: True where larger is better.
LENGTH = "gt units"  # lengths are in the ground truth's unit after the Sim(3) alignment (metres for a metric rig)
UNITS = {  # every metric's unit, printed with it
    "ate": LENGTH,
    "rpe_trans": LENGTH,
    "rpe_rot_deg": "deg",
    "auc30": "0-1",
    "abs_rel": "ratio",
    "delta1": "0-1",
    "abs_rel_static": "ratio",
    "delta1_static": "0-1",
    "abs_rel_moving": "ratio",
    "delta1_moving": "0-1",
    "accuracy": LENGTH,
    "completeness": LENGTH,
    "mask_iou": "0-1",
}

HIGHER_IS_BETTER = {
    "ate": False,
    "rpe_trans": False,
    "rpe_rot_deg": False,
    "auc30": True,
    "abs_rel": False,
    "delta1": True,
    "abs_rel_static": False,
    "delta1_static": True,
    "abs_rel_moving": False,
    "delta1_moving": True,
    "accuracy": False,
    "completeness": False,
    "mask_iou": True,
}
