"""Qualisys QTM calibration export (``*.qca.txt``, XML), read as pose2sim reads it (``calib_qca_to_toml.py``).

Per ``cameras/camera`` (video cameras only: ``model`` ``Miqus Video``, ``Miqus Video UnderWater`` or ``none``,
named by ``serial``):

* ``fov_video`` ``left top right bottom``: the recorded window in sensor pixels, right/bottom inclusive, so the image
  is ``(right - left + 1) x (bottom - top + 1)``;
* ``intrinsic`` in sub-pixel sensor units (64 per pixel): ``fx = focalLengthU / 64``, ``cx = centerPointU / 64 -
  left`` (likewise V / top), distortion ``k1 k2 p1 p2`` = ``radialDistortion1, radialDistortion2,
  tangentalDistortion1, tangentalDistortion2`` / 64 (pose2sim's reading; ``radialDistortion3`` / 64 as ``k3``); a
  ``video_resolution`` attribute (``720p``...) scales all of these by ``resolution / 1080``;
* ``transform``: the camera's position ``x y z`` (mm) in the world and its orientation ``r11..r33`` (the matrix
  ``M[i, j] = r_{i+1, j+1}``, whose rows are the camera's axes in the world with y up and z backward). OpenCV
  camera-from-world: ``R = diag(1, -1, -1) M`` (pose2sim: transpose, then a half turn about x), ``t = -R position``,
  so the camera centre is the position. Lengths in millimetres.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from app.capture.calibration.rig import CalibrationError, CalibrationFile, CameraCalibration, Distortion

SUFFIX = ".qca.txt"
SUBPIXELS = 64.0  # QTM's intrinsic unit: 1/64 pixel
VIDEO_MODELS = ("Miqus Video", "Miqus Video UnderWater", "none")
FLIP_YZ = np.diag([1.0, -1.0, -1.0])  # Qualisys camera axes (y up, z backward) -> OpenCV (y down, z forward)


def _number(element, key: str, path: Path, camera: str) -> float:
    value = element.get(key)
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise CalibrationError(
            f"calibration file {path}, camera {camera!r}: <{element.tag}> has no number {key}= ({value!r}); the file "
            "is not a complete QTM calibration export"
        ) from error


def read_qualisys(path: Path) -> CalibrationFile:
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise CalibrationError(f"calibration file {path} cannot be parsed as QTM XML ({error})") from error
    cameras: list[CameraCalibration] = []
    for element in root.findall("cameras/camera"):
        if element.get("model") not in VIDEO_MODELS:
            continue
        name = element.get("serial") or str(len(cameras))
        fov, intrinsic, transform = element.find("fov_video"), element.find("intrinsic"), element.find("transform")
        if fov is None or intrinsic is None or transform is None:
            raise CalibrationError(
                f"calibration file {path}, camera {name!r}: needs <fov_video>, <intrinsic> and <transform>; export "
                "the calibration from QTM again"
            )
        if element.get("viewrotation", "0") not in ("0", "0.0"):
            raise CalibrationError(
                f"calibration file {path}, camera {name!r}: viewrotation {element.get('viewrotation')} is not "
                "supported; export the calibration with the camera's view rotation at 0"
            )
        resolution = element.get("video_resolution")
        factor = 1.0
        if resolution not in (None, "N/A"):
            factor = int(str(resolution).rstrip("pP")) / 1080.0

        def number(element, key: str, camera: str = name) -> float:
            return _number(element, key, path, camera)

        left, top = number(fov, "left"), number(fov, "top")
        width = (number(fov, "right") - left + 1) * factor
        height = (number(fov, "bottom") - top + 1) * factor
        fx, fy = number(intrinsic, "focalLengthU") / SUBPIXELS, number(intrinsic, "focalLengthV") / SUBPIXELS
        cx, cy = (
            number(intrinsic, "centerPointU") / SUBPIXELS - left,
            number(intrinsic, "centerPointV") / SUBPIXELS - top,
        )
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]) * np.array([[factor], [factor], [1.0]])
        coefficients = (
            np.array(
                [
                    number(intrinsic, key)
                    for key in (
                        "radialDistortion1",
                        "radialDistortion2",
                        "tangentalDistortion1",
                        "tangentalDistortion2",
                    )
                ]
                + [float(intrinsic.get("radialDistortion3", 0.0))]
            )
            / SUBPIXELS
        )
        orientation = np.array([[number(transform, f"r{i}{j}") for j in (1, 2, 3)] for i in (1, 2, 3)])
        position = np.array([number(transform, axis) for axis in ("x", "y", "z")])
        rotation = FLIP_YZ @ orientation
        extrinsics = np.concatenate([rotation, (-rotation @ position)[:, None]], axis=1)
        size = (round(width), round(height))
        cameras.append(CameraCalibration(name, k, size, Distortion("opencv", coefficients), extrinsics))
    if not cameras:
        raise CalibrationError(
            f'calibration file {path}: no video camera (<camera model="Miqus Video"> or model="none") in '
            "<cameras>; export the calibration of the video cameras from QTM"
        )
    return CalibrationFile(cameras, "mm", "qualisys", path)
