"""Rig calibration files (caliscope TOML, JSON) matched to the capture's cameras: metric scale and intrinsics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.capture.sources import CaptureError
from app.capture.sync import match_camera

CALIBRATION_FORMATS = {".toml": "caliscope camera_array.toml", ".json": 'JSON {"cameras": {...}}'}


# -------------------------------------------------------------------------------------------- calibration
@dataclass
class RigCalibration:
    """Per-camera calibration in capture order: ``intrinsics [N, 3, 3]`` for frames of ``sizes [N]``
    ``(width, height)``; ``extrinsics [N, 3, 4]`` OpenCV camera-from-world in metres, or None."""

    camera_names: list[str]
    intrinsics: np.ndarray
    sizes: list[tuple[int, int]]
    extrinsics: np.ndarray | None
    path: Path


def load_calibration(path: str | Path, camera_names: list[str]) -> RigCalibration:
    """Read a rig calibration and match it to the capture's cameras (by name, else by camera number).

    Accepted forms:

    * caliscope ``camera_array.toml``: ``[cameras.<id>]`` tables with ``matrix`` (3x3 K), ``size``
      ``[w, h]`` and optionally ``rotation`` (3x3) and ``translation`` (3), world->camera, metres;
    * JSON ``{"cameras": {"<name or id>": {"K": 3x3, "size": [w, h], "R": 3x3, "t": [3]}}}`` (``R``/``t``
      optional, OpenCV camera-from-world in metres; ``size`` optional, default the camera's frame size).
    """
    path = Path(path)
    if not path.is_file():
        raise CaptureError(f"calibration file {path} does not exist")
    if path.suffix.lower() not in CALIBRATION_FORMATS:
        supported = "; ".join(f"{suffix}: {form}" for suffix, form in CALIBRATION_FORMATS.items())
        raise CaptureError(
            f"calibration file {path}: unsupported format {path.suffix or '(no suffix)'!r}. Supported: {supported}. "
            "Convert it to one of them (README: calibration)"
        )
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib

            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            tables = raw.get("cameras", {})
            if not isinstance(tables, dict) or not all(isinstance(c, dict) for c in tables.values()):
                raise ValueError("[cameras] must be a table of camera tables")
            entries = {
                str(key): {
                    "K": c.get("matrix"),
                    "size": c.get("size"),
                    "R": c.get("rotation"),
                    "t": c.get("translation"),
                }
                for key, c in raw.get("cameras", {}).items()
            }
        else:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or not isinstance(raw.get("cameras", {}), dict | list):
                raise ValueError('expected an object {"cameras": {NAME: {"K": ..., "size": ..., "R": ..., "t": ...}}}')
            cameras = raw.get("cameras", {})
            if isinstance(cameras, list):
                cameras = {str(c.get("name", i) if isinstance(c, dict) else i): c for i, c in enumerate(cameras)}
            entries = {str(k): c for k, c in cameras.items()}
        if not all(isinstance(entry, dict) for entry in entries.values()):
            raise ValueError("every camera entry must be a table / object")
    except (ValueError, OSError) as error:  # TOMLDecodeError, JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise CaptureError(f"calibration file {path} cannot be parsed ({error})") from error
    matched: dict[int, dict] = {}
    for key, entry in entries.items():
        camera = match_camera(key, camera_names)
        if camera is not None:
            matched[camera] = entry
    missing = [name for n, name in enumerate(camera_names) if n not in matched]
    if missing:
        raise CaptureError(
            f"calibration file {path} has no entry for camera(s) {', '.join(missing)} (entries: "
            f"{', '.join(entries) or 'none'}); key each camera by its name or number"
        )
    try:
        intrinsics = np.array([matched[n]["K"] for n in range(len(camera_names))], dtype=np.float64)
        sizes = [tuple(matched[n]["size"]) if matched[n].get("size") else None for n in range(len(camera_names))]
        has_pose = all(matched[n].get("R") is not None and matched[n].get("t") is not None for n in matched)
        extrinsics = None
        if has_pose:
            extrinsics = np.array(
                [
                    np.concatenate([np.array(matched[n]["R"], float), np.array(matched[n]["t"], float)[:, None]], 1)
                    for n in range(len(camera_names))
                ]
            )
    except (KeyError, TypeError, ValueError) as error:
        raise CaptureError(
            f"calibration file {path}: malformed camera entry ({error}); need K 3x3, R 3x3, t 3"
        ) from error
    if intrinsics.shape[1:] != (3, 3):
        raise CaptureError(f"calibration file {path}: K must be 3x3, got {intrinsics.shape[1:]}")
    return RigCalibration(list(camera_names), intrinsics, sizes, extrinsics, path)
