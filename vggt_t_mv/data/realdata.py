"""Ground-truth sets of ``../shared/realdata`` as :class:`~vggt_t_mv.data.recorded.Sequence` objects
(numpy only: the app's capture readers load them without training or evaluation code).

Conventions of the result as everywhere: OpenCV camera-from-world extrinsics, z-depth (0 = unknown), pixel ``(u, v)``
= integer column / row. The dynamic masks are unknown in all three (``mask_known=False``).

* ``pi3_room`` (a synthetic render): T=1, N=8, ``condition.npz`` holds camera-to-world ``poses`` (inverted here),
  ``intrinsics`` and dense metric ``depths``;
* ``middlebury_templeSparseRing``: T=1, N=16 views of a static object, ``templeSR_par.txt`` holds ``K``,
  world-to-camera ``R``, ``t``; no depth;
* ``caliscope_4cam_charuco``: T=57, N=4 synchronized videos, ``camera_array.toml`` holds world-to-camera ``R``,
  ``t`` and ``K`` of a static rig (the same cameras at every timestep); no dense depth. Frames are not undistorted
  (the lenses have mild radial distortion).

OpenCV (``cv2``) is imported inside the readers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vggt_t_mv.data.images import read_frame
from vggt_t_mv.data.recorded import Sequence

REALDATA_SETS = ("pi3_room", "middlebury_templeSparseRing", "caliscope_4cam_charuco")


def _read_rgb(path: Path) -> np.ndarray:
    return read_frame(path)


def _sequence(images: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, depth: np.ndarray | None, name: str):
    shape = images.shape[:4]
    depth = np.zeros(shape, np.float32) if depth is None else depth.astype(np.float32)
    return Sequence(
        images=images,
        depth=depth,
        valid=depth > 0,
        extrinsics=extrinsics.astype(np.float32),
        intrinsics=intrinsics.astype(np.float32),
        dynamic_masks=np.zeros(shape, bool),
        mask_known=False,
        name=name,
    )


def load_pi3_room(folder: str | Path) -> Sequence:
    """``pi3_room``: 8 views at T=1 with dense depth."""
    folder = Path(folder)
    with np.load(folder / "condition.npz") as data:
        poses, intrinsics, depths = data["poses"], data["intrinsics"], data["depths"]
    count = len(poses)
    images = np.stack([_read_rgb(folder / "rgb" / f"{i}.png") for i in range(count)])[None]
    extrinsics = np.linalg.inv(poses.astype(np.float64))[:, :3, :]
    return _sequence(images, extrinsics[None], intrinsics[None], depths[None], folder.name)


def load_middlebury(folder: str | Path) -> Sequence:
    """``middlebury_templeSparseRing``: 16 views at T=1, poses only."""
    folder = Path(folder)
    lines = [line.split() for line in (folder / "templeSR_par.txt").read_text().splitlines()[1:] if line.strip()]
    images, extrinsics, intrinsics = [], [], []
    for parts in lines:
        values = np.array([float(v) for v in parts[1:]])
        intrinsics.append(values[:9].reshape(3, 3))
        extrinsics.append(np.concatenate([values[9:18].reshape(3, 3), values[18:21, None]], axis=1))
        images.append(_read_rgb(folder / parts[0]))
    return _sequence(np.stack(images)[None], np.stack(extrinsics)[None], np.stack(intrinsics)[None], None, folder.name)


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]  # Python 3.10: the same module under its own name
    return tomllib.loads(path.read_text())


def load_caliscope(folder: str | Path, every: int = 1, max_timesteps: int | None = None) -> Sequence:
    """``caliscope_4cam_charuco``: 4 videos (every ``every``-th frame, at most ``max_timesteps``), static rig."""
    import cv2

    folder = Path(folder)
    cameras = _read_toml(folder / "camera_array.toml")["cameras"]
    ids = sorted(cameras, key=int)
    videos = []
    for cam in ids:
        capture = cv2.VideoCapture(str(folder / "calibration" / "extrinsic" / f"cam_{cam}.mp4"))
        frames: list[np.ndarray] = []
        index = 0
        while max_timesteps is None or len(frames) < max_timesteps:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                frames.append(frame[..., ::-1].copy())
            index += 1
        capture.release()
        if not frames:
            raise ValueError(f"{folder}: camera {cam} has no decodable frame")
        videos.append(np.stack(frames))
    count = min(len(v) for v in videos)
    if max_timesteps is not None:
        count = min(count, max_timesteps)
    images = np.stack([v[:count] for v in videos], axis=1)
    extrinsics = np.stack(
        [
            np.concatenate([np.array(cameras[c]["rotation"]), np.array(cameras[c]["translation"])[:, None]], 1)
            for c in ids
        ]
    )
    intrinsics = np.stack([np.array(cameras[c]["matrix"]) for c in ids])
    extrinsics = np.broadcast_to(extrinsics, (count, *extrinsics.shape)).copy()
    intrinsics = np.broadcast_to(intrinsics, (count, *intrinsics.shape)).copy()
    return _sequence(images, extrinsics, intrinsics, None, folder.name)


def load_realdata(folder: str | Path, **kwargs) -> Sequence:
    """Pick the loader by the folder's files (``condition.npz``, ``templeSR_par.txt`` or ``camera_array.toml``; the
    caliscope videos are read at every 8th frame unless ``every`` says otherwise)."""
    folder = Path(folder)
    if (folder / "condition.npz").is_file():
        return load_pi3_room(folder)
    if (folder / "templeSR_par.txt").is_file():
        return load_middlebury(folder)
    if (folder / "camera_array.toml").is_file():
        return load_caliscope(folder, **{"every": 8, **kwargs})
    raise FileNotFoundError(f"{folder} is none of the known ground-truth sets {REALDATA_SETS}")
