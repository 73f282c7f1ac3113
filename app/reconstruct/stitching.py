"""Window stitching and rig geometry, numpy. The Sim(3) and its fits are :mod:`vggt_t_mv.npgeometry`'s.

Conventions:

* A :class:`~vggt_t_mv.npgeometry.Sim3` ``(s, R, t)`` maps a point ``x`` of the *source* frame (one window's
  reference camera) to ``y = s R x + t`` in the *target* frame (the first window's reference camera).
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

import numpy as np

from vggt_t_mv.npgeometry import Sim3Fit, robust_sim3, rotation_angle_deg


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


ALIGN_SAMPLE = 20000  # pixels of the overlap the Sim(3) is fitted on (a fixed random subset: the fit's cost is bounded)


def sample_pixels(num_pixels: int, max_points: int, seed: int = 0) -> np.ndarray | None:
    """Sorted flat indices of ``max_points`` pixels drawn without replacement from ``num_pixels`` (seeded: the same
    overlap shape always gives the same sample, so a resumed run fits exactly what an uninterrupted one did), or None
    when there are no more pixels than that."""
    if num_pixels <= max_points:
        return None
    return np.sort(np.random.default_rng(seed).choice(num_pixels, max_points, replace=False))


def align_window(
    stitched_points: np.ndarray,
    stitched_conf: np.ndarray,
    window_points: np.ndarray,
    window_conf: np.ndarray,
    *,
    max_points: int = ALIGN_SAMPLE,
    **fit_options,
) -> Sim3Fit:
    """Sim(3) taking a window's frame to the stitched frame from the timesteps both hold.

    ``stitched_points``/``window_points`` ``[K, N, ..., 3]`` for the same K overlapping timesteps (pixel
    for pixel; numpy arrays or memory-maps), confidences ``[K, N, ...]``; each pixel is weighted by
    ``sqrt(conf_a · conf_b)``. Only a fixed sample of at most ``max_points`` pixels (:func:`sample_pixels`) is read,
    checked and fitted, so the cost does not grow with the image size; when fewer than half of the sampled pixels are
    usable (non-finite or zero-confidence points), the whole overlap is searched for usable ones instead.
    """
    num_pixels = int(np.prod(window_conf.shape))
    rows = sample_pixels(num_pixels, max_points)
    arrays = (stitched_points, stitched_conf, window_points, window_conf)
    flat = [np.asarray(a).reshape(num_pixels, -1) for a in arrays]
    if rows is not None:
        picked = [np.take(a, rows, axis=0) for a in flat]
        weights = np.sqrt(np.clip(picked[1][:, 0], 0, None).astype(np.float64) * np.clip(picked[3][:, 0], 0, None))
        usable = np.isfinite(picked[0]).all(1) & np.isfinite(picked[2]).all(1) & np.isfinite(weights) & (weights > 0)
        if 2 * int(usable.sum()) >= len(rows):
            return robust_sim3(picked[2], picked[0], weights, max_points=max_points, **fit_options)
    weights = np.sqrt(np.clip(flat[1][:, 0], 0, None) * np.clip(flat[3][:, 0], 0, None))
    return robust_sim3(flat[2], flat[0], weights, max_points=max_points, **fit_options)


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


def rig_from_extrinsics(extrinsics: np.ndarray) -> np.ndarray:
    """The mean rig of cameras ``[T, N, 3, 4]`` (camera-from-world): each camera's pose relative to camera 0
    averaged over time (chordal mean rotation, mean translation), ``[N, 3, 4]`` camera-n-from-camera-0 float64; camera 0
    is exactly the identity."""
    rel = relative_poses(np.asarray(extrinsics, np.float64))
    num_cameras = rel.shape[1]
    rig = np.zeros((num_cameras, 3, 4))
    rig[0, :, :3] = np.eye(3)  # exactly: camera 0 stays as it is, so applying the rig twice changes nothing
    for n in range(1, num_cameras):
        rig[n, :, :3] = mean_rotation(rel[:, n, :, :3])
        rig[n, :, 3] = rel[:, n, :, 3].mean(0)
    return rig


def apply_rig(extrinsics: np.ndarray, rig: np.ndarray) -> np.ndarray:
    """Cameras ``[T, N, 3, 4]`` rebuilt from their camera 0 and a rig ``[N, 3, 4]`` (camera-n-from-camera-0):
    ``E_n = rig_n ∘ E_0`` per timestep; same dtype as ``extrinsics`` (computed in float64). Idempotent for a rig whose
    camera 0 is the identity."""
    rig = np.asarray(rig, np.float64)
    first = np.asarray(extrinsics, np.float64)[:, 0]  # [T, 3, 4]
    new_rot = rig[None, :, :, :3] @ first[:, None, :, :3]
    new_trans = np.einsum("nij,tj->tni", rig[:, :, :3], first[:, :, 3]) + rig[None, :, :, 3]
    return np.concatenate([new_rot, new_trans[..., None]], axis=-1).astype(np.asarray(extrinsics).dtype)


def rigid_rig(extrinsics: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average the rig: per-camera intrinsics (median over time) and each camera's pose relative to camera 0.

    ``extrinsics [T, N, 3, 4]``, ``intrinsics [T, N, 3, 3]`` -> rigid extrinsics ``[T, N, 3, 4]`` (camera 0
    unchanged, camera n = mean relative pose ∘ camera 0, :func:`apply_rig`), intrinsics ``[T, N, 3, 3]`` and the rig
    ``[N, 3, 4]`` (camera-n-from-camera-0, :func:`rig_from_extrinsics`).
    """
    rig = rig_from_extrinsics(extrinsics)
    out_intrinsics = np.broadcast_to(np.median(intrinsics, axis=0, keepdims=True), intrinsics.shape).copy()
    return apply_rig(extrinsics, rig), out_intrinsics.astype(intrinsics.dtype), rig


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
    rig = rig_from_extrinsics(extrinsics)
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
