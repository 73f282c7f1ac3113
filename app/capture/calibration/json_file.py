"""The JSON calibration schema (this project's own; README "Calibrated rigs")::

{
  "units": "m",                                   # optional: m (default), cm, mm or arbitrary
  "cameras": {                                    # or a list of objects with a "name"
    "cam0": {
      "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],  # pixel intrinsics, top-left pixel centre at (0, 0)
      "size": [width, height],                    # optional: the frame size K belongs to
      "R": [[...], [...], [...]], "t": [x, y, z],  # optional: OpenCV camera-from-world, x_cam = R x + t
      "dist": [k1, k2, p1, p2, k3],               # optional: OpenCV distortion coefficients
      "distortion_model": "opencv"                # optional: opencv (default) or fisheye (k1 k2 k3 k4)
    }
  }
}
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.capture.calibration.rig import (
    NO_DISTORTION,
    CalibrationError,
    CalibrationFile,
    CameraCalibration,
    Distortion,
    compose_extrinsics,
)
from app.common.vocab import LENGTH_UNITS

SCHEMA_HINT = 'expected an object {"cameras": {NAME: {"K": ..., "size": ..., "R": ..., "t": ...}}}'


def read_json(path: Path) -> CalibrationFile:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        raise CalibrationError(f"calibration file {path} cannot be parsed ({error}); {SCHEMA_HINT}") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("cameras", {}), dict | list):
        raise CalibrationError(f"calibration file {path}: {SCHEMA_HINT} (README: Calibrated rigs)")
    units = raw.get("units", "m")
    if units not in LENGTH_UNITS:
        raise CalibrationError(
            f'calibration file {path}: units {units!r} are not determinable; set "units" to one of '
            f"{', '.join(LENGTH_UNITS)} (arbitrary: not metric), or pass --calibration-units"
        )
    cameras = raw.get("cameras", {})
    if isinstance(cameras, list):
        cameras = {str(c.get("name", i) if isinstance(c, dict) else i): c for i, c in enumerate(cameras)}
    out = []
    for name, entry in cameras.items():
        if not isinstance(entry, dict):
            raise CalibrationError(f"calibration file {path}: camera entry {name!r} must be an object; {SCHEMA_HINT}")
        try:
            k = np.array(entry["K"], dtype=np.float64)
            size = None
            if entry.get("size") is not None:
                width, height = (int(v) for v in entry["size"])
                size = (width, height)
            coefficients = np.array(entry.get("dist", []), dtype=np.float64).reshape(-1)
            model = entry.get("distortion_model", "opencv")
            if model not in ("opencv", "fisheye"):
                raise ValueError(f"distortion_model {model!r} is not opencv or fisheye")
            distortion = Distortion(model, coefficients) if coefficients.size else NO_DISTORTION
            extrinsics = None
            if entry.get("R") is not None and entry.get("t") is not None:
                extrinsics = compose_extrinsics(entry["R"], entry["t"])
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(
                f"calibration file {path}: malformed camera entry {name!r} ({error}); need K 3x3, size [width, "
                "height], R 3x3, t 3"
            ) from error
        out.append(CameraCalibration(str(name), k, size, distortion, extrinsics))
    return CalibrationFile(out, units, "json", path)
