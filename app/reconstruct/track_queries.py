"""What ``--track-queries`` names, read and checked before anything runs: a query file (3D ``[Q, 4]`` t, x, y, z
or 2D ``[Q, 4]`` t, camera, u, v, as ``.npy``, ``.csv`` or ``.txt``) or ``auto`` (a dataset root's
``query_points.npy`` when it has one, else a grid on the moving pixels of the first timestep, chosen after the run).

Timesteps count the timesteps the run reconstructs (0 = the first one kept after ``--start`` / ``--every``). 3D points
are in the reconstruction's frame: the calibration's when the run is calibrated, else camera 0's at timestep 0 (in
the model's units). 2D pixels are in the model's input image (the reconstruction's ``images``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vggt_t_mv.tracks import QUERY_COLUMNS, Queries, QueryKind

AUTO = "auto"
DATASET_QUERY_FILE = "query_points.npy"  # MVTracker's query format, shipped with a dataset root
QUERY_FILE_FIX = (
    "a query file holds one row per query: 't x y z' (3D, the reconstruction's frame) or 't camera u v' (2D: the "
    "name ends with _2d, e.g. queries_2d.csv); README '4D tracks'"
)


class TrackQueryError(ValueError):
    """A query file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class QuerySource:
    """Resolved ``--track-queries``: ``queries`` (None: the automatic grid, made after the run), ``path`` of the file
    they came from (None for the grid) and ``note`` (one line for the console)."""

    queries: Queries | None
    path: Path | None
    note: str


def _load_values(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            delimiter = "," if path.suffix.lower() == ".csv" else None
            values = np.loadtxt(path, delimiter=delimiter, ndmin=2, comments="#")
    except (OSError, ValueError) as error:
        raise TrackQueryError(f"--track-queries {path}: cannot be read ({error}); {QUERY_FILE_FIX}") from error
    if not np.issubdtype(values.dtype, np.number):
        raise TrackQueryError(f"--track-queries {path}: holds {values.dtype} values, not numbers; {QUERY_FILE_FIX}")
    return np.asarray(values, np.float64)


def read_query_file(path: Path, num_timesteps: int, num_cameras: int) -> Queries:
    """The queries of ``path`` checked against the capture: shape ``[Q, 4]``, finite, whole timesteps in
    ``0 .. num_timesteps - 1`` (2D: whole camera numbers below ``num_cameras``, pixels >= 0)."""
    values = _load_values(path)
    kind: QueryKind = "2d" if path.stem.lower().endswith("_2d") else "3d"
    columns = ", ".join(QUERY_COLUMNS[kind])
    if values.ndim != 2 or values.shape[1] != 4 or len(values) == 0:
        raise TrackQueryError(
            f"--track-queries {path}: shape {list(values.shape)}, expected [Q, 4] ({columns}) with Q >= 1; "
            f"{QUERY_FILE_FIX}"
        )
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        raise TrackQueryError(f"--track-queries {path}: rows {bad[:5].tolist()} hold NaN or inf; remove them")
    times = values[:, 0]
    wrong = np.flatnonzero((times != np.round(times)) | (times < 0) | (times >= num_timesteps))
    if len(wrong):
        raise TrackQueryError(
            f"--track-queries {path}: rows {wrong[:5].tolist()} have timestep {times[wrong[0]]:g}, outside the "
            f"capture's 0..{num_timesteps - 1} (timesteps count those the run keeps, after --start / --every); fix "
            "the first column or widen --start / --end"
        )
    if kind == "2d":
        cameras = values[:, 1]
        wrong = np.flatnonzero((cameras != np.round(cameras)) | (cameras < 0) | (cameras >= num_cameras))
        if len(wrong):
            raise TrackQueryError(
                f"--track-queries {path}: rows {wrong[:5].tolist()} name camera {cameras[wrong[0]]:g}; the capture "
                f"has cameras 0..{num_cameras - 1} (in the order the run announces)"
            )
    return Queries(values, kind)


def resolve_track_queries(
    setting: Path | str | None, dataset_root: Path | None, num_timesteps: int, num_cameras: int
) -> QuerySource | None:
    """``--track-queries`` (a file, ``auto`` or None) -> :class:`QuerySource` (None: no tracking)."""
    if setting is None:
        return None
    if str(setting) == AUTO:
        found = None if dataset_root is None else Path(dataset_root) / DATASET_QUERY_FILE
        if found is not None and found.is_file():
            queries = read_query_file(found, num_timesteps, num_cameras)
            return QuerySource(queries, found, f"track queries: {len(queries)} 3D points from the dataset's {found}")
        return QuerySource(None, None, "track queries: auto, a grid on the moving pixels of the first timestep")
    path = Path(setting)
    if not path.is_file():
        raise TrackQueryError(f"--track-queries {path}: no such file; give a query file or 'auto'")
    queries = read_query_file(path, num_timesteps, num_cameras)
    return QuerySource(queries, path, f"track queries: {len(queries)} {queries.kind.upper()} from {path}")


def auto_queries(dynamic: np.ndarray | None, valid: np.ndarray, grid_step: int, max_queries: int = 256) -> Queries:
    """2D queries at timestep 0 on a ``grid_step`` pixel grid: the moving pixels (``dynamic [N, H, W]`` bool) that
    have depth (``valid [N, H, W]``), or every pixel with depth when no camera shows a moving one (or no mask);
    at most ``max_queries``, spread over the cameras."""
    num_cameras, height, width = valid.shape
    grid = np.zeros((height, width), bool)
    grid[grid_step // 2 :: grid_step, grid_step // 2 :: grid_step] = True
    usable = valid & grid[None]
    chosen = usable if dynamic is None else usable & dynamic
    if dynamic is not None and not chosen.any():
        chosen = usable
    cameras, rows, cols = np.nonzero(chosen)
    if len(cameras) > max_queries:
        keep = np.linspace(0, len(cameras) - 1, max_queries).round().astype(np.int64)
        cameras, rows, cols = cameras[keep], rows[keep], cols[keep]
    values = np.stack([np.zeros(len(cameras)), cameras, cols, rows], axis=1).astype(np.float64)
    return Queries(values, "2d")
