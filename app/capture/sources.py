"""Rig capture ingestion: which files are cameras, which frame of each camera makes up each timestep.

``RigCapture.open(path)`` accepts four forms (cameras are sorted naturally, ``cam2`` before ``cam10``,
and keep their file or folder names):

* a folder of videos (``.mp4 .mov .avi .mkv .webm``), one per camera; image sub-folders beside them
  are cameras too (a still image beside them is not a camera: it is ignored with a warning naming it);
* a folder of image folders, one per camera (``cam0/000000.png``, ...; frames sorted naturally; every frame of a
  camera has the size of its first frame, another size is an error naming the file);
* a single video file: one camera (N = 1);
* a folder of images only: a static multi-view capture, T = 1 and one camera per image (at most
  :data:`app.capture.rig.MAX_STATIC_CAMERAS`: more are refused, they are most likely one camera's frames).

Time-major trees (one folder per timestep) and dataset roots (``images/`` beside ground truth):
:mod:`app.capture.layout`.

Synchronization: :mod:`app.capture.sync`; the rig over time: :mod:`app.capture.rig`; calibration files:
:mod:`app.capture.calibration`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from app.capture.decoder_log import SINGLE_THREAD_DECODING, DecoderLog
from app.common.vocab import CaptureForm
from vggt_t_mv.data.images import IMAGE_EXTENSIONS, ImageReadError, read_image, to_rgb_uint8

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")
MAX_DAMAGE_WARNINGS = 3  # per camera: damaged frames named; then one line says there are more
TIMESTAMP_FILES = ("timestamps.csv",)
SourceKind = Literal["video", "images"]  # what one camera's frames come from
# a camera found in a capture: its name, its path, its image files (None for a video)
CameraEntry = tuple[str, Path, list[Path] | None]


class CaptureError(ValueError):
    """A capture that cannot be read; the message names the file and the fix."""


class CaptureWarning(UserWarning):
    """Something about the capture was adjusted (frame counts, sizes, colour formats); the run goes on."""


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers by value: ``cam2`` < ``cam10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


# --------------------------------------------------------------------------------------------- sources
class CameraSource:
    """One camera: a video file or an ordered list of image files. Frames are RGB uint8 ``[H, W, 3]``."""

    kind: SourceKind  # each kind of source sets it

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, path
        self.num_frames = 0
        self.fps: float | None = None
        self.height = self.width = 0
        self.note: str | None = None  # colour conversion applied, if any

    def frames(self, indices: Sequence[int]) -> Generator[np.ndarray, None, None]:
        """Yield the frames at ``indices`` (any order; increasing is fastest for videos)."""
        raise NotImplementedError

    def read(self, index: int) -> np.ndarray:
        return next(iter(self.frames([index])))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "path": str(Path(self.path).resolve()),  # absolute: the same capture however it was named
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
        self.damaged_frames = 0  # frames the decoder reported damaged so far (warned up to MAX_DAMAGE_WARNINGS)
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

    def frames(self, indices: Sequence[int]) -> Generator[np.ndarray, None, None]:
        capture, position = None, 0
        with DecoderLog() as log:
            try:
                for index in indices:
                    index = int(index)
                    if capture is None or index < position:  # (re)open: exact, unlike seeking by CAP_PROP_POS_FRAMES
                        if capture is not None:
                            capture.release()
                        # one decoder thread: FFmpeg's reports of a damaged frame then arrive during its read()
                        capture = cv2.VideoCapture(str(self.path), cv2.CAP_ANY, SINGLE_THREAD_DECODING)
                        position = 0
                    reported: list[str] = []
                    while position < index:
                        grabbed, skipped_report = log.around(capture.grab)
                        if not grabbed:
                            raise self._decode_error(position)
                        reported += skipped_report  # a damaged skipped frame can spoil the frames decoded from it
                        position += 1
                    (ok, frame), read_report = log.around(capture.read)
                    if not ok or frame is None:
                        raise self._decode_error(index)
                    position += 1
                    if reported or read_report:
                        self._warn_damaged(index, read_report or reported, skipped_only=not read_report)
                    yield to_rgb_uint8(frame)[0]
            finally:
                if capture is not None:
                    capture.release()

    def _warn_damaged(self, index: int, reported: list[str], skipped_only: bool) -> None:
        """Say (up to :data:`MAX_DAMAGE_WARNINGS` times per camera) that the decoder reported damage at frame
        ``index`` (or, ``skipped_only``, in a skipped frame just before it); the frame is used as decoded."""
        self.damaged_frames += 1
        if self.damaged_frames > MAX_DAMAGE_WARNINGS:
            return
        where = f"frames skipped before frame {index}" if skipped_only else f"frame {index}"
        more = (
            "; further damaged frames of this camera are not listed"
            if self.damaged_frames == MAX_DAMAGE_WARNINGS
            else ""
        )
        warnings.warn(
            f"camera {self.name!r}: the video decoder reported damaged data in {where} of {self.path} "
            f"({reported[0]}); frame {index} is used as decoded. If the reconstruction looks wrong there, re-encode "
            f"or replace the video, or leave the frame out with --start/--end{more}",
            CaptureWarning,
            stacklevel=2,
        )

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
        try:
            decoded = read_image(file)  # the one reader: EXIF orientation applied, size checked before decoding
        except ImageReadError as error:
            raise CaptureError(f"camera {self.name!r}: {error}") from None
        rgb, note = to_rgb_uint8(decoded.pixels)
        if decoded.rotated:
            applied = f"{decoded.orientation_note()} (applied, as by every reader)"
            note = applied if note is None else f"{note}; {applied}"
        if note and self.note is None:
            self.note = note
        if self.height and rgb.shape[:2] != (self.height, self.width):
            # One transform per camera maps its pixels to the model's: a frame of another size would be warped wrong.
            raise CaptureError(
                f"camera {self.name!r}: the image {file} is {rgb.shape[1]}x{rgb.shape[0]} px, but the camera's first "
                f"frame {self.files[0].name} is {self.width}x{self.height}; every frame of a camera must have one "
                "size: resize or remove that image (frames already reconstructed are kept: continue with --resume)"
            )
        return rgb

    def frames(self, indices: Sequence[int]) -> Generator[np.ndarray, None, None]:
        for index in indices:
            yield self._load(int(index))


def is_video(path: Path) -> bool:
    """A file with one of :data:`VIDEO_EXTENSIONS`."""
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def images_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


def loose_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder`` (in a capture of camera videos or image folders these are not
    cameras: a camera is a video or a folder of frames)."""
    return images_in(folder) if folder.is_dir() else []


def open_source(name: str, path: Path, files: list[Path] | None = None) -> CameraSource:
    """The camera source of one :func:`discover_cameras` entry: an image sequence (``files``) or a video."""
    if files is not None:
        return ImageSequenceSource(name, path, files)
    return VideoSource(name, path)


def discover_cameras(path: Path) -> tuple[CaptureForm, list[CameraEntry]]:
    """The capture's form and its cameras ``(name, path, image files or None for a video)``, sorted naturally."""
    if not path.exists():
        raise CaptureError(f"capture {path} does not exist; pass a folder of camera videos or image folders")
    if path.is_file():
        if is_video(path):
            return "single_video", [(path.stem, path, None)]
        raise CaptureError(
            f"capture {path} is a file but not a video ({' '.join(VIDEO_EXTENSIONS)}); "
            "pass a video or a folder of camera videos / image folders"
        )
    entries = sorted(path.iterdir(), key=lambda p: natural_key(p.name))
    cameras: list[CameraEntry] = []
    for entry in entries:
        if is_video(entry):
            cameras.append((entry.stem, entry, None))
        elif entry.is_dir():
            files = images_in(entry)
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
    images = images_in(path)
    if images:
        return "static_images", [(p.stem, p, [p]) for p in images]
    listing = ", ".join(p.name for p in entries[:8]) or "nothing"
    raise CaptureError(
        f"capture {path} holds no camera (found: {listing}). Expected one video per camera "
        f"({' '.join(VIDEO_EXTENSIONS)}), one image folder per camera (cam0/000000.png, ...), one folder per "
        "timestep (time_00/view0.png, ...), a dataset root with an images/ folder, a single video, or a folder of "
        "images"
    )
