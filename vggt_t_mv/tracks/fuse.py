"""Robust fusion of one point's 3D estimates from several cameras."""

from __future__ import annotations

import numpy as np


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted median over axis 0: ``values [V, M]``, ``weights [V, M]`` (>= 0) -> ``[M]`` (NaN without weight)."""
    order = np.argsort(values, axis=0)
    sorted_values = np.take_along_axis(values, order, axis=0)
    cumulative = np.cumsum(np.take_along_axis(weights, order, axis=0), axis=0)
    total = cumulative[-1]
    index = (cumulative < 0.5 * total[None]).sum(axis=0).clip(0, len(values) - 1)
    median = np.take_along_axis(sorted_values, index[None], axis=0)[0]
    return np.where(total > 0, median, np.nan)


def fuse_views(
    points: np.ndarray, weights: np.ndarray, tolerance: np.ndarray | float, outlier_scale: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse ``points [V, M, 3]`` (V cameras' estimates of M points) with ``weights [V, M]`` (>= 0; 0 = no estimate)
    -> ``(fused [M, 3], inliers [V, M] bool)``; NaN where a point has no weight.

    Robust to one wrong view among three or more: start from the weighted per-coordinate median, keep the views
    within ``max(outlier_scale x weighted median residual, tolerance [M])`` of it (``tolerance`` an absolute
    floor, so views that agree exactly keep a non-zero band), take the weighted mean of those, and repeat once from
    that mean. Views that agree exactly give exactly their point."""
    points = np.asarray(points, np.float64)
    weights = np.where(np.isfinite(points).all(-1), np.asarray(weights, np.float64), 0.0)
    points = np.where(weights[..., None] > 0, points, 0.0)
    tolerance = np.broadcast_to(np.asarray(tolerance, np.float64), weights.shape[1:])
    centre = np.stack([_weighted_median(points[..., k], weights) for k in range(3)], axis=-1)
    inliers = weights > 0
    for _ in range(2):
        residual = np.linalg.norm(points - np.nan_to_num(centre)[None], axis=-1)
        spread = np.nan_to_num(_weighted_median(residual, weights))
        inliers = (weights > 0) & (residual <= np.maximum(outlier_scale * spread, tolerance)[None])
        kept = np.where(inliers, weights, 0.0)
        total = kept.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (kept[..., None] * points).sum(axis=0) / total[:, None]
        centre = np.where((total > 0)[:, None], mean, centre)
    return centre, inliers
