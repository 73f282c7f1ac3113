"""A rig capture over time: :class:`RigCapture` opens one of the forms of :mod:`app.capture.sources`, synchronizes
it (:mod:`app.capture.sync`) and reads it lazily.

Frame selection (``start``, ``end``, ``every``, ``max_frames``) is in synchronized timesteps. Frames are
decoded lazily with OpenCV and prefetched by a background thread (:meth:`RigCapture.iter_timesteps`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.capture.layout import CaptureLayout, Discovery, LayoutChoice, discover
from app.capture.sources import (
    TIMESTAMP_FILES,
    CameraSource,
    CaptureError,
    CaptureWarning,
    loose_images,
    open_source,
)
from app.capture.sync import SyncResult, sync_by_fps, sync_by_index, sync_by_timestamps
from app.common.timing import StageTimer
from app.common.vocab import CaptureForm, SyncMode
from app.common.worker import QueueWorker


@dataclass
class CaptureOptions:
    """Which timesteps to read and how to synchronize.

    ``start``/``end``: synchronized timestep range ``[start, end)`` (``end=None``: to the last);
    ``every``: keep every k-th timestep; ``max_frames``: at most this many timesteps after that;
    ``timestamps``: a timestamps CSV (None: use ``timestamps.csv`` in the capture folder if present);
    ``sync``: ``auto`` (timestamps if any, else fps if they differ, else index), ``index``, ``fps`` or
    ``timestamps``; ``skip_unreadable``: drop cameras that cannot be decoded (with a warning) instead
    of refusing the capture; ``layout``: ``auto`` (detected), ``camera-major`` or ``time-major``
    (:mod:`app.capture.layout`).
    """

    start: int = 0
    end: int | None = None
    every: int = 1
    max_frames: int | None = None
    timestamps: Path | None = None
    sync: SyncMode = "auto"
    skip_unreadable: bool = False
    layout: LayoutChoice = "auto"


# A folder of images only is one static shot: all its images go into one model call. Beyond this many it is almost
# certainly one camera's frames (10 000 images would need tens of GB), so it is refused with the fix.
MAX_STATIC_CAMERAS = 256


def stray_image_notes(path: Path) -> list[str]:
    """Warnings for still images lying beside the cameras of a capture folder (they are not cameras)."""
    loose = loose_images(path)
    if not loose:
        return []
    shown = ", ".join(p.name for p in loose[:5]) + (f" and {len(loose) - 5} more" if len(loose) > 5 else "")
    return [
        f"capture {path}: the still image(s) {shown} beside the cameras are not cameras and are ignored (a camera is "
        f"a video or a folder of frames: to use one, put its frames in a folder such as {path / loose[0].stem}/)"
    ]


# ------------------------------------------------------------------------------------------------ rig
class RigCapture:
    """N synchronized cameras over T timesteps, read lazily.

    ``frame_index [T, N]``: the source frame of camera n at (selected) timestep t; ``times [T, N]``
    seconds (when known); ``camera_names [N]``; ``warnings``: what was adjusted.
    """

    def __init__(
        self,
        path: Path,
        form: CaptureForm,
        sources: list[CameraSource],
        sync: SyncResult,
        options: CaptureOptions,
        messages: list[str],
    ) -> None:
        self.path, self.form, self.sources, self.options = path, form, sources, options
        self.sync_mode, self.sync_notes = sync.mode, list(sync.notes)
        self.warnings = list(messages)
        total = len(sync.frame_index)
        end = total if options.end is None else min(options.end, total)
        if options.start < 0 or options.every < 1 or (options.max_frames is not None and options.max_frames < 1):
            raise CaptureError("--start must be >= 0, --every >= 1 and --max-frames >= 1")
        if options.start >= end:
            raise CaptureError(
                f"capture {path}: --start {options.start} / --end {options.end} select no timestep; "
                f"the capture has {total} synchronized timesteps (0..{total - 1})"
            )
        selected = np.arange(options.start, end, options.every)[: options.max_frames]
        self.timestep_ids = selected  # indices into the full synchronized sequence
        self.total_timesteps = total
        self.frame_index = sync.frame_index[selected]
        self.times = None if sync.times is None else sync.times[selected]
        self.discovery: Discovery | None = None  # set by open(): layout, dataset root

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, path: str | Path, options: CaptureOptions | None = None) -> RigCapture:
        """Open a capture folder or video (forms and synchronization in the module docstring).

        Raises :class:`CaptureError` with the file and the fix; adjustments are :class:`CaptureWarning`.
        """
        options = options or CaptureOptions()
        path = Path(path)
        discovery = discover(path, options.layout)
        form, found = discovery.form, discovery.cameras
        if form == "static_images" and len(found) > MAX_STATIC_CAMERAS:
            raise CaptureError(
                f"capture {discovery.folder} is a folder of {len(found)} images, read as one static multi-view shot: "
                f"one model call over {len(found)} cameras (at most {MAX_STATIC_CAMERAS}). If they are one camera's "
                f"frames over time, move them into a sub-folder ({discovery.folder / 'cam0'}/); for several cameras, "
                "one sub-folder each"
            )
        sources: list[CameraSource] = []
        messages: list[str] = list(discovery.warnings)
        if form not in ("static_images", "single_video"):
            messages += stray_image_notes(discovery.folder)
        failures: list[str] = []
        for name, camera_path, files in found:
            try:
                sources.append(open_source(name, camera_path, files))
            except CaptureError as error:
                failures.append(str(error))
        if failures and not sources:
            raise CaptureError(f"capture {path}: no readable camera. " + " | ".join(failures))
        if failures:
            if not options.skip_unreadable:
                raise CaptureError(
                    " | ".join(failures) + ". Remove or re-encode the file(s) (e.g. `ffmpeg -i in.mp4 out.mp4`), "
                    "or pass --skip-bad-cameras to run with the other cameras"
                )
            messages += [f"skipped unreadable camera: {f}" for f in failures]
        for source in sources:
            if source.note:
                messages.append(f"{source.name}: {source.note}")
        sizes = {(s.height, s.width) for s in sources}
        if len(sizes) > 1:
            detail = ", ".join(f"{s.name}: {s.width}x{s.height}" for s in sources)
            messages.append(
                f"cameras have different resolutions ({detail}); each is scaled (aspect kept) to the model size "
                "of the first camera and centre-cropped (--mode crop) or padded (--mode pad)"
            )
        sync = cls._synchronize(path, form, sources, options)
        messages += [n for n in sync.notes if not n.startswith("synchronized by timestamps")]
        capture = cls(path, form, sources, sync, options, messages)
        capture.discovery = discovery
        for message in capture.warnings:
            warnings.warn(message, CaptureWarning, stacklevel=2)
        return capture

    @staticmethod
    def _synchronize(path: Path, form: CaptureForm, sources: list[CameraSource], options: CaptureOptions) -> SyncResult:
        if form == "static_images":
            return SyncResult("static", np.zeros((1, len(sources)), dtype=np.int64))
        csv_path = options.timestamps
        if csv_path is None and options.sync in ("auto", "timestamps") and path.is_dir():
            csv_path = next((path / n for n in TIMESTAMP_FILES if (path / n).is_file()), None)
        if options.sync == "timestamps" and csv_path is None:
            raise CaptureError(f"--sync timestamps: no {TIMESTAMP_FILES[0]} in {path}; pass --timestamps FILE")
        if csv_path is not None and options.sync in ("auto", "timestamps"):
            if not Path(csv_path).is_file():
                raise CaptureError(f"timestamps file {csv_path} does not exist")
            return sync_by_timestamps(sources, Path(csv_path))
        rates = [s.fps for s in sources]
        known = [fps for fps in rates if fps]
        every_rate = len(known) == len(rates)
        differ = every_rate and max(known) > min(known) * 1.01
        if options.sync == "fps" or (options.sync == "auto" and differ):
            if not every_rate:
                raise CaptureError("--sync fps: some cameras do not report a frame rate; use --timestamps")
            return sync_by_fps(sources)
        return sync_by_index(sources)

    # ------------------------------------------------------------------ info
    @property
    def layout(self) -> CaptureLayout:
        return "camera-major" if self.discovery is None else self.discovery.layout

    @property
    def dataset_root(self) -> Path | None:
        """The dataset root the capture's images belong to (``root/images/...``), or None."""
        return None if self.discovery is None else self.discovery.root

    def layout_line(self) -> str:
        """What was understood, in one line: ``4 cameras x 8 timesteps, time-major (images/time_TT/viewV.png)``."""
        cams = f"{self.num_cameras} camera{'s' if self.num_cameras != 1 else ''}"
        steps = f"{self.num_timesteps} timestep{'s' if self.num_timesteps != 1 else ''}"
        if self.num_timesteps != self.total_timesteps:
            steps = f"{self.num_timesteps} of {self.total_timesteps} timesteps"
        if self.discovery is None:
            return f"{cams} x {steps}"
        kind = {"static_images": "static", "single_video": "single camera"}.get(self.form, self.layout)
        return f"{cams} x {steps}, {kind} ({self.discovery.pattern()})"

    @property
    def num_timesteps(self) -> int:
        return len(self.frame_index)

    @property
    def num_cameras(self) -> int:
        return len(self.sources)

    @property
    def camera_names(self) -> list[str]:
        return [s.name for s in self.sources]

    @property
    def spread(self) -> np.ndarray | None:
        """Per-timestep time spread ``[T]`` across cameras (seconds), when times are known."""
        if self.times is None:
            return None
        return self.times.max(axis=1) - self.times.min(axis=1)

    def describe(self) -> dict:
        """JSON-serialisable description (stored in the reconstruction's meta.json)."""
        spread = self.spread
        return {
            "path": str(self.path.resolve()),
            "form": self.form,
            "layout": self.layout,
            "camera_names": self.camera_names,
            "cameras": [s.describe() for s in self.sources],
            "sync": self.sync_mode,
            "num_timesteps": self.num_timesteps,
            "total_timesteps": self.total_timesteps,
            "selection": {
                "start": self.options.start,
                "end": self.options.end,
                "every": self.options.every,
                "max_frames": self.options.max_frames,
            },
            "timestep_ids": self.timestep_ids.tolist(),
            "frame_index": self.frame_index.tolist(),
            "times": None if self.times is None else self.times.tolist(),
            "spread_s": None
            if spread is None
            else {"mean": float(spread.mean()), "max": float(spread.max()), "per_timestep": spread.tolist()},
            "warnings": self.warnings,
        }

    # ------------------------------------------------------------------ frames
    def read(self, t: int, n: int) -> np.ndarray:
        """Original-resolution RGB uint8 frame ``[h, w, 3]`` of camera n at (selected) timestep t."""
        return self.sources[n].read(int(self.frame_index[t, n]))

    def iter_timesteps(
        self, timesteps: Sequence[int], prefetch: int = 8, timer: StageTimer | None = None
    ) -> Generator[tuple[int, list[np.ndarray]], None, None]:
        """Yield ``(t, [N frames RGB uint8 [h_n, w_n, 3]])`` for ``timesteps`` (increasing is fastest).

        A background thread decodes up to ``prefetch`` timesteps ahead (its seconds go to ``timer``'s ``decode``); its
        errors are re-raised here.
        """
        timesteps = [int(t) for t in timesteps]
        worker: QueueWorker[None, tuple[int, list[np.ndarray]]] = QueueWorker(
            lambda _: self._decode(timesteps, timer), name="rig-prefetch", ahead=prefetch
        )
        with worker as frames:
            yield from frames

    def _decode(self, timesteps: list[int], timer: StageTimer | None) -> Iterator[tuple[int, list[np.ndarray]]]:
        """``(t, [N frames])`` for ``timesteps``, decoded in order (runs in :meth:`iter_timesteps`'s thread)."""
        readers = [s.frames(self.frame_index[timesteps, n].tolist()) for n, s in enumerate(self.sources)]
        try:
            for t in timesteps:
                tic, cpu = time.perf_counter(), time.thread_time()
                try:
                    item = (t, [next(reader) for reader in readers])
                except CaptureError as error:  # say which --end stops before the frame that failed
                    end = int(self.timestep_ids[t])
                    text = str(error)
                    text += f" {end}" if text.endswith("--end") else f"; to stop before it, pass --end {end}"
                    raise CaptureError(
                        f"{text} (timestep {end} is the first that cannot be read; add --resume to keep the "
                        "windows already done)"
                    ) from error
                if timer is not None:
                    timer.add("decode", time.perf_counter() - tic, time.thread_time() - cpu)
                yield item
        finally:
            for reader in readers:
                reader.close()
