"""``vggt-mv export``: options -> :class:`~app.export.selection.Selection` + :class:`~app.export.api.ExportOptions`,
then :func:`app.export.api.export_reconstruction` (the API the viewer's export panel calls too)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.cli.interrupt import exit_status
from app.cli.options import (
    CONTEXT_SETTINGS,
    conf_percentile_option,
    console_warnings,
    display_options,
    min_views_option,
)
from app.common.vocab import RENDER_MODES, SCENE_FORMATS, STREAMS, Motion, check_choice
from app.export.api import (
    DYNAMIC_THRESHOLD,
    FORMATS,
    ColmapOptions,
    ExportError,
    ExportOptions,
    GlbOptions,
    MeshOptions,
    Selection,
    SplatOptions,
    coverage_note,
    export_reconstruction,
)
from app.export.colmap import COLMAP_RESOLUTIONS
from app.export.mesh import MESH_METHODS
from app.export.selection import parse_cameras, parse_timesteps
from app.export.splat import OPACITY_MODES
from app.reconstruct.store import Reconstruction, ReconstructionError
from app.viewer.recording import RecordingOptions, export_scene


@click.command("export", context_settings=CONTEXT_SETTINGS)
@click.argument("recon", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS + SCENE_FORMATS), required=True,
    help="Output format (viser: a 4D scene recording; web: a folder that plays it in a browser; tracks: the 4D "
    "tracks as OUT.npz + OUT.csv).",
)  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output file (colmap, web: folder).")
@click.option("--t", "timesteps", default="", help="Timesteps: 5, 0:10 (end excluded), 0:10:2, 3:, 1,4,7. Default all.")
@click.option("--cameras", default="", help="Cameras (names or indices, comma separated). Default all.")
@click.option("--stream", type=click.Choice(STREAMS), default="geo", show_default=True, help="Point source.")
@conf_percentile_option
@min_views_option
@click.option("--static-only", is_flag=True, help="Only pixels with dynamic probability < --dynamic-threshold.")
@click.option("--dynamic-only", is_flag=True, help="Only pixels with dynamic probability >= --dynamic-threshold.")
@click.option(
    "--dynamic-threshold",
    type=float,
    default=DYNAMIC_THRESHOLD,
    show_default=True,
    help="Dynamic probability at and above which a pixel counts as moving (--static-only / --dynamic-only).",
)
@click.option("--voxel", type=float, default=0.0, show_default=True,
              help="Voxel size for downsampling (0: off); mesh tsdf: the TSDF voxel (0: from the scene).")  # fmt: skip
@click.option("--merge", is_flag=True, help="One output for all selected timesteps (default: one per timestep).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--no-frustums", is_flag=True, help="glb, viser, web: no camera frustums.")
@click.option("--no-trajectory", is_flag=True, help="glb, viser, web: no camera trajectories.")
@click.option("--frustum-size", type=float, default=None, help="glb: frustum depth (default 5% of the extent).")
@click.option("--mesh-method", type=click.Choice(MESH_METHODS), default="grid", show_default=True,
              help="mesh: grid (triangulate each depth map), poisson (surface from the points) or tsdf (fuse each "
                   "timestep's depth maps; --voxel: its voxel, default from the scene's extent; --merge with "
                   "--static-only: one surface over the timesteps).")  # fmt: skip
@click.option("--max-depth-ratio", type=float, default=MeshOptions.max_depth_ratio, show_default=True,
              help="mesh grid: no triangle across neighbours whose depths differ by more than this.")  # fmt: skip
@click.option("--poisson-depth", type=int, default=MeshOptions.poisson_depth, show_default=True,
              help="mesh poisson: octree depth (higher: finer and slower).")  # fmt: skip
@click.option("--density-trim", type=float, default=MeshOptions.density_trim, show_default=True,
              help="mesh poisson: drop vertices below this quantile of the Poisson density.")  # fmt: skip
@click.option("--splat-opacity", type=click.Choice(OPACITY_MODES), default="rank", show_default=True,
              help="splat: from the confidence's rank per timestep, or 1 - 1/confidence.")  # fmt: skip
@click.option("--splat-sigma", type=click.FloatRange(min=0.0, min_open=True), default=SplatOptions.sigma_pixels,
              show_default=True, help="splat: Gaussian sigma across the ray, in pixel footprints.")  # fmt: skip
@click.option("--sh-degree", type=click.IntRange(0, 3), default=0, show_default=True,
              help="splat: spherical-harmonics degree of the PLY (higher bands are zeros).")  # fmt: skip
@click.option("--colmap-text", is_flag=True, help="colmap: text files instead of binary.")
@click.option("--colmap-resolution", type=click.Choice(COLMAP_RESOLUTIONS), default="capture", show_default=True,
              help="colmap: images and intrinsics at the capture's resolution (read again from the capture, "
                   "undistorted as the run did) or at the model's.")  # fmt: skip
@click.option("--colmap-min-track", type=click.IntRange(min=1), default=1, show_default=True,
              help="colmap: only points seen in at least this many images (multi-view tracks from the agreement; "
                   "2 for a bundle adjustment).")  # fmt: skip
@click.option("--no-tracks", is_flag=True,
              help="colmap: one-pixel tracks (no multi-view tracks); viser, web: no 4D point tracks.")  # fmt: skip
@click.option("--no-images", is_flag=True, help="colmap: no images/ folder; viser, web: no images on the frustums.")
@display_options
def export_command(recon: Path, fmt: str, out: Path, timesteps: str, cameras: str, **flags) -> None:
    """Export reconstruction RECON as PLY, GLB, a mesh, a COLMAP model, a VGGT-style NPZ, Gaussian splats, or a 4D
    scene to share (viser: a .viser recording; web: a folder that plays it in a browser, --render, --fps and
    --point-budget apply to these two)."""
    if flags["static_only"] and flags["dynamic_only"]:
        raise click.UsageError("--static-only and --dynamic-only exclude each other")
    console_warnings()
    try:
        reconstruction = Reconstruction.open(recon)
        note = coverage_note(reconstruction)
        if note is not None:
            click.secho(f"note: {note}", fg="yellow", err=True)
        motion: Motion = "static" if flags["static_only"] else "dynamic" if flags["dynamic_only"] else "all"
        selection = Selection(
            timesteps=parse_timesteps(timesteps, reconstruction.num_timesteps),
            cameras=parse_cameras(cameras, reconstruction.camera_names),
            stream=check_choice(flags["stream"], STREAMS, "--stream"),
            conf_percentile=flags["conf_percentile"],
            motion=motion,
            dynamic_threshold=flags["dynamic_threshold"],
            voxel=flags["voxel"],
            min_views=flags["min_views"],
        )
        options = ExportOptions(
            merge=flags["merge"],
            overwrite=flags["overwrite"],
            glb=GlbOptions(not flags["no_frustums"], flags["frustum_size"], not flags["no_trajectory"]),
            mesh=MeshOptions(
                method=check_choice(flags["mesh_method"], MESH_METHODS, "--mesh-method"),
                max_depth_ratio=flags["max_depth_ratio"],
                poisson_depth=flags["poisson_depth"],
                density_trim=flags["density_trim"],
            ),
            colmap=ColmapOptions(
                binary=not flags["colmap_text"],
                images=not flags["no_images"],
                resolution=check_choice(flags["colmap_resolution"], COLMAP_RESOLUTIONS, "--colmap-resolution"),
                tracks=not flags["no_tracks"],
                min_track_length=flags["colmap_min_track"],
            ),
            splat=SplatOptions(
                sigma_pixels=flags["splat_sigma"],
                opacity=check_choice(flags["splat_opacity"], OPACITY_MODES, "--splat-opacity"),
                sh_degree=flags["sh_degree"],
            ),
        )
        if fmt in SCENE_FORMATS:
            scene_format = check_choice(fmt, SCENE_FORMATS, "--format")
            recording = RecordingOptions(
                render=check_choice(flags["render"], RENDER_MODES, "--render"),
                fps=flags["fps"],
                point_budget=flags["point_budget"],
                frustums=not flags["no_frustums"],
                images=not flags["no_images"],
                trajectory=not flags["no_trajectory"],
                tracks=not flags["no_tracks"],
                splat=options.splat,
            )
            written = export_scene(
                reconstruction, scene_format, selection, out, recording, overwrite=flags["overwrite"]
            )
        else:
            export_format = check_choice(fmt, FORMATS, "--format")
            written = export_reconstruction(reconstruction, export_format, selection, out, options)
    except (ExportError, ReconstructionError) as error:
        raise click.ClickException(str(error)) from error
    except KeyboardInterrupt as interrupt:  # the writers remove their temporary files on the way out
        click.secho(
            f"\ninterrupted: the output being written under {out} was removed (those finished before it are "
            "complete); run the same command with --overwrite to write it",
            err=True,
            fg="red",
        )
        sys.exit(exit_status(interrupt))
    for path in written:
        click.echo(str(path))
