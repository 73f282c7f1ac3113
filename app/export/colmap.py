"""COLMAP sparse model (written with pycolmap) plus the images, in the layout nerfstudio and gsplat read::

    OUT/
      images/t00003_cam0.png     the model-resolution RGB image of timestep 3, camera ``cam0``
      sparse/0/cameras.bin ...   cameras, images, points3D (+ rigs, frames: COLMAP >= 3.12), binary or text

* **cameras**: one ``PINHOLE`` camera per image (the intrinsics are predicted per frame), ``width x height`` of
  the model-resolution images. COLMAP puts the centre of the top-left pixel at (0.5, 0.5) while the
  reconstruction (like VGGT) puts it at (0, 0), so ``cx, cy`` are shifted by +0.5; ``fx, fy`` are unchanged.
* **images**: pose = the reconstruction's OpenCV camera-from-world ``[R | t]`` (COLMAP's convention as well),
  camera ids = image ids = 1, 2, ... in (timestep, camera) order.
* **points3D**: the selection's points (confidence / motion filters, voxel downsampling) with their colours;
  each has a track of length 1, its source pixel, stored as a 2D point of its image at the pixel centre.
  ``error`` is 0 (the points are not triangulated).
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from app.capture.calibration.colmap import COLMAP_PIXEL_OFFSET
from app.common.atomic import atomic_folder
from app.export.selection import ExportError, Frames, PointSet


@dataclass(frozen=True)
class ColmapOptions:
    """``binary``: ``.bin`` files (else ``.txt``); ``images``: also write the ``images/`` folder."""

    binary: bool = True
    images: bool = True


def image_name(t: int, camera_name: str) -> str:
    """File name of a frame in ``images/``: ``t{t:05d}_{camera}.png``."""
    return f"t{t:05d}_{camera_name}.png"


def load_pycolmap() -> ModuleType:
    """pycolmap, imported without letting it take over SIGTERM: its import installs glog's failure handler (a
    30-line native stack, then an abort, on SIGTERM). In the main thread the Python handler in place before is put
    back; a program that exports from another thread (the viewer) calls this first in its main thread."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    import pycolmap

    if before is not None:
        signal.signal(signal.SIGTERM, before)
    return pycolmap


def _pinhole(intrinsics: np.ndarray, image_hw: tuple[int, int], camera_id: int):
    pycolmap = load_pycolmap()

    height, width = image_hw
    fx, fy = intrinsics[0, 0], intrinsics[1, 1]
    cx, cy = intrinsics[0, 2] + COLMAP_PIXEL_OFFSET, intrinsics[1, 2] + COLMAP_PIXEL_OFFSET
    return pycolmap.Camera(model="PINHOLE", width=width, height=height, params=[fx, fy, cx, cy], camera_id=camera_id)


def build_colmap_model(points: PointSet, frames: Frames, camera_names: list[str], image_hw):
    """A ``pycolmap.Reconstruction`` of ``frames`` (cameras, posed images) and ``points`` (see module docstring)."""
    pycolmap = load_pycolmap()

    model = pycolmap.Reconstruction()
    frame_index = {(int(t), int(n)): i for i, (t, n) in enumerate(zip(frames.timestep, frames.camera, strict=True))}
    point_frame = np.array([frame_index[(int(t), int(n))] for t, n in zip(points.timestep, points.camera, strict=True)])
    point2d_index = np.zeros(len(points), dtype=np.int64)
    for i in range(len(frames)):
        t, n = int(frames.timestep[i]), int(frames.camera[i])
        model.add_camera_with_trivial_rig(_pinhole(frames.intrinsics[i], image_hw, camera_id=i + 1))
        mine = np.flatnonzero(point_frame == i)
        point2d_index[mine] = np.arange(len(mine))
        keypoints = points.pixel[mine].astype(np.float64) + COLMAP_PIXEL_OFFSET
        image = pycolmap.Image(
            name=image_name(t, camera_names[n]), keypoints=keypoints, camera_id=i + 1, image_id=i + 1
        )
        rotation, translation = frames.extrinsics[i, :, :3], frames.extrinsics[i, :, 3]
        model.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(rotation), translation))
    for j in range(len(points)):
        track = pycolmap.Track()
        track.add_element(int(point_frame[j]) + 1, int(point2d_index[j]))
        model.add_point3D(points.xyz[j].astype(np.float64), track, points.rgb[j])
    return model


def _write_images(recon, frames: Frames, folder: Path) -> None:
    import cv2

    folder.mkdir()
    for t, n in zip(frames.timestep.tolist(), frames.camera.tolist(), strict=True):
        path = folder / image_name(t, recon.camera_names[n])
        if not cv2.imwrite(str(path), np.ascontiguousarray(np.asarray(recon.get("images", t)[n])[..., ::-1])):
            raise ExportError(f"OpenCV could not write {path}")


def write_colmap(recon, points: PointSet, frames: Frames, path: Path, options: ColmapOptions) -> None:
    """Write ``path/sparse/0`` (and ``path/images``) atomically (the folder is built aside and renamed)."""
    model = build_colmap_model(points, frames, recon.camera_names, recon.image_hw)
    with atomic_folder(path) as tmp:
        sparse = tmp / "sparse" / "0"
        sparse.mkdir(parents=True)
        model.write_binary(str(sparse)) if options.binary else model.write_text(str(sparse))
        if options.images:
            _write_images(recon, frames, tmp / "images")
