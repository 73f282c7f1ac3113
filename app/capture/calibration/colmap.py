"""A COLMAP sparse model (``cameras`` + ``images``, ``.bin`` or ``.txt``, read with pycolmap) as a calibration.

COLMAP's image poses are camera-from-world ``[R | t]`` with OpenCV axes (its ``cam_from_world``), its pixel
coordinates put the centre of the top-left pixel at ``(0.5, 0.5)``: ``cx, cy`` are shifted by
:data:`COLMAP_PIXEL_OFFSET` to this project's ``(0, 0)``. Camera models: ``SIMPLE_PINHOLE``, ``PINHOLE``,
``SIMPLE_RADIAL``, ``RADIAL``, ``OPENCV``, ``FULL_OPENCV`` (OpenCV distortion) and ``OPENCV_FISHEYE`` (cv2.fisheye);
other models are refused. Images are matched to the capture's cameras by name: an image ``cam0.png``,
``cam0/000012.png`` or ``t00003_cam0.png`` (what ``vggt-mv export --format colmap`` writes) belongs to camera
``cam0``. One image per camera is a static rig; several (in natural order) are that camera's frames. A COLMAP model
has no absolute scale: units ``arbitrary``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from app.capture.calibration.rig import (
    NO_DISTORTION,
    CalibrationError,
    CalibrationFile,
    CameraCalibration,
    Distortion,
    DistortionModel,
)
from app.capture.sources import natural_key

COLMAP_PIXEL_OFFSET = 0.5  # COLMAP pixel coordinate = this project's pixel index + 0.5
_EXPORT_NAME = re.compile(r"t\d+_(.+)")

# model -> (fx, fy, cx, cy, distortion model, distortion coefficients) from the params vector
_MODELS = {
    "SIMPLE_PINHOLE": lambda p: (p[0], p[0], p[1], p[2], "none", []),
    "PINHOLE": lambda p: (p[0], p[1], p[2], p[3], "none", []),
    "SIMPLE_RADIAL": lambda p: (p[0], p[0], p[1], p[2], "opencv", [p[3], 0.0, 0.0, 0.0]),
    "RADIAL": lambda p: (p[0], p[0], p[1], p[2], "opencv", [p[3], p[4], 0.0, 0.0]),
    "OPENCV": lambda p: (p[0], p[1], p[2], p[3], "opencv", list(p[4:8])),
    "FULL_OPENCV": lambda p: (p[0], p[1], p[2], p[3], "opencv", list(p[4:12])),
    "OPENCV_FISHEYE": lambda p: (p[0], p[1], p[2], p[3], "fisheye", list(p[4:8])),
}


def is_colmap_model(path: Path) -> bool:
    """Whether ``path`` is a folder with ``cameras.bin|txt`` and ``images.bin|txt``."""
    return path.is_dir() and all(
        (path / f"{name}.bin").is_file() or (path / f"{name}.txt").is_file() for name in ("cameras", "images")
    )


def model_folder(path: Path) -> Path | None:
    """The sparse model folder at ``path``: itself, ``sparse/``, ``sparse/0/`` or ``0/``, else None."""
    for candidate in (path, path / "sparse", path / "sparse" / "0", path / "0"):
        if is_colmap_model(candidate):
            return candidate
    return None


def image_camera_name(image_name: str) -> str:
    """The capture camera an image belongs to (module docstring)."""
    parts = Path(image_name).parts
    if len(parts) > 1:
        return parts[-2]
    stem = Path(image_name).stem
    match = _EXPORT_NAME.fullmatch(stem)
    return match.group(1) if match else stem


def read_colmap(folder: Path) -> CalibrationFile:
    import pycolmap

    try:
        model = pycolmap.Reconstruction(str(folder))
    except (RuntimeError, ValueError, OSError) as error:
        raise CalibrationError(f"calibration {folder}: the COLMAP model cannot be read ({error})") from error
    by_camera: dict[str, list] = {}
    for image in sorted(model.images.values(), key=lambda i: natural_key(i.name)):
        by_camera.setdefault(image_camera_name(image.name), []).append(image)
    if not by_camera:
        raise CalibrationError(f"calibration {folder}: the COLMAP model has no images; one posed image per camera")
    cameras = []
    for name, images in by_camera.items():
        camera_ids = {image.camera_id for image in images}
        if len(camera_ids) > 1:
            raise CalibrationError(
                f"calibration {folder}: the images of camera {name!r} ({', '.join(i.name for i in images[:3])}) use "
                f"{len(camera_ids)} COLMAP cameras; one camera (intrinsics) per rig camera is needed"
            )
        camera = model.cameras[camera_ids.pop()]
        model_name = camera.model.name
        if model_name not in _MODELS:
            raise CalibrationError(
                f"calibration {folder}: camera {name!r} uses the COLMAP model {model_name}, which is not supported "
                f"({', '.join(_MODELS)} are); undistort the images with COLMAP (image_undistorter) and pass that model"
            )
        fx, fy, cx, cy, kind, coefficients = _MODELS[model_name](np.asarray(camera.params, dtype=np.float64))
        k = np.array([[fx, 0.0, cx - COLMAP_PIXEL_OFFSET], [0.0, fy, cy - COLMAP_PIXEL_OFFSET], [0.0, 0.0, 1.0]])
        lens: DistortionModel = "fisheye" if kind == "fisheye" else "opencv"
        distortion = NO_DISTORTION if kind == "none" else Distortion(lens, np.array(coefficients, dtype=np.float64))
        poses = [np.asarray(_cam_from_world(image).matrix(), dtype=np.float64) for image in images]
        extrinsics = poses[0] if len(poses) == 1 else np.stack(poses)
        cameras.append(CameraCalibration(name, k, (int(camera.width), int(camera.height)), distortion, extrinsics))
    return CalibrationFile(cameras, "arbitrary", "colmap", folder)


def _cam_from_world(image):
    pose = image.cam_from_world
    return pose() if callable(pose) else pose  # a method since pycolmap 3.12 (rigs and frames), a property before
