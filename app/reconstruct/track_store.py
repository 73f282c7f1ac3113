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
from vggt_t_mv.tracks import Queries, Tracks

TRACKS_DIR = "tracks"
_ARRAYS = {
    "points": np.float32,
    "visible": np.bool_,
    "pixels": np.float32,
    "view_visibility": np.float16,
    "query_pixels": np.float32,
    "query_visible": np.bool_,
}


@dataclass
class TrackSet:
    """Tracks read back (**contract** of ``Reconstruction.tracks()``): ``points [Q, T, 3]``, ``visible [Q, T]``,
    ``pixels [Q, T, N, 2]`` (per-camera 2D tracks), ``view_visibility [Q, T, N]``, ``query_pixels [Q, N, 2]`` and
    ``query_visible [Q, N]`` (the queries projected at their timestep), ``queries [Q, 4]`` of ``kind`` and ``info``
    (tracks.json)."""

    points: np.ndarray
    visible: np.ndarray
    pixels: np.ndarray
    view_visibility: np.ndarray
    query_pixels: np.ndarray
    query_visible: np.ndarray
    queries: np.ndarray
    kind: str
    info: dict

    def __getitem__(self, key: str) -> np.ndarray:  # tracks()["points"], as a dict
        return getattr(self, key)

    @property
    def num_queries(self) -> int:
        return int(self.points.shape[0])


def has_tracks(root: Path) -> bool:
    return (Path(root) / TRACKS_DIR / "tracks.json").is_file()


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
    return TrackSet(
        arrays["points"],
        arrays["visible"],
        arrays["pixels"],
        arrays["view_visibility"],
        arrays["query_pixels"],
        arrays["query_visible"],
        arrays["queries"],
        str(info["kind"]),
        info,
    )
