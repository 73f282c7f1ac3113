"""``vggt-mv export --format tracks``: the reconstruction's 4D tracks as NPZ (every array) and CSV (one row per
query and timestep), side by side: ``OUT.npz`` and ``OUT.csv``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from app.common.atomic import atomic_file
from app.export.formats import check_outputs
from app.export.ownership import check_not_the_reconstruction, write_marker
from app.export.selection import ExportError
from app.reconstruct.store import Reconstruction, ReconstructionError
from app.reconstruct.track_store import TrackSet

CSV_HEADER = ("query", "t", "x", "y", "z", "visible", "cameras_tracking")


def track_outputs(out: Path) -> tuple[Path, Path]:
    """``(OUT.npz, OUT.csv)`` for ``--out OUT.npz`` (or ``OUT`` without a suffix)."""
    if out.suffix and out.suffix.lower() != ".npz":
        raise ExportError(f"--format tracks writes OUT.npz and OUT.csv; got --out {out} (use a .npz name)")
    npz = out.with_suffix(".npz")
    return npz, npz.with_suffix(".csv")


def _write_npz(tracks: TrackSet, camera_names: list[str], path: Path) -> None:
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            points=tracks.points,
            visible=tracks.visible,
            pixels=tracks.pixels,
            view_visibility=tracks.view_visibility.astype(np.float32),
            query_pixels=tracks.query_pixels,
            query_visible=tracks.query_visible,
            queries=tracks.queries,
            query_kind=np.array(tracks.kind),
            camera_names=np.array(camera_names),
        )


def _write_csv(tracks: TrackSet, path: Path) -> None:
    tracking = np.isfinite(tracks.pixels).all(-1).sum(-1)  # [Q, T] cameras with a 2D track
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for q in range(tracks.num_queries):
            for t in range(int(tracks.queries[q, 0]), tracks.points.shape[1]):
                x, y, z = (f"{v:.6g}" for v in tracks.points[q, t])
                writer.writerow((q, t, x, y, z, int(tracks.visible[q, t]), int(tracking[q, t])))


def export_tracks(recon: Reconstruction, out: Path, overwrite: bool) -> list[Path]:
    """Write ``recon``'s tracks to ``OUT.npz`` and ``OUT.csv``; returns both paths."""
    paths = list(track_outputs(Path(out)))
    for path in paths:
        check_not_the_reconstruction(path, recon.root)
    check_outputs(paths, overwrite)
    try:
        tracks = recon.tracks()
    except ReconstructionError as error:
        raise ExportError(str(error)) from error
    _write_npz(tracks, recon.camera_names, paths[0])
    _write_csv(tracks, paths[1])
    for path in paths:
        write_marker(path, "tracks", recon.root)
    return paths
