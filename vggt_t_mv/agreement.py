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


def _homography(
    extrinsics_from: np.ndarray, intrinsics_from: np.ndarray, extrinsics_to: np.ndarray, intrinsics_to: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(A [3, 3], b [3])`` float64: pixel ``(u, v)`` of camera ``from`` at z-depth ``d`` lands at
    ``p = d * A [u, v, 1] + b`` in camera ``to``'s homogeneous pixels (``A = K_to R_rel K_from^-1``, ``b = K_to t_rel``
    for the relative pose ``[R_rel | t_rel]``); with ``K_to``'s last row ``[0, 0, 1]``, ``p_z`` is the depth there and
    the pixel is ``(p_x, p_y) / p_z``."""
    relative = extrinsics_to[:, :3] @ np.linalg.inv(extrinsics_from[:, :3])  # exact inverse: float32 R ~orthonormal
    offset = extrinsics_to[:, 3] - relative @ extrinsics_from[:, 3]
    return intrinsics_to @ relative @ np.linalg.inv(intrinsics_from), intrinsics_to @ offset


@dataclass
class _Camera:
    """One camera of a timestep, prepared once: depth ``[H, W]`` float64 (0 where invalid), its validity (flat
    ``[H * W]``), cameras float64, and whether they can be used (finite, invertible intrinsics with last row
    ``[0, 0, 1]`` and rotation)."""

    depth: np.ndarray
    valid: np.ndarray
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    usable: bool

    @classmethod
    def of(cls, depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> _Camera:
        values = np.asarray(depth, np.float64)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(values) & (values > 0)
        extrinsics, intrinsics = np.asarray(extrinsics, np.float64), np.asarray(intrinsics, np.float64)
        usable = bool(np.isfinite(extrinsics).all() and np.isfinite(intrinsics).all())
        usable = usable and (intrinsics[2] == (0.0, 0.0, 1.0)).all()
        usable = usable and np.linalg.det(intrinsics) != 0 and np.linalg.det(extrinsics[:, :3]) != 0
        return cls(np.where(valid, values, 0.0), valid.ravel(), extrinsics, intrinsics, usable)


@dataclass
class _Checked:
    """What camera ``m`` says about the pixels of camera ``n`` that land inside it: their flat indices ``index
    [K]`` in ``n``, ``target [K]`` in ``m``, ``seen`` and ``agree`` bool ``[K]``; and (when asked) the projection
    ``pixel [H * W, 2]`` of every pixel of ``n``."""

    index: np.ndarray
    target: np.ndarray
    seen: np.ndarray
    agree: np.ndarray
    pixel: np.ndarray | None


def _check(n: _Camera, m: _Camera, config: AgreementConfig, with_pixel: bool = False) -> _Checked:
    """Steps 1-3 of the module docstring for every pixel of ``n`` against ``m`` (both usable, same image size).
    The projection into ``m`` runs over all pixels (its plane term separable in rows and columns); the lookup and
    the round trip only over the pixels that land inside ``m``."""
    height, width = n.depth.shape
    forward, offset = _homography(n.extrinsics, n.intrinsics, m.extrinsics, m.intrinsics)
    u, v = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    x, y, z = (n.depth * (a[0] * u + (a[1] * v + a[2])[:, None]) + b for a, b in zip(forward, offset, strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / np.where(z > 0, z, np.nan)  # NaN behind m: compares False below
        x *= inverse
        y *= inverse
        col, row = np.rint(x), np.rint(y)
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    index = np.flatnonzero(inside.ravel() & n.valid)
    col_q, row_q = col.ravel()[index], row.ravel()[index]
    target = (row_q * width + col_q).astype(np.int64)
    d_m = m.depth.ravel()[target]
    seen = m.valid[target]
    agree = seen & (np.abs(z.ravel()[index] - d_m) <= config.depth_tolerance * d_m)
    # round trip: q lifted with its own depth in m, back into n
    back, back_offset = _homography(m.extrinsics, m.intrinsics, n.extrinsics, n.intrinsics)
    bx, by, bz = (d_m * (a[0] * col_q + a[1] * row_q + a[2]) + b for a, b in zip(back, back_offset, strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.hypot(bx / bz - index % width, by / bz - index // width)
        agree &= (bz > 0) & (error <= config.reprojection_px)
    pixel = np.stack([x.ravel(), y.ravel()], axis=-1) if with_pixel else None
    return _Checked(index, target, seen, agree, pixel)


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
    n, m = _Camera.of(depth_n, extrinsics_n, intrinsics_n), _Camera.of(depth_m, extrinsics_m, intrinsics_m)
    size = depth_n.size
    seen, agree, target = np.zeros(size, bool), np.zeros(size, bool), np.zeros(size, np.int64)
    if not (n.usable and m.usable):  # nothing seen (module docstring)
        return PairMatch(seen, agree, target, np.full((size, 2), np.nan))
    checked = _check(n, m, config, with_pixel=True)
    seen[checked.index], agree[checked.index], target[checked.index] = checked.seen, checked.agree, checked.target
    assert checked.pixel is not None
    return PairMatch(seen, agree, target, checked.pixel)


def views_agree(
    depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, config: AgreementConfig | None = None
) -> np.ndarray:
    """Agreement counts of one timestep: uint8 ``[N, H, W]`` (module docstring; :data:`UNSEEN` where no other
    camera sees the point).

    ``depth`` ``[N, H, W]`` (z-depth), ``extrinsics`` ``[N, 3, 4]`` camera-from-world, ``intrinsics`` ``[N, 3, 3]``.
    Cost: ``N - 1`` pair checks per camera image, each about 15 elementwise passes over its ``H * W`` pixels and 20
    over those that land inside the other camera."""
    config = config or AgreementConfig()
    num_cameras, height, width = depth.shape
    if num_cameras > MAX_CAMERAS:
        raise ValueError(f"views_agree counts up to {MAX_CAMERAS - 1} other cameras; got {num_cameras} cameras")
    cameras = [_Camera.of(depth[n], extrinsics[n], intrinsics[n]) for n in range(num_cameras)]
    out = np.zeros((num_cameras, height * width), dtype=np.uint8)
    for n in range(num_cameras):
        count = out[n]  # up to N - 1 < 255
        seen_any = np.zeros(height * width, dtype=bool)
        for m in range(num_cameras):
            if m == n or not (cameras[n].usable and cameras[m].usable):
                continue
            checked = _check(cameras[n], cameras[m], config)
            count[checked.index] += checked.agree
            seen_any[checked.index] |= checked.seen
        count[cameras[n].valid & ~seen_any] = UNSEEN
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
