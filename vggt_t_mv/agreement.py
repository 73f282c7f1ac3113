"""Multi-view agreement of synchronized depth maps: how many other cameras see a pixel's 3D point at a consistent depth.

Convention: OpenCV pinhole cameras, ``extrinsics`` camera-from-world ``[R | t]`` (``x_cam = R x_world + t``),
``intrinsics`` ``K`` in pixels with pixel ``(u, v)`` = integer column / row (no +0.5), depth = the camera-frame ``z``
along the optical axis (not the ray length). The same as :func:`vggt_t_mv.geometry.depth_to_world_points`.

For pixel ``p`` of camera ``n`` with depth ``d > 0``, its point ``X`` is checked against every other camera ``m``:

1. ``X`` projects into ``m`` at ``(u', v')`` with depth ``z' > 0``, inside the image; the nearest pixel ``q`` of
   ``m`` has a valid depth ``d_m``. Then ``m`` *sees* ``p`` (else ``m`` says nothing about it);
2. **depth**: ``|z' - d_m| <= depth_tolerance * d_m`` (relative);
3. **reprojection**: ``q`` lifted with ``d_m`` and projected back into ``n`` lands within ``reprojection_px`` pixels
   of ``p`` (the round trip of COLMAP's fusion and MVSNet's filter).

``m`` *agrees* when 1-3 hold. The result per pixel is the number of agreeing other cameras (``0 .. N-1``), or
:data:`UNSEEN` when no other camera sees the pixel's point (outside every other image, behind it, or only on invalid
depth there): that is not a disagreement, there is nothing to check it against. Invalid pixels (depth not finite or
``<= 0``) get 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNSEEN = 255  # uint8 code of a pixel that no other camera sees (not a failure: unchecked)
MAX_CAMERAS = UNSEEN  # counts go up to N - 1, so below the code


@dataclass(frozen=True)
class AgreementConfig:
    """``depth_tolerance``: relative depth difference allowed (``>= 0``); ``reprojection_px``: round-trip
    reprojection error allowed in pixels (``>= 0``)."""

    depth_tolerance: float = 0.03
    reprojection_px: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.depth_tolerance < np.inf:
            raise ValueError(f"depth_tolerance must be a finite value >= 0, got {self.depth_tolerance}")
        if not 0.0 <= self.reprojection_px < np.inf:
            raise ValueError(f"reprojection_px must be a finite value >= 0, got {self.reprojection_px}")

    def to_dict(self) -> dict:
        return {"depth_tolerance": self.depth_tolerance, "reprojection_px": self.reprojection_px}


@dataclass
class PairMatch:
    """Where the pixels of camera ``n`` land in camera ``m`` (flat arrays over the ``H * W`` pixels of ``n``):
    ``seen`` bool (step 1), ``agree`` bool (steps 1-3), ``target`` int64 flat pixel index ``v * W + u`` of ``q`` in
    ``m`` (meaningful where ``seen``), ``pixel`` float64 ``[H * W, 2]`` the projection ``(u', v')`` in ``m`` (NaN
    behind it)."""

    seen: np.ndarray
    agree: np.ndarray
    target: np.ndarray
    pixel: np.ndarray


def _pixel_rays(intrinsics: np.ndarray, height: int, width: int) -> np.ndarray:
    """Camera-frame rays with ``z = 1`` through every pixel: ``[H * W, 3]`` float64."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pixels = np.stack([u.ravel(), v.ravel(), np.ones(height * width)], axis=-1)
    return pixels @ np.linalg.inv(intrinsics.astype(np.float64)).T


def _to_world(camera_points: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    rotation, translation = extrinsics[:, :3].astype(np.float64), extrinsics[:, 3].astype(np.float64)
    return (camera_points - translation) @ rotation


def _to_camera(world_points: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    rotation, translation = extrinsics[:, :3].astype(np.float64), extrinsics[:, 3].astype(np.float64)
    return world_points @ rotation.T + translation


def _project(camera_points: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``[M, 2]`` (u, v) and depth ``[M]`` of camera-frame points (depth <= 0: pixels are NaN)."""
    z = camera_points[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        normalized = camera_points[:, :2] / np.where(z > 0, z, np.nan)[:, None]
    k = intrinsics.astype(np.float64)
    u = k[0, 0] * normalized[:, 0] + k[0, 1] * normalized[:, 1] + k[0, 2]
    v = k[1, 1] * normalized[:, 1] + k[1, 2]
    return np.stack([u, v], axis=-1), z


def match_pair(
    depth_n: np.ndarray,
    extrinsics_n: np.ndarray,
    intrinsics_n: np.ndarray,
    depth_m: np.ndarray,
    extrinsics_m: np.ndarray,
    intrinsics_m: np.ndarray,
    config: AgreementConfig,
) -> PairMatch:
    """Check every pixel of camera ``n`` against camera ``m`` (steps 1-3 of the module docstring).

    ``depth_*`` ``[H, W]`` (both cameras share the image size), ``extrinsics_*`` ``[3, 4]``, ``intrinsics_*``
    ``[3, 3]``."""
    height, width = depth_n.shape
    d_n = depth_n.astype(np.float64).ravel()
    valid_n = np.isfinite(d_n) & (d_n > 0)
    world = _to_world(_pixel_rays(intrinsics_n, height, width) * np.where(valid_n, d_n, 0.0)[:, None], extrinsics_n)
    pixels_m, z_m = _project(_to_camera(world, extrinsics_m), intrinsics_m)
    with np.errstate(invalid="ignore"):
        col, row = np.rint(pixels_m[:, 0]), np.rint(pixels_m[:, 1])
        inside = valid_n & (z_m > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    target = np.where(inside, row * width + col, 0).astype(np.int64)
    d_m = depth_m.astype(np.float64).ravel()[target]
    seen = inside & np.isfinite(d_m) & (d_m > 0)
    agree = seen & (np.abs(z_m - d_m) <= config.depth_tolerance * d_m)
    # round trip: q lifted with its own depth in m, back into n
    rays_m = _pixel_rays(intrinsics_m, height, width)[target]
    back_world = _to_world(rays_m * np.where(seen, d_m, 0.0)[:, None], extrinsics_m)
    back_pixels, back_z = _project(_to_camera(back_world, extrinsics_n), intrinsics_n)
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        error = np.hypot(back_pixels[:, 0] - u.ravel(), back_pixels[:, 1] - v.ravel())
        agree &= (back_z > 0) & (error <= config.reprojection_px)
    return PairMatch(seen, agree, target, pixels_m)


def views_agree(
    depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, config: AgreementConfig | None = None
) -> np.ndarray:
    """Agreement counts of one timestep: uint8 ``[N, H, W]`` (module docstring; :data:`UNSEEN` where no other
    camera sees the point).

    ``depth`` ``[N, H, W]`` (z-depth), ``extrinsics`` ``[N, 3, 4]`` camera-from-world, ``intrinsics`` ``[N, 3, 3]``."""
    config = config or AgreementConfig()
    num_cameras, height, width = depth.shape
    if num_cameras > MAX_CAMERAS:
        raise ValueError(f"views_agree counts up to {MAX_CAMERAS - 1} other cameras; got {num_cameras} cameras")
    out = np.zeros((num_cameras, height * width), dtype=np.uint8)
    for n in range(num_cameras):
        count = np.zeros(height * width, dtype=np.int64)
        seen_any = np.zeros(height * width, dtype=bool)
        for m in range(num_cameras):
            if m == n:
                continue
            match = match_pair(depth[n], extrinsics[n], intrinsics[n], depth[m], extrinsics[m], intrinsics[m], config)
            count += match.agree
            seen_any |= match.seen
        valid = np.isfinite(depth[n].ravel()) & (depth[n].ravel() > 0)
        out[n] = np.where(valid & ~seen_any, UNSEEN, count)
    return out.reshape(num_cameras, height, width)


def views_agree_window(
    depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, config: AgreementConfig | None = None
) -> np.ndarray:
    """:func:`views_agree` of every timestep of a window: ``depth [T, N, H, W]``, ``extrinsics [T, N, 3, 4]``,
    ``intrinsics [T, N, 3, 3]`` -> uint8 ``[T, N, H, W]``."""
    return np.stack(
        [views_agree(np.asarray(depth[t]), extrinsics[t], intrinsics[t], config) for t in range(depth.shape[0])]
    ).reshape(depth.shape)


def passes_min_views(counts: np.ndarray, min_views: int, keep_unseen: bool = True) -> np.ndarray:
    """Bool mask of pixels seen consistently by at least ``min_views`` other cameras (``counts`` from
    :func:`views_agree`); pixels no other camera sees pass when ``keep_unseen`` (nothing contradicts them)."""
    counts = np.asarray(counts)
    unseen = counts == UNSEEN
    return np.where(unseen, keep_unseen, counts >= min_views)
