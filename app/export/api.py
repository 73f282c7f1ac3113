"""Export a Reconstruction for downstream tools: PLY, GLB, meshes, COLMAP, VGGT-style NPZ.

Python API (no click needed; the viewer's export panel calls it)::

    from app.export.api import ExportOptions, Selection, export_reconstruction
    from app.reconstruct.store import Reconstruction

    recon = Reconstruction.open("RECON")
    written = export_reconstruction(
        recon, "ply", Selection(timesteps=(0, 1, 2), stream="geo", conf_percentile=20, motion="static"),
        "out/scene.ply", ExportOptions(merge=False, overwrite=True),
    )  # -> [Path("out/scene_t00000.ply"), Path("out/scene_t00001.ply"), Path("out/scene_t00002.ply")]

:class:`~app.export.selection.Selection` says what to take (timesteps, cameras, stream, confidence percentile,
static / dynamic filter with ``dynamic_threshold`` = :data:`~app.export.selection.DYNAMIC_THRESHOLD`, voxel size);
:func:`~app.export.selection.select_points` turns it into the flat point set every format writes. Several
timesteps give one file per timestep, named ``<stem>_t<t:05d><suffix>`` next to ``out`` (a COLMAP folder:
``<out>_t<t:05d>``), or one file with ``merge``; a single timestep writes ``out`` itself.

Formats (details in each writer's docstring):

* ``ply`` (:func:`~app.export.formats.write_ply`): points, RGB, ``confidence``, ``dynamic``, ``timestep``,
  ``camera`` vertex properties; OpenCV world frame.
* ``glb`` (:func:`~app.export.formats.write_glb`): points + one frustum mesh per frame (coloured per camera,
  apex at the camera centre) + camera trajectories; converted to glTF axes (+Y up, cameras look down -Z).
* ``splat`` (:func:`~app.export.formats.write_splats`): one 3D Gaussian per point in the 3DGS binary PLY layout
  (``x y z``, ``f_dc_0..2``, ``opacity``, ``scale_0..2``, ``rot_0..3``, float32), a per-pixel lift, not an
  optimised splat scene; mapping in :mod:`app.export.splat`.
* ``mesh`` (:mod:`app.export.mesh`): grid triangulation of the depth maps without bridging triangles, Poisson,
  or TSDF fusion of each timestep's depth maps (:mod:`app.export.tsdf`, ``voxel`` = its voxel);
  ``.glb``, ``.ply`` or ``.obj`` by extension.
* ``colmap`` (:mod:`app.export.colmap`): ``images/`` + ``sparse/0`` (PINHOLE cameras, poses, coloured points).
* ``npz``: VGGT's prediction keys (``extrinsic``, ``intrinsic``, ``depth``, ``depth_conf``, ``world_points``,
  ``world_points_conf``, ``world_points_from_depth``, ``images``, ``pose_enc``; leading dim S = the selected
  (timestep, camera) frames in (t, n) order) plus ``dynamic_mask``, ``timestep``, ``camera``, ``camera_names``,
  ``mask`` (the selection's pixel filter), ``stream``. Dense maps: ``voxel`` does not apply.

Every file is written atomically (temporary name, then rename) and marked as this tool's
(:mod:`app.export.ownership`); an existing output is refused unless ``overwrite``, and ``overwrite`` replaces only
an unchanged export of this tool, never anything else; an output equal to, inside or containing the reconstruction
is always refused; a selection that keeps nothing raises :class:`~app.export.selection.ExportError` and writes nothing.

CLI: ``vggt-mv export RECON --format {ply,glb,mesh,colmap,npz,splat} --out PATH [...]`` (:mod:`app.cli.export`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.common.atomic import write_failure_cause
from app.common.paths import file_ancestor
from app.common.vocab import EXPORT_FORMATS, ExportFormat
from app.export.colmap import ColmapOptions, write_colmap
from app.export.formats import GlbOptions, check_outputs, npz_arrays, write_glb, write_npz, write_ply, write_splats
from app.export.mesh import MeshData, MeshOptions, check_mesh_path, grid_mesh, poisson_mesh, write_mesh
from app.export.ownership import check_not_the_reconstruction, write_marker
from app.export.selection import (
    DYNAMIC_THRESHOLD,
    ExportError,
    PointSet,
    Selection,
    pixel_keep_mask,
    select_frames,
    select_points,
)
from app.export.splat import SplatOptions
from app.export.tracks import export_tracks
from app.export.tsdf import tsdf_mesh
from app.reconstruct.lock import running_writer
from app.reconstruct.store import Reconstruction

__all__ = [
    "DYNAMIC_THRESHOLD",
    "FORMATS",
    "ColmapOptions",
    "ExportError",
    "ExportOptions",
    "GlbOptions",
    "MeshOptions",
    "PointSet",
    "SplatOptions",
    "Selection",
    "export_reconstruction",
    "output_paths",
    "select_points",
]

FORMATS = EXPORT_FORMATS
_SUFFIXES: dict[ExportFormat, tuple[str, ...]] = {
    "ply": (".ply",),
    "glb": (".glb",),
    "npz": (".npz",),
    "splat": (".ply",),
}


@dataclass(frozen=True)
class ExportOptions:
    """How to write: ``merge`` several timesteps into one output, ``overwrite`` existing outputs, and the
    per-format options."""

    merge: bool = False
    overwrite: bool = False
    glb: GlbOptions = field(default_factory=GlbOptions)
    mesh: MeshOptions = field(default_factory=MeshOptions)
    colmap: ColmapOptions = field(default_factory=ColmapOptions)
    splat: SplatOptions = field(default_factory=SplatOptions)


def timestep_path(out: Path, t: int) -> Path:
    """The output of timestep ``t`` when several are written separately: ``<stem>_t<t:05d><suffix>``."""
    return out.with_name(f"{out.stem}_t{t:05d}{out.suffix}")


def output_paths(out: str | Path, timesteps: list[int], merge: bool) -> list[tuple[list[int], Path]]:
    """``[(timesteps of one output, its path)]``: one output for ``merge`` or a single timestep, else one each."""
    out = Path(out)
    if merge or len(timesteps) == 1:
        return [(list(timesteps), out)]
    return [([t], timestep_path(out, t)) for t in timesteps]


def _check_format(fmt: ExportFormat, out: Path, selection: Selection, options: ExportOptions) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    blocker = file_ancestor(out)
    if blocker is not None:
        raise ExportError(f"--out {out} is below {blocker}, which is a file; choose an --out in a folder")
    if fmt != "colmap" and out.is_dir():
        raise ExportError(
            f"--out {out} is a folder, and --format {fmt} writes a file: give a file path such as "
            f"{out / ('scene' + (out.suffix or _SUFFIXES.get(fmt, ('.ply',))[0]))}"
        )
    if fmt == "colmap" and out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file, and --format colmap writes a folder: give a folder path")
    if fmt in _SUFFIXES and out.suffix.lower() not in _SUFFIXES[fmt]:
        raise ExportError(f"--format {fmt} writes a {_SUFFIXES[fmt][0]} file; got --out {out}")
    if fmt == "mesh":
        check_mesh_path(out)
        if options.mesh.method == "grid" and selection.voxel > 0:
            raise ExportError("--voxel does not apply to grid meshes (use --mesh-method poisson or drop --voxel)")
    if fmt == "colmap" and out.suffix:
        raise ExportError(f"--format colmap writes a folder; got --out {out} (drop the suffix {out.suffix})")
    if fmt == "npz" and selection.voxel > 0:
        raise ExportError("--voxel does not apply to npz (it stores the dense per-frame maps)")


def _export_npz(recon: Reconstruction, selection: Selection, path: Path) -> None:
    frames = select_frames(recon, selection)
    per_timestep = []
    for t in np.unique(frames.timestep):
        per_timestep.append(pixel_keep_mask(recon, selection, int(t), frames.camera[frames.timestep == t].tolist()))
    keep = np.concatenate(per_timestep)
    if not keep.any():
        raise ExportError("the selection keeps no pixel; loosen the filters")
    write_npz(npz_arrays(recon, frames, keep, selection.stream), path)


def _export_mesh(recon: Reconstruction, selection: Selection, path: Path, options: MeshOptions) -> None:
    frames = select_frames(recon, selection)
    if options.method == "grid":
        mesh = grid_mesh(recon, selection, frames, options)
    elif options.method == "tsdf":
        mesh = MeshData(*tsdf_mesh(recon, selection, frames, options.sdf_trunc_voxels))
    else:
        mesh = poisson_mesh(select_points(recon, selection), frames, options)
    write_mesh(mesh, path)


def _export_one(
    recon: Reconstruction, fmt: ExportFormat, selection: Selection, path: Path, options: ExportOptions
) -> None:
    if fmt == "npz":
        return _export_npz(recon, selection, path)
    if fmt == "mesh":
        return _export_mesh(recon, selection, path, options.mesh)
    points = select_points(recon, selection)
    if fmt == "ply":
        return write_ply(points, path)
    frames = select_frames(recon, selection)
    if fmt == "splat":
        return write_splats(points, frames, path, options.splat)
    if fmt == "glb":
        return write_glb(points, frames, recon.camera_names, recon.image_hw, path, options.glb)
    return write_colmap(recon, points, frames, path, options.colmap)


def coverage_note(recon: Reconstruction) -> str | None:
    """For a reconstruction with fewer timesteps than planned: how many an export covers, and whether its run is still
    going (and when not, how to continue it); None when it has them all."""
    planned = recon.record.planned_timesteps
    done = recon.num_timesteps
    if recon.is_complete or done >= planned:
        return None
    writer = running_writer(recon.root)
    if writer is not None:
        state = f"its run is still going ({writer}): export again when it has finished for all of them"
    else:
        capture = recon.record.capture_path
        state = f"its run stopped: continue it with `vggt-mv run {capture} --out {recon.root} --resume` (its options)"
    return f"{recon.root} is not complete: the export covers timesteps 0..{done - 1} ({done} of {planned}); {state}"


def export_reconstruction(
    recon: Reconstruction | str | Path,
    fmt: ExportFormat,
    selection: Selection,
    out: str | Path,
    options: ExportOptions | None = None,
) -> list[Path]:
    """Export ``selection`` of ``recon`` as ``fmt`` (one of :data:`FORMATS`) to ``out``; returns the written paths.

    Checks everything first (format, suffix, timesteps, existing outputs), then writes each output atomically.
    Raises :class:`ExportError` (a ``ValueError``) with a message meant for the user."""
    options = options or ExportOptions()
    recon = recon if isinstance(recon, Reconstruction) else Reconstruction.open(recon)
    out = Path(out)
    if fmt == "tracks":  # the 4D tracks, not points: no selection applies
        return export_tracks(recon, out, options.overwrite)
    _check_format(fmt, out, selection, options)
    timesteps = selection.resolve_timesteps(recon)
    selection.resolve_cameras(recon)
    outputs = output_paths(out, timesteps, options.merge)
    for _, path in outputs:
        check_not_the_reconstruction(path, recon.root)
    check_outputs([path for _, path in outputs], options.overwrite)
    written: list[Path] = []
    for group, path in outputs:
        try:
            _export_one(recon, fmt, dataclasses.replace(selection, timesteps=tuple(group)), path, options)
            write_marker(path, fmt, recon.root)
        except (OSError, RuntimeError, ExportError) as error:  # disk full, read-only...: no partial file is left
            # pycolmap and OpenCV fail without the system's reason (naming the temporary file): ask the disk
            cause = write_failure_cause(path, error if isinstance(error, OSError) else None)
            if cause is None:
                raise
            done = f"; already written: {', '.join(map(str, written))}" if written else ""
            raise ExportError(f"cannot write {path} ({cause[0]}); {cause[1]}{done}") from error
        written.append(path)
    return written
