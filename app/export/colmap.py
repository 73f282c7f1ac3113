"""COLMAP sparse model (written with pycolmap) plus the images, in the layout nerfstudio, gsplat and COLMAP read::

    OUT/
      images/t00003_cam0.png     timestep 3, camera ``cam0``: the capture's frame (see *resolution*)
      sparse/0/cameras.bin ...   cameras, images, points3D, rigs, frames; binary or text

* **resolution** (:class:`ColmapOptions` ``resolution``): ``capture`` (default) writes each camera's frame at the
  capture's resolution, read again from the capture the reconstruction records (meta.json ``capture``), with the
  lens distortion removed exactly as the run removed it when its calibration had distortion; the intrinsics and every
  2D point are mapped back through the run's crop / pad / resize (meta.json ``preprocess``,
  :meth:`~app.capture.preprocess.FrameTransform.intrinsics_to_source`), so a calibrated run's cameras are the
  calibration's. A reconstruction that records no capture (made in memory) and ``model`` write the model-resolution
  images and intrinsics. A recorded capture that cannot be read is an error naming it (``--colmap-resolution model``
  exports without it).
* **cameras**: ``PINHOLE``; one COLMAP camera per physical camera when its intrinsics are the same in every selected
  frame (a calibrated run, ``--rigid-rig``), else one per image. COLMAP puts the centre of the top-left pixel at
  (0.5, 0.5) while the reconstruction (like VGGT) puts it at (0, 0), so ``cx, cy`` and the 2D points are shifted by
  +0.5.
* **rig and frames**: when every camera has one COLMAP camera and the cameras' poses relative to the first selected
  camera are the same at every selected timestep (a rigid rig: calibrated or ``--rigid-rig``), one COLMAP rig holds
  them (its reference sensor the first camera) and each timestep is one frame of that rig; otherwise each camera is
  its own trivial rig and each image its own frame (COLMAP's layout for independent images).
* **images**: pose = the reconstruction's OpenCV camera-from-world ``[R | t]`` (COLMAP's convention as well), image
  ids 1, 2, ... in (timestep, camera) order.
* **points3D**: the selection's points (confidence / motion / views filters, voxel downsampling) with their colours;
  with ``tracks`` (default), each point's track is its own pixel plus its reprojections into the other selected
  cameras of the same instant that agree with it (:func:`vggt_t_mv.agreement.match_pair`: consistent depth and round
  trip), so COLMAP's bundle adjustment has multi-view observations. A pixel belongs to one track only: points are
  taken by decreasing confidence, and a point whose own pixel already is in a more confident point's track is part of
  that track, not a point of its own. Without ``tracks`` every point has a one-pixel track. ``min_track_length``
  keeps only points with that many observations (COLMAP's bundle adjustment refuses one-image tracks). ``error`` is 0
  (the points are not triangulated). With ``--cameras calibrated`` take ``--stream pose``: its points are the depth
  on the stored (calibrated) cameras' rays, while the point head's follow the model's own cameras.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np

from app.capture.calibration.colmap import COLMAP_PIXEL_OFFSET
from app.capture.preprocess import FrameTransform
from app.common.atomic import atomic_folder
from app.export.selection import ExportError, Frames, PointSet
from vggt_t_mv.agreement import AgreementConfig, match_pair

ColmapResolution = Literal["capture", "model"]
COLMAP_RESOLUTIONS: tuple[ColmapResolution, ...] = ("capture", "model")
RIGID_TOLERANCE = 1e-5  # relative poses / intrinsics equal to this (relative to their size): one rig / one camera


@dataclass(frozen=True)
class ColmapOptions:
    """``binary``: ``.bin`` files (else ``.txt``); ``images``: also write the ``images/`` folder; ``resolution``:
    ``capture`` or ``model`` (module docstring); ``tracks``: multi-view tracks from the agreement with
    ``agreement``'s tolerances; ``min_track_length``: only points observed in at least this many images (2: what a
    bundle adjustment can use)."""

    binary: bool = True
    images: bool = True
    resolution: ColmapResolution = "capture"
    tracks: bool = True
    agreement: AgreementConfig = field(default_factory=AgreementConfig)
    min_track_length: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.min_track_length, int) or self.min_track_length < 1:
            raise ExportError(f"--colmap-min-track must be a whole number >= 1, got {self.min_track_length!r}")
        if self.resolution not in COLMAP_RESOLUTIONS:
            raise ExportError(f"resolution must be one of {COLMAP_RESOLUTIONS}, got {self.resolution!r}")


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


# --------------------------------------------------------------------------------------------- output pixels
@dataclass
class OutputPixels:
    """Where the export's images live: per camera ``n`` of the reconstruction, the transform from the original frame
    to the model's pixels (None: the images are written at the model's resolution) and the output size ``(h, w)``."""

    transforms: list[FrameTransform | None]
    sizes: list[tuple[int, int]]

    def intrinsics(self, n: int, model_intrinsics: np.ndarray) -> np.ndarray:
        """Model-pixel intrinsics ``[3, 3]`` of camera ``n`` -> output-pixel intrinsics."""
        transform = self.transforms[n]
        return (
            np.asarray(model_intrinsics, np.float64)
            if transform is None
            else transform.intrinsics_to_source(model_intrinsics)
        )

    def pixels(self, n: int, model_pixels: np.ndarray) -> np.ndarray:
        """Model pixel coordinates ``[K, 2]`` (u, v) of camera ``n`` -> COLMAP output coordinates (+0.5)."""
        out = np.asarray(model_pixels, np.float64)
        transform = self.transforms[n]
        if transform is not None:
            out = (out - [transform.offset_x, transform.offset_y]) / transform.scale
        return out + COLMAP_PIXEL_OFFSET


def output_pixels(recon, resolution: ColmapResolution) -> OutputPixels:
    """The :class:`OutputPixels` of ``recon`` for ``resolution`` (module docstring)."""
    transforms = list(recon.record.preprocess)
    if resolution == "model" or not transforms or recon.record.capture is None:
        return OutputPixels([None] * recon.num_cameras, [recon.image_hw] * recon.num_cameras)
    return OutputPixels(list(transforms), [(int(t.source_hw[0]), int(t.source_hw[1])) for t in transforms])


def capture_reader(recon):
    """``read(t, n) -> RGB uint8 [h, w, 3]``: the capture's frame of reconstruction timestep ``t``, camera ``n``, lens
    distortion removed as the run removed it. Raises :class:`ExportError` naming the capture when it cannot be read."""
    from app.capture.rig import RigCapture
    from app.capture.sources import CaptureError
    from app.reconstruct.evaluate import run_undistorters

    capture_record = recon.record.capture
    path = Path(capture_record.path if capture_record is not None else "")
    fix = "restore it there, or export at the model's resolution with --colmap-resolution model"
    try:
        capture = RigCapture.open(path)
    except (CaptureError, OSError) as error:
        raise ExportError(f"the capture of {recon.root}, {path}, cannot be read ({error}); {fix}") from error
    sources = {source.name: source for source in capture.sources}
    missing = [name for name in recon.camera_names if name not in sources]
    if missing:
        raise ExportError(f"the capture {path} has no camera(s) {', '.join(missing)} any more; {fix}")
    transforms = list(recon.record.preprocess)
    undistorters = run_undistorters(recon, transforms)
    frame_index = np.asarray([] if capture_record is None else capture_record.frame_index)

    def read(t: int, n: int) -> np.ndarray:
        source = sources[recon.camera_names[n]]
        try:
            frame = source.read(int(frame_index[t, n]))
        except (CaptureError, OSError, StopIteration) as error:
            raise ExportError(
                f"cannot read frame {int(frame_index[t, n])} of {source.path} ({error}); {fix}"
            ) from error
        if (frame.shape[0], frame.shape[1]) != tuple(transforms[n].source_hw):
            raise ExportError(
                f"{source.path} frame {int(frame_index[t, n])} is {frame.shape[1]}x{frame.shape[0]}, the run read "
                f"{transforms[n].source_hw[1]}x{transforms[n].source_hw[0]}: the capture changed since; {fix}"
            )
        undistorter = undistorters[n]
        return frame if undistorter is None else undistorter.image(frame)

    return read


# --------------------------------------------------------------------------------------------- tracks
@dataclass
class Observations:
    """The 2D points of every frame and the tracks: ``keypoints[i]`` model-pixel coordinates ``[K_i, 2]`` of frame
    ``i``; ``tracks[j]`` the ``(frame, keypoint)`` pairs of kept point ``j``; ``kept`` indices into the point set."""

    keypoints: list[np.ndarray]
    tracks: list[list[tuple[int, int]]]
    kept: np.ndarray


def build_observations(recon, points: PointSet, frames: Frames, tracks: bool, config: AgreementConfig) -> Observations:
    """The 2D observations and tracks of ``points`` (module docstring, *points3D*)."""
    height, width = recon.image_hw
    frame_of = {(int(t), int(n)): i for i, (t, n) in enumerate(zip(frames.timestep, frames.camera, strict=True))}
    point_frame = np.array(
        [frame_of[(int(t), int(n))] for t, n in zip(points.timestep, points.camera, strict=True)], dtype=np.int64
    )
    flat_pixel = points.pixel[:, 1].astype(np.int64) * width + points.pixel[:, 0]
    keypoints: list[list[np.ndarray]] = [[] for _ in range(len(frames))]
    counts = [0] * len(frames)
    claimed = [np.zeros(height * width, bool) for _ in range(len(frames))]
    out_tracks: list[list[tuple[int, int]]] = []
    kept: list[int] = []
    matches: dict[tuple[int, int], object] = {}

    def match(i: int, k: int):
        if (i, k) not in matches:
            t, n, m = int(frames.timestep[i]), int(frames.camera[i]), int(frames.camera[k])
            depth = np.asarray(recon.get("depth", t))
            matches[(i, k)] = match_pair(
                depth[n], frames.extrinsics[i], frames.intrinsics[i],
                depth[m], frames.extrinsics[k], frames.intrinsics[k], config,
            )  # fmt: skip
        return matches[(i, k)]

    def observe(i: int, pixel: np.ndarray) -> tuple[int, int]:
        keypoints[i].append(pixel)
        counts[i] += 1
        return i, counts[i] - 1

    siblings = {i: [k for k in range(len(frames)) if frames.timestep[k] == frames.timestep[i] and k != i] for i in
                range(len(frames))} if tracks else {}  # fmt: skip
    for j in np.argsort(-points.conf, kind="stable"):
        i, p = int(point_frame[j]), int(flat_pixel[j])
        if claimed[i][p]:
            continue  # already in a more confident point's track
        claimed[i][p] = True
        track = [observe(i, points.pixel[j].astype(np.float64))]
        for k in siblings.get(i, []):
            found = match(i, k)
            q = int(found.target[p])
            if found.agree[p] and not claimed[k][q]:
                claimed[k][q] = True
                track.append(observe(k, found.pixel[p]))
        out_tracks.append(track)
        kept.append(int(j))
    arrays = [np.array(k, np.float64).reshape(-1, 2) for k in keypoints]
    return Observations(arrays, out_tracks, np.array(kept, np.int64))


# --------------------------------------------------------------------------------------------- model
def _constant(values: np.ndarray) -> bool:
    """All ``values [K, ...]`` equal to the first within :data:`RIGID_TOLERANCE` (relative)."""
    scale = max(1.0, float(np.abs(values).max()))
    return bool(np.abs(values - values[:1]).max() <= RIGID_TOLERANCE * scale)


def _relative_poses(frames: Frames, reference: int) -> dict[int, np.ndarray] | None:
    """Camera-from-reference-camera ``[4, 4]`` per camera when constant over the selected timesteps, else None."""

    def homogeneous(extrinsics: np.ndarray) -> np.ndarray:
        out = np.tile(np.eye(4), (len(extrinsics), 1, 1))
        out[:, :3] = extrinsics
        return out

    out = {}
    timesteps = np.unique(frames.timestep)
    ref = homogeneous(np.stack([frames.extrinsics[(frames.timestep == t) & (frames.camera == reference)][0]
                                for t in timesteps]))  # fmt: skip
    for n in np.unique(frames.camera).tolist():
        mine = homogeneous(np.stack([frames.extrinsics[(frames.timestep == t) & (frames.camera == n)][0]
                                     for t in timesteps]))  # fmt: skip
        relative = mine @ np.linalg.inv(ref)
        if not _constant(relative):
            return None
        out[n] = relative[0]
    return out


def _rigid3d(pycolmap: ModuleType, matrix: np.ndarray):
    return pycolmap.Rigid3d(pycolmap.Rotation3d(np.asarray(matrix[:3, :3], np.float64)), np.asarray(matrix[:3, 3]))


def build_colmap_model(
    recon,
    points: PointSet,
    frames: Frames,
    pixels: OutputPixels,
    observations: Observations,
    min_track_length: int = 1,
):
    """A ``pycolmap.Reconstruction`` of ``frames`` and the kept points with their tracks (module docstring)."""
    pycolmap = load_pycolmap()

    model = pycolmap.Reconstruction()
    out_k = np.stack([pixels.intrinsics(int(n), k) for n, k in zip(frames.camera, frames.intrinsics, strict=True)])
    cameras = np.unique(frames.camera).tolist()
    per_camera = all(_constant(out_k[frames.camera == n]) for n in cameras)
    camera_id: dict[int, int] = {}
    for i, n in enumerate(frames.camera.tolist()):
        key = n if per_camera else i
        if key in camera_id:
            continue
        camera_id[key] = len(camera_id) + 1
        height, width = pixels.sizes[n]
        fx, fy, cx, cy = out_k[i][0, 0], out_k[i][1, 1], out_k[i][0, 2], out_k[i][1, 2]
        params = [fx, fy, cx + COLMAP_PIXEL_OFFSET, cy + COLMAP_PIXEL_OFFSET]
        camera = pycolmap.Camera(model="PINHOLE", width=width, height=height, params=params, camera_id=camera_id[key])
        if not per_camera:
            model.add_camera_with_trivial_rig(camera)
        else:
            model.add_camera(camera)
    relative = _relative_poses(frames, cameras[0]) if per_camera else None
    if per_camera and relative is None:  # one camera per physical camera, but the rig is not rigid
        for n in cameras:
            rig = pycolmap.Rig(rig_id=camera_id[n])
            rig.add_ref_sensor(pycolmap.sensor_t(type=pycolmap.SensorType.CAMERA, id=camera_id[n]))
            model.add_rig(rig)
    elif relative is not None:
        rig = pycolmap.Rig(rig_id=1)
        rig.add_ref_sensor(pycolmap.sensor_t(type=pycolmap.SensorType.CAMERA, id=camera_id[cameras[0]]))
        for n in cameras[1:]:
            rig.add_sensor(pycolmap.sensor_t(type=pycolmap.SensorType.CAMERA, id=camera_id[n]),
                           _rigid3d(pycolmap, relative[n]))  # fmt: skip
        model.add_rig(rig)
    images = []
    for i in range(len(frames)):
        t, n = int(frames.timestep[i]), int(frames.camera[i])
        keypoints = pixels.pixels(n, observations.keypoints[i]) if len(observations.keypoints[i]) else np.zeros((0, 2))
        image = pycolmap.Image(
            name=image_name(t, recon.camera_names[n]),
            keypoints=keypoints,
            camera_id=camera_id[n if per_camera else i],
            image_id=i + 1,
        )
        pose = np.eye(4)
        pose[:3] = frames.extrinsics[i]
        images.append((image, pose))
    if not per_camera:
        for image, pose in images:
            model.add_image_with_trivial_frame(image, _rigid3d(pycolmap, pose))
    else:
        for i, (_, pose) in enumerate(images):
            n, t = int(frames.camera[i]), int(frames.timestep[i])
            if relative is not None and n != cameras[0]:
                continue  # added with its rig frame below
            frame = pycolmap.Frame(frame_id=i + 1, rig_id=1 if relative is not None else camera_id[n])
            members = [k for k in range(len(frames)) if frames.timestep[k] == t] if relative is not None else [i]
            for k in members:
                frame.add_data_id(images[k][0].data_id)
            frame.rig_from_world = _rigid3d(pycolmap, pose)
            model.add_frame(frame)
            for k in members:
                images[k][0].frame_id = frame.frame_id
                model.add_image(images[k][0])
            model.register_frame(frame.frame_id)
    for j, track_elements in zip(observations.kept.tolist(), observations.tracks, strict=True):
        if len(track_elements) < min_track_length:
            continue
        track = pycolmap.Track()
        for i, index in track_elements:
            track.add_element(i + 1, index)
        model.add_point3D(points.xyz[j].astype(np.float64), track, points.rgb[j])
    return model


def _write_images(recon, frames: Frames, folder: Path, read) -> None:
    import cv2

    folder.mkdir()
    for t, n in zip(frames.timestep.tolist(), frames.camera.tolist(), strict=True):
        path = folder / image_name(t, recon.camera_names[n])
        picture = np.asarray(recon.get("images", t)[n]) if read is None else read(t, n)
        if not cv2.imwrite(str(path), np.ascontiguousarray(picture[..., ::-1])):
            raise ExportError(f"OpenCV could not write {path}")


def write_colmap(recon, points: PointSet, frames: Frames, path: Path, options: ColmapOptions) -> None:
    """Write ``path/sparse/0`` (and ``path/images``) atomically (the folder is built aside and renamed)."""
    pixels = output_pixels(recon, options.resolution)
    at_model = all(t is None for t in pixels.transforms)
    read = None if at_model or not options.images else capture_reader(recon)
    observations = build_observations(recon, points, frames, options.tracks, options.agreement)
    model = build_colmap_model(recon, points, frames, pixels, observations, options.min_track_length)
    if model.num_points3D() == 0:
        raise ExportError(
            f"no point has a track of {options.min_track_length} images or more; lower --colmap-min-track, or "
            "select more cameras and timesteps"
        )
    with atomic_folder(path) as tmp:
        sparse = tmp / "sparse" / "0"
        sparse.mkdir(parents=True)
        model.write_binary(str(sparse)) if options.binary else model.write_text(str(sparse))
        if options.images:
            _write_images(recon, frames, tmp / "images", read)
