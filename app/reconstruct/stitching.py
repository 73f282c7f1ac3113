"""Window stitching and rig geometry, numpy (torch only for moving large point maps).

Conventions:

* A :class:`Sim3` ``(s, R, t)`` maps a point ``x`` of the *source* frame (one window's reference camera)
  to ``y = s R x + t`` in the *target* frame (the first window's reference camera).
* Cameras are OpenCV camera-from-world extrinsics ``[R_c | t_c]`` (``x_cam = R_c X + t_c``), ``[..., 3, 4]``.
  Moving a camera by a Sim(3) also scales its camera frame by ``s``, so depths scale by ``s`` and the
  intrinsics do not change.

Overlap merge rule: when windows ``w`` and ``w + 1`` share ``k`` timesteps, the first ``ceil(k / 2)`` of
them come from window ``w`` and the rest from window ``w + 1`` (each timestep is taken from the window
in which it sits further from the edge; ties go to the earlier window). Nothing is averaged, so
moving content is never blurred and each stored timestep is one consistent model output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch


# ------------------------------------------------------------------------------------------------ Sim(3)
@dataclass
class Sim3:
    """``y = scale * rotation @ x + translation`` (source -> target)."""

    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def identity(cls) -> Sim3:
        return cls()

    def matrix(self) -> np.ndarray:
        """``[4, 4]`` homogeneous matrix."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out

    def inverse(self) -> Sim3:
        rotation_t = self.rotation.T
        return Sim3(1.0 / self.scale, rotation_t, -rotation_t @ self.translation / self.scale)

    def compose(self, other: Sim3) -> Sim3:
        """``self ∘ other``: apply ``other`` first."""
        return Sim3(
            self.scale * other.scale,
            self.rotation @ other.rotation,
            self.scale * self.rotation @ other.translation + self.translation,
        )

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """Points ``[..., 3]`` in the source frame -> target frame ``[..., 3]`` (same dtype; a new array)."""
        matrix = (self.scale * self.rotation).astype(points.dtype)
        if points.dtype == np.float32 and points.size >= 1 << 20:  # a window's point map: one multi-threaded addmm
            flat = torch.from_numpy(np.ascontiguousarray(points).reshape(-1, 3))
            translation = torch.from_numpy(self.translation.astype(np.float32))
            return torch.addmm(translation, flat, torch.from_numpy(matrix).T).numpy().reshape(points.shape)
        # column by column: 5-10x faster than numpy's matmul of [M, 3] by [3, 3] (a loop, not BLAS, for k = 3)
        out = points[..., 0:1] * matrix[:, 0]
        out += points[..., 1:2] * matrix[:, 1]
        out += points[..., 2:3] * matrix[:, 2]
        out += self.translation.astype(points.dtype)
        return out

    def apply_extrinsics(self, extrinsics: np.ndarray) -> np.ndarray:
        """Camera-from-world ``[..., 3, 4]`` in the source world -> in the target world (camera frame scaled by s).

        ``R_c' = R_c R^T``, ``t_c' = s t_c - R_c R^T t``.
        """
        rot_c, trans_c = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
        new_rot = rot_c @ self.rotation.T.astype(extrinsics.dtype)
        new_trans = self.scale * trans_c - new_rot @ self.translation.astype(extrinsics.dtype)
        return np.concatenate([new_rot, new_trans[..., None]], axis=-1).astype(extrinsics.dtype)

    def to_dict(self) -> dict:
        return {
            "scale": float(self.scale),
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Sim3:
        return cls(float(data["scale"]), np.asarray(data["rotation"], float), np.asarray(data["translation"], float))


def rotation_angle_deg(rotation_a: np.ndarray, rotation_b: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between rotations ``[..., 3, 3]``.

    From the chordal distance, ``||R_a - R_b||_F = 2 sqrt(2) sin(θ / 2)``, which stays accurate for small
    angles (the trace formula loses ~0.03° to float32 rounding).
    """
    chord = np.linalg.norm(np.asarray(rotation_a, np.float64) - np.asarray(rotation_b, np.float64), axis=(-2, -1))
    return np.degrees(2.0 * np.arcsin(np.clip(chord / (2.0 * np.sqrt(2.0)), 0.0, 1.0)))


def umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> Sim3:
    """Weighted least-squares Sim(3) ``target ≈ s R source + t`` (Umeyama 1991).

    ``source``, ``target`` ``[M, 3]``; ``weights`` ``[M]`` (>= 0, None = uniform). Needs 3 non-collinear points.
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    w = np.ones(len(source)) if weights is None else np.asarray(weights, np.float64)
    total = w.sum()
    if len(source) < 3 or total <= 0:
        raise ValueError(f"a Sim(3) fit needs at least 3 weighted points, got {len(source)} (weight sum {total})")
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
    scale = float((singular * sign).sum() / variance_s) if variance_s > 0 else 1.0
    translation = mean_t - scale * rotation @ mean_s
    return Sim3(scale, rotation, translation)


@dataclass
class Sim3Fit:
    """Result of :func:`robust_sim3`: the transform, residual statistics (target units) and inliers."""

    sim3: Sim3
    residual_median: float
    residual_mean_inlier: float
    inlier_fraction: float
    num_points: int
    iterations: int

    def to_dict(self) -> dict:
        return {
            "sim3": self.sim3.to_dict(),
            "residual_median": self.residual_median,
            "residual_mean_inlier": self.residual_mean_inlier,
            "inlier_fraction": self.inlier_fraction,
            "num_points": self.num_points,
            "iterations": self.iterations,
        }


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
    """Confidence-weighted Sim(3) by IRLS around Umeyama, robust to outliers.

    Start: the best of ``hypotheses`` Umeyama fits on random 4-point samples by least median of residuals
    (robust to up to ~50 % outliers), refined on the better half of the points. Then each IRLS iteration
    re-weights point i by ``weights_i / (1 + (r_i / (c σ))²)`` (Cauchy), with ``r_i`` its
    residual and ``σ = 1.4826 · median(r)``.
    ``source``/``target`` ``[M, 3]``, non-finite rows ignored; at most ``max_points`` rows (a fixed random
    subset) are used. Inliers: ``r < 3σ``.
    """
    # Rows are checked and subsampled in the inputs' own dtype; only the kept rows are converted to float64.
    source, target = np.asarray(source).reshape(-1, 3), np.asarray(target).reshape(-1, 3)
    base = np.ones(len(source)) if weights is None else np.asarray(weights).reshape(-1)
    rows = np.flatnonzero(np.isfinite(source).all(1) & np.isfinite(target).all(1) & np.isfinite(base) & (base > 0))
    if len(rows) > max_points:
        rows = rows[np.sort(np.random.default_rng(seed + 1).choice(len(rows), max_points, replace=False))]
    source, target = source[rows].astype(np.float64), target[rows].astype(np.float64)
    base = base[rows].astype(np.float64)
    rng = np.random.default_rng(seed)
    sim3 = _least_median_start(source, target, base, rng, hypotheses) if hypotheses else umeyama(source, target, base)
    residual = np.linalg.norm(sim3.apply_points(source) - target, axis=1)
    trimmed = base * (residual <= np.quantile(residual, 0.5))
    sim3 = umeyama(source, target, trimmed)
    extent = max(float(target.std()), 1e-12)
    done = 0
    for done in range(1, iterations + 1):  # noqa: B007 (the count is reported)
        residual = np.linalg.norm(sim3.apply_points(source) - target, axis=1)
        sigma = max(1.4826 * float(np.median(residual)), 1e-12)
        robust = base / (1.0 + (residual / (cauchy_c * sigma)) ** 2)
        new = umeyama(source, target, robust)
        change = max(
            abs(new.scale / sim3.scale - 1),
            float(np.abs(new.rotation - sim3.rotation).max()),
            float(np.abs(new.translation - sim3.translation).max()) / extent,
        )
        sim3 = new
        if change < 1e-9:
            break
    residual = np.linalg.norm(sim3.apply_points(source) - target, axis=1)
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
        rows = rng.choice(len(source), 4, replace=False, p=probability)
        try:
            candidates.append(umeyama(source[rows], target[rows]))
        except (ValueError, np.linalg.LinAlgError):
            continue
    for candidate in candidates:
        if not (np.isfinite(candidate.matrix()).all() and candidate.scale > 0):
            continue
        residual = np.linalg.norm(candidate.apply_points(source[score_rows]) - target[score_rows], axis=1)
        score = float(np.median(residual))
        if score < best_score:
            best, best_score = candidate, score
    return best


# ----------------------------------------------------------------------------------------------- windows
def window_spans(num_timesteps: int, window: int, stride: int) -> list[tuple[int, int]]:
    """Windows ``[(start, end)]`` of ``window`` timesteps every ``stride``, covering ``0..num_timesteps``.

    The last window is shifted back to end at ``num_timesteps`` (so every window has ``window`` timesteps
    and the last overlap may be larger); fewer timesteps than ``window`` give one shorter window.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window ({window}) and stride ({stride}) must be >= 1")
    if stride >= window and num_timesteps > window:
        raise ValueError(f"stride ({stride}) must be smaller than the window ({window}) so windows overlap")
    if num_timesteps <= window:
        return [(0, num_timesteps)]
    spans, start = [], 0
    while True:
        end = start + window
        if end >= num_timesteps:
            spans.append((num_timesteps - window, num_timesteps))
            break
        spans.append((start, end))
        start += stride
    return spans


def owned_ranges(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The timesteps each window contributes under the merge rule (module docstring): ``[(start, end)]``."""
    owned = []
    for w, (start, end) in enumerate(spans):
        if w > 0:
            prev_end = spans[w - 1][1]
            start = start + math.ceil(max(prev_end - start, 0) / 2)
        if w + 1 < len(spans):
            nxt = spans[w + 1][0]
            end = nxt + math.ceil(max(end - nxt, 0) / 2)
        owned.append((start, end))
    return owned


def align_window(
    stitched_points: np.ndarray,
    stitched_conf: np.ndarray,
    window_points: np.ndarray,
    window_conf: np.ndarray,
    **fit_options,
) -> Sim3Fit:
    """Sim(3) taking a window's frame to the stitched frame from the timesteps both hold.

    ``stitched_points``/``window_points`` ``[K, N, ..., 3]`` for the same K overlapping timesteps (pixel
    for pixel), confidences ``[K, N, ...]``; each pixel is weighted by ``sqrt(conf_a · conf_b)``.
    """
    weights = np.sqrt(np.clip(stitched_conf, 0, None) * np.clip(window_conf, 0, None))
    return robust_sim3(window_points.reshape(-1, 3), stitched_points.reshape(-1, 3), weights.reshape(-1), **fit_options)


# ------------------------------------------------------------------------------------------------- rig
def relative_poses(extrinsics: np.ndarray) -> np.ndarray:
    """Pose of each camera relative to camera 0 at the same timestep: camera-n-from-camera-0 ``[T, N, 3, 4]``.

    ``extrinsics [T, N, 3, 4]`` camera-from-world. For a rigid rig this is constant over T.
    """
    rot, trans = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
    rot0_t = np.swapaxes(rot[:, :1], -1, -2)
    rel_rot = rot @ rot0_t
    rel_trans = trans - np.einsum("tnij,tnj->tni", rel_rot, np.broadcast_to(trans[:, :1], trans.shape))
    return np.concatenate([rel_rot, rel_trans[..., None]], axis=-1)


def mean_rotation(rotations: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of rotations ``[K, 3, 3]`` -> ``[3, 3]`` (SVD projection of the arithmetic mean)."""
    u, _, vt = np.linalg.svd(rotations.mean(axis=0))
    if np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
    return u @ vt


def rig_diagnostics(extrinsics: np.ndarray, intrinsics: np.ndarray, camera_names: list[str]) -> dict:
    """How constant the rig stays over time (a rigid rig with fixed zoom should keep every number near 0).

    ``extrinsics [T, N, 3, 4]`` camera-from-world, ``intrinsics [T, N, 3, 3]`` (model pixels). Per camera:
    focal length mean and relative spread (std / mean, %), principal point std (px), and relative to
    camera 0: baseline mean, translation spread (std of the relative translation / mean baseline, %) and
    rotation spread (mean and max angle from the mean relative rotation, degrees).
    """
    rel = relative_poses(extrinsics.astype(np.float64))
    cameras = []
    for n, name in enumerate(camera_names):
        fx, fy = intrinsics[:, n, 0, 0].astype(np.float64), intrinsics[:, n, 1, 1].astype(np.float64)
        focal = (fx + fy) / 2
        entry = {
            "name": name,
            "focal_mean": float(focal.mean()),
            "focal_spread_pct": float(100 * focal.std() / max(focal.mean(), 1e-12)),
            "principal_point_std_px": float(np.hypot(intrinsics[:, n, 0, 2].std(), intrinsics[:, n, 1, 2].std())),
        }
        if n > 0:
            mean_rot = mean_rotation(rel[:, n, :, :3])
            angles = rotation_angle_deg(rel[:, n, :, :3], mean_rot[None])
            trans = rel[:, n, :, 3]
            baseline = float(np.linalg.norm(trans, axis=1).mean())
            spread = float(np.sqrt(((trans - trans.mean(0)) ** 2).sum(1).mean()))
            entry.update(
                baseline_mean=baseline,
                translation_spread_pct=float(100 * spread / max(baseline, 1e-12)),
                rotation_spread_mean_deg=float(angles.mean()),
                rotation_spread_max_deg=float(angles.max()),
            )
        cameras.append(entry)
    return {"cameras": cameras}


def rigid_rig(extrinsics: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average the rig: per-camera intrinsics (median over time) and each camera's pose relative to camera 0.

    ``extrinsics [T, N, 3, 4]``, ``intrinsics [T, N, 3, 3]`` -> rigid extrinsics ``[T, N, 3, 4]`` (camera 0
    unchanged, camera n = mean relative pose ∘ camera 0), intrinsics ``[T, N, 3, 3]`` and the rig
    ``[N, 3, 4]`` (camera-n-from-camera-0).
    """
    rel = relative_poses(extrinsics.astype(np.float64))
    num_cameras = extrinsics.shape[1]
    rig = np.zeros((num_cameras, 3, 4))
    rig[0, :, :3] = np.eye(3)  # exactly: camera 0 stays as it is, so applying the rig twice changes nothing
    for n in range(1, num_cameras):
        rig[n, :, :3] = mean_rotation(rel[:, n, :, :3])
        rig[n, :, 3] = rel[:, n, :, 3].mean(0)
    rot0, trans0 = extrinsics[:, :1, :, :3].astype(np.float64), extrinsics[:, :1, :, 3].astype(np.float64)
    new_rot = rig[None, :, :, :3] @ rot0
    new_trans = np.einsum("nij,tnj->tni", rig[:, :, :3], np.broadcast_to(trans0, (len(extrinsics), num_cameras, 3)))
    new_trans = new_trans + rig[None, :, :, 3]
    out_extrinsics = np.concatenate([new_rot, new_trans[..., None]], axis=-1).astype(extrinsics.dtype)
    out_intrinsics = np.broadcast_to(np.median(intrinsics, axis=0, keepdims=True), intrinsics.shape).copy()
    return out_extrinsics, out_intrinsics.astype(intrinsics.dtype), rig


def metric_scale(extrinsics: np.ndarray, calibration_extrinsics: np.ndarray) -> tuple[float, list[float]]:
    """Scale taking the predicted rig to metres from the baselines to camera 0.

    ``extrinsics [T, N, 3, 4]`` predicted, ``calibration_extrinsics [N, 3, 4]`` (metres), both
    camera-from-world. Least-squares ``s = Σ b_cal b_pred / Σ b_pred²`` over cameras 1..N-1 with
    ``b_pred`` the median predicted baseline over time; also returns each camera's ratio ``b_cal / b_pred``.
    """
    pred = np.median(np.linalg.norm(relative_poses(extrinsics.astype(np.float64))[..., 3], axis=-1), axis=0)
    cal_rel = relative_poses(calibration_extrinsics[None].astype(np.float64))[0]
    cal = np.linalg.norm(cal_rel[..., 3], axis=-1)
    if len(pred) < 2 or float((pred[1:] ** 2).sum()) <= 0:
        raise ValueError("metric scale needs at least 2 cameras with a non-zero predicted baseline")
    scale = float((cal[1:] * pred[1:]).sum() / (pred[1:] ** 2).sum())
    return scale, [float(c / p) if p > 0 else float("nan") for c, p in zip(cal[1:], pred[1:], strict=True)]


def rig_error(extrinsics: np.ndarray, calibration_extrinsics: np.ndarray, camera_names: list[str]) -> list[dict]:
    """Error of the predicted rig against a calibration, per camera n >= 1 (relative to camera 0).

    ``extrinsics [T, N, 3, 4]`` (already metric), ``calibration_extrinsics [N, 3, 4]``: rotation error
    (degrees) and translation error (calibration units) of the mean predicted relative pose, and the
    baseline error.
    """
    _, _, rig = rigid_rig(extrinsics, np.tile(np.eye(3), extrinsics.shape[:2] + (1, 1)))
    cal = relative_poses(calibration_extrinsics[None].astype(np.float64))[0]
    out = []
    for n in range(1, len(camera_names)):
        out.append(
            {
                "name": camera_names[n],
                "rotation_error_deg": float(rotation_angle_deg(rig[n, :, :3], cal[n, :, :3])),
                "translation_error": float(np.linalg.norm(rig[n, :, 3] - cal[n, :, 3])),
                "baseline_calibrated": float(np.linalg.norm(cal[n, :, 3])),
                "baseline_predicted": float(np.linalg.norm(rig[n, :, 3])),
            }
        )
    return out
