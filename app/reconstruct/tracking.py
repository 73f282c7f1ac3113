"""4D tracks of a finished reconstruction: for every planned window, the model's track head on its ``T x N`` stored
images (one more trunk pass per window), lifted with the stored depth and cameras of its timesteps (in the
reconstruction's frame: the calibration's when calibrated) and chained across windows
(:func:`vggt_t_mv.tracks.track_windows`); stored under ``RECON/tracks`` (:mod:`app.reconstruct.track_store`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from app.reconstruct.store import Reconstruction
from app.reconstruct.track_queries import QuerySource, TrackQueryError, auto_queries
from app.reconstruct.track_store import write_tracks
from vggt_t_mv.model import VGGTTMV
from vggt_t_mv.npgeometry import project_points
from vggt_t_mv.tracks import Queries, TrackConfig, Tracker2D, Tracks, WindowGeometry, map_depth_sampler, track_windows
from vggt_t_mv.tracks.head import HeadTracker

AUTO_GRID_CELLS = 16  # the automatic grid: about this many points along the longer image side


@dataclass
class TrackResult:
    """What :func:`track_reconstruction` made: ``tracks`` of ``queries``, ``seconds`` in all and per window
    (``window_seconds``: trunk + track features, then the tracker)."""

    tracks: Tracks
    queries: Queries
    seconds: float
    window_seconds: list[float]


def track_summary(result: TrackResult) -> str:
    """One line for the console: how many tracks, how often seen, what they cost."""
    points, visible = result.tracks.points, result.tracks.visible
    started = np.arange(points.shape[1])[None] >= result.queries.times[:, None]
    seen = 100.0 * visible[started].mean() if started.any() else 0.0
    per_window = result.seconds / max(len(result.window_seconds), 1)
    return (
        f"tracks: {points.shape[0]} {result.queries.kind.upper()} queries x {points.shape[1]} timesteps "
        f"(points {list(points.shape)}), visible {seen:.0f} % of the time, {result.seconds:.1f} s "
        f"({per_window:.2f} s per window); in tracks/ of the reconstruction"
    )


def reconstruction_queries(recon: Reconstruction, source: QuerySource) -> Queries:
    """The queries of ``source``; the automatic grid is made from the first timestep's stored dynamic mask and
    depth (every pixel with depth when the model predicts no mask)."""
    if source.queries is not None:
        return source.queries
    depth = np.asarray(recon.get("depth", 0))
    dynamic = np.asarray(recon.get("dynamic_mask", 0)) >= 0.5 if recon.has("dynamic_mask") else None
    height, width = recon.image_hw
    return auto_queries(dynamic, np.isfinite(depth) & (depth > 0), max(1, max(height, width) // AUTO_GRID_CELLS))


def check_queries_in_view(recon: Reconstruction, queries: Queries, path: Path | None) -> None:
    """Refuse 3D queries that no camera has in front of it and inside its image at the query's timestep."""
    if queries.kind != "3d":
        return
    height, width = recon.image_hw
    outside = []
    for q, (t, *point) in enumerate(queries.values):
        extrinsics, intrinsics = recon.get("extrinsics", int(t)), recon.get("intrinsics", int(t))
        pixels, depth = project_points(np.array([point]), extrinsics, intrinsics)  # [N, 1, 2], [N, 1]
        u, v = pixels[:, 0, 0], pixels[:, 0, 1]
        with np.errstate(invalid="ignore"):
            inside = (depth[:, 0] > 0) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
        if not inside.any():
            outside.append(q)
    if outside:
        frame = recon.record.convention
        raise TrackQueryError(
            f"--track-queries {path or 'auto'}: {len(outside)} of {len(queries)} queries (rows {outside[:5]}) lie "
            f"outside every camera at their timestep: 3D points must be in the reconstruction's frame ({frame}); "
            "with a calibration, its world frame (--cameras calibrated). Fix the points or drop those rows"
        )


def _windows(
    model: VGGTTMV, recon: Reconstruction, device: torch.device, dtype: torch.dtype | None, seconds: list[float]
) -> Iterator[tuple[WindowGeometry, Tracker2D]]:
    for begin, end in recon.spans:  # the planned windows (each timestep read from the window that stores it)
        if end > recon.num_timesteps:
            break
        tic = time.perf_counter()
        times = range(begin, end)
        arrays = {name: recon.load(name, times) for name in ("images", "depth", "extrinsics", "intrinsics")}
        images = torch.from_numpy(np.array(arrays["images"])).to(device)
        images = images.permute(0, 1, 4, 2, 3)[None].float().div_(255.0)  # [1, Tw, N, 3, H, W]
        tracker = HeadTracker(model, images, autocast_dtype=dtype)
        geometry = WindowGeometry(
            (begin, end),
            np.asarray(arrays["extrinsics"], np.float64),
            np.asarray(arrays["intrinsics"], np.float64),
            recon.image_hw,
            map_depth_sampler(np.asarray(arrays["depth"])),
        )
        yield geometry, tracker
        seconds.append(time.perf_counter() - tic)  # resumes after the window was tracked


def track_reconstruction(
    model: VGGTTMV,
    recon: Reconstruction,
    source: QuerySource,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    config: TrackConfig | None = None,
    note: Callable[[str], None] | None = None,
) -> TrackResult:
    """Track ``source``'s queries through ``recon`` with ``model``'s track head and store them in ``recon``."""
    config = config or TrackConfig()
    queries = reconstruction_queries(recon, source)
    check_queries_in_view(recon, queries, source.path)
    if note is not None:
        note(f"tracking {len(queries)} {queries.kind.upper()} queries through {len(recon.spans)} windows")
    model = model.to(device).eval()
    started, window_seconds = time.perf_counter(), list[float]()
    windows = _windows(model, recon, torch.device(device), autocast_dtype, window_seconds)
    tracks = track_windows(queries, windows, recon.num_timesteps, recon.num_cameras, config)
    seconds = time.perf_counter() - started
    info = {
        "source": "auto grid" if source.path is None else str(Path(source.path).resolve()),
        "config": asdict(config),
        "seconds": seconds,
        "window_seconds": window_seconds,
    }
    write_tracks(recon.root, tracks, queries, info)
    return TrackResult(tracks, queries, seconds, window_seconds)
