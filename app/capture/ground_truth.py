"""Ground truth of a capture, read in one place (evaluation, training and the viewer open it with
:func:`app.capture.truth.open_ground_truth`).

Accepted forms:

* a **dataset root** (``images/`` plus any of ``depths/``, ``intrs/``, ``extrs/`` beside it): per frame ``.npy``
  files named like the images (``images/time_03/view1.png`` -> ``depths/time_03/view1.npy``; ``cam0/000012.png``
  -> ``depths/cam0/000012.npy``); a rig whose calibration does not change may give one file per camera instead
  (``intrs/view1.npy``). ``depths``: float ``[h, w]`` z-depth at image resolution, 0 or non-finite = invalid;
  ``intrs``: ``[3, 3]`` pixel intrinsics at image resolution; ``extrs``: ``[3, 4]`` or ``[4, 4]`` OpenCV
  camera-from-world. Moving pixels: the root's SegAnyMo masks (``SegAnyMo/sam2/mask_frames``), when present;
* a recorded capture folder holding ``ground_truth.npz``, or that file itself
  (:func:`vggt_t_mv.data.recorded.read_recorded_capture`);
* a capture whose rig calibration lies beside its frames (``camera_array.toml``, ``Calib.toml``, EasyMocap's
  ``intri.yml`` + ``extri.yml``, ...: :func:`app.capture.calibration.calibration_beside`): the cameras only (no depth,
  no masks), static or per-frame as the calibration gives them; frames of a distorted calibration are undistorted
  by its :class:`~app.capture.calibration.undistort.Undistorter` (:func:`app.capture.truth.undistorter_for`);
* a shared real set (``pi3_room``, ``middlebury_templeSparseRing``, ``caliscope_4cam_charuco``;
  :func:`vggt_t_mv.data.realdata.load_realdata`).

:meth:`GroundTruth.frame` gives one camera's ground truth at one source frame (as the capture numbers its frames),
checked: every problem is a :class:`GroundTruthError` naming the file and the fix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from app.capture.layout import dataset_images, discover
from app.capture.masks import MaskSource, match_mask_sources, segany_labels
from app.capture.sources import CaptureError
from vggt_t_mv.data.images import ImageReadError, read_image
from vggt_t_mv.data.recorded import Sequence

GroundTruthFolder = Literal["depths", "intrs", "extrs"]  # a dataset root's per-frame .npy folders
GROUND_TRUTH_FOLDERS: tuple[GroundTruthFolder, ...] = ("depths", "intrs", "extrs")
GT_FORMS = (
    "a dataset root (images/ with depths/, intrs/, extrs/ beside it, per-frame .npy), a recorded capture with "
    "ground_truth.npz (or that file), a capture with its rig calibration beside the frames (cameras only), or a "
    "shared real set (pi3_room, middlebury_templeSparseRing, "
    "caliscope_4cam_charuco)"
)


class GroundTruthError(CaptureError):
    """Ground truth that cannot be read or does not fit the reconstruction; the message names the file."""


def ground_truth_folders(root: Path) -> list[GroundTruthFolder]:
    """The ground-truth folders (``depths``, ``intrs``, ``extrs``) present in a dataset root."""
    return [name for name in GROUND_TRUTH_FOLDERS if (root / name).is_dir()]


@dataclass
class GroundTruthFrame:
    """One camera at one frame: ``depth [h, w]`` float32 (0 = invalid) or None, ``intrinsics [3, 3]`` at
    image resolution, ``extrinsics [3, 4]`` OpenCV camera-from-world, ``moving [h, w]`` bool or None;
    ``image_hw`` the image size they belong to."""

    depth: np.ndarray | None
    intrinsics: np.ndarray
    extrinsics: np.ndarray
    moving: np.ndarray | None
    image_hw: tuple[int, int]


class GroundTruth(ABC):
    """Ground truth addressed like a capture: ``frame(f, camera)`` for source frame ``f`` of camera ``camera``
    (a name in :attr:`camera_names`, or an index when the set has no names)."""

    path: Path
    camera_names: list[str] | None
    num_cameras: int
    num_frames: int
    has_depth: bool
    has_masks: bool

    def depth_problem(self) -> str | None:
        """Why depth that this ground truth provides gave no valid value in the frames read so far, or None."""
        return None

    @abstractmethod
    def frame(self, f: int, camera: str | int) -> GroundTruthFrame:
        """Camera ``camera``'s ground truth at source frame ``f``."""

    def camera_index(self, camera: str | int) -> int:
        """Index of ``camera`` (a name or an index) in this set; :class:`GroundTruthError` when it has none."""
        if isinstance(camera, str) and self.camera_names is not None:
            if camera not in self.camera_names:
                raise GroundTruthError(
                    f"ground truth {self.path} has no camera {camera!r} (it has {', '.join(self.camera_names)}); "
                    "evaluate against the ground truth of the same capture"
                )
            return self.camera_names.index(camera)
        raise GroundTruthError(f"ground truth {self.path}: camera {camera!r} is not known by name")

    def check_frame(self, f: int) -> None:
        if not 0 <= f < self.num_frames:
            raise GroundTruthError(
                f"ground truth {self.path} covers frames 0..{self.num_frames - 1}, the reconstruction uses frame {f}; "
                "evaluate against the ground truth of the same capture"
            )


def check_camera(intrinsics: np.ndarray, extrinsics: np.ndarray, intrinsics_from: str, extrinsics_from: str) -> None:
    """:class:`GroundTruthError` naming the source unless ``extrinsics [3, 4]`` are finite with a rotation and
    ``intrinsics [3, 3]`` finite with positive focal lengths (else every camera metric would be garbage or fail)."""
    rotation = extrinsics[:3, :3]
    if not np.isfinite(extrinsics).all():
        raise GroundTruthError(
            f"ground truth {extrinsics_from}: the extrinsics hold NaN or inf ({_first_bad(extrinsics)}); camera-from-"
            "world [R | t] must be finite numbers: fix or replace that file"
        )
    if abs(abs(float(np.linalg.det(rotation))) - 1) > 1e-2:
        raise GroundTruthError(
            f"ground truth {extrinsics_from}: the extrinsics' 3x3 part is not a rotation (determinant "
            f"{float(np.linalg.det(rotation)):.3g}); camera-from-world [R | t] is expected: fix or replace that file"
        )
    if not np.isfinite(intrinsics).all() or not (intrinsics[0, 0] > 0 and intrinsics[1, 1] > 0):
        raise GroundTruthError(
            f"ground truth {intrinsics_from}: the intrinsics need finite values and positive focal lengths, got fx "
            f"{intrinsics[0, 0]}, fy {intrinsics[1, 1]} ({_first_bad(intrinsics)}); pixel K [3, 3] is expected: fix or "
            "replace that file"
        )


def check_sequence_cameras(sequence: Sequence, path: Path) -> None:
    """:func:`check_camera` on every camera of every timestep of ``sequence`` (read from ``path``)."""
    for t in range(sequence.num_timesteps):
        for n in range(sequence.num_cameras):
            where = f"{path} (camera {n}, frame {t})"
            check_camera(sequence.intrinsics[t, n], sequence.extrinsics[t, n, :3], where, where)


def _first_bad(array: np.ndarray) -> str:
    bad = np.argwhere(~np.isfinite(array))
    if len(bad) == 0:
        return "all finite"
    return f"{len(bad)} of {array.size} values, the first at {tuple(int(i) for i in bad[0])}: {array[tuple(bad[0])]}"


def _load_npy(file: Path, shapes: tuple[tuple[int, ...], ...] | None, what: str) -> np.ndarray:
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise GroundTruthError(f"ground truth {file} cannot be read as a .npy array ({error}); replace it") from error
    if shapes is not None and array.shape not in shapes:
        wanted = " or ".join("x".join(map(str, s)) for s in shapes)
        raise GroundTruthError(f"ground truth {file}: {what} must be {wanted}, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise GroundTruthError(f"ground truth {file}: {what} must be numbers, got dtype {array.dtype}")
    return array


class DatasetGroundTruth(GroundTruth):
    """A dataset root's per-frame ``.npy`` ground truth (module docstring)."""

    camera_names: list[str]  # a dataset root's cameras always have names

    def __init__(self, root: Path) -> None:
        self.path, self.root = root, root
        images = dataset_images(root)
        if images is None:
            raise GroundTruthError(f"ground truth {root}: no images/ (or rgb/, frames/) folder; {GT_FORMS}")
        self.images = images
        found = ground_truth_folders(root)
        missing = [name for name in ("intrs", "extrs") if name not in found]
        if missing:
            raise GroundTruthError(
                f"ground truth {root}: no {' or '.join(f'{m}/' for m in missing)} folder beside {self.images.name}/ "
                "(per-frame .npy intrinsics [3, 3] and camera-from-world extrinsics [3, 4] named like the images)"
            )
        discovery = discover(self.images)
        self.camera_names = [name for name, _, _ in discovery.cameras]
        self.num_cameras = len(self.camera_names)
        self.files: dict[str, list[Path]] = {}
        for name, _, files in discovery.cameras:
            if files is None:
                raise GroundTruthError(f"ground truth {root}: per-frame .npy files need image frames, not videos")
            self.files[name] = files
        self.num_frames = min(len(files) for files in self.files.values())
        self.has_depth = "depths" in found
        self.empty_depth: list[Path] = []  # depth files read so far with no valid value (all NaN, inf or <= 0)
        labels = segany_labels(root)
        self.masks: dict[str, MaskSource] | None = None
        if labels is not None:
            self.masks = dict(zip(self.camera_names, match_mask_sources(labels, self.camera_names), strict=True))
        self.has_masks = self.masks is not None

    def depth_problem(self) -> str | None:
        if not self.empty_depth:
            return None
        return (
            f"{len(self.empty_depth)} ground-truth depth file(s) hold no valid value (all NaN, inf or <= 0), e.g. "
            f"{self.empty_depth[0]}: the depth and point metrics leave those frames out; check the depth files"
        )

    def file(self, kind: GroundTruthFolder, image: Path, camera: str) -> Path:
        """The ``.npy`` of ``kind`` (depths, intrs, extrs) for ``image``: per frame, else per camera."""
        per_frame = (self.root / kind / image.relative_to(self.images)).with_suffix(".npy")
        if per_frame.is_file():
            return per_frame
        per_camera = self.root / kind / f"{camera}.npy"
        if kind != "depths" and per_camera.is_file():
            return per_camera
        raise GroundTruthError(
            f"ground truth {per_frame} is missing (the {kind} of {image}); every image needs its {kind}/ .npy, "
            f"named like the image"
        )

    def camera_parameters(self, camera: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Every frame of ``camera``: intrinsics ``[F, 3, 3]``, extrinsics ``[F, 3, 4]`` (OpenCV camera-from-world) and
        the image size ``(width, height)`` of its first frame (one ``.npy`` per camera is repeated over the frames)."""
        files = self.files[camera][: self.num_frames]
        try:
            header = read_image(files[0]).pixels  # upright, as every reader sees it
        except ImageReadError as error:
            raise GroundTruthError(f"ground truth {error}") from None
        loaded: dict[Path, np.ndarray] = {}

        def load(kind: GroundTruthFolder, image: Path, shapes: tuple[tuple[int, ...], ...], what: str) -> np.ndarray:
            file = self.file(kind, image, camera)
            if file not in loaded:
                loaded[file] = _load_npy(file, shapes, what)[:3].astype(np.float64)
            return loaded[file]

        intrinsics = np.stack([load("intrs", image, ((3, 3),), "intrinsics") for image in files])
        extrinsics = np.stack([load("extrs", image, ((3, 4), (4, 4)), "extrinsics") for image in files])
        return intrinsics, extrinsics, (int(header.shape[1]), int(header.shape[0]))

    def frame(self, f: int, camera: str | int) -> GroundTruthFrame:
        self.check_frame(f)
        name = self.camera_names[camera] if isinstance(camera, int) else self.camera_names[self.camera_index(camera)]
        image = self.files[name][f]
        try:
            hw = tuple(read_image(image).pixels.shape[:2])  # upright, as every reader sees it
        except ImageReadError as error:
            raise GroundTruthError(f"ground truth {error}") from None
        intrinsics_file, extrinsics_file = self.file("intrs", image, name), self.file("extrs", image, name)
        intrinsics = _load_npy(intrinsics_file, ((3, 3),), "intrinsics").astype(np.float64)
        extrinsics = _load_npy(extrinsics_file, ((3, 4), (4, 4)), "extrinsics")[:3].astype(np.float64)
        check_camera(intrinsics, extrinsics, str(intrinsics_file), str(extrinsics_file))
        depth = None
        if self.has_depth:
            depth_file = self.file("depths", image, name)
            depth = _load_npy(depth_file, None, "depth").astype(np.float32)
            if depth.shape != hw:
                raise GroundTruthError(
                    f"ground truth {depth_file}: depth is {'x'.join(map(str, depth.shape))}, its image {image} is "
                    f"{hw[0]}x{hw[1]} (rows x columns); depth must be at image resolution"
                )
            depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
            if not depth.any():
                self.empty_depth.append(depth_file)
        moving = None
        if self.masks is not None:
            source = self.masks[name]
            if f >= source.num_frames:
                raise GroundTruthError(f"ground-truth masks {source.path} have no frame {f} for camera {name}")
            moving = source.read(f) > 127
        return GroundTruthFrame(depth, intrinsics, extrinsics, moving, hw)


class SequenceGroundTruth(GroundTruth):
    """A :class:`~vggt_t_mv.data.recorded.Sequence` (recorded ``ground_truth.npz`` or a shared real set) addressed
    by frame and camera index."""

    def __init__(self, path: Path, sequence: Sequence, camera_names: list[str] | None = None) -> None:
        self.path, self.sequence = path, sequence
        self.camera_names = camera_names
        self.num_cameras = sequence.num_cameras
        self.num_frames = sequence.num_timesteps
        self.has_depth = bool(sequence.valid.any())
        self.has_masks = bool(sequence.mask_known)
        self.declared_depth = False  # set by open_ground_truth when the file stores a depth array

    def depth_problem(self) -> str | None:
        if self.declared_depth and not self.has_depth:
            return (
                f"the ground truth {self.path} stores depth, but no valid value (all NaN, inf or <= 0): the depth "
                "and point metrics are left out; check its depth array"
            )
        return None

    def camera_index(self, camera: str | int) -> int:
        if isinstance(camera, int):
            if not 0 <= camera < self.num_cameras:
                raise GroundTruthError(
                    f"ground truth {self.path} has {self.num_cameras} cameras, the reconstruction uses camera {camera}"
                )
            return camera
        return super().camera_index(camera)

    def frame(self, f: int, camera: str | int) -> GroundTruthFrame:
        self.check_frame(f)
        n = self.camera_index(camera)
        seq = self.sequence
        depth = seq.depth[f, n].astype(np.float32) if self.has_depth else None
        moving = seq.dynamic_masks[f, n].astype(bool) if self.has_masks else None
        intrinsics, extrinsics = seq.intrinsics[f, n].astype(np.float64), seq.extrinsics[f, n, :3].astype(np.float64)
        where = f"{self.path} (camera {n}, frame {f})"
        check_camera(intrinsics, extrinsics, where, where)
        return GroundTruthFrame(depth, intrinsics, extrinsics, moving, tuple(seq.images.shape[2:4]))
