"""Lens undistortion, once per camera: the remap tables are computed when the :class:`Undistorter` is made and every
frame, mask and depth map of that camera goes through them before anything else (preprocessing, the model).

The undistorted camera keeps the calibration's ``K`` and frame size (``newCameraMatrix = K``): a pixel of the
undistorted frame at ``(u, v)`` is the pinhole projection ``K [x/z, y/z, 1]`` of its ray, so the stored intrinsics of
an undistorted capture are the calibration's ``K`` as is. OpenCV's model goes through ``cv2.initUndistortRectifyMap``,
the fisheye model through ``cv2.fisheye.initUndistortRectifyMap``. Images are resampled bilinearly (edges
replicated); masks and depth maps with the nearest neighbour (outside the frame: 0, invalid depth), so no depth is
blended across an edge and a mask stays a label map.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.capture.calibration.rig import CameraCalibration

_OPENCV_COUNTS = (4, 5, 8, 12, 14)  # coefficient counts cv2.initUndistortRectifyMap accepts


def opencv_coefficients(coefficients: np.ndarray) -> np.ndarray:
    """OpenCV-model coefficients padded with zeros to the next count OpenCV accepts (4, 5, 8, 12, 14)."""
    count = next(n for n in _OPENCV_COUNTS if n >= len(coefficients))
    return np.pad(np.asarray(coefficients, dtype=np.float64), (0, count - len(coefficients)))


@dataclass(frozen=True)
class Undistorter:
    """One camera's undistortion: ``map_x``, ``map_y`` float32 ``[h, w]`` (for each undistorted pixel, where to
    read the distorted frame) and the undistorted pinhole ``intrinsics [3, 3]``."""

    map_x: np.ndarray
    map_y: np.ndarray
    intrinsics: np.ndarray

    @classmethod
    def for_camera(cls, camera: CameraCalibration, size: tuple[int, int]) -> Undistorter | None:
        """The undistorter of ``camera`` for frames of ``size`` ``(width, height)``; None without distortion."""
        if camera.distortion.is_identity:
            return None
        k = np.asarray(camera.intrinsics, dtype=np.float64)
        if camera.distortion.model == "fisheye":
            coefficients = np.pad(camera.distortion.coefficients, (0, max(0, 4 - len(camera.distortion.coefficients))))
            map_x, map_y = cv2.fisheye.initUndistortRectifyMap(
                k, coefficients[:4].reshape(4, 1), np.eye(3), k, size, cv2.CV_32FC1
            )
        else:
            map_x, map_y = cv2.initUndistortRectifyMap(
                k, opencv_coefficients(camera.distortion.coefficients), None, k, size, cv2.CV_32FC1
            )
        return cls(map_x, map_y, k)

    def image(self, frame: np.ndarray) -> np.ndarray:
        """An RGB frame ``[h, w, 3]`` (any dtype) undistorted, bilinear."""
        return cv2.remap(frame, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def nearest(self, array: np.ndarray) -> np.ndarray:
        """A mask or depth map ``[h, w]`` undistorted with the nearest neighbour, 0 outside the frame."""
        return cv2.remap(
            array, self.map_x, self.map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
