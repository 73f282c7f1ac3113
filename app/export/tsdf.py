"""TSDF fusion of a timestep's synchronized depth maps into one surface (``--mesh-method tsdf``).

The N depth maps of each selected timestep (the stored z-depth with the stored cameras: the pose stream's geometry,
whichever ``--stream`` selects the pixels) are integrated into one truncated signed distance volume (open3d's
``UniformTSDFVolume``, colour RGB8; its sparse ``ScalableTSDFVolume`` returned no surface with open3d 0.20 here),
then marching cubes gives the surface. Only the pixels the selection's pixel
filter keeps are integrated (confidence percentile, motion and ``--min-views``: with ``--min-views K`` a depth no
K other cameras agree with adds nothing), so floaters one camera alone sees do not carve or add surface.

* **volume**: a cube over the kept points' bounding box (2nd to 98th percentile per axis, so a few far points do
  not stretch it, plus the truncation band); **voxel**: ``--voxel`` when given, else the cube's edge /
  :data:`DEFAULT_RESOLUTION`; at most :data:`MAX_RESOLUTION` voxels per edge (memory); the truncation distance is
  ``sdf_trunc_voxels`` voxels.
* **timesteps**: one volume per output: per timestep by default; ``--merge`` fuses every selected timestep into one
  volume, which is only a surface where the scene holds still, so a reconstruction with a dynamic mask needs
  ``--static-only`` for it (the moving parts would smear into a tube).

open3d follows the reconstruction's conventions (pixel ``(u, v)`` = integer column / row, OpenCV camera-from-world
extrinsics, z-depth). It needs the system library libusb-1.0; where it cannot be imported, the export is refused with
the install command (:mod:`app.common.optional`).
"""

from __future__ import annotations

import numpy as np

from app.common.optional import MissingDependency, import_open3d
from app.export.selection import ExportError, Frames, Selection, pixel_keep_mask

DEFAULT_RESOLUTION = 192  # default voxel: the volume's edge / this
MAX_RESOLUTION = 384  # voxels per edge at most (about 1.4 GB of volume)


def volume_box(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Origin ``[3]`` and edge of the cube holding kept world points ``[M, 3]`` (module docstring, without the band)."""
    low, high = np.percentile(points, 2, axis=0), np.percentile(points, 98, axis=0)
    edge = float((high - low).max())
    if not edge > 0:
        raise ExportError("the kept points span no volume (all in one place); give --voxel")
    return (low + high) / 2 - edge / 2, edge


def _kept_depths(recon, selection: Selection, frames: Frames) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """``[(frame index, depth [H, W] with 0 where the filter drops the pixel, colours uint8 [H, W, 3])]``."""
    out = []
    for t in np.unique(frames.timestep):
        cameras = frames.camera[frames.timestep == t].tolist()
        keep = pixel_keep_mask(recon, selection, int(t), cameras)
        depth = np.asarray(recon.get("depth", int(t)), np.float32)
        images = np.asarray(recon.get("images", int(t)))
        for row, n in enumerate(cameras):
            index = int(np.flatnonzero((frames.timestep == t) & (frames.camera == n))[0])
            out.append((index, np.where(keep[row], depth[n], 0.0).astype(np.float32), images[n]))
    return out


def _world_points(depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """World points ``[K, 3]`` of the pixels with depth > 0 (``depth [H, W]``, OpenCV cameras)."""
    rows, cols = np.nonzero(depth > 0)
    z = depth[rows, cols].astype(np.float64)
    x = (cols - intrinsics[0, 2]) / intrinsics[0, 0] * z
    y = (rows - intrinsics[1, 2]) / intrinsics[1, 1] * z
    camera = np.stack([x, y, z], -1)
    return (camera - extrinsics[:, 3]) @ extrinsics[:, :3]


def tsdf_mesh(recon, selection: Selection, frames: Frames, sdf_trunc_voxels: float = 4.0):
    """One fused surface of ``frames`` (module docstring): :class:`app.export.mesh.MeshData`-shaped
    ``(vertices float64 [V, 3], faces int64 [F, 3], colors uint8 [V, 3])``."""
    try:
        o3d = import_open3d("TSDF fusion (--mesh-method tsdf)")
    except MissingDependency as error:
        raise ExportError(f"{error}; or use --mesh-method grid, which needs no open3d") from None
    if len(np.unique(frames.timestep)) > 1 and recon.has("dynamic_mask") and selection.motion != "static":
        raise ExportError(
            "--merge fuses every selected timestep into one volume, where moving parts smear: add --static-only "
            "(or export one mesh per timestep without --merge)"
        )
    views = _kept_depths(recon, selection, frames)
    if not any((depth > 0).any() for _, depth, _ in views):
        raise ExportError("the selection keeps no pixel to fuse; loosen the filters")
    sample = np.concatenate(
        [_world_points(d, frames.extrinsics[i], frames.intrinsics[i])[::7] for i, d, _ in views if (d > 0).any()]
    )
    origin, edge = volume_box(sample)
    voxel = selection.voxel if selection.voxel > 0 else edge / DEFAULT_RESOLUTION
    band = sdf_trunc_voxels * voxel
    resolution = int(np.ceil((edge + 2 * band) / voxel))
    if resolution > MAX_RESOLUTION:
        finest = (edge + 2 * band) / MAX_RESOLUTION
        raise ExportError(
            f"--voxel {voxel:g} is too fine for this scene ({resolution} voxels per edge, at most {MAX_RESOLUTION}); "
            f"use --voxel >= {finest * 1.01:.3g}"
        )
    volume = o3d.pipelines.integration.UniformTSDFVolume(
        length=float(resolution * voxel),
        resolution=resolution,
        sdf_trunc=float(band),
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.RGB8,
        origin=(origin - band).reshape(3, 1).astype(np.float64),
    )
    height, width = recon.image_hw
    for index, depth, color in views:
        k = frames.intrinsics[index]
        camera = o3d.camera.PinholeCameraIntrinsic(width, height, k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        image = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(np.ascontiguousarray(color)),
            o3d.geometry.Image(np.ascontiguousarray(depth)),
            depth_scale=1.0,
            depth_trunc=float(depth.max()) * 1.01 + 1e-9,
            convert_rgb_to_intensity=False,
        )
        extrinsic = np.eye(4)
        extrinsic[:3] = frames.extrinsics[index]
        volume.integrate(image, camera, extrinsic)
    mesh = volume.extract_triangle_mesh()
    faces = np.asarray(mesh.triangles, dtype=np.int64)
    if len(faces) == 0:
        raise ExportError(f"TSDF fusion produced no triangle (voxel {voxel:.4g}); try a smaller --voxel")
    colors = np.clip(np.round(np.asarray(mesh.vertex_colors) * 255), 0, 255).astype(np.uint8)
    return np.asarray(mesh.vertices, dtype=np.float64), faces, colors
