"""A reconstruction as a 4D scene to share: viser's timed recording (``.viser``) and a self-contained web folder.

``vggt-mv export RECON --format viser --out scene.viser`` writes the selection (the same :class:`Selection` as every
export: timesteps, cameras, stream, confidence percentile, motion, voxel) as a viser scene recording: every selected
timestep's points (or Gaussian splats) and camera frustums under ``/t/TTTTT``, the 4D point tracks' fading tails up
to it under ``/t/TTTTT/tracks`` when the reconstruction has tracks (drawn as the viewer draws them:
:func:`app.viewer.scene.add_track_nodes`), the cameras' trajectories, and a time axis made of visibility changes,
one timestep every ``1 / fps`` seconds (viser's ``StateSerializer``: ``get_scene_serializer()``,
``insert_sleep()``, ``serialize()``). viser's player loops it, with a time slider.

``--format web --out DIR`` writes a folder a static file server (GitHub Pages, ``python -m http.server``) serves as
is, with nothing fetched from elsewhere:

* ``DIR/scene.viser``  the recording;
* ``DIR/client.html``  viser's packaged client build (one self-contained file, copied from the installed viser
  package: :data:`VISER_CLIENT`), which plays ``?playbackPath=...``;
* ``DIR/index.html``   opens ``client.html?playbackPath=scene.viser`` (embed the folder with an ``<iframe>``).

The recording is made by a viser server that lives only while the scene is written, bound to 127.0.0.1 on a free
port behind the viewer's access guard (:mod:`app.viewer.access`); nothing connects to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import viser

from app.common.atomic import atomic_folder, write_bytes_atomic
from app.common.cameras import camera_color
from app.common.vocab import RENDER_MODES, SCENE_FORMATS, RenderMode, SceneFormat, check_choice
from app.export.formats import check_outputs, frame_indices
from app.export.ownership import check_not_the_reconstruction, write_marker
from app.export.selection import ExportError, PointSet, Selection, select_frames, select_points
from app.export.splat import SplatOptions, lift_pixels
from app.reconstruct.store import Reconstruction
from app.reconstruct.track_store import TrackSet, tracks_stamp
from app.viewer.access import AccessPolicy, install_guard
from app.viewer.data import camera_poses, overview_camera, scene_scale, thumbnail
from app.viewer.scene import add_track_nodes
from app.viewer.track_tails import TailStyle, track_tails
from vggt_t_mv.npgeometry import camera_centers

RECORDING_NAME = "scene.viser"
CLIENT_NAME = "client.html"
VISER_CLIENT = Path(viser.__file__).parent / "client" / "build" / "index.html"
INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>html, body, iframe {{ margin: 0; width: 100%; height: 100%; border: 0; overflow: hidden; }}</style>
</head>
<body>
<iframe src="{client}?playbackPath={recording}" title="{title}" allowfullscreen></iframe>
</body>
</html>
"""


@dataclass(frozen=True)
class RecordingOptions:
    """How the scene is drawn: ``render`` points or splats; ``fps`` timesteps per second of playback;
    ``point_budget`` at most this many points per timestep (a uniform random subset, seeded per timestep, as the
    viewer draws); ``point_size`` in percent of the scene scale (the median depth of the first selected timestep);
    ``frustums`` (with the camera ``images`` on them) and ``trajectory``, as the GLB export; ``tracks`` the 4D point
    tracks' tails (``tail_style``) when the reconstruction has them."""

    render: RenderMode = "points"
    fps: float = 5.0
    point_budget: int = 100_000
    point_size: float = 0.4
    frustums: bool = True
    images: bool = True
    trajectory: bool = True
    tracks: bool = True
    tail_style: TailStyle = field(default_factory=TailStyle)
    thumbnail_side: int = 160
    frustum_scale: float = 0.06  # times the scene scale, as the viewer
    splat: SplatOptions = field(default_factory=SplatOptions)

    def __post_init__(self) -> None:
        check_choice(self.render, RENDER_MODES, "render mode")
        if not self.fps > 0:
            raise ExportError(f"--fps must be positive, got {self.fps}")
        if self.point_budget < 1:
            raise ExportError(f"--point-budget must be at least 1, got {self.point_budget}")


def budget_subset(points: PointSet, budget: int, seed: int) -> PointSet:
    """At most ``budget`` of ``points``: a uniform random subset with a fixed ``seed``, original order kept."""
    if len(points) <= budget:
        return points
    chosen = np.sort(np.random.default_rng(seed).choice(len(points), size=budget, replace=False))
    return points.subset(chosen)


@contextlib.contextmanager
def _recording_server():
    """A viser server on a free loopback port, guarded, silent, stopped afterwards."""
    with contextlib.redirect_stdout(io.StringIO()):
        server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        install_guard(server.get_port(), AccessPolicy.for_host("127.0.0.1", server.get_port()))
        yield server
    finally:
        with contextlib.redirect_stdout(io.StringIO()):
            server.stop()


def _timestep_points(recon: Reconstruction, selection: Selection, t: int, budget: int) -> PointSet | None:
    try:
        points = select_points(recon, dataclasses.replace(selection, timesteps=(t,)))
    except ExportError:
        return None  # nothing kept at this timestep: it plays as cameras only
    return budget_subset(points, budget, seed=t)


def record_scene(recon: Reconstruction, selection: Selection, options: RecordingOptions | None = None) -> bytes:
    """The ``.viser`` recording of ``selection`` (module docstring); raises :class:`ExportError` when the
    selection keeps no point at any timestep."""
    options = options or RecordingOptions()
    timesteps = selection.resolve_timesteps(recon)
    cameras = selection.resolve_cameras(recon)
    clouds = {t: _timestep_points(recon, selection, t, options.point_budget) for t in timesteps}
    if all(cloud is None for cloud in clouds.values()):
        raise ExportError(
            f"the selection keeps no point (timesteps {timesteps[0]}..{timesteps[-1]}, stream {selection.stream}, "
            f"conf percentile {selection.conf_percentile}, motion {selection.motion}); loosen the filters"
        )
    scale = scene_scale(recon, timesteps[0])
    track_set = recon.tracks() if options.tracks and tracks_stamp(recon.root) is not None else None
    with _recording_server() as server:
        scene = server.scene
        serializer = server.get_scene_serializer()
        scene.set_up_direction("-y")  # OpenCV world: y points down
        first = camera_poses(
            np.asarray(recon.get("extrinsics", timesteps[0]))[cameras[:1]],
            np.asarray(recon.get("intrinsics", timesteps[0]))[cameras[:1]],
            recon.image_hw,
        )[0]
        position, look_at, up = overview_camera(first, scale)
        server.initial_camera.position, server.initial_camera.look_at = position, look_at
        server.initial_camera.up = up
        frames = {}
        for t in timesteps:
            frames[t] = scene.add_frame(f"/t/{t:05d}", show_axes=False, visible=(t == timesteps[0]))
            _add_timestep(scene, recon, selection, t, cameras, clouds[t], scale, options)
            if track_set is not None:
                _add_tracks(scene, track_set, t, scale * options.point_size / 100.0, options.tail_style)
        if options.trajectory:
            _add_trajectories(scene, recon, timesteps, cameras)
        previous = None
        for t in timesteps:
            frames[t].visible = True
            if previous is not None:
                frames[previous].visible = False
            previous = t
            serializer.insert_sleep(1.0 / options.fps)
        return serializer.serialize()


def _add_timestep(
    scene,
    recon: Reconstruction,
    selection: Selection,
    t: int,
    cameras: list[int],
    points: PointSet | None,
    scale: float,
    options: RecordingOptions,
) -> None:
    base = f"/t/{t:05d}"
    if points is not None and options.render == "points":
        scene.add_point_cloud(
            f"{base}/points",
            points.xyz,
            points.rgb,
            point_size=scale * options.point_size / 100.0,
            point_shape="rounded",
        )
    elif points is not None:
        frames = select_frames(recon, dataclasses.replace(selection, timesteps=(t,)))
        gaussians = lift_pixels(
            points.xyz, points.rgb, points.conf, frame_indices(points, frames), frames.extrinsics,
            frames.intrinsics, options.splat, groups=points.timestep,
        )  # fmt: skip
        scene.add_gaussian_splats(
            f"{base}/splats",
            centers=gaussians.means,
            covariances=gaussians.covariances(),
            rgbs=gaussians.colors(),
            opacities=gaussians.opacities()[:, None],
        )
    if not options.frustums:
        return
    extrinsics = np.asarray(recon.get("extrinsics", t))[cameras]
    intrinsics = np.asarray(recon.get("intrinsics", t))[cameras]
    images = np.asarray(recon.get("images", t))
    for n, pose in zip(cameras, camera_poses(extrinsics, intrinsics, recon.image_hw), strict=True):
        image = thumbnail(np.asarray(images[n]), options.thumbnail_side) if options.images else None
        scene.add_camera_frustum(
            f"{base}/cameras/{recon.camera_names[n]}", fov=pose.fov_y, aspect=pose.aspect,
            scale=scale * options.frustum_scale, color=camera_color(n), wxyz=pose.wxyz, position=pose.position,
            image=image, format="jpeg", thickness=2.0, thickness_units="screen",
        )  # fmt: skip


def _add_tracks(scene, track_set: TrackSet, t: int, point_size: float, style: TailStyle) -> None:
    """The tracks' tails up to ``t`` and their heads at ``t`` under ``/t/TTTTT/tracks`` (none past their end)."""
    if t >= track_set.points.shape[1]:
        return
    base = f"/t/{t:05d}/tracks"
    scene.add_frame(base, show_axes=False)
    add_track_nodes(scene, base, track_tails(track_set.points, track_set.visible, t, style), point_size)


def _add_trajectories(scene, recon: Reconstruction, timesteps: list[int], cameras: list[int]) -> None:
    centres = np.stack([camera_centers(np.asarray(recon.get("extrinsics", t), np.float64)) for t in timesteps])
    for n in cameras:
        track = centres[:, n]
        if len(track) >= 2 and np.isfinite(track).all():
            scene.add_spline_catmull_rom(
                f"/trajectories/{recon.camera_names[n]}", track, color=camera_color(n), thickness=2.0,
                thickness_units="screen",
            )  # fmt: skip


def export_scene(
    recon: Reconstruction | str | Path,
    fmt: SceneFormat,
    selection: Selection,
    out: str | Path,
    options: RecordingOptions | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``selection`` as ``fmt`` (one of :data:`SCENE_FORMATS`: a ``.viser`` file, or a ``web`` folder) to
    ``out``, atomically and marked as this tool's (the same rules as every export: :mod:`app.export.api`);
    returns the written paths. Raises :class:`ExportError` with a message meant for the user."""
    recon = recon if isinstance(recon, Reconstruction) else Reconstruction.open(recon)
    out = Path(out)
    check_choice(fmt, SCENE_FORMATS, "scene format")
    if fmt == "viser" and out.suffix.lower() != ".viser":
        raise ExportError(f"--format viser writes a .viser file; got --out {out}")
    if fmt == "web" and (out.suffix or (out.exists() and not out.is_dir())):
        raise ExportError(f"--format web writes a folder (index.html, client.html, {RECORDING_NAME}); got --out {out}")
    if not VISER_CLIENT.is_file():
        raise ExportError(
            f"viser's client build is missing from the installed package ({VISER_CLIENT}); reinstall viser"
        )
    check_not_the_reconstruction(out, recon.root)
    check_outputs([out], overwrite)
    recording = record_scene(recon, selection, options)
    if fmt == "viser":
        write_bytes_atomic(out, lambda: recording)
    else:
        with atomic_folder(out) as tmp:
            (tmp / RECORDING_NAME).write_bytes(recording)
            shutil.copyfile(VISER_CLIENT, tmp / CLIENT_NAME)
            title = f"{recon.root.name}: 4D reconstruction (vggt-mv)"
            page = INDEX_HTML.format(title=title, client=CLIENT_NAME, recording=RECORDING_NAME)
            (tmp / "index.html").write_text(page)
    write_marker(out, fmt, recon.root)
    return [out]
