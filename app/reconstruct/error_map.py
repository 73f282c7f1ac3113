"""How far the prediction is from the ground truth, per pixel: THE error map of the viewer's error colouring and of
``vggt-mv eval --error-maps`` (pure numpy; the viewer and eval only feed it and draw what it returns).

A pixel ``(n, v, u)`` has a predicted point ``p`` (reconstruction world) and a ground-truth surface point: its
ground-truth depth ``D`` unprojected with ground-truth camera ``n`` (OpenCV camera-from-world ``[R_n | t_n]``,
intrinsics ``K_n`` at the model's pixels), ``g = R_nᵀ (D K_n⁻¹ (u, v, 1) − t_n)``. With the Sim(3) ``x_gt = s R x + t``
that moves the reconstruction onto the ground truth (the camera alignment the viewer draws the ground truth with,
:func:`app.reconstruct.evaluate.camera_alignment`), the error is ``‖s R p + t − g‖ / s``: the distance, in the
reconstruction's units (the viewer's scene units), between where the prediction puts the pixel and where the ground
truth's surface is at that pixel, i.e. the gap one sees between a predicted point and its ground-truth point. NaN
where the ground truth has no depth or the prediction no finite point.
"""

from __future__ import annotations

import numpy as np

from vggt_t_mv.npgeometry import Sim3

INVALID_COLOR = (128, 128, 128)  # pixels without an error (no ground truth there)
RELATIVE_FLOOR = 1e-3  # the colour scale spans at least this fraction of the scene scale (median depth)
NICE_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)


def surface_error(
    points: np.ndarray,
    to_gt: Sim3,
    gt_extrinsics: np.ndarray,
    gt_intrinsics: np.ndarray,
    gt_depth: np.ndarray,
) -> np.ndarray:
    """Per pixel, the distance of the predicted point to the ground-truth surface point of the same pixel (module
    docstring).

    Args:
        points: ``[N, H, W, 3]`` predicted world points of one timestep (reconstruction frame).
        to_gt: the Sim(3) ``x_gt = s R x + t`` from the reconstruction's world to the ground truth's.
        gt_extrinsics: ``[N, 3, 4]`` ground-truth OpenCV camera-from-world of the same cameras.
        gt_intrinsics: ``[N, 3, 3]`` ground-truth intrinsics at the model's pixels (pixel = integer column / row).
        gt_depth: ``[N, H, W]`` ground-truth z-depth at the model's pixels (0 or non-finite: unknown).
    Returns:
        ``[N, H, W]`` float32 errors in reconstruction units, NaN where unknown.
    """
    points = np.asarray(points, np.float64)
    height, width = points.shape[1:3]
    predicted = to_gt.apply(points)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([cols, rows, np.ones_like(cols)], axis=-1)  # [H, W, 3]
    depth = np.asarray(gt_depth, np.float64)
    known = np.isfinite(depth) & (depth > 0)
    rays = np.einsum("nij,hwj->nhwi", np.linalg.inv(np.asarray(gt_intrinsics, np.float64)), pixels)
    camera = rays * np.where(known, depth, 0.0)[..., None]
    extrinsics = np.asarray(gt_extrinsics, np.float64)
    surface = np.einsum("nji,nhwj->nhwi", extrinsics[:, :, :3], camera - extrinsics[:, None, None, :, 3])
    error = np.linalg.norm(predicted - surface, axis=-1) / to_gt.scale
    error[~known | ~np.isfinite(error)] = np.nan
    return error.astype(np.float32)


def depth_scale(depth: np.ndarray) -> float:
    """THE scene scale: the median of the positive finite depths ``[...]`` (1.0 when there is none); the viewer sizes
    points and frustums by it (of timestep 0) and the error colour scale spans at least :data:`RELATIVE_FLOOR` of it."""
    depth = np.asarray(depth, np.float32)
    good = depth[np.isfinite(depth) & (depth > 0)]
    value = float(np.median(good)) if good.size else 1.0
    return value if np.isfinite(value) and value > 0 else 1.0


def nice_limit(errors: np.ndarray, floor: float = 0.0, percentile: float = 95.0) -> float:
    """The top of the colour scale: the ``percentile`` of the finite errors, at least ``floor`` (so a near-perfect
    prediction is drawn as "no error", not as noise stretched over the whole scale), rounded up to 1, 2, 2.5 or
    5 x 10^k (1.0 when there is nothing to scale)."""
    finite = np.asarray(errors)[np.isfinite(errors)]
    value = max(float(np.percentile(finite, percentile)) if finite.size else 0.0, floor)
    if not value > 0:
        return 1.0
    power = 10.0 ** np.floor(np.log10(value))
    return float(next(step * power for step in NICE_STEPS if step * power >= value * (1 - 1e-9)))


def error_colors(errors: np.ndarray, limit: float) -> np.ndarray:
    """``uint8 [..., 3]`` RGB of ``errors [...]``: the turbo colormap from 0 (dark blue) to ``limit`` and above (dark
    red); NaN (unknown) is :data:`INVALID_COLOR`."""
    import cv2

    errors = np.asarray(errors, np.float32)
    level = np.clip(np.nan_to_num(errors / max(limit, 1e-12), nan=0.0), 0.0, 1.0)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]
    colors = lut[np.rint(level * 255).astype(np.int64)]
    colors[~np.isfinite(errors)] = INVALID_COLOR
    return np.ascontiguousarray(colors, dtype=np.uint8)


def color_bar(width: int, height: int = 12) -> np.ndarray:
    """``uint8 [height, width, 3]``: the colour scale of :func:`error_colors`, 0 on the left, the limit on the right."""
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)
    return np.repeat(error_colors(ramp, 1.0)[None], height, axis=0)


def legend_text(limit: float, median: float | None = None, unit: str = "scene units") -> str:
    """``distance to the ground truth: 0 (blue) .. 0.05 (red) scene units, median 0.012; grey: no ground truth``."""
    text = f"distance to the ground truth: 0 (blue) .. {limit:.3g} (red) {unit}"
    if median is not None and np.isfinite(median):
        text += f", median {median:.3g}"
    return text + "; grey: no ground truth"


def error_image(errors: np.ndarray, limit: float, caption: str) -> np.ndarray:
    """``uint8 [H + 28, W, 3]`` RGB picture of one camera's ``errors [H, W]`` with the colour bar and ``caption``
    (the scale) under it: what ``eval --error-maps`` writes per camera and timestep."""
    import cv2

    height, width = errors.shape
    picture = error_colors(errors, limit)
    strip = np.full((28, width, 3), 255, np.uint8)
    strip[2:10] = color_bar(width, 8)
    cv2.putText(strip, caption, (2, 24), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([picture, strip], axis=0)
