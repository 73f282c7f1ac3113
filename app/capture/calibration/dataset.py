"""A dataset root's ``intrs/`` + ``extrs/`` as a calibration (read by :class:`~app.capture.ground_truth.
DatasetGroundTruth`, the reader ``eval`` uses): per camera ``[3, 3]`` pixel intrinsics at image resolution and
``[3, 4]`` (or ``[4, 4]``) OpenCV camera-from-world extrinsics, one file per frame (named like the images) or per
camera. Extrinsics that change over a camera's frames make a moving rig (one per frame); intrinsics must not change.
Units are the dataset's own (``arbitrary``): its depth maps are in the same units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.capture.calibration.rig import CalibrationError, CalibrationFile, CameraCalibration
from app.capture.ground_truth import DatasetGroundTruth, GroundTruthError, ground_truth_folders
from app.capture.layout import dataset_images

STATIC_TOLERANCE = 1e-6  # extrinsics that vary by less than this over the frames are one static camera


def is_dataset_root(path: Path) -> bool:
    """Whether ``path`` is a dataset root holding both ``intrs/`` and ``extrs/`` beside its images."""
    return path.is_dir() and {"intrs", "extrs"} <= set(ground_truth_folders(path)) and dataset_images(path) is not None


def read_dataset(root: Path) -> CalibrationFile:
    try:
        truth = DatasetGroundTruth(root)
        cameras = []
        for name in truth.files:
            intrinsics, extrinsics, size = truth.camera_parameters(name)
            if np.abs(intrinsics - intrinsics[0]).max() > STATIC_TOLERANCE * max(1.0, np.abs(intrinsics[0]).max()):
                raise CalibrationError(
                    f"calibration {root / 'intrs'}: the intrinsics of camera {name!r} change over its frames (a zoom "
                    "lens); a calibration has one K per camera. Pass a calibration file instead"
                )
            static = np.abs(extrinsics - extrinsics[0]).max() <= STATIC_TOLERANCE
            cameras.append(
                CameraCalibration(name, intrinsics[0], size, extrinsics=extrinsics[0] if static else extrinsics)
            )
    except GroundTruthError as error:
        raise CalibrationError(f"calibration {root}: {error}") from error
    return CalibrationFile(cameras, "arbitrary", "dataset", root)
