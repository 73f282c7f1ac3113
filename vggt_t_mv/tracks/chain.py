"""Queries, one window's tracking (seed, track in every camera, lift, fuse) and windows chained by re-seeding.

A window covers timesteps ``[b, e)``; windows come in order and overlap (``b`` of the next one is before ``e`` of
this one). A query enters the window holding its timestep; one already tracked is re-seeded from its fused 3D
position at the last timestep of the overlap where it was visible, projected into every camera (visible = in front,
inside the image, depth-consistent), and tracked from there in every camera that sees it. Each camera's 2D track is
lifted with that frame's depth and camera, and the cameras' 3D estimates are fused per timestep (weights visibility
x confidence, robust to one wrong view). The timesteps an earlier window already gave are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol, get_args

import numpy as np

from vggt_t_mv.tracks.fuse import fuse_views
from vggt_t_mv.tracks.lift import lift_pixels, sample_depth
from vggt_t_mv.tracks.visibility import visible_in_cameras

QueryKind = Literal["3d", "2d"]
QUERY_KINDS: tuple[QueryKind, ...] = get_args(QueryKind)
QUERY_COLUMNS: dict[str, tuple[str, str, str, str]] = {
    "3d": ("t", "x", "y", "z"),  # MVTracker's query_points.npy: a timestep and a point in the reconstruction's frame
    "2d": ("t", "camera", "u", "v"),  # a pixel (u = column, v = row) of one camera at one timestep
}


@dataclass(frozen=True)
class Queries:
    """``values [Q, 4]`` float64: per row the columns :data:`QUERY_COLUMNS` [``kind``] (timestep and camera are
    whole numbers)."""

    values: np.ndarray
    kind: QueryKind

    def __post_init__(self) -> None:
        values = np.asarray(self.values, np.float64)
        if values.ndim != 2 or values.shape[1] != 4:
            raise ValueError(
                f"queries must have shape [Q, 4] ({', '.join(QUERY_COLUMNS[self.kind])}), got {values.shape}"
            )
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def times(self) -> np.ndarray:
        """``[Q]`` int64 timestep of each query."""
        return self.values[:, 0].astype(np.int64)


@dataclass(frozen=True)
class TrackConfig:
    """Thresholds of tracking (all scale-free)."""

    depth_tolerance: float = 0.05  # relative depth difference still "the same surface" (visibility test)
    min_visibility: float = 0.5  # a camera's 2D track counts at a frame when its visibility is at least this
    outlier_scale: float = 3.0  # fusion keeps views within this many weighted-median residuals ...
    fusion_tolerance: float = 0.01  # ... or within this fraction of the point's depth


class View2D(NamedTuple):
    """One camera's 2D tracks from frame ``start`` of a window on: ``pixels [S, M, 2]`` (row 0 = the queries),
    ``visibility [S, M]`` and ``confidence [S, M]`` in [0, 1]; ``S = Tw - start``."""

    pixels: np.ndarray
    visibility: np.ndarray
    confidence: np.ndarray


class Tracker2D(Protocol):
    """A source of 2D tracks in one window (the model's track head, or an oracle in tests)."""

    def track(self, camera: int, start: int, pixels: np.ndarray) -> View2D:
        """Track ``pixels [M, 2]`` of ``camera`` at window frame ``start`` through frames ``start .. Tw - 1``."""
        ...


# (window frame, camera, pixels [M, 2]) -> (depth [M], valid [M]): the depth that frame sees at sub-pixel positions
DepthSampler = Callable[[int, int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def map_depth_sampler(depth: np.ndarray) -> DepthSampler:
    """The sampler of a window's depth maps ``[Tw, N, H, W]`` (bilinear: :func:`vggt_t_mv.tracks.lift.sample_depth`)."""

    def depth_at(frame: int, camera: int, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return sample_depth(depth[frame, camera], pixels)

    return depth_at


@dataclass
class WindowGeometry:
    """One window's cameras ``extrinsics [Tw, N, 3, 4]`` (camera-from-world, the reconstruction's frame),
    ``intrinsics [Tw, N, 3, 3]``, image size and depth, for timesteps ``span = [b, e)``."""

    span: tuple[int, int]
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    image_hw: tuple[int, int]
    depth_at: DepthSampler


@dataclass
class Tracks:
    """Tracks of Q queries over T timesteps and N cameras.

    ``points [Q, T, 3]`` fused 3D position (float64; where no camera sees the point, its last fused position; NaN
    before the query's timestep and until first seen), ``visible [Q, T]`` (some camera sees it), ``pixels
    [Q, T, N, 2]`` each camera's 2D track (NaN where that camera did not track it), ``view_visibility [Q, T, N]``
    the tracker's visibility there (0 where not tracked); ``query_pixels [Q, N, 2]`` each query projected into every
    camera at its timestep (NaN behind the camera; a 2D query's own camera: its pixel) and ``query_visible [Q, N]``
    the cameras that passed the visibility test there (those that track it)."""

    points: np.ndarray
    visible: np.ndarray
    pixels: np.ndarray
    view_visibility: np.ndarray
    query_pixels: np.ndarray
    query_visible: np.ndarray

    @classmethod
    def empty(cls, num_queries: int, num_timesteps: int, num_cameras: int) -> Tracks:
        return cls(
            np.full((num_queries, num_timesteps, 3), np.nan),
            np.zeros((num_queries, num_timesteps), bool),
            np.full((num_queries, num_timesteps, num_cameras, 2), np.nan),
            np.zeros((num_queries, num_timesteps, num_cameras)),
            np.full((num_queries, num_cameras, 2), np.nan),
            np.zeros((num_queries, num_cameras), bool),
        )


@dataclass
class _Seed:
    """Where each query starts in a window: ``frame [K]`` (window frame), ``write_from [K]`` (first timestep the
    window writes), ``rows [K]`` (query index), and per camera ``pixels [K, N, 2]`` / ``visible [K, N]``."""

    rows: np.ndarray
    frame: np.ndarray
    write_from: np.ndarray
    pixels: np.ndarray
    visible: np.ndarray


def _seed_window(queries: Queries, tracks: Tracks, filled: int, window: WindowGeometry, config: TrackConfig) -> _Seed:
    """Where each query starts in ``window`` (timesteps before ``filled`` are already tracked) and which cameras
    see it there."""
    begin, end = window.span
    times = queries.times
    num_cameras = window.extrinsics.shape[1]
    rows: list[int] = []
    frames: list[int] = []
    write_from: list[int] = []
    positions: list[np.ndarray | None] = []  # 3D start, None for a 2D query (lifted below)
    for q in range(len(queries)):
        if times[q] >= end:
            continue
        if times[q] >= filled:  # the query's own timestep is new in this window
            rows.append(q)
            frames.append(int(times[q]) - begin)
            write_from.append(int(times[q]))
            positions.append(queries.values[q, 1:] if queries.kind == "3d" else None)
            continue
        if filled >= end:
            continue
        overlap = np.arange(max(begin, times[q]), filled)
        seen = overlap[tracks.visible[q, overlap]]
        start = int(seen[-1]) if len(seen) else int(overlap[0])
        if not np.isfinite(tracks.points[q, start]).all():
            continue
        rows.append(q)
        frames.append(start - begin)
        write_from.append(filled)
        positions.append(tracks.points[q, start])
    pixels = np.full((len(rows), num_cameras, 2), np.nan)
    visible = np.zeros((len(rows), num_cameras), bool)
    for k, (q, frame, position) in enumerate(zip(rows, frames, positions, strict=True)):
        others = np.ones(num_cameras, bool)
        if position is None:  # a 2D query: seen by its camera; lifted with the depth there, for the others
            camera, pixel = int(queries.values[q, 1]), queries.values[q, 2:]
            pixels[k, camera], visible[k, camera], others[camera] = pixel, True, False
            depth, valid = window.depth_at(frame, camera, pixel[None])
            if not valid[0]:
                continue  # no depth under the pixel: tracked in its own camera only
            extrinsics, intrinsics = window.extrinsics[frame, camera], window.intrinsics[frame, camera]
            position = lift_pixels(pixel[None], depth, extrinsics, intrinsics)[0]

        def depth_at(camera: int, at: np.ndarray, frame: int = frame) -> tuple[np.ndarray, np.ndarray]:
            return window.depth_at(frame, camera, at)

        projected, seen_by = visible_in_cameras(
            position[None],
            window.extrinsics[frame],
            window.intrinsics[frame],
            window.image_hw,
            depth_at,
            config.depth_tolerance,
        )
        pixels[k, others] = projected[others, 0]
        visible[k, others] = seen_by[others, 0]
    return _Seed(np.array(rows, np.int64), np.array(frames, np.int64), np.array(write_from, np.int64), pixels, visible)


def _track_window(
    queries: Queries, tracks: Tracks, filled: int, window: WindowGeometry, tracker: Tracker2D, config: TrackConfig
) -> None:
    """Track the queries through ``window`` and write the timesteps from ``filled`` (and each new query's own) on."""
    begin, end = window.span
    length, num_cameras = end - begin, window.extrinsics.shape[1]
    seed = _seed_window(queries, tracks, filled, window, config)
    count = len(seed.rows)
    if count == 0:
        return
    new = queries.times[seed.rows] == seed.write_from  # seeded at their own timestep, from the query itself
    tracks.query_pixels[seed.rows[new]] = seed.pixels[new]
    tracks.query_visible[seed.rows[new]] = seed.visible[new]
    pixels = np.full((count, length, num_cameras, 2), np.nan)
    visibility = np.zeros((count, length, num_cameras))
    confidence = np.zeros((count, length, num_cameras))
    for camera in range(num_cameras):
        for frame in np.unique(seed.frame[seed.visible[:, camera]]):
            members = np.flatnonzero(seed.visible[:, camera] & (seed.frame == frame))
            view = tracker.track(camera, int(frame), seed.pixels[members, camera])
            pixels[members, frame:, camera] = np.swapaxes(view.pixels, 0, 1)
            visibility[members, frame:, camera] = np.swapaxes(view.visibility, 0, 1)
            confidence[members, frame:, camera] = np.swapaxes(view.confidence, 0, 1)
            # at its seed frame a point is where it was put, in the cameras that passed the visibility test
            visibility[members, frame, camera] = confidence[members, frame, camera] = 1.0
    for frame in range(length):
        t = begin + frame
        active = np.flatnonzero(seed.write_from <= t)
        if len(active) == 0:
            continue
        lifted = np.full((num_cameras, len(active), 3), np.nan)
        weights = np.zeros((num_cameras, len(active)))
        depths = np.full((num_cameras, len(active)), np.nan)
        for camera in range(num_cameras):
            tracked = np.flatnonzero(
                np.isfinite(pixels[active, frame, camera]).all(-1)
                & (visibility[active, frame, camera] >= config.min_visibility)
            )
            if len(tracked) == 0:
                continue
            at = pixels[active[tracked], frame, camera]
            depth, valid = window.depth_at(frame, camera, at)
            keep = tracked[valid]
            lifted[camera, keep] = lift_pixels(
                at[valid], depth[valid], window.extrinsics[frame, camera], window.intrinsics[frame, camera]
            )
            depths[camera, keep] = depth[valid]
            weights[camera, keep] = visibility[active[keep], frame, camera] * confidence[active[keep], frame, camera]
        seen_by = (weights > 0).any(axis=0)
        tolerance = np.zeros(len(active))
        tolerance[seen_by] = config.fusion_tolerance * np.nanmedian(
            np.where(weights > 0, depths, np.nan)[:, seen_by], axis=0
        )
        fused, _ = fuse_views(lifted, weights, tolerance, config.outlier_scale)
        rows = seed.rows[active]
        seen = np.isfinite(fused).all(-1) & (weights.sum(0) > 0)
        carried = tracks.points[rows, t - 1] if t > 0 else np.full((len(rows), 3), np.nan)
        new_query = queries.times[rows] == t
        carried = np.where(new_query[:, None], np.nan, carried)
        tracks.points[rows, t] = np.where(seen[:, None], fused, carried)
        tracks.visible[rows, t] = seen
        tracks.pixels[rows, t] = pixels[active, frame]
        tracks.view_visibility[rows, t] = visibility[active, frame]


def track_windows(
    queries: Queries,
    windows: Iterable[tuple[WindowGeometry, Tracker2D]],
    num_timesteps: int,
    num_cameras: int,
    config: TrackConfig | None = None,
) -> Tracks:
    """Track ``queries`` through ``windows`` (in order, each overlapping or following the previous one) ->
    :class:`Tracks` over ``num_timesteps`` timesteps and ``num_cameras`` cameras."""
    config = config or TrackConfig()
    tracks = Tracks.empty(len(queries), num_timesteps, num_cameras)
    filled = 0
    for window, tracker in windows:
        if window.span[0] > filled:
            raise ValueError(f"windows leave timesteps {filled}..{window.span[0] - 1} uncovered")
        _track_window(queries, tracks, filled, window, tracker, config)
        filled = max(filled, window.span[1])
    return tracks
