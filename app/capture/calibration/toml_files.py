"""TOML calibrations: caliscope ``camera_array.toml`` and anipose / pose2sim ``calibration.toml`` / ``Calib.toml``.

* **caliscope** (mprib/caliscope): ``[cameras.<id>]`` tables with ``size`` ``[w, h]``, ``matrix`` (K), ``distortions``
  (OpenCV k1 k2 p1 p2 k3), ``rotation`` (a 3x3 matrix) and ``translation``: OpenCV world -> camera in metres
  (caliscope's ``normalized_projection_matrix`` is ``[R | t]``). Its ``config.toml`` repeats them as ``[cam_<id>]``.
* **anipose** (aniposelib ``CameraGroup.dump``; pose2sim writes the same): one ``[cam_<k>]`` table per camera
  (read in sorted key order, ``[metadata]`` skipped) with ``name``, ``size`` ``[w, h]``, ``matrix``, ``distortions``,
  ``rotation`` (a Rodrigues vector: ``R = cv2.Rodrigues(rotation)``) and ``translation``, world -> camera
  (``x_cam = R x + t``), in the unit of the calibration board (not stated in the file: inferred from the rig);
  ``fisheye = true`` marks cv2.fisheye cameras (4 coefficients).
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


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        raise CalibrationError(f"calibration file {path} cannot be parsed as TOML ({error})") from error


def _size(value, path: Path, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        width, height = (float(v) for v in value)
    except (TypeError, ValueError) as error:
        raise CalibrationError(f"calibration {path}, camera {name!r}: size must be [width, height]") from error
    return round(width), round(height)


def read_toml(path: Path) -> CalibrationFile:
    """A caliscope or anipose TOML (module docstring), told apart by its tables and its rotations."""
    raw = _load_toml(path)
    if "cameras" in raw:
        tables = raw["cameras"]
        if not isinstance(tables, dict) or not all(isinstance(c, dict) for c in tables.values()):
            raise CalibrationError(
                f"calibration file {path}: [cameras] must be a table of camera tables ([cameras.0] matrix = ..., "
                "size = ..., rotation = ..., translation = ...), as caliscope writes camera_array.toml"
            )
        entries = [(str(key), table) for key, table in tables.items()]
    else:
        entries = [(key, raw[key]) for key in sorted(raw) if key != "metadata" and isinstance(raw[key], dict)]
        entries = [(key, table) for key, table in entries if "matrix" in table]
        if not entries:
            raise CalibrationError(
                f"calibration file {path}: no camera tables; expected caliscope's [cameras.<id>] tables or anipose's "
                "[cam_0], [cam_1], ... tables with matrix, size, rotation and translation"
            )
    cameras, rodrigues_rotations = [], []
    for key, table in entries:
        name = str(table.get("name", key)) if "cameras" not in raw else key
        try:
            k = np.array(table["matrix"], dtype=np.float64)
            coefficients = np.array(table.get("distortions", []), dtype=np.float64).reshape(-1)
            fisheye = bool(table.get("fisheye", False))
            distortion = (
                Distortion("fisheye" if fisheye else "opencv", coefficients) if coefficients.size else (NO_DISTORTION)
            )
            extrinsics = None
            if table.get("rotation") is not None and table.get("translation") is not None:
                rotation = np.array(table["rotation"], dtype=np.float64)
                rodrigues_rotations.append(rotation.shape == (3,))
                matrix = rodrigues(rotation) if rotation.shape == (3,) else rotation
                extrinsics = compose_extrinsics(matrix, table["translation"])
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(
                f"calibration file {path}: malformed camera entry {key!r} ({error}); need matrix 3x3, rotation "
                "(3x3 or a Rodrigues vector) and translation 3"
            ) from error
        cameras.append(CameraCalibration(name, k, _size(table.get("size"), path, name), distortion, extrinsics))
    anipose = any(rodrigues_rotations) or ("cameras" not in raw and not rodrigues_rotations)
    if anipose:
        return CalibrationFile(cameras, None, "anipose", path)
    return CalibrationFile(cameras, "m", "caliscope", path)
