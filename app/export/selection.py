"""What an export takes from a Reconstruction: the :class:`Selection` and the flat :class:`PointSet` it yields.

Every export format starts here. :func:`select_points` is pure (it only reads the reconstruction) and turns a
(Reconstruction, Selection) pair into one flat point set; :func:`select_frames` lists the (timestep, camera)
images the same selection covers, and :func:`pixel_keep_mask` gives the per-pixel filter of one frame (the
meshes and the NPZ use it on the dense maps).

Filters, applied per timestep in this order:

1. **valid**: finite point and confidence, positive depth;
2. **confidence percentile** ``P``: keep pixels whose confidence is ``>=`` the ``P``-th percentile of the valid
   pixels of the selected cameras at that timestep (``P = 0`` keeps everything);
3. **motion**: ``static`` keeps pixels whose dynamic probability is ``<`` :data:`DYNAMIC_THRESHOLD` (0.5 by
   default), ``dynamic`` keeps those ``>=`` it (needs a ``dynamic_mask`` in the reconstruction);
4. **views** ``min_views`` ``K`` (0 = off): keep pixels whose 3D point at least ``K`` other cameras of the same
   instant see at a consistent depth (:meth:`Reconstruction.views_agree`, :mod:`vggt_t_mv.agreement`); pixels no
   other camera sees cannot be checked and are kept (nothing contradicts them);
5. **voxel** (points only): one point per voxel of edge ``voxel`` per timestep, the most confident one (its
   colour, confidence and pixel are kept exactly, so a COLMAP observation stays exact).

The ``geo`` stream reads ``world_points`` / ``world_points_conf``, the ``pose`` stream
``world_points_from_depth`` / ``depth_conf`` (see :data:`app.reconstruct.store.STREAMS`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.common.vocab import MOTIONS, Motion, Stream
from app.reconstruct.store import STREAMS, Reconstruction
from vggt_t_mv.agreement import passes_min_views
from vggt_t_mv.npgeometry import camera_centers

DYNAMIC_THRESHOLD = 0.5  # a pixel is dynamic when its dynamic probability is >= this
# THE default confidence percentile of every export and of the viewer: the least confident 10 % of a timestep's valid
# pixels go (mostly sky, edges and reflections); the same settings then give the same points everywhere.
DEFAULT_CONF_PERCENTILE = 10.0


class ExportError(ValueError):
    """An export that cannot be done as asked (bad argument, empty selection, existing output); says why."""


@dataclass(frozen=True)
class Selection:
    """Which part of a reconstruction an export takes.

    ``timesteps``: indices (``None`` = every complete timestep); ``cameras``: camera indices (``None`` = all);
    ``stream``: ``"geo"`` or ``"pose"``; ``conf_percentile`` in ``[0, 100)`` (default
    :data:`DEFAULT_CONF_PERCENTILE`, as the viewer; 0 keeps every valid pixel); ``motion``: ``"all"``,
    ``"static"`` or ``"dynamic"`` with ``dynamic_threshold``; ``voxel``: voxel edge in scene units (0 = off).
    """

    timesteps: tuple[int, ...] | None = None
    cameras: tuple[int, ...] | None = None
    stream: Stream = "geo"
    conf_percentile: float = DEFAULT_CONF_PERCENTILE
    motion: Motion = "all"
    dynamic_threshold: float = DYNAMIC_THRESHOLD
    voxel: float = 0.0
    min_views: int = 0

    def __post_init__(self) -> None:
        if self.stream not in STREAMS:
            raise ExportError(f"stream must be one of {sorted(STREAMS)}, got {self.stream!r}")
        if not 0.0 <= self.conf_percentile < 100.0:
            raise ExportError(f"conf_percentile must be in [0, 100), got {self.conf_percentile}")
        if self.motion not in MOTIONS:
            raise ExportError(f"motion must be one of {MOTIONS}, got {self.motion!r}")
        if not 0.0 <= self.dynamic_threshold <= 1.0:
            raise ExportError(f"dynamic_threshold must be in [0, 1], got {self.dynamic_threshold}")
        if not 0.0 <= self.voxel < np.inf:
            raise ExportError(f"--voxel must be a finite size >= 0 (0: off), got {self.voxel}")
        if not isinstance(self.min_views, int) or self.min_views < 0:
            raise ExportError(f"--min-views must be a whole number >= 0 (0: off), got {self.min_views!r}")

    def resolve_timesteps(self, recon: Reconstruction) -> list[int]:
        """The selected timesteps, checked against the reconstruction (sorted, unique)."""
        available = recon.num_timesteps
        if available == 0:
            raise ExportError(f"{recon.root} has no complete timestep to export")
        if self.timesteps is None:
            return list(range(available))
        if len(self.timesteps) == 0:
            raise ExportError("the timestep selection is empty")
        bad = [t for t in self.timesteps if not 0 <= t < available]
        if bad:
            raise ExportError(f"timestep(s) {bad} out of range: {recon.root} has timesteps 0..{available - 1}")
        return sorted(set(self.timesteps))

    def resolve_cameras(self, recon: Reconstruction) -> list[int]:
        """The selected camera indices, checked against the reconstruction (sorted, unique)."""
        if self.cameras is None:
            return list(range(recon.num_cameras))
        if len(self.cameras) == 0:
            raise ExportError("the camera selection is empty")
        bad = [n for n in self.cameras if not 0 <= n < recon.num_cameras]
        if bad:
            raise ExportError(f"camera index(es) {bad} out of range: cameras are {recon.camera_names}")
        return sorted(set(self.cameras))


@dataclass
class PointSet:
    """A flat, filtered point set. ``M`` points; coordinates in the reconstruction's world frame
    (OpenCV axes of camera 0 at timestep 0).

    ``xyz`` float32 ``[M, 3]``; ``rgb`` uint8 ``[M, 3]``; ``conf`` float32 ``[M]`` (the stream's confidence);
    ``dynamic`` float32 ``[M]`` probability or ``None`` when the reconstruction has no dynamic mask;
    ``timestep``, ``camera`` int32 ``[M]``; ``pixel`` int32 ``[M, 2]`` the source pixel as (column u, row v).
    """

    xyz: np.ndarray
    rgb: np.ndarray
    conf: np.ndarray
    dynamic: np.ndarray | None
    timestep: np.ndarray
    camera: np.ndarray
    pixel: np.ndarray

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def subset(self, index: np.ndarray) -> PointSet:
        """The points at ``index`` (boolean mask or integer indices)."""
        return PointSet(
            self.xyz[index],
            self.rgb[index],
            self.conf[index],
            None if self.dynamic is None else self.dynamic[index],
            self.timestep[index],
            self.camera[index],
            self.pixel[index],
        )

    @staticmethod
    def concatenate(parts: list[PointSet]) -> PointSet:
        has_dynamic = all(p.dynamic is not None for p in parts)
        return PointSet(
            np.concatenate([p.xyz for p in parts]),
            np.concatenate([p.rgb for p in parts]),
            np.concatenate([p.conf for p in parts]),
            np.concatenate([p.dynamic for p in parts]) if has_dynamic else None,
            np.concatenate([p.timestep for p in parts]),
            np.concatenate([p.camera for p in parts]),
            np.concatenate([p.pixel for p in parts]),
        )


@dataclass
class Frames:
    """The selected images in (timestep, camera) order; ``F`` frames.

    ``timestep``, ``camera`` int64 ``[F]``; ``extrinsics`` float64 ``[F, 3, 4]`` OpenCV camera-from-world;
    ``intrinsics`` float64 ``[F, 3, 3]`` in model pixels (pixel (u, v) = integer column / row, no +0.5).
    """

    timestep: np.ndarray
    camera: np.ndarray
    extrinsics: np.ndarray
    intrinsics: np.ndarray

    def __len__(self) -> int:
        return int(self.timestep.shape[0])

    @property
    def centers(self) -> np.ndarray:
        """Camera centres ``[F, 3]`` in world coordinates (``-R^T t``)."""
        return camera_centers(self.extrinsics)


def parse_timesteps(spec: str, num_timesteps: int) -> tuple[int, ...] | None:
    """Parse a timestep spec against a reconstruction of ``num_timesteps``: ``"5"``, ``"0:10"`` (end excluded),
    ``"0:10:2"``, ``"3:"`` (to the end), ``"1,4,7"`` or a comma list mixing them; ``""``, ``"all"`` or ``":"``
    select every timestep (``None``). Range checks happen in :meth:`Selection.resolve_timesteps`."""
    spec = spec.strip()
    if spec in ("", "all", ":"):
        return None
    result: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if re.fullmatch(r"\d+", part):
            result.append(int(part))
            continue
        match = re.fullmatch(r"(\d*):(\d*)(?::(\d+))?", part)
        if not match:
            raise ExportError(f"bad timestep spec {part!r}: use 5, 0:10, 0:10:2, 3: or a comma list of them")
        start = int(match.group(1) or 0)
        end = int(match.group(2)) if match.group(2) else num_timesteps
        step = int(match.group(3) or 1)
        if step == 0:
            raise ExportError(f"bad timestep spec {part!r}: the step must be positive")
        if end <= start:
            raise ExportError(f"bad timestep spec {part!r}: empty range (end excluded; {num_timesteps} timesteps)")
        result.extend(range(start, end, step))
    return tuple(result)


def select_frames(recon: Reconstruction, selection: Selection) -> Frames:
    """The (timestep, camera) frames of ``selection`` with their cameras, in (t, n) order."""
    timesteps = selection.resolve_timesteps(recon)
    cameras = selection.resolve_cameras(recon)
    extrinsics = np.stack([np.asarray(recon.get("extrinsics", t))[cameras] for t in timesteps])
    intrinsics = np.stack([np.asarray(recon.get("intrinsics", t))[cameras] for t in timesteps])
    grid_t, grid_n = np.meshgrid(timesteps, cameras, indexing="ij")
    return Frames(
        grid_t.reshape(-1).astype(np.int64),
        grid_n.reshape(-1).astype(np.int64),
        extrinsics.reshape(-1, 3, 4).astype(np.float64),
        intrinsics.reshape(-1, 3, 3).astype(np.float64),
    )


def _check_motion_filter(recon: Reconstruction, selection: Selection) -> None:
    if selection.motion != "all" and not recon.has("dynamic_mask"):
        raise ExportError(
            f"--{selection.motion}-only needs a dynamic mask, but {recon.root} has none "
            "(the model that made it did not predict one)"
        )


@dataclass
class PixelMask:
    """The pixel filter of one timestep: ``valid`` (step 1) and ``keep`` (steps 1-4), bool ``[len(cameras), H, W]``."""

    valid: np.ndarray
    keep: np.ndarray


def pixel_filter(
    recon: Reconstruction,
    t: int,
    stream: Stream = "geo",
    cameras: list[int] | None = None,
    conf_percentile: float = 0.0,
    motion: Motion = "all",
    dynamic_threshold: float = DYNAMIC_THRESHOLD,
    min_views: int = 0,
) -> PixelMask:
    """THE pixel filter (steps 1-4 of the module docstring) of timestep ``t``, shared by every export, the evaluation
    and the viewer.

    ``cameras``: indices (``None``: all), the percentile is taken over their valid pixels together; ``motion``
    ``static`` / ``dynamic`` needs a ``dynamic_mask`` (a pixel is dynamic when its probability is ``>=``
    ``dynamic_threshold``); ``min_views``: agreeing other cameras required (the agreement is always that of the
    whole rig, whichever ``cameras`` are selected)."""
    cameras = list(range(recon.num_cameras)) if cameras is None else list(cameras)
    points, conf = recon.stream(t, stream)
    points, conf = np.asarray(points[cameras]), np.asarray(conf[cameras])
    depth = np.asarray(recon.get("depth", t)[cameras])
    valid = np.isfinite(points).all(-1) & np.isfinite(conf) & (depth > 0)
    keep = valid.copy()
    if conf_percentile > 0 and keep.any():
        keep &= conf >= np.percentile(conf[valid], conf_percentile)
    if motion != "all":
        is_dynamic = np.asarray(recon.get("dynamic_mask", t)[cameras], dtype=np.float32) >= dynamic_threshold
        keep &= is_dynamic if motion == "dynamic" else ~is_dynamic
    if min_views > 0:
        keep &= passes_min_views(np.asarray(recon.views_agree(t))[cameras], min_views)
    return PixelMask(valid, keep)


def pixel_keep_mask(recon: Reconstruction, selection: Selection, t: int, cameras: list[int]) -> np.ndarray:
    """:func:`pixel_filter` of ``selection`` at timestep ``t``: bool ``[len(cameras), H, W]``."""
    _check_motion_filter(recon, selection)
    return pixel_filter(
        recon,
        t,
        selection.stream,
        cameras,
        selection.conf_percentile,
        selection.motion,
        selection.dynamic_threshold,
        selection.min_views,
    ).keep


def keep_function(recon: Reconstruction, selection: Selection) -> Callable[[int], np.ndarray]:
    """``t -> pixel_keep_mask(recon, selection, t, selected cameras)``: the filter of ``selection`` for code that
    walks timesteps itself (the evaluation)."""
    cameras = selection.resolve_cameras(recon)
    _check_motion_filter(recon, selection)
    return lambda t: pixel_keep_mask(recon, selection, t, cameras)


def _timestep_points(recon: Reconstruction, selection: Selection, t: int, cameras: list[int]) -> PointSet:
    keep = pixel_keep_mask(recon, selection, t, cameras)
    points, conf = recon.stream(t, selection.stream)
    camera_index, rows, cols = np.nonzero(keep)
    source = np.asarray(cameras)[camera_index]
    dynamic = None
    if recon.has("dynamic_mask"):
        dynamic = np.asarray(recon.get("dynamic_mask", t), dtype=np.float32)[source, rows, cols]
    return PointSet(
        xyz=np.asarray(points, dtype=np.float32)[source, rows, cols],
        rgb=np.asarray(recon.get("images", t))[source, rows, cols],
        conf=np.asarray(conf, dtype=np.float32)[source, rows, cols],
        dynamic=dynamic,
        timestep=np.full(len(rows), t, dtype=np.int32),
        camera=source.astype(np.int32),
        pixel=np.stack([cols, rows], axis=-1).astype(np.int32),
    )


VOXEL_GRID_LIMIT = 2.0**52  # voxel coordinates beyond this are not exact in float64 (and overflow int64 later)


def voxel_keep_index(
    xyz: np.ndarray, voxel: float, score: np.ndarray | None = None, group: np.ndarray | None = None
) -> np.ndarray:
    """THE voxel downsampler: sorted indices of one point per voxel of edge ``voxel`` (and per ``group`` value, e.g.
    the timestep), the one with the highest ``score`` (ties and ``score=None``: the first). ``xyz [M, 3]``; the
    kept points are originals (colour, confidence, pixel exact), not averages. Raises :class:`ExportError` when
    the voxel is too small for the coordinates (the integer grid would wrap around)."""
    if voxel <= 0 or len(xyz) == 0:
        return np.arange(len(xyz))
    order = np.arange(len(xyz)) if score is None else np.argsort(-np.asarray(score), kind="stable")
    cells = np.floor(np.asarray(xyz)[order].astype(np.float64) / voxel)
    reach = float(np.abs(cells).max()) if np.isfinite(cells).all() else np.inf
    if reach > VOXEL_GRID_LIMIT:  # the int64 grid would wrap around and merge the whole cloud into a few cells
        extent = float(np.abs(xyz).max())
        raise ExportError(
            f"--voxel {voxel:g} is too small for this point cloud: coordinates reach {extent:.3g}, i.e. "
            f"{reach:.3g} voxels from the origin, more than the voxel grid holds (2^52); use --voxel "
            f">= {extent / VOXEL_GRID_LIMIT:.3g} (or 0 to keep every point)"
        )
    keys = cells.astype(np.int64)
    if group is not None:
        keys = np.concatenate([np.asarray(group)[order, None].astype(np.int64), keys], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    return np.sort(order[first])


def voxel_downsample(points: PointSet, voxel: float) -> PointSet:
    """One point per (timestep, voxel of edge ``voxel``): the most confident; the original order is kept."""
    if voxel <= 0 or len(points) == 0:
        return points
    return points.subset(voxel_keep_index(points.xyz, voxel, points.conf, points.timestep))


def select_points(recon: Reconstruction, selection: Selection) -> PointSet:
    """The flat point set of ``selection`` (see the module docstring for the filters).

    Raises :class:`ExportError` when the selection keeps no point (never returns an empty set).
    """
    timesteps = selection.resolve_timesteps(recon)
    cameras = selection.resolve_cameras(recon)
    _check_motion_filter(recon, selection)
    parts = [_timestep_points(recon, selection, t, cameras) for t in timesteps]
    points = voxel_downsample(PointSet.concatenate(parts), selection.voxel)
    if len(points) == 0:
        raise ExportError(
            f"the selection keeps no point (timesteps {timesteps[0]}..{timesteps[-1]}, stream {selection.stream}, "
            f"conf percentile {selection.conf_percentile}, motion {selection.motion}, min views "
            f"{selection.min_views}); loosen the filters"
        )
    return points


def parse_cameras(spec: str, camera_names: list[str]) -> tuple[int, ...] | None:
    """``"cam0,cam2"`` or ``"0,2"`` (names or indices) -> camera indices; ``""`` = all (``None``)."""
    if not spec.strip():
        return None
    indices = []
    for part in (p.strip() for p in spec.split(",")):
        if part in camera_names:
            indices.append(camera_names.index(part))
        elif part.isdigit() and int(part) < len(camera_names):
            indices.append(int(part))
        else:
            raise ExportError(f"unknown camera {part!r}; cameras are {camera_names} (names or indices)")
    return tuple(indices)
