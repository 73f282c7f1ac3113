"""Surface meshes from the depth/point maps of a reconstruction.

``grid`` (default): every camera's point map is triangulated on its pixel grid (two triangles per 2x2 block of
pixels). A triangle is kept only when its three pixels pass the selection's pixel filter and it does not span a
depth discontinuity: the ratio of the largest to the smallest camera z-depth of its vertices must be at most
``max_depth_ratio`` and its normal must not be closer than ``min_view_angle_deg`` to perpendicular to the
viewing ray (a triangle seen edge-on bridges a jump). The cameras' surfaces are concatenated, not fused.
Triangles face their camera (counter-clockwise as seen from it).

``poisson``: the selected points (voxel-downsampled when the selection says so) get open3d normals (k nearest
neighbours) oriented towards the camera that saw them, then open3d's screened Poisson reconstruction; vertices
whose Poisson density is below the ``density_trim`` quantile are removed (Poisson closes the surface
everywhere; the trimming removes what no point supports). open3d needs the system library libusb-1.0: where it
cannot be imported, a poisson export is refused with the install command (:mod:`app.common.optional`).

``tsdf``: the depth maps of each timestep fused into one surface (:mod:`app.export.tsdf`; open3d).

Vertex colours are the image colours. The file type follows the extension: ``.glb`` (converted to glTF axes, see
:mod:`app.export.formats`), ``.ply`` or ``.obj`` (the reconstruction's OpenCV world frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from app.common.atomic import write_bytes_atomic
from app.common.optional import MissingDependency, import_open3d
from app.export.formats import GLTF_FROM_OPENCV
from app.export.selection import ExportError, Frames, PointSet, Selection, pixel_keep_mask

MeshMethod = Literal["grid", "poisson", "tsdf"]  # module docstring
MESH_METHODS: tuple[MeshMethod, ...] = get_args(MeshMethod)
MESH_SUFFIXES = (".glb", ".ply", ".obj")


@dataclass(frozen=True)
class MeshOptions:
    """``method``: ``grid``, ``poisson`` or ``tsdf`` (``sdf_trunc_voxels``: truncation in voxels).
    Grid: ``max_depth_ratio`` (> 1) and ``min_view_angle_deg`` (grazing
    limit, degrees between the triangle's plane and the viewing ray). Poisson: ``poisson_depth`` (octree depth),
    ``density_trim`` (quantile in [0, 1) of the Poisson densities below which vertices go), ``normal_neighbors``."""

    method: MeshMethod = "grid"
    max_depth_ratio: float = 1.1
    min_view_angle_deg: float = 3.0
    poisson_depth: int = 8
    density_trim: float = 0.05
    normal_neighbors: int = 30
    sdf_trunc_voxels: float = 4.0

    def __post_init__(self) -> None:
        if self.method not in MESH_METHODS:
            raise ExportError(f"mesh method must be one of {MESH_METHODS}, got {self.method!r}")
        if not self.max_depth_ratio > 1.0:
            raise ExportError(f"max_depth_ratio must be > 1, got {self.max_depth_ratio}")
        if not 0.0 <= self.min_view_angle_deg < 90.0:
            raise ExportError(f"min_view_angle_deg must be in [0, 90), got {self.min_view_angle_deg}")
        if not 0.0 <= self.density_trim < 1.0:
            raise ExportError(f"density_trim must be in [0, 1), got {self.density_trim}")
        if not 1.0 <= self.sdf_trunc_voxels < np.inf:
            raise ExportError(f"sdf_trunc_voxels must be a finite value >= 1, got {self.sdf_trunc_voxels}")
        if not 1 <= self.poisson_depth <= 14:
            raise ExportError(f"poisson_depth must be in [1, 14], got {self.poisson_depth}")


@dataclass
class MeshData:
    """A triangle mesh: ``vertices`` float64 ``[V, 3]`` (world, OpenCV frame), ``faces`` int64 ``[F, 3]``,
    ``colors`` uint8 ``[V, 3]``."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray

    @staticmethod
    def concatenate(parts: list[MeshData]) -> MeshData:
        offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
        return MeshData(
            np.concatenate([p.vertices for p in parts]),
            np.concatenate([p.faces + offset for p, offset in zip(parts, offsets, strict=True)]),
            np.concatenate([p.colors for p in parts]),
        )


def grid_faces(points: np.ndarray, keep: np.ndarray, extrinsics: np.ndarray, options: MeshOptions) -> np.ndarray:
    """Triangles ``[F, 3]`` (indices into the flattened ``[H * W]`` grid) of one camera's point map.

    ``points`` ``[H, W, 3]`` world coordinates; ``keep`` bool ``[H, W]``; ``extrinsics`` ``[3, 4]`` OpenCV
    camera-from-world (gives each vertex its camera z-depth and viewing ray)."""
    height, width = keep.shape
    camera = points.astype(np.float64) @ extrinsics[:, :3].T + extrinsics[:, 3]  # [H, W, 3] camera coordinates
    z = camera[..., 2]
    index = np.arange(height * width).reshape(height, width)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()  # top-left, top-right
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()  # bottom-left, bottom-right
    faces = np.concatenate([np.stack([a, c, b], -1), np.stack([b, c, d], -1)])  # counter-clockwise from the camera
    flat_keep, flat_z, flat_cam = keep.ravel() & (z.ravel() > 0), z.ravel(), camera.reshape(-1, 3)
    ok = flat_keep[faces].all(axis=1)
    faces = faces[ok]
    depths = flat_z[faces]
    ok = depths.max(axis=1) <= options.max_depth_ratio * depths.min(axis=1)
    faces = faces[ok]
    if options.min_view_angle_deg > 0 and len(faces):
        v0, v1, v2 = flat_cam[faces[:, 0]], flat_cam[faces[:, 1]], flat_cam[faces[:, 2]]
        normal = np.cross(v1 - v0, v2 - v0)
        ray = (v0 + v1 + v2) / 3.0
        sine = np.abs((normal * ray).sum(-1)) / (np.linalg.norm(normal, axis=-1) * np.linalg.norm(ray, axis=-1) + 1e-30)
        faces = faces[sine >= np.sin(np.radians(options.min_view_angle_deg))]
    return faces


def _compact(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> MeshData:
    """Drop vertices no face uses and renumber the faces."""
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return MeshData(vertices[used].astype(np.float64), remap[faces], colors[used])


def grid_mesh(recon, selection: Selection, frames: Frames, options: MeshOptions) -> MeshData:
    """Grid triangulation of every selected frame (see the module docstring), concatenated."""
    parts = []
    for t in np.unique(frames.timestep):
        cameras = frames.camera[frames.timestep == t].tolist()
        keep = pixel_keep_mask(recon, selection, int(t), cameras)
        points, _ = recon.stream(int(t), selection.stream)
        images = recon.get("images", int(t))
        for row, n in enumerate(cameras):
            index = int(np.flatnonzero((frames.timestep == t) & (frames.camera == n))[0])
            grid = np.asarray(points[n], dtype=np.float64)
            faces = grid_faces(grid, keep[row], frames.extrinsics[index], options)
            if len(faces):
                parts.append(_compact(grid.reshape(-1, 3), faces, np.asarray(images[n]).reshape(-1, 3)))
    if not parts:
        raise ExportError("the selection keeps no triangle (too few neighbouring pixels pass the filters); loosen them")
    return MeshData.concatenate(parts)


def poisson_mesh(points: PointSet, frames: Frames, options: MeshOptions) -> MeshData:
    """Screened Poisson surface of ``points`` with normals oriented towards their cameras, density-trimmed."""
    try:
        o3d = import_open3d("the Poisson mesh (--mesh-method poisson)")
    except MissingDependency as error:
        raise ExportError(f"{error}; or use --mesh-method grid, which needs no open3d") from None
    if len(points) < 10:
        raise ExportError(f"Poisson meshing needs at least 10 points, the selection keeps {len(points)}")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.xyz.astype(np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(points.rgb.astype(np.float64) / 255.0)
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(options.normal_neighbors))
    normals = np.asarray(cloud.normals)
    frame_of = {(int(t), int(n)): i for i, (t, n) in enumerate(zip(frames.timestep, frames.camera, strict=True))}
    index = np.array([frame_of[(int(t), int(n))] for t, n in zip(points.timestep, points.camera, strict=True)])
    towards_camera = frames.centers[index] - points.xyz
    flip = (normals * towards_camera).sum(-1) < 0
    normals[flip] *= -1
    cloud.normals = o3d.utility.Vector3dVector(normals)
    mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=options.poisson_depth)
    densities = np.asarray(densities)
    if options.density_trim > 0:
        mesh.remove_vertices_by_mask(densities < np.quantile(densities, options.density_trim))
    faces = np.asarray(mesh.triangles, dtype=np.int64)
    if len(faces) == 0:
        raise ExportError("Poisson meshing produced no triangle; lower --density-trim or select more points")
    colors = np.clip(np.round(np.asarray(mesh.vertex_colors) * 255), 0, 255).astype(np.uint8)
    return MeshData(np.asarray(mesh.vertices, dtype=np.float64), faces, colors)


def check_mesh_path(path: Path) -> None:
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ExportError(f"mesh output {path} must end in one of {MESH_SUFFIXES}")


def write_mesh(mesh: MeshData, path: Path) -> None:
    """Write by extension: ``.glb`` (glTF axes: ``diag(1, -1, -1)`` applied), ``.ply`` (binary) or ``.obj``
    (vertex colours as ``v x y z r g b``); PLY and OBJ keep the OpenCV world frame."""
    import trimesh

    check_mesh_path(path)
    suffix = path.suffix.lower()
    vertices = mesh.vertices @ GLTF_FROM_OPENCV.T if suffix == ".glb" else mesh.vertices
    surface = trimesh.Trimesh(vertices, mesh.faces, vertex_colors=mesh.colors, process=False)
    if suffix == ".glb":
        write_bytes_atomic(path, lambda: trimesh.Scene(surface).export(file_type="glb"))
    elif suffix == ".ply":
        write_bytes_atomic(path, lambda: trimesh.exchange.ply.export_ply(surface, encoding="binary"))
    else:
        write_bytes_atomic(path, lambda: _obj_text(surface).encode())


def _obj_text(surface) -> str:
    """``surface`` (a ``trimesh.Trimesh``) as OBJ text with vertex colours."""
    text = surface.export(file_type="obj", include_color=True)
    if not isinstance(text, str):  # trimesh's export returns text, bytes or a dict by file type
        raise ExportError(f"trimesh exported OBJ as {type(text).__name__}, not text; update trimesh")
    return text
