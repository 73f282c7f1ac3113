"""``vggt-mv-view`` (also ``vggt-mv view``): the viser 4D viewer.

``vggt-mv-view [PATH]`` opens

* a **Reconstruction** folder (has ``meta.json``): instantly, no model; a folder still being written by
  ``vggt-mv run`` fills up as its windows land (polled every second);
* a **capture** (anything ``vggt-mv run`` reads): the pipeline runs in a background thread into ``--out`` (a new
  temporary folder by default, printed) and each window appears as soon as it is stitched;
* nothing: the bundled demo rig (``assets/demo_rig``) with the bundled demo weights (``assets/demo_weights``,
  a ``save_pretrained`` folder) when they exist, else the tiny model with random weights and a notice.

The server binds ``127.0.0.1`` (``--host`` to change), serves on ``--port`` (8080, or the next free port), prints
the URL and opens a browser unless ``--no-browser``. Only same-origin pages may connect, and on a non-loopback
``--host`` only with the random access token in the printed URL (:mod:`app.viewer.access`).
Ctrl-C (or SIGTERM) stops the pipeline after its current window (what is written stays, resumable with
``vggt-mv run --resume``) and shuts the server down.

**Point budget.** Every loaded timestep is sent once, both streams (so the stream toggle and time scrubbing only
flip visibility). The browser holds about 9 bytes per point (float16 xyz + RGB): the default budget of
:data:`DEFAULT_POINT_BUDGET` points per timestep and stream is ~1.8 MB per timestep, so 200 timesteps fit in
~400 MB of GPU memory and the one visible timestep (100k points) draws at full frame rate on integrated GPUs.
Lower it (``--point-budget`` or the GUI) for long captures, raise it for a close look at a few timesteps.

Architecture: :mod:`app.viewer.data` (numpy: filters, poses, background), :mod:`app.viewer.scene` (viser scene
nodes and their visibility), :mod:`app.viewer.gui` (the panel), :mod:`app.viewer.live` (the pipeline thread),
this module (:class:`ViewerConfig`, :class:`Viewer`: threads and server). The command line is
:mod:`app.cli.view`.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import warnings
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import viser

from app.capture.ground_truth import GroundTruth, GroundTruthError
from app.capture.truth import open_ground_truth
from app.common.vocab import RENDER_MODES, STREAMS, RenderMode, Stream
from app.common.worker import Worker
from app.export.colmap import load_pycolmap
from app.export.selection import DEFAULT_CONF_PERCENTILE
from app.reconstruct.calibrated import agreement_status
from app.reconstruct.record import RunSettings
from app.reconstruct.store import Reconstruction, ReconstructionError
from app.viewer.access import AccessPolicy, install_guard, is_loopback
from app.viewer.data import CloudSettings, camera_poses, overview_camera
from app.viewer.ground_truth import GroundTruthView
from app.viewer.gui import UNTRAINED_NOTICE, ViewerGui, format_status
from app.viewer.live import LiveRun, LiveRunSpec
from app.viewer.scene import SceneOptions, ViewerScene

DEFAULT_POINT_BUDGET = 100_000
LOOK_GRACE_S = 0.5  # camera updates this soon after "View from camera" may predate it: ignored


@dataclass
class ViewerConfig:
    """Server and initial display settings. ``port=0`` picks any free port (tests); ``open_browser``: open a tab
    on :meth:`Viewer.start`."""

    host: str = "127.0.0.1"
    port: int = 8080
    open_browser: bool = True
    stream: Stream = "geo"
    render: RenderMode = "points"
    conf_percentile: float = DEFAULT_CONF_PERCENTILE
    min_views: int = 0  # "Seen by at least K cameras" (0: off)
    max_views: int = 8  # the control's upper end (other cameras of a rig)
    point_budget: int = DEFAULT_POINT_BUDGET
    point_size: float = 0.4  # percent of the median depth of the first timestep
    fps: float = 5.0
    loop: bool = True
    show_background: bool = False
    preload_both_streams: bool = True
    poll_interval_s: float = 1.0
    notice: str | None = None
    label: str = "vggt-mv"
    ground_truth: Path | None = None  # shown next to a reconstruction folder (app.viewer.ground_truth)


def made_with_random_weights(recon: Reconstruction) -> bool:
    """The reconstruction's model provenance (meta.json ``model``) says its weights were random."""
    return recon.record.random_weights


class Viewer:
    """The viser server, its scene and GUI, a worker thread (loads timesteps, applies filters, builds the
    background) and a playback thread. ``open(path)`` shows a reconstruction; ``run_live(spec)`` runs the
    pipeline and shows it as it grows."""

    def __init__(self, config: ViewerConfig | None = None) -> None:
        self.config = config or ViewerConfig()
        if self.config.stream not in STREAMS:
            raise ValueError(f"stream must be one of {STREAMS}, got {self.config.stream!r}")
        if self.config.render not in RENDER_MODES:
            raise ValueError(f"render must be one of {RENDER_MODES}, got {self.config.render!r}")
        self.server: viser.ViserServer | None = None
        self.gui: ViewerGui | None = None
        self.scene: ViewerScene | None = None
        self.recon: Reconstruction | None = None
        self.live: LiveRun | None = None
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[Worker] = []
        self._complete = False
        self._camera_set = False
        self.errors: list[str] = []
        self.notices: list[str] = []  # what the status line says about the folder shown (replaced, reopened)
        self._gone: Path | None = None  # a folder whose reconstruction was deleted or replaced, watched
        self.access: AccessPolicy | None = None
        self._truth: GroundTruth | None = None  # the --ground-truth, read by check_ground_truth()
        # "View from camera": (client id, the camera's position, scene scale, when), until that client's view moves
        self._looking: tuple[int, np.ndarray, float, float] | None = None
        self._watched: set[int] = set()  # clients whose camera updates we follow

    def check_ground_truth(self) -> None:
        """Read ``config.ground_truth`` now (a :class:`~app.capture.ground_truth.GroundTruthError` naming the file
        when it cannot be used), so a live run does not find out only when its first window lands."""
        if self.config.ground_truth is not None:
            self._truth = open_ground_truth(self.config.ground_truth)

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> Viewer:
        config = self.config
        self.server = viser.ViserServer(host=config.host, port=config.port, label=config.label, verbose=False)
        self.access = AccessPolicy.for_host(config.host, self.server.get_port())
        try:
            install_guard(self.access.port, self.access)
        except Exception:
            self.server.stop()
            raise
        if not is_loopback(config.host):
            warnings.warn(
                f"--host {config.host}: the viewer is reachable from other machines; only URLs with its access "
                "token (printed with the URL) are served",
                stacklevel=2,
            )
        self.server.scene.set_up_direction("-y")  # OpenCV world: y points down
        self.gui = ViewerGui(self.server, self)
        for target, name in ((self._worker, "vggt-mv-viewer-worker"), (self._player, "vggt-mv-viewer-playback")):
            self._threads.append(Worker(target, name=name).start())  # they stop on self._stopping
        if config.open_browser:
            url = self.url
            Worker(lambda _: webbrowser.open(url), name="vggt-mv-open-browser").start()
        return self

    def _server(self) -> viser.ViserServer:
        if self.server is None:
            raise RuntimeError("start() the viewer first")
        return self.server

    def _panel(self) -> ViewerGui:
        if self.gui is None:
            raise RuntimeError("start() the viewer first")
        return self.gui

    @property
    def port(self) -> int:
        assert self.server is not None, "start() the viewer first"
        return self.server.get_port()

    @property
    def url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        suffix = "" if self.access is None else self.access.url_suffix()
        return f"http://{shown}:{self.port}{suffix}"

    def open(self, path: str | Path) -> None:
        """Show the reconstruction in ``path`` (complete or being written)."""
        recon = Reconstruction.open(path)
        truth = None
        if self.config.ground_truth is not None:
            truth = GroundTruthView(recon, self._truth or open_ground_truth(self.config.ground_truth))
            if self.live is None:
                truth.refresh_alignment()  # a folder on disk: a ground truth that does not fit is refused now
        scene = ViewerScene(
            self._server().scene,
            recon,
            CloudSettings(
                conf_percentile=self.config.conf_percentile,
                point_budget=self.config.point_budget,
                min_views=self.config.min_views,
            ),
            SceneOptions(
                stream=self.config.stream,
                render=self.config.render,
                point_size=self.config.point_size,
                show_background=self.config.show_background,
            ),
            preload_both_streams=self.config.preload_both_streams,
            ground_truth=truth,
        )
        if self.gui is not None:
            scene.options.show_background = bool(self.gui.show_background.value)
            scene.options.render = self.gui.render.value
            scene.options.show_tracks = bool(self.gui.show_tracks.value)
            if made_with_random_weights(recon):
                self.gui.show_notice(UNTRAINED_NOTICE)
        with self._lock:
            self.recon, self.scene = recon, scene
        self.wake()

    def run_live(self, spec: LiveRunSpec) -> LiveRun:
        """Run the pipeline on a capture in the background; its windows stream into this viewer."""
        self.live = LiveRun(spec, on_ready=self.open, on_window=self.wake).start()
        return self.live

    def stop(self, pipeline_timeout: float | None = None) -> None:
        """Stop the pipeline after its current window (waits up to ``pipeline_timeout`` s), then the server."""
        if self.live is not None:
            self.live.stop(pipeline_timeout)
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.gui is not None:
            self.gui.shutdown()
        if self.server is not None:
            self.server.stop()

    def wake(self) -> None:
        """Something changed (a window landed, a setting moved): let the worker look now."""
        self._wake.set()

    # ------------------------------------------------------------------------------------------ GUI hooks
    def with_scene(self, action: Callable[[ViewerScene], None]) -> None:
        """Apply a display change to the scene (if one is open) and wake the worker."""
        scene = self.scene
        if scene is not None:
            action(scene)
        self.wake()

    def set_timestep(self, t: int) -> None:
        self.with_scene(lambda scene: scene.set_timestep(t))

    def num_timesteps(self) -> int:
        scene = self.scene
        return 0 if scene is None else scene.num_available

    def camera_names(self) -> list[str]:
        recon = self.recon
        return [] if recon is None else recon.camera_names

    def reconstruction_root(self) -> Path | None:
        recon = self.recon
        return None if recon is None else recon.root

    def view_from_camera(self, client: viser.ClientHandle, n: int) -> None:
        """Put ``client``'s view at camera ``n`` of the current timestep, with its predicted vertical FoV, and show
        the reconstruction through it: the frustums' images are hidden until the view moves away
        (:meth:`ViewerScene.look_through`)."""
        scene = self.scene
        pose = None if scene is None else scene.camera_view(n)
        if scene is None or pose is None:
            return
        since = time.monotonic()
        self._looking = (client.client_id, np.asarray(pose.position, np.float64), scene.scale or 1.0, since)
        scene.look_through(n)
        if client.client_id not in self._watched:
            self._watched.add(client.client_id)
            client.camera.on_update(self._camera_moved)
        with client.atomic():
            client.camera.position = pose.position
            client.camera.wxyz = pose.wxyz
            client.camera.fov = pose.fov_y

    def _camera_moved(self, camera: viser.CameraHandle) -> None:
        """A client's view changed: once the one looking through a camera moves away, the images come back."""
        looking, scene = self._looking, self.scene
        if looking is None or scene is None or camera.client.client_id != looking[0]:
            return
        _, position, scale, since = looking
        if time.monotonic() - since < LOOK_GRACE_S:
            return  # an update the browser sent before it took the new pose
        if np.linalg.norm(np.asarray(camera.position, np.float64) - position) > 0.02 * scale:
            self._looking = None
            scene.look_through(None)

    # ------------------------------------------------------------------------------------------ threads
    def _poll(self) -> None:
        """Pick up newly stitched windows (from our pipeline thread or another process)."""
        recon, scene = self.recon, self.scene
        if recon is None or scene is None:
            if self._gone is not None and Reconstruction.exists(self._gone):
                self._reopen(self._gone)
            return
        if recon.replaced():
            self._forget(recon)
            return
        if not self._complete:
            recon.windows(refresh=True)
            self._complete = recon.refresh_status() == "complete"
        count = recon.num_timesteps
        if count != scene.num_available:
            self._align_ground_truth(scene)  # more windows: a better fit (the worker re-places the ground truth)
            scene.set_available(count)
            self._panel().set_num_timesteps(count, recon.camera_names)
            if count and not self._camera_set:
                self._set_initial_camera(recon, scene)
        if scene.refresh_tracks():  # 4D tracks are stored after the last window
            self._panel().set_tracks_available(scene.num_tracks)

    def _align_ground_truth(self, scene: ViewerScene) -> None:
        """Refit the ground truth's alignment on the windows stored now; a ground truth that does not fit the
        reconstruction is reported in the status line and dropped (the reconstruction stays on screen)."""
        if scene.ground_truth is None:
            return
        try:
            scene.ground_truth.refresh_alignment()
        except GroundTruthError as error:
            scene.ground_truth = None
            self.errors.append(f"ground truth not shown: {error}")

    def _forget(self, recon: Reconstruction) -> None:
        """The folder shown was deleted or replaced: drop every node (no deleted data stays on screen) and watch
        the folder for a new reconstruction."""
        with self._lock:
            if self.scene is not None:
                self.scene.clear()
            self.recon, self.scene, self._complete = None, None, False
            self._gone = recon.root
        self._panel().set_num_timesteps(0, [])
        self._panel().set_tracks_available(0)
        self.notices.append(f"{recon.root} was deleted or replaced (run --overwrite?); its old data is not shown")

    def _reopen(self, root: Path) -> None:
        try:
            self.open(root)
        except ReconstructionError:
            return  # still being written: try again at the next poll
        self._gone = None
        self.notices.append(f"{root}: showing the new reconstruction")

    def _set_initial_camera(self, recon: Reconstruction, scene: ViewerScene) -> None:
        """Look at the scene from a little behind and above camera 0 at the first timestep."""
        pose = camera_poses(recon.get("extrinsics", 0)[:1], recon.get("intrinsics", 0)[:1], recon.image_hw)[0]
        position, look_at, up = overview_camera(pose, scene.scale or 1.0)
        server = self._server()
        initial = server.initial_camera
        initial.position, initial.look_at, initial.up = position, look_at, up
        for client in server.get_clients().values():
            with client.atomic():
                client.camera.position = position
                client.camera.look_at = look_at
                client.camera.up_direction = up
        self._camera_set = True

    def _status(self) -> str:
        scene, recon = self.scene, self.recon
        pipeline = None if self.live is None else self.live.snapshot()
        if scene is None or recon is None:
            text = format_status(0, 0, 0, 0, pipeline, False)
        else:
            loaded = sum(1 for node in scene.timesteps.values() if node.built.get(scene.options.stream) is not None)
            planned = recon.record.num_timesteps_planned or 0
            text = format_status(loaded, scene.num_available, planned, recon.num_cameras, pipeline, self._complete)
            if scene.num_evicted:
                text += (
                    f"\n\nmemory bound: {len(scene.kept_range())} timesteps around the slider are held, "
                    f"{scene.num_evicted} others are reloaded when the slider gets there"
                )
            agreement = agreement_status(recon.record.alignments())
            if agreement:
                text += f"\n\n{agreement}"
        if self.notices:
            text += f"\n\n**{self.notices[-1]}**"
        if pipeline is not None and pipeline.error:
            text += f"\n\n**pipeline failed:** {pipeline.error}"
        if self.errors:
            text += f"\n\n**viewer error:** {self.errors[-1]}"
        return text

    def _worker(self, _stop: threading.Event) -> None:  # stops on self._stopping, which stop() sets
        last_poll, last_status = 0.0, ""
        last_legend: tuple[float, float] | None = None
        while not self._stopping.is_set():
            now = time.monotonic()
            woken = self._wake.is_set()
            self._wake.clear()
            try:
                if woken or now - last_poll >= self.config.poll_interval_s:
                    self._poll()
                    last_poll = now
                scene = self.scene
                job = None if scene is None else scene.next_job()
                if scene is not None and job is not None:
                    scene.run_job(job)
            except Exception as error:  # shown in the GUI; the viewer keeps serving
                job = None
                message = f"{type(error).__name__}: {error}"
                if not self.errors or self.errors[-1] != message:
                    self.errors.append(message)
                    warnings.warn(f"viewer: {message}", stacklevel=1)
                self._stopping.wait(self.config.poll_interval_s)
            status = self._status()
            if status != last_status and self.gui is not None:
                self.gui.status.content = status
                last_status = status
            legend = None if self.scene is None else self.scene.error_legend()
            if legend != last_legend and self.gui is not None:
                self.gui.set_error_legend(legend)
                last_legend = legend
            if job is None:
                self._wake.wait(self.config.poll_interval_s)

    def _player(self, _stop: threading.Event) -> None:  # stops on self._stopping
        while not self._stopping.is_set():
            delay = self.gui.playback_step() if self.gui is not None else 0.2
            self._stopping.wait(delay)

    # ------------------------------------------------------------------------------------------ test hooks
    def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> bool:
        """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()

    def idle(self) -> bool:
        """Every available timestep is loaded with the current settings (no worker job left)."""
        scene = self.scene
        return scene is not None and scene.num_available > 0 and scene.next_job() is None


# ---------------------------------------------------------------------------------------------- serving
def free_port(host: str, port: int) -> int:
    """``port`` if it can be bound on ``host``, else the next free one (viser does the same; we print it).

    The probe binds as the server does (``SO_REUSEADDR`` on POSIX, asyncio's default): a port left only in TIME-WAIT
    by a viewer that just stopped is free, one with a listening socket is not."""
    for candidate in range(port, port + 1000):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            if os.name == "posix":
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, candidate))
                return candidate
            except OSError:
                continue
    return port


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


ResumeCommand = Callable[[LiveRunSpec, RunSettings | None], str]  # a live run's spec, its record's settings


def serve_until_interrupted(
    viewer: Viewer,
    exit_after: float | None = None,
    log: Callable[[str], None] = _stderr,
    resume_command: ResumeCommand | None = None,
) -> None:
    """Block until Ctrl-C / SIGTERM (or ``exit_after`` seconds), then stop everything cleanly (messages to ``log``).

    A live run that stopped before its end: ``resume_command`` (the CLI's :func:`app.cli.resume.resume_command`;
    None: the generic advice) writes the command that continues it."""

    def terminate(*_) -> None:
        raise KeyboardInterrupt

    load_pycolmap()  # now, in the main thread: a COLMAP export from the GUI must not take over SIGTERM later
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        deadline = None if exit_after is None else time.monotonic() + exit_after
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    if viewer.live is not None and not viewer.live.done:
        log("stopping: the pipeline finishes its current window (Ctrl-C again to quit now)")
    try:
        viewer.stop()
    except KeyboardInterrupt:
        log("quit without waiting for the pipeline; complete windows are on disk")
    if viewer.live is not None and viewer.recon is not None:
        log(f"reconstruction: {viewer.recon.root}")
        if viewer.recon.refresh_status() != "complete":
            if resume_command is None:
                log("continue it with vggt-mv run on the same capture and --out, and --resume")
            else:
                log(f"continue it with: {resume_command(viewer.live.spec, viewer.recon.record.settings)}")
