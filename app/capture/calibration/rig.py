"""The one calibration type every reader produces: :class:`RigCalibration`, per camera a :class:`CameraCalibration`.

Conventions (whatever the file's own): pixel intrinsics ``K [3, 3]`` with the centre of the top-left pixel at
``(0, 0)`` (OpenCV), extrinsics OpenCV camera-from-world ``[R | t]`` (``x_cam = R x_world + t``; x right, y down,
z forward), lengths in the calibration's :data:`LengthUnit`, distortion in OpenCV's coefficient order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from app.capture.sources import CaptureError
from app.common.vocab import LengthUnit

DistortionModel = Literal["none", "opencv", "fisheye"]  # opencv: k1 k2 p1 p2 [k3 [k4 k5 k6]]; fisheye: k1..k4
DISTORTION_MODELS: tuple[DistortionModel, ...] = get_args(DistortionModel)
CalibrationFormat = Literal["caliscope", "json", "dataset", "anipose", "easymocap", "qualisys", "colmap"]
CALIBRATION_FORMATS: tuple[CalibrationFormat, ...] = get_args(CalibrationFormat)
UNIT_WORDS = {"m": "metres", "cm": "centimetres", "mm": "millimetres", "arbitrary": "the calibration's own units"}

ROTATION_TOLERANCE = 1e-3  # max |R R^T - I| and |det R - 1| accepted (float32 files round at ~1e-7)


class CalibrationError(CaptureError):
    """A calibration that cannot be read or does not fit the capture; the message names the file and the fix."""


@dataclass(frozen=True)
class Distortion:
    """Lens distortion: ``model`` and ``coefficients [k]`` in OpenCV's order (``opencv``: k1 k2 p1 p2 [k3 [k4 k5
    k6]], ``fisheye``: cv2.fisheye's k1 k2 k3 k4)."""

    model: DistortionModel = "none"
    coefficients: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def is_identity(self) -> bool:
        """True when there is nothing to undistort (no model, or every coefficient 0)."""
        return self.model == "none" or not np.any(self.coefficients)


NO_DISTORTION = Distortion()


@dataclass(frozen=True)
class CameraCalibration:
    """One camera as its calibration file names it: ``intrinsics [3, 3]`` for frames of ``size`` ``(width,
    height)`` (None: the file does not say), ``distortion``, ``extrinsics`` ``[3, 4]`` (a static camera) or
    ``[F, 3, 4]`` (a moving camera: one per source frame of the camera), or None (intrinsics only)."""

    name: str
    intrinsics: np.ndarray
    size: tuple[int, int] | None = None
    distortion: Distortion = NO_DISTORTION
    extrinsics: np.ndarray | None = None

    @property
    def moving(self) -> bool:
        return self.extrinsics is not None and self.extrinsics.ndim == 3

    def extrinsics_at(self, frame: int) -> np.ndarray:
        """The ``[3, 4]`` camera-from-world extrinsics at source frame ``frame`` of this camera."""
        if self.extrinsics is None:
            raise ValueError(f"camera {self.name} has no extrinsics")
        return self.extrinsics[frame] if self.moving else self.extrinsics

    def centers(self) -> np.ndarray:
        """Camera centres ``[3]`` (static) or ``[F, 3]`` (moving), ``-R^T t``, in the calibration's units."""
        if self.extrinsics is None:
            raise ValueError(f"camera {self.name} has no extrinsics")
        rotation, translation = self.extrinsics[..., :3], self.extrinsics[..., 3]
        return -np.einsum("...ji,...j->...i", rotation, translation)


@dataclass(frozen=True)
class RigCalibration:
    """A calibration matched to a capture: ``cameras[n]`` is capture camera ``camera_names[n]``.

    ``units`` of every length (how they were decided: ``units_source``), ``format`` and ``path`` of the file read,
    ``match``: how its cameras were matched to the capture's (one line, announced)."""

    cameras: list[CameraCalibration]
    camera_names: list[str]
    units: LengthUnit
    format: CalibrationFormat
    path: Path
    match: str = ""
    units_source: str = ""

    @property
    def intrinsics(self) -> np.ndarray:
        """``[N, 3, 3]`` pixel intrinsics of the (undistorted) frames at each camera's calibrated size."""
        return np.stack([c.intrinsics for c in self.cameras])

    @property
    def sizes(self) -> list[tuple[int, int] | None]:
        return [c.size for c in self.cameras]

    @property
    def has_extrinsics(self) -> bool:
        return all(c.extrinsics is not None for c in self.cameras)

    @property
    def moving(self) -> bool:
        return any(c.moving for c in self.cameras)

    @property
    def extrinsics(self) -> np.ndarray | None:
        """``[N, 3, 4]`` of a static rig (a moving rig: each camera's first frame), None without extrinsics."""
        if not self.has_extrinsics:
            return None
        return np.stack([c.extrinsics_at(0) for c in self.cameras])

    def extrinsics_for(self, frame_index: np.ndarray) -> np.ndarray:
        """``[T, N, 3, 4]`` extrinsics at each timestep: camera ``n`` at its source frame ``frame_index[t, n]``."""
        frame_index = np.asarray(frame_index)
        return np.stack(
            [
                np.stack([c.extrinsics_at(int(frame_index[t, n])) for n, c in enumerate(self.cameras)])
                for t in range(len(frame_index))
            ]
        )

    @property
    def distorted(self) -> bool:
        return any(not c.distortion.is_identity for c in self.cameras)

    def summary(self) -> str:
        """One line: what was read, its units and how its cameras were matched."""
        parts = [f"calibration {self.path} ({FORMAT_NAMES[self.format]})"]
        parts.append(
            f"units: {self.units} ({UNIT_WORDS[self.units]}, {self.units_source})"
            if self.has_extrinsics
            else "intrinsics only"
        )
        if self.moving:
            parts.append("moving rig (extrinsics per frame)")
        lens = sorted({c.distortion.model for c in self.cameras if not c.distortion.is_identity})
        parts.append(f"lens distortion removed ({', '.join(lens)})" if lens else "no lens distortion")
        if self.match:
            parts.append(self.match)
        return "; ".join(parts)


FORMAT_NAMES: dict[str, str] = {
    "caliscope": "caliscope camera_array.toml",
    "json": 'JSON {"cameras": {...}}',
    "dataset": "dataset root intrs/ + extrs/ (.npy)",
    "anipose": "anipose / pose2sim calibration.toml",
    "easymocap": "EasyMocap intri.yml + extri.yml",
    "qualisys": "Qualisys QTM .qca.txt",
    "colmap": "COLMAP sparse model",
}


# ------------------------------------------------------------------------------------------------ checks
def check_camera(camera: CameraCalibration, path: Path) -> None:
    """Refuse a camera whose numbers cannot be a calibration (NaN, a K that is not a pinhole matrix, a rotation
    that is not one), naming the file, the camera and the fix."""
    where = f"calibration {path}, camera {camera.name!r}"
    k = camera.intrinsics
    if k.shape != (3, 3):
        raise CalibrationError(f"{where}: the intrinsics must be 3x3, got {k.shape}; fix the file")
    if not np.isfinite(k).all():
        raise CalibrationError(f"{where}: the intrinsics hold NaN or Inf ({k.tolist()}); fix or re-export the file")
    if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.allclose(k[2], [0, 0, 1], atol=1e-6) or abs(k[1, 0]) > 1e-9:
        raise CalibrationError(
            f"{where}: the intrinsics {k.tolist()} are not a pinhole matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
            "with fx, fy > 0; fix the file"
        )
    if not np.isfinite(camera.distortion.coefficients).all():
        raise CalibrationError(f"{where}: the distortion coefficients hold NaN or Inf; fix or re-export the file")
    if camera.size is not None and (camera.size[0] <= 0 or camera.size[1] <= 0):
        raise CalibrationError(f"{where}: image size {camera.size} is not a size; fix the file")
    if camera.extrinsics is None:
        return
    ext = camera.extrinsics
    if ext.shape[-2:] != (3, 4):
        raise CalibrationError(f"{where}: the extrinsics must be [R | t] 3x4, got {ext.shape}; fix the file")
    if not np.isfinite(ext).all():
        raise CalibrationError(f"{where}: the extrinsics hold NaN or Inf; fix or re-export the file")
    rotation = ext[..., :3].astype(np.float64)
    orthogonality = np.abs(rotation @ np.swapaxes(rotation, -1, -2) - np.eye(3)).max()
    determinant = np.linalg.det(rotation)
    if orthogonality > ROTATION_TOLERANCE or np.abs(determinant - 1).max() > ROTATION_TOLERANCE:
        raise CalibrationError(
            f"{where}: the rotation is not a rotation matrix (|R R^T - I| up to {orthogonality:.3g}, det "
            f"{float(np.atleast_1d(determinant)[0]):.4g}); the file must hold an orthonormal R with det +1 "
            "(camera-from-world). Fix or re-export it"
        )


def rodrigues(vector) -> np.ndarray:
    """A rotation vector ``[3]`` (axis times angle, radians) -> the rotation matrix ``[3, 3]`` (cv2.Rodrigues)."""
    import cv2

    return cv2.Rodrigues(np.asarray(vector, dtype=np.float64).reshape(3, 1))[0]


def compose_extrinsics(rotation, translation) -> np.ndarray:
    """``[R | t]`` ``[3, 4]`` from a rotation ``[3, 3]`` and a translation ``[3]``."""
    rotation = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    translation = np.asarray(translation, dtype=np.float64).reshape(3)
    return np.concatenate([rotation, translation[:, None]], axis=1)


# ----------------------------------------------------------------------------------------------- units
METRE_SPACING = (0.02, 30.0)  # median distance between camera centres read as metres
MILLIMETRE_SPACING = (100.0, 30000.0)  # ... as millimetres (between the two: not determinable)


def camera_spacing(cameras: list[CameraCalibration]) -> float:
    """Median distance between the cameras' centres (first frame), in the calibration's units; nan below 2."""
    centres = [np.atleast_2d(c.centers())[0] for c in cameras if c.extrinsics is not None]
    if len(centres) < 2:
        return float("nan")
    points = np.stack(centres)
    return float(np.median(np.linalg.norm(points[:, None] - points[None], axis=-1)[np.triu_indices(len(points), 1)]))


def infer_units(cameras: list[CameraCalibration]) -> LengthUnit | None:
    """The unit a rig's camera spacing implies: metres for a median distance between camera centres of
    2 cm - 30 m, millimetres for 100 mm - 30 m; None when the spacing fits neither (or fewer than 2 cameras)."""
    spacing = camera_spacing(cameras)
    if METRE_SPACING[0] <= spacing <= METRE_SPACING[1]:
        return "m"
    if MILLIMETRE_SPACING[0] <= spacing <= MILLIMETRE_SPACING[1]:
        return "mm"
    return None


@dataclass(frozen=True)
class CalibrationFile:
    """What a reader found, before matching to a capture: ``cameras`` in the file's order, the ``units`` the format
    states (None: not stated, inferred from the rig), its ``format`` and ``path``."""

    cameras: list[CameraCalibration]
    units: LengthUnit | None
    format: CalibrationFormat
    path: Path
