"""EasyMocap's calibration pair ``intri.yml`` + ``extri.yml`` (OpenCV FileStorage YAML, as
``easymocap/mytools/camera_utils.py`` reads and writes it).

``names``: the camera names (the same list in both files). ``intri.yml``: ``K_<name>`` (3x3), ``dist_<name>`` (or
the older ``D_<name>``; 1x5 OpenCV k1 k2 p1 p2 k3), optionally ``H_<name>`` / ``W_<name>`` (image size).
``extri.yml``: ``R_<name>`` (a Rodrigues vector; ``read_camera`` takes the rotation from it), ``Rot_<name>`` (the same
rotation as a 3x3 matrix, used when ``R_`` is absent) and ``T_<name>`` (3x1): world -> camera, ``x_cam = R x + T``.
Units are not stated (EasyMocap works in metres): inferred from the rig.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.capture.calibration.rig import (
    NO_DISTORTION,
    CalibrationError,
    CalibrationFile,
    CameraCalibration,
    Distortion,
    compose_extrinsics,
    rodrigues,
)

INTRINSICS_FILE, EXTRINSICS_FILE = "intri.yml", "extri.yml"


def _open(path: Path):
    import cv2

    if not path.is_file():
        raise CalibrationError(
            f"EasyMocap calibration {path.parent}: {path.name} is missing; EasyMocap keeps {INTRINSICS_FILE} and "
            f"{EXTRINSICS_FILE} side by side, pass their folder"
        )
    try:
        storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except cv2.error as error:
        raise CalibrationError(f"calibration file {path} cannot be parsed as OpenCV YAML ({error})") from error
    if not storage.isOpened():
        raise CalibrationError(f"calibration file {path} cannot be opened as OpenCV YAML")
    return storage


def _names(storage, path: Path) -> list[str]:
    node = storage.getNode("names")
    if node.isNone() or node.size() == 0:
        raise CalibrationError(f"calibration file {path}: no 'names' list (EasyMocap lists the cameras there)")
    names = []
    for i in range(node.size()):
        item = node.at(i)
        names.append(item.string() if item.isString() else str(int(item.real())))
    return names


def _matrix(storage, key: str) -> np.ndarray | None:
    node = storage.getNode(key)
    if node.isNone():
        return None
    matrix = node.mat()
    return None if matrix is None else np.asarray(matrix, dtype=np.float64)


def read_easymocap(folder: Path) -> CalibrationFile:
    """The cameras of ``folder/intri.yml`` and ``folder/extri.yml`` (module docstring)."""
    intri_path, extri_path = folder / INTRINSICS_FILE, folder / EXTRINSICS_FILE
    intri, extri = _open(intri_path), _open(extri_path)
    cameras = []
    for name in _names(intri, intri_path):
        k = _matrix(intri, f"K_{name}")
        if k is None:
            raise CalibrationError(f"calibration file {intri_path}: no K_{name} for camera {name!r}; add it")
        coefficients = _matrix(intri, f"dist_{name}")
        if coefficients is None:
            coefficients = _matrix(intri, f"D_{name}")
        distortion = NO_DISTORTION if coefficients is None else Distortion("opencv", coefficients.reshape(-1))
        height, width = intri.getNode(f"H_{name}"), intri.getNode(f"W_{name}")
        size = None if height.isNone() or width.isNone() else (int(width.real()), int(height.real()))
        if size is not None and min(size) <= 0:  # EasyMocap writes -1 when it does not know
            size = None
        rvec, matrix, translation = (
            _matrix(extri, f"R_{name}"),
            _matrix(extri, f"Rot_{name}"),
            _matrix(extri, f"T_{name}"),
        )
        if translation is None or (rvec is None and matrix is None):
            raise CalibrationError(
                f"calibration file {extri_path}: camera {name!r} needs R_{name} (or Rot_{name}) and T_{name}; add "
                "them or remove the camera from names"
            )
        rotation = rodrigues(rvec) if rvec is not None else matrix
        cameras.append(CameraCalibration(name, k, size, distortion, compose_extrinsics(rotation, translation)))
    return CalibrationFile(cameras, None, "easymocap", folder)
