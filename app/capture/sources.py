"""Rig capture ingestion: which files are cameras, which frame of each camera makes up each timestep.

``RigCapture.open(path)`` accepts four forms (cameras are sorted naturally, ``cam2`` before ``cam10``,
and keep their file or folder names):

* a folder of videos (``.mp4 .mov .avi .mkv .webm``), one per camera; image sub-folders beside them
  are cameras too;
* a folder of image folders, one per camera (``cam0/000000.png``, ...; frames sorted naturally);
* a single video file: one camera (N = 1);
* a folder of images only: a static multi-view capture, T = 1 and one camera per image.

Synchronization (the ``[T, N]`` table of source frame indices, :attr:`RigCapture.frame_index`):

* by frame index (default): timestep t is frame t of every camera, over the frames all cameras have
  (a frame-count mismatch is a warning naming the cameras and the common range used);
* by nominal fps, when the cameras' fps differ: each camera's frame k is at time k / fps; timesteps follow
  the camera with the lowest fps, the others contribute their nearest frame;
* by timestamps, when a timestamps CSV exists in the capture folder (``timestamps.csv``) or is given.
  Accepted CSV (header row, any column order, extra columns ignored):

  - a camera column ``cam_id`` | ``camera`` | ``cam`` | ``camera_name`` | ``port``: the camera's name
    (``cam_0``) or its number (``0`` matches the camera whose name ends in 0);
  - a time column ``frame_time`` | ``timestamp`` | ``time`` (seconds);
  - optional ``frame_index`` | ``frame``: the camera's frame number; without it the camera's rows in
    time order are its frames 0, 1, 2, ...;
  - optional ``sync_index``: rows with the same sync index form one timestep (caliscope's form:
    ``sync_index,cam_id,frame_time``); without it, timesteps follow camera 0 and every other camera
    contributes its nearest frame in time (timesteps where one is further than half a frame are dropped).

  The per-timestep spread of the cameras' times (max - min) is reported.

Frame selection (``start``, ``end``, ``every``, ``max_frames``) is in synchronized timesteps. Frames are
decoded lazily with OpenCV and prefetched by a background thread (:meth:`RigCapture.iter_timesteps`).
"""

from __future__ import annotations

import csv
import json
import queue
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.capture.preprocess import to_rgb_uint8

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TIMESTAMP_FILES = ("timestamps.csv",)
_CAMERA_COLUMNS = ("cam_id", "camera", "cam", "camera_name", "port")
_TIME_COLUMNS = ("frame_time", "timestamp", "time")
_FRAME_COLUMNS = ("frame_index", "frame")


class CaptureError(ValueError):
    """A capture that cannot be read; the message names the file and the fix."""


class CaptureWarning(UserWarning):
    """Something about the capture was adjusted (frame counts, sizes, colour formats); the run goes on."""


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers by value: ``cam2`` < ``cam10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


@dataclass
class CaptureOptions:
    """Which timesteps to read and how to synchronize.

    ``start``/``end``: synchronized timestep range ``[start, end)`` (``end=None``: to the last);
    ``every``: keep every k-th timestep; ``max_frames``: at most this many timesteps after that;
    ``timestamps``: a timestamps CSV (None: use ``timestamps.csv`` in the capture folder if present);
    ``sync``: ``auto`` (timestamps if any, else fps if they differ, else index), ``index``, ``fps`` or
    ``timestamps``; ``skip_unreadable``: drop cameras that cannot be decoded (with a warning) instead
    of refusing the capture.
    """

    start: int = 0
    end: int | None = None
    every: int = 1
    max_frames: int | None = None
    timestamps: Path | None = None
    sync: str = "auto"
    skip_unreadable: bool = False


# --------------------------------------------------------------------------------------------- sources
class CameraSource:
    """One camera: a video file or an ordered list of image files. Frames are RGB uint8 ``[H, W, 3]``."""

    kind: str = ""

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, path
        self.num_frames = 0
        self.fps: float | None = None
        self.height = self.width = 0
        self.note: str | None = None  # colour conversion applied, if any

    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """Yield the frames at ``indices`` (any order; increasing is fastest for videos)."""
        raise NotImplementedError

    def read(self, index: int) -> np.ndarray:
        return next(iter(self.frames([index])))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": self.kind,
            "frames": self.num_frames,
            "fps": self.fps,
            "height": self.height,
            "width": self.width,
            "note": self.note,
        }


class VideoSource(CameraSource):
    kind = "video"

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name, path)
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise CaptureError(f"camera {name!r}: OpenCV cannot open the video {path}")
            ok, frame = capture.read()
            if not ok or frame is None:
                raise CaptureError(f"camera {name!r}: the video {path} has no decodable frame")
            rgb, self.note = to_rgb_uint8(frame)
            self.height, self.width = rgb.shape[:2]
            fps = capture.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and fps > 0 and np.isfinite(fps) else None
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            if count <= 0:  # some containers (webm) do not say: count by decoding
                count = 1
                while capture.grab():
                    count += 1
            self.num_frames = count
        finally:
            capture.release()

    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        capture, position = None, 0
        try:
            for index in indices:
                index = int(index)
                if capture is None or index < position:  # (re)open: exact, unlike seeking by CAP_PROP_POS_FRAMES
                    if capture is not None:
                        capture.release()
                    capture, position = cv2.VideoCapture(str(self.path)), 0
                while position < index:
                    if not capture.grab():
                        raise self._decode_error(position)
                    position += 1
                ok, frame = capture.read()
                if not ok or frame is None:
                    raise self._decode_error(index)
                position += 1
                yield to_rgb_uint8(frame)[0]
        finally:
            if capture is not None:
                capture.release()

    def _decode_error(self, index: int) -> CaptureError:
        return CaptureError(
            f"camera {self.name!r}: frame {index} of {self.path} cannot be decoded (the file says it has "
            f"{self.num_frames} frames; it may be truncated). Re-encode the video, or stop before it with --end"
        )


class ImageSequenceSource(CameraSource):
    kind = "images"

    def __init__(self, name: str, path: Path, files: list[Path]) -> None:
        super().__init__(name, path)
        self.files = files
        self.num_frames = len(files)
        first = self._load(0)
        self.height, self.width = first.shape[:2]

    def _load(self, index: int) -> np.ndarray:
        file = self.files[index]
        raw = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise CaptureError(
                f"camera {self.name!r}: the image {file} cannot be read; replace or delete it "
                f"(supported: {' '.join(IMAGE_EXTENSIONS)})"
            )
        rgb, note = to_rgb_uint8(raw)
        if note and self.note is None:
            self.note = note
        return rgb

    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        for index in indices:
            yield self._load(int(index))


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def _images_in(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


def open_source(name: str, path: Path, files: list[Path] | None = None) -> CameraSource:
    """The camera source of one :func:`discover_cameras` entry: an image sequence (``files``) or a video."""
    if files is not None:
        return ImageSequenceSource(name, path, files)
    return VideoSource(name, path)


def discover_cameras(path: Path) -> tuple[str, list[tuple[str, Path, list[Path] | None]]]:
    """The capture's form and its cameras ``(name, path, image files or None for a video)``, sorted naturally."""
    if not path.exists():
        raise CaptureError(f"capture {path} does not exist; pass a folder of camera videos or image folders")
    if path.is_file():
        if _is_video(path):
            return "single_video", [(path.stem, path, None)]
        raise CaptureError(
            f"capture {path} is a file but not a video ({' '.join(VIDEO_EXTENSIONS)}); "
            "pass a video or a folder of camera videos / image folders"
        )
    entries = sorted(path.iterdir(), key=lambda p: natural_key(p.name))
    cameras: list[tuple[str, Path, list[Path] | None]] = []
    for entry in entries:
        if _is_video(entry):
            cameras.append((entry.stem, entry, None))
        elif entry.is_dir():
            files = _images_in(entry)
            if files:
                cameras.append((entry.name, entry, files))
    if cameras:
        names = [name for name, _, _ in cameras]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise CaptureError(
                f"capture {path}: several cameras are named {', '.join(duplicates)} (e.g. cam0.mp4 and cam0/); "
                "keep one of each"
            )
        kinds = {files is None for _, _, files in cameras}
        return ("videos" if kinds == {True} else "image_folders" if kinds == {False} else "mixed"), cameras
    images = _images_in(path)
    if images:
        return "static_images", [(p.stem, p, [p]) for p in images]
    listing = ", ".join(p.name for p in entries[:8]) or "nothing"
    raise CaptureError(
        f"capture {path} holds no camera (found: {listing}). Expected one video per camera "
        f"({' '.join(VIDEO_EXTENSIONS)}), one image folder per camera (cam0/000000.png, ...), a single video, "
        "or a folder of images"
    )


# ------------------------------------------------------------------------------------------------ sync
@dataclass
class SyncResult:
    """``frame_index [T, N]`` source frame per timestep and camera; ``times [T, N]`` seconds or None."""

    mode: str
    frame_index: np.ndarray
    times: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def spread(self) -> np.ndarray | None:
        """Per-timestep spread ``[T]`` (seconds) of the cameras' times: max - min."""
        if self.times is None:
            return None
        return self.times.max(axis=1) - self.times.min(axis=1)


def sync_by_index(sources: list[CameraSource]) -> SyncResult:
    counts = [s.num_frames for s in sources]
    common = min(counts)
    notes = []
    if len(set(counts)) > 1:
        detail = ", ".join(f"{s.name}: {s.num_frames}" for s in sources)
        notes.append(
            f"cameras have different frame counts ({detail}); using the common range of frames 0..{common - 1} "
            f"({common} timesteps) and dropping the rest. If the cameras did not start together, give a "
            "timestamps CSV (--timestamps)"
        )
    frame_index = np.repeat(np.arange(common)[:, None], len(sources), axis=1)
    times = None
    if all(s.fps for s in sources):
        times = frame_index / np.array([s.fps for s in sources])[None, :]
    return SyncResult("index", frame_index, times, notes)


def _nearest_sync(ref_times: np.ndarray, camera_times: list[np.ndarray], mode: str, note: str) -> SyncResult:
    """Each reference time -> every camera's nearest frame; timesteps with a camera > half a frame off dropped."""
    columns, keep = [], np.ones(len(ref_times), dtype=bool)
    for times in camera_times:
        order = np.argsort(times)
        sorted_times = times[order]
        pos = np.clip(np.searchsorted(sorted_times, ref_times), 1, max(len(sorted_times) - 1, 1))
        left, right = sorted_times[pos - 1], sorted_times[np.minimum(pos, len(sorted_times) - 1)]
        pick = np.where(np.abs(ref_times - left) <= np.abs(ref_times - right), pos - 1, pos)
        pick = np.minimum(pick, len(sorted_times) - 1)
        period = np.median(np.diff(sorted_times)) if len(sorted_times) > 1 else np.inf
        keep &= np.abs(sorted_times[pick] - ref_times) <= period / 2 + 1e-9
        columns.append(order[pick])
    frame_index = np.stack(columns, axis=1)[keep]
    times = np.stack([t[frame_index[:, n]] for n, t in enumerate(camera_times)], axis=1)
    notes = [note]
    if (~keep).any():
        notes.append(f"{int((~keep).sum())} timesteps dropped: a camera had no frame within half a frame period")
    return SyncResult(mode, frame_index, times, notes)


def sync_by_fps(sources: list[CameraSource]) -> SyncResult:
    camera_times = [np.arange(s.num_frames) / s.fps for s in sources]
    ref = int(np.argmin([s.fps for s in sources]))
    detail = ", ".join(f"{s.name}: {s.fps:g}" for s in sources)
    note = (
        f"cameras have different frame rates ({detail}); synchronized by time (frame k at k / fps, all starting "
        f"together) at the rate of {sources[ref].name}. Give a timestamps CSV (--timestamps) if they did not start "
        "together"
    )
    return _nearest_sync(camera_times[ref], camera_times, "fps", note)


def _column(header: list[str], candidates: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in candidates:
        if name in lowered:
            return lowered.index(name)
    return None


def _match_camera(key: str, names: list[str]) -> int | None:
    if key in names:
        return names.index(key)
    if key.strip().lstrip("-").isdigit():
        number = int(key)
        hits = [i for i, name in enumerate(names) if (m := re.search(r"(\d+)$", name)) and int(m.group(1)) == number]
        if len(hits) == 1:
            return hits[0]
    return None


def sync_by_timestamps(sources: list[CameraSource], csv_path: Path) -> SyncResult:
    """Synchronize from a timestamps CSV (form in the module docstring)."""
    try:
        with open(csv_path, newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise CaptureError(f"timestamps file {csv_path} cannot be read ({error})") from error
    if len(rows) < 2:
        raise CaptureError(f"timestamps file {csv_path} has no data rows; expected a header and one row per frame")
    header, rows = rows[0], [r for r in rows[1:] if r]
    cam_col, time_col = _column(header, _CAMERA_COLUMNS), _column(header, _TIME_COLUMNS)
    frame_col, sync_col = _column(header, _FRAME_COLUMNS), _column(header, ("sync_index",))
    if cam_col is None or time_col is None:
        raise CaptureError(
            f"timestamps file {csv_path}: header {header} needs a camera column ({' | '.join(_CAMERA_COLUMNS)}) "
            f"and a time column ({' | '.join(_TIME_COLUMNS)}), e.g. 'sync_index,cam_id,frame_time'"
        )
    names = [s.name for s in sources]
    per_camera: list[list[tuple[float, float, int | None]]] = [[] for _ in sources]
    unknown: set[str] = set()
    try:
        for row in rows:
            camera = _match_camera(row[cam_col].strip(), names)
            if camera is None:
                unknown.add(row[cam_col].strip())
                continue
            sync = float(row[sync_col]) if sync_col is not None else float(row[time_col])
            frame = int(row[frame_col]) if frame_col is not None else None
            per_camera[camera].append((sync, float(row[time_col]), frame))
    except (ValueError, IndexError) as error:
        raise CaptureError(f"timestamps file {csv_path}: unreadable row ({error}); expected numbers") from error
    missing = [names[n] for n, entries in enumerate(per_camera) if not entries]
    if missing:
        raise CaptureError(
            f"timestamps file {csv_path} has no rows for camera(s) {', '.join(missing)} (camera ids found: "
            f"{', '.join(sorted(unknown)) or 'none'}); the camera column must hold the camera's name or its number"
        )
    notes = [f"synchronized by timestamps from {csv_path}"]
    if unknown:
        notes.append(f"timestamps file rows for unknown cameras {sorted(unknown)} ignored")
    tables = []  # per camera: (sync key, time, frame index), ordered by sync key
    for source, entries in zip(sources, per_camera, strict=True):
        entries = sorted(entries, key=lambda e: e[0])
        table = [(s, t, f if f is not None else k) for k, (s, t, f) in enumerate(entries)]
        beyond = [row for row in table if row[2] >= source.num_frames]
        if beyond:
            notes.append(
                f"{source.name}: {len(beyond)} timestamp rows point past its {source.num_frames} frames; ignored"
            )
        tables.append([row for row in table if row[2] < source.num_frames])
    if sync_col is not None:
        common = sorted(set.intersection(*[{row[0] for row in table} for table in tables]))
        if not common:
            raise CaptureError(f"timestamps file {csv_path}: no sync_index is shared by all cameras")
        lookup = [{row[0]: row for row in table} for table in tables]
        frame_index = np.array([[lk[s][2] for lk in lookup] for s in common], dtype=np.int64)
        times = np.array([[lk[s][1] for lk in lookup] for s in common], dtype=np.float64)
        dropped = max(len(t) for t in tables) - len(common)
        if dropped:
            notes.append(f"{dropped} sync indices are missing a camera and were dropped")
        return SyncResult("timestamps", frame_index, times, notes)
    camera_times = [np.array([row[1] for row in table]) for table in tables]
    camera_frames = [np.array([row[2] for row in table]) for table in tables]
    result = _nearest_sync(camera_times[0], camera_times, "timestamps", notes[0])
    result.frame_index = np.stack([camera_frames[n][result.frame_index[:, n]] for n in range(len(sources))], axis=1)
    result.notes = notes + result.notes[1:]
    return result


# ------------------------------------------------------------------------------------------------ rig
class RigCapture:
    """N synchronized cameras over T timesteps, read lazily.

    ``frame_index [T, N]``: the source frame of camera n at (selected) timestep t; ``times [T, N]``
    seconds (when known); ``camera_names [N]``; ``warnings``: what was adjusted.
    """

    def __init__(
        self,
        path: Path,
        form: str,
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

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, path: str | Path, options: CaptureOptions | None = None) -> RigCapture:
        """Open a capture folder or video (forms and synchronization in the module docstring).

        Raises :class:`CaptureError` with the file and the fix; adjustments are :class:`CaptureWarning`.
        """
        options = options or CaptureOptions()
        path = Path(path)
        form, found = discover_cameras(path)
        sources: list[CameraSource] = []
        messages: list[str] = []
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
        for message in capture.warnings:
            warnings.warn(message, CaptureWarning, stacklevel=2)
        return capture

    @staticmethod
    def _synchronize(path: Path, form: str, sources: list[CameraSource], options: CaptureOptions) -> SyncResult:
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
        fps = [s.fps for s in sources]
        differ = all(fps) and max(fps) > min(fps) * 1.01
        if options.sync == "fps" or (options.sync == "auto" and differ):
            if not all(fps):
                raise CaptureError("--sync fps: some cameras do not report a frame rate; use --timestamps")
            return sync_by_fps(sources)
        return sync_by_index(sources)

    # ------------------------------------------------------------------ info
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

    def iter_timesteps(self, timesteps: Sequence[int], prefetch: int = 8) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Yield ``(t, [N frames RGB uint8 [h_n, w_n, 3]])`` for ``timesteps`` (increasing is fastest).

        A background thread decodes up to ``prefetch`` timesteps ahead; its errors are re-raised here.
        """
        timesteps = [int(t) for t in timesteps]
        buffer: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                readers = [s.frames(self.frame_index[timesteps, n]) for n, s in enumerate(self.sources)]
                for t in timesteps:
                    item = (t, [next(reader) for reader in readers])
                    while not stop.is_set():
                        try:
                            buffer.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        break
                for reader in readers:
                    reader.close()
                buffer.put(done)
            except BaseException as error:  # handed to the consumer
                buffer.put(error)

        thread = threading.Thread(target=produce, name="rig-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = buffer.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    buffer.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)


# -------------------------------------------------------------------------------------------- calibration
@dataclass
class RigCalibration:
    """Per-camera calibration in capture order: ``intrinsics [N, 3, 3]`` for frames of ``sizes [N]``
    ``(width, height)``; ``extrinsics [N, 3, 4]`` OpenCV camera-from-world in metres, or None."""

    camera_names: list[str]
    intrinsics: np.ndarray
    sizes: list[tuple[int, int]]
    extrinsics: np.ndarray | None
    path: Path


def load_calibration(path: str | Path, camera_names: list[str]) -> RigCalibration:
    """Read a rig calibration and match it to the capture's cameras (by name, else by camera number).

    Accepted forms:

    * caliscope ``camera_array.toml``: ``[cameras.<id>]`` tables with ``matrix`` (3x3 K), ``size``
      ``[w, h]`` and optionally ``rotation`` (3x3) and ``translation`` (3), world->camera, metres;
    * JSON ``{"cameras": {"<name or id>": {"K": 3x3, "size": [w, h], "R": 3x3, "t": [3]}}}`` (``R``/``t``
      optional, OpenCV camera-from-world in metres; ``size`` optional, default the camera's frame size).
    """
    path = Path(path)
    if not path.is_file():
        raise CaptureError(f"calibration file {path} does not exist")
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib

            raw = tomllib.loads(path.read_text())
            entries = {
                str(key): {
                    "K": c.get("matrix"),
                    "size": c.get("size"),
                    "R": c.get("rotation"),
                    "t": c.get("translation"),
                }
                for key, c in raw.get("cameras", {}).items()
            }
        else:
            raw = json.loads(path.read_text())
            cameras = raw.get("cameras", {})
            if isinstance(cameras, list):
                cameras = {str(c.get("name", i)): c for i, c in enumerate(cameras)}
            entries = {str(k): c for k, c in cameras.items()}
    except (ValueError, OSError) as error:  # tomllib.TOMLDecodeError and JSONDecodeError are ValueErrors
        raise CaptureError(f"calibration file {path} cannot be parsed ({error})") from error
    matched: dict[int, dict] = {}
    for key, entry in entries.items():
        camera = _match_camera(key, camera_names)
        if camera is not None:
            matched[camera] = entry
    missing = [name for n, name in enumerate(camera_names) if n not in matched]
    if missing:
        raise CaptureError(
            f"calibration file {path} has no entry for camera(s) {', '.join(missing)} (entries: "
            f"{', '.join(entries) or 'none'}); key each camera by its name or number"
        )
    try:
        intrinsics = np.array([matched[n]["K"] for n in range(len(camera_names))], dtype=np.float64)
        sizes = [tuple(matched[n]["size"]) if matched[n].get("size") else None for n in range(len(camera_names))]
        has_pose = all(matched[n].get("R") is not None and matched[n].get("t") is not None for n in matched)
        extrinsics = None
        if has_pose:
            extrinsics = np.array(
                [
                    np.concatenate([np.array(matched[n]["R"], float), np.array(matched[n]["t"], float)[:, None]], 1)
                    for n in range(len(camera_names))
                ]
            )
    except (KeyError, TypeError, ValueError) as error:
        raise CaptureError(
            f"calibration file {path}: malformed camera entry ({error}); need K 3x3, R 3x3, t 3"
        ) from error
    if intrinsics.shape[1:] != (3, 3):
        raise CaptureError(f"calibration file {path}: K must be 3x3, got {intrinsics.shape[1:]}")
    return RigCalibration(list(camera_names), intrinsics, sizes, extrinsics, path)
