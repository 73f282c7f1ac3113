"""Numpy geometry, written once: similarity transforms, their least-squares and robust fits, rotation angles,
quaternions, camera centres, and projecting points to pixels and back.

Conventions (the same as :mod:`vggt_t_mv.geometry`, which holds the torch side):

* Cameras are OpenCV camera-from-world extrinsics ``[R_c | t_c]`` ``[..., 3, 4]``: a world point ``X`` has camera
  coordinates ``R_c X + t_c`` (x right, y down, z forward); the camera centre is ``-R_c^T t_c``.
* A :class:`Sim3` ``(s, R, t)`` maps a point ``x`` of a *source* frame to ``y = s R x + t`` in a *target* frame.
  Moving cameras by a Sim(3) also scales their camera frames by ``s``: depths scale by ``s``, intrinsics stay.
* Quaternions are ``(x, y, z, w)``, scalar last (the model's pose encoding); ``[..., 4]``.

Everything here is numpy (torch is imported lazily, only to move a large float32 point map in one BLAS call).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BIG_POINT_MAP = 1 << 20  # values; float32 point maps at least this large are moved by one multi-threaded addmm


# ------------------------------------------------------------------------------------------------ Sim(3)
@dataclass(frozen=True, eq=False)
class Sim3:
    """``y = scale * rotation @ x + translation`` (source -> target); ``rotation [3, 3]``, ``translation [3]``."""

    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def identity(cls) -> Sim3:
        return cls()

    def to_dict(self) -> dict:
        """JSON form ``{"scale", "rotation" [3][3], "translation" [3]}`` (float64 values)."""
        return {
            "scale": float(self.scale),
            "rotation": np.asarray(self.rotation, np.float64).tolist(),
            "translation": np.asarray(self.translation, np.float64).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Sim3:
        """:meth:`to_dict`'s inverse; ``ValueError`` unless ``data`` is one with a positive finite scale and finite
        rotation and translation."""
        try:
            scale = float(data["scale"])
            rotation = np.array(data["rotation"], np.float64).reshape(3, 3)
            translation = np.array(data["translation"], np.float64).reshape(3)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a Sim(3) {{scale, rotation, translation}}: {error}") from error
        if not (np.isfinite(scale) and scale > 0 and np.isfinite(rotation).all() and np.isfinite(translation).all()):
            raise ValueError("a Sim(3) needs a positive finite scale and finite rotation and translation")
        return cls(scale, rotation, translation)

    def is_identity(self) -> bool:
        return self.scale == 1.0 and np.array_equal(self.as_matrix(), np.eye(4))

    def as_matrix(self) -> np.ndarray:
        """``[4, 4]`` homogeneous matrix (float64)."""
        out = np.eye(4)
        out[:3, :3] = self.scale * np.asarray(self.rotation, np.float64)
        out[:3, 3] = self.translation
        return out

    def inverse(self) -> Sim3:
        rotation_t = np.asarray(self.rotation, np.float64).T
        return Sim3(1.0 / self.scale, rotation_t, -rotation_t @ self.translation / self.scale)

    def compose(self, other: Sim3) -> Sim3:
        """``self ∘ other``: apply ``other`` first."""
        return Sim3(
            self.scale * other.scale,
            self.rotation @ other.rotation,
            self.scale * self.rotation @ other.translation + self.translation,
        )

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points ``[..., 3]`` in the source frame -> target frame ``[..., 3]`` (a new array; float inputs keep their
        dtype, anything else becomes float64)."""
        points = np.asarray(points)
        if not np.issubdtype(points.dtype, np.floating):
            points = points.astype(np.float64)
        matrix = (self.scale * np.asarray(self.rotation)).astype(points.dtype)
        translation = np.asarray(self.translation).astype(points.dtype)
        if points.dtype == np.float32 and points.size >= BIG_POINT_MAP:  # a window's point map
            import torch

            flat = torch.from_numpy(np.ascontiguousarray(points).reshape(-1, 3))
            moved = torch.addmm(torch.from_numpy(translation), flat, torch.from_numpy(matrix).T)
            return moved.numpy().reshape(points.shape)
        # column by column: 5-10x faster than numpy's matmul of [M, 3] by [3, 3] (a loop, not BLAS, for k = 3)
        out = points[..., 0:1] * matrix[:, 0]
        out += points[..., 1:2] * matrix[:, 1]
        out += points[..., 2:3] * matrix[:, 2]
        out += translation
        return out

    def apply_to_extrinsics(self, extrinsics: np.ndarray) -> np.ndarray:
        """Camera-from-world ``[..., 3, 4]`` of cameras in the source world -> the same cameras' camera-from-world in
        the target world, camera frames scaled by ``s``: ``R_c' = R_c R^T``, ``t_c' = s t_c - R_c' t`` (same dtype)."""
        extrinsics = np.asarray(extrinsics)
        rot_c, trans_c = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
        new_rot = rot_c @ np.asarray(self.rotation).T.astype(extrinsics.dtype)
        new_trans = self.scale * trans_c - new_rot @ np.asarray(self.translation).astype(extrinsics.dtype)
        return np.concatenate([new_rot, new_trans[..., None]], axis=-1).astype(extrinsics.dtype)


def umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> Sim3:
    """Weighted least-squares Sim(3) ``target ≈ s R source + t`` (Umeyama 1991), float64.

    ``source``, ``target`` ``[M, 3]`` corresponding points; ``weights`` ``[M]`` (>= 0, None = uniform). A ``ValueError``
    when there is no point or no weight. Fewer than 3 non-collinear points leave the rotation underdetermined (one
    of the solutions is returned); a source with no spread (all points equal) gives ``s = 0``: everything maps to the
    target's weighted centroid.
    """
    source, target = np.asarray(source, np.float64).reshape(-1, 3), np.asarray(target, np.float64).reshape(-1, 3)
    w = np.ones(len(source)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    total = float(w.sum()) if len(w) else 0.0
    if len(source) == 0 or total <= 0:
        raise ValueError(f"a Sim(3) fit needs weighted points, got {len(source)} (weight sum {total})")
    w = w / total
    mean_s, mean_t = w @ source, w @ target
    centred_s, centred_t = source - mean_s, target - mean_t
    covariance = (centred_t * w[:, None]).T @ centred_s
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    variance_s = float(w @ (centred_s**2).sum(axis=1))
    scale = float((singular * sign).sum() / variance_s) if variance_s > 1e-20 else 0.0
    return Sim3(scale, rotation, mean_t - scale * rotation @ mean_s)


@dataclass(frozen=True)
class Sim3Fit:
    """Result of :func:`robust_sim3`: the transform, residual statistics (target units) and inliers."""

    sim3: Sim3
    residual_median: float
    residual_mean_inlier: float
    inlier_fraction: float
    num_points: int
    iterations: int


def robust_sim3(
    source: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    iterations: int = 20,
    cauchy_c: float = 2.385,
    max_points: int = 60000,
    hypotheses: int = 64,
    seed: int = 0,
) -> Sim3Fit:
    """Confidence-weighted Sim(3) ``target ≈ s R source + t`` by IRLS around :func:`umeyama`, robust to outliers.

    Start: the best of ``hypotheses`` Umeyama fits on random 4-point samples by least median of residuals
    (robust to up to ~50 % outliers), refined on the better half of the points. Then each IRLS iteration
    re-weights point i by ``weights_i / (1 + (r_i / (c σ))²)`` (Cauchy), with ``r_i`` its
    residual and ``σ = 1.4826 · median(r)``.
    ``source``/``target`` ``[M, 3]``, non-finite rows and rows of weight 0 ignored; at most ``max_points`` rows (a
    fixed random subset) are used; fewer than 3 usable rows are a ``ValueError``. Inliers: ``r < 3σ``.
    """
    # Rows are checked and subsampled in the inputs' own dtype; only the kept rows are converted to float64.
    source, target = np.asarray(source).reshape(-1, 3), np.asarray(target).reshape(-1, 3)
    base = np.ones(len(source)) if weights is None else np.asarray(weights).reshape(-1)
    rows = np.flatnonzero(np.isfinite(source).all(1) & np.isfinite(target).all(1) & np.isfinite(base) & (base > 0))
    if len(rows) < 3:
        raise ValueError(f"a robust Sim(3) fit needs at least 3 finite weighted points, got {len(rows)}")
    if len(rows) > max_points:
        rows = rows[np.sort(np.random.default_rng(seed + 1).choice(len(rows), max_points, replace=False))]
    source, target = source[rows].astype(np.float64), target[rows].astype(np.float64)
    base = base[rows].astype(np.float64)
    rng = np.random.default_rng(seed)
    sim3 = _least_median_start(source, target, base, rng, hypotheses) if hypotheses else umeyama(source, target, base)
    residual = np.linalg.norm(sim3.apply(source) - target, axis=1)
    trimmed = base * (residual <= np.quantile(residual, 0.5))
    sim3 = umeyama(source, target, trimmed)
    extent = max(float(target.std()), 1e-12)
    done = 0
    for done in range(1, iterations + 1):  # noqa: B007 (the count is reported)
        residual = np.linalg.norm(sim3.apply(source) - target, axis=1)
        sigma = max(1.4826 * float(np.median(residual)), 1e-12)
        robust = base / (1.0 + (residual / (cauchy_c * sigma)) ** 2)
        new = umeyama(source, target, robust)
        change = max(
            abs(new.scale / sim3.scale - 1) if sim3.scale else np.inf,
            float(np.abs(new.rotation - sim3.rotation).max()),
            float(np.abs(new.translation - sim3.translation).max()) / extent,
        )
        sim3 = new
        if change < 1e-9:
            break
    residual = np.linalg.norm(sim3.apply(source) - target, axis=1)
    inliers = residual < 3 * max(1.4826 * float(np.median(residual)), 1e-12)
    return Sim3Fit(
        sim3,
        residual_median=float(np.median(residual)),
        residual_mean_inlier=float(residual[inliers].mean()) if inliers.any() else float("nan"),
        inlier_fraction=float(inliers.mean()),
        num_points=len(source),
        iterations=done,
    )


def _least_median_start(
    source: np.ndarray, target: np.ndarray, weights: np.ndarray, rng: np.random.Generator, hypotheses: int
) -> Sim3:
    """LMedS over random 4-point Umeyama fits, points drawn in proportion to their weight."""
    probability = weights / weights.sum()
    score_rows = rng.choice(len(source), min(len(source), 4000), replace=False)
    best, best_score = umeyama(source, target, weights), np.inf
    candidates = [best]
    for _ in range(hypotheses):
        try:
            rows = rng.choice(len(source), 4, replace=False, p=probability)
            candidates.append(umeyama(source[rows], target[rows]))
        except (ValueError, np.linalg.LinAlgError):
            continue
    usable = [c for c in candidates if np.isfinite(c.as_matrix()).all() and c.scale > 0]
    if not usable:
        return best
    # every candidate scored at once, element by element the same arithmetic as Sim3.apply (so the same scores)
    points, expected = source[score_rows], target[score_rows]
    matrices = np.stack([c.scale * np.asarray(c.rotation) for c in usable])[:, None]  # [K, 1, 3, 3]
    moved = points[None, :, 0:1] * matrices[..., 0]
    moved += points[None, :, 1:2] * matrices[..., 1]
    moved += points[None, :, 2:3] * matrices[..., 2]
    moved += np.stack([np.asarray(c.translation, np.float64) for c in usable])[:, None]
    scores = np.median(np.linalg.norm(moved - expected, axis=2), axis=1)
    first_best = int(np.argmin(scores))  # the first of equal scores, as a loop keeping strict improvements
    return usable[first_best] if scores[first_best] < best_score else best


# ------------------------------------------------------------------------------------------------ rotations
def rotation_angle_deg(rotation_a: np.ndarray, rotation_b: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees, in [0, 180]) between rotations ``[..., 3, 3]`` (broadcast), float64.

    The angle of ``D = R_a^T R_b`` as ``atan2(sin θ, cos θ)`` with ``sin θ = |axial vector of D - D^T| / 2`` and
    ``cos θ = (trace D - 1) / 2``: accurate over the whole range. ``arccos`` of the trace alone loses ~0.03° near 0
    to float32 rounding, and ``arcsin`` of the chordal distance loses the same near 180°.
    """
    a, b = np.asarray(rotation_a, np.float64), np.asarray(rotation_b, np.float64)
    d = np.swapaxes(a, -1, -2) @ b
    axial = np.stack([d[..., 2, 1] - d[..., 1, 2], d[..., 0, 2] - d[..., 2, 0], d[..., 1, 0] - d[..., 0, 1]], -1)
    sin = np.linalg.norm(axial, axis=-1) / 2
    cos = (np.trace(d, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arctan2(sin, cos))


def quaternion_xyzw_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """Quaternion ``[..., 4]`` ``(x, y, z, w)`` (need not be unit) -> rotation matrix ``[..., 3, 3]`` (float64)."""
    q = np.asarray(quaternion, np.float64)
    x, y, z, w = np.moveaxis(q, -1, 0)
    two_s = 2.0 / (q * q).sum(-1)
    rows = [
        [1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w)],
        [two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w)],
        [two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, -1) for row in rows], -2)


def matrix_to_quaternion_xyzw(rotation: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[..., 3, 3]`` -> unit quaternion ``[..., 4]`` ``(x, y, z, w)`` with ``w >= 0`` (float64).

    Each of the four textbook formulas divides by one component; per matrix the one with the largest component is
    used, so the division is always well conditioned.
    """
    m = np.asarray(rotation, np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    squares = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    d21, d12, d02, d20, d10, d01 = m[..., 2, 1], m[..., 1, 2], m[..., 0, 2], m[..., 2, 0], m[..., 1, 0], m[..., 0, 1]
    # (w, x, y, z) times 4|c|, for each choice of the dominant component c
    candidates = np.stack(
        [
            np.stack([squares[..., 0], d21 - d12, d02 - d20, d10 - d01], -1),
            np.stack([d21 - d12, squares[..., 1], d10 + d01, d02 + d20], -1),
            np.stack([d02 - d20, d10 + d01, squares[..., 2], d21 + d12], -1),
            np.stack([d10 - d01, d20 + d02, d12 + d21, squares[..., 3]], -1),
        ],
        -2,
    )
    best = squares.argmax(-1)
    wxyz = np.take_along_axis(candidates, best[..., None, None], -2)[..., 0, :]
    wxyz = wxyz / np.linalg.norm(wxyz, axis=-1, keepdims=True)
    wxyz = np.where(wxyz[..., :1] < 0, -wxyz, wxyz)
    return np.concatenate([wxyz[..., 1:], wxyz[..., :1]], -1)


# -------------------------------------------------------------------------------------------------- cameras
def camera_centers(extrinsics: np.ndarray) -> np.ndarray:
    """World positions ``-R^T t`` ``[..., 3]`` of camera-from-world extrinsics ``[..., 3, 4]`` (or ``[..., 4, 4]``);
    float64 for float64 input."""
    extrinsics = np.asarray(extrinsics)
    rotation, translation = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
    return -np.einsum("...ji,...j->...i", rotation, translation)


def project_points(points: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points ``[..., M, 3]`` seen by cameras ``extrinsics [..., 3, 4]`` (camera-from-world), ``intrinsics
    [..., 3, 3]`` (pixels) -> pixels ``(u, v) [..., M, 2]`` and camera z-depth ``[..., M]``, float64.

    Leading dims broadcast. Pixels of points at ``z <= 0`` (behind the camera) are NaN; their depth is kept."""
    points = np.asarray(points, np.float64)
    extrinsics, intrinsics = np.asarray(extrinsics, np.float64), np.asarray(intrinsics, np.float64)
    camera = np.einsum("...ij,...mj->...mi", extrinsics[..., :3, :3], points) + extrinsics[..., None, :3, 3]
    depth = camera[..., 2]
    homogeneous = np.einsum("...ij,...mj->...mi", intrinsics, camera)
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = homogeneous[..., :2] / depth[..., None]
    return np.where((depth > 0)[..., None], pixels, np.nan), depth


def unproject_pixels(
    pixels: np.ndarray, depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray
) -> np.ndarray:
    """Pixels ``(u, v) [..., M, 2]`` at camera z-depth ``[..., M]`` -> world points ``[..., M, 3]`` (float64):
    ``R^-1 (depth K^-1 [u, v, 1] - t)`` for camera-from-world ``extrinsics [..., 3, 4]``, ``intrinsics [..., 3, 3]``.
    The inverse of :func:`project_points` for points in front of the camera (``R^-1``, exact also for a float32
    rotation that is orthonormal only to rounding)."""
    pixels, depth = np.asarray(pixels, np.float64), np.asarray(depth, np.float64)
    extrinsics, intrinsics = np.asarray(extrinsics, np.float64), np.asarray(intrinsics, np.float64)
    homogeneous = np.concatenate([pixels, np.ones_like(pixels[..., :1])], axis=-1)
    rays = np.einsum("...ij,...mj->...mi", np.linalg.inv(intrinsics), homogeneous)
    camera = rays * depth[..., None] - extrinsics[..., None, :3, 3]
    # the exact inverse of R, not R^T: float32 rotations are orthonormal only to ~1e-7
    return np.einsum("...ij,...mj->...mi", np.linalg.inv(extrinsics[..., :3, :3]), camera)
