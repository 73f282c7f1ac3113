"""The viewer's 3D scene: viser scene nodes per timestep, shown and hidden rather than re-sent.

Node tree (``TTTTT`` the zero-padded timestep, ``cam`` a camera name)::

    /t/TTTTT                          frame: visible only at the current timestep
    /t/TTTTT/geo, /t/TTTTT/pose       frames: visible only for the active stream
    /t/TTTTT/<stream>/<motion>        frames: motion "static" (dynamic probability < threshold) or "dynamic"
    /t/TTTTT/<stream>/<motion>/points/<cam>   point cloud (dynamic ones tinted while masks are shown)
    /t/TTTTT/<stream>/<motion>/splats/<cam>   Gaussian splats of the same points (splat rendering mode)
    /t/TTTTT/cameras/plain/<cam>      camera frustum (predicted FoV and aspect), no image
    /t/TTTTT/cameras/image/<cam>      the same frustum with the camera's image
    /trajectories/<cam>               the camera's centres over all loaded timesteps (Catmull-Rom spline)
    /t/TTTTT/tracks/tails, .../heads  when the reconstruction has 4D tracks: each query's fading tail up to the
                                      timestep and its position there (:mod:`app.viewer.track_tails`)
    /background                       accumulated static points of all loaded timesteps, voxel-downsampled
    /t/TTTTT/ground_truth/cameras/<cam>, /t/TTTTT/ground_truth/points/<cam>
                                      with ``--ground-truth``: the GT frustums (one colour, no image) and GT depth
                                      unprojected with the GT cameras, aligned to the reconstruction

Moving the time slider, switching stream or motion filter, showing cameras, images or the background only flips
``visible`` flags (a few bytes per node). Clouds are (re)sent only when a timestep is first loaded or a setting
that changes the points (confidence percentile, point budget) changes; showing or hiding masks re-sends only the
colours of the dynamic points.

Splats are built from the same kept points as the clouds (same filters, same budget draw) and sized by the pixel
footprint (:mod:`app.export.splat`), not by the point size. The browser merges every splat it holds into one
buffer and sorts and shades all of them, hidden or not, so the scene holds splats only in splat mode, only for
the active stream and only for the :attr:`SceneLimits.splat_timesteps` timesteps nearest the current one (built
outwards from it; the others are removed): at most that many times the point budget.

:meth:`ViewerScene.next_job` hands the background worker the most useful piece of work first (the current
timestep and stream, then outwards).

**Memory bound.** Only :attr:`SceneLimits.max_loaded_timesteps` timesteps around the slider are held (their nodes
in viser's message buffer and here); the worker evicts the others (removing a node drops its data from viser's
buffer) and loads them again when the slider gets there, so the server's memory does not grow with the length
of the reconstruction (``benchmarks/viewer_memory.py``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import viser

from app.common.cameras import camera_color
from app.common.vocab import (
    MOTIONS,
    POINT_COLORINGS,
    RENDER_MODES,
    SHOW_MODES,
    STREAMS,
    Motion,
    PointColoring,
    RenderMode,
    ShowMode,
    Stream,
    check_choice,
)
from app.export.selection import voxel_keep_index
from app.export.splat import Gaussians, SplatOptions
from app.reconstruct.error_map import RELATIVE_FLOOR, error_colors, nice_limit
from app.reconstruct.store import Reconstruction
from app.reconstruct.track_store import TrackSet, tracks_stamp
from app.viewer.data import (
    CameraPose,
    CloudSettings,
    camera_poses,
    filter_timestep,
    scene_scale,
    static_points,
    thumbnail,
    tint,
)
from app.viewer.ground_truth import GT_COLOR, GroundTruthTimestep, GroundTruthView
from app.viewer.track_tails import TailStyle, TrackTails, track_tails
from vggt_t_mv.npgeometry import camera_centers

# each timestep's points per stream and camera, by the dynamic mask
MOTION_SPLIT: tuple[Motion, ...] = ("static", "dynamic")
TRACK_HEAD_SIZE = 2.0  # a track's position at the current timestep: this many times the point size
STREAM_LABELS: dict[Stream, str] = {
    "geo": "geo stream: point map",
    "pose": "pose stream: depth unprojected with the predicted cameras",
}


def add_track_nodes(
    scene: viser.SceneApi, base: str, tails: TrackTails, point_size: float
) -> list[viser.SceneNodeHandle]:
    """Draw ``tails`` (one timestep's, :func:`app.viewer.track_tails.track_tails`) under ``base``: the segments as
    ``base/tails`` (when there are any) and the heads as ``base/heads``, :data:`TRACK_HEAD_SIZE` times
    ``point_size`` (world units); as the viewer and the 4D scene recording draw them. Returns the nodes added."""
    nodes: list[viser.SceneNodeHandle] = []
    if tails.num_segments:
        nodes.append(
            scene.add_line_segments(
                f"{base}/tails", tails.segments, tails.colors, thickness=3.0, thickness_units="screen"
            )
        )
    if len(tails.heads):
        nodes.append(
            scene.add_point_cloud(
                f"{base}/heads",
                tails.heads,
                tails.head_colors,
                point_size=TRACK_HEAD_SIZE * point_size,
                point_shape="circle",
            )
        )
    return nodes


@dataclass
class SceneOptions:
    """Display options that only change node visibility or small properties (nothing is re-sent)."""

    stream: Stream = "geo"
    motion: Motion = "all"
    show_cameras: bool = True
    show_images: bool = True
    show_masks: bool = True
    show_trajectories: bool = True
    show_tracks: bool = True  # the 4D point tracks, when the reconstruction has them
    show_background: bool = False
    show: ShowMode = "both"  # with a ground truth: draw the prediction, the ground truth, or both
    coloring: PointColoring = "image"  # "error": the prediction coloured by its distance to the ground truth
    point_size: float = 0.4  # percent of the scene scale (median depth of the first timestep)
    render: RenderMode = "points"
    splat: SplatOptions = field(default_factory=SplatOptions)


SceneJobKind = Literal[
    "evict", "drop_splats", "timestep", "splats", "ground_truth", "recolor", "tracks", "trajectories", "background"
]
STREAM_JOBS: tuple[SceneJobKind, ...] = ("drop_splats", "timestep", "splats", "recolor")  # the kinds with a stream


@dataclass(frozen=True)
class SceneJob:
    """One piece of the background worker's work (:meth:`ViewerScene.next_job`): ``kind``, the timestep ``t``
    (0 for the scene-wide kinds) and, for the kinds in :data:`STREAM_JOBS`, the ``stream``."""

    kind: SceneJobKind
    t: int = 0
    stream: Stream | None = None

    def __post_init__(self) -> None:
        if (self.stream is not None) != (self.kind in STREAM_JOBS):
            raise ValueError(f"a {self.kind!r} job takes a stream exactly when it is one of {STREAM_JOBS}")

    def stream_of_job(self) -> Stream:
        """The stream of a job in :data:`STREAM_JOBS`."""
        if self.stream is None:
            raise ValueError(f"a {self.kind!r} job has no stream")
        return self.stream


@dataclass
class SceneLimits:
    """Sizes of what is sent: frustum thumbnails, the background's voxel and size cap."""

    thumbnail_side: int = 160
    frustum_scale: float = 0.06  # times the scene scale
    background_max_dynamic: float = 0.2  # "low-dynamic": probability below this
    background_voxel: float = 0.01  # times the scene scale
    background_max_points: int = 300_000
    splat_timesteps: int = 4  # splat mode: timesteps around the current one that hold splats
    max_loaded_timesteps: int = 48  # kept around the slider; the others are evicted (module docstring)


@dataclass
class _Timestep:
    frame: viser.FrameHandle
    streams: dict[Stream, viser.FrameHandle]
    motion: dict[tuple[Stream, Motion], viser.FrameHandle]  # (stream, "static"|"dynamic") -> frame
    render: dict[tuple[Stream, Motion, RenderMode], viser.FrameHandle]  # (stream, motion, "points"|"splats") -> frame
    cameras: viser.FrameHandle
    camera_kinds: dict[str, viser.FrameHandle]  # "plain" | "image"
    poses: list[CameraPose]
    frustums: dict[tuple[str, int], viser.CameraFrustumHandle] = field(default_factory=dict)  # (kind, camera)
    clouds: dict[tuple[Stream, Motion, int], viser.PointCloudHandle] = field(default_factory=dict)
    colors: dict[tuple[Stream, Motion, int], np.ndarray] = field(default_factory=dict)  # image colours, untinted
    pixels: dict[tuple[Stream, Motion, int], np.ndarray] = field(default_factory=dict)  # flat pixel index of each point
    built: dict[Stream, int] = field(default_factory=dict)  # stream -> cloud generation it was built with
    coloured: dict[Stream, tuple] = field(default_factory=dict)  # stream -> colour key its points were sent with
    counts: dict[Stream, tuple[int, int, int]] = field(default_factory=dict)  # stream -> (valid, conf, kept)
    splats: dict[tuple[Stream, Motion, int], viser.GaussianSplatHandle] = field(default_factory=dict)
    splats_built: dict[Stream, int] = field(default_factory=dict)  # stream -> cloud generation of its splats
    splats_coloured: dict[Stream, tuple] = field(default_factory=dict)  # stream -> colour key of its splats
    ground_truth: viser.FrameHandle | None = None
    ground_truth_nodes: list[viser.SceneNodeHandle] = field(default_factory=list)
    ground_truth_version: int = 0  # GroundTruthView.version its ground-truth nodes were placed with
    truth: GroundTruthTimestep | None = None  # what those nodes show (for the error colouring)
    errors: dict[Stream, tuple[np.ndarray, float]] = field(default_factory=dict)  # stream -> (errors [N,H,W], limit)
    tracks: viser.FrameHandle | None = None  # /t/TTTTT/tracks, with its tails and heads
    track_nodes: list[viser.SceneNodeHandle] = field(default_factory=list)
    tracks_version: int = 0  # ViewerScene.tracks_version its track nodes were built with


class ViewerScene:
    """Owns every scene node of one Reconstruction. All methods are thread-safe (one lock)."""

    def __init__(
        self,
        scene: viser.SceneApi,
        recon: Reconstruction,
        settings: CloudSettings | None = None,
        options: SceneOptions | None = None,
        limits: SceneLimits | None = None,
        preload_both_streams: bool = True,
        ground_truth: GroundTruthView | None = None,
    ) -> None:
        self.scene, self.recon = scene, recon
        self.ground_truth = ground_truth
        self.settings = settings or CloudSettings()
        self.options = options or SceneOptions()
        self.limits = limits or SceneLimits()
        self.preload_both_streams = preload_both_streams
        self.lock = threading.RLock()
        self.generation = 0
        self.current = 0
        self.timesteps: dict[int, _Timestep] = {}
        self.scale: float | None = None
        self.num_available = 0
        self._trajectories: dict[str, viser.SceneNodeHandle] = {}
        self._trajectory_frame: viser.FrameHandle | None = None
        self._trajectory_count = 0
        self._background: viser.PointCloudHandle | None = None
        self._background_key: tuple | None = None
        self.background_points = 0
        self.looking_through: int | None = None  # the camera a client looks through ("View from camera")
        self.track_set: TrackSet | None = None  # the reconstruction's 4D tracks (refresh_tracks)
        self.tracks_version = 0  # bumped whenever track_set changes
        self._tracks_stamp: int | None = None  # mtime of the tracks.json read
        self.tail_style = TailStyle()

    # ------------------------------------------------------------------------------------------ queries
    @property
    def names(self) -> list[str]:
        return self.recon.camera_names

    def point_size_world(self) -> float:
        return (self.scale or 1.0) * self.options.point_size / 100.0

    def visible_timesteps(self) -> list[int]:
        """Timesteps whose frame is visible (one, the current one, once it is loaded)."""
        with self.lock:
            return [t for t, node in sorted(self.timesteps.items()) if node.frame.visible]

    def visible_clouds(self) -> list[tuple[int, str, str, int]]:
        """``(t, stream, motion, camera)`` of every point cloud drawn now (all its parents visible)."""
        with self.lock:
            out = []
            for t, node in self.timesteps.items():
                if not node.frame.visible:
                    continue
                for (stream, motion, n), _ in node.clouds.items():
                    if self._drawn(node, stream, motion, "points"):
                        out.append((t, stream, motion, n))
            return sorted(out)

    def visible_splats(self) -> list[tuple[int, str, str, int]]:
        """``(t, stream, motion, camera)`` of every splat node drawn now (all its parents visible)."""
        with self.lock:
            out = []
            for t, node in self.timesteps.items():
                if node.frame.visible:
                    out += [(t, s, m, n) for (s, m, n) in node.splats if self._drawn(node, s, m, "splats")]
            return sorted(out)

    @staticmethod
    def _drawn(node: _Timestep, stream: Stream, motion: Motion, render: RenderMode) -> bool:
        frames = (node.streams[stream], node.motion[(stream, motion)], node.render[(stream, motion, render)])
        return all(frame.visible for frame in frames)

    def cloud_handles(self, t: int, stream: Stream) -> dict[tuple[str, int], viser.PointCloudHandle]:
        with self.lock:
            node = self.timesteps[t]
            return {(m, n): h for (s, m, n), h in node.clouds.items() if s == stream}

    def splat_handles(self, t: int, stream: Stream) -> dict[tuple[str, int], viser.GaussianSplatHandle]:
        """``(motion, camera) -> splats`` of a timestep and stream whose splats are built (non-empty ones)."""
        with self.lock:
            node = self.timesteps[t]
            return {(m, n): h for (s, m, n), h in node.splats.items() if s == stream}

    def frustums(self, t: int) -> dict[tuple[str, int], viser.CameraFrustumHandle]:
        """``(kind, camera) -> frustum`` of a loaded timestep (kind ``plain`` or ``image``)."""
        with self.lock:
            return dict(self.timesteps[t].frustums)

    def counts(self, t: int, stream: Stream) -> tuple[int, int, int]:
        """(valid pixels, after the confidence filter, kept after the budget) of a built timestep and stream."""
        with self.lock:
            return self.timesteps[t].counts[stream]

    def node_names(self) -> list[str]:
        """Names of all scene nodes this scene made (for tests and diagnostics)."""
        with self.lock:
            names = []
            for node in self.timesteps.values():
                names += [node.frame.name, node.cameras.name]
                names += [h.name for h in node.streams.values()]
                names += [h.name for h in node.motion.values()]
                names += [h.name for h in node.render.values()]
                names += [h.name for h in node.splats.values()]
                names += [h.name for h in node.camera_kinds.values()]
                names += [h.name for h in node.clouds.values()]
                names += [h.name for h in node.frustums.values()]
                if node.ground_truth is not None:
                    names += [node.ground_truth.name] + [h.name for h in node.ground_truth_nodes]
                if node.tracks is not None:
                    names += [node.tracks.name] + [h.name for h in node.track_nodes]
            names += [h.name for h in self._trajectories.values()]
            if self._background is not None:
                names.append(self._background.name)
            return sorted(names)

    # ------------------------------------------------------------------------------------------ building
    def set_available(self, num_timesteps: int) -> None:
        """The reconstruction now has ``num_timesteps`` readable timesteps (more windows were stitched)."""
        with self.lock:
            self.num_available = num_timesteps
            if self.scale is None and num_timesteps > 0:
                self.scale = scene_scale(self.recon, 0)

    def kept_range(self) -> range:
        """The timesteps held now: :attr:`SceneLimits.max_loaded_timesteps` around the current one."""
        with self.lock:
            size = max(1, self.limits.max_loaded_timesteps)
            start = min(max(self.current - size // 2, 0), max(self.num_available - size, 0))
            return range(start, min(start + size, self.num_available))

    @property
    def num_evicted(self) -> int:
        """Available timesteps not held because of the memory bound."""
        return self.num_available - len(self.kept_range())

    def next_job(self) -> SceneJob | None:
        """The most useful work left as a :class:`SceneJob`: ``evict`` t (a held timestep outside
        :meth:`kept_range`), ``drop_splats`` t stream (splats no longer wanted), ``timestep`` t stream, ``splats`` t
        stream, ``ground_truth`` t (place it with the current alignment), ``recolor`` t stream, ``tracks`` t (the
        4D tracks' tails at t, while shown), ``trajectories``, ``background``, or None. Order: evicting, dropping
        splats, then the active stream from the current timestep outwards (its tracks with it), trajectories, then
        the other stream, then the background."""
        with self.lock:
            kept = self.kept_range()
            for t in self.timesteps:
                if t not in kept:
                    return SceneJob("evict", t)
            order = sorted(kept, key=lambda t: (abs(t - self.current), t))
            active = self.options.stream
            wanted = set(order[: self.limits.splat_timesteps]) if self.options.render == "splats" else set()
            for t, node in sorted(self.timesteps.items()):
                for stream in node.splats_built:
                    if stream != active or t not in wanted:
                        return SceneJob("drop_splats", t, stream)
            streams = [active] + ([s for s in STREAMS if s != active] if self.preload_both_streams else [])
            truth = self.ground_truth
            for index, stream in enumerate(streams):
                for t in order:
                    held = self.timesteps.get(t)
                    if held is None or held.built.get(stream) != self.generation:
                        return SceneJob("timestep", t, stream)
                    node = held
                    if stream == active and t in wanted and node.splats_built.get(stream) != self.generation:
                        return SceneJob("splats", t, stream)
                    if truth is not None and node.ground_truth_version != truth.version:
                        return SceneJob("ground_truth", t)
                    key = self._color_key(node)
                    if node.coloured.get(stream) != key or (
                        stream in node.splats_built and node.splats_coloured.get(stream) != key
                    ):
                        return SceneJob("recolor", t, stream)
                    if index == 0 and self._tracks_wanted(node):
                        return SceneJob("tracks", t)
                if index == 0 and self._trajectory_count != self.num_available and self.options.show_trajectories:
                    return SceneJob("trajectories")
            if self._trajectory_count != self.num_available:
                return SceneJob("trajectories")
            if self.options.show_background and self._background_key != self._wanted_background_key():
                return SceneJob("background")
            return None

    def run_job(self, job: SceneJob) -> None:
        """Do ``job`` (one of :meth:`next_job`'s)."""
        kind, t = job.kind, job.t
        if kind == "evict":
            self.evict(t)
        elif kind == "ground_truth":
            self.build_ground_truth(t)
        elif kind == "trajectories":
            self.build_trajectories()
        elif kind == "tracks":
            self.build_tracks(t)
        elif kind == "background":
            self.build_background()
        else:
            stream = job.stream_of_job()
            if kind == "timestep":
                self.build_timestep(t, stream)
            elif kind == "splats":
                self.build_splats(t, stream)
            elif kind == "drop_splats":
                self.drop_splats(t, stream)
            elif kind == "recolor":
                self.apply_colors(t, stream)

    def evict(self, t: int) -> None:
        """Remove every node of timestep ``t`` (its data leaves viser's buffer); it is rebuilt when needed."""
        with self.lock:
            node = self.timesteps.pop(t, None)
            if node is None:
                return
            handles = [*node.splats.values(), *node.clouds.values(), *node.frustums.values()]
            handles += [*node.render.values(), *node.camera_kinds.values(), *node.motion.values()]
            handles += [*node.streams.values(), node.cameras, *node.ground_truth_nodes]
            handles += [node.ground_truth] if node.ground_truth is not None else []
            handles += [*node.track_nodes, node.tracks] if node.tracks is not None else []
            handles.append(node.frame)
            for handle in handles:
                handle.remove()

    def clear(self) -> None:
        """Remove every node this scene made (its reconstruction was deleted or replaced)."""
        with self.lock:
            for t in list(self.timesteps):
                self.evict(t)
            for handle in [*self._trajectories.values(), self._trajectory_frame, self._background]:
                if handle is not None:
                    handle.remove()
            self._trajectories, self._trajectory_frame, self._background = {}, None, None
            self._trajectory_count, self._background_key, self.num_available = 0, None, 0

    def _ensure_timestep(self, t: int) -> _Timestep:
        """Create the frames and frustums of timestep ``t`` once (with the lock held)."""
        node = self.timesteps.get(t)
        if node is not None:
            return node
        scene, opts, base = self.scene, self.options, f"/t/{t:05d}"
        frame = scene.add_frame(base, show_axes=False, visible=(t == self.current))
        streams = {s: scene.add_frame(f"{base}/{s}", show_axes=False, visible=(s == opts.stream)) for s in STREAMS}
        motion = {
            (s, m): scene.add_frame(f"{base}/{s}/{m}", show_axes=False, visible=self._motion_visible(m))
            for s in STREAMS
            for m in MOTION_SPLIT
        }
        render = {
            (s, m, r): scene.add_frame(f"{base}/{s}/{m}/{r}", show_axes=False, visible=(r == opts.render))
            for s in STREAMS
            for m in MOTION_SPLIT
            for r in RENDER_MODES
        }
        cameras = scene.add_frame(f"{base}/cameras", show_axes=False, visible=opts.show_cameras)
        kinds = {
            "plain": scene.add_frame(f"{base}/cameras/plain", show_axes=False, visible=not opts.show_images),
            "image": scene.add_frame(f"{base}/cameras/image", show_axes=False, visible=opts.show_images),
        }
        extrinsics, intrinsics = self.recon.get("extrinsics", t), self.recon.get("intrinsics", t)
        poses = camera_poses(extrinsics, intrinsics, self.recon.image_hw)
        images = self.recon.get("images", t)
        frustum_scale = (self.scale or 1.0) * self.limits.frustum_scale
        frustums: dict[tuple[str, int], viser.CameraFrustumHandle] = {}
        for n, (name, pose) in enumerate(zip(self.names, poses, strict=True)):
            color = camera_color(n)
            common: dict[str, Any] = dict(
                fov=pose.fov_y, aspect=pose.aspect, scale=frustum_scale, color=color, wxyz=pose.wxyz,
                position=pose.position, thickness=2.0, thickness_units="screen",
            )  # fmt: skip
            frustums[("plain", n)] = scene.add_camera_frustum(f"{base}/cameras/plain/{name}", **common)
            image = thumbnail(np.asarray(images[n]), self.limits.thumbnail_side)
            frustums[("image", n)] = scene.add_camera_frustum(
                f"{base}/cameras/image/{name}", image=image, format="jpeg", **common
            )
        node = _Timestep(frame, streams, motion, render, cameras, kinds, poses, frustums)
        self._show_prediction(node)
        self.timesteps[t] = node
        return node

    def build_ground_truth(self, t: int) -> None:
        """(Re)place the ground truth of timestep ``t`` with the current alignment (:class:`GroundTruthView`)."""
        with self.lock:
            truth_view = self.ground_truth
            node = self.timesteps.get(t)
            if truth_view is None or node is None or truth_view.version == 0:
                return
            version = truth_view.version
        truth = truth_view.timestep(t)  # reads and transforms: outside the lock
        with self.lock:
            node = self.timesteps.get(t)
            if node is None:
                return
            for handle in node.ground_truth_nodes + ([node.ground_truth] if node.ground_truth is not None else []):
                handle.remove()
            node.ground_truth, node.ground_truth_nodes = self._add_ground_truth(t, truth)
            node.ground_truth_version, node.truth = version, truth
            node.errors.clear()  # a new alignment: the error colouring is computed again

    def _add_ground_truth(
        self, t: int, truth: GroundTruthTimestep
    ) -> tuple[viser.FrameHandle, list[viser.SceneNodeHandle]]:
        """The ground-truth frustums and points of timestep ``t`` under ``/t/TTTTT/ground_truth``."""
        frustum_scale = (self.scale or 1.0) * self.limits.frustum_scale
        base = f"/t/{t:05d}/ground_truth"
        frame = self.scene.add_frame(base, show_axes=False, visible=self.options.show != "prediction")
        poses = camera_poses(truth.extrinsics, truth.intrinsics, self.recon.image_hw)
        nodes: list[viser.SceneNodeHandle] = []
        for name, pose, points, colors in zip(self.names, poses, truth.points, truth.colors, strict=True):
            frustum = self.scene.add_camera_frustum(
                f"{base}/cameras/{name}", fov=pose.fov_y, aspect=pose.aspect, scale=frustum_scale, color=GT_COLOR,
                wxyz=pose.wxyz, position=pose.position, thickness=1.0, thickness_units="screen",
            )  # fmt: skip
            cloud = self.scene.add_point_cloud(  # the prediction's size and shape, its own image colours
                f"{base}/points/{name}", points, colors, point_size=self.point_size_world(), point_shape="rounded"
            )
            nodes += [frustum, cloud]
        return frame, nodes

    def build_timestep(self, t: int, stream: Stream) -> None:
        """(Re)build the clouds of timestep ``t`` and ``stream`` with the current settings."""
        with self.lock:
            generation, settings = self.generation, self.settings
        cloud = filter_timestep(self.recon, t, stream, settings)  # the heavy part, outside the lock
        with self.lock:
            if generation != self.generation:
                return  # settings changed meanwhile: next_job hands this timestep out again
            node = self._ensure_timestep(t)
            base, size = f"/t/{t:05d}/{stream}", self.point_size_world()
            for n, cam in enumerate(cloud.cameras):
                node.colors[(stream, "static", n)] = cam.static_colors
                node.colors[(stream, "dynamic", n)] = cam.dynamic_colors
                node.pixels[(stream, "static", n)] = cam.static_pixels
                node.pixels[(stream, "dynamic", n)] = cam.dynamic_pixels
            key = self._color_key(node)
            colors = self._point_colors(node, stream, key)  # image colours (tinted) until the errors are computed
            for n, (name, cam) in enumerate(zip(self.names, cloud.cameras, strict=True)):
                split: tuple[tuple[Motion, np.ndarray], ...] = (
                    ("static", cam.static_points),
                    ("dynamic", cam.dynamic_points),
                )
                for motion, points in split:
                    node.clouds[(stream, motion, n)] = self.scene.add_point_cloud(
                        f"{base}/{motion}/points/{name}", points, colors[(motion, n)], point_size=size,
                        point_shape="rounded",
                    )  # fmt: skip
            node.built[stream] = generation
            node.coloured[stream] = key if key[0] == "image" else ("image", self.options.show_masks)
            node.counts[stream] = (cloud.num_valid, cloud.num_after_conf, cloud.num_kept)

    def build_splats(self, t: int, stream: Stream) -> None:
        """(Re)build the splats of timestep ``t`` and ``stream``: the kept points of :meth:`build_timestep` (same
        filters, same budget draw), lifted to Gaussians by :func:`app.viewer.data.camera_splats`."""
        from app.viewer.data import camera_splats, filter_timestep

        with self.lock:
            generation, settings, options = self.generation, self.settings, self.options.splat
        cloud = filter_timestep(self.recon, t, stream, settings)
        extrinsics, intrinsics = (np.asarray(self.recon.get(name, t)) for name in ("extrinsics", "intrinsics"))
        per_camera = camera_splats(cloud, extrinsics, intrinsics, options)
        with self.lock:
            if generation != self.generation:
                return
            node = self._ensure_timestep(t)
            for key in [key for key in node.splats if key[0] == stream]:
                node.splats.pop(key).remove()
            image_key = ("image", self.options.show_masks)
            colors = self._point_colors(node, stream, image_key)  # the points' colours, in the same order
            for n, (static, dynamic) in enumerate(per_camera):
                pairs: tuple[tuple[Motion, Gaussians], ...] = (("static", static), ("dynamic", dynamic))
                for motion, gaussians in pairs:
                    rgb = colors[(motion, n)].astype(np.float32) / 255
                    self._add_splats(node, t, stream, motion, n, gaussians, rgb)
            node.splats_built[stream], node.splats_coloured[stream] = generation, image_key

    def drop_splats(self, t: int, stream: Stream) -> None:
        """Remove the splats of timestep ``t`` and ``stream`` from the scene (and so from the browser)."""
        with self.lock:
            node = self.timesteps[t]
            for key in [key for key in node.splats if key[0] == stream]:
                node.splats.pop(key).remove()
            for table in (node.splats_built, node.splats_coloured):
                table.pop(stream, None)

    def _add_splats(
        self, node: _Timestep, t: int, stream: Stream, motion: Motion, n: int, gaussians: Gaussians, rgb: np.ndarray
    ) -> None:
        if len(gaussians) == 0:
            return  # nothing to draw (viser's splat buffer wants at least one)
        node.splats[(stream, motion, n)] = self.scene.add_gaussian_splats(
            f"/t/{t:05d}/{stream}/{motion}/splats/{self.names[n]}",
            centers=gaussians.means,
            covariances=gaussians.covariances(),
            rgbs=rgb,
            opacities=gaussians.opacities()[:, None],
        )

    def _color_key(self, node: _Timestep) -> tuple:
        """What the points of ``node`` should be coloured by now: ``("error", alignment version)`` (error colouring
        with the timestep's ground truth placed), else ``("image", masks tinted)``."""
        if self.options.coloring == "error" and self.ground_truth is not None and node.truth is not None:
            return ("error", node.ground_truth_version)
        return ("image", self.options.show_masks)

    def _point_colors(self, node: _Timestep, stream: Stream, key: tuple) -> dict[tuple[Motion, int], np.ndarray]:
        """``(motion, camera) -> uint8 [K, 3]`` colours of the points of ``node`` / ``stream`` for colour ``key``
        (the error colouring needs ``node.errors[stream]``)."""
        out: dict[tuple[Motion, int], np.ndarray] = {}
        for n in range(len(self.names)):
            for motion in MOTION_SPLIT:
                colors = node.colors[(stream, motion, n)]
                if key[0] == "error":
                    errors, limit = node.errors[stream]
                    colors = error_colors(errors[n].reshape(-1)[node.pixels[(stream, motion, n)]], limit)
                elif motion == "dynamic" and key[1] and len(colors):
                    colors = tint(colors)
                out[(motion, n)] = colors
        return out

    def _timestep_errors(self, node: _Timestep, t: int, stream: Stream) -> None:
        """Fill ``node.errors[stream]``: the distance of every pixel's point to the ground-truth surface and the top
        of the colour scale for this timestep (:mod:`app.reconstruct.error_map`)."""
        if stream in node.errors or self.ground_truth is None or node.truth is None:
            return
        points, _ = self.recon.stream(t, stream)
        errors = self.ground_truth.errors(node.truth, np.asarray(points))
        floor = RELATIVE_FLOOR * (self.scale or 1.0)
        node.errors[stream] = (errors, nice_limit(self._drawn_errors(node, stream, errors), floor))

    def _drawn_errors(self, node: _Timestep, stream: Stream, errors: np.ndarray) -> np.ndarray:
        """The errors ``[N, H, W]`` of the points drawn for ``node`` / ``stream``, flat."""
        cameras = range(len(self.names))
        parts = [errors[n].reshape(-1)[node.pixels[(stream, m, n)]] for n in cameras for m in MOTION_SPLIT]
        return np.concatenate(parts)

    def apply_colors(self, t: int, stream: Stream) -> None:
        """Re-send only the colours of ``t`` / ``stream`` (points, and splats when built): image colours with the
        dynamic ones tinted while masks are shown, or the error colouring (:meth:`_color_key`)."""
        with self.lock:
            node = self.timesteps[t]
            key = self._color_key(node)
            if key[0] == "error":
                self._timestep_errors(node, t, stream)
            colors = self._point_colors(node, stream, key)
            for (motion, n), rgb in colors.items():
                handle = node.clouds.get((stream, motion, n))
                if handle is not None and len(rgb):
                    handle.colors = rgb
            node.coloured[stream] = key
            if stream in node.splats_built:
                for (motion, n), rgb in colors.items():
                    splats = node.splats.get((stream, motion, n))
                    if splats is not None:
                        splats.rgbs = rgb.astype(np.float32) / 255
                node.splats_coloured[stream] = key

    def error_legend(self) -> tuple[float, float] | None:
        """``(limit, median)`` of the error colouring at the current timestep and stream (scene units), or None
        when the points are not coloured by their error."""
        with self.lock:
            node, stream = self.timesteps.get(self.current), self.options.stream
            if node is None or self._color_key(node)[0] != "error" or stream not in node.errors:
                return None
            errors, limit = node.errors[stream]
            kept = self._drawn_errors(node, stream, errors)
            finite = kept[np.isfinite(kept)]
            return limit, float(np.median(finite)) if finite.size else float("nan")

    # ------------------------------------------------------------------------------------------ 4D tracks
    @property
    def num_tracks(self) -> int:
        """Queries of the reconstruction's 4D tracks (0: it has none)."""
        with self.lock:
            return 0 if self.track_set is None else self.track_set.num_queries

    def refresh_tracks(self) -> bool:
        """Read the reconstruction's 4D tracks when they appeared or were rewritten (they are stored after the
        last window), or forget them when they were removed; True when that changed what is drawn."""
        stamp = tracks_stamp(self.recon.root)
        with self.lock:
            if stamp == self._tracks_stamp:
                return False
        track_set = None if stamp is None else self.recon.tracks()  # reads: outside the lock
        with self.lock:
            self.track_set, self._tracks_stamp = track_set, stamp
            self.tracks_version += 1
            for node in self.timesteps.values():
                self._remove_tracks(node)
            return True

    def _tracks_wanted(self, node: _Timestep) -> bool:
        return self.track_set is not None and self.options.show_tracks and node.tracks_version != self.tracks_version

    def _remove_tracks(self, node: _Timestep) -> None:
        for handle in [*node.track_nodes, *([node.tracks] if node.tracks is not None else [])]:
            handle.remove()
        node.tracks, node.track_nodes, node.tracks_version = None, [], 0

    def tails(self, t: int) -> TrackTails | None:
        """What the tracks draw at timestep ``t`` (None without tracks, or when they do not reach ``t``)."""
        with self.lock:
            track_set, style = self.track_set, self.tail_style
        if track_set is None or t >= track_set.points.shape[1]:
            return None
        return track_tails(track_set.points, track_set.visible, t, style)

    def build_tracks(self, t: int) -> None:
        """(Re)draw the tracks' tails and heads of held timestep ``t`` under ``/t/TTTTT/tracks``."""
        with self.lock:
            version = self.tracks_version
        tails = self.tails(t)
        with self.lock:
            node = self.timesteps.get(t)
            if node is None or version != self.tracks_version:
                return
            self._remove_tracks(node)
            base = f"/t/{t:05d}/tracks"
            node.tracks = self.scene.add_frame(base, show_axes=False)
            if tails is not None:
                node.track_nodes = add_track_nodes(self.scene, base, tails, self.point_size_world())
            node.tracks_version = version
            self._show_prediction(node)

    def build_trajectories(self) -> None:
        """One spline per camera through its centres over the loaded timesteps (small: re-sent as they grow)."""
        with self.lock:
            count = self.num_available
            if count == 0:
                return
            centres = np.stack([camera_centers(e) for e in self._extrinsics(count)])
            if self._trajectory_frame is None:
                self._trajectory_frame = self.scene.add_frame(
                    "/trajectories", show_axes=False, visible=self.options.show_trajectories
                )
            for n, name in enumerate(self.names):
                color = camera_color(n)
                points = centres[:, n].astype(np.float64)
                if len(points) < 2 or not np.isfinite(points).all():
                    continue
                self._trajectories[name] = self.scene.add_spline_catmull_rom(
                    f"/trajectories/{name}", points, color=color, thickness=2.0, thickness_units="screen"
                )
            self._trajectory_count = count

    def _extrinsics(self, count: int) -> list[np.ndarray]:
        return [np.asarray(self.recon.get("extrinsics", t), np.float64) for t in range(count)]

    def _wanted_background_key(self) -> tuple:
        return (self.options.stream, self.generation, self.num_available)

    def build_background(self) -> None:
        """Accumulate the low-dynamic points of every loaded timestep and voxel-downsample them (the most confident
        point per voxel, :func:`app.export.selection.voxel_keep_index`)."""
        with self.lock:
            key, settings, stream = self._wanted_background_key(), self.settings, self.options.stream
            count, scale = self.num_available, self.scale or 1.0
        voxel = scale * self.limits.background_voxel
        parts = []
        for t in range(count):
            points, colors, conf = static_points(self.recon, t, stream, settings, self.limits.background_max_dynamic)
            index = voxel_keep_index(points, voxel, conf)
            parts.append((points[index], colors[index], conf[index]))
        points = np.concatenate([p for p, _, _ in parts]) if parts else np.zeros((0, 3), np.float32)
        colors = np.concatenate([c for _, c, _ in parts]) if parts else np.zeros((0, 3), np.uint8)
        conf = np.concatenate([f for _, _, f in parts]) if parts else np.zeros((0,), np.float32)
        index = voxel_keep_index(points, voxel, conf)
        points, colors = points[index], colors[index]
        if len(points) > self.limits.background_max_points:
            chosen = np.random.default_rng(0).choice(len(points), self.limits.background_max_points, replace=False)
            points, colors = points[chosen], colors[chosen]
        with self.lock:
            if key != self._wanted_background_key():
                return
            self._background = self.scene.add_point_cloud(
                "/background",
                points,
                colors,
                point_size=self.point_size_world(),
                point_shape="rounded",
                visible=self.options.show_background and self.options.show != "ground truth",
            )
            self._background_key, self.background_points = key, len(points)

    # ------------------------------------------------------------------------------------------ display
    def _motion_visible(self, motion: Motion) -> bool:
        return self.options.motion in ("all", motion)

    def set_timestep(self, t: int) -> None:
        with self.lock:
            if t == self.current:
                return
            old, new = self.timesteps.get(self.current), self.timesteps.get(t)
            if old is not None:
                old.frame.visible = False
            if new is not None:
                new.frame.visible = True
            self.current = t

    def set_stream(self, stream: Stream) -> None:
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {STREAMS}, got {stream!r}")
        with self.lock:
            self.options.stream = stream
            for node in self.timesteps.values():
                self._show_prediction(node)

    def set_motion(self, motion: Motion) -> None:
        check_choice(motion, MOTIONS, "motion filter")
        with self.lock:
            self.options.motion = motion
            for node in self.timesteps.values():
                for (_, kind), handle in node.motion.items():
                    handle.visible = self._motion_visible(kind)

    def set_render(self, render: RenderMode) -> None:
        """Draw points or splats (:data:`RENDER_MODES`); the worker builds (or, for points, removes) the splats."""
        if render not in RENDER_MODES:
            raise ValueError(f"render mode must be one of {RENDER_MODES}, got {render!r}")
        with self.lock:
            self.options.render = render
            for node in self.timesteps.values():
                for (_, _, kind), handle in node.render.items():
                    handle.visible = kind == render

    def _show_prediction(self, node: _Timestep) -> None:
        """Visibility of the prediction's nodes of ``node`` from the options: the active stream and the predicted
        cameras, unless only the ground truth is shown; the frustums' images, unless a client looks through a
        camera (then that camera's own frustum is hidden too)."""
        prediction = self.options.show != "ground truth"
        for name, handle in node.streams.items():
            handle.visible = name == self.options.stream and prediction
        node.cameras.visible = self.options.show_cameras and prediction
        images = self.options.show_images and self.looking_through is None
        node.camera_kinds["image"].visible = images
        node.camera_kinds["plain"].visible = not images
        for (kind, n), frustum in node.frustums.items():
            if kind == "plain":
                frustum.visible = n != self.looking_through
        if node.ground_truth is not None:
            node.ground_truth.visible = self.options.show != "prediction"
        if node.tracks is not None:
            node.tracks.visible = self.options.show_tracks and prediction

    def set_show(self, show: ShowMode) -> None:
        """Draw the prediction, the ground truth, or both (:data:`~app.common.vocab.SHOW_MODES`)."""
        check_choice(show, SHOW_MODES, "show mode")
        with self.lock:
            self.options.show = show
            for node in self.timesteps.values():
                self._show_prediction(node)
            if self._background is not None:
                self._background.visible = self.options.show_background and show != "ground truth"

    def set_coloring(self, coloring: PointColoring) -> None:
        """Colour the prediction by its images or by its distance to the ground truth; the worker re-sends the
        colours (current timestep first)."""
        check_choice(coloring, POINT_COLORINGS, "point colouring")
        with self.lock:
            self.options.coloring = coloring

    def look_through(self, n: int | None) -> None:
        """A client looks through camera ``n`` (None: no longer): the frustums drop their images (the photo would
        fill the view) and camera ``n``'s frustum is hidden, so the view shows the reconstruction."""
        with self.lock:
            if n == self.looking_through:
                return
            self.looking_through = n
            for node in self.timesteps.values():
                self._show_prediction(node)

    def set_show_cameras(self, show: bool) -> None:
        with self.lock:
            self.options.show_cameras = show
            for node in self.timesteps.values():
                self._show_prediction(node)

    def set_show_images(self, show: bool) -> None:
        with self.lock:
            self.options.show_images = show
            for node in self.timesteps.values():
                self._show_prediction(node)

    def set_show_trajectories(self, show: bool) -> None:
        with self.lock:
            self.options.show_trajectories = show
            if self._trajectory_frame is not None:
                self._trajectory_frame.visible = show

    def set_show_tracks(self, show: bool) -> None:
        """Show the 4D tracks' tails; the worker builds those of the held timesteps not built yet."""
        with self.lock:
            self.options.show_tracks = show
            for node in self.timesteps.values():
                self._show_prediction(node)

    def set_show_background(self, show: bool) -> None:
        with self.lock:
            self.options.show_background = show
            if self._background is not None:
                self._background.visible = show and self.options.show != "ground truth"

    def set_show_masks(self, show: bool) -> None:
        """Masks shown = dynamic points tinted; the worker re-sends their colours (see :meth:`next_job`)."""
        with self.lock:
            self.options.show_masks = show

    def set_point_size(self, percent: float) -> None:
        with self.lock:
            self.options.point_size = float(percent)
            size = self.point_size_world()
            for node in self.timesteps.values():
                for handle in node.clouds.values():
                    handle.point_size = size
                for truth_node in node.ground_truth_nodes:
                    if isinstance(truth_node, viser.PointCloudHandle):
                        truth_node.point_size = size
                for track_node in node.track_nodes:  # the tracks' heads
                    if isinstance(track_node, viser.PointCloudHandle):
                        track_node.point_size = TRACK_HEAD_SIZE * size
            if self._background is not None:
                self._background.point_size = size

    def set_cloud_settings(self, **changes) -> None:
        """Change :class:`CloudSettings` fields; every cloud is rebuilt by the worker (current timestep first)."""
        with self.lock:
            new = replace(self.settings, **changes)
            if new != self.settings:
                self.settings = new
                self.generation += 1

    def camera_view(self, n: int) -> CameraPose | None:
        """Pose of camera ``n`` at the current timestep (None until that timestep is loaded)."""
        with self.lock:
            node = self.timesteps.get(self.current)
            return None if node is None else node.poses[n]
