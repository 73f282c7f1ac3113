"""Export a Reconstruction for downstream tools: PLY, GLB, meshes, COLMAP, VGGT-style NPZ.

Python API (no click needed; the viewer's export panel calls it)::

    from app.export import ExportOptions, Selection, export_reconstruction
    from app.reconstruction import Reconstruction

    recon = Reconstruction.open("RECON")
    written = export_reconstruction(
        recon, "ply", Selection(timesteps=(0, 1, 2), stream="geo", conf_percentile=20, motion="static"),
        "out/scene.ply", ExportOptions(merge=False, overwrite=True),
    )  # -> [Path("out/scene_t00000.ply"), Path("out/scene_t00001.ply"), Path("out/scene_t00002.ply")]

:class:`~app.export_points.Selection` says what to take (timesteps, cameras, stream, confidence percentile,
static / dynamic filter with ``dynamic_threshold`` = :data:`~app.export_points.DYNAMIC_THRESHOLD`, voxel size);
:func:`~app.export_points.select_points` turns it into the flat point set every format writes. Several
timesteps give one file per timestep, named ``<stem>_t<t:05d><suffix>`` next to ``out`` (a COLMAP folder:
``<out>_t<t:05d>``), or one file with ``merge``; a single timestep writes ``out`` itself.

Formats (details in each writer's docstring):

* ``ply`` (:func:`~app.export_formats.write_ply`): points, RGB, ``confidence``, ``dynamic``, ``timestep``,
  ``camera`` vertex properties; OpenCV world frame.
* ``glb`` (:func:`~app.export_formats.write_glb`): points + one frustum mesh per frame (coloured per camera,
  apex at the camera centre) + camera trajectories; converted to glTF axes (+Y up, cameras look down -Z).
* ``mesh`` (:mod:`app.export_mesh`): grid triangulation of the depth maps without bridging triangles, or
  Poisson; ``.glb``, ``.ply`` or ``.obj`` by extension.
* ``colmap`` (:mod:`app.export_colmap`): ``images/`` + ``sparse/0`` (PINHOLE cameras, poses, coloured points).
* ``npz``: VGGT's prediction keys (``extrinsic``, ``intrinsic``, ``depth``, ``depth_conf``, ``world_points``,
  ``world_points_conf``, ``world_points_from_depth``, ``images``, ``pose_enc``; leading dim S = the selected
  (timestep, camera) frames in (t, n) order) plus ``dynamic_mask``, ``timestep``, ``camera``, ``camera_names``,
  ``mask`` (the selection's pixel filter), ``stream``. Dense maps: ``voxel`` does not apply.

Every file is written atomically (temporary name, then rename); an existing output is refused unless
``overwrite``; a selection that keeps nothing raises :class:`~app.export_points.ExportError` and writes nothing.

CLI: ``vggt-mv export RECON --format {ply,glb,mesh,colmap,npz} --out PATH [...]`` (:data:`export_command`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from app.export_colmap import ColmapOptions, write_colmap
from app.export_formats import GlbOptions, check_outputs, npz_arrays, write_glb, write_npz, write_ply
from app.export_mesh import MESH_METHODS, MeshOptions, check_mesh_path, grid_mesh, poisson_mesh, write_mesh
from app.export_points import (
    DYNAMIC_THRESHOLD,
    ExportError,
    PointSet,
    Selection,
    parse_timesteps,
    pixel_keep_mask,
    select_frames,
    select_points,
)
from app.reconstruction import Reconstruction, ReconstructionError

__all__ = [
    "DYNAMIC_THRESHOLD",
    "FORMATS",
    "ColmapOptions",
    "ExportError",
    "ExportOptions",
    "GlbOptions",
    "MeshOptions",
    "PointSet",
    "Selection",
    "export_command",
    "export_reconstruction",
    "output_paths",
    "select_points",
]

FORMATS = ("ply", "glb", "mesh", "colmap", "npz")
_SUFFIXES = {"ply": (".ply",), "glb": (".glb",), "npz": (".npz",)}


@dataclass(frozen=True)
class ExportOptions:
    """How to write: ``merge`` several timesteps into one output, ``overwrite`` existing outputs, and the
    per-format options."""

    merge: bool = False
    overwrite: bool = False
    glb: GlbOptions = field(default_factory=GlbOptions)
    mesh: MeshOptions = field(default_factory=MeshOptions)
    colmap: ColmapOptions = field(default_factory=ColmapOptions)


def timestep_path(out: Path, t: int) -> Path:
    """The output of timestep ``t`` when several are written separately: ``<stem>_t<t:05d><suffix>``."""
    return out.with_name(f"{out.stem}_t{t:05d}{out.suffix}")


def output_paths(out: str | Path, timesteps: list[int], merge: bool) -> list[tuple[list[int], Path]]:
    """``[(timesteps of one output, its path)]``: one output for ``merge`` or a single timestep, else one each."""
    out = Path(out)
    if merge or len(timesteps) == 1:
        return [(list(timesteps), out)]
    return [([t], timestep_path(out, t)) for t in timesteps]


def _check_format(fmt: str, out: Path, selection: Selection, options: ExportOptions) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
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
    keep = []
    for t in np.unique(frames.timestep):
        keep.append(pixel_keep_mask(recon, selection, int(t), frames.camera[frames.timestep == t].tolist()))
    keep = np.concatenate(keep)
    if not keep.any():
        raise ExportError("the selection keeps no pixel; loosen the filters")
    write_npz(npz_arrays(recon, frames, keep, selection.stream), path)


def _export_mesh(recon: Reconstruction, selection: Selection, path: Path, options: MeshOptions) -> None:
    frames = select_frames(recon, selection)
    if options.method == "grid":
        mesh = grid_mesh(recon, selection, frames, options)
    else:
        mesh = poisson_mesh(select_points(recon, selection), frames, options)
    write_mesh(mesh, path)


def _export_one(recon: Reconstruction, fmt: str, selection: Selection, path: Path, options: ExportOptions) -> None:
    if fmt == "npz":
        return _export_npz(recon, selection, path)
    if fmt == "mesh":
        return _export_mesh(recon, selection, path, options.mesh)
    points = select_points(recon, selection)
    if fmt == "ply":
        return write_ply(points, path)
    frames = select_frames(recon, selection)
    if fmt == "glb":
        return write_glb(points, frames, recon.camera_names, recon.image_hw, path, options.glb)
    return write_colmap(recon, points, frames, path, options.colmap)


def export_reconstruction(
    recon: Reconstruction | str | Path,
    fmt: str,
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
    _check_format(fmt, out, selection, options)
    timesteps = selection.resolve_timesteps(recon)
    selection.resolve_cameras(recon)
    outputs = output_paths(out, timesteps, options.merge)
    check_outputs([path for _, path in outputs], options.overwrite)
    written = []
    for group, path in outputs:
        _export_one(recon, fmt, dataclasses.replace(selection, timesteps=tuple(group)), path, options)
        written.append(path)
    return written


# ----------------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------------


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


@click.command("export", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("recon", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="Output format.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output file (colmap: folder).")
@click.option("--t", "timesteps", default="", help="Timesteps: 5, 0:10 (end excluded), 0:10:2, 3:, 1,4,7. Default all.")
@click.option("--cameras", default="", help="Cameras (names or indices, comma separated). Default all.")
@click.option("--stream", type=click.Choice(["geo", "pose"]), default="geo", show_default=True, help="Point source.")
@click.option("--conf-percentile", type=float, default=0.0, show_default=True, help="Drop points below it.")
@click.option("--static-only", is_flag=True, help="Only pixels with dynamic probability < --dynamic-threshold.")
@click.option("--dynamic-only", is_flag=True, help="Only pixels with dynamic probability >= --dynamic-threshold.")
@click.option("--dynamic-threshold", type=float, default=DYNAMIC_THRESHOLD, show_default=True)
@click.option("--voxel", type=float, default=0.0, show_default=True, help="Voxel size for downsampling (0: off).")
@click.option("--merge", is_flag=True, help="One output for all selected timesteps (default: one per timestep).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--no-frustums", is_flag=True, help="glb: no camera frustums.")
@click.option("--no-trajectory", is_flag=True, help="glb: no camera trajectories.")
@click.option("--frustum-size", type=float, default=None, help="glb: frustum depth (default 5% of the extent).")
@click.option("--mesh-method", type=click.Choice(MESH_METHODS), default="grid", show_default=True)
@click.option("--max-depth-ratio", type=float, default=MeshOptions.max_depth_ratio, show_default=True)
@click.option("--poisson-depth", type=int, default=MeshOptions.poisson_depth, show_default=True)
@click.option("--density-trim", type=float, default=MeshOptions.density_trim, show_default=True)
@click.option("--colmap-text", is_flag=True, help="colmap: text files instead of binary.")
@click.option("--no-images", is_flag=True, help="colmap: do not write the images/ folder.")
def export_command(recon: Path, fmt: str, out: Path, timesteps: str, cameras: str, **flags) -> None:
    """Export reconstruction RECON as PLY, GLB, a mesh, a COLMAP model or a VGGT-style NPZ."""
    if flags["static_only"] and flags["dynamic_only"]:
        raise click.UsageError("--static-only and --dynamic-only exclude each other")
    try:
        reconstruction = Reconstruction.open(recon)
        motion = "static" if flags["static_only"] else "dynamic" if flags["dynamic_only"] else "all"
        selection = Selection(
            timesteps=parse_timesteps(timesteps, reconstruction.num_timesteps),
            cameras=parse_cameras(cameras, reconstruction.camera_names),
            stream=flags["stream"],
            conf_percentile=flags["conf_percentile"],
            motion=motion,
            dynamic_threshold=flags["dynamic_threshold"],
            voxel=flags["voxel"],
        )
        options = ExportOptions(
            merge=flags["merge"],
            overwrite=flags["overwrite"],
            glb=GlbOptions(not flags["no_frustums"], flags["frustum_size"], not flags["no_trajectory"]),
            mesh=MeshOptions(
                method=flags["mesh_method"],
                max_depth_ratio=flags["max_depth_ratio"],
                poisson_depth=flags["poisson_depth"],
                density_trim=flags["density_trim"],
            ),
            colmap=ColmapOptions(binary=not flags["colmap_text"], images=not flags["no_images"]),
        )
        written = export_reconstruction(reconstruction, fmt, selection, out, options)
    except (ExportError, ReconstructionError) as error:
        raise click.ClickException(str(error)) from error
    for path in written:
        click.echo(str(path))
