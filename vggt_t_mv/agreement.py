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
``<= 0``) get 0. A camera that cannot be used (intrinsics or rotation not finite or singular) sees nothing, and its
own valid pixels are :data:`UNSEEN`.
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


def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Column ``u`` and row ``v`` of every pixel, flat ``[H * W]`` float64 each (row-major, as ``ravel``)."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    return u.ravel(), v.ravel()


def _camera_map(extrinsics_from: np.ndarray, intrinsics_from: np.ndarray, extrinsics_to: np.ndarray) -> np.ndarray:
    """``[3, 4]`` float64 ``[G | g]``: the point of pixel ``(u, v)`` of camera ``from`` at z-depth ``d``, in camera
    ``to``'s frame, is ``d * G [u, v, 1] + g`` (``G = R_rel K_from^-1``, ``[R_rel | g]`` the relative pose)."""
    rotation_from, rotation_to = extrinsics_from[:, :3].astype(np.float64), extrinsics_to[:, :3].astype(np.float64)
    relative = rotation_to @ np.linalg.inv(rotation_from)  # the exact inverse: float32 rotations are ~orthonormal
    offset = extrinsics_to[:, 3].astype(np.float64) - relative @ extrinsics_from[:, 3].astype(np.float64)
    return np.concatenate([relative @ np.linalg.inv(intrinsics_from.astype(np.float64)), offset[:, None]], axis=1)


def _transfer(
    u: np.ndarray, v: np.ndarray, depth: np.ndarray, camera_map: np.ndarray, intrinsics_to: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels ``u, v`` ``[M]`` of one camera at z-depth ``depth [M]`` -> their pixel ``(u', v')`` in another camera
    (``camera_map`` from :func:`_camera_map`, ``intrinsics_to`` with last row ``[0, 0, 1]``) and z-depth there; the
    pixel is NaN where that depth is ``<= 0``. Elementwise only (no ``[M, 3]`` temporaries)."""
    m, k = camera_map, intrinsics_to.astype(np.float64)
    x = depth * (m[0, 0] * u + m[0, 1] * v + m[0, 2]) + m[0, 3]
    y = depth * (m[1, 0] * u + m[1, 1] * v + m[1, 2]) + m[1, 3]
    z = depth * (m[2, 0] * u + m[2, 1] * v + m[2, 2]) + m[2, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / np.where(z > 0, z, np.nan)
    x *= inverse
    y *= inverse
    return k[0, 0] * x + k[0, 1] * y + k[0, 2], k[1, 1] * y + k[1, 2], z


@dataclass
class _Camera:
    """One camera of a timestep, prepared once: flat float64 depth ``[H * W]`` (0 where invalid), its validity,
    cameras, and whether they can be used (finite, invertible intrinsics and rotation)."""

    depth: np.ndarray
    valid: np.ndarray
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    usable: bool

    @classmethod
    def of(cls, depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> _Camera:
        flat = np.asarray(depth, np.float64).ravel()
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(flat) & (flat > 0)
        extrinsics, intrinsics = np.asarray(extrinsics, np.float64), np.asarray(intrinsics, np.float64)
        usable = bool(np.isfinite(extrinsics).all() and np.isfinite(intrinsics).all())
        usable = usable and np.linalg.det(intrinsics) != 0 and np.linalg.det(extrinsics[:, :3]) != 0
        return cls(np.where(valid, flat, 0.0), valid, extrinsics, intrinsics, usable)


def _match(
    n: _Camera, m: _Camera, grid: tuple[np.ndarray, np.ndarray], width: int, config: AgreementConfig
) -> PairMatch:
    """:func:`match_pair` of prepared cameras (``grid``: :func:`_pixel_grid` of the shared image size)."""
    u, v = grid
    height = u.size // width
    if not (n.usable and m.usable):  # nothing seen (module docstring)
        nothing = np.zeros(u.size, bool)
        return PairMatch(nothing, nothing.copy(), np.zeros(u.size, np.int64), np.full((u.size, 2), np.nan))
    forward = _camera_map(n.extrinsics, n.intrinsics, m.extrinsics)
    pixel_u, pixel_v, z_m = _transfer(u, v, n.depth, forward, m.intrinsics)
    col, row = np.rint(pixel_u), np.rint(pixel_v)
    with np.errstate(invalid="ignore"):  # NaN (behind m) compares False
        inside = n.valid & (z_m > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    target = np.where(inside, row * width + col, 0).astype(np.int64)
    d_m = m.depth[target]
    seen = inside & m.valid[target]
    agree = seen & (np.abs(z_m - d_m) <= config.depth_tolerance * d_m)
    # round trip: q lifted with its own depth in m, back into n
    back_map = _camera_map(m.extrinsics, m.intrinsics, n.extrinsics)
    back_u, back_v, back_z = _transfer(u[target], v[target], np.where(seen, d_m, 0.0), back_map, n.intrinsics)
    with np.errstate(invalid="ignore"):
        error = np.hypot(back_u - u, back_v - v)
        agree &= (back_z > 0) & (error <= config.reprojection_px)
    return PairMatch(seen, agree, target, np.stack([pixel_u, pixel_v], axis=-1))


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
    cameras = _Camera.of(depth_n, extrinsics_n, intrinsics_n), _Camera.of(depth_m, extrinsics_m, intrinsics_m)
    return _match(*cameras, _pixel_grid(height, width), width, config)


def views_agree(
    depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, config: AgreementConfig | None = None
) -> np.ndarray:
    """Agreement counts of one timestep: uint8 ``[N, H, W]`` (module docstring; :data:`UNSEEN` where no other
    camera sees the point).

    ``depth`` ``[N, H, W]`` (z-depth), ``extrinsics`` ``[N, 3, 4]`` camera-from-world, ``intrinsics`` ``[N, 3, 3]``.
    Cost: ``N - 1`` pair checks per camera image, each a few dozen elementwise passes over its ``H * W`` pixels."""
    config = config or AgreementConfig()
    num_cameras, height, width = depth.shape
    if num_cameras > MAX_CAMERAS:
        raise ValueError(f"views_agree counts up to {MAX_CAMERAS - 1} other cameras; got {num_cameras} cameras")
    grid = _pixel_grid(height, width)
    cameras = [_Camera.of(depth[n], extrinsics[n], intrinsics[n]) for n in range(num_cameras)]
    out = np.zeros((num_cameras, height * width), dtype=np.uint8)
    for n in range(num_cameras):
        count = np.zeros(height * width, dtype=np.uint8)  # up to N - 1 < 255
        seen_any = np.zeros(height * width, dtype=bool)
        for m in range(num_cameras):
            if m == n:
                continue
            match = _match(cameras[n], cameras[m], grid, width, config)
            count += match.agree
            seen_any |= match.seen
        out[n] = np.where(cameras[n].valid & ~seen_any, UNSEEN, count)
    return out.reshape(num_cameras, height, width)


def views_agree_window(
    depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, config: AgreementConfig | None = None
) -> np.ndarray:
    """:func:`views_agree` of every timestep of a window: ``depth [T, N, H, W]``, ``extrinsics [T, N, 3, 4]``,
    ``intrinsics [T, N, 3, 3]`` -> uint8 ``[T, N, H, W]``."""
    out = np.empty(depth.shape, np.uint8)
    for t in range(depth.shape[0]):
        out[t] = views_agree(np.asarray(depth[t]), extrinsics[t], intrinsics[t], config)
    return out


def passes_min_views(counts: np.ndarray, min_views: int, keep_unseen: bool = True) -> np.ndarray:
    """Bool mask of pixels seen consistently by at least ``min_views`` other cameras (``counts`` from
    :func:`views_agree`); pixels no other camera sees pass when ``keep_unseen`` (nothing contradicts them)."""
    counts = np.asarray(counts)
    unseen = counts == UNSEEN
    return np.where(unseen, keep_unseen, counts >= min_views)
