"""Exact ground-truth 3D tracks of a synthetic rig: its objects move as rigid bodies, so a surface point at one
timestep is the same object-frame point at every other (:func:`vggt_t_mv.data.synthetic.scene_motion`)."""

from __future__ import annotations

import numpy as np

from vggt_t_mv.data.raycast import cast_rays
from vggt_t_mv.data.synthetic import SceneMotion
from vggt_t_mv.npgeometry import project_points


def _face_planes(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outward unit normals ``[F, 3]`` and offsets ``[F]`` of a convex mesh's faces."""
    corners = vertices[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    offsets = (normals * corners[:, 0]).sum(-1)
    outward = np.where(normals @ vertices.mean(0) <= offsets, 1.0, -1.0)
    return normals * outward[:, None], offsets * outward


def surface_objects(motion: SceneMotion, timestep: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The object whose surface each world point ``[M, 3]`` lies on at ``timestep`` -> ``(ids [M], distance [M])``
    (the nearest surface by the convex signed distance ``max_f n_f . x - d_f``, in world units)."""
    points = np.asarray(points, np.float64).reshape(-1, 3)
    distances = []
    for vertices, triangles in motion.world_meshes(timestep):
        normals, offsets = _face_planes(vertices, triangles)
        distances.append(np.abs((points @ normals.T - offsets).max(axis=1)))
    stacked = np.stack(distances)  # [K, M]
    ids = stacked.argmin(axis=0)
    return ids, stacked[ids, np.arange(len(points))]


def ground_truth_tracks(motion: SceneMotion, queries: np.ndarray, num_timesteps: int) -> np.ndarray:
    """3D queries ``[Q, 4]`` (t, x, y, z; points on the scene's surfaces in the world) -> their positions at every
    timestep ``[Q, T, 3]`` (float64): each moves with the object it lies on."""
    queries = np.asarray(queries, np.float64).reshape(-1, 4)
    out = np.empty((len(queries), num_timesteps, 3))
    poses = np.stack([motion.poses(t) for t in range(num_timesteps)])  # [T, K, 4, 4]
    for q, (time, *point) in enumerate(queries):
        start = int(time)
        ids, _ = surface_objects(motion, start, np.array([point]))
        pose0 = poses[start, ids[0]]
        local = pose0[:3, :3].T @ (np.array(point) - pose0[:3, 3])
        out[q] = np.einsum("tij,j->ti", poses[:, ids[0], :3, :3], local) + poses[:, ids[0], :3, 3]
    return out


def ground_truth_visibility(
    motion: SceneMotion,
    points: np.ndarray,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_hw: tuple[int, int],
    tolerance: float = 1e-6,
    first_timestep: int = 0,
) -> np.ndarray:
    """``points [Q, T, 3]`` seen by the rig's cameras ``extrinsics [T, N, 3, 4]``, ``intrinsics [T, N, 3, 3]`` ->
    ``visible [Q, T, N]``: in front, inside the ``(H, W)`` image, and the first surface on the camera's ray to it
    (ray cast; ``tolerance`` relative along the ray). Index ``t`` of the arrays is timestep ``first_timestep + t``."""
    points = np.asarray(points, np.float64)
    num_timesteps, num_cameras = extrinsics.shape[:2]
    height, width = image_hw
    visible = np.zeros(points.shape[:2] + (num_cameras,), bool)
    for t in range(num_timesteps):
        meshes = motion.world_meshes(first_timestep + t)
        pixels, depth = project_points(points[None, :, t], extrinsics[t], intrinsics[t])  # [N, Q, 2], [N, Q]
        cameras = np.asarray(extrinsics[t], np.float64)
        centres = -np.einsum("nij,nj->ni", np.linalg.inv(cameras[:, :, :3]), cameras[:, :, 3])  # exact, [N, 3]
        for n in range(num_cameras):
            u, v = pixels[n, :, 0], pixels[n, :, 1]
            with np.errstate(invalid="ignore"):
                inside = (depth[n] > 0) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
            directions = points[:, t] - centres[n]
            rays = np.concatenate([np.broadcast_to(centres[n], directions.shape), directions], axis=-1)
            hits = cast_rays(meshes, rays)
            visible[:, t, n] = inside & (hits.t_hit >= 1.0 - tolerance)
    return visible


def exact_depth(
    motion: SceneMotion, timestep: int, extrinsics: np.ndarray, intrinsics: np.ndarray, pixels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The z-depth one camera (``extrinsics [3, 4]``, ``intrinsics [3, 3]``) sees at sub-pixel ``pixels [M, 2]`` at
    ``timestep`` (ray cast, float64) -> ``(depth [M], valid [M])``."""
    extrinsics, intrinsics = np.asarray(extrinsics, np.float64), np.asarray(intrinsics, np.float64)
    pixels = np.asarray(pixels, np.float64).reshape(-1, 2)
    rays_camera = np.concatenate([pixels, np.ones((len(pixels), 1))], axis=1) @ np.linalg.inv(intrinsics).T
    # R^-1 K^-1 [u, v, 1] from -R^-1 t (exact inverses of the projection): the hit parameter is the z-depth
    inverse = np.linalg.inv(extrinsics[:, :3])
    directions = rays_camera @ inverse.T
    centre = -inverse @ extrinsics[:, 3]
    rays = np.concatenate([np.broadcast_to(centre, directions.shape), directions], axis=-1)
    hits = cast_rays(motion.world_meshes(timestep), rays)
    valid = np.isfinite(hits.t_hit)
    return np.where(valid, hits.t_hit, 0.0), valid
