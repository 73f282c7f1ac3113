"""The viewer's GUI panel (viser typed handles). Callbacks only flip scene visibility, change settings and wake
the worker; anything heavy (filtering, downsampling, exports) runs on other threads."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import viser

from app.common.text import plural
from app.common.vocab import (
    RENDER_MODES,
    SCENE_FORMATS,
    SHOW_MODES,
    ExportFormat,
    Motion,
    PointColoring,
    SceneFormat,
    Stream,
    check_choice,
)
from app.export.api import FORMATS, ExportOptions, Selection, export_reconstruction
from app.reconstruct.error_map import color_bar, legend_text
from app.reconstruct.store import Reconstruction
from app.viewer.recording import RecordingOptions, export_scene
from app.viewer.scene import STREAM_LABELS, ViewerScene

if TYPE_CHECKING:  # a type only: importing the live run would load the pipeline
    from app.viewer.live import LiveState


@dataclass(frozen=True)
class ExportChoice:
    """One entry of the export panel: the export ``fmt``, the file ``suffix``, and the ``tag`` that ends the
    download's name, so two formats with one suffix (points and splats are both .ply) never share a name."""

    fmt: ExportFormat | SceneFormat
    suffix: str
    tag: str


EXPORT_FORMATS = {
    "PLY points": ExportChoice("ply", ".ply", "points"),
    "GLB points + cameras": ExportChoice("glb", ".glb", "scene"),
    "mesh (GLB)": ExportChoice("mesh", ".glb", "mesh"),
    "Gaussian splats (PLY)": ExportChoice("splat", ".ply", "splats"),
    "NPZ (VGGT keys)": ExportChoice("npz", ".npz", "arrays"),
    "COLMAP (zip)": ExportChoice("colmap", "", "colmap"),
    "4D scene (.viser)": ExportChoice("viser", ".viser", "scene4d"),
}
EXPORT_SCOPES = ("current timestep", "all loaded timesteps")
UNTRAINED_NOTICE = "Untrained weights: the model is random, the reconstruction is meaningless (testing only)."
MOTION_LABELS: dict[str, Motion] = {
    "all": "all",
    "static only": "static",
    "dynamic only": "dynamic",
}  # GUI label -> Motion
COLORING_LABELS: dict[str, PointColoring] = {
    "image": "image",
    "error vs ground truth": "error",
}  # GUI label -> PointColoring


class ViewerActions(Protocol):
    """What the panel asks of the viewer (:class:`app.viewer.server.Viewer` implements it); ``config`` needs
    ``notice``, ``fps``, ``loop``, ``stream``, ``render``, ``conf_percentile``, ``min_views``, ``max_views``,
    ``point_size``, ``point_budget``, ``show_background``."""

    config: Any

    def set_timestep(self, t: int) -> None: ...

    def with_scene(self, action: Callable[[ViewerScene], None]) -> None: ...

    def num_timesteps(self) -> int: ...

    def camera_names(self) -> list[str]: ...

    def reconstruction_root(self) -> Path | None: ...

    def view_from_camera(self, client: viser.ClientHandle, n: int) -> None: ...


class ViewerGui:
    """Builds the panel on ``server.gui`` and wires it to ``viewer`` (any :class:`ViewerActions`)."""

    def __init__(self, server: viser.ViserServer, viewer: ViewerActions) -> None:
        self.server, self.viewer = server, viewer
        config = viewer.config
        gui = server.gui
        self._export_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vggt-mv-export")
        self.playing = False
        gui.add_markdown("**vggt-mv** 4D viewer")
        self.notice = gui.add_markdown("", visible=False)
        if config.notice:
            self.show_notice(config.notice)
        self.status = gui.add_markdown("starting…")

        with gui.add_folder("Time"):
            self.timestep = gui.add_slider("Timestep", min=0, max=1, step=1, initial_value=0, disabled=True)
            self.play = gui.add_button("Play", icon=viser.Icon.PLAYER_PLAY)
            self.fps = gui.add_number("FPS", initial_value=config.fps, min=0.5, max=60.0, step=0.5)
            self.loop = gui.add_checkbox("Loop", initial_value=config.loop)
        with gui.add_folder("Points") as points:
            self.stream = gui.add_dropdown(
                "Stream", tuple(STREAM_LABELS.values()), initial_value=STREAM_LABELS[config.stream]
            )
            self.render = gui.add_dropdown("Render", RENDER_MODES, initial_value=config.render)
            self.motion = gui.add_dropdown("Motion", tuple(MOTION_LABELS), initial_value="all")
            self.conf = gui.add_slider(
                "Conf. percentile", min=0.0, max=99.0, step=1.0, initial_value=float(config.conf_percentile)
            )
            self.min_views = gui.add_slider(
                "Seen by at least K cameras",
                min=0,
                max=max(1, int(config.max_views)),
                step=1,
                initial_value=int(config.min_views),
            )
            self.point_size = gui.add_slider(
                "Point size (%)", min=0.05, max=3.0, step=0.05, initial_value=float(config.point_size)
            )
            self.budget = gui.add_number(
                "Points / timestep", initial_value=int(config.point_budget), min=1000, max=5_000_000, step=10_000
            )
        with gui.add_folder("Show"):
            self.show_cameras = gui.add_checkbox("Cameras", initial_value=True)
            self.show_images = gui.add_checkbox("Images", initial_value=True)
            self.show_trajectories = gui.add_checkbox("Trajectories", initial_value=True)
            # shown once the reconstruction has 4D tracks (set_tracks_available)
            self.show_tracks = gui.add_checkbox("Point tracks", initial_value=True, visible=False)
            self.show_masks = gui.add_checkbox("Dynamic masks (tint)", initial_value=True)
            self.show_background = gui.add_checkbox("Static background", initial_value=config.show_background)
        with gui.add_folder("Ground truth", visible=config.ground_truth is not None) as self.truth_folder:
            self.show = gui.add_dropdown("Show", SHOW_MODES, initial_value="both")
            self.coloring = gui.add_dropdown("Colour", tuple(COLORING_LABELS), initial_value="image")
            self.error_bar = gui.add_image(color_bar(256, 10), format="png", visible=False)
            self.error_legend = gui.add_markdown("", visible=False)
        with gui.add_folder("Camera view"):
            self.camera = gui.add_dropdown("Camera", ("(none yet)",), initial_value="(none yet)")
            self.view_from = gui.add_button("View from camera", icon=viser.Icon.CAMERA)
        # right after "Points" (whose filters it uses), expanded: in view without scrolling in a 1280x800 window
        with gui.add_folder("Export", order=points.order + 0.5):
            self.export_format = gui.add_dropdown("Format", tuple(EXPORT_FORMATS), initial_value="PLY points")
            self.export_scope = gui.add_dropdown("Timesteps", EXPORT_SCOPES, initial_value=EXPORT_SCOPES[0])
            self.export_button = gui.add_button("Export and download", icon=viser.Icon.DOWNLOAD)
            self.export_status = gui.add_markdown("uses the stream, motion, confidence and views settings above")
        self._wire()

    # ------------------------------------------------------------------------------------------ wiring
    def _wire(self) -> None:
        viewer = self.viewer
        stream_by_label = {label: key for key, label in STREAM_LABELS.items()}

        @self.timestep.on_update
        def _(_: viser.GuiEvent) -> None:
            viewer.set_timestep(int(self.timestep.value))

        @self.play.on_click
        def _(_: viser.GuiEvent) -> None:
            self.set_playing(not self.playing)

        @self.stream.on_update
        def _(_: viser.GuiEvent) -> None:
            viewer.with_scene(lambda scene: scene.set_stream(stream_by_label[self.stream.value]))

        @self.render.on_update
        def _(_: viser.GuiEvent) -> None:
            viewer.with_scene(lambda scene: scene.set_render(self.render.value))

        @self.motion.on_update
        def _(_: viser.GuiEvent) -> None:
            viewer.with_scene(lambda scene: scene.set_motion(MOTION_LABELS[self.motion.value]))

        @self.conf.on_update
        def _(_: viser.GuiEvent) -> None:
            viewer.with_scene(lambda scene: scene.set_cloud_settings(conf_percentile=float(self.conf.value)))

        @self.min_views.on_update
        def _(_: viser.GuiEvent) -> None:
            viewer.with_scene(lambda scene: scene.set_cloud_settings(min_views=int(self.min_views.value)))

        @self.budget.on_update
        def _(_: viser.GuiEvent) -> None:
            viewer.with_scene(lambda scene: scene.set_cloud_settings(point_budget=max(1, int(self.budget.value))))

        @self.point_size.on_update
        def _(_: viser.GuiEvent) -> None:
            viewer.with_scene(lambda scene: scene.set_point_size(float(self.point_size.value)))

        toggles = (
            (self.show_cameras, "set_show_cameras"),
            (self.show_images, "set_show_images"),
            (self.show_trajectories, "set_show_trajectories"),
            (self.show_tracks, "set_show_tracks"),
            (self.show_masks, "set_show_masks"),
            (self.show_background, "set_show_background"),
        )
        for handle, method in toggles:
            handle.on_update(self._toggle(handle, method))

        @self.show.on_update
        def _(_: viser.GuiEvent) -> None:
            viewer.with_scene(lambda scene: scene.set_show(self.show.value))

        @self.coloring.on_update
        def _(_: viser.GuiEvent) -> None:
            viewer.with_scene(lambda scene: scene.set_coloring(COLORING_LABELS[self.coloring.value]))

        @self.view_from.on_click
        def _(event: viser.GuiEvent) -> None:
            if event.client is not None and self.camera.value in viewer.camera_names():
                viewer.view_from_camera(event.client, viewer.camera_names().index(self.camera.value))

        @self.export_button.on_click
        def _(event: viser.GuiEvent) -> None:
            client = event.client
            self.export_button.disabled = True
            self.export_status.content = "exporting…"
            self._export_pool.submit(self._export, client)

    def _toggle(self, handle: viser.GuiCheckboxHandle, method: str) -> Callable[[viser.GuiEvent], None]:
        """The callback of a Show checkbox: the scene's ``method`` (``set_show_cameras``, ...) with its value."""

        def update(_: viser.GuiEvent) -> None:
            self.viewer.with_scene(lambda scene: getattr(scene, method)(bool(handle.value)))

        return update

    # ------------------------------------------------------------------------------------------ updates
    def set_playing(self, playing: bool) -> None:
        self.playing = playing
        self.play.label = "Pause" if playing else "Play"
        self.play.icon = viser.Icon.PLAYER_PAUSE if playing else viser.Icon.PLAYER_PLAY

    def set_error_legend(self, legend: tuple[float, float] | None) -> None:
        """Show the error colouring's scale (``(limit, median)`` in scene units at the current timestep), or hide it."""
        if legend is None:
            self.error_bar.visible = self.error_legend.visible = False
            return
        self.error_legend.content = legend_text(*legend)
        self.error_bar.visible = self.error_legend.visible = True

    def set_tracks_available(self, count: int) -> None:
        """The reconstruction has ``count`` 4D point tracks (0: none): the Show folder's toggle appears with it."""
        self.show_tracks.label = f"Point tracks ({count})" if count else "Point tracks"
        self.show_tracks.visible = count > 0

    def show_notice(self, text: str) -> None:
        """Show ``text`` as the warning under the title."""
        self.notice.content = f"⚠️ **{text}**"
        self.notice.visible = True

    def set_num_timesteps(self, count: int, camera_names: list[str]) -> None:
        """More timesteps are readable: widen the slider (and fill the camera list once)."""
        if count > 0:
            self.timestep.max = max(count - 1, 1)
            self.timestep.disabled = count < 2
        if camera_names and tuple(self.camera.options) != tuple(camera_names):
            self.camera.options = tuple(camera_names)
            self.camera.value = camera_names[0]  # type: ignore[misc]  # viser's setter, apart from its getter, reads as read-only
            self.min_views.max = max(1, len(camera_names) - 1)  # other cameras of the rig

    def playback_step(self) -> float:
        """Advance one timestep when playing; returns the seconds to wait before the next step."""
        count = self.viewer.num_timesteps()
        if self.playing and count > 1:
            t = int(self.timestep.value) + 1
            if t >= count:
                if self.loop.value:
                    t = 0
                else:
                    t = count - 1
                    self.set_playing(False)
            self.timestep.value = t  # type: ignore[misc]  # viser's setter, apart from its getter, reads as read-only
        return 1.0 / max(float(self.fps.value), 0.1)

    # ------------------------------------------------------------------------------------------ export
    def _export(self, client: viser.ClientHandle | None) -> None:
        try:
            message = self._export_and_send(client)
        except Exception as error:  # shown to the user, never kills the viewer
            message = f"export failed: {error}"
        finally:
            self.export_button.disabled = False
        self.export_status.content = message

    def _export_and_send(self, client: viser.ClientHandle | None) -> str:
        viewer = self.viewer
        root = viewer.reconstruction_root()
        count = viewer.num_timesteps()
        if root is None or count == 0:
            return "nothing to export yet"
        recon = Reconstruction.open(root)  # this thread's own reader
        choice = EXPORT_FORMATS[self.export_format.value]
        current = int(self.timestep.value) if self.export_scope.value == EXPORT_SCOPES[0] else None
        timesteps = (current,) if current is not None else tuple(range(count))
        stream = {label: key for key, label in STREAM_LABELS.items()}[self.stream.value]
        selection = Selection(
            timesteps=timesteps,
            stream=stream,
            conf_percentile=float(min(self.conf.value, 99.0)),
            motion=MOTION_LABELS[self.motion.value],
            min_views=int(self.min_views.value),
        )
        stem = download_stem(Path(root).name, current, stream, choice)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="vggt-mv-export-") as tmp:
            out = Path(tmp) / f"{stem}{choice.suffix}"
            if choice.fmt in SCENE_FORMATS:  # drawn and played as the viewer shows it now
                playback = RecordingOptions(
                    render=self.render.value,
                    fps=float(self.fps.value),
                    point_budget=int(self.budget.value),
                    tracks=bool(self.show_tracks.value),
                )
                scene_format = check_choice(choice.fmt, SCENE_FORMATS, "scene format")
                written = export_scene(recon, scene_format, selection, out, playback, overwrite=True)
            else:
                options = ExportOptions(merge=True, overwrite=True)
                export_format = check_choice(choice.fmt, FORMATS, "export format")
                written = export_reconstruction(recon, export_format, selection, out, options)
            if choice.fmt == "colmap":
                archive = shutil.make_archive(str(Path(tmp) / stem), "zip", root_dir=written[0])
                path = Path(archive)
            else:
                path = written[0]
            content = path.read_bytes()
        if client is not None:
            client.send_file_download(path.name, content, save_immediately=True)
        size_mb = len(content) / 1e6
        return f"exported {path.name} ({size_mb:.1f} MB, {time.perf_counter() - started:.1f} s)"

    def shutdown(self) -> None:
        self._export_pool.shutdown(wait=False, cancel_futures=True)


def download_stem(recon_name: str, timestep: int | None, stream: Stream, choice: ExportChoice) -> str:
    """The name (without suffix) of a download: ``<recon>_<t00012|all>_<stream>_<format tag>``."""
    scope = "all" if timestep is None else f"t{timestep:05d}"
    return f"{recon_name}_{scope}_{stream}_{choice.tag}"


def format_status(
    loaded: int, available: int, planned: int, num_cameras: int, pipeline: LiveState | None, complete: bool
) -> str:
    """The status line, in words: how many timesteps there are (and of how many planned while a run is going), how
    many the viewer is still loading, the cameras, and the pipeline's progress and speed."""
    if planned and planned > available:
        parts = [f"{available} of {planned} timesteps reconstructed"]
    else:
        parts = [plural(available, "timestep")]
    parts.append(plural(num_cameras, "camera"))
    if loaded < available:
        parts.append(f"loading {available - loaded} more into the viewer")
    if pipeline is not None:
        state, windows = pipeline.state, pipeline.windows
        if windows and state == "running":
            parts.append(f"window {windows[0]} of {windows[1]} done")
        if pipeline.frames_per_s and state == "running":
            parts.append(f"{pipeline.frames_per_s:.1f} frames/s")
        if pipeline.eta_s and state == "running":
            parts.append(f"about {time.strftime('%H:%M:%S', time.gmtime(pipeline.eta_s))} left")
        if state:
            parts.append(state)
    elif complete:
        parts.append("complete")
    return " · ".join(parts)
