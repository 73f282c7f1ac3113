"""4D tracks of a finished reconstruction: for every planned window, the model's track head on its ``T x N`` stored
images (one more trunk pass per window, with the run's external ``--masks`` when it has them), lifted with the stored
depth and cameras of its timesteps (in the reconstruction's frame: the calibration's when calibrated) and chained
across windows (:func:`vggt_t_mv.tracks.track_windows`); stored under ``RECON/tracks``
(:mod:`app.reconstruct.track_store`).

Query checks: the file's shape, timesteps and cameras when ``--track-queries`` is read
(:mod:`app.reconstruct.track_queries`); before the run (:func:`check_queries_before_run`), 2D pixels against the
model image and 3D points against the calibration's cameras when the run stores them (``--cameras calibrated``).
With the model's cameras (``--cameras predicted``) they are unknown until the windows are reconstructed: 3D points
are then checked after the windows, before tracking; a refusal there keeps the windows, and the run may be continued
with a fixed file (``--resume``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from app.capture.masks import open_masks
from app.capture.rig import RigCapture
from app.reconstruct.feeding import prepare_masks
from app.reconstruct.pipeline import RunPlan, mask_reader
from app.reconstruct.record import TrackSettings
from app.reconstruct.store import Reconstruction
from app.reconstruct.track_queries import AUTO, QuerySource, TrackQueryError, auto_queries
from app.reconstruct.track_store import write_tracks
from vggt_t_mv.model import VGGTTMV
from vggt_t_mv.npgeometry import project_points
from vggt_t_mv.tracks import Queries, TrackConfig, Tracker2D, Tracks, WindowGeometry, map_depth_sampler, track_windows
from vggt_t_mv.tracks.head import HeadTracker

AUTO_GRID_CELLS = 16  # the automatic grid: about this many points along the longer image side
AUTO_MAX_QUERIES = 256  # ... and at most this many queries, spread over the cameras

# timestep -> the run's external dynamic masks there, float32 [N, H, W] in {0, 1} at the model size
MaskFrames = Callable[[int], np.ndarray]
# timestep -> the cameras there: extrinsics [N, 3, 4] (the reconstruction's frame) and intrinsics [N, 3, 3]
CamerasAt = Callable[[int], tuple[np.ndarray, np.ndarray]]


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


def track_settings(source: QuerySource | None, config: TrackConfig | None = None) -> TrackSettings | None:
    """What the run's record keeps of ``--track-queries`` (:class:`~app.reconstruct.record.TrackSettings`): the file
    and its sha256, or ``auto`` and the grid's parameters; None without tracking."""
    if source is None:
        return None
    config = config or TrackConfig()
    grid = TrackSettings(AUTO, grid_cells=AUTO_GRID_CELLS, max_queries=AUTO_MAX_QUERIES, config=config)
    if source.path is None or source.queries is None:
        return grid
    digest = hashlib.sha256(Path(source.path).read_bytes()).hexdigest()
    queries = source.queries
    return replace(grid, queries=str(Path(source.path).resolve()), sha256=digest, kind=queries.kind, count=len(queries))


def external_mask_frames(masks: Path | str | None, capture: RigCapture, plan: RunPlan) -> MaskFrames | None:
    """The run's ``--masks`` (a folder or ``auto``) as :data:`MaskFrames`, prepared as the run feeds them to the
    model (:func:`app.reconstruct.feeding.prepare_masks`); None without masks."""
    if masks is None:
        return None
    read = mask_reader(open_masks(masks, capture), capture)

    def frames(t: int) -> np.ndarray:
        return prepare_masks(read(t), plan.transforms, plan.undistorters or None)

    return frames


def reconstruction_queries(recon: Reconstruction, source: QuerySource, masks: MaskFrames | None = None) -> Queries:
    """The queries of ``source``; the automatic grid is made on the first timestep's moving pixels that have depth:
    those of the external ``masks`` when the run has them, else of the stored dynamic mask the model predicted
    (every pixel with depth when there is neither)."""
    if source.queries is not None:
        return source.queries
    depth = np.asarray(recon.get("depth", 0))
    if masks is not None:
        dynamic: np.ndarray | None = masks(0) >= 0.5
    elif recon.has("dynamic_mask"):
        dynamic = np.asarray(recon.get("dynamic_mask", 0)) >= 0.5
    else:
        dynamic = None
    height, width = recon.image_hw
    step = max(1, max(height, width) // AUTO_GRID_CELLS)
    return auto_queries(dynamic, np.isfinite(depth) & (depth > 0), step, AUTO_MAX_QUERIES)


def queries_outside(queries: Queries, cameras_at: CamerasAt, image_hw: tuple[int, int]) -> list[int]:
    """Rows of 3D ``queries`` that no camera has in front of it and inside its image at the query's timestep."""
    height, width = image_hw
    outside = []
    for q, (t, *point) in enumerate(queries.values):
        extrinsics, intrinsics = cameras_at(int(t))
        pixels, depth = project_points(np.array([point]), extrinsics, intrinsics)  # [N, 1, 2], [N, 1]
        u, v = pixels[:, 0, 0], pixels[:, 0, 1]
        with np.errstate(invalid="ignore"):
            inside = (depth[:, 0] > 0) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
        if not inside.any():
            outside.append(q)
    return outside


def _refuse_outside(queries: Queries, outside: list[int], path: Path | None, frame: str, when: str) -> None:
    if outside:
        raise TrackQueryError(
            f"--track-queries {path or AUTO}: {len(outside)} of {len(queries)} queries (rows {outside[:5]}) lie "
            f"outside every camera at their timestep ({when}): 3D points must be in the reconstruction's frame "
            f"({frame}); with a calibration, its world frame (--cameras calibrated). Fix the points or drop those rows"
        )


def check_queries_in_view(recon: Reconstruction, queries: Queries, path: Path | None) -> None:
    """Refuse 3D queries that no camera of ``recon`` has in front of it and inside its image at the query's
    timestep (after the windows: the run's cameras were the model's)."""
    if queries.kind != "3d":
        return

    def cameras_at(t: int) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(recon.get("extrinsics", t)), np.asarray(recon.get("intrinsics", t))

    when = (
        "checked after the windows: with --cameras predicted the cameras are the model's, unknown before it runs; "
        "the windows are kept, continue with --resume and the fixed file"
    )
    _refuse_outside(queries, queries_outside(queries, cameras_at, recon.image_hw), path, recon.record.convention, when)


def check_queries_before_run(source: QuerySource | None, capture: RigCapture, plan: RunPlan) -> QuerySource | None:
    """Check what can be checked of ``source``'s queries before the run computes anything: 2D pixels inside the
    model image; 3D points inside some camera at their timestep when the run stores the calibration's cameras
    (``--cameras calibrated``). With the model's cameras the 3D check waits for the windows: the returned source's
    note says so."""
    if source is None or source.queries is None:
        return source
    queries, path = source.queries, source.path
    height, width = plan.image_hw
    if queries.kind == "2d":
        u, v = queries.values[:, 2], queries.values[:, 3]
        wrong = np.flatnonzero((u < 0) | (u > width - 1) | (v < 0) | (v > height - 1))
        if len(wrong):
            raise TrackQueryError(
                f"--track-queries {path}: rows {wrong[:5].tolist()} have pixel (u, v) = "
                f"({u[wrong[0]]:g}, {v[wrong[0]]:g}), outside the model image {width}x{height} (u in 0..{width - 1}, "
                f"v in 0..{height - 1}): 2D queries are in model pixels (the reconstruction's images, after --size "
                "and the crop); fix those rows"
            )
        return source
    calibration = plan.calibration
    if plan.cameras != "calibrated" or calibration is None or not calibration.has_extrinsics:
        note = (
            f"{source.note}; checked against the cameras once the windows are reconstructed (the model predicts "
            "them: --cameras predicted)"
        )
        return replace(source, note=note)
    intrinsics = np.stack(
        [tf.intrinsics_to_target(k) for tf, k in zip(plan.transforms, calibration.intrinsics, strict=True)]
    )

    def cameras_at(t: int) -> tuple[np.ndarray, np.ndarray]:
        return calibration.extrinsics_for(capture.frame_index[t : t + 1])[0], intrinsics

    frame = f"the calibration's world frame, {calibration.path}"
    when = "checked against the calibration's cameras before the run"
    _refuse_outside(queries, queries_outside(queries, cameras_at, plan.image_hw), path, frame, when)
    return source


def _windows(
    model: VGGTTMV,
    recon: Reconstruction,
    device: torch.device,
    dtype: torch.dtype | None,
    seconds: list[float],
    masks: MaskFrames | None,
) -> Iterator[tuple[WindowGeometry, Tracker2D]]:
    for begin, end in recon.spans:  # the planned windows (each timestep read from the window that stores it)
        if end > recon.num_timesteps:
            break
        tic = time.perf_counter()
        times = range(begin, end)
        arrays = {name: recon.load(name, times) for name in ("images", "depth", "extrinsics", "intrinsics")}
        images = torch.from_numpy(np.array(arrays["images"])).to(device)
        images = images.permute(0, 1, 4, 2, 3)[None].float().div_(255.0)  # [1, Tw, N, 3, H, W]
        external = None
        if masks is not None:  # the run's external masks, as the model took them in the run: [1, Tw, N, H, W]
            external = torch.from_numpy(np.stack([masks(t) for t in times]))[None].to(device)
        tracker = HeadTracker(model, images, external, autocast_dtype=dtype)
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
    masks: MaskFrames | None = None,
) -> TrackResult:
    """Track ``source``'s queries through ``recon`` with ``model``'s track head and store them in ``recon``;
    ``masks``: the run's external dynamic masks (:func:`external_mask_frames`), fed to the model as in the run and
    seeding the automatic grid."""
    config = config or TrackConfig()
    queries = reconstruction_queries(recon, source, masks)
    check_queries_in_view(recon, queries, source.path)
    if note is not None:
        note(f"tracking {len(queries)} {queries.kind.upper()} queries through {len(recon.spans)} windows")
    model = model.to(device).eval()
    started, window_seconds = time.perf_counter(), list[float]()
    windows = _windows(model, recon, torch.device(device), autocast_dtype, window_seconds, masks)
    tracks = track_windows(queries, windows, recon.num_timesteps, recon.num_cameras, config)
    seconds = time.perf_counter() - started
    info = {
        "source": "auto grid" if source.path is None else str(Path(source.path).resolve()),
        "external_masks": masks is not None,
        "config": asdict(config),
        "seconds": seconds,
        "window_seconds": window_seconds,
    }
    write_tracks(recon.root, tracks, queries, info)
    return TrackResult(tracks, queries, seconds, window_seconds)
