"""Tracks in a reconstruction folder: ``RECON/tracks/``, written once after the windows, atomically::

tracks/
  tracks.json          kind (3d | 2d), where the queries came from, count, thresholds, seconds
  queries.npy          float64 [Q, 4]        t, x, y, z (3d) or t, camera, u, v (2d)
  points.npy           float32 [Q, T, 3]     fused 3D position (the reconstruction's frame)
  visible.npy          bool    [Q, T]        some camera sees the point
  pixels.npy           float32 [Q, T, N, 2]  each camera's 2D track (model pixels; NaN: not tracked there)
  view_visibility.npy  float16 [Q, T, N]     the track head's visibility there (0: not tracked)
  query_pixels.npy     float32 [Q, N, 2]     each query projected into every camera at its timestep
  query_visible.npy    bool    [Q, N]        the cameras that see it there (in front, inside, depth-consistent)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.common.atomic import atomic_folder
from vggt_t_mv.tracks import Queries, QueryKind, Tracks

TRACKS_DIR = "tracks"
_ARRAYS = {  # the fields of vggt_t_mv.tracks.Tracks
    "points": np.float32,
    "visible": np.bool_,
    "pixels": np.float32,
    "view_visibility": np.float16,
    "query_pixels": np.float32,
    "query_visible": np.bool_,
}


@dataclass
class TrackSet:
    """Tracks read back (**contract** of ``Reconstruction.tracks()``): the library's :class:`~vggt_t_mv.tracks.Tracks`
    (``tracks``: ``points [Q, T, 3]``, ``visible [Q, T]``, per-camera 2D ``pixels [Q, T, N, 2]``, ``view_visibility
    [Q, T, N]``, ``query_pixels [Q, N, 2]``, ``query_visible [Q, N]``; each also an attribute of the set) with the
    :class:`~vggt_t_mv.tracks.Queries` they follow (``query_set``; ``queries [Q, 4]`` and ``kind`` its values and
    kind) and ``info`` (tracks.json). Stored at the dtypes of the module docstring (points float32)."""

    tracks: Tracks
    query_set: Queries
    info: dict

    def __getitem__(self, key: str) -> np.ndarray:  # tracks()["points"], as a dict
        return getattr(self, key)

    @property
    def points(self) -> np.ndarray:
        return self.tracks.points

    @property
    def visible(self) -> np.ndarray:
        return self.tracks.visible

    @property
    def pixels(self) -> np.ndarray:
        return self.tracks.pixels

    @property
    def view_visibility(self) -> np.ndarray:
        return self.tracks.view_visibility

    @property
    def query_pixels(self) -> np.ndarray:
        return self.tracks.query_pixels

    @property
    def query_visible(self) -> np.ndarray:
        return self.tracks.query_visible

    @property
    def queries(self) -> np.ndarray:
        """``[Q, 4]`` float64, the columns of :data:`vggt_t_mv.tracks.QUERY_COLUMNS` [``kind``]."""
        return self.query_set.values

    @property
    def kind(self) -> QueryKind:
        return self.query_set.kind

    @property
    def num_queries(self) -> int:
        return int(self.points.shape[0])


def has_tracks(root: Path) -> bool:
    return (Path(root) / TRACKS_DIR / "tracks.json").is_file()


def tracks_stamp(root: Path) -> int | None:
    """When the tracks under ``root`` were written (``tracks.json``'s mtime in ns; None: there are none), for a
    reader that follows a folder (the viewer)."""
    try:
        return (Path(root) / TRACKS_DIR / "tracks.json").stat().st_mtime_ns
    except FileNotFoundError:
        return None


def write_tracks(root: Path, tracks: Tracks, queries: Queries, info: dict) -> None:
    """Store ``tracks`` of ``queries`` under ``root/tracks`` (replacing earlier ones only once complete)."""
    with atomic_folder(Path(root) / TRACKS_DIR) as folder:
        np.save(folder / "queries.npy", queries.values.astype(np.float64))
        for name, dtype in _ARRAYS.items():
            np.save(folder / f"{name}.npy", np.asarray(getattr(tracks, name)).astype(dtype))
        (folder / "tracks.json").write_text(json.dumps({"kind": queries.kind, "count": len(queries), **info}, indent=1))


def read_tracks(root: Path) -> TrackSet:
    """The tracks stored under ``root``; ``FileNotFoundError`` naming the folder when there are none."""
    folder = Path(root) / TRACKS_DIR
    if not (folder / "tracks.json").is_file():
        raise FileNotFoundError(
            f"{root} holds no tracks ({folder}/tracks.json is missing): run with --track-queries FILE|auto"
        )
    info = json.loads((folder / "tracks.json").read_text())
    arrays = {name: np.load(folder / f"{name}.npy") for name in (*_ARRAYS, "queries")}
    kind: QueryKind = "2d" if info.get("kind") == "2d" else "3d"
    tracks = Tracks(**{name: arrays[name] for name in _ARRAYS})
    return TrackSet(tracks, Queries(arrays["queries"], kind), info)
