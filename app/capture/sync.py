"""Which frame of each camera makes up each timestep.

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
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.capture.sources import CameraSource, CaptureError
from app.common.vocab import SyncKind

CAMERA_COLUMNS = ("cam_id", "camera", "cam", "camera_name", "port")
TIME_COLUMNS = ("frame_time", "timestamp", "time")
FRAME_COLUMNS = ("frame_index", "frame")


# ------------------------------------------------------------------------------------------------ sync
@dataclass
class SyncResult:
    """``frame_index [T, N]`` source frame per timestep and camera; ``times [T, N]`` seconds or None."""

    mode: SyncKind
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


def _nearest_sync(ref_times: np.ndarray, camera_times: list[np.ndarray], mode: SyncKind, note: str) -> SyncResult:
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
    rates: list[float] = []
    for source in sources:
        if not source.fps:
            raise CaptureError(f"--sync fps: camera {source.name} reports no frame rate; use --timestamps")
        rates.append(source.fps)
    camera_times = [np.arange(s.num_frames) / fps for s, fps in zip(sources, rates, strict=True)]
    ref = int(np.argmin(rates))
    detail = ", ".join(f"{s.name}: {fps:g}" for s, fps in zip(sources, rates, strict=True))
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


def match_camera(key: str, names: list[str]) -> int | None:
    """Index of the camera called ``key`` in ``names``, or whose name ends in the number ``key``; None if none."""
    if key in names:
        return names.index(key)
    if key.strip().lstrip("-").isdigit():
        number = int(key)
        hits = [i for i, name in enumerate(names) if (m := re.search(r"(\d+)$", name)) and int(m.group(1)) == number]
        if len(hits) == 1:
            return hits[0]
    return None


def _finite(row: list[str], column: int, header: list[str]) -> float:
    """The number in ``row[column]``; ``ValueError`` naming the column for text, NaN or an infinity."""
    value = float(row[column])
    if not np.isfinite(value):
        raise ValueError(f"{header[column].strip()} is {row[column].strip()}")
    return value


def sync_by_timestamps(sources: list[CameraSource], csv_path: Path) -> SyncResult:
    """Synchronize from a timestamps CSV (form in the module docstring)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise CaptureError(f"timestamps file {csv_path} cannot be read ({error})") from error
    except UnicodeDecodeError as error:
        raise CaptureError(
            f"timestamps file {csv_path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}); save it as a UTF-8 CSV (camera and time columns, see `vggt-mv run --help`)"
        ) from error
    except csv.Error as error:
        raise CaptureError(f"timestamps file {csv_path} is not a CSV file ({error})") from error
    if len(rows) < 2:
        raise CaptureError(f"timestamps file {csv_path} has no data rows; expected a header and one row per frame")
    header, numbered = rows[0], [(line, r) for line, r in enumerate(rows[1:], start=2) if r]
    cam_col, time_col = _column(header, CAMERA_COLUMNS), _column(header, TIME_COLUMNS)
    frame_col, sync_col = _column(header, FRAME_COLUMNS), _column(header, ("sync_index",))
    if cam_col is None or time_col is None:
        raise CaptureError(
            f"timestamps file {csv_path}: header {header} needs a camera column ({' | '.join(CAMERA_COLUMNS)}) "
            f"and a time column ({' | '.join(TIME_COLUMNS)}), e.g. 'sync_index,cam_id,frame_time'"
        )
    names = [s.name for s in sources]
    per_camera: list[list[tuple[float, float, int | None]]] = [[] for _ in sources]
    unknown: set[str] = set()
    for line, row in numbered:
        try:
            camera = match_camera(row[cam_col].strip(), names)
            if camera is None:
                unknown.add(row[cam_col].strip())
                continue
            sync = _finite(row, sync_col if sync_col is not None else time_col, header)
            frame = int(row[frame_col]) if frame_col is not None else None
            per_camera[camera].append((sync, _finite(row, time_col, header), frame))
        except (ValueError, IndexError) as error:
            raise CaptureError(
                f"timestamps file {csv_path}, line {line} ({','.join(row)}): {error}; every row needs a camera and a "
                "finite time in seconds: fix or delete that line"
            ) from error
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
