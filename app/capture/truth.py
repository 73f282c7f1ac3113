"""Which reader reads a path of ground truth (:func:`open_ground_truth`), and the cameras of a rig calibration kept
beside a capture's frames as ground truth (:class:`CalibrationGroundTruth`). The forms and the readers of the others:
:mod:`app.capture.ground_truth`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.capture.calibration import (
    CalibrationError,
    RigCalibration,
    calibration_beside,
    load_calibration,
)
from app.capture.calibration.undistort import Undistorter
from app.capture.ground_truth import (
    GT_FORMS,
    DatasetGroundTruth,
    GroundTruth,
    GroundTruthError,
    GroundTruthFrame,
    SequenceGroundTruth,
    check_camera,
    ground_truth_folders,
)
from app.capture.layout import Discovery, dataset_images, discover
from app.capture.sources import CaptureError, open_source
from vggt_t_mv.data.realdata import load_realdata
from vggt_t_mv.data.recorded import GROUND_TRUTH_FILE, read_recorded_capture


class CalibrationGroundTruth(GroundTruth):
    """The cameras of a capture's rig calibration (module docstring): intrinsics and OpenCV camera-from-world
    extrinsics per camera (per frame for a moving rig), no depth, no masks."""

    def __init__(self, calibration_path: Path, discovery: Discovery) -> None:
        sources = [open_source(name, path, files) for name, path, files in discovery.cameras]
        self.camera_names = [source.name for source in sources]
        self.num_cameras = len(sources)
        sizes = [(int(source.width), int(source.height)) for source in sources]
        self.image_hws = [(height, width) for width, height in sizes]
        # Training and scaled metrics do not depend on the unit: a file that states none is read as 'arbitrary'.
        self.calibration: RigCalibration = load_calibration(
            calibration_path, self.camera_names, sizes, unstated_units="arbitrary"
        )
        self.path = self.calibration.path
        if not self.calibration.has_extrinsics:
            raise GroundTruthError(
                f"ground truth {self.path}: the calibration has no extrinsics; ground truth needs every camera's "
                "[R|t] (give a calibration with them, or depths/ intrs/ extrs/ beside images/)"
            )
        counts = [source.num_frames for source in sources]
        counts += [len(c.extrinsics) for c in self.calibration.cameras if c.moving and c.extrinsics is not None]
        self.num_frames = min(counts)
        self.has_depth = self.has_masks = False

    def frame(self, f: int, camera: str | int) -> GroundTruthFrame:
        self.check_frame(f)
        n = self.camera_index(camera) if isinstance(camera, str) else camera
        calibrated = self.calibration.cameras[n]
        intrinsics = np.asarray(calibrated.intrinsics, np.float64)
        extrinsics = np.asarray(calibrated.extrinsics_at(f), np.float64)[:3]
        check_camera(intrinsics, extrinsics, str(self.path), str(self.path))
        return GroundTruthFrame(None, intrinsics, extrinsics, None, self.image_hws[n])

    def undistorter(self, camera: str | int, size: tuple[int, int]) -> Undistorter | None:
        n = self.camera_index(camera) if isinstance(camera, str) else camera
        return Undistorter.for_camera(self.calibration.cameras[n], size)


def capture_discovery(folder: Path) -> Discovery | None:
    """The cameras ``run`` finds in ``folder`` (videos, image folders, a time-major tree); None when it holds none."""
    try:
        discovery = discover(folder)
    except CaptureError:
        return None
    return discovery if discovery.cameras else None


def calibration_ground_truth_at(folder: Path) -> Path | None:
    """The calibration beside the frames of the capture ``folder`` (:func:`calibration_beside`), when ``folder``
    holds frames; else None."""
    beside = calibration_beside(folder)
    return beside if beside is not None and capture_discovery(folder) is not None else None


def open_ground_truth(path: str | Path) -> GroundTruth:
    """The ground truth at ``path`` (module docstring); :class:`GroundTruthError` names what is wrong."""
    path = Path(path)
    if not path.exists():
        raise GroundTruthError(f"ground truth {path} does not exist; pass {GT_FORMS}")
    if path.is_file():
        if path.name != GROUND_TRUTH_FILE:
            raise GroundTruthError(f"ground truth {path} is a file but not a {GROUND_TRUTH_FILE}; pass {GT_FORMS}")
        path = path.parent
    try:
        if (path / GROUND_TRUTH_FILE).is_file():
            recorded = read_recorded_capture(path)
            truth = SequenceGroundTruth(path / GROUND_TRUTH_FILE, recorded.sequence, recorded.camera_names)
            truth.declared_depth = "depth" in recorded.arrays
            return truth
        if ground_truth_folders(path) and dataset_images(path) is not None:
            return DatasetGroundTruth(path)
        beside = calibration_beside(path)
        discovery = capture_discovery(path) if beside is not None else None
        if beside is not None and discovery is not None:
            return CalibrationGroundTruth(beside, discovery)
        return SequenceGroundTruth(path, load_realdata(path, every=1))
    except GroundTruthError:
        raise
    except CalibrationError as error:
        raise GroundTruthError(f"ground truth {path}: {error}") from error
    except FileNotFoundError as error:
        raise GroundTruthError(f"no ground truth in {path} ({error}); pass {GT_FORMS}") from error
    except (OSError, ValueError, KeyError) as error:
        raise GroundTruthError(f"ground truth {path} cannot be read ({error})") from error


def undistorter_for(truth: GroundTruth, camera: str | int, size: tuple[int, int]) -> Undistorter | None:
    """What undoes the lens distortion of ``camera``'s frames of ``size`` ``(width, height)`` before they meet
    ``truth`` (whose intrinsics are of undistorted frames); None: the frames are already pinhole."""
    return truth.undistorter(camera, size) if isinstance(truth, CalibrationGroundTruth) else None
