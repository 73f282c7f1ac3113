"""A recorded capture with ground truth, read in one place: the folder format that
:func:`vggt_t_mv.data.write_capture` writes (``<camera>.mp4`` or ``<camera>/*.png`` per camera, plus
``ground_truth.npz``), and the :class:`Sequence` arrays that training, evaluation and the viewer read from it.

``ground_truth.npz`` holds ``extrinsics [T, N, 3, 4]`` (OpenCV camera-from-world), ``intrinsics [T, N, 3, 3]``
(pixels), ``camera_names [N]`` and optionally ``depth [T, N, H, W]`` (float32 metres, or uint16 with
``depth_scale`` metres per unit; 0 = unknown), ``dynamic_masks [T, N, H, W]`` bool, ``fps``, ``seed`` and
``config_json`` (the synthetic rig's settings). :func:`read_ground_truth_file` is its one reader; everything here
is numpy (no torch, no model), so the app's capture readers use it without loading training or evaluation code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vggt_t_mv.data.images import IMAGE_EXTENSIONS, read_frame

GROUND_TRUTH_FILE = "ground_truth.npz"
REQUIRED_KEYS = ("extrinsics", "intrinsics", "camera_names")


def read_ground_truth_file(folder: str | Path) -> dict[str, np.ndarray]:
    """Every array of ``folder/ground_truth.npz`` (or of that file itself), checked for the keys every recorded
    capture has (:data:`REQUIRED_KEYS`); a missing key is a ``ValueError`` naming the file."""
    path = Path(folder)
    if path.is_dir():
        path = path / GROUND_TRUTH_FILE
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise ValueError(f"{path} has no {key!r}")
    return arrays


def decode_depth(stored: np.ndarray, depth_scale: float) -> np.ndarray:
    """Stored depth ``[T, N, H, W]`` (float32, or uint16 units of ``depth_scale`` metres) -> float32 metres."""
    if stored.dtype == np.float32:
        return stored
    return (stored.astype(np.float64) * depth_scale).astype(np.float32)


def read_video_frames(path: Path) -> np.ndarray:
    """Decode every frame of a video: RGB ``[T, H, W, 3]`` uint8 (OpenCV, imported here)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise RuntimeError(f"OpenCV could not open {path}")
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame[..., ::-1])
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"{path} has no frames")
    return np.stack(frames)


def read_image_frames(folder: Path) -> np.ndarray:
    """The image files of ``folder`` in name order (:func:`vggt_t_mv.data.images.read_frame`, the readers' one
    rule): RGB ``[T, H, W, 3]`` uint8."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise ValueError(f"{folder} holds no image frames ({' '.join(IMAGE_EXTENSIONS)})")
    return np.stack([read_frame(path) for path in paths])


def read_camera_frames(folder: Path, name: str) -> np.ndarray:
    """Camera ``name``'s frames in a capture folder (``<name>.mp4`` or ``<name>/``): RGB ``[T, H, W, 3]`` uint8."""
    if (folder / f"{name}.mp4").is_file():
        return read_video_frames(folder / f"{name}.mp4")
    if (folder / name).is_dir():
        return read_image_frames(folder / name)
    raise FileNotFoundError(f"{folder} has neither {name}.mp4 nor a {name}/ image folder")


@dataclass
class WindowArrays:
    """One window's numpy arrays, ``[T, N, ...]`` (shapes and conventions as :class:`Sequence`), at the source
    resolution or already at the window size (then the training window cutter resizes nothing)."""

    images: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    dynamic_masks: np.ndarray
    mask_known: bool


class SequenceSource(Protocol):
    """What a window cutter needs of a sequence: its size, a name, the ``(height, width)`` of camera 0's frames
    and the arrays of a window (timesteps ``times [T]``, cameras ``cameras [N]``; ``target_hw`` the window size,
    which a source may already apply)."""

    @property
    def name(self) -> str: ...

    @property
    def num_timesteps(self) -> int: ...

    @property
    def num_cameras(self) -> int: ...

    @property
    def image_hw(self) -> tuple[int, int]: ...

    def window_arrays(self, times: np.ndarray, cameras: np.ndarray, target_hw: tuple[int, int]) -> WindowArrays: ...


class FrameGrid:
    """The size of a grid of frames held as ``images`` uint8 ``[T, N, H, W, 3]`` (a base of :class:`Sequence` and
    :class:`~vggt_t_mv.data.synthetic.SyntheticRig`, written once)."""

    images: np.ndarray  # supplied by the dataclass that derives from this (not a field here)

    @property
    def num_timesteps(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_cameras(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(H, W)`` of every frame."""
        return int(self.images.shape[2]), int(self.images.shape[3])


@dataclass
class Sequence(FrameGrid):
    """Arrays of one recorded or rendered sequence: ``images`` uint8 ``[T, N, H, W, 3]``, ``depth`` float32
    ``[T, N, H, W]`` (0 = unknown), ``valid`` bool ``[T, N, H, W]``, ``extrinsics [T, N, 3, 4]`` OpenCV
    camera-from-world, ``intrinsics [T, N, 3, 3]``, ``dynamic_masks`` bool ``[T, N, H, W]`` (``mask_known``
    False: no labels)."""

    images: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    dynamic_masks: np.ndarray
    mask_known: bool = True
    name: str = ""

    def window_arrays(self, times: np.ndarray, cameras: np.ndarray, target_hw: tuple[int, int]) -> WindowArrays:
        """The arrays of timesteps ``times`` and cameras ``cameras`` at the recorded resolution."""
        grid = np.ix_(np.asarray(times), np.asarray(cameras))
        return WindowArrays(
            images=self.images[grid],
            depth=self.depth[grid],
            valid=self.valid[grid],
            extrinsics=self.extrinsics[grid],
            intrinsics=self.intrinsics[grid],
            dynamic_masks=self.dynamic_masks[grid],
            mask_known=self.mask_known,
        )

    @classmethod
    def from_rig(cls, rig: Any, name: str = "") -> Sequence:
        """From a :class:`~vggt_t_mv.data.synthetic.SyntheticRig` (or anything with the same arrays)."""
        return cls(
            images=rig.images,
            depth=rig.depth,
            valid=rig.valid,
            extrinsics=rig.extrinsics,
            intrinsics=rig.intrinsics,
            dynamic_masks=rig.dynamic_masks,
            name=name,
        )


@dataclass
class RecordedCapture:
    """A recorded capture folder read whole: its :class:`Sequence` and the rest of ``ground_truth.npz``."""

    sequence: Sequence
    camera_names: list[str]
    arrays: dict[str, np.ndarray]  # every array of the npz, as stored


def read_recorded_capture(folder: str | Path) -> RecordedCapture:
    """One recorded capture folder: frames plus ``ground_truth.npz`` (module docstring). Missing depth reads as
    all-unknown, missing masks as ``mask_known`` False; frames, depth and cameras that disagree in size are a
    ``ValueError`` naming the folder."""
    folder = Path(folder)
    arrays = read_ground_truth_file(folder)
    names = [str(n) for n in arrays["camera_names"]]
    images = np.stack([read_camera_frames(folder, name) for name in names], axis=1)
    shape = images.shape[:4]
    if "depth" in arrays:
        depth = decode_depth(arrays["depth"], float(arrays.get("depth_scale", 1.0)))
    else:
        depth = np.zeros(shape, np.float32)
    if depth.shape != shape:
        raise ValueError(f"{folder}: frames {shape} do not match the depth {depth.shape}")
    known = "dynamic_masks" in arrays
    masks = arrays["dynamic_masks"].astype(bool) if known else np.zeros(shape, bool)
    extrinsics = arrays["extrinsics"].astype(np.float32)
    if extrinsics.shape[:2] != shape[:2]:
        raise ValueError(f"{folder}: extrinsics {extrinsics.shape} do not match the frames {shape}")
    sequence = Sequence(
        images=images,
        depth=depth,
        valid=depth > 0,
        extrinsics=extrinsics,
        intrinsics=arrays["intrinsics"].astype(np.float32),
        dynamic_masks=masks,
        mask_known=known,
        name=folder.name,
    )
    return RecordedCapture(sequence=sequence, camera_names=names, arrays=arrays)


def load_recorded_sequence(folder: str | Path) -> Sequence:
    """The :class:`Sequence` of one recorded capture folder (:func:`read_recorded_capture`)."""
    return read_recorded_capture(folder).sequence


def recorded_sequences(root: str | Path) -> list[Sequence]:
    """Every sub-folder of ``root`` holding a ``ground_truth.npz`` (or ``root`` itself if it holds one), by name."""
    root = Path(root)
    if (root / GROUND_TRUTH_FILE).is_file():
        return [load_recorded_sequence(root)]
    folders = sorted(p for p in root.iterdir() if (p / GROUND_TRUTH_FILE).is_file()) if root.is_dir() else []
    if not folders:
        raise FileNotFoundError(f"{root} holds no sample folder with a {GROUND_TRUTH_FILE}")
    return [load_recorded_sequence(p) for p in folders]
