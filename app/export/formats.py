"""Writers for PLY, GLB and VGGT-style NPZ, and the atomic-write helpers every writer uses.

Coordinates: PLY and NPZ keep the reconstruction's world frame (OpenCV axes of camera 0 at timestep 0:
x right, y down, z forward). GLB is converted to glTF's convention (+Y up, a camera looks down -Z, right-handed)
by :data:`GLTF_FROM_OPENCV` = ``diag(1, -1, -1)``, applied to every vertex: the scene then stands upright
as camera 0 saw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.common.atomic import atomic_file, write_bytes_atomic
from app.common.cameras import CAMERA_COLORS
from app.common.vocab import Stream
from app.export.ownership import check_replaceable
from app.export.selection import ExportError, Frames, PointSet
from app.export.splat import SplatOptions, lift_pixels, write_splat_ply
from app.reconstruct.store import Reconstruction
from vggt_t_mv.npgeometry import camera_centers

GLTF_FROM_OPENCV = np.diag([1.0, -1.0, -1.0])  # OpenCV axes (y down, z forward) -> glTF (y up, looks down -z)


# ----------------------------------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------------------------------


def check_outputs(paths: list[Path], overwrite: bool) -> None:
    """Refuse (before anything is written) when an output exists and ``overwrite`` is off or it is not an unchanged
    export of this tool (:mod:`app.export.ownership`), or a parent is missing."""
    check_replaceable(paths, overwrite)
    for path in paths:
        if not path.parent.is_dir():
            raise ExportError(f"the folder of {path} does not exist; create it first")


# ----------------------------------------------------------------------------------------------------------------------
# PLY
# ----------------------------------------------------------------------------------------------------------------------


def write_ply(points: PointSet, path: Path) -> None:
    """Binary PLY point cloud: ``x y z`` float32, ``red green blue alpha`` uint8 and the extra vertex properties
    ``confidence`` (float32), ``dynamic`` (float32 probability; only when the reconstruction has a dynamic mask),
    ``timestep`` and ``camera`` (int32). World frame as the reconstruction (OpenCV axes)."""
    import trimesh

    cloud = trimesh.Trimesh(
        vertices=points.xyz.astype(np.float32),
        faces=np.zeros((0, 3), dtype=np.int64),
        vertex_colors=points.rgb,
        process=False,
    )
    cloud.vertex_attributes["confidence"] = points.conf.astype(np.float32)
    if points.dynamic is not None:
        cloud.vertex_attributes["dynamic"] = points.dynamic.astype(np.float32)
    cloud.vertex_attributes["timestep"] = points.timestep.astype(np.int32)
    cloud.vertex_attributes["camera"] = points.camera.astype(np.int32)
    write_bytes_atomic(path, lambda: trimesh.exchange.ply.export_ply(cloud, encoding="binary"))


def frame_indices(points: PointSet, frames: Frames) -> np.ndarray:
    """Index into ``frames`` of each point's (timestep, camera) image, int64 ``[M]``."""
    stride = int(max(frames.camera.max(), points.camera.max())) + 1
    keys = frames.timestep * stride + frames.camera
    wanted = points.timestep.astype(np.int64) * stride + points.camera
    order = np.argsort(keys, kind="stable")
    index = order[np.searchsorted(keys, wanted, sorter=order)]
    if not np.array_equal(keys[index], wanted):
        raise ExportError("a point's (timestep, camera) is not among the selected frames")  # a bug, never input
    return index


def write_splats(points: PointSet, frames: Frames, path: Path, options: SplatOptions) -> None:
    """3DGS binary PLY of one Gaussian per point (:mod:`app.export.splat`: the mapping and the layout); the
    ``rank`` opacity ranks each timestep's points on their own. World frame as the reconstruction (OpenCV axes)."""
    gaussians = lift_pixels(
        points.xyz, points.rgb, points.conf, frame_indices(points, frames), frames.extrinsics, frames.intrinsics,
        options, groups=points.timestep,
    )  # fmt: skip
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as handle:
            write_splat_ply(gaussians, handle, options.sh_degree)


# ----------------------------------------------------------------------------------------------------------------------
# GLB
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GlbOptions:
    """``frustums``: one mesh per selected frame; ``frustum_size``: frustum depth in scene units (``None``: 5 % of
    the point cloud's extent); ``trajectory``: one polyline per camera through its centres over the frames."""

    frustums: bool = True
    frustum_size: float | None = None
    trajectory: bool = True


def frustum_vertices(extrinsics: np.ndarray, intrinsics: np.ndarray, image_hw: tuple[int, int], size: float):
    """Frustum of one camera in world coordinates (OpenCV frame): ``[5, 3]``, the apex (camera centre) first, then
    the image corners (pixel edges, in the integer-pixel-centre convention) at z-depth ``size``."""
    height, width = image_hw
    corners = np.array(
        [[-0.5, -0.5, 1], [width - 0.5, -0.5, 1], [width - 0.5, height - 0.5, 1], [-0.5, height - 0.5, 1]]
    )
    camera_points = size * corners @ np.linalg.inv(intrinsics).T
    rotation, translation = extrinsics[:, :3], extrinsics[:, 3]
    world = (camera_points - translation) @ rotation  # R^T (p - t)
    return np.concatenate([camera_centers(extrinsics)[None], world], axis=0)


FRUSTUM_FACES = np.array([[0, 2, 1], [0, 3, 2], [0, 4, 3], [0, 1, 4], [1, 2, 3], [1, 3, 4]])  # outward normals


def _auto_frustum_size(points: PointSet) -> float:
    low, high = np.percentile(points.xyz, [5, 95], axis=0)
    extent = float(np.linalg.norm(high - low))
    return 0.05 * extent if extent > 0 else 0.1


def build_glb_scene(points: PointSet, frames: Frames, camera_names: list[str], image_hw, options: GlbOptions):
    """A ``trimesh.Scene`` in glTF axes: node ``points`` (point cloud, RGB), ``frustum_<camera>_t<t>`` meshes
    (vertex 0 = apex = camera centre, coloured per camera) and ``trajectory_<camera>`` polylines."""
    import trimesh

    scene = trimesh.Scene()
    cloud = trimesh.PointCloud(points.xyz.astype(np.float64) @ GLTF_FROM_OPENCV.T, colors=points.rgb)
    scene.add_geometry(cloud, geom_name="points", node_name="points")
    size = options.frustum_size if options.frustum_size is not None else _auto_frustum_size(points)
    if options.frustums:
        for index in range(len(frames)):
            n, t = int(frames.camera[index]), int(frames.timestep[index])
            vertices = frustum_vertices(frames.extrinsics[index], frames.intrinsics[index], image_hw, size)
            color = np.append(CAMERA_COLORS[n % len(CAMERA_COLORS)], 255)
            mesh = trimesh.Trimesh(
                vertices @ GLTF_FROM_OPENCV.T, FRUSTUM_FACES, vertex_colors=np.tile(color, (5, 1)), process=False
            )
            name = f"frustum_{camera_names[n]}_t{t:05d}"
            scene.add_geometry(mesh, geom_name=name, node_name=name)
    if options.trajectory:
        centers = frames.centers @ GLTF_FROM_OPENCV.T
        for n in np.unique(frames.camera):
            track = centers[frames.camera == n]
            if len(track) >= 2:
                name = f"trajectory_{camera_names[int(n)]}"
                scene.add_geometry(trimesh.load_path(track), geom_name=name, node_name=name)
    return scene


def write_glb(
    points: PointSet, frames: Frames, camera_names: list[str], image_hw, path: Path, options: GlbOptions
) -> None:
    """GLB (binary glTF 2.0) with the points, camera frustums and trajectories; see :func:`build_glb_scene`.

    Axes are converted from OpenCV (x right, y down, z forward) to glTF (+Y up, cameras look down -Z) by
    ``diag(1, -1, -1)``."""
    scene = build_glb_scene(points, frames, camera_names, image_hw, options)
    write_bytes_atomic(path, lambda: scene.export(file_type="glb"))


# ----------------------------------------------------------------------------------------------------------------------
# VGGT-style NPZ
# ----------------------------------------------------------------------------------------------------------------------


def npz_arrays(recon: Reconstruction, frames: Frames, keep: np.ndarray, stream: Stream) -> dict[str, np.ndarray]:
    """The arrays of a VGGT-style prediction file for ``S = len(frames)`` frames in (t, n) order.

    VGGT's keys: ``extrinsic`` [S,3,4] (OpenCV camera-from-world), ``intrinsic`` [S,3,3], ``depth`` [S,H,W,1],
    ``depth_conf`` [S,H,W], ``world_points`` [S,H,W,3] (point head = geo stream), ``world_points_conf`` [S,H,W],
    ``world_points_from_depth`` [S,H,W,3] (pose stream), ``images`` float32 [S,3,H,W] in [0, 1], ``pose_enc``
    [S,9]. Ours: ``dynamic_mask`` float32 [S,H,W] (when present), ``timestep`` and ``camera`` int64 [S],
    ``camera_names`` [N], ``mask`` bool [S,H,W] (the selection's pixel filter on ``stream``), ``stream``."""
    import torch

    from vggt_t_mv.geometry import extri_intri_to_pose_encoding

    def gather(name: str, dtype=np.float32) -> np.ndarray:
        return np.stack([np.asarray(recon.get(name, int(t))[int(n)], dtype=dtype) for t, n in _pairs(frames)])

    images = gather("images", np.uint8)
    arrays = {
        "extrinsic": frames.extrinsics.astype(np.float32),
        "intrinsic": frames.intrinsics.astype(np.float32),
        "depth": gather("depth")[..., None],
        "depth_conf": gather("depth_conf"),
        "world_points": gather("world_points"),
        "world_points_conf": gather("world_points_conf"),
        "world_points_from_depth": gather("world_points_from_depth"),
        "images": (images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0),
        "pose_enc": extri_intri_to_pose_encoding(
            torch.from_numpy(frames.extrinsics), torch.from_numpy(frames.intrinsics), recon.image_hw
        )
        .float()
        .numpy(),
        "timestep": frames.timestep.astype(np.int64),
        "camera": frames.camera.astype(np.int64),
        "camera_names": np.array(recon.camera_names),
        "mask": keep,
        "stream": np.array(stream),
    }
    if recon.has("dynamic_mask"):
        arrays["dynamic_mask"] = gather("dynamic_mask")
    return arrays


def _pairs(frames: Frames) -> list[tuple[int, int]]:
    return list(zip(frames.timestep.tolist(), frames.camera.tolist(), strict=True))


def write_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    """``np.savez_compressed`` to ``path`` atomically (the temporary name keeps the ``.npz`` suffix)."""
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as handle:
            named: dict[str, Any] = dict(arrays)  # numpy's stub lets **kwds fill its allow_pickle: bool
            np.savez_compressed(handle, **named)
