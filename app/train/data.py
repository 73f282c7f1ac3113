"""Recorded captures with ground truth as training and evaluation sequences, read by the same readers as ``run``.

A **recorded capture** is anything ``vggt-mv run`` reads (:class:`app.capture.rig.RigCapture`: time-major
``images/time_TT/viewV.png`` or camera-major ``images/cam0/000000.png``, videos, ...) with ground truth that
:func:`app.capture.truth.open_ground_truth` reads: a dataset root's ``depths/ intrs/ extrs/`` (per-frame
``.npy`` named like the images) with its SegAnyMo masks as dynamic-mask labels, a ``ground_truth.npz`` beside the
frames, or the rig calibration beside the frames (cameras only: the depth losses and metrics see no valid pixel; a
distorted calibration's frames are undistorted first, as ``run`` does). :func:`find_captures` takes one such
capture or a folder of them (one per sequence, as DexYCB has hundreds).

:class:`CaptureSequence` implements the library's :class:`~vggt_t_mv.data.recorded.SequenceSource`: a window's
frames are read when the window is cut and brought to the window size by the run's own crop
(:func:`app.capture.preprocess.frame_transform` + :func:`~app.capture.preprocess.preprocess_frame`), and the ground
truth by the same transform (:func:`app.reconstruct.evaluate.to_model_pixels`: nearest sampling for depth and masks,
intrinsics through :meth:`~app.capture.preprocess.FrameTransform.intrinsics_to_target`). The library trainer gets
these objects and never reads an app layout.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from app.capture.calibration import CALIBRATIONS_BESIDE_FRAMES
from app.capture.ground_truth import GroundTruth, GroundTruthError
from app.capture.layout import dataset_images, subfolders
from app.capture.preprocess import frame_transform, preprocess_frame
from app.capture.rig import RigCapture
from app.capture.sources import CaptureError
from app.capture.truth import calibration_ground_truth_at, open_ground_truth, undistorter_for
from app.reconstruct.evaluate import to_model_pixels
from vggt_t_mv.data.recorded import GROUND_TRUTH_FILE, WindowArrays

SYNTHETIC_GT = "synthetic:"  # ``vggt-mv eval --gt synthetic:1000-1005``: held-out procedural rigs
CAPTURE_FORMS = (
    "a dataset root (images/ with depths/, intrs/, extrs/ beside it, per-frame .npy named like the images; "
    f"SegAnyMo/ masks as labels when present), a capture with a ground_truth.npz, a capture with its rig calibration "
    f"beside the frames (cameras only: {CALIBRATIONS_BESIDE_FRAMES}), or a folder of such"
)


class TrainDataError(ValueError):
    """Training or evaluation data that cannot be used; the message names the folder and the fix."""


def is_recorded_capture(path: Path) -> bool:
    """Whether ``path`` looks like one recorded capture with ground truth (a dataset root with images/ and
    intrs/ + extrs/ or depths/, a folder holding a ground_truth.npz, or a capture with its rig calibration beside the
    frames: cameras only)."""
    if (path / GROUND_TRUTH_FILE).is_file():
        return True
    if dataset_images(path) is None:
        return calibration_ground_truth_at(path) is not None
    return any((path / name).is_dir() for name in ("depths", "intrs", "extrs"))


def find_captures(path: str | Path, option: str = "--data") -> list[Path]:
    """The recorded captures at ``path``: itself when it is one, else its sub-folders that are (natural order).

    Raises :class:`TrainDataError` naming ``option``, the folder and the fix when there is none: a dataset root
    without ground truth is named as such."""
    path = Path(path)
    if not path.is_dir():
        raise TrainDataError(f"{option} {path}: no such folder; give {CAPTURE_FORMS}")
    if is_recorded_capture(path):
        return [path]
    found = [sub for sub in subfolders(path) if is_recorded_capture(sub)]
    if found:
        return found
    if dataset_images(path) is not None:
        raise TrainDataError(
            f"{option} {path}: a dataset root without ground truth (images/ but no depths/, intrs/ or extrs/ beside "
            "it). Training and evaluation need the cameras of every frame: add intrs/ and extrs/ (per-frame .npy "
            "[3, 3] intrinsics and [3, 4] OpenCV camera-from-world extrinsics named like the images; depths/ for the "
            "depth losses), or write a ground_truth.npz beside the frames"
        )
    raise TrainDataError(f"{option} {path}: holds no recorded capture with ground truth; give {CAPTURE_FORMS}")


class CaptureSequence:
    """One recorded capture as a :class:`~vggt_t_mv.data.recorded.SequenceSource` (module docstring).

    ``capture``: the frames as ``run`` reads them; ``truth``: its ground truth; ``keys[n]``: how camera ``n`` is
    found in the ground truth (by name when it names its cameras, else by index); ``notes``: what the capture
    readers warned about."""

    def __init__(self, path: str | Path, option: str = "--data") -> None:
        path = Path(path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.capture = RigCapture.open(path)
            self.truth: GroundTruth = open_ground_truth(path)
        except (CaptureError, GroundTruthError) as error:
            raise TrainDataError(f"{option} {path}: {error}") from error
        self.notes = [str(w.message) for w in caught]
        self.path, self._name = path, path.name
        names = self.truth.camera_names
        if names is not None:
            missing = [n for n in self.capture.camera_names if n not in names]
            if missing:
                raise TrainDataError(
                    f"{option} {path}: the ground truth has no camera(s) {', '.join(missing)} (it has "
                    f"{', '.join(names)}); name the ground truth's cameras like the images"
                )
            self.keys: list[str | int] = list(self.capture.camera_names)
        else:
            if self.truth.num_cameras != self.capture.num_cameras:
                raise TrainDataError(
                    f"{option} {path}: the ground truth has {self.truth.num_cameras} cameras, the frames "
                    f"{self.capture.num_cameras}; give the ground truth of every camera"
                )
            self.keys = list(range(self.capture.num_cameras))

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_timesteps(self) -> int:
        return self.capture.num_timesteps

    @property
    def num_cameras(self) -> int:
        return self.capture.num_cameras

    @property
    def image_hw(self) -> tuple[int, int]:
        first = self.capture.sources[0]
        return int(first.height), int(first.width)

    def describe(self) -> str:
        """``mv_page4d_rig: 4 cameras x 8 timesteps, time-major (images/time_TT/viewV.png), depth, masks``."""
        has = [what for what, known in (("depth", self.truth.has_depth), ("masks", self.truth.has_masks)) if known]
        return f"{self.name}: {self.capture.layout_line()}" + (f", {' + '.join(has)}" if has else "")

    def window_arrays(self, times: np.ndarray, cameras: np.ndarray, target_hw: tuple[int, int]) -> WindowArrays:
        """The frames and ground truth of timesteps ``times`` and cameras ``cameras`` at ``target_hw`` (``[T, N,
        ...]``; the run's crop for the images, the same transform for depth, masks and intrinsics)."""
        images, depth, extrinsics, intrinsics, moving = [], [], [], [], []
        for t in np.asarray(times).tolist():
            row = [self._frame(int(t), int(n), target_hw) for n in np.asarray(cameras).tolist()]
            images.append([r[0] for r in row])
            depth.append([r[1].depth for r in row])
            extrinsics.append([r[1].extrinsics for r in row])
            intrinsics.append([r[1].intrinsics for r in row])
            moving.append([r[1].moving for r in row])
        known = all(m is not None for row in moving for m in row)
        depth_array = np.asarray(depth, np.float32)
        return WindowArrays(
            images=np.asarray(images, np.uint8),
            depth=depth_array,
            valid=depth_array > 0,
            extrinsics=np.asarray(extrinsics, np.float32),
            intrinsics=np.asarray(intrinsics, np.float32),
            dynamic_masks=np.asarray(moving, bool) if known else np.zeros(depth_array.shape, bool),
            mask_known=known,
        )

    def _frame(self, t: int, n: int, target_hw: tuple[int, int]):
        rgb = self.capture.read(t, n)
        undistorter = undistorter_for(self.truth, self.keys[n], (rgb.shape[1], rgb.shape[0]))
        if undistorter is not None:  # the calibration's intrinsics are of the undistorted frame, as in a run
            rgb = undistorter.image(rgb)
        transform = frame_transform(tuple(rgb.shape[:2]), target_hw, "crop")
        frame = self.truth.frame(int(self.capture.frame_index[t, n]), self.keys[n])
        if tuple(frame.image_hw) != tuple(rgb.shape[:2]):
            raise TrainDataError(
                f"{self.path}: camera {self.capture.camera_names[n]}'s ground truth is for {frame.image_hw[1]}x"
                f"{frame.image_hw[0]} frames, its frames are {rgb.shape[1]}x{rgb.shape[0]}; give ground truth at "
                "the frames' resolution"
            )
        return preprocess_frame(rgb, transform), to_model_pixels(frame, transform)


def open_captures(paths: list[str] | list[Path], option: str = "--data") -> list[CaptureSequence]:
    """Every recorded capture at ``paths`` (each one capture or a folder of them), in the order given."""
    return [CaptureSequence(capture, option) for path in paths for capture in find_captures(path, option)]


def evaluation_sequences(spec: str, synthetic_hw: tuple[int, int]) -> tuple[str, list]:
    """The ground-truth sequences ``vggt-mv eval MODEL --gt SPEC`` evaluates on, and a name for them:
    ``synthetic:SEEDS`` (held-out procedural rigs, drawn as in training), a shared real set (``pi3_room``, ...), a
    recorded sample (``ground_truth.npz`` or its folder), a folder of recorded samples, or recorded captures
    (:func:`find_captures`: a dataset root or a folder of them, read as ``run`` reads them). Raises
    :class:`TrainDataError` naming the spec and the fix."""
    from vggt_t_mv.data.realdata import load_realdata
    from vggt_t_mv.data.recorded import recorded_sequences
    from vggt_t_mv.train.dataset import SyntheticDataConfig, synthetic_sequences

    if spec.startswith(SYNTHETIC_GT):
        height, width = synthetic_hw
        cfg = SyntheticDataConfig(seeds=spec[len(SYNTHETIC_GT) :], height=height, width=width)
        return spec, list(synthetic_sequences(cfg))
    path = Path(spec)
    if not path.exists():
        raise TrainDataError(f"--gt {spec} is neither 'synthetic:SEEDS' nor an existing folder")
    if path.is_file() and path.name == GROUND_TRUTH_FILE:
        path = path.parent
    if path.is_file():
        raise TrainDataError(f"--gt {spec} is a file; give a folder ({CAPTURE_FORMS}) or its {GROUND_TRUTH_FILE}")
    try:
        if (path / GROUND_TRUTH_FILE).is_file() or any((sub / GROUND_TRUTH_FILE).is_file() for sub in subfolders(path)):
            return path.name, list(recorded_sequences(path))
        try:
            return path.name, [load_realdata(path)]
        except FileNotFoundError:
            return path.name, list(open_captures([path], "--gt"))
    except (OSError, KeyError) as error:
        raise TrainDataError(f"--gt {spec}: {error}") from error
    except ValueError as error:
        if isinstance(error, TrainDataError):
            raise
        raise TrainDataError(f"--gt {spec}: {error}") from error
