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

Arithmetic: the cameras are combined in float64 (``P_m P_n^-1`` per pair), the per-pixel work is float32 (2.3-3.4x
less CPU than the float64 version it replaced; ``benchmarks/README.md``). float32 carries about 1e-7 relative error
per operation, so the projected pixels are off by a few 1e-7 of their magnitude (under 1e-3 px in a 518-px image)
and the depths by a few 1e-7 relative, against tolerances of 3 % (depth) and 2 px (round trip) by default. A
decision differs from exact arithmetic only for a value within that error of its threshold: a depth difference
within ~1e-6 of ``depth_tolerance * d_m``, a round trip within ~1e-3 px of ``reprojection_px``, or a projection
within ~1e-3 px of a pixel boundary (a rounding tie: the nearest pixel ``q`` flips to its neighbour, whose depth then
decides). So rare pixels count differently from a float64 computation: against the previous float64 code, at most
5e-6 of the pixels on exact synthetic rigs at 294x518 and 3e-5 with 3 % depth noise and 3 % invalid pixels (9
timesteps each); none on the small rigs of ``tests/test_views_agree.py``, which compares with a per-pixel float64
reference. With zero tolerances the checks are exact equalities, where float32 and float64 differ more often (~1e-4
of the pixels). :func:`match_pair` makes the same decisions as :func:`views_agree`; its ``pixel`` is computed in
float64.
"""

from __future__ import annotations

import functools
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


def _homography(n: _Camera, m: _Camera) -> tuple[np.ndarray, np.ndarray]:
    """``(A [3, 3], b [3])`` float64: pixel ``(u, v)`` of camera ``n`` at z-depth ``d`` lands at
    ``p = d * A [u, v, 1] + b`` in camera ``m``'s homogeneous pixels (``A = K_m R_rel K_n^-1``, ``b = K_m t_rel`` for
    the relative pose ``[R_rel | t_rel]``: ``[A | b]`` the top of ``P_m P_n^-1``); with ``K_m``'s last row ``[0, 0,
    1]``, ``p_z`` is the depth there and the pixel is ``(p_x, p_y) / p_z``."""
    relative = m.projection @ n.unprojection
    return relative[:3, :3], relative[:3, 3]


def _project(depth: np.ndarray, n: _Camera, m: _Camera, out: np.ndarray) -> np.ndarray:
    """``out [3, H, W]`` float64 = every pixel of ``n`` at ``depth [H, W]`` in ``m``'s homogeneous pixels ``(x, y,
    z)`` (:func:`_homography`), the plane term ``A [u, v, 1]`` separable in rows and columns."""
    height, width = depth.shape
    forward, offset = _homography(n, m)
    u, v = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    for a, b, plane in zip(forward, offset, out, strict=True):
        np.add(a[0] * u, (a[1] * v + a[2])[:, None], out=plane)
        plane *= depth
        plane += b
    return out


@dataclass
class _Camera:
    """One camera of a timestep, prepared once: its depth as given (``[H, W]``), its validity (flat ``[H * W]``),
    whether its cameras can be used (finite, invertible intrinsics with last row ``[0, 0, 1]`` and rotation) and
    then ``projection`` ``P = [K [R | t]; 0 0 0 1]`` float64 ``[4, 4]`` (world to ``(d u, d v, d, 1)``) and its
    inverse ``unprojection``; for the float32 checks, ``marked`` ``[H, W]`` (NaN where invalid, so that nothing
    projected from there lands anywhere) and ``lookup`` ``[H * W]`` (0 where invalid; valid depths clipped into
    float32's positive range, so that ``lookup > 0`` is exactly the validity)."""

    depth: np.ndarray
    valid: np.ndarray
    usable: bool
    projection: np.ndarray
    unprojection: np.ndarray
    marked: np.ndarray
    lookup: np.ndarray

    @classmethod
    def of(cls, depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> _Camera:
        depth = np.asarray(depth)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(depth) & (depth > 0)
        extrinsics, intrinsics = np.asarray(extrinsics, np.float64), np.asarray(intrinsics, np.float64)
        usable = bool(np.isfinite(extrinsics).all() and np.isfinite(intrinsics).all())
        usable = usable and (intrinsics[2] == (0.0, 0.0, 1.0)).all()
        usable = usable and np.linalg.det(intrinsics) != 0 and np.linalg.det(extrinsics[:, :3]) != 0
        projection = np.eye(4)
        if usable:
            projection[:3] = intrinsics @ extrinsics
        if depth.dtype in (np.float32, np.float16):
            clipped = depth.astype(np.float32, copy=False)  # valid depths stay positive and finite
        else:
            info = np.finfo(np.float32)
            with np.errstate(over="ignore", invalid="ignore"):
                clipped = np.clip(depth, info.smallest_subnormal, info.max, dtype=np.float32, casting="unsafe")
        marked = np.where(valid, clipped, np.float32(np.nan))
        lookup = np.fmax(marked, np.float32(0.0)).ravel()  # NaN -> 0
        return cls(depth, valid.ravel(), usable, projection, np.linalg.inv(projection), marked, lookup)


@functools.lru_cache(maxsize=4)
def _pixels(height: int, width: int) -> np.ndarray:
    """The pixels ``(u, v)`` of an ``H x W`` image interleaved: float32 ``[H * W * 2]`` (``u0, v0, u1, v1, ...``),
    read-only (shared by the calls for that size)."""
    v, u = np.indices((height, width), np.float32)
    pixels = np.stack([u.ravel(), v.ravel()], axis=-1).ravel()
    pixels.flags.writeable = False
    return pixels


@dataclass
class _Landing:
    """Where the pixels of camera ``n`` land in camera ``m`` (float32, flat over the ``H * W`` pixels of ``n``):
    ``inside`` bool (inside ``m``, in front of it, the depth of ``n`` valid), ``target`` intp the flat index ``v * W +
    u`` of the nearest pixel ``q`` of ``m`` (arbitrary where not ``inside``: read with ``mode="clip"``), ``z`` the
    depth in ``m`` (0 behind it), ``pixel`` complex64 the projection ``u + i v`` in ``m``'s pixels (one item, so that
    one gather reads both; not finite behind ``m`` or where the depth of ``n`` is invalid)."""

    inside: np.ndarray
    target: np.ndarray
    z: np.ndarray
    pixel: np.ndarray

    @classmethod
    def of(cls, n: _Camera, m: _Camera) -> _Landing:
        height, width = n.marked.shape
        size = height * width
        forward, offset = _homography(n, m)
        u, v = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
        planes = np.empty((3, height, width), np.float32)
        for a, b, plane in zip(forward.astype(np.float32), offset.astype(np.float32), planes, strict=True):
            np.add(a[0] * u, (a[1] * v + a[2])[:, None], out=plane)  # the plane term A [u, v, 1], separable
            plane *= n.marked
            plane += b
        xyz = planes.reshape(3, size)
        z = np.maximum(xyz[2], 0, out=xyz[2])  # behind m: x / 0 is +-inf or NaN, lands nowhere
        with np.errstate(divide="ignore", invalid="ignore"):
            projected = np.divide(xyz[:2], z, out=xyz[:2])
        pixel = np.empty(size, np.complex64)
        np.copyto(pixel.real, projected[0])
        np.copyto(pixel.imag, projected[1])
        nearest = np.rint(projected, out=projected)  # NaN compares False
        flags = nearest >= 0
        flags &= nearest < np.array([[width], [height]], np.float32)
        inside = np.logical_and(flags[0], flags[1])
        # flat index in floating point (exact below 2**24 in float32), arbitrary where not inside
        flat = nearest[1].astype(np.float64) if size >= 2**24 else nearest[1]
        with np.errstate(invalid="ignore"):
            flat *= width
            flat += nearest[0]
            target = flat.astype(np.intp)
        return cls(inside, target, z, pixel)


def _check(
    m: _Camera, to_m: _Landing, to_n: _Landing, pixels: np.ndarray, config: AgreementConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-3 of the module docstring for every pixel of camera ``n`` against camera ``m`` (both usable, same
    image size), from where ``n``'s pixels land in ``m`` (``to_m``) and ``m``'s in ``n`` (``to_n``: the round trip
    of ``q`` is where ``q`` lands in ``n``); ``pixels`` from :func:`_pixels`. Returns ``seen``, ``agree`` bool
    ``[H * W]``."""
    d_m = m.lookup.take(to_m.target, mode="clip")
    seen = np.greater(d_m, 0)
    seen &= to_m.inside
    close = np.subtract(to_m.z, d_m)
    np.abs(close, out=close)
    d_m *= np.float32(config.depth_tolerance)
    agree = np.less_equal(close, d_m)
    agree &= seen
    # round trip: q lifted with its own depth in m, back into n (not finite behind n: compares False)
    error = to_n.pixel.take(to_m.target, mode="clip").view(np.float32)
    error -= pixels
    error *= error
    np.add(error[0::2], error[1::2], out=close)
    agree &= close <= np.float32(config.reprojection_px) ** 2
    return seen, agree


def match_pair(
    depth_n: np.ndarray,
    extrinsics_n: np.ndarray,
    intrinsics_n: np.ndarray,
    depth_m: np.ndarray,
    extrinsics_m: np.ndarray,
    intrinsics_m: np.ndarray,
    config: AgreementConfig,
) -> PairMatch:
    """Check every pixel of camera ``n`` against camera ``m`` (steps 1-3 of the module docstring; the same decisions
    as :func:`views_agree`).

    ``depth_*`` ``[H, W]`` (both cameras share the image size), ``extrinsics_*`` ``[3, 4]``, ``intrinsics_*``
    ``[3, 3]``."""
    n, m = _Camera.of(depth_n, extrinsics_n, intrinsics_n), _Camera.of(depth_m, extrinsics_m, intrinsics_m)
    size = depth_n.size
    if not (n.usable and m.usable):  # nothing seen (module docstring)
        nothing = np.zeros(size, bool)
        return PairMatch(nothing, nothing.copy(), np.zeros(size, np.int64), np.full((size, 2), np.nan))
    to_m = _Landing.of(n, m)
    seen, agree = _check(m, to_m, _Landing.of(m, n), _pixels(*depth_n.shape), config)
    target = np.where(to_m.inside, to_m.target, 0).astype(np.int64)
    depth = np.where(n.valid.reshape(depth_n.shape), n.depth, 0.0).astype(np.float64)
    x, y, z = _project(depth, n, m, np.empty((3, *depth_n.shape))).reshape(3, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / np.where(z > 0, z, np.nan)  # NaN behind m
    return PairMatch(seen, agree, target, np.stack([x * inverse, y * inverse], axis=-1))


def views_agree(
    depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, config: AgreementConfig | None = None
) -> np.ndarray:
    """Agreement counts of one timestep: uint8 ``[N, H, W]`` (module docstring; :data:`UNSEEN` where no other
    camera sees the point).

    ``depth`` ``[N, H, W]`` (z-depth), ``extrinsics`` ``[N, 3, 4]`` camera-from-world, ``intrinsics`` ``[N, 3, 3]``.
    Cost: each pair of cameras lands both ways once (:class:`_Landing`: about 20 float32 passes over ``H * W``
    each way), then each way's check reads the other's (:func:`_check`: two gathers and about 12 passes); about
    5 ms of one core per camera image at 294x518 with 4 cameras (``benchmarks/README.md``)."""
    config = config or AgreementConfig()
    num_cameras, height, width = depth.shape
    if num_cameras > MAX_CAMERAS:
        raise ValueError(f"views_agree counts up to {MAX_CAMERAS - 1} other cameras; got {num_cameras} cameras")
    cameras = [_Camera.of(depth[n], extrinsics[n], intrinsics[n]) for n in range(num_cameras)]
    out = np.zeros((num_cameras, height * width), dtype=np.uint8)  # counts up to N - 1 < 255
    seen_any = np.zeros((num_cameras, height * width), dtype=bool)
    usable = [n for n in range(num_cameras) if cameras[n].usable]
    pixels = _pixels(height, width)
    for i, n in enumerate(usable):
        for m in usable[i + 1 :]:
            to_m, to_n = _Landing.of(cameras[n], cameras[m]), _Landing.of(cameras[m], cameras[n])
            for a, b, there, back in ((n, m, to_m, to_n), (m, n, to_n, to_m)):
                seen, agree = _check(cameras[b], there, back, pixels, config)
                out[a] += agree
                seen_any[a] |= seen
    for n in range(num_cameras):
        out[n][cameras[n].valid & ~seen_any[n]] = UNSEEN
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
