"""What the viewer draws, computed from a Reconstruction with numpy alone (no viser): filtered point clouds,
camera poses and frustum shapes, the accumulated static background.

Filters of one timestep and stream: :func:`app.export.selection.pixel_filter` (the one pixel filter, shared with
every export) with

1. **valid**: finite point and confidence, positive depth;
2. **confidence percentile** ``P``: keep pixels whose confidence is ``>=`` the ``P``-th percentile of the valid
   pixels of all cameras at that timestep (``P = 0`` keeps every valid pixel);
3. **seen by at least K cameras** (``min_views``, 0 = off): the multi-view agreement filter;

then

4. **point budget**: at most ``point_budget`` points per timestep and stream (all cameras together), a uniform
   random subset with a seed fixed per timestep, so the same settings always draw the same points;
5. **motion split**: a pixel is *dynamic* when its ``dynamic_mask`` probability is ``>=`` ``dynamic_threshold``.

Splats (:func:`camera_splats`) are lifted from exactly the kept points (:mod:`app.export.splat`), so the budget
bounds them too; when the budget drew a random fraction ``f`` of the confident pixels, their footprints are
widened by ``1 / sqrt(f)`` (:attr:`TimestepCloud.density`) so the thinner set still covers the surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.common.vocab import Motion, Stream
from app.export.selection import DEFAULT_CONF_PERCENTILE, DYNAMIC_THRESHOLD, pixel_filter
from app.export.splat import Gaussians, SplatOptions, lift_pixels
from app.reconstruct.error_map import depth_scale
from app.reconstruct.store import Reconstruction
from vggt_t_mv.npgeometry import camera_centers, matrix_to_quaternion_xyzw

DYNAMIC_TINT = np.array([255, 40, 200], np.float32)  # magenta: far from most scene colours


@dataclass(frozen=True)
class CloudSettings:
    """The settings that change which points are sent (changing one re-sends the clouds)."""

    conf_percentile: float = DEFAULT_CONF_PERCENTILE
    point_budget: int = 100_000
    dynamic_threshold: float = DYNAMIC_THRESHOLD
    min_views: int = 0


@dataclass
class CameraCloud:
    """One camera's kept points at one timestep, split into static and dynamic (image colours ``uint8 [K, 3]``,
    untinted: the scene tints the dynamic ones when masks are shown; confidences float32 ``[K]``; ``*_pixels``
    int64 ``[K]`` the flat index ``v * W + u`` of each point's pixel in its camera's image)."""

    static_points: np.ndarray
    static_colors: np.ndarray
    dynamic_points: np.ndarray
    dynamic_colors: np.ndarray
    static_conf: np.ndarray
    dynamic_conf: np.ndarray
    static_pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dynamic_pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class TimestepCloud:
    """The filtered cloud of one timestep and stream, per camera, with the counts of each filter step."""

    cameras: list[CameraCloud]
    num_valid: int
    num_after_conf: int
    num_kept: int
    stats: dict = field(default_factory=dict)

    @property
    def density(self) -> float:
        """Footprint factor of splats drawn from this cloud: ``1 / sqrt(kept / confident)`` (1 without budget)."""
        return float(np.sqrt(self.num_after_conf / self.num_kept)) if self.num_kept else 1.0


def tint(colors: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """Blend ``uint8 [K, 3]`` colours towards :data:`DYNAMIC_TINT`."""
    out = colors.astype(np.float32) * (1.0 - strength) + DYNAMIC_TINT * strength
    return np.clip(out, 0, 255).astype(np.uint8)


def filter_timestep(recon: Reconstruction, t: int, stream: Stream, settings: CloudSettings) -> TimestepCloud:
    """Apply the module's filters to timestep ``t`` of ``stream``: :func:`app.export.selection.pixel_filter`
    (valid, confidence percentile over all cameras), the point budget, then the static / dynamic split."""
    mask = pixel_filter(recon, t, stream, conf_percentile=settings.conf_percentile, min_views=settings.min_views)
    points, conf = (np.asarray(a) for a in recon.stream(t, stream))
    images = np.asarray(recon.get("images", t))
    dynamic = np.asarray(recon.get("dynamic_mask", t), np.float32) if recon.has("dynamic_mask") else None
    keep = mask.keep
    num_valid, num_after_conf = int(mask.valid.sum()), int(keep.sum())
    if num_after_conf > settings.point_budget:
        chosen = np.random.default_rng(t).choice(np.flatnonzero(keep), size=settings.point_budget, replace=False)
        keep = np.zeros(keep.size, bool)
        keep[chosen] = True
        keep = keep.reshape(mask.valid.shape)
    cameras = []
    for n in range(points.shape[0]):
        kept = keep[n]
        is_dynamic = (
            np.zeros(int(kept.sum()), bool) if dynamic is None else dynamic[n][kept] >= settings.dynamic_threshold
        )
        pts, cols, cfs = points[n][kept].astype(np.float32), images[n][kept], conf[n][kept].astype(np.float32)
        pixels = np.flatnonzero(kept)
        static, dynamic_ = ~is_dynamic, is_dynamic
        cameras.append(
            CameraCloud(
                pts[static],
                cols[static],
                pts[dynamic_],
                cols[dynamic_],
                cfs[static],
                cfs[dynamic_],
                pixels[static],
                pixels[dynamic_],
            )  # fmt: skip
        )
    return TimestepCloud(cameras, num_valid, num_after_conf, int(keep.sum()))


def camera_splats(
    cloud: TimestepCloud, extrinsics: np.ndarray, intrinsics: np.ndarray, options: SplatOptions
) -> list[tuple[Gaussians, Gaussians]]:
    """``(static, dynamic)`` Gaussians of each camera of one timestep's ``cloud``, lifted together (the ``rank``
    opacity ranks all cameras of the timestep, as the export does). ``extrinsics`` ``[N, 3, 4]`` OpenCV
    camera-from-world and ``intrinsics`` ``[N, 3, 3]`` of that timestep; untinted colours."""
    parts = [(cam.static_points, cam.static_colors, cam.static_conf) for cam in cloud.cameras]
    parts += [(cam.dynamic_points, cam.dynamic_colors, cam.dynamic_conf) for cam in cloud.cameras]
    sizes = [len(p[0]) for p in parts]
    num_cameras = len(cloud.cameras)
    if sum(sizes) == 0:
        return [(Gaussians.empty(), Gaussians.empty()) for _ in range(num_cameras)]
    frame = np.concatenate([np.full(size, index % num_cameras) for index, size in enumerate(sizes)])
    gaussians = lift_pixels(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        frame,
        extrinsics,
        intrinsics,
        options,
        density=cloud.density,
    )
    bounds = np.cumsum([0] + sizes)
    pieces = [gaussians.subset(slice(bounds[i], bounds[i + 1])) for i in range(len(sizes))]
    return [(pieces[n], pieces[num_cameras + n]) for n in range(num_cameras)]


def static_points(
    recon: Reconstruction, t: int, stream: Stream, settings: CloudSettings, max_dynamic: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid, confident points of timestep ``t`` whose dynamic probability is ``< max_dynamic`` (no budget):
    positions ``float32 [K, 3]``, colours ``uint8 [K, 3]``, confidences ``float32 [K]``."""
    motion: Motion = "static" if recon.has("dynamic_mask") else "all"
    keep = pixel_filter(recon, t, stream, None, settings.conf_percentile, motion, max_dynamic, settings.min_views).keep
    points, conf = recon.stream(t, stream)
    return (
        np.asarray(points)[keep].astype(np.float32),
        np.asarray(recon.get("images", t))[keep],
        np.asarray(conf)[keep].astype(np.float32),
    )


@dataclass
class CameraPose:
    """A camera in the viewer: world-from-camera rotation (quaternion ``wxyz``) and position, and the frustum
    shape from the predicted intrinsics: vertical FoV (radians) and aspect ``tan(fov_x / 2) / tan(fov_y / 2)``."""

    wxyz: np.ndarray
    position: np.ndarray
    fov_y: float
    aspect: float


def rotation_to_wxyz(rotation: np.ndarray) -> np.ndarray:
    """A 3x3 rotation matrix -> unit quaternion ``(w, x, y, z)`` (viser's order)."""
    x, y, z, w = matrix_to_quaternion_xyzw(rotation)
    return np.array([w, x, y, z])


def camera_poses(extrinsics: np.ndarray, intrinsics: np.ndarray, image_hw: tuple[int, int]) -> list[CameraPose]:
    """Poses of the ``N`` cameras of one timestep from OpenCV camera-from-world ``[N, 3, 4]`` and ``[N, 3, 3]``."""
    height, width = image_hw
    poses = []
    for ext, k in zip(np.asarray(extrinsics, np.float64), np.asarray(intrinsics, np.float64), strict=True):
        rotation = ext[:, :3].T  # world-from-camera
        position = camera_centers(ext)
        fx, fy = abs(k[0, 0]) or 1.0, abs(k[1, 1]) or 1.0
        half_h, half_w = height / (2 * fy), width / (2 * fx)
        poses.append(CameraPose(rotation_to_wxyz(rotation), position, float(2 * np.arctan(half_h)), half_w / half_h))
    return poses


def overview_camera(pose: CameraPose, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A view of the scene from a little behind and above camera ``pose``: ``(position, look_at, up)`` in world
    coordinates (OpenCV world, so "up" is the camera's -y), ``scale`` the scene scale (:func:`scene_scale`)."""
    import viser.transforms as vtf

    rotation = vtf.SO3(np.asarray(pose.wxyz)).as_matrix()
    position = pose.position + rotation @ np.array([0.0, -0.3, -0.6]) * scale
    look_at = pose.position + rotation @ np.array([0.0, 0.0, 1.0]) * scale
    return position, look_at, -rotation[:, 1]


def scene_scale(recon: Reconstruction, t: int = 0) -> float:
    """A length that sizes frustums and voxels: :func:`~app.reconstruct.error_map.depth_scale` of timestep ``t``."""
    return depth_scale(np.asarray(recon.get("depth", t)))


def thumbnail(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` shrunk (area interpolation) so its longer side is at most ``max_side``."""
    import cv2

    height, width = image.shape[:2]
    factor = max_side / max(height, width)
    if factor >= 1:
        return np.ascontiguousarray(image)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)
