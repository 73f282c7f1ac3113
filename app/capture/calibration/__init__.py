"""Rig calibrations: one reader per format (``toml_files``, ``json_file``, ``qualisys``, ``easymocap``, ``colmap``,
``dataset``), one type (:class:`RigCalibration` in ``rig``), matching to a capture and units in ``load``, lens
undistortion in ``undistort``. Nothing here needs torch."""

from app.capture.calibration.load import (
    CALIBRATIONS_BESIDE_FRAMES,
    FORMS,
    calibration_beside,
    load_calibration,
    read_calibration_file,
)
from app.capture.calibration.rig import (
    CalibrationError,
    CameraCalibration,
    Distortion,
    LengthUnit,
    RigCalibration,
)

__all__ = [
    "CALIBRATIONS_BESIDE_FRAMES",
    "FORMS",
    "calibration_beside",
    "CalibrationError",
    "CameraCalibration",
    "Distortion",
    "LengthUnit",
    "RigCalibration",
    "load_calibration",
    "read_calibration_file",
]
