"""Depth at sub-pixel positions and 2D track points lifted to 3D."""

from __future__ import annotations

import numpy as np

from vggt_t_mv.npgeometry import unproject_pixels


def sample_depth(depth: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear depth of ``depth [H, W]`` (0 or non-finite = no depth) at pixels ``(u, v) [M, 2]`` (integer = pixel
    centre) -> ``(depth [M] float64, valid [M] bool)``.

    A position is valid when it lies inside ``[0, W-1] x [0, H-1]`` and every neighbour with a non-zero weight has
    a depth; integer positions read their pixel exactly. Invalid positions get depth 0."""
    depth = np.asarray(depth)
    height, width = depth.shape
    pixels = np.asarray(pixels, np.float64).reshape(-1, 2)
    u, v = pixels[:, 0], pixels[:, 1]
    inside = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    u, v = np.where(inside, u, 0.0), np.where(inside, v, 0.0)
    x0 = np.clip(np.floor(u), 0, max(width - 2, 0)).astype(np.int64)
    y0 = np.clip(np.floor(v), 0, max(height - 2, 0)).astype(np.int64)
    fx, fy = u - x0, v - y0
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    total = np.zeros(len(u))
    valid = inside.copy()
    for ys, xs, weight in (
        (y0, x0, (1 - fx) * (1 - fy)),
        (y0, x1, fx * (1 - fy)),
        (y1, x0, (1 - fx) * fy),
        (y1, x1, fx * fy),
    ):
        value = depth[ys, xs].astype(np.float64)
        usable = np.isfinite(value) & (value > 0)
        valid &= usable | (weight == 0)
        total += np.where(usable, value, 0.0) * weight
    return np.where(valid, total, 0.0), valid


def lift_pixels(pixels: np.ndarray, depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """2D track points ``(u, v) [..., M, 2]`` at camera z-depth ``[..., M]`` -> world points ``[..., M, 3]`` float64,
    for camera-from-world ``extrinsics [..., 3, 4]`` and pixel ``intrinsics [..., 3, 3]`` (the frame's camera)."""
    return unproject_pixels(pixels, depth, extrinsics, intrinsics)
