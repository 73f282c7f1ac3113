"""A 3D point projected into every camera of one timestep: where it lands and whether that camera sees it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vggt_t_mv.npgeometry import project_points

# (camera, pixels [M, 2]) -> (depth [M], valid [M]): the depth a camera sees at sub-pixel positions
CameraDepth = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def visible_in_cameras(
    points: np.ndarray,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_hw: tuple[int, int],
    depth_at: CameraDepth,
    depth_tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """World points ``[M, 3]`` in cameras ``extrinsics [N, 3, 4]``, ``intrinsics [N, 3, 3]`` -> pixels ``[N, M, 2]``
    and ``visible [N, M]``: in front of the camera, inside the image, and depth-consistent (the depth the camera
    sees there is within ``depth_tolerance`` (relative) of the point's own depth: nothing in front of it)."""
    points = np.asarray(points, np.float64).reshape(-1, 3)
    pixels, z = project_points(points[None], extrinsics, intrinsics)  # [N, M, 2], [N, M]
    height, width = image_hw
    u, v = pixels[..., 0], pixels[..., 1]
    with np.errstate(invalid="ignore"):
        inside = (z > 0) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    visible = np.zeros_like(inside)
    for camera in range(len(pixels)):
        rows = np.flatnonzero(inside[camera])
        if len(rows) == 0:
            continue
        seen, valid = depth_at(camera, pixels[camera, rows])
        agree = valid & (np.abs(seen - z[camera, rows]) <= depth_tolerance * z[camera, rows])
        visible[camera, rows] = agree
    return pixels, visible
