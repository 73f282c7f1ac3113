"""Closest-hit ray casting against a few small convex triangle meshes, in numpy (no system library needed).

Made for the procedural scenes of :mod:`vggt_t_mv.data.synthetic` (boxes and UV spheres: convex polyhedra of a few
hundred triangles in all). A convex mesh is the intersection of the half-spaces of its faces, so a ray enters it at the
largest entry parameter over the faces it crosses inwards and leaves at the smallest exit parameter (the slab test,
generalized to any convex polyhedron); only the rays that pass through a mesh's bounding sphere are tested. Arithmetic
is float64 on the given float32 rays and vertices. It answers what open3d's ``RaycastingScene.cast_rays`` answers for
such scenes (``tests/test_synthetic.py`` compares): the ray parameter of the closest hit in units of the ray's
direction (``inf`` where nothing is hit), which mesh, and the unit normal of the face hit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_PAIRS_PER_CHUNK = 1 << 21  # rays x faces tested at once (bounds each temporary array to 16 MB)


@dataclass
class RayHits:
    """Closest hits of ``rays [..., 6]``: ``t_hit [...]`` (``inf`` = no hit), ``mesh_ids [...]`` (index into the
    meshes, -1 = no hit) and ``normals [..., 3]`` (outward unit normal of the face hit, 0 where no hit)."""

    t_hit: np.ndarray
    mesh_ids: np.ndarray
    normals: np.ndarray


@dataclass(frozen=True)
class _RayBundle:
    """``origins``, ``directions`` ``[M, 3]`` float64 and the per-ray products every mesh's culling reuses."""

    origins: np.ndarray
    directions: np.ndarray
    origin_sq: np.ndarray  # |o|^2 [M]
    direction_sq: np.ndarray  # |d|^2 [M]
    origin_dot_direction: np.ndarray  # o.d [M]

    @classmethod
    def of(cls, origins: np.ndarray, directions: np.ndarray) -> _RayBundle:
        dot = lambda a, b: np.einsum("mk,mk->m", a, b)  # noqa: E731
        return cls(origins, directions, dot(origins, origins), dot(directions, directions), dot(origins, directions))


@dataclass(frozen=True)
class _ConvexMesh:
    """A convex mesh as half-spaces ``normals [F, 3] . x <= offsets [F]`` (outward unit normals, one per distinct
    face plane) and its bounding sphere."""

    normals: np.ndarray
    offsets: np.ndarray
    centre: np.ndarray
    radius: float

    @classmethod
    def from_triangles(cls, vertices: np.ndarray, triangles: np.ndarray) -> _ConvexMesh:
        """``vertices [V, 3]``, ``triangles [F, 3]``; raises ``ValueError`` for a mesh that is not convex."""
        vertices = np.asarray(vertices, dtype=np.float64)
        corners = vertices[np.asarray(triangles)]  # [F, 3, 3]
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
        offsets = (normals * corners[:, 0]).sum(-1)
        inside = vertices.mean(axis=0)
        outward = np.where((normals @ inside <= offsets)[:, None], 1.0, -1.0)
        normals, offsets = normals * outward, offsets * outward[:, 0]
        scale = float(np.abs(vertices).max()) + 1.0
        key = np.round(np.concatenate([normals, offsets[:, None] / scale], axis=1), 9)
        _, unique = np.unique(key, axis=0, return_index=True)
        normals, offsets = normals[np.sort(unique)], offsets[np.sort(unique)]
        if (vertices @ normals.T - offsets).max() > 1e-6 * scale:
            raise ValueError("cast_rays handles convex meshes only; a vertex lies outside one of the mesh's faces")
        centre = (vertices.min(0) + vertices.max(0)) / 2
        return cls(normals, offsets, centre, float(np.linalg.norm(vertices - centre, axis=-1).max()))

    def rays_near(self, rays: _RayBundle) -> np.ndarray:
        """Indices of the rays whose forward half-line passes through the bounding sphere."""
        # |o + s d - c|^2 is smallest at s = (c - o).d / |d|^2, clamped to s >= 0.
        towards = rays.directions @ self.centre - rays.origin_dot_direction  # (c - o).d
        gap_sq = self.centre @ self.centre - 2 * (rays.origins @ self.centre) + rays.origin_sq  # |c - o|^2
        distance_sq = gap_sq - np.maximum(towards, 0) ** 2 / rays.direction_sq
        return np.flatnonzero(distance_sq <= self.radius**2 * (1 + 1e-9))

    def intersect(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First hit at ``t >= 0`` of each ray ``[M, 3]``: ``(t [M], face index [M])``, ``t = inf`` where none."""
        t_hit = np.full(len(origins), np.inf)
        face = np.zeros(len(origins), dtype=np.int64)
        chunk = max(1, _PAIRS_PER_CHUNK // len(self.normals))
        for start in range(0, len(origins), chunk):
            o, d = origins[start : start + chunk], directions[start : start + chunk]
            # along [m, F] < 0: the ray crosses the face's plane inwards; gap < 0: the origin is outside that face
            along = np.einsum("mk,fk->mf", d, self.normals)
            gap = self.offsets - np.einsum("mk,fk->mf", o, self.normals)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = gap / along
            entering, leaving = along < 0, along > 0
            t_in = np.where(entering, t, -np.inf)
            t_out = np.where(leaving, t, np.inf)
            face_in, face_out = t_in.argmax(axis=1), t_out.argmin(axis=1)
            rows = np.arange(len(o))
            enter, leave = t_in[rows, face_in], t_out[rows, face_out]
            parallel_outside = ((along == 0) & (gap < 0)).any(axis=1)
            hit = (enter <= leave) & (leave >= 0) & ~parallel_outside
            from_outside = enter >= 0
            t_hit[start : start + chunk] = np.where(hit, np.where(from_outside, enter, leave), np.inf)
            face[start : start + chunk] = np.where(from_outside, face_in, face_out)
        return t_hit, face


def cast_rays(meshes: list[tuple[np.ndarray, np.ndarray]], rays: np.ndarray) -> RayHits:
    """Closest hit of every ray with any of ``meshes``.

    ``meshes``: convex ``(vertices [V, 3], triangles [F, 3] int)`` per mesh, in the rays' frame. ``rays [..., 6]``:
    origin and direction (any length). Ties between meshes go to the first mesh."""
    flat = rays.reshape(-1, 6).astype(np.float64)
    origins, directions = np.ascontiguousarray(flat[:, :3]), np.ascontiguousarray(flat[:, 3:])
    bundle = _RayBundle.of(origins, directions)
    t_hit = np.full(len(flat), np.inf)
    mesh_ids = np.full(len(flat), -1, dtype=np.int64)
    normals = np.zeros((len(flat), 3))
    for mesh_id, (vertices, triangles) in enumerate(meshes):
        mesh = _ConvexMesh.from_triangles(vertices, triangles)
        candidates = mesh.rays_near(bundle)
        if len(candidates) == 0:
            continue
        t, face = mesh.intersect(origins[candidates], directions[candidates])
        closer = t < t_hit[candidates]
        rays_hit = candidates[closer]
        t_hit[rays_hit] = t[closer]
        mesh_ids[rays_hit] = mesh_id
        normals[rays_hit] = mesh.normals[face[closer]]
    shape = rays.shape[:-1]
    return RayHits(t_hit.reshape(shape), mesh_ids.reshape(shape), normals.reshape(shape + (3,)))
